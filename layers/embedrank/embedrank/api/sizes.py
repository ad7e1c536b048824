"""Payload size limits: what fits each way an answer can leave, gzip for large answers, and estimates.

An answer leaves one of two ways (``Channel``), by the deployment (template.yaml's ``Deployment``, the app's
``RESPONSE_MODE``; a Mangum handler is always buffered):

- **buffered** (HTTP API + Mangum): Lambda returns at most 6 MB synchronously, as a JSON document whose ``body`` is a
  string: a JSON answer is embedded with each ``"`` and ``\\`` escaped, and a gzip answer is base64-encoded, so it has
  3/4 of the room. An answer that cannot fit is a 413 before any provider call, saying how to make it fit.
- **streaming** (REST API with ``responseTransferMode: STREAM`` + the Lambda Web Adapter, and ``make serve``): Lambda
  streams up to 200 MB (its documentation's MB are MiB), written as is; a gzip answer is streamed as bytes.

Requests are bounded by Lambda in both: an invocation's payload (the event, holding the body) is at most 6 MB,
streamed or not. API Gateway would take 10 MB; Lambda's limit is the one that binds.

The estimates below are measured on realistic embeddings (unit-normalised float32 vectors with random mantissas,
2048 x 1536, serialised exactly as the app does) and rounded up:

    float JSON   21.3 bytes per float on average, 24 at most ("-0.000036933641240466386") plus a comma: 25 is used,
                 so a float answer that passes the estimate always fits
    float gzip   level 1: 10.0 bytes per float (ratio 0.470); 11 is used
    base64 gzip  level 1: ratio 0.762 of the base64 JSON; 0.80 is used

Buffered, gzip is what lets float answers grow (275 vectors of 1536 dimensions instead of 161); base64 answers hold
753 either way, as gzip's 0.76 is undone by Lambda's base64 (x 4/3), but gzip still shrinks them on the wire.

Level 1 is used because on this data it is by far the fastest (deflate's fast path; 110 MB/s on float JSON against
22 MB/s at level 5) and compresses within 8% of level 6.
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..config import Settings
from ..domain.vectors import Encoding, b64_len
from ..errors import PayloadTooLarge

MiB = 1024 * 1024
LAMBDA_PAYLOAD_LIMIT = 6 * MiB  # bytes: Lambda's synchronous request and response limit ("6 MB")
LAMBDA_STREAM_LIMIT = 200 * MiB  # bytes: Lambda's streamed response limit ("200 MB")
MAX_REQUEST_BYTES = LAMBDA_PAYLOAD_LIMIT  # the invocation payload, streamed or not
# The answer's share of the buffered response document: the rest holds the status, the headers and the envelope.
RESPONSE_LIMIT = LAMBDA_PAYLOAD_LIMIT - 64 * 1024
GZIP_LIMIT = RESPONSE_LIMIT * 3 // 4  # a gzip body is base64-encoded in the Lambda response
GZIP_LEVEL = 1

FLOAT_BYTES = 25
FLOAT_GZIP_BYTES = 11
BASE64_GZIP_RATIO = 0.80
# '{"object":"embedding","index":2047,"embedding":' ... '},' with its quotes escaped once more by the envelope.
ITEM_OVERHEAD = 64
ANSWER_OVERHEAD = 512  # "object", "model", "provider", "usage"
RESULT_OVERHEAD = 96  # one rerank result without its document: index, score, escaped quotes

Mode = Literal["streaming", "buffered"]


@dataclass(frozen=True, slots=True)
class Channel:
    """How an answer leaves the function, and so how much of it can."""

    mode: Mode
    response_limit: int  # bytes of the answer as it travels
    gzip_limit: int  # bytes of a gzip answer
    escaped: bool  # the answer travels as a JSON string: each '"' and '\\' takes two bytes
    limit_text: str  # the limit, for messages


BUFFERED = Channel(
    "buffered",
    RESPONSE_LIMIT,
    GZIP_LIMIT,
    escaped=True,
    limit_text=f"{RESPONSE_LIMIT / 1e6:.1f} MB, Lambda's buffered response; {GZIP_LIMIT / 1e6:.1f} MB gzipped, "
    "since Lambda base64-encodes it",
)
STREAMING = Channel(
    "streaming",
    LAMBDA_STREAM_LIMIT - MiB,  # the rest: the status and headers Lambda streams first
    LAMBDA_STREAM_LIMIT - MiB,
    escaped=False,
    limit_text=f"{(LAMBDA_STREAM_LIMIT - MiB) / 1e6:.0f} MB, Lambda's streamed response",
)
CHANNELS: dict[Mode, Channel] = {"streaming": STREAMING, "buffered": BUFFERED}


def channel_of(settings: Settings, scope: Mapping[str, Any]) -> Channel:
    """The way this request's answer leaves: buffered through a Mangum handler (``aws.context``) or where the
    deployment says so (``RESPONSE_MODE``), streamed otherwise (the Lambda Web Adapter, ``make serve``)."""
    if settings.response_mode == "buffered" or "aws.context" in scope:
        return BUFFERED
    return STREAMING


def accepts_gzip(header: str | None) -> bool:
    """Whether an ``Accept-Encoding`` value admits gzip (``gzip``, ``x-gzip`` or ``*`` with a q-value above 0)."""
    if not header:
        return False
    wildcard = False
    for part in header.split(","):
        name, _, params = part.partition(";")
        name = name.strip().lower()
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if name in ("gzip", "x-gzip"):
            return q > 0
        if name == "*":
            wildcard = q > 0
    return wildcard


def _mb(size: float) -> str:
    return f"{size / 1_000_000:.1f} MB"


def embedding_answer_bytes(count: int, dims: int, encoding: Encoding, gzipped: bool) -> int:
    """An upper estimate of an embeddings answer's size as it travels (buffered: escaped, before base64 for gzip)."""
    if encoding == "base64":
        item = b64_len(dims) + 4 + ITEM_OVERHEAD  # the string's two quotes, escaped
        return math.ceil(count * item * (BASE64_GZIP_RATIO if gzipped else 1.0)) + ANSWER_OVERHEAD
    return count * (dims * (FLOAT_GZIP_BYTES if gzipped else FLOAT_BYTES) + ITEM_OVERHEAD) + ANSWER_OVERHEAD


def embedding_capacity(dims: int, encoding: Encoding, gzipped: bool, channel: Channel = BUFFERED) -> int:
    """How many vectors of ``dims`` fit one answer: sent as is, or gzipped when the client accepts it, whichever
    holds more (buffered, base64 barely compresses, so its gzip, base64-encoded again by Lambda, holds fewer)."""

    def count(gzipped: bool) -> int:
        per = embedding_answer_bytes(1, dims, encoding, gzipped) - ANSWER_OVERHEAD
        return max((channel.gzip_limit if gzipped else channel.response_limit) - ANSWER_OVERHEAD, 0) // per

    return max(count(False), count(True)) if gzipped else count(False)


def check_embedding_answer(count: int, dims: int, encoding: Encoding, gzipped: bool, channel: Channel) -> None:
    """413 before any provider call when the answer cannot fit either way, saying how to make it fit."""
    from .requests import MAX_INPUTS

    def capacity(encoding: Encoding, gzipped: bool) -> int:
        return min(embedding_capacity(dims, encoding, gzipped, channel), MAX_INPUTS)

    fits = capacity(encoding, gzipped)
    if count <= fits:
        return
    how = [f"send at most {fits} inputs per request"]
    if encoding == "float":
        how.append(f"use encoding_format 'base64' (up to {capacity('base64', gzipped)} inputs)")
    if not gzipped and capacity(encoding, True) > fits:
        how.append(f"send 'Accept-Encoding: gzip' (up to {capacity(encoding, True)} inputs)")
    how.append("or request fewer dimensions, where the model supports it")
    size = embedding_answer_bytes(count, dims, encoding, gzipped=False)
    raise PayloadTooLarge(
        f"The answer could be up to {_mb(size)} ({count} vectors of {dims} dimensions as {encoding}), more than a "
        f"response can carry ({channel.limit_text}). To fit: " + "; ".join(how) + ".",
        param="input",
        code="response_too_large",
    )


def rerank_documents_bytes(texts: list[str], top_n: int) -> int:
    """An upper estimate of a rerank answer echoing the biggest ``top_n`` documents (which ones come back is only
    known after the call)."""
    # A '"' or '\\' in a text is escaped (twice, buffered: the answer's JSON, then the envelope's): such text counts
    # twice.
    sizes = sorted(len(t.encode()) * (1 if '"' not in t and "\\" not in t else 2) for t in texts)
    return sum(sizes[len(sizes) - top_n :]) + top_n * RESULT_OVERHEAD + ANSWER_OVERHEAD


def check_rerank_answer(texts: list[str], top_n: int, channel: Channel) -> None:
    """413 before any provider call when the documents echoed back (``return_documents``) cannot fit."""
    size = rerank_documents_bytes(texts, top_n)
    if size > channel.response_limit:
        raise PayloadTooLarge(
            f"The answer would be about {_mb(size)} with return_documents, more than a response can carry "
            f"({channel.limit_text}). To fit: set return_documents to false (each result's index points into the "
            "documents you sent), ask for a smaller top_n, or send fewer documents.",
            param="return_documents",
            code="response_too_large",
        )


def request_too_large(size: int, *, declared: bool) -> PayloadTooLarge:
    said = "declares" if declared else "is at least"
    return PayloadTooLarge(
        f"The request body {said} {size} bytes; the limit is {MAX_REQUEST_BYTES} (6 MB, the most AWS Lambda takes "
        "in one invocation, streamed or not). Send fewer inputs or documents per request.",
        code="request_too_large",
    )


def envelope_size(body: bytes) -> int:
    """The bytes ``body`` takes as the JSON string of a Lambda response (each '"' and '\\' gains a backslash)."""
    return len(body) + body.count(b'"') + body.count(b"\\")


def fit_body(body: bytes, accept_encoding: str | None, gzip_min_bytes: int) -> bytes | None:
    """The gzip of a large ``body`` for a client that accepts it, None to send ``body`` as is; 413 when neither fits.

    Small answers (the common case) cost one comparison: even with every byte escaped they fit, and compressing
    them costs more CPU than it saves on the wire. Past ``gzip_min_bytes`` an answer is compressed when the client
    accepts gzip; below it only when nothing else makes it fit (however GZIP_MIN_BYTES is set).
    """
    small = len(body) < gzip_min_bytes
    if small and len(body) * 2 <= RESPONSE_LIMIT:
        return None
    gzip_ok = accepts_gzip(accept_encoding)
    packed = None
    if gzip_ok and not small:
        packed = gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)
        if len(packed) <= GZIP_LIMIT:
            return packed
    size = envelope_size(body)
    if size <= RESPONSE_LIMIT:
        return None  # as is: gzip, when tried, did not fit (base64 barely compresses, then grows by 4/3)
    if gzip_ok and packed is None:
        packed = gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)
        if len(packed) <= GZIP_LIMIT:
            return packed
    raise _too_large_after(size, RESPONSE_LIMIT, gzipped=gzip_ok)


def _too_large_after(size: int, limit: int, *, gzipped: bool) -> PayloadTooLarge:
    # Only reached when the estimate before the provider call was too low: rare, and still a clear answer rather than
    # Lambda's opaque failure.
    return PayloadTooLarge(
        f"The answer is {_mb(size)}, too big{' even gzipped' if gzipped else ''} for the {_mb(limit)} a response "
        "can carry. "
        "Send fewer inputs per request, use encoding_format 'base64', request fewer dimensions"
        + ("" if gzipped else ", or send 'Accept-Encoding: gzip'")
        + ".",
        code="response_too_large",
    )
