"""The load generator: a minimal keep-alive HTTP/1.1 client (one connection per worker), timing and statistics.

The same client measures the gateway and the fake upstream directly, so the client's own cost cancels out of the
difference. It reads whole bodies (``content-length`` only: the gateway, uvicorn and the fake all send it) and never
parses them.
"""

from __future__ import annotations

import asyncio
import math
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAKE_KEY = "sk-bench-fake"  # the fake upstream's API key, as the gateway's provider secret holds it


class Connection:
    """One keep-alive connection; one request in flight at a time."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port, limit=1 << 20)
        sock = self._writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with suppress(OSError):
                await self._writer.wait_closed()
            self._writer = self._reader = None

    async def post(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        if self._writer is None:
            await self.open()
        assert self._reader is not None and self._writer is not None
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        head = (
            f"POST {path} HTTP/1.1\r\nhost: {self.host}:{self.port}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n{extra}\r\n"
        )
        try:
            self._writer.write(head.encode("latin-1") + body)
            raw = await self._reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            # The server dropped the connection (e.g. an unhandled error): count it as a failed request, reconnect.
            self._writer.close()
            self._writer = self._reader = None
            return 0, b""
        status = int(raw[9:12])
        length = -1
        for line in raw.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length < 0:
            raise RuntimeError("response without content-length")
        return status, await self._reader.readexactly(length)


@dataclass(frozen=True, slots=True)
class Target:
    """One request to send: where, what, and with which headers."""

    port: int
    path: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"


@dataclass(slots=True)
class Run:
    """Latencies (seconds) of one load run and its wall time."""

    latencies: list[float]
    wall: float
    errors: int = 0

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.wall if self.wall > 0 else 0.0


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of ``values``."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]


async def load(target: Target, requests: int, concurrency: int, warmup: int = 0, max_seconds: float = 30.0) -> Run:
    """Send ``requests`` requests with ``concurrency`` workers (one connection each); time each one.

    ``max_seconds`` caps a run on a pathologically slow build (the number actually sent is ``len(latencies)``)."""
    conns = [Connection(target.host, target.port) for _ in range(concurrency)]
    await asyncio.gather(*(c.open() for c in conns))
    try:
        for _ in range(-(-warmup // concurrency)):  # concurrent rounds: the server's thread pool warms up too
            await asyncio.gather(*(c.post(target.path, target.body, target.headers) for c in conns))
        latencies: list[float] = []
        errors = 0
        remaining = requests

        async def worker(conn: Connection) -> None:
            nonlocal remaining, errors
            clock = time.perf_counter
            while remaining > 0 and clock() < deadline:
                remaining -= 1
                t0 = clock()
                status, _ = await conn.post(target.path, target.body, target.headers)
                latencies.append(clock() - t0)
                if status != 200:
                    errors += 1

        started = time.perf_counter()
        deadline = started + max_seconds
        await asyncio.gather(*(worker(c) for c in conns))
        wall = time.perf_counter() - started
        return Run(latencies, wall, errors)
    finally:
        await asyncio.gather(*(c.close() for c in conns))


async def paired(
    gateway: Target, direct: Target, requests: int, warmup: int = 20, max_seconds: float = 30.0
) -> tuple[Run, Run]:
    """Concurrency 1, gateway and direct requests alternated so that drift on a shared machine hits both alike."""
    gw, up = Connection(gateway.host, gateway.port), Connection(direct.host, direct.port)
    try:
        for _ in range(warmup):
            await gw.post(gateway.path, gateway.body, gateway.headers)
            await up.post(direct.path, direct.body, direct.headers)
        lat_g: list[float] = []
        lat_d: list[float] = []
        errors = 0
        clock = time.perf_counter
        started = clock()
        for _ in range(requests):
            if clock() - started > max_seconds:
                break
            t0 = clock()
            status, _ = await up.post(direct.path, direct.body, direct.headers)
            t1 = clock()
            status_g, _ = await gw.post(gateway.path, gateway.body, gateway.headers)
            t2 = clock()
            lat_d.append(t1 - t0)
            lat_g.append(t2 - t1)
            errors += (status != 200) + (status_g != 200)
        wall = clock() - started
        return Run(lat_g, wall, errors), Run(lat_d, wall, 0)
    finally:
        await gw.close()
        await up.close()


# -- processes ---------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


def python_env(**extra: str) -> dict[str, str]:
    """The environment for child interpreters: the repo's packages importable, no stray AWS endpoints. (``make
    bench`` sets the Lambda functions' malloc settings for the whole run, as ``make serve`` does.)"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    paths = [str(ROOT), str(ROOT / "layers" / "embedrank"), str(ROOT / "tools")]
    env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra)
    return env


@contextmanager
def fake_upstream(delay_ms: float = 0.0) -> Iterator[int]:
    """Start ``bench.fake`` in its own process on a free loopback port; yield the port."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.fake", "--port", "0", "--delay-ms", str(delay_ms)],
        stdout=subprocess.PIPE,
        env=python_env(),
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode().strip()
        if not line.startswith("PORT "):
            raise RuntimeError(f"the fake upstream did not start: {line!r}")
        yield int(line.split()[1])
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def summary(values: list[float]) -> dict[str, float]:
    """p50 and p99 of latencies in seconds, in ms."""
    return {"p50_ms": ms(percentile(values, 50)), "p99_ms": ms(percentile(values, 99))}


def added(gateway: list[float], direct: list[float]) -> dict[str, float]:
    """What the gateway adds, in ms: its p50 minus the direct request's; its p99 minus the direct p50, an upper bound
    (the difference of two p99s comes out near zero whenever the direct path has a hiccup of its own)."""
    return {
        "p50_ms": ms(percentile(gateway, 50) - percentile(direct, 50)),
        "p99_ms": ms(percentile(gateway, 99) - percentile(direct, 50)),
    }
