"""Jina: input_type -> task, native dimensions, floats encoded to base64 by the gateway."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import FakeUpstream, validate
from fakes import decode_b64, vector
from provider_fakes import jina_answer, post, seed

TEXTS = ["a query", "ein Dokument", "третий"]


@pytest.mark.parametrize(
    ("input_type", "task"), [("query", "retrieval.query"), ("document", "retrieval.passage"), (None, None)]
)
@pytest.mark.parametrize("dimensions", [None, 256])
def test_request_and_float_response(
    client: Any, upstream: FakeUpstream, input_type: str | None, task: str | None, dimensions: int | None
) -> None:
    upstream.handler = jina_answer
    body: dict[str, Any] = {"model": "jina/jina-embeddings-v3", "input": TEXTS, "input_type": input_type}
    if dimensions is not None:
        body["dimensions"] = dimensions
    r = post(client, body)
    assert r.status_code == 200, r.text
    [sent] = upstream.requests
    assert str(sent.url) == "https://api.jina.ai/v1/embeddings"
    assert sent.headers["authorization"] == "Bearer jina-secret"
    expected: dict[str, Any] = {"model": "jina-embeddings-v3", "input": TEXTS, "embedding_type": "float"}
    if task is not None:
        expected["task"] = task
    if dimensions is not None:
        expected["dimensions"] = dimensions
    assert upstream.json() == expected
    validate("jina-embeddings-request.json", upstream.json())
    out = r.json()
    assert out["model"] == "jina/jina-embeddings-v3" and out["provider"] == "jina"
    assert [d["embedding"] for d in out["data"]] == [vector(seed(t), dimensions or 1024) for t in TEXTS]
    assert out["usage"]["prompt_tokens"] == 12


def test_base64_encoded_by_gateway(client: Any, upstream: FakeUpstream) -> None:
    upstream.handler = lambda request: jina_answer(request, dims=2048)
    r = post(client, {"model": "jina/jina-embeddings-v4", "input": TEXTS, "encoding_format": "base64"})
    assert r.status_code == 200, r.text
    assert upstream.json()["embedding_type"] == "float"
    assert [decode_b64(d["embedding"]) for d in r.json()["data"]] == [vector(seed(t), 2048) for t in TEXTS]


def test_v4_batches_split_at_512(client: Any, upstream: FakeUpstream) -> None:
    upstream.handler = lambda request: jina_answer(request, dims=2048)
    # 560, not more: 2048-wide base64 vectors fill a Lambda response at 566 (see sizes.py).
    texts = [f"text {i}" for i in range(560)]
    r = post(client, {"model": "jina/jina-embeddings-v4", "input": texts, "encoding_format": "base64"})
    assert r.status_code == 200, r.text
    assert sorted(len(upstream.json(i)["input"]) for i in range(len(upstream.requests))) == [48, 512]
    assert decode_b64(r.json()["data"][559]["embedding"]) == vector(seed("text 559"), 2048)
