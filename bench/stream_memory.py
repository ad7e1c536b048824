"""Peak memory while the streaming deployment writes 2,048 x 3,072 vectors: ``python -m bench.stream_memory`` prints
JSON, one row per encoding.

In a fresh process: moto (in-process) holds the tables, the provider is an ``httpx.MockTransport`` answering each
call (four, at 669 vectors a call) with OpenAI's base64 answer, built anew per call as if read off the network, of
unit-normalised float32 vectors with random mantissas (64 distinct ones, repeated: real embeddings' digits and
compressibility). The app is called as uvicorn calls it (ASGI) and its body chunks are counted and dropped, as a socket
sends them. The figure is the growth of the peak resident set (``VmHWM``, reset just before) over the resident set
before the request, against the answer's size: the budget is 2.5 times the answer (issue 15).
"""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import math
import os
import random
import sys
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from .memory import MiB, current_rss, peak_rss

COUNT, DIMS, DISTINCT = 2048, 3072, 64
MODEL = "openai/text-embedding-3-large"
KEY = "er-bench-stream-memory-0000000000000000000000000000"


def realistic(seed: int) -> str:
    rng = random.Random(seed)
    values = [rng.gauss(0, 1) for _ in range(DIMS)]
    norm = math.sqrt(sum(v * v for v in values))
    return base64.b64encode(array("f", [v / norm for v in values]).tobytes()).decode()


def provider(vectors: list[str]) -> Any:
    import httpx

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        data = [
            {"object": "embedding", "index": i, "embedding": vectors[int(t[5:]) % DISTINCT]}
            for i, t in enumerate(body["input"])
        ]
        raw = orjson.dumps({"object": "list", "data": data, "model": body["model"], "usage": {"total_tokens": 1}})
        return httpx.Response(200, content=raw, headers={"content-type": "application/json"})

    return httpx.MockTransport(answer)


async def post(app: Any, path: str, body: bytes, key: str, send: Any) -> None:
    """POST ``body`` to ``app`` as uvicorn would, the client staying connected; ``send`` gets every message."""
    asked = False

    async def receive() -> dict[str, Any]:
        nonlocal asked
        if asked:  # still connected: Starlette listens for a disconnect while it streams
            await asyncio.Event().wait()
        asked = True
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"x-api-key", key.encode()), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    await app(scope, receive, send)


async def call(app: Any, body: bytes, key: str = KEY) -> tuple[int, int]:
    """POST /v1/embeddings; (status, body bytes sent), each chunk dropped once sent, as a socket sends it."""
    status, size = 0, 0

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, size
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            size += len(message.get("body", b""))

    await post(app, "/v1/embeddings", body, key, send)
    return status, size


def measure() -> list[dict[str, Any]]:
    import boto3
    from moto import mock_aws

    from embedrank.api.app import Services, create_app
    from embedrank.config import Settings
    from embedrank.providers import Registry
    from embedrank_tools.provision import create_key, create_tables, put_provider_secret, seed_plans

    settings = Settings.from_env({})
    vectors = [realistic(seed) for seed in range(DISTINCT)]
    rows = []
    with mock_aws():
        db = boto3.client("dynamodb", region_name="us-east-1")
        create_tables(db, settings)
        seed_plans(db, settings)
        create_key(db, settings, plan="ultra", name="bench", key=KEY)
        sm = boto3.client("secretsmanager", region_name="us-east-1")
        put_provider_secret(sm, settings.provider_secret, {"openai": {"api_key": "sk-bench"}})
        services = Services.build(settings, registry=Registry(provider(vectors)))
        app = create_app(services=services)
        for encoding in ("float", "base64"):
            texts = [f"text-{i}" for i in range(COUNT)]
            small = orjson.dumps({"model": MODEL, "input": texts[:16], "encoding_format": encoding})
            big = orjson.dumps({"model": MODEL, "input": texts, "encoding_format": encoding})
            asyncio.run(call(app, small))  # imports, caches, pools: what a warm container holds
            gc.collect()
            Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current resident set
            before = current_rss()
            status, size = asyncio.run(call(app, big))
            grown = peak_rss() - before
            rows.append(
                {
                    "encoding": encoding,
                    "inputs": COUNT,
                    "dimensions": DIMS,
                    "status": status,
                    "answer_mib": round(size / MiB, 1),
                    "peak_growth_mib": round(grown / MiB, 1),
                    "ratio": round(grown / size, 2) if size else None,
                }
            )
    return rows


def print_measured(measure: Callable[[], Any]) -> None:
    """``measure()``'s result as one JSON line on stdout, the request log lines kept off it."""
    os.environ["POWERTOOLS_LOG_LEVEL"] = "WARNING"
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    sys.stdout.write(json.dumps(measure()) + "\n")


def main() -> None:
    print_measured(measure)


if __name__ == "__main__":
    main()
