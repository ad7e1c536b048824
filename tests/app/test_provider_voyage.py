"""Voyage: exact upstream requests for every input_type, with and without dimensions; normalized answers."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import FakeUpstream, validate
from fakes import decode_b64, json_response, vector
from provider_fakes import post, seed, voyage_answer

TEXTS = ["first text", "second", "the third one"]


@pytest.mark.parametrize("input_type", ["query", "document", None])
@pytest.mark.parametrize("dimensions", [None, 512, 2048])
def test_request_and_float_response(
    client: Any, upstream: FakeUpstream, input_type: str | None, dimensions: int | None
) -> None:
    upstream.handler = voyage_answer
    body: dict[str, Any] = {"model": "voyage/voyage-3.5", "input": TEXTS, "input_type": input_type}
    if dimensions is not None:
        body["dimensions"] = dimensions
    r = post(client, body)
    assert r.status_code == 200, r.text
    [sent] = upstream.requests
    assert str(sent.url) == "https://api.voyageai.com/v1/embeddings"
    assert sent.headers["authorization"] == "Bearer pa-voyage-secret"
    expected: dict[str, Any] = {"model": "voyage-3.5", "input": TEXTS, "encoding_format": "base64"}
    if input_type is not None:
        expected["input_type"] = input_type
    if dimensions is not None:
        expected["output_dimension"] = dimensions
    assert upstream.json() == expected
    validate("voyage-embeddings-request.json", upstream.json())
    out = r.json()
    assert out["model"] == "voyage/voyage-3.5" and out["provider"] == "voyage"
    # Voyage answered in reverse order with base64; the caller gets input order, as floats.
    assert [d["embedding"] for d in out["data"]] == [vector(seed(t), dimensions or 1024) for t in TEXTS]
    usage = {"prompt_tokens": 15, "total_tokens": 15, "cost": pytest.approx(15 * 0.06 / 1e6), "cached_inputs": 0}
    assert out["usage"] == usage


def test_base64_passes_through(client: Any, upstream: FakeUpstream) -> None:
    upstream.handler = voyage_answer
    r = post(client, {"model": "voyage/voyage-3-large", "input": TEXTS, "encoding_format": "base64", "dimensions": 256})
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert all(isinstance(d["embedding"], str) for d in data)
    assert [decode_b64(d["embedding"]) for d in data] == [vector(seed(t), 256) for t in TEXTS]


def test_float_answer_from_upstream_still_encodes(client: Any, upstream: FakeUpstream) -> None:
    """A server (or proxy) that ignores encoding_format and answers floats still yields correct base64."""
    upstream.handler = lambda request: json_response(
        {"data": [{"index": 0, "embedding": vector(1, 1024)}], "usage": {"total_tokens": 2}}
    )
    r = post(client, {"model": "voyage/voyage-3.5-lite", "input": "x", "encoding_format": "base64"})
    assert r.status_code == 200, r.text
    assert decode_b64(r.json()["data"][0]["embedding"]) == vector(1, 1024)


def test_unsupported_dimensions_name_the_values(client: Any, upstream: FakeUpstream) -> None:
    r = post(client, {"model": "voyage/voyage-3.5", "input": "x", "dimensions": 300})
    assert r.status_code == 400 and "256, 512, 1024" in r.json()["error"]["message"]
    assert not upstream.requests


def test_voyage_error_detail_is_kept(client: Any, upstream: FakeUpstream) -> None:
    upstream.handler = lambda request: json_response({"detail": "Request to model 'voyage-3.5' failed."}, 400)
    r = post(client, {"model": "voyage/voyage-3.5", "input": "x"})
    assert r.status_code == 400 and "failed" in r.json()["error"]["message"]
    assert r.json()["error"]["code"] == "provider_rejected_request"
