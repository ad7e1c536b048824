"""Jina AI embeddings (POST {base}/embeddings) and rerank (POST {base}/rerank).

``input_type`` becomes Jina's ``task`` (``retrieval.query`` / ``retrieval.passage``, the LoRA adapters the v3 and v4
models were trained with); null omits it and Jina uses the model's default. ``dimensions`` is native (Matryoshka).

Vectors are requested as floats: Jina offers ``embedding_type: base64`` but documents neither the element width nor
the byte order, and a silently byte-swapped vector would corrupt a caller's index, so the gateway encodes base64.
"""

from __future__ import annotations

from typing import Any

from .base import Adapter as BaseAdapter
from .calls import EmbedCall, EmbedResult, RerankCall, RerankResult

TASKS = {"query": "retrieval.query", "document": "retrieval.passage"}


class Adapter(BaseAdapter):
    provider = "jina"
    default_base_url = "https://api.jina.ai/v1"

    async def _embed(self, call: EmbedCall) -> EmbedResult:
        body: dict[str, Any] = {
            "model": call.deployment.native,
            "input": call.texts,
            "embedding_type": "float",
        }
        if call.input_type is not None:
            body["task"] = TASKS[call.input_type]
        if call.dimensions is not None:
            body["dimensions"] = call.dimensions
        return await self.post_embeddings(f"{self.base_url(call.credentials)}/embeddings", body, call)

    async def _rerank(self, call: RerankCall) -> RerankResult:
        body = {
            "model": call.deployment.native,
            "query": call.query,
            "documents": call.documents,
            "top_n": call.top_n,
            # Jina echoes every document unless told not to (its default is true); the gateway has the texts.
            "return_documents": False,
        }
        url = f"{self.base_url(call.credentials)}/rerank"
        payload = await self.post(
            url, body, self.bearer(call.credentials), timeout=call.timeout, limit=call.answer_limit
        )
        return RerankResult(self.scored(payload["results"]), tokens=self.total_tokens(payload))
