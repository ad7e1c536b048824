"""A lean HTTP/1.1 transport for httpx: keep-alive connections on asyncio streams, nothing else.

httpx stays the client API (and tests inject ``httpx.MockTransport`` as before); underneath, httpcore's general
machinery (HTTP/2 negotiation, anyio backends, per-chunk events) cost ~1 ms per provider call on a 130 KB answer,
more than the gateway's whole latency budget, where reading the answer off a kept-alive socket costs ~0.25 ms. This
transport speaks the subset of HTTP/1.1 that providers answer with: Content-Length or chunked bodies, keep-alive,
TLS with certificate verification. Timeouts and failures surface as httpx's own exceptions, so the adapters' error
mapping in ``base.py`` is unchanged.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator

import httpx

_DEFAULT_PORTS = {"http": 80, "https": 443}
_MAX_HEADER_LINES = 200


class _Connection:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def usable(self) -> bool:
        return not self.writer.is_closing() and not self.reader.at_eof()

    def close(self) -> None:
        self.writer.close()


class _Closed(Exception):
    """A kept-alive connection the server had already closed: safe to retry on a fresh one."""


class LeanTransport(httpx.AsyncBaseTransport):
    def __init__(self, max_idle_per_host: int = 32, ssl_context: ssl.SSLContext | None = None) -> None:
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._max_idle = max_idle_per_host
        self._ssl = ssl_context

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"unsupported scheme {url.scheme!r}", request=request)
        key = (url.scheme, url.host, url.port or _DEFAULT_PORTS[url.scheme])
        timeouts = request.extensions.get("timeout") or {}
        body = await request.aread()
        head = self._head(request, len(body))
        idle = self._idle.setdefault(key, [])
        while idle:  # reuse a kept-alive connection; one the server closed in the meantime is retried fresh
            conn = idle.pop()
            if not conn.usable():
                conn.close()
                continue
            try:
                return await self._exchange(conn, key=key, request=request, head=head, body=body, timeouts=timeouts)
            except _Closed:
                conn.close()
        conn = await self._connect(key, request, timeouts.get("connect"))
        try:
            return await self._exchange(conn, key=key, request=request, head=head, body=body, timeouts=timeouts)
        except _Closed:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            ) from None

    @staticmethod
    def _head(request: httpx.Request, length: int) -> bytes:
        lines = [request.method.encode() + b" " + request.url.raw_path + b" HTTP/1.1"]
        seen_length = False
        for name, value in request.headers.raw:
            lowered = name.lower()
            if lowered == b"content-length":
                seen_length = True
            elif lowered == b"transfer-encoding":
                continue  # the body is always sent whole, with a length
            lines.append(name + b": " + value)
        if not seen_length and (length or request.method in ("POST", "PUT", "PATCH")):
            lines.append(b"Content-Length: " + str(length).encode())
        return b"\r\n".join(lines) + b"\r\n\r\n"

    async def _connect(self, key: tuple[str, str, int], request: httpx.Request, timeout: float | None) -> _Connection:
        scheme, host, port = key
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    host,
                    port,
                    ssl=self._ssl_context() if scheme == "https" else None,
                    server_hostname=host if scheme == "https" else None,
                    limit=1 << 20,
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out", request=request) from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(f"{type(exc).__name__} connecting to {host}:{port}", request=request) from None
        return _Connection(reader, writer)

    async def _exchange(
        self,
        conn: _Connection,
        *,
        key: tuple[str, str, int],
        request: httpx.Request,
        head: bytes,
        body: bytes,
        timeouts: dict[str, float | None],
    ) -> httpx.Response:
        reused_ok = True
        try:
            conn.writer.write(head + body if len(body) < 65536 else head)
            if len(body) >= 65536:
                conn.writer.write(body)
            async with asyncio.timeout(timeouts.get("write")):
                await conn.writer.drain()
            async with asyncio.timeout(timeouts.get("read")):
                status_line = await conn.reader.readline()
                if not status_line:
                    raise _Closed
                reused_ok = False  # the server started answering: no silent retry from here on
                status, headers, keep_alive = await self._read_head(conn.reader, status_line)
                content, framed = await self._read_body(conn.reader, headers, request.method, status)
                keep_alive = keep_alive and framed
        except _Closed:
            raise
        except TimeoutError:
            conn.close()
            raise httpx.ReadTimeout("the provider did not answer in time", request=request) from None
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            conn.close()
            if reused_ok:
                raise _Closed from None
            raise httpx.ReadError(f"{type(exc).__name__} reading the answer", request=request) from None
        if keep_alive and len(self._idle[key]) < self._max_idle:
            self._idle[key].append(conn)
        else:
            conn.close()
        return httpx.Response(
            status, headers=headers, stream=_Body(content), request=request, extensions={"http_version": b"HTTP/1.1"}
        )

    @staticmethod
    async def _read_head(
        reader: asyncio.StreamReader, status_line: bytes
    ) -> tuple[int, list[tuple[bytes, bytes]], bool]:
        version, _, rest = status_line.partition(b" ")
        status = int(rest[:3])
        headers: list[tuple[bytes, bytes]] = []
        keep_alive = version == b"HTTP/1.1"
        for _ in range(_MAX_HEADER_LINES):
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            value = value.strip()
            headers.append((name.strip(), value))
            if name.strip().lower() == b"connection":
                keep_alive = value.lower() != b"close" and (keep_alive or value.lower() == b"keep-alive")
        else:
            raise ValueError("too many header lines")
        return status, headers, keep_alive

    @staticmethod
    async def _read_body(
        reader: asyncio.StreamReader, headers: list[tuple[bytes, bytes]], method: str, status: int
    ) -> tuple[bytes, bool]:
        """The body, and whether its end was framed (so the connection can carry another request)."""
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return b"", True
        length = chunked = None
        for name, value in headers:
            lowered = name.lower()
            if lowered == b"content-length":
                length = int(value)
            elif lowered == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
        if chunked:
            parts: list[bytes] = []
            while True:
                size = int((await reader.readline()).split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts), True
                parts.append(await reader.readexactly(size))
                await reader.readexactly(2)
        if length is not None:
            return await reader.readexactly(length), True
        return await reader.read(), False  # no framing: the body ends when the server closes

    async def aclose(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()


class _Body(httpx.AsyncByteStream):
    __slots__ = ("_content",)

    def __init__(self, content: bytes) -> None:
        self._content = content

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self._content
