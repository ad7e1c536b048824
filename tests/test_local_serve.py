"""`make serve` end to end: the real local server (uvicorn + embedded moto) against a fake provider on loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from conftest import ROOT
from fakes import vector

DEV_KEY = "er-local-serve-test-key-000000000000000000000000000000"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FakeProvider(BaseHTTPRequestHandler):
    """OpenAI's /v1/embeddings and Cohere's /v2/embed, answering fixed vectors."""

    seen: list[tuple[str, dict[str, str], dict[str, Any]]] = []  # noqa: RUF012 - shared across handler instances

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        FakeProvider.seen.append((self.path, dict(self.headers), body))
        if self.path == "/v1/embeddings":
            count = len(body["input"])
            data = [{"object": "embedding", "index": i, "embedding": vector(i, 1536)} for i in range(count)]
            answer: dict[str, Any] = {"object": "list", "data": data, "usage": {"prompt_tokens": 2, "total_tokens": 2}}
        elif self.path == "/v2/embed":
            answer = {
                "id": "x",
                "embeddings": {"float": [vector(i, 1024) for i in range(len(body["texts"]))]},
                "meta": {"billed_units": {"input_tokens": 4}},
            }
        else:
            self.send_error(404)
            return
        raw = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def fake_provider() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeProvider)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def local_server(fake_provider: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_ENDPOINT_URL", "AWS_ACCESS", "AWS_SECRET"))}
    env.update(
        {
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "LOCAL_AWS_PORT": str(free_port()),
            "EMBEDRANK_DEV_API_KEY": DEV_KEY,
            "OPENAI_API_KEY": "sk-fake",
            "OPENAI_BASE_URL": f"{fake_provider}/v1",
            "COHERE_API_KEY": "co-fake",
            "COHERE_BASE_URL": fake_provider,
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "embedrank.local"],
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"make serve exited: {proc.stderr.read() if proc.stderr else ''}")
        try:
            httpx.get(f"{base}/v1/embeddings", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.2)
    else:
        proc.kill()
        raise AssertionError("the local server did not come up within 60 s")
    yield base, proc
    proc.terminate()
    proc.wait(timeout=20)


def test_serve_answers_the_readme_curl(local_server: tuple[str, subprocess.Popen[str]]) -> None:
    base, _ = local_server
    body = {"model": "cohere/embed-english-v3.0", "input": ["hello", "world"], "input_type": "query"}
    r = httpx.post(f"{base}/v1/embeddings", json=body, headers={"X-API-Key": DEV_KEY}, timeout=10)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["provider"] == "cohere" and len(out["data"]) == 2 and len(out["data"][0]["embedding"]) == 1024
    path, headers, sent = FakeProvider.seen[-1]
    assert path == "/v2/embed" and headers["Authorization"] == "Bearer co-fake"
    assert sent["input_type"] == "search_query"


def test_serve_with_bearer_on_api_prefix_reaches_openai(local_server: tuple[str, subprocess.Popen[str]]) -> None:
    base, _ = local_server
    r = httpx.post(
        f"{base}/api/v1/embeddings",
        json={"model": "openai/text-embedding-3-small", "input": ["a"]},
        headers={"Authorization": f"Bearer {DEV_KEY}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    assert FakeProvider.seen[-1][0] == "/v1/embeddings"
    assert r.json()["data"][0]["embedding"] == vector(0, 1536)


def test_serve_stops_cleanly(fake_provider: str) -> None:
    """SIGINT (Ctrl-C) stops uvicorn and the embedded AWS, and a fresh key is printed when none is given."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_ENDPOINT_URL", "EMBEDRANK_DEV_API_KEY"))}
    env.update({"PORT": str(port), "LOCAL_AWS_PORT": str(free_port())})
    proc = subprocess.Popen(
        [sys.executable, "-m", "embedrank.local"],
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.2)
    proc.send_signal(2)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Dev API key (plan ultra): er-" in err
