"""Environment configuration as one pydantic model, read once per container.

Each variable is named once, as its field's alias; ``Settings.from_env`` reads exactly these and ignores the rest of
the environment. The dev tooling (``embedrank_tools``) has its own model for the variables only it reads.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, Json


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    keys_table: str = Field("embedrank-keys", alias="KEYS_TABLE")
    plans_table: str = Field("embedrank-plans", alias="PLANS_TABLE")
    usage_table: str = Field("embedrank-usage", alias="USAGE_TABLE")
    cache_table: str = Field("embedrank-embedding-cache", alias="EMBEDDING_CACHE_TABLE")
    # Batch jobs (domain/jobs.py): files in S3, their state in DynamoDB, chunks of lines through SQS.
    files_bucket: str = Field("embedrank-files", alias="FILES_BUCKET")
    jobs_table: str = Field("embedrank-jobs", alias="JOBS_TABLE")
    jobs_queue: str = Field("embedrank-jobs", alias="JOBS_QUEUE", description="the chunk queues' names: <it>-<lane>")
    jobs_queue_urls: Json[dict[str, str]] = Field(
        default_factory=dict, alias="JOBS_QUEUE_URLS", description="JSON: each lane's queue URL (default: by name)"
    )
    jobs_dlq: str = Field("embedrank-jobs-dlq", alias="JOBS_DLQ", description="their dead-letter queue's name")
    job_chunk_lines: int = Field(100, gt=0, le=1000, alias="JOB_CHUNK_LINES", description="lines per chunk")
    provider_secret: str = Field("embedrank/providers", alias="PROVIDER_SECRET_NAME", description="name or ARN")
    secret_max_age: int = Field(300, ge=0, alias="SECRET_CACHE_SECONDS", description="provider secret cache TTL")
    auth_cache_ttl: int = Field(30, ge=0, le=60, alias="AUTH_CACHE_SECONDS", description="key and plan cache TTL")
    usage_retention_days: int = Field(90, gt=0, alias="USAGE_RETENTION_DAYS", description="per-request records' TTL")
    upstream_timeout: float = Field(25.0, gt=0, alias="UPSTREAM_TIMEOUT_SECONDS", description="per provider call")
    max_concurrency: int = Field(16, gt=0, alias="UPSTREAM_CONCURRENCY", description="provider calls per request")
    request_deadline: float = Field(25.0, gt=0, alias="REQUEST_DEADLINE_SECONDS", description="outside Lambda")
    retry_attempts: int = Field(3, ge=1, alias="RETRY_ATTEMPTS", description="per provider call, the first included")
    breaker_threshold: int = Field(5, ge=1, alias="BREAKER_THRESHOLD", description="failures that open a circuit")
    breaker_cooldown: float = Field(60.0, gt=0, alias="BREAKER_COOLDOWN_SECONDS", description="until a probe")
    gzip_min_bytes: int = Field(1_048_576, ge=0, alias="GZIP_MIN_BYTES", description="smallest answer gzipped")
    response_mode: Literal["streaming", "buffered"] = Field(
        "streaming",
        alias="RESPONSE_MODE",
        description="the deployment's answers: streamed (up to Lambda's 200 MB) or buffered (6 MB); Mangum: buffered",
    )
    # Observability switches (see observability.py). Lambda's own variables are read here too, so that every
    # variable the runtime code looks at is named in this one place.
    metrics: bool | None = Field(None, alias="EMBEDRANK_METRICS", description="EMF metrics; default: in Lambda")
    xray_sdk: bool = Field(False, alias="EMBEDRANK_XRAY_SDK", description="X-Ray SDK subsegments (Lambda only)")
    lambda_function: str = Field("", alias="AWS_LAMBDA_FUNCTION_NAME", description="set by the Lambda runtime")
    sam_local: bool = Field(False, alias="AWS_SAM_LOCAL", description="set by `sam local`")
    trace_disabled: bool = Field(False, alias="POWERTOOLS_TRACE_DISABLED", description="Powertools' own switch")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls.model_validate({name: value for name, value in env.items() if value})

    @property
    def in_lambda(self) -> bool:
        return bool(self.lambda_function)


@functools.cache
def settings() -> Settings:
    return Settings.from_env()
