"""Provider HTTP: one pooled ``httpx.AsyncClient`` per process, answers read as a capped stream, and the one place
where transport failures and HTTP statuses become ``errors``.

httpx and httpcore parse HTTP: informational answers (``103 Early Hints``), header limits, conflicting framing,
proxies (``HTTPS_PROXY``, ``NO_PROXY``), TLS verification and keep-alive are theirs; the X-Ray SDK traces the
client when tracing is on. What is ours: every answer is read
as a stream and refused as soon as it passes the call's ``answer_limit`` (a declared ``Content-Length`` over it is
refused before a byte of the body is read), and a refused answer's connection is closed, never put back in the pool.
A gzip answer is inflated here, with zlib, 1 MiB at a time (``max_length``): inflated by httpx, one 64 KiB chunk of a
gzip bomb becomes up to 64 MB before any limit can look at it.
Measured on the dev machine, a provider call through httpx costs ~0.6-0.8 ms of CPU on a 130 KB answer, where a
hand-written HTTP/1.1 reader cost ~0.1 ms: ~0.6 ms on a provider call that takes 50-500 ms.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ProviderRejected, UpstreamError, UpstreamRateLimited, UpstreamTimeout, UpstreamUnavailable

if TYPE_CHECKING:
    import httpx

HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/json",
    "Accept-Encoding": "gzip, deflate",
    "User-Agent": "embedrank",
}
# Content-Encoding -> zlib wbits (0: as is). 47 reads a zlib or a gzip header, which servers use for "deflate".
CODINGS = {
    "identity": 0,
    "": 0,
    "gzip": 16 + zlib.MAX_WBITS,
    "x-gzip": 16 + zlib.MAX_WBITS,
    "deflate": 32 + zlib.MAX_WBITS,
}
# Inflated at most this much per step: zlib's output buffer is joined at the end of each step (twice its size).
INFLATE_STEP = 1024 * 1024
ERROR_BODY_LIMIT = 64 * 1024  # of an error answer, only its message is used
# A provider's verdict on the request itself (a bad input, a context overflow, a model it does not serve): the
# caller's to fix, a 400 (``ProviderRejected``). Any other 4xx is the gateway's or the provider's problem: a 502.
REJECTED = frozenset({400, 404, 422})
MESSAGE_CHARS = 500


class Http:
    """The pooled client for provider calls; ``transport`` replaces the network (tests, benchmarks).

    Pooled connections belong to the event loop that opened them. Mangum and uvicorn keep one loop for the life of the
    process; a host that starts another loop (a test client) gets a client of its own.
    """

    def __init__(self, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._transport = transport
        self._held: tuple[asyncio.AbstractEventLoop, httpx.AsyncClient] | None = None

    def client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._held is None or self._held[0] is not loop:
            self._held = (loop, self._build())
        return self._held[1]

    def _build(self) -> httpx.AsyncClient:
        import httpx

        options: dict[str, Any] = {"headers": HEADERS, "follow_redirects": False}
        if self._transport is not None:
            return httpx.AsyncClient(transport=self._transport, **options)
        # No transport of ours: httpx then mounts the proxies of HTTP_PROXY / HTTPS_PROXY / NO_PROXY (trust_env), and
        # the X-Ray SDK's httpx patch (observability.py) wraps the client it builds. Redirects are not followed: a
        # provider API that redirects a POST is misconfigured, and its 3xx is reported as such.
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=64, keepalive_expiry=60)
        return httpx.AsyncClient(limits=limits, **options)

    async def post(
        self, provider: str, url: str, content: bytes, headers: Mapping[str, str], *, timeout: float, limit: int
    ) -> tuple[int, httpx.Headers, bytes]:
        """POST ``content``; the status, headers and body of a 2xx answer of at most ``limit`` bytes. Every other
        outcome raises an ``UpstreamError``."""
        import httpx

        client = self.client()
        request = client.build_request("POST", url, content=content, headers=headers, timeout=timeout)
        try:
            response = await client.send(request, stream=True)
            try:
                ok = response.status_code < 300
                body = await _read(response, limit if ok else ERROR_BODY_LIMIT, strict=ok, provider=provider)
            finally:
                await response.aclose()  # an answer not read to its end closes its connection
        except httpx.TimeoutException:
            raise UpstreamTimeout(f"{provider} did not answer within {timeout:.1f} s.", provider=provider) from None
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"Could not reach {provider}: {type(exc).__name__}.", provider=provider) from None
        if body is None:
            raise UpstreamError(
                f"{provider} sent an answer larger than this request can produce (more than {limit} bytes); it "
                "was refused unread.",
                provider=provider,
                code="provider_answer_too_large",
            )
        if not ok:
            raise status_error(provider, response.status_code, body, response.headers)
        return response.status_code, response.headers, body


async def _read(response: httpx.Response, limit: int, *, strict: bool, provider: str) -> bytes | None:
    """The body, inflated, or None once it passes ``limit`` (``strict``; otherwise its first ``limit`` bytes)."""
    declared = response.headers.get("content-length", "")
    if strict and declared.isdigit() and int(declared) > limit:
        return None
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in CODINGS:
        raise UpstreamError(
            f"{provider} answered in an encoding that was not asked for ({encoding[:40]}).",
            provider=provider,
            code="provider_malformed_response",
        )
    inflate = zlib.decompressobj(CODINGS[encoding]) if CODINGS[encoding] else None
    if response.is_stream_consumed:  # an answer built in memory (httpx.MockTransport) comes read and decoded
        inflate, stream = None, _whole(response.content)
    else:
        stream = response.aiter_raw()
    chunks: list[bytes] = []
    size = 0
    async for raw in stream:
        pending = raw
        while pending:
            if inflate is None:
                chunk, pending = pending, b""
            else:
                try:
                    chunk = inflate.decompress(pending, INFLATE_STEP)
                except zlib.error:
                    raise UpstreamError(
                        f"{provider}'s answer is not valid {encoding}.",
                        provider=provider,
                        code="provider_malformed_response",
                    ) from None
                pending = inflate.unconsumed_tail
            size += len(chunk)
            if size > limit:
                if strict:
                    return None
                chunks.append(chunk[: len(chunk) - (size - limit)])
                return b"".join(chunks)
            chunks.append(chunk)
    if inflate is not None:
        chunks.append(inflate.flush())  # what zlib still holds once the input ran out: at most its 32 KiB window
        if strict and size + len(chunks[-1]) > limit:
            return None
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _whole(content: bytes) -> AsyncIterator[bytes]:
    yield content


def error_message(payload: Any) -> str | None:
    """The provider's own message in an error body; the common shapes are covered here."""
    if isinstance(payload, dict):
        for candidate in (payload.get("error"), payload):
            if isinstance(candidate, dict):
                for key in ("message", "detail"):
                    if isinstance(candidate.get(key), str):
                        return str(candidate[key])
            elif isinstance(candidate, str):
                return candidate
        detail = payload.get("detail")
        if isinstance(detail, list) and detail and isinstance(detail[0], dict):
            return str(detail[0].get("msg", detail[0]))
    return None


def status_error(provider: str, status: int, content: bytes, headers: Mapping[str, str]) -> UpstreamError:
    """The error for a provider's non-2xx answer."""
    import orjson

    try:
        message = error_message(orjson.loads(content))
    except orjson.JSONDecodeError:
        message = None
    message = (message or content[:200].decode("utf-8", "replace") or "no message")[:MESSAGE_CHARS]
    text = f"{provider} returned HTTP {status}: {message}"
    kwargs: dict[str, Any] = {"provider": provider, "upstream_status": status}
    if status == 429:
        return UpstreamRateLimited(text, retry_after=retry_after(headers), **kwargs)
    if status >= 500 or status == 408:
        return UpstreamUnavailable(text, retry_after=retry_after(headers), **kwargs)
    if status in (401, 403):
        # The gateway's credentials were refused: an operator problem, not the caller's.
        return UpstreamError(
            f"{provider} rejected the gateway's credentials (HTTP {status}).", code="provider_auth_failed", **kwargs
        )
    if status < 400:
        return UpstreamError(f"{provider} answered HTTP {status} instead of a result.", **kwargs)
    if status in REJECTED:
        return ProviderRejected(text, **kwargs)
    return UpstreamError(text, **kwargs)


def retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
