"""The benchmark's helpers on tiny inputs, so that ``bench/`` does not rot. No timing is asserted here."""

from __future__ import annotations

import asyncio

import orjson

from bench import report, scenarios
from bench.client import Target, fake_upstream, load, paired, percentile
from bench.fake import Answers


def test_fake_answers_have_the_requested_shape() -> None:
    answers = Answers()
    for encoding in ("float", "base64"):
        raw = answers.route("/v1/embeddings", scenarios.embeddings(encoding, 3).direct_bytes)
        body = orjson.loads(raw.split(b"\r\n\r\n", 1)[1])
        assert len(body["data"]) == 3
        first = body["data"][0]["embedding"]
        assert len(first) == 1536 if encoding == "float" else isinstance(first, str)
    raw = answers.route("/v2/rerank", scenarios.rerank(7).direct_bytes)
    assert len(orjson.loads(raw.split(b"\r\n\r\n", 1)[1])["results"]) == 7
    raw = answers.route("/v2/embed", scenarios.fanout(5).direct_bytes)
    assert len(orjson.loads(raw.split(b"\r\n\r\n", 1)[1])["embeddings"]["float"]) == 5


def test_client_against_the_fake() -> None:
    scenario = scenarios.embeddings("base64", 2)
    with fake_upstream() as port:
        target = Target(port, scenario.direct_path, scenario.direct_bytes)
        run = asyncio.run(load(target, requests=6, concurrency=2, warmup=2))
        gateway, direct = asyncio.run(paired(target, target, requests=3, warmup=1))
    assert len(run.latencies) == 6 and run.errors == 0 and run.throughput > 0
    assert len(gateway.latencies) == len(direct.latencies) == 3


def test_percentile_and_report_lines() -> None:
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([float(i) for i in range(100)], 99) == 98.0
    # given an in-process result whose p50 is over its 1.5 ms budget
    result = {
        "machine": report.machine(),
        "seconds": 1.0,
        "inprocess": {
            "latency": [
                {
                    "scenario": "embeddings 16x1536 base64",
                    "errors": 0,
                    "added": {"p50_ms": 1.6, "p99_ms": 2.0},
                    "aws_calls_per_request": 2.0,
                    "aws_calls_by_operation": {"dynamodb.TransactWriteItems": 1.0, "dynamodb.UpdateItem": 1.0},
                    "aws_sdk_ms_per_request": 0.3,
                }
            ]
        },
    }
    # when it is reported, then each line has the verdict its budget gives
    lines = report.lines(result)
    assert [ln.verdict for ln in lines] == ["FAIL", "PASS", "PASS", "—"]
    assert "| figure | measured | budget | result |" in report.table(result)


def test_the_in_process_bench_runs_end_to_end_on_tiny_sizes() -> None:
    """The Lambda handlers with botocore's Stubber answering AWS, and the fan-out, run as ``make bench`` runs them
    (metrics on), then reported: shapes and verdict lines only, no timing."""
    from bench.main import Sizes, run_inprocess

    sizes = Sizes.smoke()
    with fake_upstream() as port:
        result = run_inprocess(port, sizes)
    rows = {row["scenario"]: row for row in result["latency"]}
    assert set(rows) == {s.name for s in scenarios.all_latency()}
    for row in rows.values():
        assert row["errors"] == 0 and row["requests"] == sizes.inprocess
        assert row["aws_calls_per_request"] == 2  # admission and the usage write, the auth reads cached
        assert set(row["added"]) == {"p50_ms", "p99_ms"} and row["aws_sdk_ms_per_request"] > 0
    assert result["fanout"]["inputs"] == sizes.fanout_inputs and result["fanout"]["upstream_calls"] == 3
    lines = report.lines({"machine": report.machine(), "seconds": 1.0, "inprocess": result})
    figures = " ".join(ln.figure for ln in lines)
    # p50, p99, the AWS calls and the SDK's CPU per scenario, and the fan-out; every budgeted line has a verdict.
    assert len(lines) == 4 * len(rows) + 2 and "fan-out" in figures and "embedding cache, hit path" in figures
    # the cache-hit request: no provider call, one BatchGetItem besides the admission and the usage write
    hits = result["cache_hits"]
    assert hits["requests"] == sizes.inprocess
    assert hits["aws_calls_by_operation"] == {
        "dynamodb.BatchGetItem": 1.0,
        "dynamodb.TransactWriteItems": 1.0,
        "dynamodb.UpdateItem": 1.0,
    }
    assert all(ln.verdict in ("PASS", "FAIL") for ln in lines if ln.ok is not None)


def test_the_streaming_benches_report_their_lines() -> None:
    """The streamed answer's memory (a real run: ~2 s) and the cold start to ready of each mode (one run, from the
    source tree), reported with their verdicts; no timing or size is asserted."""
    from bench import coldstart, stream_memory

    rows = stream_memory.measure()
    assert [(r["encoding"], r["status"]) for r in rows] == [("float", 200), ("base64", 200)]
    assert all(r["answer_mib"] > 30 and r["ratio"] is not None for r in rows)
    handlers = coldstart.streaming_handlers(coldstart.handler_modules())
    assert set(handlers) == {"embeddings_handler", "rerank_handler"}
    ready = coldstart.ready_times({"rerank_handler": handlers["rerank_handler"]}, runs=1)
    assert ready["rerank_handler"]["buffered"] > 0 and ready["rerank_handler"]["streaming"] > 0
    lines = report.lines({"stream_memory": rows, "cold_start": {"ready": ready}})
    assert [ln.verdict for ln in lines][:2] == ["PASS" if rows[0]["ratio"] <= 2.5 else "FAIL", "—"]
    assert "buffered vs streaming" in lines[-1].figure


def test_the_cache_bench_reports_both_requests_and_their_dynamodb_calls() -> None:
    from bench import cache

    result = cache.measure()
    assert result["dynamodb_calls"] == {
        "uncached": {"BatchGetItem": 21, "BatchWriteItem": 82, "TransactWriteItems": 1},
        "cached": {"BatchGetItem": 21, "TransactWriteItems": 1},
    }
    [line] = report.lines({"cache": result})
    assert line.verdict == "—" and "uncached vs all cached" in line.figure


def test_the_batch_job_bench_runs_a_small_job_through_make_serve() -> None:
    from bench import jobs

    [row] = jobs.measure(lines=300, workers=(2,), window=3)
    assert row["workers"] == 2 and row["lines_per_s"] > 0
    [line] = report.lines({"jobs": [row]})
    assert line.verdict == "—" and "2 workers" in line.figure
