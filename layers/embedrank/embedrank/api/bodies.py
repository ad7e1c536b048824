"""The answers of embeddings and rerank as data, built once for the API's endpoints and for batch jobs' lines."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..domain.embeddings import EmbedOutcome
    from ..domain.rerank import RerankOutcome
    from .requests import EmbeddingRequest, RerankRequest
    from .responses import EmbeddingResponse, EmbeddingUsage, RerankResponse


def embedding_body(request: EmbeddingRequest, outcome: EmbedOutcome, *, with_data: bool) -> EmbeddingResponse:
    """The embeddings answer; its ``data`` empty unless ``with_data`` (a streamed answer writes it itself)."""
    usage: EmbeddingUsage = {
        "prompt_tokens": outcome.tokens,
        "total_tokens": outcome.tokens,
        "cost": outcome.cost,
        "cached_inputs": outcome.cached_inputs,
    }
    if outcome.estimated:
        usage["estimated"] = True
    vectors = outcome.vectors.as_encoding(request.encoding_format) if with_data else []
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
        "model": request.model,
        "provider": outcome.deployment.provider,
        "usage": usage,
    }


def rerank_body(request_id: str, request: RerankRequest, outcome: RerankOutcome) -> RerankResponse:
    return {
        "id": request_id,
        "object": "list",
        "results": outcome.items(),
        "model": request.model,
        "provider": outcome.deployment.provider,
        "usage": outcome.usage(),
        "meta": outcome.meta(),
    }
