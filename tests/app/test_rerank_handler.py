"""The rerank Lambda handler, invoked exactly as Lambda does, with the API Gateway v2 events in tests/events/."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import httpx
import pytest

from conftest import DEV_KEY, PROVIDER_SECRET, FakeUpstream, usage_records
from fakes import json_response
from lambda_harness import invoke as run
from lambda_harness import load_event, wired

DOCS = [
    "PostgreSQL supports pgvector for vector search",
    "Redis is an in-memory key-value store",
    "SQLite is an embedded SQL database",
]


def cohere_rerank(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    ranked = [{"index": 0, "relevance_score": 0.98}, {"index": 2, "relevance_score": 0.31}]
    ranked.append({"index": 1, "relevance_score": 0.02})
    return json_response(
        {"id": "r1", "results": ranked[: body.get("top_n")], "meta": {"billed_units": {"search_units": 1}}}
    )


@pytest.fixture
def handler(aws: None, upstream: FakeUpstream) -> Any:
    import rerank_handler

    return wired(rerank_handler, upstream)


def invoke(handler: Any, event: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    return run(handler, event, function="RerankFunction")


def test_success_event(handler: Any, upstream: FakeUpstream, settings: Any) -> None:
    upstream.handler = cohere_rerank
    status, headers, body = invoke(handler, load_event("rerank_success.json"))
    assert status == 200, body
    assert body == {
        "id": "evt-rerank-ok",  # API Gateway's request id is the response id and the correlation id
        "object": "list",
        "results": [{"index": 0, "relevance_score": 0.98}, {"index": 2, "relevance_score": 0.31}],
        "model": "route/cohere-rerank-v4.0-pro",
        "provider": "cohere",
        "usage": {"search_units": 1, "cost": pytest.approx(0.0025)},
        # Cohere's own meta, so the cohere SDK's response.meta is filled
        "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}},
    }
    assert headers["x-request-id"] == "evt-rerank-ok"
    assert str(upstream.requests[0].url) == "https://api.cohere.com/v2/rerank"
    assert upstream.json() == {
        "model": "rerank-v4.0-pro",
        "query": "best database for vector search",
        "documents": DOCS,
        "top_n": 2,
    }
    [record] = usage_records(settings)
    assert record["request_id"]["S"] == "evt-rerank-ok" and record["endpoint"]["S"] == "rerank"
    assert record["search_units"]["N"] == "1" and record["input_count"]["N"] == "3"


def test_bearer_event_on_api_prefix_returns_documents(handler: Any, upstream: FakeUpstream) -> None:
    upstream.handler = cohere_rerank
    status, _, body = invoke(handler, load_event("rerank_api_prefix_bearer.json"))
    assert status == 200, body
    assert upstream.json()["documents"] == DOCS  # {"text": ...} objects go upstream as strings
    assert [r["document"]["text"] for r in body["results"]] == [DOCS[0], DOCS[2], DOCS[1]]


def test_missing_key_event(handler: Any, upstream: FakeUpstream, settings: Any) -> None:
    status, headers, body = invoke(handler, load_event("rerank_missing_key.json"))
    assert status == 401 and body["error"]["code"] == "missing_api_key"
    assert headers["x-request-id"] == "evt-rerank-nokey"
    assert not upstream.requests and usage_records(settings) == []


def test_bad_body_event(handler: Any, upstream: FakeUpstream, settings: Any) -> None:
    status, _, body = invoke(handler, load_event("rerank_bad_body.json"))
    assert status == 400 and body["error"]["type"] == "invalid_request_error"
    # "top_n": "2", a string: strict types, never coerced
    assert body["error"]["param"] == "top_n" and "valid integer" in body["error"]["message"]
    assert not upstream.requests
    [record] = usage_records(settings)
    assert record["status"]["N"] == "400"


def test_the_rerank_function_serves_only_rerank(handler: Any, upstream: FakeUpstream) -> None:
    event = load_event("rerank_success.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/v1/embeddings"
    status, _, body = invoke(handler, event)
    assert status == 404 and body["error"]["code"] == "not_found"
    assert not upstream.requests


def test_logs_never_hold_keys_secrets_or_documents(
    handler: Any, upstream: FakeUpstream, log_stream: io.StringIO, capfd: pytest.CaptureFixture[str]
) -> None:
    secret_query = "confidential-merger-plan-query"
    secret_doc = "confidential-merger-plan-document"
    # A provider error that echoes the gateway's key and the caller's text back.
    upstream.handler = lambda request: json_response(
        {"message": f"bad key co-secret-456 for {secret_query} / {secret_doc}"}, 401
    )
    event = load_event("rerank_success.json")
    body = {"model": "cohere/rerank-v3.5", "query": secret_query, "documents": [secret_doc]}
    event["body"] = base64.b64encode(json.dumps(body).encode()).decode()
    status, _, answer = invoke(handler, event)
    assert status == 502 and answer["error"]["code"] == "provider_auth_failed"
    invoke(handler, load_event("rerank_bad_body.json"))
    out = capfd.readouterr()
    logs = log_stream.getvalue() + out.out + out.err
    lines = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    assert [(line["endpoint"], line["status"]) for line in lines if line.get("message") == "request"] == [
        ("rerank", 502),
        ("rerank", 400),
    ]
    assert DEV_KEY not in logs and secret_query not in logs and secret_doc not in logs
    for entry in PROVIDER_SECRET.values():
        if "api_key" in entry:
            assert entry["api_key"] not in logs
