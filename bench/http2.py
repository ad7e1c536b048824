"""HTTP/1.1 against HTTP/2 for the batch fan-out, over TLS: does ``httpx[http2]`` make a big embeddings request faster?

The fan-out is the gateway's: 2048 inputs split into Cohere-sized calls of 96 (22 calls, the last one of 32), at most
``UPSTREAM_CONCURRENCY`` (16) in flight behind an ``asyncio.Semaphore``, every call a ``POST /v2/embed`` through one
``embedrank.providers.http.Http``. The upstream is a fake Cohere ASGI app served by hypercorn over TLS (a self-signed
ECDSA P-256 certificate made here) in a child process, one per protocol: one offers only ``http/1.1`` in ALPN, the
other ``h2`` first. Each answer comes after 50 ms with 96 (or 32) float vectors of 256 dims, built by ``bench.fake``.

Measured per protocol, alternating which goes first:

- cold: a fresh transport and ``Http`` for every fan-out, so it opens its connections (TCP + TLS) as a Lambda
  container's first request would (its ``import h2`` is not in it: see ``h2_import_ms``);
- warm: one ``Http`` reused across fan-outs, connections already open.

Wall time (``perf_counter``) and the client process's CPU time (``process_time``; the fake runs in other processes)
per fan-out, medians in ms. Every answer is checked after the clock stops: status 200, the protocol it came over (the
fake echoes its ``http_version``), 256-dim vectors, 2048 in all; a protocol that drops or mangles answers fails the
run. ``connections`` counts the distinct client ports the fake saw in one fan-out; ``server_cpu_ms`` is the fake's own
CPU per fan-out, to tell a slow client from a slow server.

Run it with ``python -m bench.http2 [--runs N]``: JSON on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import gc
import ipaddress
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from embedrank.providers.http import Http

from .client import ROOT, python_env, stop
from .fake import Answers

INPUTS = 2048
PER_CALL = 96  # Cohere's per-call limit
CONCURRENCY = 16  # UPSTREAM_CONCURRENCY
DELAY_MS = 50
DIMS = 256
TEXT_CHARS = 1000  # per input, ~250 tokens: a typical retrieval chunk (a 96-input call is ~100 KB)
TIMEOUT = 30.0
ANSWER_LIMIT = 64 * 1024 * 1024
HOST = "127.0.0.1"
# The gateway's own pool (Http._build); with a transport of ours, httpx takes the limits from the transport.
LIMITS = httpx.Limits(max_connections=256, max_keepalive_connections=64, keepalive_expiry=60)
PROTOCOLS = {"h1": ["http/1.1"], "h2": ["h2", "http/1.1"]}  # what each fake offers in ALPN
VERSIONS = {"h1": "1.1", "h2": "2"}  # the http_version each must answer over

type Scope = dict[str, Any]
type Receive = Callable[[], Awaitable[dict[str, Any]]]
type Send = Callable[[dict[str, Any]], Awaitable[None]]


# --- the fake (child process) ---------------------------------------------------------------------------------------


class FakeCohere:
    """ASGI: ``POST /v2/embed`` answered after ``delay`` seconds from ``bench.fake``'s cached bodies; ``GET /cpu`` is
    the process's CPU time. Every answer names the HTTP version and the client port it was served over."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.answers = Answers()
        self.bodies: dict[tuple[int, int], bytes] = {}

    def embed(self, payload: dict[str, Any]) -> bytes:
        key = (len(payload.get("texts") or []), int(payload.get("output_dimension") or 0))
        body = self.bodies.get(key)
        if body is None:  # bench.fake caches whole HTTP/1.1 responses: keep the body
            body = self.bodies[key] = self.answers.cohere_embed(payload).split(b"\r\n\r\n", 1)[1]
        return body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                kind = (await receive())["type"]
                await send({"type": f"{kind}.complete"})  # lifespan.startup / lifespan.shutdown
                if kind == "lifespan.shutdown":
                    return
        if scope["type"] != "http":
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        status, body = 404, b'{"message":"no such route"}'
        if scope["method"] == "GET" and scope["path"] == "/cpu":
            status, body = 200, orjson.dumps({"cpu": time.process_time()})
        elif scope["method"] == "POST" and scope["path"].endswith("/v2/embed"):
            status, body = 200, self.embed(orjson.loads(b"".join(chunks)))
            await asyncio.sleep(self.delay)
        client = scope.get("client") or ("", 0)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-http-version", str(scope["http_version"]).encode()),
            (b"x-client-port", str(client[1]).encode()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def serve(protocol: str, certfile: str, keyfile: str, delay_ms: float) -> None:
    """Serve the fake on a free loopback port over TLS; print ``PORT <n>`` once it accepts connections."""
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((HOST, 0))
    sock.listen(1024)  # connections queue from here on, before hypercorn accepts them
    config = Config()
    config.bind = [f"fd://{sock.fileno()}"]
    config.certfile, config.keyfile = certfile, keyfile
    config.alpn_protocols = PROTOCOLS[protocol]
    config.keep_alive_timeout = 120
    config.loglevel = "WARNING"
    config.include_date_header = config.include_server_header = False
    app = FakeCohere(delay_ms / 1000)
    app.answers._vectors(DIMS)  # the vector pool, before announcing the port
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    asyncio.run(hypercorn_serve(app, config, mode="asgi"))  # type: ignore[arg-type]


@contextmanager
def tls_fake(protocol: str, certfile: Path, keyfile: Path, delay_ms: float) -> Iterator[int]:
    cmd = [
        sys.executable, "-m", "bench.http2", "--serve", protocol, "--certfile", str(certfile),
        "--keyfile", str(keyfile), "--delay-ms", str(delay_ms),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=python_env(), cwd=ROOT)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode().strip()
        if not line.startswith("PORT "):
            raise RuntimeError(f"the {protocol} fake did not start: {line!r}")
        yield int(line.split()[1])
    finally:
        stop(proc)


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed ECDSA P-256 certificate for ``127.0.0.1`` and ``localhost``: (certfile, keyfile)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    alt = x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(alt, critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return certfile, keyfile


# --- the client (this process) --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    wall_ms: float
    cpu_ms: float
    server_cpu_ms: float
    connections: int


class Upstream:
    """One protocol's fake: where it is, how to trust it, and a side client that reads its CPU time."""

    def __init__(self, protocol: str, port: int, cafile: Path) -> None:
        self.protocol = protocol
        self.url = f"https://{HOST}:{port}/v2/embed"
        self.cpu_url = f"https://{HOST}:{port}/cpu"
        self.cafile = cafile
        self.probe = httpx.AsyncClient(verify=self.context(), http2=False)

    def context(self) -> ssl.SSLContext:
        """A fresh context trusting only the fake's certificate (httpcore sets its ALPN on every connect)."""
        return ssl.create_default_context(cafile=str(self.cafile))

    def http(self) -> Http:
        return Http(httpx.AsyncHTTPTransport(http2=self.protocol == "h2", verify=self.context(), limits=LIMITS))

    async def server_cpu(self) -> float:
        response = await self.probe.get(self.cpu_url)
        response.raise_for_status()
        return float(orjson.loads(response.content)["cpu"])


def call_sizes(inputs: int = INPUTS, per_call: int = PER_CALL) -> list[int]:
    return [min(per_call, inputs - start) for start in range(0, inputs, per_call)]


def request_bodies(text_chars: int) -> list[bytes]:
    """The 22 Cohere embed bodies, serialized once (the same bytes for both protocols)."""
    filler = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
    bodies: list[bytes] = []
    n = 0
    for size in call_sizes():
        texts = []
        for _ in range(size):
            head = f"passage {n}: "
            texts.append((head + filler * (text_chars // len(filler) + 1))[:text_chars])
            n += 1
        body = {
            "model": "embed-v4.0",
            "texts": texts,
            "input_type": "search_document",
            "embedding_types": ["float"],
            "output_dimension": DIMS,
        }
        bodies.append(orjson.dumps(body))
    return bodies


async def fan_out(http: Http, url: str, bodies: list[bytes]) -> list[tuple[int, httpx.Headers, bytes]]:
    """Every call at most ``CONCURRENCY`` in flight, as ``Gateway.bounded`` runs them."""
    gate = asyncio.Semaphore(CONCURRENCY)
    headers = {"Authorization": "Bearer sk-bench-fake"}

    async def one(body: bytes) -> tuple[int, httpx.Headers, bytes]:
        async with gate:
            return await http.post("cohere", url, body, headers, timeout=TIMEOUT, limit=ANSWER_LIMIT)

    return list(await asyncio.gather(*(one(b) for b in bodies)))


def check(protocol: str, answers: list[tuple[int, httpx.Headers, bytes]]) -> int:
    """Fail unless every answer is a 200 over ``protocol`` with the right vectors; the connections used."""
    sizes = call_sizes()
    if len(answers) != len(sizes):
        raise AssertionError(f"{protocol}: {len(answers)} answers for {len(sizes)} calls")
    vectors = 0
    ports: set[str] = set()
    for (status, headers, body), size in zip(answers, sizes, strict=True):
        if status != 200:
            raise AssertionError(f"{protocol}: HTTP {status}")
        if headers.get("x-http-version") != VERSIONS[protocol]:
            raise AssertionError(f"{protocol}: answered over HTTP/{headers.get('x-http-version')}")
        floats = orjson.loads(body)["embeddings"]["float"]
        if len(floats) != size or any(len(v) != DIMS for v in floats):
            raise AssertionError(f"{protocol}: {len(floats)} vectors for {size} inputs")
        vectors += len(floats)
        ports.add(headers.get("x-client-port", ""))
    if vectors != INPUTS:
        raise AssertionError(f"{protocol}: {vectors} vectors for {INPUTS} inputs")
    return len(ports)


async def timed(upstream: Upstream, http: Http, bodies: list[bytes]) -> Sample:
    gc.collect()
    server_before = await upstream.server_cpu()
    cpu, wall = time.process_time(), time.perf_counter()
    answers = await fan_out(http, upstream.url, bodies)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    server = await upstream.server_cpu() - server_before
    connections = check(upstream.protocol, answers)
    return Sample(wall * 1000, cpu * 1000, server * 1000, connections)


async def cold(upstream: Upstream, bodies: list[bytes]) -> Sample:
    http = upstream.http()  # its transport and TLS context are built before the clock starts, its client after
    try:
        return await timed(upstream, http, bodies)
    finally:
        await http.client().aclose()


async def run_all(upstreams: dict[str, Upstream], runs: int, warmup: int, text_chars: int) -> dict[str, Any]:
    bodies = request_bodies(text_chars)
    warm = {p: u.http() for p, u in upstreams.items()}
    for _ in range(warmup):  # imports (h2, hpack), the fakes' answer caches, the warm pools
        for p, u in upstreams.items():
            await cold(u, bodies)
            await timed(u, warm[p], bodies)
    samples: dict[str, list[Sample]] = {f"{p}_{kind}": [] for kind in ("cold", "warm") for p in upstreams}
    for i in range(runs):
        order = list(upstreams) if i % 2 == 0 else list(reversed(upstreams))
        for p in order:
            samples[f"{p}_cold"].append(await cold(upstreams[p], bodies))
        for p in order:
            samples[f"{p}_warm"].append(await timed(upstreams[p], warm[p], bodies))
    for p, http in warm.items():
        await http.client().aclose()
        await upstreams[p].probe.aclose()

    def median(key: str, field: str) -> float:
        values = [float(getattr(s, field)) for s in samples[key]]
        return round(statistics.median(values), 2)

    out: dict[str, Any] = {}
    for key in samples:
        out[f"{key}_ms"] = median(key, "wall_ms")
    for key in samples:
        out[f"{key}_cpu_ms"] = median(key, "cpu_ms")
    out["server_cpu_ms"] = {key: median(key, "server_cpu_ms") for key in samples}
    out["connections"] = {key: max(s.connections for s in samples[key]) for key in samples}
    out["wall_ms_all"] = {key: [round(s.wall_ms, 1) for s in samples[key]] for key in samples}
    return out


def h2_import_ms() -> float:
    """What a Lambda cold start would add for HTTP/2: importing h2 (and hpack, hyperframe) in a fresh interpreter."""
    code = (
        "import time, httpx; t = time.perf_counter(); import h2.config, h2.connection, h2.events, h2.exceptions, "
        "h2.settings; print((time.perf_counter() - t) * 1000)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=python_env(), cwd=ROOT
    )
    return round(float(out.stdout), 1)


def measure(runs: int = 5, *, warmup: int = 1, text_chars: int = TEXT_CHARS) -> dict[str, Any]:
    """Medians over ``runs`` fan-outs per protocol, cold and warm; see the module docstring."""
    with tempfile.TemporaryDirectory() as tmp:
        certfile, keyfile = make_certificate(Path(tmp))
        with (
            tls_fake("h1", certfile, keyfile, DELAY_MS) as h1_port,
            tls_fake("h2", certfile, keyfile, DELAY_MS) as h2_port,
        ):

            async def go() -> dict[str, Any]:
                upstreams = {"h1": Upstream("h1", h1_port, certfile), "h2": Upstream("h2", h2_port, certfile)}
                return await run_all(upstreams, runs, warmup, text_chars)

            result = asyncio.run(go())
    head = {
        "calls": len(call_sizes()),
        "inputs": INPUTS,
        "delay_ms": DELAY_MS,
        "runs": runs,
        "text_chars": text_chars,
        "dims": DIMS,
    }
    return {**result, **head, "h2_import_ms": h2_import_ms()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--text-chars", type=int, default=TEXT_CHARS, help="characters per input text")
    parser.add_argument("--serve", choices=sorted(PROTOCOLS), help=argparse.SUPPRESS)
    parser.add_argument("--certfile", help=argparse.SUPPRESS)
    parser.add_argument("--keyfile", help=argparse.SUPPRESS)
    parser.add_argument("--delay-ms", type=float, default=DELAY_MS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.certfile, args.keyfile, args.delay_ms)
        return
    result = measure(args.runs, warmup=args.warmup, text_chars=args.text_chars)
    sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")


if __name__ == "__main__":
    main()
