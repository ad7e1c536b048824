"""boto3 clients: one per service (and region) per process, each configured for a request path.

boto3 is imported when the first client is built, not at module import (cold start); a client is thread-safe and
building one costs 50-100 ms, so it is built once and shared. Endpoints and credentials come from the standard
configuration (``AWS_ENDPOINT_URL_<SERVICE>``, a profile's ``services`` section, the Lambda role): ``make serve``
points only DynamoDB and Secrets Manager at its local AWS, so Bedrock keeps reaching AWS, or whatever endpoint
the user configured for it.

- **DynamoDB** answers in milliseconds, so its timeouts are short and its retries are botocore's legacy mode for
  DynamoDB (a 50 ms base, doubling): at most 3 attempts, never more than ~0.35 s of backoff. botocore's "standard"
  mode sleeps up to 1-2 s per retry on throttling, which would stall a request for seconds. No client-side parameter
  validation: every request is built by ``store/`` from typed values, DynamoDB validates it anyway, and the check
  cost 0.04 of 0.10 ms for the admission's UpdateItem and 0.19 of 0.38 ms for the usage write's TransactWriteItems
  (botocore's own CPU per call, answered by its Stubber, on the dev machine). A fixed User-Agent, which botocore
  would otherwise assemble on every call.
- **Secrets Manager**: read once per ``SECRET_CACHE_SECONDS``; the same bounded retries.
- **Bedrock**: one quick retry of transient faults (the gateway's retry policy and a route's next deployment do the
  rest); the read timeout is the gateway's provider timeout.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_bedrock_agent_runtime import AgentsforBedrockRuntimeClient
    from mypy_boto3_bedrock_runtime import BedrockRuntimeClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient

USER_AGENT = "embedrank"
# service -> botocore Config arguments.
CONFIGS: dict[str, dict[str, Any]] = {
    "dynamodb": {
        "connect_timeout": 1,
        "read_timeout": 2,
        "retries": {"mode": "legacy", "total_max_attempts": 3},
        "parameter_validation": False,
        "max_pool_connections": 32,
    },
    "secretsmanager": {
        "connect_timeout": 1,
        "read_timeout": 3,
        "retries": {"mode": "legacy", "total_max_attempts": 3},
    },
    # Batch jobs' files and chunks: off the request path of embeddings, so botocore's standard retries.
    "s3": {"retries": {"mode": "standard", "total_max_attempts": 3}, "max_pool_connections": 32},
    "sqs": {"retries": {"mode": "standard", "total_max_attempts": 3}},
    "bedrock-runtime": {"retries": {"mode": "standard", "total_max_attempts": 2}, "max_pool_connections": 32},
    "bedrock-agent-runtime": {"retries": {"mode": "standard", "total_max_attempts": 2}, "max_pool_connections": 32},
}

_clients: dict[tuple[str, str | None], Any] = {}
_lock = threading.Lock()


def client(service: str, region: str | None = None, read_timeout: float | None = None) -> Any:
    """The process's client for ``service`` (in ``region``; None: the configured one)."""
    held = _clients.get((service, region))
    if held is not None:
        return held
    with _lock:
        held = _clients.get((service, region))
        if held is None:
            import boto3
            from botocore.config import Config

            options = {"user_agent": USER_AGENT, **CONFIGS.get(service, {})}
            if read_timeout is not None:
                options.update(read_timeout=read_timeout, connect_timeout=min(read_timeout, 5.0))
            session = boto3.session.Session()
            held = session.client(service, region_name=region, config=Config(**options))  # type: ignore[call-overload]
            _clients[(service, region)] = held
    return held


def dynamodb() -> DynamoDBClient:
    return client("dynamodb")  # type: ignore[no-any-return]


def secretsmanager() -> SecretsManagerClient:
    return client("secretsmanager")  # type: ignore[no-any-return]


def s3() -> S3Client:
    return client("s3")  # type: ignore[no-any-return]


def sqs() -> SQSClient:
    return client("sqs")  # type: ignore[no-any-return]


def bedrock_runtime(read_timeout: float) -> BedrockRuntimeClient:
    return client("bedrock-runtime", None, read_timeout)  # type: ignore[no-any-return]


def bedrock_agent_runtime(region: str | None, read_timeout: float) -> AgentsforBedrockRuntimeClient:
    return client("bedrock-agent-runtime", region, read_timeout)  # type: ignore[no-any-return]


def reset() -> None:
    """Forget every client (tests that change the AWS configuration between cases)."""
    with _lock:
        _clients.clear()
