"""Fake OpenAI-compatible and Cohere upstreams: a tiny raw-asyncio HTTP/1.1 server whose own cost is negligible.

Every answer is built once per shape (input count, encoding, width) and cached as the complete HTTP response bytes,
so serving a request costs one small ``orjson.loads`` of the request body and one ``transport.write``. Vectors are
1536-dim float32 values with realistic float text (about 20 characters each, like a real provider's).

Routes (any prefix ``/delay/<ms>`` adds that delay to the answer, on top of ``--delay-ms``):

- ``POST .../embeddings``  OpenAI: honours ``encoding_format`` (float or base64) and ``dimensions``
- ``POST .../v2/embed``    Cohere v2 embed: ``embeddings.float`` (and ``base64`` when asked)
- ``POST .../v2/rerank``   Cohere v2 rerank: one result per document (or ``top_n``), best first

Run it with ``python -m bench.fake --port 0``: it prints ``PORT <n>`` on stdout once it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import math
import random
import sys
from array import array
from typing import Any

import orjson

DIMS = 1536
POOL = 96  # distinct vectors; answers cycle through them


def _unit_vector(seed: int, dims: int) -> array[float]:
    rng = random.Random(seed)
    values = [rng.gauss(0.0, 1.0) for _ in range(dims)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return array("f", [v / norm for v in values])


class Answers:
    """Pre-serialized HTTP responses by request shape."""

    def __init__(self) -> None:
        self._floats: dict[int, list[list[float]]] = {}
        self._b64: dict[int, list[str]] = {}
        self._cache: dict[tuple[Any, ...], bytes] = {}

    def _vectors(self, dims: int) -> tuple[list[list[float]], list[str]]:
        if dims not in self._floats:
            arrays = [_unit_vector(i, dims) for i in range(POOL)]
            self._floats[dims] = [a.tolist() for a in arrays]
            self._b64[dims] = [base64.b64encode(a.tobytes()).decode("ascii") for a in arrays]
        return self._floats[dims], self._b64[dims]

    def _cached(self, key: tuple[Any, ...], build: Any) -> bytes:
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = http_response(200, orjson.dumps(build()))
        return hit

    def openai(self, body: dict[str, Any]) -> bytes:
        raw = body.get("input")
        count = len(raw) if isinstance(raw, list) and raw and not isinstance(raw[0], int) else 1
        encoding = body.get("encoding_format") or "float"
        dims = int(body.get("dimensions") or DIMS)
        model = str(body.get("model", "text-embedding-3-small"))

        def build() -> dict[str, Any]:
            floats, b64 = self._vectors(dims)
            pool = b64 if encoding == "base64" else floats
            data = [{"object": "embedding", "index": i, "embedding": pool[i % POOL]} for i in range(count)]
            usage = {"prompt_tokens": 8 * count, "total_tokens": 8 * count}
            return {"object": "list", "data": data, "model": model, "usage": usage}

        return self._cached(("openai", count, encoding, dims, model), build)

    def cohere_embed(self, body: dict[str, Any]) -> bytes:
        count = len(body.get("texts") or [])
        types = tuple(body.get("embedding_types") or ["float"])
        dims = int(body.get("output_dimension") or DIMS)

        def build() -> dict[str, Any]:
            floats, b64 = self._vectors(dims)
            embeddings: dict[str, Any] = {}
            if "float" in types:
                embeddings["float"] = [floats[i % POOL] for i in range(count)]
            if "base64" in types:
                embeddings["base64"] = [b64[i % POOL] for i in range(count)]
            return {
                "id": "fake",
                "embeddings": embeddings,
                "texts": [],
                "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": 8 * count}},
                "response_type": "embeddings_by_type",
            }

        return self._cached(("cohere-embed", count, types, dims), build)

    def cohere_rerank(self, body: dict[str, Any]) -> bytes:
        count = len(body.get("documents") or [])
        top_n = min(int(body.get("top_n") or count), count)

        def build() -> dict[str, Any]:
            scores = [(i, round(1.0 / (1.0 + ((i * 7919) % count)), 8)) for i in range(count)]
            scores.sort(key=lambda s: -s[1])
            results = [{"index": i, "relevance_score": s} for i, s in scores[:top_n]]
            return {"id": "fake", "results": results, "meta": {"billed_units": {"search_units": 1}}}

        return self._cached(("cohere-rerank", count, top_n), build)

    def route(self, path: str, body: bytes) -> bytes:
        try:
            payload = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError:
            return http_response(400, b'{"message":"invalid json"}')
        if path.endswith("/embeddings"):
            return self.openai(payload)
        if path.endswith("/v2/embed"):
            return self.cohere_embed(payload)
        if path.endswith("/v2/rerank"):
            return self.cohere_rerank(payload)
        return http_response(404, b'{"message":"no such route"}')


def http_response(status: int, body: bytes) -> bytes:
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}.get(status, "Error")
    head = f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    return head.encode("ascii") + body


def path_delay(path: str) -> float:
    """``/delay/<ms>/...`` -> seconds."""
    if path.startswith("/delay/"):
        try:
            return float(path.split("/", 3)[2]) / 1000
        except ValueError:
            return 0.0
    return 0.0


class FakeProtocol(asyncio.Protocol):
    def __init__(self, answers: Answers, delay: float) -> None:
        self.answers = answers
        self.delay = delay
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            path = lines[0].split(" ")[1]
            response = self.answers.route(path, body)
            delay = self.delay + path_delay(path)
            if delay > 0:
                asyncio.get_running_loop().call_later(delay, self._write, response)
            else:
                self._write(response)

    def _write(self, response: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(response)


async def serve(host: str, port: int, delay: float) -> None:
    answers = Answers()
    for dims in (DIMS,):
        answers._vectors(dims)  # build the vector pool before announcing the port
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: FakeProtocol(answers, delay), host, port, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    print(f"PORT {bound}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="added to every answer")
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(args.host, args.port, args.delay_ms / 1000))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
