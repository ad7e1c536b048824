"""AWS failures on the request path (DynamoDB, Secrets Manager), through the Lambda handlers' events: each is a 503
with ``Retry-After`` in OpenAI's envelope, mapped in ``embedrank.store``, never a 500."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.stub import Stubber

from conftest import FakeUpstream, usage_records
from embedrank import aws
from lambda_harness import invoke, load_event, wired


@pytest.fixture
def embeddings(aws: None, upstream: FakeUpstream) -> Any:
    import embeddings_handler

    handler = wired(embeddings_handler, upstream)
    services = embeddings_handler.app.state.services
    services.auth._plans.clear()
    services.gateway.credentials.clear()
    return handler


@pytest.fixture
def models(aws: None, upstream: FakeUpstream) -> Any:
    import account_handler

    handler = wired(account_handler, upstream)
    account_handler.app.state.services.auth._plans.clear()
    return handler


@pytest.fixture
def dynamodb() -> Iterator[Stubber]:
    """The process's DynamoDB client (the one every request uses), its answers scripted by botocore's Stubber."""
    with Stubber(aws.dynamodb()) as stubber:
        yield stubber


def throttled(stubber: Stubber, operation: str, code: str = "ProvisionedThroughputExceededException") -> None:
    # The error as it reaches the store once botocore's own retries gave up (the Stubber answers after them).
    stubber.add_client_error(operation, service_error_code=code, http_status_code=400)


def assert_unavailable(status: int, headers: dict[str, str], body: Any, code: str) -> None:
    assert status == 503, body
    assert body["error"]["code"] == "store_unavailable" and body["error"]["type"] == "service_unavailable_error"
    assert code in body["error"]["message"] and headers["retry-after"] == "1"


@pytest.mark.parametrize(
    "code", ["ProvisionedThroughputExceededException", "ThrottlingException", "InternalServerError"]
)
def test_a_throttled_or_failing_key_lookup_is_a_503_with_retry_after(
    embeddings: Any, dynamodb: Stubber, upstream: FakeUpstream, code: str
) -> None:
    # given DynamoDB refuses the key lookup, retries included
    throttled(dynamodb, "get_item", code)
    # when a request arrives
    status, headers, body = invoke(embeddings, load_event("embeddings_success.json"))
    # then the caller is told to retry shortly, and no provider was paid for
    assert_unavailable(status, headers, body, code)
    assert not upstream.requests
    dynamodb.assert_no_pending_responses()


def test_a_throttled_admission_is_a_503_and_nothing_is_called(
    models: Any, dynamodb: Stubber, aws: None, settings: Any
) -> None:
    import boto3

    # given the key and plan are read (from moto, answered here as moto would), then the admission is throttled
    real = boto3.client("dynamodb")
    for table, key in (
        (settings.keys_table, {"key_hash": {"S": _hash()}}),
        (settings.plans_table, {"name": {"S": "ultra"}}),
    ):
        dynamodb.add_response("get_item", real.get_item(TableName=table, Key=key))
    throttled(dynamodb, "update_item")
    dynamodb.add_response("transact_write_items", {})  # the usage write, which still records the refusal
    # when /v1/models is asked for
    status, headers, body = invoke(models, load_event("models_success.json"), "AccountFunction")
    # then it is a 503, the refusal was metered, and nothing else was called
    assert_unavailable(status, headers, body, "ProvisionedThroughputExceededException")
    dynamodb.assert_no_pending_responses()


def test_an_unreachable_dynamodb_is_a_503(embeddings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # given DynamoDB's endpoint is a port nothing listens on (outside moto, which would intercept the call)
    from moto.core.models import botocore_stubber

    monkeypatch.setattr(botocore_stubber, "enabled", False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", f"http://127.0.0.1:{port}")
    aws.reset()
    # when a request arrives, then it is a 503 naming what failed
    status, headers, body = invoke(embeddings, load_event("embeddings_success.json"))
    assert_unavailable(status, headers, body, "EndpointConnectionError")


def test_a_throttled_provider_secret_is_a_503_not_a_missing_provider(
    embeddings: Any, upstream: FakeUpstream, settings: Any
) -> None:
    # given Secrets Manager refuses to read the provider secret
    with Stubber(aws.secretsmanager()) as secrets:
        secrets.add_client_error("get_secret_value", service_error_code="ThrottlingException", http_status_code=400)
        # when a request needs a provider's credentials
        status, headers, body = invoke(embeddings, load_event("embeddings_success.json"))
    # then it is the gateway's AWS that failed (503 with Retry-After), not the provider's configuration
    assert_unavailable(status, headers, body, "ThrottlingException")
    assert not upstream.requests
    # and the request is metered like any other that got past authentication
    [record] = usage_records(settings)
    assert record["status"]["N"] == "503"


def _hash() -> str:
    from conftest import DEV_KEY
    from embedrank.domain.auth import hash_key

    return hash_key(DEV_KEY)
