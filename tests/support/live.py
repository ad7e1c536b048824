"""A real local server (`python -m embedrank_tools.local`, as `make serve` runs it) and a fake provider on loopback."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import IO, Any

import httpx

from conftest import ROOT
from fakes import b64, vector

LIVE_KEY = "er-local-serve-test-key-000000000000000000000000000000"
FAIL_MARK = "fail-this-batch"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Seen:
    requests: list[tuple[str, dict[str, str], dict[str, Any]]] = field(default_factory=list)

    def last(self) -> tuple[str, dict[str, str], dict[str, Any]]:
        return self.requests[-1]


SEEN = Seen()


def seed_of(text: Any, position: int) -> int:
    """The vector an input gets: ``text-N`` gets vector N wherever it lands in a split batch, anything else its
    position in the call."""
    if isinstance(text, str) and text.startswith("text-") and text[5:].isdigit():
        return int(text[5:])
    return position


@functools.lru_cache(maxsize=8192)
def _embedding_json(seed: int, dims: int, encode: bool) -> str:
    return json.dumps(b64(vector(seed, dims)) if encode else vector(seed, dims))


def _openai(body: dict[str, Any]) -> bytes:
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    dims = body.get("dimensions", 3072 if body["model"].endswith("-large") else 1536)
    encode = body.get("encoding_format") == "base64"
    # Built as text from cached items: a 2,048 x 3,072 answer is 6.3 million floats, too slow to dump each time.
    data = ",".join(
        f'{{"object":"embedding","index":{i},"embedding":{_embedding_json(seed_of(text, i), dims, encode)}}}'
        for i, text in enumerate(inputs)
    )
    usage = json.dumps({"prompt_tokens": 2 * len(inputs), "total_tokens": 2 * len(inputs)})
    return f'{{"object":"list","data":[{data}],"model":{json.dumps(body["model"])},"usage":{usage}}}'.encode()


def _cohere_embed(body: dict[str, Any]) -> dict[str, Any]:
    dims = body.get("output_dimension", 1024)
    return {
        "id": "x",
        "embeddings": {"float": [vector(i, dims) for i in range(len(body["texts"]))]},
        "meta": {"billed_units": {"input_tokens": 4}},
    }


def _cohere_rerank(body: dict[str, Any]) -> dict[str, Any]:
    n = len(body["documents"])
    scores = [(i, round(1 - i / (n + 1), 4)) for i in reversed(range(n))]
    scores.sort(key=lambda s: -s[1])
    results = [{"index": i, "relevance_score": s} for i, s in scores[: body.get("top_n", n)]]
    return {"id": "r", "results": results, "meta": {"billed_units": {"search_units": 1}}}


ROUTES: dict[str, Any] = {"/v1/embeddings": _openai, "/v2/embed": _cohere_embed, "/v2/rerank": _cohere_rerank}


class FakeProvider(BaseHTTPRequestHandler):
    """OpenAI's /v1/embeddings and Cohere's /v2/embed and /v2/rerank, answering deterministic data."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        SEEN.requests.append((self.path, dict(self.headers), body))
        if FAIL_MARK in json.dumps(body):  # a batch a test wants to fail: the provider's 500, every attempt
            self.send_error(500)
            return
        route = ROUTES.get(self.path)
        if route is None:
            self.send_error(404)
            return
        answer = route(body)
        raw = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(raw)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the gateway gave up on this call
            self.wfile.write(raw)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def start_fake_provider() -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeProvider)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def local_env(provider_url: str | None, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_ENDPOINT_URL", "EMBEDRANK_DEV_API_KEY", "AWS_ACCESS", "AWS_SECRET"))
    }
    env.update({"HOST": "127.0.0.1", "PORT": str(free_port()), "LOCAL_AWS_PORT": str(free_port())})
    if provider_url:
        env.update(
            {
                "EMBEDRANK_DEV_API_KEY": LIVE_KEY,
                "OPENAI_API_KEY": "sk-fake",
                "OPENAI_BASE_URL": f"{provider_url}/v1",
                "COHERE_API_KEY": "co-fake",
                "COHERE_BASE_URL": provider_url,
            }
        )
    env.update(extra)
    return env


# The server's output goes to files, never to pipes: nobody reads a pipe while tests run, and once its buffer (64 KB,
# a few hundred request log lines) is full the server blocks on its next log line and stops answering.
_OUTPUT: dict[int, IO[str]] = {}
_LOGS: dict[int, IO[str]] = {}


def start_local_server(env: dict[str, str], timeout: float = 60) -> tuple[subprocess.Popen[str], str]:
    err = tempfile.TemporaryFile("w+")  # noqa: SIM115 - outlives this function; stop() closes it
    out = tempfile.TemporaryFile("w+")  # noqa: SIM115 - the request log lines (stdout), read by server_logs()
    proc = subprocess.Popen(
        [sys.executable, "-m", "embedrank_tools.local"],
        cwd=ROOT,
        env=env,
        text=True,
        stdout=out,
        stderr=err,
    )
    _OUTPUT[proc.pid], _LOGS[proc.pid] = err, out
    base = f"http://{env['HOST']}:{env['PORT']}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the local server exited: {_read(proc)}")
        try:
            httpx.get(f"{base}/", timeout=1)
            return proc, base
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"the local server did not come up within {timeout:.0f} s")


def _read(proc: subprocess.Popen[str]) -> str:
    err = _OUTPUT.pop(proc.pid)
    err.seek(0)
    text = err.read()
    err.close()
    _LOGS.pop(proc.pid).close()
    return text


def server_logs(proc: subprocess.Popen[str]) -> list[dict[str, Any]]:
    """The JSON lines the server has logged so far (its request lines, warnings, errors)."""
    out = _LOGS[proc.pid]
    out.flush()
    out.seek(0)
    lines = [json.loads(line) for line in out.read().splitlines() if line.startswith("{")]
    out.seek(0, 2)
    return lines


def stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(2)  # SIGINT, as Ctrl-C
    proc.wait(timeout=30)
    return proc.returncode, _read(proc)
