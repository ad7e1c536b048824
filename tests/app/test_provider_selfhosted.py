"""Self-hosted OpenAI-compatible servers: route/qwen3-embedding-8b, prompt asymmetry, Matryoshka truncation."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import PROVIDER_SECRET, FakeUpstream, replace_provider_secret, validate
from fakes import decode_b64, vector
from provider_fakes import norm, post, seed, selfhosted_answer

QWEN_QUERY = "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery:"
TEXTS = ["how do vectors work", "Vectors are arrays of numbers."]


def set_secret(services: Any, entry: dict[str, str]) -> None:
    replace_provider_secret(services, {**PROVIDER_SECRET, "selfhosted": entry})


@pytest.mark.parametrize(("input_type", "prefix"), [("query", QWEN_QUERY), ("document", ""), (None, "")])
@pytest.mark.parametrize("dimensions", [None, 256])
def test_qwen_route_request_and_response(
    client: Any, upstream: FakeUpstream, input_type: str | None, prefix: str, dimensions: int | None
) -> None:
    upstream.handler = selfhosted_answer
    body: dict[str, Any] = {"model": "route/qwen3-embedding-8b", "input": TEXTS, "input_type": input_type}
    if dimensions is not None:
        body["dimensions"] = dimensions
    r = post(client, body)
    assert r.status_code == 200, r.text
    [sent] = upstream.requests
    assert str(sent.url) == "http://qwen.internal:8080/v1/embeddings"
    assert sent.headers["authorization"] == "Bearer selfhosted-secret"
    sent_texts = [prefix + t for t in TEXTS]  # "...\nQuery:how do ..." with no space, as the model card says
    # No dimensions upstream: the gateway truncates, which works on any OpenAI-compatible server.
    assert upstream.json() == {"model": "Qwen/Qwen3-Embedding-8B", "input": sent_texts, "encoding_format": "float"}
    validate("openai-embeddings-request.json", upstream.json())
    out = r.json()
    assert out["model"] == "route/qwen3-embedding-8b" and out["provider"] == "selfhosted"
    got = [d["embedding"] for d in out["data"]]
    if dimensions is None:
        assert got == [vector(seed(t), 4096) for t in sent_texts]
    else:
        for g, t in zip(got, sent_texts, strict=True):
            head = vector(seed(t), 4096)[:dimensions]
            assert len(g) == dimensions and norm(g) == pytest.approx(1.0, abs=1e-6)
            assert g == pytest.approx([x / norm(head) for x in head], abs=1e-6)
    assert out["usage"]["prompt_tokens"] == 14 and out["usage"]["cost"] == 0


def test_truncated_base64(client: Any, upstream: FakeUpstream) -> None:
    upstream.handler = selfhosted_answer
    r = post(
        client,
        {"model": "selfhosted/Qwen/Qwen3-Embedding-8B", "input": "x", "dimensions": 1024, "encoding_format": "base64"},
    )
    assert r.status_code == 200, r.text
    values = decode_b64(r.json()["data"][0]["embedding"])
    head = vector(seed("x"), 4096)[:1024]
    assert values == pytest.approx([x / norm(head) for x in head], abs=1e-6)
    r = post(client, {"model": "route/qwen3-embedding-8b", "input": "x", "dimensions": 8192})
    assert r.status_code == 400 and "1 to 4096" in r.json()["error"]["message"]


def test_empty_key_sends_no_authorization(client: Any, services: Any, upstream: FakeUpstream) -> None:
    set_secret(services, {"base_url": "http://tei.internal:3000/v1/", "api_key": ""})
    upstream.handler = selfhosted_answer
    r = post(client, {"model": "route/qwen3-embedding-8b", "input": "x"})
    assert r.status_code == 200, r.text
    assert str(upstream.requests[0].url) == "http://tei.internal:3000/v1/embeddings"
    assert "authorization" not in upstream.requests[0].headers


def test_missing_base_url_is_503(client: Any, services: Any, upstream: FakeUpstream) -> None:
    set_secret(services, {"api_key": "k"})
    r = post(client, {"model": "route/qwen3-embedding-8b", "input": "x"})
    assert r.status_code == 503 and r.json()["error"]["code"] == "provider_not_configured"
    assert not upstream.requests
