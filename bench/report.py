"""Budgets, PASS/FAIL lines, and the README's performance table."""

from __future__ import annotations

import os
import platform
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .client import ROOT

README = ROOT / "README.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"

INPROCESS_P50_MS, INPROCESS_P99_MS = 1.5, 5.0
AWS_CALLS = 2.0
SERVER_P50_MS = 30.0
IMPORT_MS = 300.0
LAYER_MB = 20.0
FANOUT_SPEEDUP = 5.0
MEMORY_MIB = 100.0
STREAM_MEMORY_RATIO = 2.5  # peak growth while streaming an answer, in answers' sizes


@dataclass(frozen=True, slots=True)
class Line:
    figure: str
    measured: str
    budget: str
    ok: bool | None  # None: informative, no budget

    @property
    def verdict(self) -> str:
        return "—" if self.ok is None else ("PASS" if self.ok else "FAIL")


def budget(figure: str, value: float, unit: str, limit: float, detail: str = "", at_least: bool = False) -> Line:
    measured = f"{value:g} {unit}".strip() + (f" ({detail})" if detail else "")
    sign = "≥" if at_least else "≤"
    return Line(figure, measured, f"{sign} {limit:g} {unit}".strip(), value >= limit if at_least else value <= limit)


def info(figure: str, measured: str) -> Line:
    return Line(figure, measured, "—", None)


def _inprocess(inproc: dict[str, Any]) -> list[Line]:
    out: list[Line] = []
    where = "Lambda handler in-process, c=1, AWS answered by botocore's Stubber"
    for row in inproc.get("latency", []):
        name, add = row["scenario"], row["added"]
        for pct, limit in (("p50", INPROCESS_P50_MS), ("p99", INPROCESS_P99_MS)):
            out.append(budget(f"{where}, added {pct}: {name}", round(add[f"{pct}_ms"], 2), "ms", limit))
    for row in inproc.get("latency", []):
        detail = ", ".join(f"{k} {v:g}" for k, v in row["aws_calls_by_operation"].items()) or "none"
        out.append(
            budget(
                f"AWS calls per request, steady state: {row['scenario']}",
                row["aws_calls_per_request"],
                "",
                AWS_CALLS,
                detail,
            )
        )
        out.append(
            info(f"AWS SDK (botocore) CPU per request: {row['scenario']}", f"{row['aws_sdk_ms_per_request']:.2f} ms")
        )
    fan = inproc.get("fanout")
    if fan:
        calls = fan["upstream_calls"]
        detail = f"{fan['gateway_ms']:.0f} ms vs {calls} calls one after another {fan['sequential_ms']:.0f} ms"
        figure = (
            f"fan-out {fan['inputs']} inputs, {fan['per_call']}/call, {fan['delay_ms']:g} ms upstream delay: speed-up"
        )
        out.append(budget(figure, fan["speedup"], "×", FANOUT_SPEEDUP, detail, at_least=True))
    return out


def _server(server: dict[str, Any]) -> list[Line]:
    out: list[Line] = []
    for row in server.get("latency", []):
        name = row["scenario"]
        c1 = row["c1"]["added"]
        out.append(
            budget(
                f"`make serve` (uvicorn + moto), c=1, added p50: {name}",
                round(c1["p50_ms"], 2),
                "ms",
                SERVER_P50_MS,
                f"p99 {c1['p99_ms']:.1f} ms",
            )
        )
        c16 = row["c16"]
        out.append(
            info(
                f"`make serve`, c=16, throughput: {name}",
                f"{c16['throughput_rps']:.0f} req/s (added p50 {c16['added']['p50_ms']:.1f} ms)",
            )
        )
    flat = server.get("drift")
    if flat:
        before, after = flat["added_before"]["p50_ms"], flat["added_after"]["p50_ms"]
        windows = flat["window_p50_ms_c2"]
        detail = f"before them {before:.1f} ms; p50 of each {flat['window']} at c=4: " + ", ".join(
            f"{w:.0f}" for w in windows
        )
        figure = f"`make serve`, c=1, added p50 after {flat['requests']} requests: {flat['scenario']}"
        out.append(budget(figure, round(after, 2), "ms", SERVER_P50_MS, detail))
    return out


def _memory(memory: dict[str, Any]) -> list[Line]:
    out = []
    for kind, row in memory.items():
        figure = f"peak memory growth refusing a {row['answer_mib']} MiB answer ({kind}; limit {row['limit_mib']} MiB)"
        out.append(budget(figure, row["peak_growth_mib"], "MiB", MEMORY_MIB, row["code"]))
    return out


def _cache(inproc: dict[str, Any], big: dict[str, Any]) -> list[Line]:
    out = []
    hits = inproc.get("cache_hits")
    if hits:
        calls = ", ".join(f"{k} {v:g}" for k, v in hits["aws_calls_by_operation"].items())
        out.append(
            info(
                f"embedding cache, hit path, in-process (Stubber), c=1: {hits['scenario']}",
                f"p50 {hits['latency']['p50_ms']:g} ms, p99 {hits['latency']['p99_ms']:g} ms, no provider call; "
                f"AWS calls per request {hits['aws_calls_per_request']:g} ({calls}), botocore CPU "
                f"{hits['aws_sdk_ms_per_request']:g} ms",
            )
        )
    if big:
        calls = "; ".join(
            f"{label}: " + ", ".join(f"{k} {v}" for k, v in ops.items()) for label, ops in big["dynamodb_calls"].items()
        )
        out.append(
            info(
                f"embedding cache, {big['inputs']} x {big['dimensions']} base64, {big['upstream_delay_ms']:g} ms "
                "upstream, moto in-process: uncached vs all cached",
                f"{big['uncached_ms']:g} vs {big['cached_ms']:g} ms, of which inside DynamoDB calls (botocore + "
                f"moto) {big['uncached_in_dynamodb_ms']:g} vs {big['cached_in_dynamodb_ms']:g} ms, so the gateway's "
                f"own {big['uncached_ms'] - big['uncached_in_dynamodb_ms']:.0f} vs "
                f"{big['cached_ms'] - big['cached_in_dynamodb_ms']:.0f} ms; DynamoDB calls: {calls}",
            )
        )
    return out


def _jobs(rows: list[dict[str, Any]]) -> list[Line]:
    return [
        info(
            f"batch job, {r['lines']} lines of {r['inputs_per_line']} inputs, 50 ms upstream, make serve with "
            f"{r['workers']} worker{'s' if r['workers'] > 1 else ''}",
            f"{r['lines_per_s']:g} lines/s ({r['inputs_per_s']:g} inputs/s), {r['chunk_s']:g} s a 100-line chunk; "
            f"upload {r['upload_s']:g} s, batches.create {r['create_s']:g} s",
        )
        for r in rows
    ]


def _stream_memory(rows: list[dict[str, Any]]) -> list[Line]:
    out = []
    for row in rows:
        figure = (
            f"streaming deployment, peak memory growth writing {row['inputs']} x {row['dimensions']} as "
            f"{row['encoding']} (x the answer's size)"
        )
        detail = f"{row['peak_growth_mib']:g} MiB for a {row['answer_mib']:g} MiB answer, HTTP {row['status']}"
        if row["encoding"] == "float":
            out.append(budget(figure, row["ratio"], "×", STREAM_MEMORY_RATIO, detail))
        else:
            out.append(info(figure, f"{row['ratio']:g} × ({detail})"))
    return out


def _http2(h2: dict[str, Any]) -> list[Line]:
    figure = (
        f"fan-out {h2['inputs']} inputs in {h2['calls']} calls, {h2['delay_ms']:g} ms delay, TLS: HTTP/1.1 vs HTTP/2"
    )
    measured = (
        f"cold {h2['h1_cold_ms']:.0f} vs {h2['h2_cold_ms']:.0f} ms, warm {h2['h1_warm_ms']:.0f} vs "
        f"{h2['h2_warm_ms']:.0f} ms; client CPU warm {h2['h1_warm_cpu_ms']:.0f} vs {h2['h2_warm_cpu_ms']:.0f} ms "
        "(so HTTP/1.1 is kept)"
    )
    return [info(figure, measured)]


def _cold(cold: dict[str, Any]) -> list[Line]:
    out: list[Line] = []
    source = "from the built layer, read-only" if cold.get("from_built_layer") else "from the source tree"
    for name, row in cold.get("imports", {}).items():
        extra = f"with EMBEDRANK_XRAY_SDK=1: {row['xray_sdk']['median_ms']:.0f} ms"
        if "no_pyc" in row:
            extra += f"; the same layer without its .pyc: {row['no_pyc']['median_ms']:.0f} ms"
        figure = f"cold import `{name}` (Lambda env, {source}; median of {row['lambda']['runs']})"
        out.append(budget(figure, round(row["lambda"]["median_ms"]), "ms", IMPORT_MS, extra))
    for name, row in cold.get("ready", {}).items():
        figure = f"cold start to ready, `{name}` ({source}; median of {row['runs']}): buffered vs streaming"
        measured = (
            f"{row['buffered']:.0f} vs {row['streaming']:.0f} ms (interpreter + handler import, vs interpreter + "
            "uvicorn + app to its first answer; the Lambda Web Adapter's own start not included)"
        )
        out.append(info(figure, measured))
    layer = cold.get("layer")
    if layer:
        figure = "layer size, unzipped (`sam build`'s make target, arm64)"
        out.append(budget(figure, round(layer["mb"], 1), "MB", LAYER_MB, f"of which .pyc {layer['pyc_mb']:.1f} MB"))
    return out


def lines(result: dict[str, Any]) -> list[Line]:
    out = _inprocess(result.get("inprocess") or {})
    out += _server(result.get("server") or {})
    out += _memory(result.get("memory") or {})
    out += _stream_memory(result.get("stream_memory") or [])
    out += _cache(result.get("inprocess") or {}, result.get("cache") or {})
    out += _jobs(result.get("jobs") or [])
    if result.get("http2"):
        out += _http2(result["http2"])
    out += _cold(result.get("cold_start") or {})
    failed = [(f"in-process: {r['scenario']}", r["errors"]) for r in (result.get("inprocess") or {}).get("latency", [])]
    failed += [(f"`make serve`: {r['scenario']}", r["errors"]) for r in (result.get("server") or {}).get("latency", [])]
    drift = (result.get("server") or {}).get("drift")
    if drift:
        failed.append((f"`make serve`, {drift['requests']} requests", drift["errors"]))
    out += [Line(f"failed requests, {where}", str(n), "0", False) for where, n in failed if n]
    return out


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "loadavg_at_start": round(os.getloadavg()[0], 2),
    }


def table(result: dict[str, Any]) -> str:
    m = result["machine"]
    rows = [
        f"Last run: {m['date']}, {m['nproc']} CPUs ({m['cpu']}), Python {m['python']}, {m['platform']}; "
        f"load average {m['loadavg_at_start']:g} at start (other work shares the machine); "
        f"`make bench` took {result['seconds']:.0f} s.",
        "",
        "| figure | measured | budget | result |",
        "|---|---|---|---|",
    ]
    rows += [f"| {ln.figure} | {ln.measured} | {ln.budget} | {ln.verdict} |" for ln in lines(result)]
    return "\n".join(rows)


# Used only when the README has no performance section yet: its prose is kept in the README, not here.
SECTION = """## Performance

{start}
{table}
{end}

"""


def update_readme(result: dict[str, Any]) -> None:
    text = README.read_text()
    block = f"{START}\n{table(result)}\n{END}"
    if START in text and END in text:
        text = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: block, text, count=1, flags=re.S)
    else:
        section = SECTION.format(start=START, table=table(result), end=END)
        anchor = "## Development"
        text = text.replace(anchor, section + anchor, 1) if anchor in text else text.rstrip() + "\n\n" + section
    README.write_text(text)
