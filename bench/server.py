"""``make serve``'s server (``python -m embedrank_tools.local``: uvicorn plus its local AWS, moto's server) in a child
process, driven over loopback by the bench client; the same client calls the fake upstream directly."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from .client import FAKE_KEY, ROOT, Target, added, free_port, load, paired, python_env, stop, summary, wait_for_port
from .scenarios import DEV_KEY, Scenario

PACE_RPS = 40.0  # the drift run's requests per second, under the plan's 3,000 a minute


@contextmanager
def local_server(fake_port: int, **extra: str) -> Iterator[int]:
    """Start ``python -m embedrank_tools.local`` against the fake upstreams (``extra``: more environment); yield its
    port."""
    port, aws_port = free_port(), free_port()
    base = f"http://127.0.0.1:{fake_port}"
    env = python_env(
        HOST="127.0.0.1",
        PORT=str(port),
        LOCAL_AWS_PORT=str(aws_port),
        EMBEDRANK_DEV_API_KEY=DEV_KEY,
        OPENAI_API_KEY=FAKE_KEY,
        OPENAI_BASE_URL=f"{base}/v1",
        COHERE_API_KEY=FAKE_KEY,
        COHERE_BASE_URL=base,
    )
    env.update(extra)
    env.pop("AWS_LAMBDA_FUNCTION_NAME", None)
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "embedrank_tools.local"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log
        )
        try:
            try:
                wait_for_port(port, timeout=90, proc=proc)
            except (RuntimeError, TimeoutError):
                log.seek(0)
                sys.stderr.write(log.read().decode(errors="replace")[-3000:])
                raise
            try:
                yield port
            except Exception:
                log.seek(0)
                sys.stderr.write("local server log (tail):\n" + log.read().decode(errors="replace")[-3000:])
                raise
        finally:
            stop(proc)


async def measure(
    server_port: int, fake_port: int, scenario: Scenario, requests_c1: int, requests_c16: int, warmup: int
) -> dict[str, Any]:
    gateway = Target(server_port, scenario.gateway_path, scenario.gateway_bytes, {"x-api-key": DEV_KEY})
    direct = Target(fake_port, scenario.direct_path, scenario.direct_bytes, {"authorization": f"Bearer {FAKE_KEY}"})
    await settled(server_port)
    gw1, up1 = await paired(gateway, direct, requests_c1, warmup, max_seconds=15)
    up16 = await load(direct, requests_c16, 16, warmup, max_seconds=15)
    gw16 = await load(gateway, requests_c16, 16, warmup, max_seconds=15)
    return {
        "scenario": scenario.name,
        "errors": gw1.errors + gw16.errors + up16.errors,
        "c1": {
            "requests": len(gw1.latencies),
            "direct": summary(up1.latencies),
            "gateway": summary(gw1.latencies),
            "added": added(gw1.latencies, up1.latencies),
        },
        "c16": {
            "requests": len(gw16.latencies),
            "direct": summary(up16.latencies),
            "gateway": summary(gw16.latencies),
            "added": added(gw16.latencies, up16.latencies),
            "throughput_rps": round(gw16.throughput, 1),
            "direct_throughput_rps": round(up16.throughput, 1),
        },
    }


async def settled(port: int) -> None:
    """Wait until the server's usage writes of answers already sent are done: ``GET /v1/usage`` waits for them. A
    phase that follows a burst then measures the gateway, not moto catching up with the burst's writes."""
    day = time.strftime("%Y-%m-%d", time.gmtime())
    async with httpx.AsyncClient(timeout=120) as client:
        r = await client.get(
            f"http://127.0.0.1:{port}/v1/usage", params={"start": day, "end": day}, headers={"x-api-key": DEV_KEY}
        )
        r.raise_for_status()


async def drift(
    server_port: int, fake_port: int, scenario: Scenario, total: int, window: int, paired_n: int
) -> dict[str, Any]:
    """Whether ``make serve`` stays as fast after ``total`` requests (its local AWS's tables growing by one usage record
    each): the added p50 at concurrency 1 before and after, and the p50 of each ``window`` of the load between."""
    gateway = Target(server_port, scenario.gateway_path, scenario.gateway_bytes, {"x-api-key": DEV_KEY})
    direct = Target(fake_port, scenario.direct_path, scenario.direct_bytes, {"authorization": f"Bearer {FAKE_KEY}"})
    await settled(server_port)
    gw_before, up_before = await paired(gateway, direct, paired_n, warmup=0, max_seconds=60)
    windows: list[float] = []
    errors = gw_before.errors
    for _ in range(total // window):
        # Paced under the dev key's plan (ultra: 3,000 requests a minute), which would otherwise refuse some.
        started = time.perf_counter()
        run = await load(gateway, window, 2, max_seconds=600)
        windows.append(summary(run.latencies)["p50_ms"])
        errors += run.errors
        await asyncio.sleep(max(0.0, window / PACE_RPS - (time.perf_counter() - started)))
    await settled(server_port)
    gw_after, up_after = await paired(gateway, direct, paired_n, warmup=0, max_seconds=60)
    return {
        "scenario": scenario.name,
        "requests": total,
        "errors": errors + gw_after.errors,
        "added_before": added(gw_before.latencies, up_before.latencies),
        "added_after": added(gw_after.latencies, up_after.latencies),
        "window": window,
        "window_p50_ms_c2": windows,
    }
