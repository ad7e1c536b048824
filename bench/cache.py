"""The embedding cache on a 2,048-input request: ``python -m bench.cache`` prints JSON.

In a fresh process: moto (in-process) holds the tables, a plan with the cache on, and the provider is an
``httpx.MockTransport`` that answers OpenAI's base64 after 50 ms per call (2,048 × 1,536 goes in two calls). The app
is called as uvicorn calls it. Measured, each a few times on fresh texts: the request with nothing cached (the
provider's calls, then the entries written before the answer), then the same texts again (all from the cache), and
the DynamoDB calls each makes, counted on the process's boto3 client.

moto answers in-process, with its own CPU per item: it is slower than DynamoDB itself for batches of thousands of
6 KB items (it copies every item it reads or writes). So the wall time spent inside DynamoDB calls (the union of
their intervals: they run in parallel) is measured too, and the gateway's own time is the rest; what real DynamoDB
adds instead is a network round trip per batch call, 8 in flight at once (21 reads, 82 writes for 2,048 entries).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import threading
import time
from collections import Counter
from typing import Any

import orjson

from .stream_memory import call, print_measured

COUNT, DIMS, DELAY = 2048, 1536, 0.05
MODEL = "openai/text-embedding-3-small"
KEY = "er-bench-cache-000000000000000000000000000000000000000"
RUNS = 3


def provider() -> Any:
    import base64
    import random
    from array import array

    import httpx

    rng = random.Random(7)
    # One vector for every input: the cache keys on the texts; the bytes are only carried.
    vectors = [base64.b64encode(array("f", [rng.uniform(-0.1, 0.1) for _ in range(DIMS)]).tobytes()).decode()]

    async def answer(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(DELAY)
        body = json.loads(request.content)
        data = [{"object": "embedding", "index": i, "embedding": vectors[0]} for i in range(len(body["input"]))]
        raw = orjson.dumps({"object": "list", "data": data, "model": body["model"], "usage": {"total_tokens": 1}})
        return httpx.Response(200, content=raw, headers={"content-type": "application/json"})

    return httpx.MockTransport(answer)


def union(spans: list[tuple[float, float]]) -> float:
    """Seconds covered by at least one of ``spans``."""
    total, end = 0.0, float("-inf")
    for start, stop in sorted(spans):
        if stop > end:
            total += stop - max(start, end)
            end = stop
    return total


def measure() -> dict[str, Any]:
    import boto3
    from moto import mock_aws

    from embedrank import aws
    from embedrank.api.app import Services, create_app
    from embedrank.config import Settings
    from embedrank.providers import Registry
    from embedrank.store.dynamo import Stores
    from embedrank_tools.provision import create_key, create_tables, put_provider_secret

    settings = Settings.from_env({})
    with mock_aws():
        aws.reset()
        db = boto3.client("dynamodb", region_name="us-east-1")
        create_tables(db, settings)
        Stores(settings, db).put_plan({"name": "indexing", "allowed_models": "all", "embedding_cache_days": 30})
        create_key(db, settings, plan="indexing", name="bench", key=KEY)
        sm = boto3.client("secretsmanager", region_name="us-east-1")
        put_provider_secret(sm, settings.provider_secret, {"openai": {"api_key": "sk-bench"}})
        calls: Counter[str] = Counter()
        spans: list[tuple[float, float]] = []
        local = threading.local()

        def started(model: Any, **_: Any) -> None:
            calls.update([model.name])
            local.t0 = time.perf_counter()

        def ended(**_: Any) -> None:
            spans.append((local.t0, time.perf_counter()))

        events = aws.dynamodb().meta.events
        events.register("provide-client-params.dynamodb", started)
        events.register("after-call.dynamodb", ended)
        app = create_app(services=Services.build(settings, registry=Registry(provider())))
        asyncio.run(call(app, orjson.dumps({"model": MODEL, "input": ["warm"], "encoding_format": "base64"}), KEY))
        cold: list[float] = []
        warm: list[float] = []
        inside: dict[str, list[float]] = {"uncached": [], "cached": []}
        counted: dict[str, dict[str, int]] = {}
        for run in range(RUNS):
            body = orjson.dumps(
                {"model": MODEL, "input": [f"run {run} text {i}" for i in range(COUNT)], "encoding_format": "base64"}
            )
            for label, sink in (("uncached", cold), ("cached", warm)):
                calls.clear()
                spans.clear()
                t0 = time.perf_counter()
                status, _ = asyncio.run(call(app, body, KEY))
                sink.append((time.perf_counter() - t0) * 1000)
                inside[label].append(union(spans) * 1000)
                if status != 200:
                    raise RuntimeError(f"{label}: HTTP {status}")
                counted[label] = dict(sorted(calls.items()))
        return {
            "inputs": COUNT,
            "dimensions": DIMS,
            "upstream_delay_ms": DELAY * 1000,
            "runs": RUNS,
            "uncached_ms": round(statistics.median(cold), 1),
            "cached_ms": round(statistics.median(warm), 1),
            "uncached_in_dynamodb_ms": round(statistics.median(inside["uncached"]), 1),
            "cached_in_dynamodb_ms": round(statistics.median(inside["cached"]), 1),
            "dynamodb_calls": counted,
        }


def main() -> None:
    print_measured(measure)


if __name__ == "__main__":
    main()
