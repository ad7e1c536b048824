"""The lean HTTP/1.1 transport under httpx, against real servers on loopback (plain and TLS)."""

from __future__ import annotations

import asyncio
import datetime
import gzip
import ipaddress
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from embedrank.providers.transport import LeanTransport

BODY = json.dumps({"data": list(range(5000))}).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    connections: set[tuple[str, int]] = set()  # noqa: RUF012 - shared across handler instances, on purpose

    def do_POST(self) -> None:
        Handler.connections.add(self.client_address)
        length = int(self.headers.get("content-length", 0))
        received = self.rfile.read(length)
        mode = self.path.strip("/")
        if mode == "echo":
            self._send(200, json.dumps({"got": received.decode(), "host": self.headers["host"]}).encode())
        elif mode == "chunked":
            self.send_response(200)
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for i in range(0, len(BODY), 7000):
                part = BODY[i : i + 7000]
                self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif mode == "gzip":
            self._send(200, gzip.compress(BODY), {"content-encoding": "gzip"})
        elif mode == "close":
            self._send(200, BODY, {"connection": "close"})
            self.close_connection = True
        elif mode == "sneaky":
            self._send(200, BODY)
            self.close_connection = True
        elif mode == "unframed":
            self.send_response(200)
            self.send_header("connection", "close")
            self.end_headers()
            self.wfile.write(BODY)
            self.close_connection = True
        elif mode == "slow":
            time.sleep(1.0)
            self._send(200, BODY)
        elif mode == "error":
            self._send(503, b'{"error": "busy"}')

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    Handler.connections.clear()
    yield srv
    srv.shutdown()
    srv.server_close()


def url(srv: ThreadingHTTPServer, path: str, scheme: str = "http") -> str:
    return f"{scheme}://127.0.0.1:{srv.server_address[1]}/{path}"


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_content_length_chunked_gzip_and_keep_alive(server: ThreadingHTTPServer) -> None:
    async def main() -> None:
        async with httpx.AsyncClient(transport=LeanTransport()) as client:
            r = await client.post(url(server, "echo"), content=b'{"x": 1}')
            assert r.status_code == 200 and r.json() == {
                "got": '{"x": 1}',
                "host": f"127.0.0.1:{server.server_address[1]}",
            }
            for mode in ("chunked", "gzip", "echo", "chunked"):
                r = await client.post(url(server, mode), content=b"{}")
                assert r.status_code == 200
                if mode != "echo":
                    assert r.content == BODY
            r = await client.post(url(server, "error"), content=b"{}")
            assert r.status_code == 503 and r.json() == {"error": "busy"}

    run(main())
    assert len(Handler.connections) == 1  # every request rode the same kept-alive connection


def test_connection_close_and_unframed_bodies(server: ThreadingHTTPServer) -> None:
    async def main() -> None:
        async with httpx.AsyncClient(transport=LeanTransport()) as client:
            for mode in ("close", "unframed", "echo", "unframed", "echo"):
                r = await client.post(url(server, mode), content=b"{}")
                assert r.status_code == 200
                if mode != "echo":
                    assert r.content == BODY

    run(main())
    assert len(Handler.connections) == 4  # a new connection after each closed one, reused otherwise


def test_a_connection_the_server_dropped_is_replaced(server: ThreadingHTTPServer) -> None:
    async def main() -> None:
        async with httpx.AsyncClient(transport=LeanTransport()) as client:
            for _ in range(3):
                # "sneaky" answers as if keeping the connection alive, then drops it (a keep-alive timeout).
                assert (await client.post(url(server, "sneaky"), content=b"{}")).content == BODY
                assert (await client.post(url(server, "echo"), content=b"{}")).status_code == 200

    run(main())
    assert len(Handler.connections) == 4


def test_timeouts_and_refused_connections_are_httpx_errors(server: ThreadingHTTPServer) -> None:
    async def main() -> None:
        async with httpx.AsyncClient(transport=LeanTransport()) as client:
            with pytest.raises(httpx.ReadTimeout):
                await client.post(url(server, "slow"), content=b"{}", timeout=0.2)
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            with pytest.raises(httpx.ConnectError):
                await client.post(f"http://127.0.0.1:{port}/x", content=b"{}")

    run(main())


def self_signed(tmp: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_tls_with_certificate_verification(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    srv.socket = server_ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:

        async def main() -> None:
            trusted = ssl.create_default_context(cafile=str(cert))
            async with httpx.AsyncClient(transport=LeanTransport(ssl_context=trusted)) as client:
                for mode in ("echo", "chunked"):
                    assert (await client.post(url(srv, mode, "https"), content=b"{}")).status_code == 200
            # The default context does not trust a self-signed certificate: verification is on.
            async with httpx.AsyncClient(transport=LeanTransport()) as client:
                with pytest.raises(httpx.ConnectError):
                    await client.post(url(srv, "echo", "https"), content=b"{}")

        run(main())
    finally:
        srv.shutdown()
        srv.server_close()
