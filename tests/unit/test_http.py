"""Provider HTTP (``providers/http.py``) against scripted servers on loopback: the answers a hand-written HTTP client
got wrong, the size limit on every answer, and what becomes of each failure."""

from __future__ import annotations

import asyncio
import gzip
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from embedrank.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from embedrank.providers.calls import MAX_ANSWER_BYTES
from embedrank.providers.http import Http

MiB = 1024 * 1024
Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Seen"], Awaitable[None]]


@dataclass
class Seen:
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0


async def read_request(reader: asyncio.StreamReader, seen: Seen) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0
    )
    body = await reader.readexactly(length)
    seen.requests.append(head + body)
    return body


def answer(body: bytes, status: str = "200 OK", headers: bytes = b"") -> bytes:
    return f"HTTP/1.1 {status}\r\ncontent-length: {len(body)}\r\n".encode() + headers + b"\r\n" + body


@asynccontextmanager
async def scripted(script: Script) -> AsyncIterator[tuple[str, Seen]]:
    """A server on loopback that runs ``script`` on every connection."""
    seen = Seen()

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.connections += 1
        try:
            await script(reader, writer, seen)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(on_connection, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1/embeddings", seen
    finally:
        server.close()


async def post(http: Http, url: str, limit: int = MiB, timeout: float = 5.0) -> bytes:
    _, _, body = await http.post("openai", url, b'{"input": ["a"]}', {}, timeout=timeout, limit=limit)
    return body


def test_an_early_hints_answer_is_skipped_and_each_request_gets_its_own_answer() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen) -> None:
        while True:
            await read_request(reader, seen)
            n = len(seen.requests)
            writer.write(b"HTTP/1.1 103 Early Hints\r\nlink: </x>; rel=preload\r\n\r\n")
            writer.write(answer(b'{"answer": %d}' % n))
            await writer.drain()

    async def main() -> None:
        async with scripted(script) as (url, seen):
            # given a server that sends 103 Early Hints before every answer, on one kept-alive connection
            http = Http()
            # when two requests are made in turn
            first, second = await post(http, url), await post(http, url)
            # then each gets the final answer to its own request, over the same connection
            assert (first, second) == (b'{"answer": 1}', b'{"answer": 2}')
            assert seen.connections == 1

    asyncio.run(main())


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"HTTP/1.1 200 OK\r\nx-junk: " + b"a" * (40 * MiB) + b"\r\n\r\n", id="40 MB of headers"),
        pytest.param(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 9\r\n\r\nhello", id="two lengths"),
        pytest.param(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n" + b"x" * 10, id="cut short"),
    ],
)
def test_a_malformed_answer_is_a_provider_failure(raw: bytes) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen) -> None:
        await read_request(reader, seen)
        writer.write(raw)
        await writer.drain()

    async def main() -> None:
        async with scripted(script) as (url, _):
            # when the server's answer breaks HTTP's framing or size rules, then it is a retryable 502, not an answer
            with pytest.raises(UpstreamUnavailable) as caught:
                await post(Http(), url)
            assert caught.value.status == 502 and caught.value.provider == "openai"

    asyncio.run(main())


def test_a_post_the_server_read_then_dropped_is_sent_once() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen) -> None:
        await read_request(reader, seen)
        if len(seen.requests) == 1:
            writer.write(answer(b"{}"))
            await writer.drain()
            await read_request(reader, seen)  # the second request, on the kept-alive connection: read, unanswered

    async def main() -> None:
        async with scripted(script) as (url, seen):
            # given a kept-alive connection whose server reads the next request and closes without answering
            http = Http()
            await post(http, url)
            # when that request is made, then it fails once, and the transport never resends it on its own
            with pytest.raises(UpstreamUnavailable):
                await post(http, url)
            assert len(seen.requests) == 2

    asyncio.run(main())


def test_a_declared_length_over_the_limit_is_refused_unread_and_its_connection_dropped() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen) -> None:
        while True:
            await read_request(reader, seen)
            if len(seen.requests) == 1:
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % (2 * MiB) + b"x" * 1000)
            else:
                writer.write(answer(b'{"ok": true}'))
            await writer.drain()

    async def main() -> None:
        async with scripted(script) as (url, seen):
            http = Http()
            # when an answer declares more bytes than the call can produce
            with pytest.raises(UpstreamError) as caught:
                await post(http, url, limit=MiB)
            # then it is a 502 that says so, and the next call gets a fresh connection, not the rest of that answer
            assert caught.value.code == "provider_answer_too_large" and caught.value.status == 502
            assert await post(http, url) == b'{"ok": true}'
            assert seen.connections == 2

    asyncio.run(main())


def endless(encoding: bytes = b"") -> Script:
    """An answer of 1 GiB (or more, gzipped), chunked, never declaring its size."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen) -> None:
        await read_request(reader, seen)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n" + encoding + b"\r\n")
        if encoding:
            # gzip of 1 GiB of zeros, about 1 MB on the wire
            squeeze = zlib.compressobj(9, zlib.DEFLATED, 31)
            block = bytes(MiB)
            parts = [squeeze.compress(block) for _ in range(1024)] + [squeeze.flush()]
            payload = b"".join(parts)
            chunks = [payload[i : i + 65536] for i in range(0, len(payload), 65536)]
        else:
            chunks = [b"0" * MiB] * 1024
        for chunk in chunks:
            writer.write(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    return script


@pytest.mark.parametrize("encoding", [b"", b"content-encoding: gzip\r\n"], ids=["plain", "gzip bomb"])
def test_refusing_a_1_gib_answer_grows_memory_by_less_than_100_mib(encoding: bytes) -> None:
    async def main() -> int:
        async with scripted(endless(encoding)) as (url, _):
            http = Http()
            tracemalloc.start()
            try:
                # when an answer grows past the largest limit any call has (64 MiB)
                with pytest.raises(UpstreamError) as caught:
                    await post(http, url, limit=MAX_ANSWER_BYTES, timeout=60)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert caught.value.code == "provider_answer_too_large"
            return peak

    # then reading stopped at the limit: far less than the answer was held at once
    peak = asyncio.run(main())
    assert peak < 100 * MiB, f"peak {peak / MiB:.0f} MiB"


def test_a_gzip_answer_is_inflated() -> None:
    body = b'{"data": [' + b"1.0, " * 10_000 + b"1.0]}"

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen) -> None:
        await read_request(reader, seen)
        writer.write(answer(gzip.compress(body), headers=b"content-encoding: gzip\r\n"))
        await writer.drain()

    async def main() -> None:
        async with scripted(script) as (url, seen):
            assert await post(Http(), url) == body
            assert b"accept-encoding: gzip, deflate" in seen.requests[0].lower()

    asyncio.run(main())


@pytest.mark.parametrize(
    ("status", "error", "code"),
    [
        ("429 Too Many Requests", "UpstreamRateLimited", "provider_rate_limited"),
        ("503 Service Unavailable", "UpstreamUnavailable", "provider_unavailable"),
        ("401 Unauthorized", "UpstreamError", "provider_auth_failed"),
        ("400 Bad Request", "ProviderRejected", "provider_rejected_request"),
        ("422 Unprocessable Entity", "ProviderRejected", "provider_rejected_request"),
        ("402 Payment Required", "UpstreamError", "provider_error"),
        ("307 Temporary Redirect", "UpstreamError", "provider_error"),
    ],
)
def test_statuses_map_onto_errors(status: str, error: str, code: str) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen) -> None:
        await read_request(reader, seen)
        writer.write(answer(b'{"error": {"message": "nope"}}', status, b"retry-after: 2\r\nlocation: /elsewhere\r\n"))
        await writer.drain()

    async def main() -> None:
        async with scripted(script) as (url, seen):
            with pytest.raises(UpstreamError) as caught:
                await post(Http(), url)
            assert type(caught.value).__name__ == error and caught.value.code == code
            assert len(seen.requests) == 1  # a redirect is not followed

    asyncio.run(main())


def test_a_slow_provider_times_out_and_a_closed_port_is_unavailable() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen) -> None:
        await read_request(reader, seen)
        await asyncio.sleep(2)

    async def main() -> None:
        async with scripted(script) as (url, _):
            with pytest.raises(UpstreamTimeout):
                await post(Http(), url, timeout=0.2)
        with pytest.raises(UpstreamUnavailable):
            await post(Http(), url)  # the server is gone: nothing listens there now

    asyncio.run(main())


def test_a_proxy_from_the_environment_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen) -> None:
        await read_request(reader, seen)
        writer.write(answer(b'{"via": "proxy"}'))
        await writer.drain()

    async def main() -> None:
        async with scripted(proxy) as (proxy_url, seen):
            # given HTTP_PROXY, as httpx reads it (trust_env)
            monkeypatch.setenv("HTTP_PROXY", proxy_url.rsplit("/v1", 1)[0])
            monkeypatch.delenv("NO_PROXY", raising=False)
            monkeypatch.delenv("no_proxy", raising=False)
            # when a provider is called, then the request goes through the proxy, in absolute form
            assert await post(Http(), "http://provider.invalid/v1/embeddings") == b'{"via": "proxy"}'
            assert seen.requests[0].startswith(b"POST http://provider.invalid/v1/embeddings HTTP/1.1")

    asyncio.run(main())
