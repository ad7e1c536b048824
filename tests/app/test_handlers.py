"""The Lambda handler, invoked exactly as Lambda does, with the API Gateway v2 events in tests/events/."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import httpx
import pytest

from conftest import DEV_KEY, PROVIDER_SECRET, FakeUpstream, usage_records
from fakes import cohere_embed_answer, json_response, openai_answer
from lambda_harness import invoke, load_event, wired


@pytest.fixture
def handler(aws: None, upstream: FakeUpstream) -> Any:
    import embeddings_handler

    return wired(embeddings_handler, upstream)


def test_success_event(handler: Any, upstream: FakeUpstream, settings: Any) -> None:
    upstream.handler = openai_answer
    status, headers, body = invoke(handler, load_event("embeddings_success.json"))
    assert status == 200, body
    assert body["model"] == "openai/text-embedding-3-small" and len(body["data"]) == 2
    assert len(body["data"][0]["embedding"]) == 1536
    assert headers["x-request-id"] == "evt-embeddings-ok"  # API Gateway's request id is the correlation id
    assert upstream.json()["input"] == ["hello", "world"]
    [record] = usage_records(settings)
    assert record["request_id"]["S"] == "evt-embeddings-ok"


def test_bearer_event_on_api_prefix(handler: Any, upstream: FakeUpstream) -> None:
    upstream.handler = cohere_embed_answer
    status, _, body = invoke(handler, load_event("embeddings_api_prefix_bearer.json"))
    assert status == 200, body
    assert body["provider"] == "cohere" and isinstance(body["data"][0]["embedding"], str)
    assert upstream.json()["input_type"] == "search_query"


def test_missing_key_event(handler: Any, upstream: FakeUpstream) -> None:
    status, headers, body = invoke(handler, load_event("embeddings_missing_key.json"))
    assert status == 401 and body["error"]["code"] == "missing_api_key"
    assert headers["x-request-id"] == "evt-embeddings-nokey"
    assert not upstream.requests


def test_bad_body_event(handler: Any, upstream: FakeUpstream) -> None:
    status, _, body = invoke(handler, load_event("embeddings_bad_body.json"))
    assert status == 400 and body["error"]["type"] == "invalid_request_error"
    assert not upstream.requests


def test_two_invocations_reuse_the_container(handler: Any, upstream: FakeUpstream, settings: Any) -> None:
    upstream.handler = openai_answer
    first = invoke(handler, load_event("embeddings_success.json"))
    event = load_event("embeddings_success.json")
    event["requestContext"]["requestId"] = "evt-second"
    second = invoke(handler, event)
    assert first[0] == second[0] == 200
    assert len(usage_records(settings)) == 2


def test_logs_never_hold_keys_secrets_or_input(
    handler: Any,
    upstream: FakeUpstream,
    log_stream: io.StringIO,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from embedrank import observability

    monkeypatch.setattr(observability, "EMIT_METRICS", True)  # as in Lambda: the EMF documents are checked too
    secret_input = "confidential-merger-plan-text"
    calls = {"n": 0}

    def answer(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return openai_answer(request)
        # A provider error that echoes the gateway's key and the caller's text back.
        return json_response({"error": {"message": f"bad key sk-openai-secret-123 for {secret_input}"}}, 401)

    upstream.handler = answer
    for _ in range(2):
        event = load_event("embeddings_success.json")
        event["body"] = base64.b64encode(
            json.dumps({"model": "openai/text-embedding-3-small", "input": [secret_input]}).encode()
        ).decode()
        invoke(handler, event)
    bad = load_event("embeddings_bad_body.json")
    invoke(handler, bad)
    out = capfd.readouterr()
    logs = log_stream.getvalue() + out.out + out.err
    lines = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    requests = [line for line in lines if line.get("message") == "request"]
    assert [r["status"] for r in requests] == [200, 502, 400]  # one line per request
    ok, failed, bad = requests
    # The request id is also the correlation id (API Gateway's, from the event), with the key's id, never the key.
    assert ok["request_id"] == ok["correlation_id"] == "evt-embeddings-ok" and ok["key_id"] == "key_dev"
    assert (ok["model"], ok["provider"], ok["tokens"], ok["upstream_attempts"]) == (
        "openai/text-embedding-3-small",
        "openai",
        3,
        1,
    )
    assert ok["cost"] > 0 and ok["latency_ms"] >= ok["upstream_ms"] > 0 and "error_code" not in ok
    assert (failed["provider"], failed["error_code"], failed["upstream_attempts"]) == (
        "openai",
        "provider_auth_failed",
        1,
    )
    assert bad["error_code"] == "invalid_request" and bad["upstream_attempts"] == 0
    assert '"_aws"' in out.out  # the metrics were emitted, and are held to the same rules below
    assert DEV_KEY not in logs
    assert secret_input not in logs
    for entry in PROVIDER_SECRET.values():
        if "api_key" in entry:
            assert entry["api_key"] not in logs
