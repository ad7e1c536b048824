"""``make bench``: every figure in one run, JSON on stdout, PASS/FAIL per budget on stderr, and the README's table."""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from . import coldstart, report, server
from .client import ROOT, fake_upstream, python_env
from .scenarios import all_latency

OUT = ROOT / "bench" / "out"
PARTS = ("server", "inprocess", "memory", "cache", "jobs", "http2", "cold")


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much work each part does; ``smoke`` keeps everything to a few seconds (no budgets are meaningful)."""

    server_c1: int = 200
    server_c16: int = 480
    drift_requests: int = 10_000
    drift_window: int = 500
    inprocess: int = 300
    inprocess_warmup: int = 300
    warmup: int = 32
    import_runs: int = 10
    fanout_runs: int = 3
    fanout_inputs: int = 2048
    http2_runs: int = 5
    job_lines: int = 100_000
    layer: bool = True

    @classmethod
    def smoke(cls) -> Sizes:
        return cls(
            server_c1=5,
            server_c16=16,
            drift_requests=20,
            drift_window=10,
            inprocess=6,  # two a round, three rounds
            inprocess_warmup=2,
            warmup=2,
            import_runs=1,
            fanout_runs=1,
            fanout_inputs=200,
            http2_runs=0,
            job_lines=0,
            layer=False,
        )


def run_inprocess(fake_port: int, sizes: Sizes) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "inprocess.json"
        cmd = [
            sys.executable, "-m", "bench.inprocess", "--fake-port", str(fake_port), "--out", str(out),
            "--requests", str(sizes.inprocess), "--warmup", str(sizes.inprocess_warmup),
            "--fanout-runs", str(sizes.fanout_runs), "--fanout-inputs", str(sizes.fanout_inputs),
        ]  # fmt: skip
        # The handlers log one JSON line per request to stdout, as in Lambda; that is part of the cost, not output.
        # Metrics on, as in Lambda (one EMF document per request on stdout); the X-Ray SDK tracer off.
        subprocess.run(cmd, env=python_env(EMBEDRANK_METRICS="1"), cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        result: dict[str, Any] = orjson.loads(out.read_bytes())
        return result


async def run_server(server_port: int, fake_port: int, sizes: Sizes) -> dict[str, Any]:
    rows = [
        await server.measure(server_port, fake_port, s, sizes.server_c1, sizes.server_c16, sizes.warmup)
        for s in all_latency()
    ]
    flat = await server.drift(
        server_port, fake_port, all_latency()[0], sizes.drift_requests, sizes.drift_window, sizes.server_c1
    )
    return {"latency": rows, "drift": flat}


def run_json(module: str, *args: str) -> Any:
    """``python -m bench.<module> args`` in its own process; its JSON answer."""
    out = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", *args], env=python_env(), cwd=ROOT, check=True, capture_output=True
    )
    return orjson.loads(out.stdout)


def run(sizes: Sizes, parts: set[str]) -> dict[str, Any]:
    started = time.perf_counter()
    result: dict[str, Any] = {"machine": report.machine()}
    with fake_upstream() as fake_port:
        if "server" in parts:
            log(f"make serve (uvicorn + moto server), then {sizes.drift_requests} requests in a row ...")
            with server.local_server(fake_port) as port:
                result["server"] = asyncio.run(run_server(port, fake_port, sizes))
        if "inprocess" in parts:
            log("in-process Lambda handler, AWS call counts, fan-out ...")
            result["inprocess"] = run_inprocess(fake_port, sizes)
    if "memory" in parts:
        log("peak memory while refusing a 1 GiB answer ...")
        result["memory"] = {"plain": run_json("memory"), "gzip": run_json("memory", "--gzip")}
        log("peak memory while streaming 2048 x 3072 vectors ...")
        result["stream_memory"] = run_json("stream_memory")
    if "cache" in parts:
        log("the embedding cache on 2048 inputs, uncached vs cached ...")
        result["cache"] = run_json("cache")
    if "jobs" in parts and sizes.job_lines:
        log(f"a {sizes.job_lines}-line batch job through make serve, 1 to 8 workers ...")
        result["jobs"] = run_json("jobs")
    if "http2" in parts and sizes.http2_runs:
        log("fan-out over HTTP/1.1 and HTTP/2 (TLS, hypercorn) ...")
        result["http2"] = run_json("http2", "--runs", str(sizes.http2_runs))
    if "cold" in parts:
        modules = coldstart.handler_modules()
        layer = None
        if sizes.layer and coldstart.HOST_PLATFORM:
            log(f"layer build for this machine (make build-EmbedrankLayer, {coldstart.HOST_PLATFORM}) ...")
            layer = coldstart.build_layer(coldstart.HOST_PLATFORM)
        log("cold imports ...")
        half = max(1, sizes.import_runs // 2)
        plain = coldstart.import_times(modules, sizes.import_runs, layer)
        traced = coldstart.import_times(modules, half, layer, xray_sdk=True)
        imports = {name: {"lambda": plain[name], "xray_sdk": traced[name]} for name in modules}
        if layer is not None:
            bare = coldstart.import_times(modules, half, coldstart.without_bytecode(layer))
            for name in modules:
                imports[name]["no_pyc"] = bare[name]
        result["cold_start"] = {"imports": imports, "from_built_layer": layer is not None}
        log("cold start to ready, buffered vs streaming ...")
        result["cold_start"]["ready"] = coldstart.ready_times(coldstart.streaming_handlers(modules), half, layer)
        if sizes.layer:
            log(f"layer build for Lambda (make build-EmbedrankLayer, {coldstart.LAMBDA_PLATFORM}) ...")
            result["cold_start"]["layer"] = coldstart.layer_size()
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny request counts, no layer build, no README update")
    parser.add_argument("--no-readme", action="store_true", help="do not rewrite the README table")
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts: {', '.join(PARTS)}")
    args = parser.parse_args(argv)
    sizes = Sizes.smoke() if args.smoke else Sizes()
    parts = {p.strip() for p in args.only.split(",") if p.strip()}
    result = run(sizes, parts)
    lines = report.lines(result)
    result["budgets"] = [
        {"figure": ln.figure, "measured": ln.measured, "budget": ln.budget, "result": ln.verdict} for ln in lines
    ]
    sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    width = max((len(ln.figure) for ln in lines), default=0)
    for ln in lines:
        log(f"{ln.verdict:4}  {ln.figure:<{width}}  {ln.measured}  (budget {ln.budget})")
    if not args.smoke:
        OUT.mkdir(exist_ok=True)
        (OUT / "latest.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
        if not args.no_readme and parts == set(PARTS):
            report.update_readme(result)
            log(f"README.md performance table updated; JSON also in {OUT / 'latest.json'}")
    return 1 if any(ln.ok is False for ln in lines) and not args.smoke else 0
