"""Gemini: batchEmbedContents, x-goog-api-key, taskType, outputDimensionality, estimated usage, normalization."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import FakeUpstream, usage_records, validate
from fakes import decode_b64, json_response, vector
from provider_fakes import gemini_answer, norm, post, seed

TEXTS = ["what is a vector", "A vector is an array.", "日本語のテキスト"]
URL = "https://generativelanguage.googleapis.com/v1beta/models/gemini-embedding-001:batchEmbedContents"


@pytest.mark.parametrize(
    ("input_type", "task"), [("query", "RETRIEVAL_QUERY"), ("document", "RETRIEVAL_DOCUMENT"), (None, None)]
)
@pytest.mark.parametrize("dimensions", [None, 768])
def test_request_and_float_response(
    client: Any, upstream: FakeUpstream, input_type: str | None, task: str | None, dimensions: int | None
) -> None:
    upstream.handler = gemini_answer
    body: dict[str, Any] = {"model": "google/gemini-embedding-001", "input": TEXTS, "input_type": input_type}
    if dimensions is not None:
        body["dimensions"] = dimensions
    r = post(client, body)
    assert r.status_code == 200, r.text
    [sent] = upstream.requests
    assert str(sent.url) == URL
    assert sent.headers["x-goog-api-key"] == "gemini-secret" and "authorization" not in sent.headers
    item: dict[str, Any] = {"model": "models/gemini-embedding-001"}
    if task is not None:
        item["taskType"] = task
    if dimensions is not None:
        item["outputDimensionality"] = dimensions
    assert upstream.json() == {"requests": [{**item, "content": {"parts": [{"text": t}]}} for t in TEXTS]}
    validate("gemini-batch-embed-request.json", upstream.json())
    out = r.json()
    assert out["model"] == "google/gemini-embedding-001" and out["provider"] == "google"
    got = [d["embedding"] for d in out["data"]]
    raw = [vector(seed(t), dimensions or 3072) for t in TEXTS]
    if dimensions is None:
        assert got == raw  # the full-width output is Google's own (pre-normalized upstream): untouched
    else:
        for g, v in zip(got, raw, strict=True):  # narrower outputs are re-normalized by the gateway
            assert norm(g) == pytest.approx(1.0, abs=1e-6)
            assert g == pytest.approx([x / norm(v) for x in v], abs=1e-6)
    # ceil(utf-8 bytes / 4) per text, marked estimated
    tokens = sum(-(-len(t.encode()) // 4) for t in TEXTS)
    assert out["usage"]["prompt_tokens"] == tokens and out["usage"]["estimated"] is True


def test_usage_record_is_marked_estimated(client: Any, upstream: FakeUpstream, settings: Any) -> None:
    upstream.handler = gemini_answer
    r = post(client, {"model": "google/gemini-embedding-001", "input": "hello world", "encoding_format": "base64"})
    assert r.status_code == 200, r.text
    assert decode_b64(r.json()["data"][0]["embedding"]) == vector(seed("hello world"), 3072)
    [record] = usage_records(settings)
    assert record["estimated"]["BOOL"] is True and record["tokens"]["N"] == "3"


def test_batches_split_at_100(client: Any, upstream: FakeUpstream) -> None:
    upstream.handler = gemini_answer
    texts = [f"t{i}" for i in range(250)]
    r = post(client, {"model": "google/gemini-embedding-001", "input": texts, "dimensions": 256})
    assert r.status_code == 200, r.text
    assert sorted(len(upstream.json(i)["requests"]) for i in range(3)) == [50, 100, 100]
    assert len(r.json()["data"]) == 250


def test_dimensions_outside_the_options_are_400(client: Any, upstream: FakeUpstream) -> None:
    r = post(client, {"model": "google/gemini-embedding-001", "input": "x", "dimensions": 64})
    assert r.status_code == 400 and "768" in r.json()["error"]["message"]
    assert not upstream.requests


def test_google_error_message_is_kept(client: Any, upstream: FakeUpstream) -> None:
    upstream.handler = lambda request: json_response(
        {"error": {"code": 429, "message": "Resource has been exhausted", "status": "RESOURCE_EXHAUSTED"}}, 429
    )
    r = post(client, {"model": "google/gemini-embedding-001", "input": "x"})
    assert r.status_code == 502 and r.json()["error"]["code"] == "provider_rate_limited"
    assert "exhausted" in r.json()["error"]["message"]
