"""Answers written as a stream, where the deployment streams (``sizes.STREAMING``).

A large embeddings answer is serialized a slice of vectors at a time (about ``CHUNK_BYTES`` of JSON each, in a worker
thread so the event loop keeps serving), so the whole JSON is never in memory, let alone twice (the body, then its
gzip). Gzip, when the client asks, is applied to the stream as it goes by Starlette's ``GZipMiddleware``
(``GzipStreamed``); buffered answers are fitted by ``Exchange.fit`` instead, which knows Lambda base64-encodes them.

No truncated answer parses. Every provider call has finished, and every vector has been checked, before the first
byte is written (time to first byte is not what an embedding caller waits for; a whole, correct answer is): the
status is known, and nothing a provider does can fail the answer midway. Should writing still fail (a bug), the
connection is dropped: the client holds a body whose closing ``]`` and ``usage`` never came, which no JSON parser
accepts, never a 200 with a shorter list that parses.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import orjson
from starlette.datastructures import Headers
from starlette.middleware.gzip import GZipMiddleware
from starlette.responses import Response, StreamingResponse

from ..domain.vectors import Encoding, Vectors
from .sizes import FLOAT_BYTES, GZIP_LEVEL, STREAMING, Channel, accepts_gzip, channel_of

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

    from ..config import Settings
    from .responses import EmbeddingResponse

JSON = "application/json"
STREAM_MIN_BYTES = 1 << 20  # smaller answers are built whole: one orjson call costs less than a stream
CHUNK_BYTES = 1 << 20
_DATA = b'"data":[]'


def _item_bytes(vectors: Vectors, encoding: Encoding) -> int:
    """About how many bytes one vector takes in the answer, from the first one (one answer holds one width)."""
    if not vectors.items:
        return 0
    first = vectors.items[0]
    if vectors.encoding == "float":
        return len(first) * FLOAT_BYTES
    if vectors.encoding == "json":  # the provider's own float text
        return len(first) if encoding == "float" else len(first) * 2 // 3
    return len(first) if encoding == "base64" else len(first) * 3 // 4 // 4 * FLOAT_BYTES


def embeddings_response(body: EmbeddingResponse, vectors: Vectors, encoding: Encoding, channel: Channel) -> Response:
    """``body`` with ``vectors`` as its ``data``: built whole when small or buffered, streamed otherwise."""
    per_item = _item_bytes(vectors, encoding)
    if channel is not STREAMING or len(vectors) * per_item < STREAM_MIN_BYTES:
        body["data"] = [
            {"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors.as_encoding(encoding))
        ]
        return Response(orjson.dumps(body), media_type=JSON)
    chunks = embedding_chunks(body, vectors, encoding, max(1, CHUNK_BYTES // max(per_item, 1)))
    return StreamingResponse(in_worker_thread(chunks), media_type=JSON)


def embedding_chunks(body: EmbeddingResponse, vectors: Vectors, encoding: Encoding, per_chunk: int) -> Iterator[bytes]:
    """The JSON of ``body`` with ``vectors`` as its ``data``, ``per_chunk`` vectors at a time: the same bytes as the
    whole answer (``body``'s keys in their order, the data where ``body`` holds an empty list)."""
    body["data"] = []
    head, tail = orjson.dumps(body).split(_DATA, 1)
    yield head + b'"data":['
    for start in range(0, len(vectors), per_chunk):
        part = vectors.as_encoding(encoding, start, start + per_chunk)
        items = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(part, start)]
        text = orjson.dumps(items)
        yield text[1:-1] if start == 0 else b"," + text[1:-1]
    yield b"]" + tail


async def in_worker_thread(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """Each chunk made in a worker thread: serializing megabytes of vectors must not stall other requests' I/O."""
    while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
        yield chunk


class GzipStreamed:
    """Starlette's ``GZipMiddleware`` (level 1, from ``GZIP_MIN_BYTES``; every streamed answer) for requests whose
    answer streams, when the client accepts gzip. Starlette's own test is a substring match, which would also compress
    for ``gzip;q=0``: ``accepts_gzip`` reads the q-values first."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.gzip = GZipMiddleware(app, minimum_size=settings.gzip_min_bytes, compresslevel=GZIP_LEVEL)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and channel_of(self.settings, scope) is STREAMING
            and accepts_gzip(Headers(scope=scope).get("accept-encoding"))
        ):
            await self.gzip(scope, receive, send)
        else:
            await self.app(scope, receive, send)
