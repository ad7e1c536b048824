"""The benchmark's requests: what the caller sends to the gateway, and the same request sent straight to the fake.

The gateway's model ids are ``<provider>/<native name>``; the direct request is what that provider's own SDK would
send for the same call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

DEV_KEY = "er-bench-0000000000000000000000000000000000000000"
EMBED_MODEL = "openai/text-embedding-3-small"
FANOUT_MODEL = "cohere/embed-v4.0"
RERANK_MODEL = "cohere/rerank-v3.5"


def texts(count: int, prefix: str = "text") -> list[str]:
    return [f"{prefix} {i}: the quick brown fox jumps over the lazy dog near the riverbank" for i in range(count)]


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    gateway_path: str
    gateway_body: dict[str, Any]
    direct_path: str  # relative to the fake's root
    direct_body: dict[str, Any]

    @property
    def gateway_bytes(self) -> bytes:
        return orjson.dumps(self.gateway_body)

    @property
    def direct_bytes(self) -> bytes:
        return orjson.dumps(self.direct_body)


def embeddings(encoding: str, count: int = 16) -> Scenario:
    inputs = texts(count)
    return Scenario(
        name=f"embeddings {count}x1536 {encoding}",
        gateway_path="/v1/embeddings",
        gateway_body={"model": EMBED_MODEL, "input": inputs, "encoding_format": encoding},
        direct_path="/v1/embeddings",
        direct_body={"model": EMBED_MODEL.split("/", 1)[1], "input": inputs, "encoding_format": encoding},
    )


def rerank(count: int = 50) -> Scenario:
    query = "which document talks about a fox?"
    documents = texts(count, "document")
    return Scenario(
        name=f"rerank {count} documents",
        gateway_path="/v1/rerank",
        gateway_body={"model": RERANK_MODEL, "query": query, "documents": documents},
        direct_path="/v2/rerank",
        direct_body={"model": RERANK_MODEL.split("/", 1)[1], "query": query, "documents": documents},
    )


# 2048 vectors of 1536 dims are ~17 MB even as base64: over Lambda's 6 MB response limit, so the gateway answers
# 413 before calling anyone. The fan-out is measured at 256 dims (embed-v4's smallest), base64: a 2.8 MB answer.
FANOUT_DIMS = 256


def fanout(count: int = 2048) -> Scenario:
    inputs = texts(count)
    return Scenario(
        name=f"fan-out {count} inputs",
        gateway_path="/v1/embeddings",
        gateway_body={
            "model": FANOUT_MODEL,
            "input": inputs,
            "input_type": "document",
            "encoding_format": "base64",
            "dimensions": FANOUT_DIMS,
        },
        direct_path="/v2/embed",
        direct_body={
            "model": FANOUT_MODEL.split("/", 1)[1],
            "texts": inputs,  # sliced per call by the sequential baseline
            "input_type": "search_document",
            "embedding_types": ["float"],
            "output_dimension": FANOUT_DIMS,
        },
    )


def all_latency() -> list[Scenario]:
    return [embeddings("float"), embeddings("base64"), rerank()]
