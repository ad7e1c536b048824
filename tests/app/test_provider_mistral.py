"""Mistral: symmetric (input_type dropped), output_dimension on codestral only, 16,384-token batches."""

from __future__ import annotations

import json
from typing import Any

import pytest

from conftest import FakeUpstream, validate
from fakes import decode_b64, vector
from provider_fakes import mistral_answer, post, seed

TEXTS = ["def f(x):", "return x + 1", "print(f(2))"]


@pytest.mark.parametrize("input_type", ["query", "document", None])
@pytest.mark.parametrize("dimensions", [None, 512])
def test_codestral_request_and_float_response(
    client: Any, upstream: FakeUpstream, input_type: str | None, dimensions: int | None
) -> None:
    upstream.handler = lambda request: mistral_answer(request, dims=1536)
    body: dict[str, Any] = {"model": "mistral/codestral-embed", "input": TEXTS, "input_type": input_type}
    if dimensions is not None:
        body["dimensions"] = dimensions
    r = post(client, body)
    assert r.status_code == 200, r.text
    [sent] = upstream.requests
    assert str(sent.url) == "https://api.mistral.ai/v1/embeddings"
    assert sent.headers["authorization"] == "Bearer mistral-secret"
    expected: dict[str, Any] = {"model": "codestral-embed", "input": TEXTS}
    if dimensions is not None:
        expected["output_dimension"] = dimensions
    assert upstream.json() == expected  # input_type never reaches Mistral: its schema forbids extra fields
    validate("mistral-embeddings-request.json", upstream.json())
    out = r.json()
    assert out["model"] == "mistral/codestral-embed" and out["provider"] == "mistral"
    assert [d["embedding"] for d in out["data"]] == [vector(seed(t), dimensions or 1536) for t in TEXTS]
    assert out["usage"]["prompt_tokens"] == 9


def test_mistral_embed_base64_and_fixed_dimensions(client: Any, upstream: FakeUpstream) -> None:
    upstream.handler = mistral_answer
    r = post(client, {"model": "mistral/mistral-embed", "input": TEXTS, "encoding_format": "base64"})
    assert r.status_code == 200, r.text
    assert upstream.json() == {"model": "mistral-embed", "input": TEXTS}
    assert [decode_b64(d["embedding"]) for d in r.json()["data"]] == [vector(seed(t), 1024) for t in TEXTS]
    r = post(client, {"model": "mistral/mistral-embed", "input": "x", "dimensions": 512})
    assert r.status_code == 400 and "only 1024" in r.json()["error"]["message"]


def test_batches_stay_under_the_token_cap(client: Any, upstream: FakeUpstream) -> None:
    """200 inputs of ~2,000 bytes each fit Mistral's 256-input cap but not its 16,384-token request cap."""
    upstream.handler = mistral_answer
    texts = [f"{i} " + "word " * 400 for i in range(200)]
    r = post(client, {"model": "mistral/mistral-embed", "input": texts})
    assert r.status_code == 200, r.text
    batches = [json.loads(q.content)["input"] for q in upstream.requests]
    assert len(batches) > 1 and sum(len(b) for b in batches) == 200
    for batch in batches:  # even at a generous 3 bytes per token, every request is under the cap
        assert sum(len(t.encode()) for t in batch) / 3 <= 16384
    assert [d["embedding"] for d in r.json()["data"]][150] == vector(seed(texts[150]), 1024)
