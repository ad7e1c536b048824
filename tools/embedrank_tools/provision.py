"""Operator-side writes: create tables (local mode), seed plans, issue keys, write the provider secret.

Used by ``make serve``'s local stack, the admin CLI and the tests; never on a request's hot path.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from embedrank.config import Settings
from embedrank.store import tables
from embedrank.store.dynamo import Stores

from . import accounts
from .accounts import PLANS_SEED

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient

# Provider id -> (API key variable, base URL variable) for local mode; the base URL replaces the same prefix the
# provider's own SDK uses (see README).
PROVIDER_ENV: dict[str, tuple[str, str]] = {
    "openai": ("OPENAI_API_KEY", "OPENAI_BASE_URL"),
    "cohere": ("COHERE_API_KEY", "COHERE_BASE_URL"),
    "voyage": ("VOYAGE_API_KEY", "VOYAGE_BASE_URL"),
    "jina": ("JINA_API_KEY", "JINA_BASE_URL"),
    "google": ("GEMINI_API_KEY", "GEMINI_BASE_URL"),
    "mistral": ("MISTRAL_API_KEY", "MISTRAL_BASE_URL"),
    "selfhosted": ("SELFHOSTED_API_KEY", "SELFHOSTED_BASE_URL"),
    "infinity": ("INFINITY_API_KEY", "INFINITY_BASE_URL"),
    "tei": ("TEI_API_KEY", "TEI_BASE_URL"),
}


def create_tables(db: DynamoDBClient, config: Settings) -> None:
    existing = set(db.list_tables()["TableNames"])
    for name, shape in (
        (config.keys_table, tables.KEYS),
        (config.plans_table, tables.PLANS),
        (config.usage_table, tables.USAGE),
        (config.cache_table, tables.EMBEDDING_CACHE),
        (config.jobs_table, tables.JOBS),
    ):
        if name not in existing:
            db.create_table(TableName=name, BillingMode="PAY_PER_REQUEST", **shape)
            db.get_waiter("table_exists").wait(TableName=name)
    for name, attribute in (
        (config.usage_table, tables.USAGE_TTL_ATTRIBUTE),
        (config.cache_table, tables.EMBEDDING_CACHE_TTL_ATTRIBUTE),
        (config.jobs_table, tables.JOBS_TTL_ATTRIBUTE),
    ):
        # Enabling TTL that is already on is a ValidationException in AWS: a second run must not fail.
        ttl = db.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            db.update_time_to_live(
                TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": attribute}
            )


def create_job_stores(s3: S3Client, sqs: SQSClient, config: Settings, visibility_seconds: int = 60) -> dict[str, str]:
    """The files bucket, one chunk queue per lane and their dead-letter queue (a chunk goes there after 3 failed
    receives), as ``template.yaml`` declares them; each lane's queue URL."""
    from botocore.exceptions import ClientError

    from embedrank.store.queue import LANES

    try:
        s3.create_bucket(Bucket=config.files_bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    dlq = sqs.create_queue(QueueName=config.jobs_dlq)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = orjson.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": "3"}).decode()
    return {
        lane: sqs.create_queue(
            QueueName=f"{config.jobs_queue}-{lane}",
            Attributes={"RedrivePolicy": redrive, "VisibilityTimeout": str(visibility_seconds)},
        )["QueueUrl"]
        for lane in LANES
    }


def load_plans(path: Path = PLANS_SEED) -> list[dict[str, Any]]:
    return accounts.load_plans(path)


def seed_plans(db: DynamoDBClient, config: Settings, path: Path = PLANS_SEED) -> list[str]:
    return accounts.seed_plans(Stores(config, db), path)


def create_key(
    db: DynamoDBClient, config: Settings, *, plan: str, name: str, key: str | None = None, key_id: str | None = None
) -> tuple[str, str]:
    """Store a new key (only its hash) and return ``(key_id, key)``; the key is never retrievable again."""
    return accounts.create_key(Stores(config, db), plan=plan, name=name, key=key, key_id=key_id)


def provider_secret_from_env(env: Mapping[str, str] | None = None) -> dict[str, dict[str, str]]:
    """The provider secret's JSON built from the conventional environment variables (local mode)."""
    env = os.environ if env is None else env
    secret: dict[str, dict[str, str]] = {}
    for provider, (key_var, url_var) in PROVIDER_ENV.items():
        entry = {k: v for k, v in (("api_key", env.get(key_var, "")), ("base_url", env.get(url_var, ""))) if v}
        if entry:
            secret[provider] = entry
    return secret


def put_provider_secret(sm: SecretsManagerClient, name: str, value: dict[str, Any]) -> None:
    body = orjson.dumps(value).decode()
    try:
        sm.create_secret(Name=name, SecretString=body)
    except sm.exceptions.ResourceExistsException:
        sm.put_secret_value(SecretId=name, SecretString=body)
