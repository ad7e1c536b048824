"""What hostile providers and bodies, and ordinary clients, found: each case through the Lambda handlers, invoked with
API Gateway events as Lambda invokes them."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from conftest import DEV_KEY, FREE_KEY, PROVIDER_SECRET, FakeUpstream, usage_records
from embedrank.domain.reliability import RetryPolicy
from fakes import b64, cohere_embed_answer, json_response, openai_answer, vector
from lambda_harness import captured_logs, event, invoke, wired

KEY = {"x-api-key": DEV_KEY}


def _wired(module: Any, upstream: FakeUpstream) -> Any:
    handler = wired(module, upstream)
    module.app.state.services.gateway.policy = RetryPolicy(attempts=1)  # one attempt: these cases are not retries
    return handler


@pytest.fixture
def embeddings(aws: None, upstream: FakeUpstream) -> Any:
    import embeddings_handler

    return _wired(embeddings_handler, upstream)


@pytest.fixture
def rerank(aws: None, upstream: FakeUpstream) -> Any:
    import rerank_handler

    return _wired(rerank_handler, upstream)


@pytest.fixture
def account(aws: None, upstream: FakeUpstream) -> Any:
    import account_handler

    return _wired(account_handler, upstream)


def post(handler: Any, path: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    return invoke(handler, event("POST", path, body, KEY if headers is None else headers))


def cohere_rerank(request: httpx.Request, results: list[tuple[int, float]] | None = None) -> httpx.Response:
    body = json.loads(request.content)
    rows = results if results is not None else [(i, 1 - i / 10) for i in range(len(body["documents"]))]
    scored = [{"index": i, "relevance_score": s} for i, s in rows][: body.get("top_n")]
    return json_response({"id": "r", "results": scored, "meta": {"billed_units": {"search_units": 1}}})


# -- 1. provider indices --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("indices", [[0, 0], [1, 1], [0, 2], [0], [0, 1, 2], [0, "1"], [0, True]])
def test_an_openai_shaped_answer_with_wrong_indices_is_a_502(
    embeddings: Any, upstream: FakeUpstream, indices: list[Any]
) -> None:
    # given a provider whose answer's indices are not each of 0..n-1 once
    def answer(request: httpx.Request) -> httpx.Response:
        data = [{"object": "embedding", "index": i, "embedding": b64(vector(n, 1536))} for n, i in enumerate(indices)]
        return json_response({"object": "list", "data": data, "usage": {"prompt_tokens": 2}})

    upstream.handler = answer
    # when two inputs are embedded
    status, _, body = post(
        embeddings, "/v1/embeddings", {"model": "openai/text-embedding-3-small", "input": ["a", "b"]}
    )
    # then no vector lands in another input's place: the answer is refused
    assert status == 502 and body["error"]["code"] == "provider_malformed_response", body


@pytest.mark.parametrize("results", [[(0, 0.9), (0, 0.8)], [(5, 0.9), (1, 0.8)], [(-1, 0.9), (1, 0.8)]])
def test_a_rerank_answer_with_wrong_indices_is_a_502(
    rerank: Any, upstream: FakeUpstream, results: list[tuple[int, float]]
) -> None:
    upstream.handler = lambda request: cohere_rerank(request, results)
    body = {"model": "cohere/rerank-v3.5", "query": "q", "documents": ["a", "b", "c"], "top_n": 2}
    status, _, out = post(rerank, "/v1/rerank", body)
    assert status == 502 and out["error"]["code"] == "provider_malformed_response", out


# -- 2. provider secrets never reach a caller or a log line ---------------------------------------------------------

EMBEDDING_MODELS = {
    "openai": "openai/text-embedding-3-small",
    "cohere": "cohere/embed-english-v3.0",
    "voyage": "voyage/voyage-3.5",
    "jina": "jina/jina-embeddings-v3",
    "google": "google/gemini-embedding-001",
    "mistral": "mistral/mistral-embed",
    "selfhosted": "selfhosted/Qwen/Qwen3-Embedding-8B",
}
EXPECTED = {400: 400, 401: 502, 403: 502, 422: 400, 500: 502}


def echo_key(status: int, with_message: bool) -> Any:
    """A provider that quotes the key it was sent, in every field of its error body (and, without a message field,
    only in the others, which the gateway then quotes raw)."""

    def answer(request: httpx.Request) -> httpx.Response:
        key = request.headers.get("authorization", "").removeprefix("Bearer ") or request.headers["x-goog-api-key"]
        fields = {"code": key, "param": key, "type": f"invalid key {key}"}
        if with_message:
            fields["message"] = f"Incorrect API key provided: {key}; also {PROVIDER_SECRET['cohere']['api_key']}"
        return json_response({"error": fields, "detail": key, "id": key, **fields}, status)

    return answer


@pytest.mark.parametrize("with_message", [True, False], ids=["message", "other fields"])
@pytest.mark.parametrize("status", sorted(EXPECTED))
@pytest.mark.parametrize("provider", sorted(EMBEDDING_MODELS))
def test_no_provider_key_reaches_the_caller_or_the_logs(
    embeddings: Any, upstream: FakeUpstream, provider: str, status: int, with_message: bool
) -> None:
    # given a provider that echoes its key (and another provider's) in its error
    upstream.handler = echo_key(status, with_message)
    # when a request fails there
    with captured_logs() as logs:
        code, headers, body = post(embeddings, "/v1/embeddings", {"model": EMBEDDING_MODELS[provider], "input": "x"})
    # then the caller gets the error it should, and no configured key appears in the answer or the logs
    assert code == EXPECTED[status], body
    seen = json.dumps(body) + json.dumps(headers) + logs.getvalue()
    for entry in PROVIDER_SECRET.values():
        if entry.get("api_key"):
            assert entry["api_key"] not in seen
    if with_message and status in (400, 422):
        assert "Incorrect API key provided: [redacted]" in body["error"]["message"]  # the rest of it is kept


@pytest.mark.parametrize("provider", ["cohere", "voyage", "jina"])
def test_no_provider_key_reaches_the_caller_from_rerank(rerank: Any, upstream: FakeUpstream, provider: str) -> None:
    upstream.handler = echo_key(400, True)
    model = {"cohere": "cohere/rerank-v3.5", "voyage": "voyage/rerank-2.5", "jina": "jina/jina-reranker-m0"}[provider]
    code, _, body = post(rerank, "/v1/rerank", {"model": model, "query": "q", "documents": ["a"]})
    assert code == 400 and PROVIDER_SECRET[provider]["api_key"] not in json.dumps(body)


# -- 3. JSON types are the schema's ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"dimensions": True}, "dimensions"),
        ({"dimensions": "256"}, "dimensions"),
        ({"dimensions": 256.0}, "dimensions"),
        ({"encoding_format": 1}, "encoding_format"),
        ({"input_type": True}, "input_type"),
        ({"user": 7}, "user"),
    ],
)
def test_embeddings_fields_take_their_own_json_type(
    embeddings: Any, upstream: FakeUpstream, change: dict[str, Any], param: str
) -> None:
    body = {"model": "openai/text-embedding-3-small", "input": "x", **change}
    status, _, out = post(embeddings, "/v1/embeddings", body)
    assert status == 400 and out["error"]["param"] == param, out
    assert not upstream.requests


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"top_n": "2"}, "top_n"),
        ({"top_n": True}, "top_n"),
        ({"return_documents": "yes"}, "return_documents"),
        ({"max_tokens_per_doc": "100"}, "max_tokens_per_doc"),
    ],
)
def test_rerank_fields_take_their_own_json_type(
    rerank: Any, upstream: FakeUpstream, change: dict[str, Any], param: str
) -> None:
    body = {"model": "cohere/rerank-v3.5", "query": "q", "documents": ["a", "b"], **change}
    status, _, out = post(rerank, "/v1/rerank", body)
    assert status == 400 and out["error"]["param"] == param, out
    assert not upstream.requests


# -- 4. a provider's verdict on the request is the caller's 400 -----------------------------------------------------


@pytest.mark.parametrize("provider_status", [400, 404, 422])
def test_a_provider_refusal_is_a_400_sent_once(
    embeddings: Any, upstream: FakeUpstream, settings: Any, provider_status: int
) -> None:
    import embeddings_handler

    embeddings_handler.app.state.services.gateway.policy = RetryPolicy(attempts=3)  # retries on: none may happen
    upstream.handler = lambda request: json_response({"error": {"message": "input too long"}}, provider_status)
    status, _, body = post(embeddings, "/v1/embeddings", {"model": "openai/text-embedding-3-small", "input": "x"})
    assert status == 400 and body["error"]["code"] == "provider_rejected_request"
    assert "input too long" in body["error"]["message"] and len(upstream.requests) == 1
    [record] = usage_records(settings)
    assert record["status"]["N"] == "400"


# -- 6. one credential per request -----------------------------------------------------------------------------------


def test_two_different_credentials_are_a_401(embeddings: Any, upstream: FakeUpstream) -> None:
    headers = {"x-api-key": DEV_KEY, "authorization": f"Bearer {FREE_KEY}"}
    status, _, body = post(
        embeddings, "/v1/embeddings", {"model": "openai/text-embedding-3-small", "input": "x"}, headers
    )
    assert status == 401 and body["error"]["code"] == "conflicting_credentials"
    assert not upstream.requests


def test_the_same_credential_in_both_headers_is_accepted(embeddings: Any, upstream: FakeUpstream) -> None:
    upstream.handler = openai_answer
    headers = {"x-api-key": DEV_KEY, "authorization": f"Bearer {DEV_KEY}"}
    status, _, _ = post(embeddings, "/v1/embeddings", {"model": "openai/text-embedding-3-small", "input": "x"}, headers)
    assert status == 200


@pytest.mark.parametrize(
    "headers",
    [{"x-api-key": f"{DEV_KEY},{FREE_KEY}"}, {"authorization": f"Bearer {DEV_KEY},Bearer {DEV_KEY}"}],
    ids=["x-api-key twice", "authorization twice"],
)
def test_a_credential_header_sent_twice_is_a_400(
    embeddings: Any, upstream: FakeUpstream, headers: dict[str, str]
) -> None:
    # API Gateway passes a repeated header as one comma-joined value
    status, _, body = post(
        embeddings, "/v1/embeddings", {"model": "openai/text-embedding-3-small", "input": "x"}, headers
    )
    assert status == 400 and body["error"]["code"] == "duplicate_credentials"
    assert not upstream.requests


# -- 7. refusals recorded under the model asked for ------------------------------------------------------------------


def test_a_rate_limited_request_is_recorded_under_its_model(
    embeddings: Any, upstream: FakeUpstream, settings: Any, services: Any
) -> None:
    import boto3

    from embedrank.domain.auth import hash_key

    upstream.handler = openai_answer
    services.stores.put_plan({"name": "one", "allowed_models": "all", "limits": {"requests_per_minute": 1}})
    boto3.client("dynamodb").update_item(
        TableName=settings.keys_table,
        Key={"key_hash": {"S": hash_key(DEV_KEY)}},
        UpdateExpression="SET #p = :p",
        ExpressionAttributeNames={"#p": "plan"},
        ExpressionAttributeValues={":p": {"S": "one"}},
    )
    body = {"model": "text-embedding-3-small", "input": "x"}
    assert post(embeddings, "/v1/embeddings", body)[0] == 200
    status, _, _ = post(embeddings, "/v1/embeddings", body)
    assert status == 429
    refused = [r for r in usage_records(settings) if r["status"]["N"] == "429"]
    assert [r["model"]["S"] for r in refused] == ["openai/text-embedding-3-small"]


# -- 9, 10, 11, 12, 13: clients unmodified ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bare", "provider"),
    [("text-embedding-3-small", "openai"), ("embed-english-v3.0", "cohere"), ("voyage-3.5", "voyage")],
)
def test_a_bare_model_name_resolves(
    embeddings: Any, upstream: FakeUpstream, settings: Any, bare: str, provider: str
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if "cohere" in str(request.url):
            return cohere_embed_answer(request)
        return openai_answer(request, dims=1024 if "voyage" in str(request.url) else 1536)

    upstream.handler = answer
    status, _, body = post(embeddings, "/v1/embeddings", {"model": bare, "input": "x", "input_type": "query"})
    assert status == 200, body
    assert body["model"] == bare and body["provider"] == provider  # the name asked for, as OpenAI echoes it
    [record] = usage_records(settings)
    assert record["model"]["S"].startswith(f"{provider}/")  # rollups under the catalog id


def test_a_bare_rerank_name_resolves(rerank: Any, upstream: FakeUpstream) -> None:
    upstream.handler = cohere_rerank
    status, _, body = post(rerank, "/v1/rerank", {"model": "rerank-v3.5", "query": "q", "documents": ["a", "b"]})
    assert status == 200 and body["provider"] == "cohere" and body["model"] == "rerank-v3.5"


@pytest.mark.parametrize(
    ("model_id", "canonical"),
    [
        ("openai/text-embedding-3-small", None),
        ("text-embedding-3-small", "openai/text-embedding-3-small"),
        ("route/cohere-embed-v3-english-3", None),
        ("selfhosted/Qwen/Qwen3-Embedding-8B", None),
    ],
)
def test_one_model_by_id(account: Any, model_id: str, canonical: str | None) -> None:
    status, headers, body = invoke(account, event("GET", f"/v1/models/{model_id}", headers=KEY), "AccountFunction")
    assert status == 200, body
    assert body["id"] == model_id and body["object"] == "model" and body.get("canonical") == canonical
    assert headers["x-request-id"] == "evt-built"


@pytest.mark.parametrize(("model_id", "key"), [("nope/none", DEV_KEY), ("openai/text-embedding-3-small", FREE_KEY)])
def test_an_unknown_or_unavailable_model_is_a_404_envelope(account: Any, model_id: str, key: str) -> None:
    status, headers, body = invoke(
        account, event("GET", f"/v1/models/{model_id}", headers={"x-api-key": key}), "AccountFunction"
    )
    assert status == 404 and body["error"]["code"] == "model_not_found" and headers["x-request-id"] == "evt-built"


def test_top_n_over_the_documents_returns_every_document(rerank: Any, upstream: FakeUpstream) -> None:
    # given LangChain's CohereRerank default, top_n=3, and two documents: Cohere's API returns every document
    upstream.handler = cohere_rerank
    body = {"model": "cohere/rerank-v3.5", "query": "q", "documents": ["a", "b"], "top_n": 3}
    status, _, out = post(rerank, "/v1/rerank", body)
    assert status == 200 and [r["index"] for r in out["results"]] == [0, 1]
    assert json.loads(upstream.requests[0].content)["top_n"] == 2  # sent within what the provider accepts


def test_a_trailing_slash_is_served_like_the_path(embeddings: Any, upstream: FakeUpstream) -> None:
    upstream.handler = openai_answer
    status, headers, body = post(
        embeddings, "/v1/embeddings/", {"model": "openai/text-embedding-3-small", "input": "x"}
    )
    assert status == 200 and len(body["data"]) == 1 and headers["x-request-id"] == "evt-built"


def test_an_unknown_path_is_a_404_envelope_never_a_redirect(embeddings: Any) -> None:
    status, headers, body = invoke(embeddings, event("POST", "/v1/nothing/", {}, KEY))
    assert status == 404 and body["error"]["code"] == "not_found" and headers["x-request-id"] == "evt-built"
