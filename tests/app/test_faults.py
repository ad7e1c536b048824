"""Fault injection: a scripted upstream on loopback (a real HTTP server), the app with its real httpx transport.

Each case asserts the status, the body, how many upstream attempts were made, and that exactly one usage record
exists for the request (or, when DynamoDB refuses the usage write, exactly one replay log line).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest

from conftest import auth, usage_records
from embedrank.config import Settings
from embedrank.domain.catalog import load_catalog
from fakes import b64, vector
from lambda_harness import captured_logs
from usage_faults import FaultyUsageWrites, replay_lines, throttled

Reply = tuple[int, dict[str, str], bytes]


@dataclass
class Script:
    """Answers requests in order from ``steps`` (the last one repeats); records what arrived and in-flight peaks."""

    steps: list[Callable[[dict[str, Any]], Reply]] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    in_flight: int = 0
    peak: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, body: dict[str, Any]) -> Reply:
        with self.lock:
            index = len(self.bodies)
            self.bodies.append(body)
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            return self.steps[min(index, len(self.steps) - 1)](body)
        finally:
            with self.lock:
                self.in_flight -= 1


def reply(
    status: int, payload: Any, headers: dict[str, str] | None = None, delay: float = 0
) -> Callable[[dict[str, Any]], Reply]:
    def step(body: dict[str, Any]) -> Reply:
        if delay:
            time.sleep(delay)
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return status, {"content-type": "application/json", **(headers or {})}, raw

    return step


def ok_openai(dims: int = 1536, delay: float = 0) -> Callable[[dict[str, Any]], Reply]:
    def step(body: dict[str, Any]) -> Reply:
        if delay:
            time.sleep(delay)
        data = [
            {"object": "embedding", "index": i, "embedding": b64(vector(i, dims))} for i in range(len(body["input"]))
        ]
        usage = {"prompt_tokens": 5 * len(data), "total_tokens": 5 * len(data)}
        return 200, {"content-type": "application/json"}, json.dumps({"data": data, "usage": usage}).encode()

    return step


def ok_cohere(delay: float = 0) -> Callable[[dict[str, Any]], Reply]:
    def step(body: dict[str, Any]) -> Reply:
        if delay:
            time.sleep(delay)
        # Each vector encodes the position of its text in the whole request ("t<index>"), to prove reassembly order.
        vectors = [vector(int(t[1:]), body["output_dimension"]) for t in body["texts"]]
        answer = {"embeddings": {"float": vectors}, "meta": {"billed_units": {"input_tokens": len(vectors)}}}
        return 200, {"content-type": "application/json"}, json.dumps(answer).encode()

    return step


@pytest.fixture
def script() -> Script:
    return Script()


@pytest.fixture
def upstream_url(script: Script) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            status, headers, raw = script.answer(body)
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("content-length", str(len(raw)))
            self.end_headers()
            # The gateway may have given up on a slow answer: that is the point of those tests.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(raw)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def make_client(upstream_url: str, dynamodb: Any = None, **env: str) -> Any:
    """The app against the scripted upstream; ``dynamodb``: a client for its stores (e.g. one that fails writes)."""
    from starlette.testclient import TestClient

    from embedrank.api.app import Services, create_app

    config = Settings.from_env({"UPSTREAM_TIMEOUT_SECONDS": "2", "REQUEST_DEADLINE_SECONDS": "10", **env})
    secret = {
        p: {"api_key": f"{p}-secret", "base_url": f"{upstream_url}/v1" if p != "cohere" else upstream_url}
        for p in ("openai", "cohere", "selfhosted")
    }
    boto3.client("secretsmanager").put_secret_value(SecretId=config.provider_secret, SecretString=json.dumps(secret))
    raw = json.loads(load_catalog().model_dump_json())
    # A two-deployment route of the same weights, both on loopback, for fallback and all-down cases.
    raw["deployments"]["selfhosted/text-embedding-3-small"] = {
        **raw["deployments"]["openai/text-embedding-3-small"],
        "id": "selfhosted/text-embedding-3-small",
        "provider": "selfhosted",
        "native": "text-embedding-3-small",
        "dimension_mode": "fixed",
    }
    raw["routes"]["route/small"] = ["openai/text-embedding-3-small", "selfhosted/text-embedding-3-small"]
    from embedrank.domain.catalog import Catalog
    from embedrank.store.dynamo import Stores

    stores = Stores(config, client=dynamodb) if dynamodb is not None else None
    services = Services.build(config, stores=stores, models=Catalog.model_validate(raw))
    return TestClient(create_app(services=services), raise_server_exceptions=False)


def embed(client: Any, model: str = "openai/text-embedding-3-small", n: int = 2, **extra: Any) -> Any:
    body = {"model": model, "input": [f"t{i}" for i in range(n)], **extra}
    return client.post("/v1/embeddings", json=body, headers=auth())


def one_record(settings: Settings, status: int) -> dict[str, Any]:
    records = usage_records(settings)
    assert len(records) == 1, records
    assert records[0]["status"]["N"] == str(status)
    return records[0]


def test_429_with_retry_after_is_honoured(aws: None, settings: Settings, script: Script, upstream_url: str) -> None:
    script.steps = [reply(429, {"error": {"message": "slow down"}}, {"retry-after": "1"}), ok_openai()]
    started = time.monotonic()
    r = embed(make_client(upstream_url))
    assert r.status_code == 200, r.text
    assert time.monotonic() - started >= 1.0
    assert len(script.bodies) == 2
    one_record(settings, 200)


def test_500_then_success(aws: None, settings: Settings, script: Script, upstream_url: str) -> None:
    script.steps = [reply(500, {"error": {"message": "oops"}}), ok_openai()]
    r = embed(make_client(upstream_url))
    assert r.status_code == 200 and len(r.json()["data"]) == 2
    assert len(script.bodies) == 2
    assert one_record(settings, 200)["tokens"]["N"] == "10"


def test_timeout_then_success(aws: None, settings: Settings, script: Script, upstream_url: str) -> None:
    script.steps = [ok_openai(delay=1.5), ok_openai()]
    r = embed(make_client(upstream_url, UPSTREAM_TIMEOUT_SECONDS="0.5"))
    assert r.status_code == 200, r.text
    assert len(script.bodies) == 2
    one_record(settings, 200)


def test_caller_fault_is_a_400_and_not_retried(
    aws: None, settings: Settings, script: Script, upstream_url: str
) -> None:
    script.steps = [reply(400, {"error": {"message": "input too long"}})]
    r = embed(make_client(upstream_url))
    assert r.status_code == 400 and "input too long" in r.json()["error"]["message"]
    assert r.json()["error"]["code"] == "provider_rejected_request"
    assert len(script.bodies) == 1
    one_record(settings, 400)


def test_fallback_along_the_route(aws: None, settings: Settings, script: Script, upstream_url: str) -> None:
    down = reply(503, {"error": {"message": "overloaded"}})
    script.steps = [down, down, down, ok_openai()]
    r = embed(make_client(upstream_url), model="route/small")
    assert r.status_code == 200, r.text
    assert r.json()["provider"] == "selfhosted" and r.json()["model"] == "route/small"
    assert len(script.bodies) == 4  # three attempts on the first deployment, one on the second
    assert one_record(settings, 200)["provider"]["S"] == "selfhosted"


def test_all_deployments_down(aws: None, settings: Settings, script: Script, upstream_url: str) -> None:
    script.steps = [reply(503, {"error": {"message": "overloaded"}})]
    r = embed(make_client(upstream_url), model="route/small")
    assert r.status_code == 502
    err = r.json()["error"]
    assert err["type"] == "provider_error" and "overloaded" in err["message"]
    assert len(script.bodies) == 6
    one_record(settings, 502)


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (reply(200, b"<html>gateway hiccup</html>"), "not JSON"),
        (reply(200, {"data": [{"index": 0, "embedding": b64(vector(0, 1536))}], "usage": {}}), "indices [0] for 2"),
        (ok_openai(dims=768), "768 dimensions"),
        (reply(200, {"object": "list"}), "malformed"),
    ],
)
def test_malformed_answers_are_502(
    aws: None,
    settings: Settings,
    script: Script,
    upstream_url: str,
    answer: Callable[[dict[str, Any]], Reply],
    words: str,
) -> None:
    script.steps = [answer]
    r = embed(make_client(upstream_url))
    assert r.status_code == 502, r.text
    assert words in r.json()["error"]["message"]
    assert len(script.bodies) == 1
    one_record(settings, 502)


def test_slow_upstream_near_the_deadline(aws: None, settings: Settings, script: Script, upstream_url: str) -> None:
    script.steps = [ok_openai(delay=3)]
    started = time.monotonic()
    r = embed(make_client(upstream_url, UPSTREAM_TIMEOUT_SECONDS="10", REQUEST_DEADLINE_SECONDS="1.2"))
    elapsed = time.monotonic() - started
    assert r.status_code == 504 and r.json()["error"]["code"] == "provider_timeout"
    assert elapsed < 2.5  # answered at the deadline, not after the upstream's 3 s
    assert len(script.bodies) == 1
    one_record(settings, 504)


def test_circuit_opens_after_consecutive_failures(
    aws: None, settings: Settings, script: Script, upstream_url: str
) -> None:
    script.steps = [reply(500, {"error": {"message": "down"}})]
    client = make_client(upstream_url, RETRY_ATTEMPTS="1", BREAKER_THRESHOLD="3")
    for _ in range(3):
        assert embed(client).status_code == 502
    assert len(script.bodies) == 3
    r = embed(client)
    # the gateway declines (503), saying when the next probe goes; the provider was not called
    assert r.status_code == 503 and r.json()["error"]["code"] == "circuit_open"
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert len(script.bodies) == 3  # skipped without a call
    assert len(usage_records(settings)) == 4


def test_2048_inputs_split_for_a_96_per_call_provider(
    aws: None, settings: Settings, script: Script, upstream_url: str
) -> None:
    script.steps = [ok_cohere(delay=0.05)]
    r = embed(
        make_client(upstream_url, UPSTREAM_CONCURRENCY="4"),
        model="cohere/embed-v4.0",
        n=2048,
        encoding_format="base64",
        dimensions=256,
    )
    assert r.status_code == 200, r.text
    sizes = sorted(len(b["texts"]) for b in script.bodies)
    assert len(sizes) == 22 and sizes[-1] == 96 and sum(sizes) == 2048
    assert 1 < script.peak <= 4  # concurrent, and bounded
    from fakes import decode_b64

    data = r.json()["data"]
    assert [d["index"] for d in data] == list(range(2048))
    assert all(decode_b64(d["embedding"]) == vector(i, 256) for i, d in enumerate(data))
    assert r.json()["usage"]["prompt_tokens"] == 2048
    assert one_record(settings, 200)["input_count"]["N"] == "2048"


def test_usage_write_throttled(aws: None, settings: Settings, script: Script, upstream_url: str) -> None:
    script.steps = [ok_openai()]
    writes = FaultyUsageWrites(boto3.client("dynamodb"), always=throttled())
    with captured_logs() as logs:
        r = embed(make_client(upstream_url, dynamodb=writes))
    assert r.status_code == 200, r.text
    assert len(r.json()["data"]) == 2 and r.json()["usage"]["prompt_tokens"] == 10
    assert len(script.bodies) == 1
    assert usage_records(settings) == []
    [line] = replay_lines(logs.getvalue())
    assert line["record"]["request_id"] == r.headers["x-request-id"] and line["record"]["tokens"] == 10
