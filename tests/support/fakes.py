"""Canned provider answers, built the way each provider's API returns them."""

from __future__ import annotations

import base64
import json
from array import array
from typing import Any

import httpx


def vector(seed: int, dims: int) -> list[float]:
    """A deterministic float32-exact vector (values survive a float32 round trip unchanged)."""
    return list(array("f", [((seed * 31 + i * 7) % 97 - 48) / 64 for i in range(dims)]))


def b64(values: list[float]) -> str:
    return base64.b64encode(array("f", values).tobytes()).decode()


def decode_b64(text: str) -> list[float]:
    return list(array("f", base64.b64decode(text)))


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        status, content=json.dumps(body).encode(), headers={"content-type": "application/json", **(headers or {})}
    )


def openai_answer(request: httpx.Request, dims: int = 1536, tokens_per_input: int = 3) -> httpx.Response:
    body = json.loads(request.content)
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    dims = body.get("dimensions", dims)
    encode = body.get("encoding_format") == "base64"
    data = [
        {"object": "embedding", "index": i, "embedding": b64(vector(i, dims)) if encode else vector(i, dims)}
        for i in range(len(inputs))
    ]
    usage = {"prompt_tokens": tokens_per_input * len(inputs), "total_tokens": tokens_per_input * len(inputs)}
    return json_response({"object": "list", "data": data[::-1], "model": body["model"], "usage": usage})


def cohere_embed_answer(request: httpx.Request, dims: int = 1024, tokens_per_input: int = 2) -> httpx.Response:
    body = json.loads(request.content)
    dims = body.get("output_dimension", dims)
    texts = body["texts"]
    return json_response(
        {
            "id": "abc",
            "embeddings": {"float": [vector(i, dims) for i in range(len(texts))]},
            "texts": texts,
            "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": tokens_per_input * len(texts)}},
            "response_type": "embeddings_by_type",
        }
    )
