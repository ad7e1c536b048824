"""The account surface over HTTP: rate-limit and cost headers, 429s, GET /v1/models, GET /v1/usage."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from conftest import DEV_KEY, FREE_KEY, PREMIUM_KEY, FakeUpstream, auth
from embedrank.domain.auth import hash_key
from embedrank.domain.catalog import catalog
from embedrank.store.dynamo import Stores
from fakes import openai_answer
from lambda_harness import LambdaContext, invoke, load_event

EMBED = {"model": "openai/text-embedding-3-small", "input": ["hello", "world"]}
TODAY = datetime.now(UTC).date().isoformat()


def embed(client: Any, key: str = DEV_KEY, body: dict[str, Any] | None = None) -> Any:
    return client.post("/v1/embeddings", json=body or EMBED, headers=auth(key))


def test_rate_headers_on_every_authenticated_response_and_cost_on_success(client: Any, upstream: FakeUpstream) -> None:
    upstream.handler = openai_answer
    ok = embed(client)
    assert ok.status_code == 200, ok.text
    assert ok.headers["x-ratelimit-limit-requests"] == "3000"  # ultra: the minute window is the tightest
    assert ok.headers["x-ratelimit-remaining-requests"] == "2999"
    assert ok.headers["x-ratelimit-reset-requests"].endswith("s")
    assert ok.headers["x-ratelimit-limit-tokens"] == "20000000"
    assert float(ok.headers["x-embedrank-cost"]) == pytest.approx(ok.json()["usage"]["cost"])
    # A request refused before admission (a bad body, a model outside the plan) is not counted against the limits.
    bad = embed(client, body={"model": "openai/text-embedding-3-small"})
    assert bad.status_code == 400 and "x-ratelimit-remaining-requests" not in bad.headers
    assert "x-embedrank-cost" not in bad.headers
    denied = embed(client, key=FREE_KEY)
    assert denied.status_code == 403 and "'free'" in denied.json()["error"]["message"]
    assert embed(client).headers["x-ratelimit-remaining-requests"] == "2998"
    anonymous = embed(client, key="er-nope")
    assert anonymous.status_code == 401 and "x-ratelimit-limit-requests" not in anonymous.headers


def test_over_the_limit_is_429_naming_the_limit(client: Any, services: Any, upstream: FakeUpstream) -> None:
    upstream.handler = openai_answer
    services.stores.put_plan({"name": "two", "allowed_models": "all", "limits": {"requests_per_minute": 2}})
    boto3.client("dynamodb").update_item(
        TableName=services.settings.keys_table,
        Key={"key_hash": {"S": hash_key(PREMIUM_KEY)}},
        UpdateExpression="SET #p = :p",
        ExpressionAttributeNames={"#p": "plan"},
        ExpressionAttributeValues={":p": {"S": "two"}},
    )
    assert [embed(client, PREMIUM_KEY).status_code for _ in range(2)] == [200, 200]
    r = embed(client, PREMIUM_KEY)
    assert r.status_code == 429
    err = r.json()["error"]
    assert err["type"] == "rate_limit_error" and err["code"] == "requests_per_minute_exceeded"
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert r.headers["x-ratelimit-remaining-requests"] == "0" and r.headers["x-ratelimit-limit-requests"] == "2"
    assert len(upstream.requests) == 2  # the refused request never reached the provider


def test_budget_exceeded_is_429_but_usage_stays_readable(client: Any, services: Any, upstream: FakeUpstream) -> None:
    upstream.handler = openai_answer
    boto3.client("dynamodb").update_item(
        TableName=services.settings.keys_table,
        Key={"key_hash": {"S": hash_key(DEV_KEY)}},
        UpdateExpression="SET monthly_budget = :b",
        ExpressionAttributeValues={":b": {"N": "0.0000001"}},  # less than one request's reservation
    )
    r = embed(client)
    assert r.status_code == 429 and r.json()["error"]["code"] == "budget_exceeded"
    assert not upstream.requests
    assert int(r.headers["retry-after"]) > 0
    assert client.get(f"/v1/usage?start={TODAY}&end={TODAY}", headers=auth()).status_code == 200
    assert client.get("/v1/models", headers=auth()).status_code == 200


# -- /v1/models -------------------------------------------------------------------------------------------------------


def test_models_lists_only_what_the_plan_allows(client: Any, services: Any) -> None:
    premium = services.stores.get_plan("premium")
    r = client.get("/v1/models", headers=auth(PREMIUM_KEY))
    assert r.status_code == 200 and r.json()["object"] == "list"
    data = r.json()["data"]
    allowed = set(premium.allowed_models) & set(catalog().model_ids())
    bare = {name for name, model_id in catalog().bare_names.items() if model_id in allowed}
    assert {m["id"] for m in data} == allowed | bare
    by_id = {m["id"]: m for m in data}
    # a provider's own name, for code written against that provider, names the catalog id it stands for
    assert by_id["text-embedding-3-small"]["canonical"] == "openai/text-embedding-3-small"
    small = by_id["openai/text-embedding-3-small"]
    assert small == {
        "id": "openai/text-embedding-3-small",
        "object": "model",
        "owned_by": "openai",
        "type": "embedding",
        "dimensions": 1536,
        "max_inputs": 2048,
        "pricing": {"currency": "USD", "per_million_tokens": 0.02},
        # the largest request, per deployment mode: streamed, 2048 inputs (the API's cap) whatever the encoding;
        # buffered, what fits Lambda's 6 MB
        "limits": {
            "streaming": {"answer_bytes": 199 * 2**20, "inputs": {"float": 2048, "float_gzip": 2048, "base64": 2048}},
            "buffered": {"answer_bytes": 6 * 2**20 - 2**16, "inputs": {"float": 161, "float_gzip": 275, "base64": 753}},
        },
    }
    rerank = by_id["cohere/rerank-v3.5"]
    assert rerank["type"] == "rerank" and rerank["dimensions"] is None
    assert rerank["limits"]["streaming"] == {"answer_bytes": 199 * 2**20, "documents": 1000}
    assert rerank["limits"]["buffered"] == {"answer_bytes": 6 * 2**20 - 2**16, "documents": 1000}
    assert rerank["max_inputs"] == 1000  # Cohere takes 10000 documents, the API 1000: what a request may carry
    assert rerank["pricing"] == {"currency": "USD", "per_1k_searches": 2.0}
    route = by_id["route/cohere-embed-v3-english-3"]
    assert route["owned_by"] == "cohere" and route["deployments"][0] == "cohere/embed-english-v3.0"
    assert "x-embedrank-cost" not in r.headers and r.headers["x-ratelimit-limit-requests"] == "100"
    assert client.get("/v1/models", headers=auth(FREE_KEY)).json()["data"] == []
    everything = client.get("/api/v1/models", headers=auth()).json()["data"]
    assert len(everything) == len(catalog().model_ids()) + len(catalog().bare_names)
    assert client.get("/v1/models").status_code == 401


# -- /v1/usage --------------------------------------------------------------------------------------------------------


def test_usage_is_the_callers_own_and_matches_the_records(
    client: Any, services: Any, settings: Any, upstream: FakeUpstream
) -> None:
    upstream.handler = lambda req: openai_answer(req, dims=3072 if b"large" in req.content else 1536)
    for body in (EMBED, {"model": "openai/text-embedding-3-large", "input": "x"}, EMBED):
        assert embed(client, DEV_KEY, body).status_code == 200
    embed(client, DEV_KEY, {"model": "nope/nothing", "input": "x"})  # 404: counted, under "(unknown)"
    assert embed(client, PREMIUM_KEY).status_code == 200

    r = client.get(f"/v1/usage?start={TODAY}&end={TODAY}", headers=auth())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["key_id"] == "key_dev" and body["start"] == body["end"] == TODAY
    # Every record of the key except the usage request's own (written after its rollup query ran).
    records = [r for r in Stores(settings).usage_records("key_dev", TODAY, TODAY + "T99") if r.endpoint != "usage"]
    expected: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for rec in records:
        model = rec.model if rec.model in catalog().model_ids() else "(unknown)"
        row = expected[model]
        row["requests"] += 1
        row["errors"] += rec.status >= 400
        row["tokens"] += rec.tokens
        row["cost"] += rec.cost
    assert {d["model"]: d["requests"] for d in body["data"]} == {m: v["requests"] for m, v in expected.items()}
    for row in body["data"]:
        assert row["date"] == TODAY
        assert row["tokens"] == expected[row["model"]]["tokens"]
        assert row["errors"] == expected[row["model"]]["errors"]
        assert row["cost"] == pytest.approx(expected[row["model"]]["cost"])
    assert body["totals"]["requests"] == len(records) == 4
    assert body["totals"]["cost"] == pytest.approx(sum(r.cost for r in records))

    # The premium key sees its one request, never the dev key's.
    other = client.get(f"/v1/usage?start={TODAY}&end={TODAY}", headers=auth(PREMIUM_KEY)).json()
    assert other["key_id"] == "key_premium" and other["totals"]["requests"] == 1
    assert [d["model"] for d in other["data"]] == ["openai/text-embedding-3-small"]


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("", "start"),
        ("start=2025-01-01", "end"),
        ("start=2025-13-01&end=2025-12-31", "start"),
        ("start=2025-01-01&end=yesterday", "end"),
        ("start=2025-1-1&end=2025-01-02", "start"),
        ("start=2025-02-01&end=2025-01-01", "end"),
        ("start=2024-01-01&end=2025-12-31", "end"),
    ],
)
def test_usage_bad_dates_are_400(client: Any, query: str, param: str) -> None:
    r = client.get(f"/v1/usage?{query}", headers=auth())
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param and r.json()["error"]["type"] == "invalid_request_error"


def test_usage_empty_range_has_zero_totals(client: Any) -> None:
    body = client.get("/v1/usage?start=2020-01-01&end=2020-01-31", headers=auth()).json()
    assert body["data"] == [] and body["totals"] == {
        "requests": 0,
        "errors": 0,
        "tokens": 0,
        "search_units": 0,
        "cost": 0,
        "cached_inputs": 0,
        "cost_saved": 0,
    }


def test_replayed_usage_write_counts_once(services: Any) -> None:
    from embedrank.domain.records import UsageRecord

    record = UsageRecord(
        "dup-1",
        "key_dev",
        "2025-02-03T04:05:06.789+00:00",
        "embeddings",
        "openai/text-embedding-3-small",
        "openai",
        200,
        1.0,
        tokens=7,
        cost=1.4e-7,
    )
    assert services.meter.record(record) is True
    assert services.meter.record(record) is False
    [row] = services.stores.day_rollups("key_dev", "2025-02-03", "2025-02-03")
    assert (row.requests, row.tokens) == (1, 7) and row.cost == pytest.approx(1.4e-7)
    [month] = services.stores.month_rollups("key_dev", "2025-02")
    assert month.requests == 1


def test_account_function_handler_serves_models_and_usage(aws: None) -> None:
    """The AccountFunction's handler, invoked as Lambda does with API Gateway v2 events (tests/events/)."""
    import account_handler

    account_handler.app.state.services.auth._keys.clear()
    status, headers, models = invoke(account_handler.handler, load_event("models_success.json"), "AccountFunction")
    assert status == 200 and models["object"] == "list"
    assert headers["x-request-id"] == "evt-models" and "x-ratelimit-limit-requests" in headers
    status, _, body = invoke(account_handler.handler, load_event("usage_success.json"), "AccountFunction")
    assert status == 200, body
    assert (body["start"], body["end"]) == ("2026-11-01", "2026-11-30") and body["key_id"] == "key_dev"


def test_the_streaming_deployments_rest_api_events_are_served_uncompressed(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In the streaming deployment the account routes stay buffered, behind the REST API (payload 1.0 events):
    an answer gzipped there would reach the client as base64 text, so none is, whatever its size."""
    import account_handler

    services = account_handler.app.state.services
    services.auth._keys.clear()
    # given answers of any size would be gzipped for a client that accepts gzip
    monkeypatch.setattr(services, "settings", services.settings.model_copy(update={"gzip_min_bytes": 0}))
    # when the openai SDK's models.list() arrives through the REST API, accepting gzip
    result = account_handler.handler(load_event("models_rest_api.json"), LambdaContext(function_name="AccountFunction"))
    # then the answer is plain JSON, with API Gateway's request id
    assert result["statusCode"] == 200 and not result.get("isBase64Encoded")
    assert "content-encoding" not in {k.lower() for k in (result.get("multiValueHeaders") or result["headers"])}
    assert json.loads(result["body"])["object"] == "list"
    headers = result.get("multiValueHeaders") or {k: [v] for k, v in result["headers"].items()}
    assert headers["x-request-id"] == ["evt-models-rest"]
    # and through the HTTP API (the buffered deployment) the same answer is gzipped, as the client asked
    event = load_event("models_success.json")
    event["headers"]["accept-encoding"] = "gzip"
    assert account_handler.handler(event, LambdaContext(function_name="AccountFunction"))["isBase64Encoded"]
