"""Canned answers for Voyage, Jina, Gemini, Mistral and Bedrock, built the way each API returns them.

HTTP providers are answered through the ``upstream`` fixture's handler. Bedrock is faked on a real botocore client:
``stubbed_bedrock`` wraps it in botocore's Stubber (exact, ordered calls), and ``BedrockFake`` answers at the
``before-send`` hook, so concurrent calls are answered by content and the HTTP headers go through botocore's parser.
"""

from __future__ import annotations

import io
import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import boto3
import httpx
from botocore.awsrequest import AWSResponse
from botocore.response import StreamingBody
from botocore.stub import Stubber

from conftest import auth
from fakes import b64, json_response, vector


def post(client: Any, body: dict[str, Any]) -> httpx.Response:
    return client.post("/v1/embeddings", json=body, headers=auth())  # type: ignore[no-any-return]


def seed(text: str) -> int:
    """A vector seed derived from the text itself, so an answer proves which input it belongs to."""
    return sum(text.encode()) % 997


def norm(values: list[float]) -> float:
    return math.sqrt(math.fsum(x * x for x in values))


# -- HTTP providers ------------------------------------------------------------------------------------------------


def openai_shaped(body: dict[str, Any], dims: int, usage: dict[str, int], **top: Any) -> httpx.Response:
    """An OpenAI-shaped answer, out of order on purpose; base64 when the request asked, each vector seeded by its
    text so tests can prove the order."""
    encode = body.get("encoding_format") == "base64"
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": b64(vector(seed(t), dims)) if encode else vector(seed(t), dims),
        }
        for i, t in enumerate(body["input"])
    ]
    return json_response({"object": "list", "model": body["model"], "data": data[::-1], "usage": usage, **top})


def voyage_answer(request: httpx.Request, dims: int = 1024, tokens_per_input: int = 5) -> httpx.Response:
    body = json.loads(request.content)
    usage = {"total_tokens": tokens_per_input * len(body["input"])}
    return openai_shaped(body, body.get("output_dimension") or dims, usage)


def jina_answer(request: httpx.Request, dims: int = 1024, tokens_per_input: int = 4) -> httpx.Response:
    body = json.loads(request.content)
    tokens = tokens_per_input * len(body["input"])
    return openai_shaped(body, body.get("dimensions") or dims, {"total_tokens": tokens, "prompt_tokens": tokens})


def mistral_answer(request: httpx.Request, dims: int = 1024, tokens_per_input: int = 3) -> httpx.Response:
    body = json.loads(request.content)
    tokens = tokens_per_input * len(body["input"])
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return openai_shaped(body, body.get("output_dimension") or dims, usage, id="e-1")


def gemini_answer(request: httpx.Request, dims: int = 3072) -> httpx.Response:
    """Gemini answers in request order, without indexes and without usage; vectors are NOT unit-length here."""
    body = json.loads(request.content)
    embeddings = [
        {"values": vector(seed(r["content"]["parts"][0]["text"]), r.get("outputDimensionality") or dims)}
        for r in body["requests"]
    ]
    return json_response({"embeddings": embeddings})


# -- Bedrock -------------------------------------------------------------------------------------------------------


def bedrock_client() -> Any:
    return boto3.client("bedrock-runtime", region_name="us-east-1")


def streaming(payload: Any) -> StreamingBody:
    raw = json.dumps(payload).encode()
    return StreamingBody(io.BytesIO(raw), len(raw))


@dataclass
class StubbedBedrock:
    """A Stubber-wrapped client that also records each InvokeModel body, decoded, for exact assertions."""

    client: Any = field(default_factory=bedrock_client)
    bodies: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.stubber = Stubber(self.client)
        self.client.meta.events.register("provide-client-params.bedrock-runtime.InvokeModel", self._record)
        self.stubber.activate()

    def _record(self, params: dict[str, Any], **_: Any) -> None:
        self.bodies.append(json.loads(params["body"]))

    def answer(self, model_id: str, payload: Any, headers: dict[str, str] | None = None) -> None:
        response = {
            "body": streaming(payload),
            "contentType": "application/json",
            "ResponseMetadata": {"HTTPStatusCode": 200, "HTTPHeaders": headers or {}},
        }
        expected = {
            "modelId": model_id,
            "body": _Any(),
            "contentType": "application/json",
            "accept": "application/json",
        }
        self.stubber.add_response("invoke_model", response, expected)

    def fail(self, code: str, status: int, message: str = "nope") -> None:
        self.stubber.add_client_error(
            "invoke_model", service_error_code=code, service_message=message, http_status_code=status
        )


class _Any:
    def __eq__(self, other: object) -> bool:
        return True

    def __hash__(self) -> int:
        return 0


class _Raw(io.BytesIO):
    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.getvalue()


@dataclass
class BedrockFake:
    """Answers InvokeModel on the wire (``before-send``) by content: safe under concurrent calls."""

    answer: Callable[[str, Any], tuple[Any, dict[str, str]]]
    client: Any = field(default_factory=bedrock_client)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    in_flight: int = 0
    peak: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.client.meta.events.register_first("before-send.bedrock-runtime.InvokeModel", self._send)

    def _send(self, request: Any, **_: Any) -> AWSResponse:
        model_id = unquote(request.url.split("/model/", 1)[1].rsplit("/invoke", 1)[0])
        body = json.loads(request.body)
        with self._lock:
            self.calls.append((model_id, body))
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        time.sleep(0.02)  # long enough for concurrent calls to overlap, so ``peak`` shows the fan-out
        with self._lock:
            self.in_flight -= 1
        payload, headers = self.answer(model_id, body)
        raw = json.dumps(payload).encode()
        headers = {"content-type": "application/json", "content-length": str(len(raw)), **headers}
        return AWSResponse(request.url, 200, headers, _Raw(raw))


def titan_answer(model_id: str, body: Any) -> tuple[Any, dict[str, str]]:
    values = vector(seed(body["inputText"]), body.get("dimensions", 1024))
    tokens = len(body["inputText"].split())
    return {"embedding": values, "inputTextTokenCount": tokens, "embeddingsByType": {"float": values}}, {}


def bedrock_cohere_payload(texts: list[str], dims: int = 1024, by_type: bool = True) -> Any:
    floats = [vector(seed(t), dims) for t in texts]
    if by_type:
        return {"id": "b-1", "response_type": "embeddings_by_type", "embeddings": {"float": floats}, "texts": texts}
    return {"id": "b-1", "response_type": "embeddings_floats", "embeddings": floats, "texts": texts}


def selfhosted_answer(request: httpx.Request, dims: int = 4096) -> httpx.Response:
    """An OpenAI-compatible server (vLLM, TEI, Infinity): base64 when asked, vectors seeded by the text it saw."""
    body = json.loads(request.content)
    tokens = 7 * len(body["input"])
    return openai_shaped(body, dims, {"prompt_tokens": tokens, "total_tokens": tokens})
