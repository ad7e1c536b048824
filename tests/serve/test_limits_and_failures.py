"""Through the real `make serve` process: a recovering provider behind an open circuit, a caller that hangs up, a
budget under a burst, and ports already taken."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from conftest import ROOT
from fakes import b64, vector
from live import LIVE_KEY, free_port, local_env, server_logs, start_local_server, stop

MODEL = "openai/text-embedding-3-small"


@dataclass
class Provider:
    """A fake OpenAI whose behaviour the test switches: failing, or answering after ``delay``."""

    failing: bool = False
    delay: float = 0.0
    calls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, body: dict[str, Any]) -> tuple[int, bytes]:
        with self.lock:
            self.calls += 1
        if self.failing:
            return 500, b'{"error": {"message": "down"}}'
        time.sleep(self.delay)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [{"object": "embedding", "index": i, "embedding": b64(vector(i, 1536))} for i in range(len(inputs))]
        usage = {"prompt_tokens": 2 * len(inputs), "total_tokens": 2 * len(inputs)}
        return 200, json.dumps({"object": "list", "data": data, "usage": usage}).encode()


@pytest.fixture(scope="module")
def provider() -> Iterator[tuple[Provider, str]]:
    state = Provider()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            status, raw = state.answer(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        request_queue_size = 512  # a burst of connections is queued, not refused

    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def served(provider: tuple[Provider, str]) -> Iterator[tuple[str, dict[str, str], subprocess.Popen[str]]]:
    _, url = provider
    env = local_env(
        None,
        EMBEDRANK_DEV_API_KEY=LIVE_KEY,
        OPENAI_API_KEY="sk-fake",
        OPENAI_BASE_URL=f"{url}/v1",
        RETRY_ATTEMPTS="1",
        BREAKER_THRESHOLD="1",
        BREAKER_COOLDOWN_SECONDS="1",
    )
    proc, base = start_local_server(env)
    yield base, env, proc
    stop(proc)


def local_dynamodb(env: dict[str, str]) -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=f"http://127.0.0.1:{env['LOCAL_AWS_PORT']}",
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def usage_statuses(env: dict[str, str]) -> list[int]:
    items = local_dynamodb(env).scan(TableName="embedrank-usage")["Items"]
    return [int(i["status"]["N"]) for i in items if i["sk"]["S"].startswith("req#")]


def embed(base: str, key: str = LIVE_KEY) -> httpx.Response:
    return httpx.post(f"{base}/v1/embeddings", json={"model": MODEL, "input": "hello"}, headers={"x-api-key": key})


def test_requests_arriving_during_the_probe_wait_for_it(
    served: tuple[str, dict[str, str], subprocess.Popen[str]], provider: tuple[Provider, str]
) -> None:
    base, _, _ = served
    state, _ = provider
    # given a provider that fails once: the circuit opens (threshold 1, cool-down 1 s)
    state.failing = True
    assert embed(base).status_code == 502
    # then the gateway declines without calling it, saying when it will try again
    declined = embed(base)
    assert declined.status_code == 503 and declined.json()["error"]["code"] == "circuit_open"
    assert declined.headers["retry-after"] == "1"
    assert state.calls == 1
    # when the provider has recovered (slowly) and, after the cool-down, a burst of 200 requests arrives at once
    state.failing, state.delay = False, 0.3
    time.sleep(1.1)

    async def burst() -> list[int]:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
            body = {"model": MODEL, "input": "hello"}
            answers = await asyncio.gather(
                *(client.post("/v1/embeddings", json=body, headers={"x-api-key": LIVE_KEY}) for _ in range(200))
            )
        return [r.status_code for r in answers]

    statuses = asyncio.run(burst())
    state.delay = 0.0
    # then the first is the probe and the others wait for it: every one is served
    assert statuses == [200] * 200


def test_a_caller_that_hangs_up_mid_body_is_recorded_as_499(
    served: tuple[str, dict[str, str], subprocess.Popen[str]], provider: tuple[Provider, str]
) -> None:
    base, env, proc = served
    port = int(base.rsplit(":", 1)[1])
    before = usage_statuses(env).count(499)
    # given a request that declares 1,000 bytes of body, sends 10 and disconnects
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"POST /v1/embeddings HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            + f"x-api-key: {LIVE_KEY}\r\ncontent-length: 1000\r\n\r\n".encode()
            + b'{"model": '
        )
    # then it is recorded as a 499 and logged as an ordinary request line, not as an error
    deadline = time.monotonic() + 10
    while usage_statuses(env).count(499) == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert usage_statuses(env).count(499) == before + 1
    logs = server_logs(proc)
    [line] = [entry for entry in logs if entry.get("status") == 499]
    assert line["level"] == "INFO" and line["error_code"] == "client_closed_request"
    assert not [entry for entry in logs if entry.get("message") == "unhandled error"]


def test_a_budget_holds_under_a_burst(
    served: tuple[str, dict[str, str], subprocess.Popen[str]], provider: tuple[Provider, str], tmp_path: Path
) -> None:
    base, env, _ = served
    state, _ = provider
    state.delay = 0.05
    # given a key whose budget is worth 20 requests (2 tokens each at $0.02 per million), made with the admin CLI
    plans = tmp_path / "plans.json"
    budget = 20 * 2 * 0.02 / 1_000_000
    plans.write_text(json.dumps({"plans": [{"name": "tight", "allowed_models": "all", "monthly_budget": budget}]}))
    cli_env = {**env, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{env['LOCAL_AWS_PORT']}"}
    cli_env.update(AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local", AWS_DEFAULT_REGION="us-east-1")
    embedrank = [sys.executable, "-m", "embedrank_tools.cli"]
    subprocess.run([*embedrank, "plans", "seed", str(plans)], env=cli_env, cwd=ROOT, check=True, capture_output=True)
    created = subprocess.run(
        [*embedrank, "keys", "create", "--plan", "tight", "--name", "burst"],
        env=cli_env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    key = created.stdout.strip().splitlines()[-1]

    # when 100 requests arrive at once
    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=base, timeout=30, limits=httpx.Limits(max_connections=100)) as client:
            body = {"model": MODEL, "input": "hello"}
            return list(
                await asyncio.gather(
                    *(client.post("/v1/embeddings", json=body, headers={"x-api-key": key}) for _ in range(100))
                )
            )

    answers = asyncio.run(burst())
    state.delay = 0.0
    # then at most what the budget is worth is admitted (the bar: 22), every other one refused for it
    served_ok = [r for r in answers if r.status_code == 200]
    refused = [r for r in answers if r.status_code == 429]
    assert 10 <= len(served_ok) <= 22, len(served_ok)
    assert len(served_ok) + len(refused) == 100
    assert {r.json()["error"]["code"] for r in refused} == {"budget_exceeded"}


@pytest.mark.parametrize("variable", ["PORT", "LOCAL_AWS_PORT"])
def test_a_port_in_use_is_one_clear_line(variable: str) -> None:
    # given the port make serve would use is taken
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = local_env(None, **{variable: str(taken.getsockname()[1])})
        # when make serve starts
        run = subprocess.run(
            [sys.executable, "-m", "embedrank_tools.local"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    # then it says which variable to change, in one line, and exits non-zero without a traceback or a dev key
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and f"Set {variable} to a free port" in lines[0], run.stderr
    assert "Traceback" not in run.stderr and "Dev API key" not in run.stderr + run.stdout
    assert free_port() > 0
