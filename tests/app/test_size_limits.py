"""Size limits: gzip for large answers, 413 before the provider call for answers that cannot fit a Lambda response,
and 413 for request bodies over Lambda's 6 MB; through the ASGI app and through the Lambda handler."""

from __future__ import annotations

import base64
import gzip
import json
import math
import random
import re
from array import array
from typing import Any

import httpx
import pytest

from conftest import FakeUpstream, auth, usage_records
from embedrank.api.sizes import (
    BUFFERED,
    GZIP_LIMIT,
    LAMBDA_PAYLOAD_LIMIT,
    MAX_REQUEST_BYTES,
    RESPONSE_LIMIT,
    accepts_gzip,
    check_rerank_answer,
    envelope_size,
    fit_body,
)
from embedrank.config import Settings
from embedrank.errors import PayloadTooLarge
from fakes import json_response
from lambda_harness import LambdaContext, load_event, wired

MODEL = "openai/text-embedding-3-small"  # 1536 dimensions


@pytest.fixture
def settings() -> Settings:
    """The buffered deployment's limits (the streaming one's are in tests/app/test_streaming.py)."""
    return Settings.from_env({"RESPONSE_MODE": "buffered"})


def realistic_vector(text: str, dims: int) -> array[float]:
    """A unit-normalised float32 vector with random mantissas, like real embeddings (they compress as badly),
    seeded by its text so the same request gets the same answer."""
    rng = random.Random(text)
    values = [rng.gauss(0, 1) for _ in range(dims)]
    norm = math.sqrt(sum(v * v for v in values))
    return array("f", [v / norm for v in values])


def realistic_openai(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    dims = body.get("dimensions", 1536)
    data = [
        {"object": "embedding", "index": i, "embedding": base64.b64encode(realistic_vector(t, dims).tobytes()).decode()}
        for i, t in enumerate(body["input"])
    ]
    return json_response({"object": "list", "data": data, "model": body["model"], "usage": {"total_tokens": 1}})


def embed(client: Any, n: int, encoding: str = "float", gzip_ok: bool = True, **extra: Any) -> httpx.Response:
    headers = {**auth(), "Accept-Encoding": "gzip" if gzip_ok else "identity"}
    body = {"model": MODEL, "input": [f"text {i}" for i in range(n)], "encoding_format": encoding, **extra}
    response: httpx.Response = client.post("/v1/embeddings", json=body, headers=headers)
    return response


def wire_size(r: httpx.Response) -> int:
    """What the answer takes in the Lambda response: its gzip base64-encoded, or its JSON escaped as a string."""
    if r.headers.get("content-encoding") == "gzip":
        return 4 * math.ceil(r.num_bytes_downloaded / 3)
    return envelope_size(r.content)


def test_a_large_answer_is_gzipped_and_decodes_to_the_same_json(client: Any, upstream: FakeUpstream) -> None:
    upstream.handler = realistic_openai
    plain = embed(client, 64, gzip_ok=False)
    packed = embed(client, 64)
    assert plain.status_code == packed.status_code == 200
    assert len(plain.content) > 1_048_576  # over GZIP_MIN_BYTES
    assert "content-encoding" not in plain.headers
    assert packed.headers["content-encoding"] == "gzip" and packed.headers["vary"] == "Accept-Encoding"
    assert packed.num_bytes_downloaded < 0.55 * len(plain.content)  # float JSON: ~0.47
    assert packed.content == plain.content  # httpx undid the gzip: the very same bytes
    assert len(packed.json()["data"]) == 64 and len(packed.json()["data"][0]["embedding"]) == 1536


def test_a_small_answer_is_not_compressed(client: Any, upstream: FakeUpstream) -> None:
    upstream.handler = realistic_openai
    r = embed(client, 4)
    assert r.status_code == 200 and "content-encoding" not in r.headers
    assert r.num_bytes_downloaded == len(r.content)


def test_gzip_min_bytes_is_configurable(aws: None, upstream: FakeUpstream) -> None:
    from starlette.testclient import TestClient

    from embedrank.api.app import Services, create_app
    from embedrank.providers import Registry

    upstream.handler = realistic_openai
    services = Services.build(
        Settings.from_env({"GZIP_MIN_BYTES": "1000", "RESPONSE_MODE": "buffered"}),
        registry=Registry(httpx.MockTransport(upstream)),
    )
    with TestClient(create_app(services=services)) as client:
        assert embed(client, 2).headers["content-encoding"] == "gzip"
        assert "content-encoding" not in embed(client, 2, gzip_ok=False).headers


@pytest.mark.parametrize(
    ("encoding", "gzip_ok"), [("float", False), ("float", True), ("base64", False), ("base64", True)]
)
def test_an_answer_that_cannot_fit_is_a_413_before_any_upstream_call(
    client: Any, upstream: FakeUpstream, settings: Settings, encoding: str, gzip_ok: bool
) -> None:
    upstream.handler = realistic_openai
    r = embed(client, 2048, encoding, gzip_ok)
    assert r.status_code == 413, r.text
    error = r.json()["error"]
    assert error["code"] == "response_too_large" and error["param"] == "input"
    assert upstream.requests == []
    message = error["message"]
    assert "2048 vectors of 1536 dimensions" in message and "fewer dimensions" in message
    assert ("encoding_format 'base64'" in message) == (encoding == "float")
    assert ("Accept-Encoding: gzip" in message) == (encoding == "float" and not gzip_ok)
    [record] = usage_records(settings)
    assert record["status"]["N"] == "413"


@pytest.mark.parametrize(("encoding", "gzip_ok"), [("float", False), ("float", True), ("base64", True)])
def test_the_advised_count_fits_a_lambda_response_and_one_more_does_not(
    client: Any, upstream: FakeUpstream, encoding: str, gzip_ok: bool
) -> None:
    upstream.handler = realistic_openai
    refused = embed(client, 2048, encoding, gzip_ok)
    advice = re.search(r"send at most (\d+) inputs", refused.json()["error"]["message"])
    assert advice is not None
    fits = int(advice.group(1))
    r = embed(client, fits, encoding, gzip_ok)
    assert r.status_code == 200, r.text
    assert len(r.json()["data"]) == fits
    # The estimate is conservative: the real answer fits what Lambda can return, with room to spare.
    assert wire_size(r) <= RESPONSE_LIMIT
    assert (r.headers.get("content-encoding") == "gzip") == (gzip_ok and encoding == "float")
    assert embed(client, fits + 1, encoding, gzip_ok).status_code == 413
    assert len(upstream.requests) == 1


def test_a_request_body_over_6_mb_is_a_413_before_parsing(client: Any, upstream: FakeUpstream) -> None:
    big = json.dumps({"model": MODEL, "input": ["x" * 1_000_000] * 7}).encode()
    assert len(big) > MAX_REQUEST_BYTES
    headers = {**auth(), "content-type": "application/json"}
    r = client.post("/v1/embeddings", content=big, headers=headers)
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    assert f"declares {len(big)} bytes" in r.json()["error"]["message"]

    # No content-length (chunked upload): refused once the bytes read pass the limit.
    def chunks() -> Any:
        for i in range(0, len(big), 1 << 20):
            yield big[i : i + (1 << 20)]

    r = client.post("/v1/embeddings", content=chunks(), headers=headers)
    assert r.status_code == 413 and "is at least" in r.json()["error"]["message"]
    assert upstream.requests == []
    # Just under the limit is parsed as usual (and refused for what it says, not its size).
    small = json.dumps({"model": MODEL, "input": ["x" * 1_000_000] * 6, "dimensions": 0}).encode()
    assert client.post("/v1/embeddings", content=small, headers=headers).status_code == 400


def test_rerank_return_documents_that_cannot_fit_is_a_413_before_any_upstream_call(
    client: Any, upstream: FakeUpstream
) -> None:
    # Quotes are escaped twice on the way out (the answer's JSON, then Lambda's): 3 MB of them cannot come back.
    documents = ['say "' + "a" * 3200 + '"'] * 1000
    body = {"model": "cohere/rerank-v3.5", "query": "q", "documents": documents, "return_documents": True}
    r = client.post("/v1/rerank", json=body, headers=auth())
    assert r.status_code == 413, r.text
    assert (
        r.json()["error"]["param"] == "return_documents" and "return_documents to false" in r.json()["error"]["message"]
    )
    assert upstream.requests == []
    check_rerank_answer(documents, 500, BUFFERED)  # half of them fit


def test_fit_body() -> None:
    small = b'{"a": 1}'
    assert fit_body(small, "gzip", 0) is not None  # GZIP_MIN_BYTES=0: everything is compressed
    assert fit_body(small, "gzip", 1_048_576) is None
    quotes = b'"' * (RESPONSE_LIMIT // 2 + 10)  # fits as bytes, not once escaped
    with pytest.raises(PayloadTooLarge):
        fit_body(quotes, None, 1_048_576)
    packed = fit_body(quotes, "br, gzip", 1 << 30)  # compressed because nothing else fits, whatever the threshold
    assert packed is not None and gzip.decompress(packed) == quotes
    noise = random.Random(1).randbytes(GZIP_LIMIT + 1000)
    with pytest.raises(PayloadTooLarge, match="even gzipped"):
        fit_body(base64.b64encode(noise), "gzip", 1_048_576)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, False),
        ("", False),
        ("gzip", True),
        ("gzip, deflate, br", True),
        ("br;q=1.0, GZIP;q=0.5", True),
        ("gzip;q=0", False),
        ("x-gzip", True),
        ("*", True),
        ("*;q=0", False),
        ("gzip;q=0, *", False),
        ("identity", False),
        ("gzip;q=oops", False),
    ],
)
def test_accepts_gzip(header: str | None, expected: bool) -> None:
    assert accepts_gzip(header) is expected


# -- the Lambda handler: the gzip answer travels base64-encoded ------------------------------------------------------


@pytest.fixture
def handler(aws: None, upstream: FakeUpstream) -> Any:
    import embeddings_handler

    return wired(embeddings_handler, upstream)


def lambda_event(n: int, accept_encoding: str) -> dict[str, Any]:
    event = load_event("embeddings_success.json")
    body = json.dumps({"model": MODEL, "input": [f"text {i}" for i in range(n)]}).encode()
    event["body"] = base64.b64encode(body).decode()
    event["headers"].update({"content-length": str(len(body)), "accept-encoding": accept_encoding})
    return event


def test_lambda_handler_returns_a_large_answer_gzipped_and_base64_encoded(handler: Any, upstream: FakeUpstream) -> None:
    upstream.handler = realistic_openai
    result = handler(lambda_event(200, "gzip, deflate, br"), LambdaContext())
    assert result["statusCode"] == 200
    assert result["isBase64Encoded"] is True
    assert result["headers"]["content-encoding"] == "gzip"
    answer = json.loads(gzip.decompress(base64.b64decode(result["body"])))
    assert len(answer["data"]) == 200 and answer["data"][199]["index"] == 199
    assert list(array("f", answer["data"][7]["embedding"])) == list(realistic_vector("text 7", 1536))
    # 200 float vectors are ~6.5 MB of JSON: only the gzip fits under Lambda's response limit.
    assert len(json.dumps(result)) < LAMBDA_PAYLOAD_LIMIT


def test_lambda_handler_leaves_a_small_answer_alone(handler: Any, upstream: FakeUpstream) -> None:
    upstream.handler = realistic_openai
    result = handler(lambda_event(2, "gzip"), LambdaContext())
    assert result["statusCode"] == 200 and "content-encoding" not in result["headers"]
    assert result["isBase64Encoded"] is False and len(json.loads(result["body"])["data"]) == 2
