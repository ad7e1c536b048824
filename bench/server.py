"""Mode (a): ``make serve``'s server (``python -m embedrank_tools.local``: uvicorn plus its local AWS, devaws) in a
child process, driven over loopback by the bench client; the same client calls the fake upstream directly."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .client import FAKE_KEY, ROOT, Target, added, free_port, load, paired, python_env, stop, summary, wait_for_port
from .scenarios import DEV_KEY, Scenario


@contextmanager
def local_server(fake_port: int) -> Iterator[int]:
    """Start ``python -m embedrank_tools.local`` against the fake upstreams; yield its port."""
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
