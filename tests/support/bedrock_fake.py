"""A fake AWS Bedrock on loopback, speaking the REST-JSON wire format botocore sends; a provider that is down; a proxy.

- ``bedrock-runtime`` ``InvokeModel``: ``POST /model/{modelId}/invoke`` (the id percent-encoded by botocore), the
  model's own JSON as the body. Cohere Embed answers ``{"embeddings": {"float": [...]}}`` with its token count in the
  ``x-amzn-bedrock-input-token-count`` header; Titan Text v2 answers ``{"embedding": [...], "inputTextTokenCount": n}``.
- ``bedrock-agent-runtime`` ``Rerank``: ``POST /rerank`` (botocore's service model), answering
  ``{"results": [{"index": i, "relevanceScore": s}, ...], "nextToken": ...}`` best first, ``page_size`` per page.

Vectors and scores are deterministic functions of the texts (``bedrock_vector``, ``overlap_score``), so a test can
compute what the fake sent. Every request is recorded in ``calls``; start and stop the server in the test.
"""

from __future__ import annotations

import json
import threading
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

INVOKE_PREFIX, INVOKE_SUFFIX = "/model/", "/invoke"
RERANK_PATH = "/rerank"


@dataclass(frozen=True)
class Call:
    path: str  # percent-decoded: /model/amazon.titan-embed-text-v2:0/invoke
    headers: dict[str, str]  # names lowercased
    body: dict[str, Any]


def bedrock_vector(text: str, dims: int) -> list[float]:
    """The fake's embedding of ``text``: float32-exact values (k/128), different for different texts."""
    seed = zlib.crc32(text.encode())
    return [((seed + i * 7) % 251 - 125) / 128 for i in range(dims)]


def word_count(text: str) -> int:
    """The fake's token count of a text."""
    return len(text.split())


def overlap_score(query: str, document: str) -> float:
    """The fake's relevance: the share of the query's words the document contains."""
    words = set(query.lower().split())
    return len(words & set(document.lower().split())) / len(words)


class _Recorder(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.calls: list[Call] = []
        self._lock = threading.Lock()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def start(self) -> None:
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: _Recorder

    def _receive(self) -> Call:
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        call = Call(unquote(self.path), {k.lower(): v for k, v in self.headers.items()}, json.loads(raw) if raw else {})
        self.server.record(call)
        return call

    def _answer(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(raw)))
        self.send_header("x-amzn-requestid", "fake-request-id")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _BedrockHandler(_Handler):
    server: FakeBedrock

    def do_POST(self) -> None:
        call = self._receive()
        if call.path.startswith(INVOKE_PREFIX) and call.path.endswith(INVOKE_SUFFIX):
            self._invoke(call.path[len(INVOKE_PREFIX) : -len(INVOKE_SUFFIX)], call.body)
        elif call.path == RERANK_PATH:
            self._answer(200, self.server.rerank_page(call.body))
        else:
            self._answer(404, {"message": f"no route {call.path}"}, {"x-amzn-errortype": "UnknownOperationException"})

    def _invoke(self, model_id: str, body: dict[str, Any]) -> None:
        if model_id.startswith("cohere.embed"):
            texts: list[str] = body["texts"]
            dims = int(body.get("output_dimension", 1024))
            answer = {
                "id": "fake-embed",
                "embeddings": {"float": [bedrock_vector(t, dims) for t in texts]},
                "texts": texts,
                "response_type": "embeddings_by_type",
            }
            tokens = sum(word_count(t) for t in texts)
            self._answer(200, answer, {"x-amzn-bedrock-input-token-count": str(tokens)})
        elif model_id.startswith("amazon.titan-embed"):
            text: str = body["inputText"]
            vector = bedrock_vector(text, int(body.get("dimensions", 1024)))
            self._answer(200, {"embedding": vector, "inputTextTokenCount": word_count(text)})
        else:
            self._answer(400, {"message": f"unknown model {model_id}"}, {"x-amzn-errortype": "ValidationException"})


class FakeBedrock(_Recorder):
    """bedrock-runtime's InvokeModel and bedrock-agent-runtime's Rerank on 127.0.0.1 (one instance per endpoint)."""

    def __init__(self, page_size: int = 2) -> None:
        super().__init__(_BedrockHandler)
        self.page_size = page_size

    def invocations(self) -> list[Call]:
        return [c for c in self.calls if c.path.startswith(INVOKE_PREFIX)]

    def reranks(self) -> list[Call]:
        return [c for c in self.calls if c.path == RERANK_PATH]

    def rerank_page(self, body: dict[str, Any]) -> dict[str, Any]:
        """One page of the ranking, best first; ``nextToken`` is the offset of the next page."""
        query = body["queries"][0]["textQuery"]["text"]
        texts = [s["inlineDocumentSource"]["textDocument"]["text"] for s in body["sources"]]
        scored = sorted(((overlap_score(query, t), i) for i, t in enumerate(texts)), key=lambda s: (-s[0], s[1]))
        wanted = body["rerankingConfiguration"]["bedrockRerankingConfiguration"].get("numberOfResults", len(texts))
        ranking = scored[:wanted]
        start = int(body.get("nextToken", "0"))
        end = start + self.page_size
        page: dict[str, Any] = {"results": [{"index": i, "relevanceScore": s} for s, i in ranking[start:end]]}
        if end < len(ranking):
            page["nextToken"] = str(end)
        return page


class _DownHandler(_Handler):
    def do_POST(self) -> None:
        self._receive()
        self._answer(500, {"message": "internal server error"})


class DownProvider(_Recorder):
    """An HTTP provider (Cohere, OpenAI, ...) that answers 500 to every request, and records them."""

    def __init__(self) -> None:
        super().__init__(_DownHandler)

    def paths(self) -> list[str]:
        return [c.path for c in self.calls]


class _ProxyHandler(BaseHTTPRequestHandler):
    server: RefusingProxy

    def do_CONNECT(self) -> None:
        self.server.record(Call(self.path, {k.lower(): v for k, v in self.headers.items()}, {}))
        self.send_error(403, "no network in tests")

    def log_message(self, format: str, *args: Any) -> None:
        pass


class RefusingProxy(_Recorder):
    """An HTTPS proxy that records where each tunnel was asked to go (``host:port``) and refuses it: a process
    pointed at it with ``HTTPS_PROXY`` shows where it would connect, and reaches nothing."""

    def __init__(self) -> None:
        super().__init__(_ProxyHandler)

    def targets(self) -> list[str]:
        return [c.path for c in self.calls]
