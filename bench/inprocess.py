"""The Lambda handlers invoked in-process with API Gateway v2 events, every AWS call answered by botocore's Stubber.

Run as ``python -m bench.inprocess --fake-port N --out result.json`` (a child process: the module-level apps and the
event loop Mangum keeps stay out of the orchestrator).

The Stubber sits inside the process's own boto3 clients (``embedrank.aws``), the ones the handlers use: botocore
still builds and serializes every call, resolves its endpoint and runs its event hooks, and only the HTTP exchange
with DynamoDB or Secrets Manager is replaced by the answer AWS would give (the real item shapes, from
``embedrank.store``). So the added latency below includes the AWS SDK's own CPU, reported on its own line too, and
excludes only the network round trips to AWS. Before each invocation the bench queues exactly the answers that
request will ask for: the key and plan reads when the auth cache is cold, the month's spend once a day, the admission
and the usage write; the provider secret when its cache is cold. A call the bench did not foresee fails the request.

The direct baseline is the same upstream request sent with the bench client from the same event loop, alternating
with the gateway's requests, at concurrency 1 (a Lambda container serves one request at a time).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson

from .client import FAKE_KEY, ROOT, Connection, added, ms, percentile, summary
from .scenarios import DEV_KEY, Scenario, all_latency, embeddings, fanout

HANDLERS = {
    "embeddings": ROOT / "functions" / "embeddings" / "embeddings_handler.py",
    "rerank": ROOT / "functions" / "rerank" / "rerank_handler.py",
}
WARMUP = 300
KEY_ID = "key_bench"


class StubbedAws:
    """botocore's Stubber on the process's DynamoDB and Secrets Manager clients, plus a count of every call and the
    time botocore spends on it (from ``provide-client-params``, its first event, to ``after-call``, its last)."""

    def __init__(self, fake_port: int) -> None:
        from botocore.stub import Stubber

        from embedrank import aws
        from embedrank.config import settings
        from embedrank.domain.auth import hash_key
        from embedrank.domain.records import KeyRecord
        from embedrank.store.dynamo import key_to_item, plan_to_item
        from embedrank_tools.accounts import load_plans

        self.settings = settings()
        self.key_hash = hash_key(DEV_KEY)
        record = KeyRecord(KEY_ID, "bench", "ultra", "active", "2026-01-01T00:00:00+00:00")
        self.key_item = key_to_item(self.key_hash, record)
        self.plan = next(p for p in load_plans() if p["name"] == "ultra")
        self.plan_item = plan_to_item(self.plan)
        self.secret = orjson.dumps(provider_secret(fake_port)).decode()
        self.calls: Counter[str] = Counter()
        self.sdk_seconds = 0.0
        self.cache_answer: dict[str, Any] | None = None  # a BatchGetItem answer: every input cached
        self._started: float | None = None
        self.db, self.sm = aws.dynamodb(), aws.secretsmanager()
        self.db_stub, self.sm_stub = Stubber(self.db), Stubber(self.sm)
        for client in (self.db, self.sm):
            client.meta.events.register("provide-client-params", self._start)
            client.meta.events.register("after-call", self._end)
        self.db_stub.activate()
        self.sm_stub.activate()

    def _start(self, model: Any, **_: Any) -> None:
        self.calls[f"{model.service_model.service_name}.{model.name}"] += 1
        self._started = time.perf_counter()

    def _end(self, **_: Any) -> None:
        if self._started is not None:
            self.sdk_seconds += time.perf_counter() - self._started
            self._started = None

    def reset(self) -> None:
        self.calls.clear()
        self.sdk_seconds = 0.0

    def expect(self, services: Any, provider: str) -> None:
        """Queue the answers to the calls the next request will make, in the order it makes them."""
        from embedrank.store.dynamo import COST, NANO

        if not services.auth._keys.peek(self.key_hash)[0]:
            self.db_stub.add_response("get_item", {"Item": self.key_item})
        if not services.auth._plans.peek("ultra")[0]:
            self.db_stub.add_response("get_item", {"Item": self.plan_item})
        day = datetime.now(UTC).date().isoformat()
        budget = self.plan.get("monthly_budget") is not None
        if budget and not services.limiter._spent_before.peek((KEY_ID, day))[0]:
            spent = {"Item": {COST: {"N": str(NANO)}}}
            self.db_stub.add_response("transact_get_items", {"Responses": [spent, spent]})
        self.db_stub.add_response("update_item", {"Attributes": {"d": {"N": "1"}, COST: {"N": "0"}}})
        if self.cache_answer is not None:  # answered from the cache: no provider, so no secret either
            self.db_stub.add_response("batch_get_item", self.cache_answer)
        elif not services.gateway.credentials.cached(provider)[0]:
            self.sm_stub.add_response(
                "get_secret_value",
                {
                    "ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:x",
                    "Name": "x",
                    "SecretString": self.secret,
                },
            )
        self.db_stub.add_response("transact_write_items", {})

    def settled(self) -> None:
        self.db_stub.assert_no_pending_responses()
        self.sm_stub.assert_no_pending_responses()


class Context:
    """The bits of a Lambda context object that Powertools reads."""

    function_name = "embedrank-bench"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:embedrank-bench"
    memory_limit_in_mb = 1024
    log_group_name = "/aws/lambda/embedrank-bench"
    log_stream_name = "bench"

    def __init__(self) -> None:
        self.aws_request_id = uuid.uuid4().hex

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def event(path: str, body: bytes, key: str = DEV_KEY) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event, the shape of ``tests/events/*.json``."""
    request_id = uuid.uuid4().hex
    now = time.time()
    return {
        "version": "2.0",
        "routeKey": f"POST {path}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "accept": "application/json",
            "content-length": str(len(body)),
            "content-type": "application/json",
            "host": "abc123.execute-api.us-east-1.amazonaws.com",
            "user-agent": "embedrank-bench",
            "x-api-key": key,
            "x-forwarded-for": "127.0.0.1",
            "x-forwarded-port": "443",
            "x-forwarded-proto": "https",
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {
                "method": "POST",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "embedrank-bench",
            },
            "requestId": request_id,
            "routeKey": f"POST {path}",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "body": body.decode(),
        "isBase64Encoded": False,
    }


def load_module(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def provider_secret(fake_port: int, cohere_prefix: str = "") -> dict[str, dict[str, str]]:
    base = f"http://127.0.0.1:{fake_port}"
    return {
        "openai": {"api_key": FAKE_KEY, "base_url": f"{base}/v1"},
        "cohere": {"api_key": FAKE_KEY, "base_url": f"{base}{cohere_prefix}"},
    }


class Bench:
    def __init__(self, fake_port: int) -> None:
        self.fake_port = fake_port
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)  # Mangum runs every invocation on the thread's current loop
        self.direct = Connection("127.0.0.1", fake_port)
        self.modules: dict[str, ModuleType] = {}
        self.aws = StubbedAws(fake_port)

    def module(self, name: str) -> ModuleType:
        if name not in self.modules:
            self.modules[name] = load_module(f"{name}_handler", HANDLERS[name])
        return self.modules[name]

    def call_direct(self, path: str, body: bytes) -> tuple[int, bytes]:
        return self.loop.run_until_complete(self.direct.post(path, body, {"authorization": f"Bearer {FAKE_KEY}"}))

    def invoke(self, name: str, scenario: Scenario, body: bytes) -> tuple[float, dict[str, Any]]:
        """One handler invocation: seconds, and the response."""
        module = self.module(name)
        provider = scenario.gateway_body["model"].split("/", 1)[0]
        self.aws.expect(module.app.state.services, provider)
        ev, ctx = event(scenario.gateway_path, body), Context()
        t0 = time.perf_counter()
        response: dict[str, Any] = module.handler(ev, ctx)
        elapsed = time.perf_counter() - t0
        self.aws.settled()
        return elapsed, response

    def measure(self, name: str, scenario: Scenario, requests: int, max_seconds: float) -> dict[str, Any]:
        """``requests`` pairs of (direct call, handler invocation), alternating; times in seconds."""
        gateway: list[float] = []
        direct: list[float] = []
        errors = 0
        started = time.perf_counter()
        for _ in range(requests):
            if time.perf_counter() - started > max_seconds:
                break  # a pathologically slow build: report what was measured (``requests`` says how many)
            t0 = time.perf_counter()
            status, _ = self.call_direct(scenario.direct_path, scenario.direct_bytes)
            direct.append(time.perf_counter() - t0)
            elapsed, response = self.invoke(name, scenario, scenario.gateway_bytes)
            gateway.append(elapsed)
            errors += (status != 200) + (response.get("statusCode") != 200)
        return {"gateway": gateway, "direct": direct, "errors": errors}

    def latency(
        self,
        scenarios: list[tuple[str, Scenario]],
        requests: int,
        warmup: int,
        rounds: int = 3,
        max_seconds: float = 30.0,
    ) -> list[dict[str, Any]]:
        """Each scenario warmed up, then the scenarios take turns, ``rounds`` times ``requests / rounds`` requests each:
        this machine's speed drifts by tens of percent over a minute, and taking turns spreads a slow spell over every
        scenario instead of charging it to one."""
        for name, scenario in scenarios:
            for _ in range(warmup):
                self.call_direct(scenario.direct_path, scenario.direct_bytes)
                _, response = self.invoke(name, scenario, scenario.gateway_bytes)
                if response.get("statusCode") != 200:
                    raise RuntimeError(f"{scenario.name}: the handler answered {str(response)[:300]}")
        runs = {
            s.name: {"gateway": [], "direct": [], "errors": 0, "calls": Counter(), "sdk": 0.0} for _, s in scenarios
        }
        for _ in range(rounds):
            for name, scenario in scenarios:
                self.aws.reset()
                part = self.measure(name, scenario, max(1, requests // rounds), max_seconds / rounds)
                run = runs[scenario.name]
                run["gateway"] += part["gateway"]
                run["direct"] += part["direct"]
                run["errors"] += part["errors"]
                run["calls"].update(self.aws.calls)
                run["sdk"] += self.aws.sdk_seconds
        rows = []
        for scenario, run in runs.items():
            done = len(run["gateway"])
            rows.append(
                {
                    "scenario": scenario,
                    "requests": done,
                    "errors": run["errors"],
                    "direct": summary(run["direct"]),
                    "gateway": summary(run["gateway"]),
                    "added": added(run["gateway"], run["direct"]),
                    "aws_calls_per_request": round(sum(run["calls"].values()) / done, 3),
                    "aws_calls_by_operation": {k: round(v / done, 3) for k, v in sorted(run["calls"].items())},
                    "aws_sdk_ms_per_request": ms(run["sdk"] / done),
                }
            )
        return rows

    def cache_hits(self, requests: int, warmup: int) -> dict[str, Any]:
        """The 16 x 1536 float request answered wholly from the embedding cache, through the handler: no provider
        call, so its whole latency is the gateway's (one BatchGetItem, answered by the Stubber, on top of the usual
        admission and usage write)."""
        from array import array

        from embedrank.domain.cache import entry_keys, policy
        from embedrank.domain.catalog import catalog
        from embedrank.domain.records import Plan
        from embedrank.store.dynamo import plan_to_item

        scenario = embeddings("float")
        services = self.module("embeddings").app.state.services
        saved_plan = self.aws.plan_item
        self.aws.plan_item = plan_to_item({**self.aws.plan, "embedding_cache_days": 30})
        services.auth._plans.clear()
        deployment = catalog().deployments[scenario.gateway_body["model"]]
        cache_on = policy(Plan("ultra", "all", embedding_cache_days=30), KEY_ID, None)
        assert cache_on is not None
        keys = entry_keys(
            cache_on, deployment, scenario.gateway_body["input"], None, width=deployment.dimensions, native=False
        )
        vector = array("f", [0.0123456789] * deployment.dimensions).tobytes()
        items = [{"k": {"B": k}, "v": {"B": vector}} for k in keys]
        self.aws.cache_answer = {"Responses": {services.settings.cache_table: items}, "UnprocessedKeys": {}}
        times: list[float] = []
        self.aws.reset()
        try:
            for i in range(warmup + requests):
                if i == warmup:
                    self.aws.reset()
                elapsed, response = self.invoke("embeddings", scenario, scenario.gateway_bytes)
                usage = orjson.loads(response["body"])["usage"] if response.get("statusCode") == 200 else {}
                if usage.get("cached_inputs") != len(keys):
                    raise RuntimeError(f"cache hits: the handler answered {str(response)[:300]}")
                if i >= warmup:
                    times.append(elapsed)
        finally:
            self.aws.cache_answer = None
            self.aws.plan_item = saved_plan
            services.auth._plans.clear()
        done = len(times)
        return {
            "scenario": f"{scenario.name}, all {len(keys)} inputs cached",
            "requests": done,
            "latency": summary(times),
            "aws_calls_per_request": round(sum(self.aws.calls.values()) / done, 3),
            "aws_calls_by_operation": {k: round(v / done, 3) for k, v in sorted(self.aws.calls.items())},
            "aws_sdk_ms_per_request": ms(self.aws.sdk_seconds / done),
        }

    def fanout(self, runs: int, delay_ms: float, count: int) -> dict[str, Any]:
        from embedrank.domain.catalog import catalog

        scenario = fanout(count)
        prefix = f"/delay/{delay_ms:g}"
        module = self.module("embeddings")
        secret = provider_secret(self.fake_port, prefix)
        module.app.state.services.gateway.credentials.clear()
        self.aws.secret = orjson.dumps(secret).decode()
        per_call = catalog().resolve(scenario.gateway_body["model"], "embedding")[0].max_inputs
        body = scenario.gateway_bytes
        walls: list[float] = []
        for i in range(runs + 1):  # the first run warms the connection pool
            elapsed, response = self.invoke("embeddings", scenario, body)
            if response.get("statusCode") != 200:
                raise RuntimeError(f"fan-out: the handler answered {str(response)[:300]}")
            if i == 0:
                items = len(orjson.loads(response["body"])["data"])
                if items != count:
                    raise RuntimeError(f"fan-out: {items} embeddings for {count} inputs")
            else:
                walls.append(elapsed)
        inputs: list[str] = scenario.direct_body["texts"]
        chunks = [
            orjson.dumps({**scenario.direct_body, "texts": inputs[i : i + per_call]}) for i in range(0, count, per_call)
        ]
        sequential: list[float] = []
        for _ in range(runs):
            t0 = time.perf_counter()
            for chunk in chunks:
                status, _ = self.call_direct(f"{prefix}{scenario.direct_path}", chunk)
                if status != 200:
                    raise RuntimeError(f"fan-out direct call answered {status}")
            sequential.append(time.perf_counter() - t0)
        module.app.state.services.gateway.credentials.clear()
        self.aws.secret = orjson.dumps(provider_secret(self.fake_port)).decode()
        gateway_s, sequential_s = percentile(walls, 50), percentile(sequential, 50)
        return {
            "inputs": count,
            "per_call": per_call,
            "upstream_calls": len(chunks),
            "delay_ms": delay_ms,
            "runs": runs,
            "gateway_ms": ms(gateway_s),
            "sequential_ms": ms(sequential_s),
            "speedup": round(sequential_s / gateway_s, 2),
        }


def run(fake_port: int, requests: int, warmup: int, fanout_runs: int, fanout_inputs: int) -> dict[str, Any]:
    for var in [v for v in os.environ if v.startswith("AWS_ENDPOINT_URL")]:
        os.environ.pop(var)
    os.environ.update(AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench")
    bench = Bench(fake_port)
    scenarios = [("rerank" if s.gateway_path.endswith("rerank") else "embeddings", s) for s in all_latency()]
    out: dict[str, Any] = {"latency": bench.latency(scenarios, requests, min(warmup, WARMUP))}
    out["cache_hits"] = bench.cache_hits(requests, min(warmup, WARMUP))
    if fanout_runs > 0:
        out["fanout"] = bench.fanout(fanout_runs, 50.0, fanout_inputs)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fake-port", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=WARMUP)
    parser.add_argument("--fanout-runs", type=int, default=3)
    parser.add_argument("--fanout-inputs", type=int, default=2048)
    args = parser.parse_args(argv)
    result = run(args.fake_port, args.requests, args.warmup, args.fanout_runs, args.fanout_inputs)
    Path(args.out).write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
