"""The embeddings endpoint end to end: auth, plans, validation, provider mapping, response shape, usage, errors."""

from __future__ import annotations

import base64
import json
from array import array
from typing import Any

import httpx
import pytest

from conftest import (
    DEV_KEY,
    FREE_KEY,
    PREMIUM_KEY,
    FakeUpstream,
    auth,
    replace_provider_secret,
    usage_records,
    validate,
)
from fakes import cohere_embed_answer, decode_b64, json_response, openai_answer, vector


def post(
    client: Any, body: dict[str, Any], headers: dict[str, str] | None = None, path: str = "/v1/embeddings"
) -> httpx.Response:
    return client.post(path, json=body, headers=auth() if headers is None else headers)


# -- OpenAI ---------------------------------------------------------------------------------------------------------


def test_openai_float_request_and_response(client: Any, upstream: FakeUpstream, settings: Any) -> None:
    upstream.handler = openai_answer
    r = post(client, {"model": "openai/text-embedding-3-small", "input": ["hello", "world"], "input_type": "query"})
    assert r.status_code == 200, r.text
    sent = upstream.requests[0]
    assert str(sent.url) == "https://api.openai.com/v1/embeddings"
    assert sent.headers["authorization"] == "Bearer sk-openai-secret-123"
    body = upstream.json()
    # The caller's encoding is asked for, so the floats pass through as the provider's own text.
    assert body == {"model": "text-embedding-3-small", "input": ["hello", "world"], "encoding_format": "float"}
    validate("openai-embeddings-request.json", body)
    out = r.json()
    assert out["object"] == "list" and out["model"] == "openai/text-embedding-3-small" and out["provider"] == "openai"
    assert [d["index"] for d in out["data"]] == [0, 1]
    assert out["data"][1]["embedding"] == vector(1, 1536)  # reordered by index
    usage = {"prompt_tokens": 6, "total_tokens": 6, "cost": pytest.approx(6 * 0.02 / 1e6), "cached_inputs": 0}
    assert out["usage"] == usage
    assert r.headers["x-request-id"]
    [record] = usage_records(settings)
    assert record["key_id"]["S"] == "key_dev" and record["status"]["N"] == "200"
    assert record["tokens"]["N"] == "6" and record["provider"]["S"] == "openai" and record["input_count"]["N"] == "2"
    assert record["request_id"]["S"] == r.headers["x-request-id"]


def test_openai_base64_passes_through_untouched(client: Any, upstream: FakeUpstream) -> None:
    upstream.handler = openai_answer
    r = post(
        client,
        {"model": "openai/text-embedding-3-small", "input": "hi", "encoding_format": "base64", "dimensions": 256},
    )
    assert r.status_code == 200, r.text
    assert upstream.json()["dimensions"] == 256
    emb = r.json()["data"][0]["embedding"]
    assert isinstance(emb, str)
    assert array("f", base64.b64decode(emb)).tolist() == vector(0, 256)


def test_token_arrays_reach_openai_only(client: Any, upstream: FakeUpstream) -> None:
    upstream.handler = openai_answer
    r = post(client, {"model": "openai/text-embedding-3-small", "input": [[1, 2, 3], [4, 5]]})
    assert r.status_code == 200, r.text
    assert upstream.json()["input"] == [[1, 2, 3], [4, 5]]
    r = post(client, {"model": "cohere/embed-english-v3.0", "input": [[1, 2, 3]]})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["param"] == "input" and "check_embedding_ctx_length=False" in err["message"]
    # A self-hosted server speaks OpenAI's wire format, but OpenAI's token ids mean nothing to its model.
    r = post(client, {"model": "selfhosted/Qwen/Qwen3-Embedding-8B", "input": [[1, 2, 3]]})
    assert r.status_code == 400 and "selfhosted" in r.json()["error"]["message"]
    assert len(upstream.requests) == 1  # only the OpenAI call went out
    # A token id past 32 bits is the caller's mistake (found by schemathesis: it became a 502 when the provider
    # request could not be serialized).
    for body in ([2**31], [[1], [2**64]]):
        r = post(client, {"model": "openai/text-embedding-3-small", "input": body})
        assert r.status_code == 400 and "from 0 to 2147483647" in r.json()["error"]["message"], r.text
    assert len(upstream.requests) == 1


def test_bearer_header_and_api_prefix(client: Any, upstream: FakeUpstream) -> None:
    upstream.handler = openai_answer
    r = post(
        client,
        {"model": "openai/text-embedding-3-small", "input": "x"},
        headers={"Authorization": f"Bearer {DEV_KEY}"},
        path="/api/v1/embeddings",
    )
    assert r.status_code == 200, r.text


# -- Cohere ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("input_type", "native"), [("query", "search_query"), ("document", "search_document"), (None, "search_document")]
)
def test_cohere_input_type_mapping(client: Any, upstream: FakeUpstream, input_type: str | None, native: str) -> None:
    upstream.handler = cohere_embed_answer
    r = post(client, {"model": "cohere/embed-english-v3.0", "input": ["a", "b", "c"], "input_type": input_type})
    assert r.status_code == 200, r.text
    sent = upstream.requests[0]
    assert str(sent.url) == "https://api.cohere.com/v2/embed"
    assert sent.headers["authorization"] == "Bearer co-secret-456"
    body = upstream.json()
    assert body == {
        "model": "embed-english-v3.0",
        "texts": ["a", "b", "c"],
        "input_type": native,
        "embedding_types": ["float"],
    }
    validate("cohere-embed-request.json", body)
    out = r.json()
    assert out["provider"] == "cohere" and out["usage"]["prompt_tokens"] == 6
    assert out["data"][2]["embedding"] == vector(2, 1024)


def test_cohere_base64_encoded_by_gateway_and_dimensions(client: Any, upstream: FakeUpstream) -> None:
    upstream.handler = cohere_embed_answer
    r = post(client, {"model": "cohere/embed-v4.0", "input": ["a"], "dimensions": 512, "encoding_format": "base64"})
    assert r.status_code == 200, r.text
    assert upstream.json()["output_dimension"] == 512
    assert decode_b64(r.json()["data"][0]["embedding"]) == vector(0, 512)


def test_cohere_batches_split_at_96(client: Any, upstream: FakeUpstream) -> None:
    upstream.handler = cohere_embed_answer
    texts = [f"t{i}" for i in range(200)]
    r = post(client, {"model": "cohere/embed-english-v3.0", "input": texts, "encoding_format": "base64"})
    assert r.status_code == 200, r.text
    assert sorted(len(json.loads(q.content)["texts"]) for q in upstream.requests) == [8, 96, 96]
    data = r.json()["data"]
    assert [d["index"] for d in data] == list(range(200))
    assert r.json()["usage"]["prompt_tokens"] == 400


# -- dimensions -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "dims", "hint"),
    [
        ("cohere/embed-english-v3.0", 512, "only 1024"),
        ("cohere/embed-v4.0", 300, "256, 512, 1024, 1536"),
        ("openai/text-embedding-3-small", 4096, "1 to 1536"),
        ("openai/text-embedding-ada-002", 512, "only 1536"),
    ],
)
def test_unsupported_dimensions_are_400_naming_values(client: Any, model: str, dims: int, hint: str) -> None:
    r = post(client, {"model": model, "input": "x", "dimensions": dims})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["param"] == "dimensions" and hint in err["message"]


# -- validation -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x"}, "model"),
        ({"model": "openai/text-embedding-3-small"}, "input"),
        ({"model": "openai/text-embedding-3-small", "input": ""}, "input"),
        ({"model": "openai/text-embedding-3-small", "input": []}, "input"),
        ({"model": "openai/text-embedding-3-small", "input": ["ok", ""]}, "input"),
        ({"model": "openai/text-embedding-3-small", "input": ["x"] * 2049}, "input"),
        ({"model": "openai/text-embedding-3-small", "input": [1, "a"]}, "input"),
        ({"model": "openai/text-embedding-3-small", "input": "x", "input_type": "passage"}, "input_type"),
        ({"model": "openai/text-embedding-3-small", "input": "x", "dimensions": 0}, "dimensions"),
        ({"model": "openai/text-embedding-3-small", "input": "x", "encoding_format": "int8"}, "encoding_format"),
        ({"model": "openai/text-embedding-3-small", "input": "x", "temperature": 1}, "temperature"),
    ],
)
def test_bad_bodies_are_400(client: Any, upstream: FakeUpstream, body: dict[str, Any], param: str) -> None:
    r = post(client, body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["param"] == param and err["message"]
    assert not upstream.requests


@pytest.mark.parametrize("raw", [b"", b"{not json", b"[1,2]", b'"text"'])
def test_malformed_json_is_400(client: Any, raw: bytes) -> None:
    r = client.post("/v1/embeddings", content=raw, headers={**auth(), "content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"


def test_user_field_is_accepted_and_not_forwarded(client: Any, upstream: FakeUpstream) -> None:
    upstream.handler = openai_answer
    r = post(client, {"model": "openai/text-embedding-3-small", "input": "x", "user": "u-1"})
    assert r.status_code == 200 and "user" not in upstream.json()


# -- auth and plans -------------------------------------------------------------------------------------------------


def test_missing_and_unknown_keys_are_401(client: Any, settings: Any) -> None:
    r = post(client, {"model": "openai/text-embedding-3-small", "input": "x"}, headers={})
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"
    r = post(client, {"model": "openai/text-embedding-3-small", "input": "x"}, headers=auth("er-wrong"))
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    assert usage_records(settings) == []  # nothing reached authentication


def test_revoked_key_is_401(client: Any, services: Any) -> None:
    import boto3

    from embedrank.domain.auth import hash_key

    boto3.client("dynamodb").update_item(
        TableName=services.settings.keys_table,
        Key={"key_hash": {"S": hash_key(PREMIUM_KEY)}},
        UpdateExpression="SET #s = :r",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":r": {"S": "revoked"}},
    )
    r = post(client, {"model": "openai/text-embedding-3-small", "input": "x"}, headers=auth(PREMIUM_KEY))
    assert r.status_code == 401 and r.json()["error"]["code"] == "revoked_api_key"


def test_plan_gates_models(client: Any, upstream: FakeUpstream, settings: Any) -> None:
    r = post(client, {"model": "openai/text-embedding-3-small", "input": "x"}, headers=auth(FREE_KEY))
    assert r.status_code == 403
    assert "'free'" in r.json()["error"]["message"]
    r = post(client, {"model": "mistral/mistral-embed", "input": "x"}, headers=auth(PREMIUM_KEY))
    assert r.status_code == 403 and "'premium'" in r.json()["error"]["message"]
    assert not upstream.requests
    records = usage_records(settings)
    assert len(records) == 2 and {r["status"]["N"] for r in records} == {"403"}


def test_unknown_model_is_404(client: Any) -> None:
    r = post(client, {"model": "nope/model", "input": "x"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"


def test_rerank_model_on_embeddings_is_400(client: Any) -> None:
    r = post(client, {"model": "cohere/rerank-v3.5", "input": "x"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "wrong_model_kind"


# -- provider failures ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "code", "ours", "kind"),
    [
        (
            400,
            {"error": {"message": "bad input", "type": "invalid_request_error"}},
            "provider_rejected_request",
            400,
            "invalid_request_error",
        ),
        (
            401,
            {"error": {"message": "Incorrect API key provided: sk-openai-secret-123"}},
            "provider_auth_failed",
            502,
            "provider_error",
        ),
        (500, {"error": {"message": "boom"}}, "provider_unavailable", 502, "provider_error"),
    ],
)
def test_provider_errors_keep_their_kind_without_the_secret(
    client: Any, upstream: FakeUpstream, status: int, body: dict[str, Any], code: str, ours: int, kind: str
) -> None:
    upstream.handler = lambda request: json_response(body, status)
    r = post(client, {"model": "openai/text-embedding-3-small", "input": "x"})
    assert r.status_code == ours
    err = r.json()["error"]
    assert err["code"] == code and err["type"] == kind
    assert "sk-openai-secret-123" not in r.text


def test_a_provider_refusal_is_a_400_that_keeps_its_message_and_is_not_retried(
    client: Any, upstream: FakeUpstream
) -> None:
    # given a provider that refuses the request itself
    upstream.handler = lambda request: json_response({"message": "invalid texts"}, 422)
    # when it is sent, then the caller gets a 400 with the provider's words, after one provider call
    r = post(client, {"model": "cohere/embed-english-v3.0", "input": "x"})
    assert r.status_code == 400 and "invalid texts" in r.json()["error"]["message"]
    assert r.json()["error"]["code"] == "provider_rejected_request" and len(upstream.requests) == 1


def test_timeout_is_504(client: Any, upstream: FakeUpstream) -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    upstream.handler = slow
    r = post(client, {"model": "openai/text-embedding-3-small", "input": "x"})
    assert r.status_code == 504 and r.json()["error"]["code"] == "provider_timeout"


@pytest.mark.parametrize(
    "answer",
    [
        lambda req: httpx.Response(200, content=b"<html>oops</html>"),
        lambda req: json_response({"data": []}),
        lambda req: json_response({"unexpected": True}),
        lambda req: openai_answer(req, dims=10),
    ],
)
def test_malformed_provider_answers_are_502(client: Any, upstream: FakeUpstream, answer: Any) -> None:
    upstream.handler = answer
    r = post(client, {"model": "openai/text-embedding-3-small", "input": "x"})
    assert r.status_code == 502, r.text
    assert r.json()["error"]["type"] == "provider_error"


def test_unconfigured_provider_is_503(client: Any, services: Any) -> None:
    replace_provider_secret(services, {})
    r = post(client, {"model": "openai/text-embedding-3-small", "input": "x"})
    assert r.status_code == 503 and r.json()["error"]["code"] == "provider_not_configured"


def test_unknown_route_and_method(client: Any) -> None:
    assert client.get("/v1/nothing").status_code == 404
    r = client.get("/v1/embeddings")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
