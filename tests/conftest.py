"""Shared fixtures: moto for AWS, an injected httpx transport for providers, the app under test."""

from __future__ import annotations

import asyncio
import json
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
for _var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_SECRETS_MANAGER"):
    os.environ.pop(_var, None)

import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402

from embedrank import aws as aws_clients  # noqa: E402
from embedrank.config import Settings  # noqa: E402
from embedrank_tools.motopatch import item_level_transactions  # noqa: E402

# The tests' moto rolls a failed transaction back item by item, as DynamoDB does (see motopatch.py).
item_level_transactions()

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT.parent / "shared" / "specs"
EVENTS = ROOT / "tests" / "events"

PROVIDER_SECRET = {
    "openai": {"api_key": "sk-openai-secret-123"},
    "cohere": {"api_key": "co-secret-456"},
    "voyage": {"api_key": "pa-voyage-secret"},
    "jina": {"api_key": "jina-secret"},
    "google": {"api_key": "gemini-secret"},
    "mistral": {"api_key": "mistral-secret"},
    "selfhosted": {"api_key": "selfhosted-secret", "base_url": "http://qwen.internal:8080/v1"},
    "infinity": {"base_url": "http://infinity.internal:7997"},
    "tei": {"base_url": "http://tei.internal:8080"},
}

DEV_KEY = "er-test-ultra-key-0000000000000000000000000000000000"
PREMIUM_KEY = "er-test-premium-key-000000000000000000000000000000000"
FREE_KEY = "er-test-free-key-00000000000000000000000000000000000"


@dataclass
class FakeUpstream:
    """Records every request a provider adapter sends and answers with a programmable handler."""

    handler: Callable[[httpx.Request], httpx.Response] | None = None
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.handler is None:
            raise AssertionError(f"unexpected upstream call {request.method} {request.url}")
        return self.handler(request)

    def json(self, i: int = -1) -> Any:
        return json.loads(self.requests[i].content)


@pytest.fixture(autouse=True)
def lambda_main_thread_loop() -> None:
    """Mangum runs each invocation on the main thread's current event loop, which Lambda's fresh process always has;
    a test before this one that used ``asyncio.run`` leaves the main thread with none."""
    try:
        with warnings.catch_warnings():  # "there is no current event loop": the very case handled here
            warnings.simplefilter("ignore", DeprecationWarning)
            loop = asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        loop = None
    if loop is None or loop.is_closed():
        asyncio.set_event_loop(asyncio.new_event_loop())


@pytest.fixture(autouse=True)
def fresh_aws_clients() -> None:
    """boto3 clients are built once per process (``embedrank.aws``); a test builds its own, from its own settings."""
    aws_clients.reset()


@pytest.fixture
def settings() -> Settings:
    return Settings.from_env({})


@pytest.fixture
def aws(settings: Settings) -> Iterator[None]:
    from aws_lambda_powertools.utilities import parameters

    from embedrank_tools.provision import (
        create_job_stores,
        create_key,
        create_tables,
        put_provider_secret,
        seed_plans,
    )

    with mock_aws():
        # The process's boto3 clients are built inside mock_aws, which intercepts their calls; none outlives it.
        aws_clients.reset()
        parameters.clear_caches()
        db = boto3.client("dynamodb")
        create_tables(db, settings)
        create_job_stores(boto3.client("s3"), boto3.client("sqs"), settings)
        seed_plans(db, settings)
        create_key(db, settings, plan="ultra", name="dev", key=DEV_KEY, key_id="key_dev")
        create_key(db, settings, plan="premium", name="premium", key=PREMIUM_KEY, key_id="key_premium")
        create_key(db, settings, plan="free", name="free", key=FREE_KEY, key_id="key_free")
        put_provider_secret(boto3.client("secretsmanager"), settings.provider_secret, PROVIDER_SECRET)
        yield
        parameters.clear_caches()
        aws_clients.reset()


@pytest.fixture
def upstream() -> FakeUpstream:
    return FakeUpstream()


@pytest.fixture
def services(aws: None, settings: Settings, upstream: FakeUpstream) -> Any:
    from embedrank.api.app import Services
    from embedrank.providers import Registry

    transport = httpx.MockTransport(upstream)
    return Services.build(settings, registry=Registry(transport))


@pytest.fixture
def client(services: Any) -> Iterator[Any]:
    from starlette.testclient import TestClient

    from embedrank.api.app import create_app

    with TestClient(create_app(services=services), raise_server_exceptions=False) as c:
        yield c


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``embedrank <argv>``: exit code, stdout, stderr."""
    from embedrank_tools.cli import main

    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def validate(spec: str, body: Any) -> None:
    """``body`` against a provider's JSON Schema from ../shared/specs (extracted from its official API spec)."""
    schema = json.loads((SPECS / spec).read_text())
    jsonschema.validators.validator_for(schema)(schema).validate(body)


def replace_provider_secret(services: Any, value: dict[str, Any]) -> None:
    """Rewrite the provider secret and drop the gateway's cached copy, as a rotation after its TTL would."""
    boto3.client("secretsmanager").put_secret_value(
        SecretId=services.settings.provider_secret, SecretString=json.dumps(value)
    )
    services.gateway.credentials.clear()


def usage_records(settings: Settings) -> list[dict[str, Any]]:
    db = boto3.client("dynamodb")
    items = db.scan(TableName=settings.usage_table)["Items"]
    return [item for item in items if item["sk"]["S"].startswith("req#")]


def auth(key: str = DEV_KEY) -> dict[str, str]:
    return {"X-API-Key": key}


@pytest.fixture(scope="session")
def fake_provider() -> Iterator[str]:
    """A fake OpenAI + Cohere upstream on loopback (see tests/live.py)."""
    from live import start_fake_provider

    server, url = start_fake_provider()
    yield url
    server.shutdown()


@pytest.fixture(scope="session")
def live_server(fake_provider: str) -> Iterator[str]:
    """The real `make serve` process on a free port, pointed at the fake provider; yields its base URL."""
    from live import local_env, start_local_server, stop

    proc, base = start_local_server(local_env(fake_provider))
    yield base
    stop(proc)


@pytest.fixture
def log_stream() -> Iterator[Any]:
    """Everything the Powertools logger writes during the test."""
    from lambda_harness import captured_logs

    with captured_logs() as buffer:
        yield buffer
