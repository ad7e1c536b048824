"""The rerank endpoint end to end: each adapter's exact upstream request, the normalized answer, usage, errors."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from conftest import FREE_KEY, PREMIUM_KEY, FakeUpstream, auth, replace_provider_secret, usage_records, validate
from fakes import json_response

QUERY = "best database for vector search"
DOCS = ["PostgreSQL supports pgvector", "Redis is an in-memory store", "SQLite is embedded", "Qdrant is a vector DB"]
# Scores by document index: the expected order is 3, 0, 1, 2.
SCORES = [0.91, 0.40, 0.05, 0.98]


def post(client: Any, body: dict[str, Any], headers: dict[str, str] | None = None, path: str = "/v1/rerank") -> Any:
    return client.post(path, json=body, headers=auth() if headers is None else headers)


def scored(n: int, count: int | None = None) -> list[tuple[int, float]]:
    """What a provider ranks: the fixed SCORES for the first documents, then falling scores; best first."""
    scores = [SCORES[i] if i < len(SCORES) else 0.5 / (i + 1) for i in range(n)]
    order = sorted(range(n), key=lambda i: -scores[i])
    return [(i, scores[i]) for i in order[: count or n]]


# -- canned provider answers, shaped like each provider's documented response ------------------------------------


def cohere_answer(request: httpx.Request, search_units: int | None = 1) -> httpx.Response:
    body = json.loads(request.content)
    meta: dict[str, Any] = {"api_version": {"version": "2"}}
    if search_units is not None:
        meta["billed_units"] = {"search_units": search_units}
    answer = {
        "id": "c0ffee",
        "results": [{"index": i, "relevance_score": s} for i, s in scored(len(body["documents"]), body.get("top_n"))],
        "meta": meta,
    }
    validate("cohere-rerank-response.json", answer)
    return json_response(answer)


def voyage_answer(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    # Voyage answers best first; the gateway must not rely on it, so this fake answers in document order.
    data = sorted(
        ({"index": i, "relevance_score": s} for i, s in scored(len(body["documents"]), body.get("top_k"))),
        key=lambda r: r["index"],
    )
    return json_response({"object": "list", "data": data, "model": body["model"], "usage": {"total_tokens": 57}})


def jina_answer(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    echo = body.get("return_documents", True)  # Jina's upstream default is true
    results = [
        {"index": i, "relevance_score": s, **({"document": {"text": body["documents"][i]}} if echo else {})}
        for i, s in scored(len(body["documents"]), body.get("top_n"))
    ]
    return json_response({"model": body["model"], "usage": {"total_tokens": 80}, "results": results})


def infinity_answer(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    echo = body.get("return_documents", False)
    answer = {
        "object": "rerank",
        "results": [
            {"relevance_score": s, "index": i, "document": body["documents"][i] if echo else None}
            for i, s in scored(len(body["documents"]), body.get("top_n"))
        ],
        "model": body["model"],
        "usage": {"prompt_tokens": 33, "total_tokens": 33},
        "id": "infinity-1",
        "created": 1795377600,
    }
    validate("infinity-rerank-response.json", answer)
    return json_response(answer)


def tei_answer(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    # Every text is scored (TEI has no top_n), best first, indices relative to this request's texts.
    order = sorted(range(len(body["texts"])), key=lambda i: -_tei_score(i))
    answer = [{"index": i, "score": _tei_score(i)} for i in order]
    validate("tei-rerank-response.json", answer)
    return json_response(answer)


def _tei_score(i: int) -> float:
    return SCORES[i] if i < len(SCORES) else 0.5 / (i + 1)


# -- Cohere ---------------------------------------------------------------------------------------------------------


def test_cohere_request_response_usage_and_cost(client: Any, upstream: FakeUpstream, settings: Any) -> None:
    upstream.handler = cohere_answer
    r = post(client, {"model": "cohere/rerank-v4.0-pro", "query": QUERY, "documents": DOCS, "top_n": 2})
    assert r.status_code == 200, r.text
    [sent] = upstream.requests
    assert str(sent.url) == "https://api.cohere.com/v2/rerank"
    assert sent.headers["authorization"] == "Bearer co-secret-456"
    body = upstream.json()
    assert body == {"model": "rerank-v4.0-pro", "query": QUERY, "documents": DOCS, "top_n": 2}
    validate("cohere-rerank-request.json", body)
    out = r.json()
    assert out == {
        "id": r.headers["x-request-id"],
        "object": "list",
        "results": [{"index": 3, "relevance_score": 0.98}, {"index": 0, "relevance_score": 0.91}],
        "model": "cohere/rerank-v4.0-pro",
        "provider": "cohere",
        "usage": {"search_units": 1, "cost": pytest.approx(2.50 / 1000)},
        "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}},
    }
    [record] = usage_records(settings)
    assert record["endpoint"]["S"] == "rerank" and record["status"]["N"] == "200"
    assert record["model"]["S"] == "cohere/rerank-v4.0-pro" and record["provider"]["S"] == "cohere"
    assert record["search_units"]["N"] == "1" and record["tokens"]["N"] == "0" and record["input_count"]["N"] == "4"
    assert float(record["cost"]["N"]) == pytest.approx(0.0025)


def test_cohere_search_units_fall_back_to_100_documents_per_unit(client: Any, upstream: FakeUpstream) -> None:
    upstream.handler = lambda request: cohere_answer(request, search_units=None)
    docs = [f"doc {i}" for i in range(250)]
    r = post(client, {"model": "cohere/rerank-v3.5", "query": QUERY, "documents": docs, "top_n": 5})
    assert r.status_code == 200, r.text
    assert r.json()["usage"] == {"search_units": 3, "cost": pytest.approx(3 * 2.00 / 1000)}
    assert len(r.json()["results"]) == 5


def test_cohere_reported_search_units_win_over_the_rule(client: Any, upstream: FakeUpstream) -> None:
    # Cohere bills long documents as several chunks: its own count is what the account is charged.
    upstream.handler = lambda request: cohere_answer(request, search_units=4)
    r = post(client, {"model": "cohere/rerank-v3.5", "query": QUERY, "documents": DOCS})
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["search_units"] == 4
    assert "top_n" in upstream.json() and upstream.json()["top_n"] == 4  # top_n defaults to every document


def test_cohere_max_tokens_per_doc_is_forwarded_and_capped(client: Any, upstream: FakeUpstream) -> None:
    upstream.handler = cohere_answer
    r = post(client, {"model": "cohere/rerank-v3.5", "query": QUERY, "documents": DOCS, "max_tokens_per_doc": 512})
    assert r.status_code == 200, r.text
    assert upstream.json()["max_tokens_per_doc"] == 512
    validate("cohere-rerank-request.json", upstream.json())
    r = post(client, {"model": "cohere/rerank-v3.5", "query": QUERY, "documents": DOCS, "max_tokens_per_doc": 5000})
    assert r.status_code == 400 and r.json()["error"]["param"] == "max_tokens_per_doc"
    assert "4096" in r.json()["error"]["message"] and len(upstream.requests) == 1


def test_route_alias_serves_the_chain_and_echoes_the_alias(client: Any, upstream: FakeUpstream) -> None:
    upstream.handler = cohere_answer
    r = post(
        client,
        {"model": "route/cohere-rerank-v4.0-pro", "query": QUERY, "documents": DOCS[:3], "top_n": 2},
        headers=auth(PREMIUM_KEY),
        path="/api/v1/rerank",
    )
    assert r.status_code == 200, r.text
    assert upstream.json()["model"] == "rerank-v4.0-pro"
    out = r.json()
    assert out["model"] == "route/cohere-rerank-v4.0-pro" and out["provider"] == "cohere"
    assert [x["index"] for x in out["results"]] == [0, 1]


def test_documents_are_restored_only_when_asked(client: Any, upstream: FakeUpstream) -> None:
    upstream.handler = cohere_answer
    mixed: list[Any] = [DOCS[0], {"text": DOCS[1]}, DOCS[2], {"text": DOCS[3]}]
    r = post(client, {"model": "cohere/rerank-v3.5", "query": QUERY, "documents": mixed, "return_documents": True})
    assert r.status_code == 200, r.text
    assert upstream.json()["documents"] == DOCS  # objects are sent as plain strings
    assert "return_documents" not in upstream.json()  # Cohere v2 has no such field
    results = r.json()["results"]
    assert [x["index"] for x in results] == [3, 0, 1, 2]
    assert [x["document"] for x in results] == [{"text": DOCS[i]} for i in (3, 0, 1, 2)]
    r = post(client, {"model": "cohere/rerank-v3.5", "query": QUERY, "documents": mixed, "top_n": 1})
    assert r.json()["results"] == [{"index": 3, "relevance_score": 0.98}]


def test_ties_keep_document_order(client: Any, upstream: FakeUpstream) -> None:
    upstream.handler = lambda request: json_response(
        {
            "results": [
                {"index": 2, "relevance_score": 0.5},
                {"index": 0, "relevance_score": 0.5},
                {"index": 1, "relevance_score": 0.7},
            ]
        }
    )
    r = post(client, {"model": "cohere/rerank-v3.5", "query": QUERY, "documents": DOCS[:3]})
    assert [x["index"] for x in r.json()["results"]] == [1, 0, 2]


# -- Voyage ---------------------------------------------------------------------------------------------------------


def test_voyage_request_response_and_token_usage(client: Any, upstream: FakeUpstream, settings: Any) -> None:
    upstream.handler = voyage_answer
    r = post(client, {"model": "voyage/rerank-2.5", "query": QUERY, "documents": DOCS, "top_n": 3})
    assert r.status_code == 200, r.text
    [sent] = upstream.requests
    assert str(sent.url) == "https://api.voyageai.com/v1/rerank"
    assert sent.headers["authorization"] == "Bearer pa-voyage-secret"
    body = upstream.json()
    assert body == {"model": "rerank-2.5", "query": QUERY, "documents": DOCS, "top_k": 3, "return_documents": False}
    validate("voyage-rerank-request.json", body)
    out = r.json()
    assert [(x["index"], x["relevance_score"]) for x in out["results"]] == [(3, 0.98), (0, 0.91), (1, 0.40)]
    assert out["provider"] == "voyage"
    assert out["usage"] == {"total_tokens": 57, "cost": pytest.approx(57 * 0.05 / 1e6)}
    [record] = usage_records(settings)
    assert record["tokens"]["N"] == "57" and record["search_units"]["N"] == "0"


def test_voyage_lite_restores_documents(client: Any, upstream: FakeUpstream) -> None:
    upstream.handler = voyage_answer
    r = post(
        client,
        {"model": "voyage/rerank-2.5-lite", "query": QUERY, "documents": DOCS, "top_n": 1, "return_documents": True},
    )
    assert r.status_code == 200, r.text
    assert upstream.json()["model"] == "rerank-2.5-lite" and upstream.json()["return_documents"] is False
    assert r.json()["results"] == [{"index": 3, "relevance_score": 0.98, "document": {"text": DOCS[3]}}]
    assert r.json()["usage"]["cost"] == pytest.approx(57 * 0.02 / 1e6)


# -- Jina -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["jina/jina-reranker-v2-base-multilingual", "jina/jina-reranker-m0"])
def test_jina_sends_return_documents_false_explicitly(client: Any, upstream: FakeUpstream, model: str) -> None:
    upstream.handler = jina_answer
    r = post(client, {"model": model, "query": QUERY, "documents": DOCS, "top_n": 2, "return_documents": True})
    assert r.status_code == 200, r.text
    [sent] = upstream.requests
    assert str(sent.url) == "https://api.jina.ai/v1/rerank"
    assert sent.headers["authorization"] == "Bearer jina-secret"
    body = upstream.json()
    assert body == {
        "model": model.removeprefix("jina/"),
        "query": QUERY,
        "documents": DOCS,
        "top_n": 2,
        "return_documents": False,
    }
    validate("jina-rerank-request.json", body)
    out = r.json()
    assert out["results"] == [
        {"index": 3, "relevance_score": 0.98, "document": {"text": DOCS[3]}},
        {"index": 0, "relevance_score": 0.91, "document": {"text": DOCS[0]}},
    ]
    assert out["usage"] == {"total_tokens": 80, "cost": pytest.approx(80 * 0.05 / 1e6)}


# -- Infinity (self-hosted) -----------------------------------------------------------------------------------------


def test_infinity_request_response_and_usage(client: Any, upstream: FakeUpstream) -> None:
    upstream.handler = infinity_answer
    r = post(
        client,
        {
            "model": "infinity/mixedbread-ai/mxbai-rerank-large-v1",
            "query": QUERY,
            "documents": DOCS,
            "top_n": 2,
            "return_documents": True,
        },
    )
    assert r.status_code == 200, r.text
    [sent] = upstream.requests
    assert str(sent.url) == "http://infinity.internal:7997/rerank"  # base URL from the provider secret
    assert "authorization" not in sent.headers  # no key configured: none sent
    body = upstream.json()
    assert body == {
        "model": "mixedbread-ai/mxbai-rerank-large-v1",
        "query": QUERY,
        "documents": DOCS,
        "top_n": 2,
        "return_documents": False,
        "raw_scores": False,
    }
    validate("infinity-rerank-request.json", body)
    out = r.json()
    assert out["provider"] == "infinity"
    assert out["results"] == [
        {"index": 3, "relevance_score": 0.98, "document": {"text": DOCS[3]}},
        {"index": 0, "relevance_score": 0.91, "document": {"text": DOCS[0]}},
    ]
    assert out["usage"] == {"total_tokens": 33, "cost": 0.0}


def test_infinity_without_a_base_url_is_503(client: Any, services: Any, upstream: FakeUpstream) -> None:
    replace_provider_secret(services, {"cohere": {"api_key": "x"}})
    r = post(client, {"model": "infinity/mixedbread-ai/mxbai-rerank-large-v1", "query": QUERY, "documents": DOCS})
    assert r.status_code == 503 and r.json()["error"]["code"] == "provider_not_configured"
    assert not upstream.requests


# -- TEI (self-hosted) ----------------------------------------------------------------------------------------------


def test_tei_request_response_sorted_and_cut(client: Any, upstream: FakeUpstream) -> None:
    upstream.handler = tei_answer
    r = post(
        client,
        {
            "model": "tei/BAAI/bge-reranker-v2-m3",
            "query": QUERY,
            "documents": DOCS,
            "top_n": 2,
            "return_documents": True,
        },
    )
    assert r.status_code == 200, r.text
    [sent] = upstream.requests
    assert str(sent.url) == "http://tei.internal:8080/rerank"
    assert "authorization" not in sent.headers
    body = upstream.json()
    assert body == {"query": QUERY, "texts": DOCS, "raw_scores": False, "return_text": False, "truncate": True}
    validate("tei-rerank-request.json", body)
    out = r.json()
    assert out["provider"] == "tei"
    assert out["results"] == [
        {"index": 3, "relevance_score": 0.98, "document": {"text": DOCS[3]}},
        {"index": 0, "relevance_score": 0.91, "document": {"text": DOCS[0]}},
    ]
    assert out["usage"] == {"total_tokens": 0, "cost": 0.0}


def test_tei_splits_documents_into_server_sized_batches(client: Any, upstream: FakeUpstream) -> None:
    upstream.handler = tei_answer
    docs = [f"doc {i}" for i in range(70)]
    r = post(client, {"model": "tei/BAAI/bge-reranker-v2-m3", "query": QUERY, "documents": docs})
    assert r.status_code == 200, r.text
    batches = sorted((json.loads(q.content)["texts"] for q in upstream.requests), key=lambda t: int(t[0].split()[1]))
    assert [len(b) for b in batches] == [32, 32, 6] and [d for b in batches for d in b] == docs
    results = r.json()["results"]
    assert len(results) == 70 and {x["index"] for x in results} == set(range(70))
    # Each batch restarts its indices at 0; the gateway maps them back, so document 32 scores like document 0 did.
    scores = {x["index"]: x["relevance_score"] for x in results}
    assert scores[0] == scores[32] == scores[64] == 0.91 and scores[35] == 0.98
    assert [x["relevance_score"] for x in results] == sorted(scores.values(), reverse=True)


def test_tei_batch_size_comes_from_the_secret(client: Any, services: Any, upstream: FakeUpstream) -> None:
    replace_provider_secret(
        services, {"tei": {"base_url": "http://tei.internal:8080/", "api_key": "t", "max_batch_size": 64}}
    )
    upstream.handler = tei_answer
    r = post(
        client, {"model": "tei/BAAI/bge-reranker-v2-m3", "query": QUERY, "documents": [f"d {i}" for i in range(70)]}
    )
    assert r.status_code == 200, r.text
    assert sorted(len(json.loads(q.content)["texts"]) for q in upstream.requests) == [6, 64]
    assert {str(q.url) for q in upstream.requests} == {"http://tei.internal:8080/rerank"}
    assert {q.headers["authorization"] for q in upstream.requests} == {"Bearer t"}


def test_tei_one_failed_batch_fails_the_request(client: Any, upstream: FakeUpstream) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if len(json.loads(request.content)["texts"]) < 32:
            return json_response(
                {"error": "batch size 6 > maximum allowed batch size 4", "error_type": "Validation"}, 413
            )
        return tei_answer(request)

    upstream.handler = answer
    r = post(
        client, {"model": "tei/BAAI/bge-reranker-v2-m3", "query": QUERY, "documents": [f"d {i}" for i in range(70)]}
    )
    # a 413 from the server is about the gateway's batch, not the caller's request: a 502
    assert r.status_code == 502, r.text
    err = r.json()["error"]
    assert err["code"] == "provider_error" and "maximum allowed batch size" in err["message"]


# -- validation -----------------------------------------------------------------------------------------------------

OK = {"model": "cohere/rerank-v3.5", "query": QUERY, "documents": DOCS}


@pytest.mark.parametrize(
    ("change", "param", "words"),
    [
        ({"model": None}, "model", "Missing"),
        ({"query": None}, "query", "Missing"),
        ({"query": ""}, "query", "at least 1 character"),
        ({"documents": None}, "documents", "Missing"),
        ({"documents": []}, "documents", "at least one"),
        ({"documents": "one doc"}, "documents", "array"),
        ({"documents": ["x"] * 1001}, "documents", "maximum is 1000"),
        ({"documents": ["ok", ""]}, "documents", "documents[1]"),
        ({"documents": ["ok", {"text": ""}]}, "documents", "documents[1]"),
        ({"documents": [{"text": "a", "title": "b"}]}, "documents", "documents[0]"),
        ({"documents": [{"content": "a"}]}, "documents", "documents[0]"),
        ({"documents": ["a", 7]}, "documents", "documents[1]"),
        ({"top_n": 0}, "top_n", "greater than or equal to 1"),
        ({"top_n": "two"}, "top_n", "integer"),
        ({"top_n": "2"}, "top_n", "integer"),  # strict: a number in a string is not a number
        ({"top_n": True}, "top_n", "integer"),
        ({"top_n": 2.0}, "top_n", "integer"),
        ({"return_documents": "yes"}, "return_documents", "boolean"),
        ({"return_documents": 1}, "return_documents", "boolean"),
        ({"max_tokens_per_doc": 0}, "max_tokens_per_doc", "greater than 0"),
        ({"return_documents": "maybe"}, "return_documents", "boolean"),
        ({"rank_fields": ["text"]}, "rank_fields", "Unrecognized"),
    ],
)
def test_bad_bodies_are_400(
    client: Any, upstream: FakeUpstream, change: dict[str, Any], param: str, words: str
) -> None:
    body = {**OK, **change}
    body = {k: v for k, v in body.items() if v is not None}
    r = post(client, body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["param"] == param
    assert words in err["message"], err["message"]
    assert not upstream.requests


@pytest.mark.parametrize("raw", [b"", b"{not json", b"[1,2]"])
def test_malformed_json_is_400(client: Any, raw: bytes) -> None:
    r = client.post("/v1/rerank", content=raw, headers={**auth(), "content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    "model",
    [
        "voyage/rerank-2.5",
        "jina/jina-reranker-m0",
        "infinity/mixedbread-ai/mxbai-rerank-large-v1",
        "tei/BAAI/bge-reranker-v2-m3",
        "bedrock/amazon.rerank-v1:0",
    ],
)
def test_max_tokens_per_doc_is_refused_where_the_provider_has_no_such_option(
    client: Any, upstream: FakeUpstream, model: str
) -> None:
    r = post(client, {**OK, "model": model, "max_tokens_per_doc": 256})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == "max_tokens_per_doc" and model in err["message"]
    assert not upstream.requests


def test_wrong_kind_unknown_model_and_plans(client: Any, upstream: FakeUpstream, settings: Any) -> None:
    r = post(client, {**OK, "model": "openai/text-embedding-3-small"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "wrong_model_kind"
    r = post(client, {**OK, "model": "nope/reranker"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    r = post(client, {**OK, "model": "jina/jina-reranker-m0"}, headers=auth(PREMIUM_KEY))
    assert r.status_code == 403 and "'premium'" in r.json()["error"]["message"]
    r = post(client, OK, headers=auth(FREE_KEY))
    assert r.status_code == 403 and "'free'" in r.json()["error"]["message"]
    r = post(client, OK, headers={})
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"
    assert not upstream.requests
    assert sorted(rec["status"]["N"] for rec in usage_records(settings)) == ["400", "403", "403", "404"]


def test_get_is_405(client: Any) -> None:
    r = client.get("/v1/rerank")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


# -- provider failures ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        {"results": [{"index": 9, "relevance_score": 0.5}]},  # index out of range
        {"results": [{"index": 0, "relevance_score": 0.5}, {"index": 0, "relevance_score": 0.4}]},  # repeated
        {"results": [{"index": 0, "relevance_score": 0.5}]},  # fewer than top_n
        {"results": [{"index": 0, "relevance_score": "high"}, {"index": 1, "relevance_score": 0.1}]},
        {"data": []},
    ],
)
def test_malformed_rerank_answers_are_502(client: Any, upstream: FakeUpstream, answer: dict[str, Any]) -> None:
    upstream.handler = lambda request: json_response(answer)
    r = post(client, {**OK, "documents": DOCS[:2], "top_n": 2})
    assert r.status_code == 502, r.text
    assert r.json()["error"]["code"] == "provider_malformed_response"


def test_provider_errors_keep_the_message_not_the_secret(client: Any, upstream: FakeUpstream) -> None:
    upstream.handler = lambda request: json_response({"message": "too many tokens"}, 422)
    r = post(client, OK)
    assert r.status_code == 400 and "too many tokens" in r.json()["error"]["message"]
    upstream.handler = lambda request: json_response({"message": "slow down"}, 429, {"retry-after": "3"})
    r = post(client, OK)
    assert r.status_code == 502 and r.json()["error"]["code"] == "provider_rate_limited"
    upstream.handler = lambda request: json_response({"message": "invalid api token co-secret-456"}, 401)
    r = post(client, OK)
    assert r.json()["error"]["code"] == "provider_auth_failed" and "co-secret-456" not in r.text


def test_timeout_is_504(client: Any, upstream: FakeUpstream) -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    upstream.handler = slow
    r = post(client, {**OK, "model": "voyage/rerank-2.5"})
    assert r.status_code == 504 and r.json()["error"]["code"] == "provider_timeout"


def test_a_catalog_document_limit_below_the_api_limit_is_a_400() -> None:
    # Operators add self-hosted models as data; a server that takes fewer documents says so in the catalog.
    from embedrank.api.requests import RerankRequest
    from embedrank.domain.catalog import Deployment
    from embedrank.domain.rerank import _check_limits
    from embedrank.errors import InvalidRequest
    from embedrank.providers.http import Http
    from embedrank.providers.tei import Adapter

    small = Deployment(id="tei/x", provider="tei", native="x", kind="rerank", weights="x", max_documents=3)
    _check_limits(small, RerankRequest(model="tei/x", query=QUERY, documents=DOCS[:3]), Adapter(Http()))
    with pytest.raises(InvalidRequest, match="at most 3 documents; 4 were sent") as caught:
        _check_limits(small, RerankRequest(model="tei/x", query=QUERY, documents=DOCS), Adapter(Http()))
    assert caught.value.param == "documents"
