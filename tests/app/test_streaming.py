"""Streamed answers (the default deployment and `make serve`): written a slice at a time, gzipped when asked, never a
truncated answer that parses, and the usage write done before the last byte."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from bench.stream_memory import post
from conftest import FakeUpstream, auth, usage_records
from embedrank.api.streaming import embedding_chunks
from embedrank.config import Settings
from embedrank.domain.vectors import Vectors
from fakes import b64, decode_b64, json_response, vector

LARGE = "openai/text-embedding-3-large"  # 3,072 dimensions


def by_text(request: httpx.Request) -> httpx.Response:
    """OpenAI's answer, base64: ``text-N`` gets vector N."""
    body = json.loads(request.content)
    dims = body.get("dimensions", 3072 if body["model"].endswith("-large") else 1536)
    data = [
        {"object": "embedding", "index": i, "embedding": b64(vector(int(text[5:]), dims))}
        for i, text in enumerate(body["input"])
    ]
    return json_response({"object": "list", "data": data, "model": body["model"], "usage": {"total_tokens": 1}})


def request_body(n: int, encoding: str = "base64", model: str = LARGE) -> dict[str, Any]:
    return {"model": model, "input": [f"text-{i}" for i in range(n)], "encoding_format": encoding}


# -- the stream's bytes -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "wanted"), [("base64", "float"), ("base64", "base64"), ("json", "float"), ("float", "base64")]
)
@pytest.mark.parametrize("per_chunk", [1, 3, 7, 100])
def test_the_streamed_bytes_are_the_whole_answers_bytes(stored: str, wanted: Any, per_chunk: int) -> None:
    # given seven vectors held as the providers give them
    values = [vector(i, 8) for i in range(7)]
    items: list[Any] = {
        "base64": [b64(v) for v in values],
        "json": [orjson.dumps(v) for v in values],
        "float": values,
    }[stored]
    vectors = Vectors(stored, items)  # type: ignore[arg-type]
    body: Any = {"object": "list", "data": [], "model": "m", "provider": "p", "usage": {"prompt_tokens": 1}}
    whole = dict(
        body,
        data=[{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors.as_encoding(wanted))],
    )
    # when the answer is written a few vectors at a time
    streamed = b"".join(embedding_chunks(dict(body), vectors, wanted, per_chunk))
    # then the bytes are those of the whole answer, and no prefix of them parses
    assert streamed == orjson.dumps(whole)
    for end in range(1, len(streamed)):
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(streamed[:end])


# -- through the app --------------------------------------------------------------------------------------------------


def test_a_large_answer_streams_exact_and_in_order(client: Any, upstream: FakeUpstream) -> None:
    upstream.handler = by_text
    # given 2,048 inputs to a 3,072-dimension model (33.6 MB as base64, past Lambda's buffered 6 MB)
    headers = {**auth(), "Accept-Encoding": "identity"}
    with client.stream("POST", "/v1/embeddings", json=request_body(2048), headers=headers) as r:
        # when the answer comes: sent as it is written, with no length declared up front
        assert r.status_code == 200 and "content-length" not in r.headers
        chunks = list(r.iter_raw())
    # then it holds every vector, exact, in order, with the usage after them
    assert len(chunks) > 1
    answer = orjson.loads(b"".join(chunks))
    assert [d["index"] for d in answer["data"]] == list(range(2048))
    assert all(decode_b64(d["embedding"]) == vector(i, 3072) for i, d in enumerate(answer["data"]))
    assert answer["usage"]["total_tokens"] == len(upstream.requests) == 4  # 669 inputs a call at most (64 MiB)
    assert answer["model"] == LARGE


def test_a_streamed_answer_is_gzipped_when_the_client_asks(client: Any, upstream: FakeUpstream) -> None:
    upstream.handler = by_text
    plain = client.post(
        "/v1/embeddings", json=request_body(512, "float"), headers={**auth(), "Accept-Encoding": "identity"}
    )
    packed = client.post(
        "/v1/embeddings", json=request_body(512, "float"), headers={**auth(), "Accept-Encoding": "gzip"}
    )
    refused = client.post(
        "/v1/embeddings", json=request_body(512, "float"), headers={**auth(), "Accept-Encoding": "gzip;q=0"}
    )
    assert plain.status_code == packed.status_code == refused.status_code == 200
    assert packed.headers["content-encoding"] == "gzip" and packed.headers["vary"] == "Accept-Encoding"
    assert packed.num_bytes_downloaded < 0.5 * len(plain.content)
    assert packed.content == plain.content  # httpx undid the gzip: the same bytes
    assert "content-encoding" not in plain.headers and "content-encoding" not in refused.headers


def test_an_answer_over_lambdas_200_mb_is_a_413_with_advice(client: Any, upstream: FakeUpstream) -> None:
    # given 2,048 inputs to a 4,096-dimension model as float JSON: up to 210 MB, over the 208.7 MB Lambda streams
    # (for a client that does not accept gzip: gzipped, it would fit)
    body = request_body(2048, "float", model="selfhosted/Qwen/Qwen3-Embedding-8B")
    r = client.post("/v1/embeddings", json=body, headers={**auth(), "Accept-Encoding": "identity"})
    # then it is refused before any provider call, saying what fits
    assert r.status_code == 413, r.text[:300]
    message = r.json()["error"]["message"]
    assert "Lambda's streamed response" in message and "use encoding_format 'base64' (up to 2048 inputs)" in message
    assert "send 'Accept-Encoding: gzip' (up to 2048 inputs)" in message
    assert not upstream.requests


def test_the_last_byte_waits_for_the_usage_write_in_lambda(aws: None, upstream: FakeUpstream) -> None:
    """Under the Lambda Web Adapter the invocation ends with the answer's last byte, and Lambda may freeze the
    container right after: the usage record must be written by then."""
    from embedrank.api.app import Services, create_app
    from embedrank.providers import Registry

    upstream.handler = by_text
    settings = Settings.from_env({"AWS_LAMBDA_FUNCTION_NAME": "EmbeddingsFunction"})  # in Lambda, not via Mangum
    app = create_app(services=Services.build(settings, registry=Registry(httpx.MockTransport(upstream))))
    records_at_last_byte: list[int] = []
    body = json.dumps(request_body(512)).encode()

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            records_at_last_byte.append(len(usage_records(settings)))

    asyncio.run(post(app, "/v1/embeddings", body, auth()["X-API-Key"], send))
    assert records_at_last_byte == [1]


# -- a failure past the first byte ------------------------------------------------------------------------------------


@pytest.fixture
def served(services: Any) -> Iterator[str]:
    """The app under a real uvicorn, in a thread: the server `make serve` and the Lambda Web Adapter run."""
    import uvicorn

    from embedrank.api.app import create_app

    server = uvicorn.Server(uvicorn.Config(create_app(services=services), port=0, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_a_failure_past_the_first_byte_leaves_a_body_that_does_not_parse(
    served: str, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch, log_stream: Any
) -> None:
    upstream.handler = by_text
    convert = Vectors.as_encoding

    def failing(self: Vectors, encoding: Any, start: int = 0, stop: int | None = None) -> list[Any]:
        if start >= 1000:
            raise RuntimeError("a bug while writing")
        return convert(self, encoding, start, stop)

    # given an answer whose writing fails midway (a bug: every provider call and check is done before the first byte)
    monkeypatch.setattr(Vectors, "as_encoding", failing)
    received = bytearray()
    # when a client reads it
    headers = {**auth(), "Accept-Encoding": "identity"}
    with httpx.stream("POST", f"{served}/v1/embeddings", json=request_body(2048), headers=headers, timeout=60) as r:
        assert r.status_code == 200  # the status left with the first byte
        with pytest.raises(httpx.RemoteProtocolError):  # the connection is dropped, not the answer ended
            for chunk in r.iter_raw():
                received += chunk
    # then what it holds is not JSON: never a shorter list that parses
    assert len(received) > 1_000_000
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(received)
    lines = [json.loads(line) for line in log_stream.getvalue().splitlines() if line.startswith("{")]
    assert any(ln["message"].startswith("answer stream failed") and ln["error_type"] == "RuntimeError" for ln in lines)
    assert "a bug while writing" not in log_stream.getvalue()


def test_gzip_of_a_streamed_answer_decodes_to_the_same_vectors(served: str, upstream: FakeUpstream) -> None:
    upstream.handler = by_text
    r = httpx.post(
        f"{served}/v1/embeddings",
        json=request_body(2048, "float"),
        headers={**auth(), "Accept-Encoding": "gzip"},
        timeout=60,
    )
    assert r.status_code == 200 and r.headers["content-encoding"] == "gzip"
    assert r.headers.get("transfer-encoding") == "chunked"
    data = r.json()["data"]
    assert all(d["embedding"] == vector(i, 3072) for i, d in enumerate(data))
