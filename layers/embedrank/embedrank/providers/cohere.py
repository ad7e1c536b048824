"""Cohere v2: embed (POST {base}/v2/embed) and rerank (POST {base}/v2/rerank).

Cohere requires ``input_type`` for v3+ models. A request with ``input_type: null`` is embedded as
``search_document``: indexing is the common case for unlabelled batches, and documents are what a vector store holds,
so a caller who never sets the field gets vectors that match later ``query`` searches. The README says so.

Vectors are requested as floats: Cohere documents ``embedding_types=["base64"]`` but not its byte order, and a
silently byte-swapped vector would corrupt a caller's index, so the gateway encodes base64 itself.
"""

from __future__ import annotations

from typing import Any

from ..domain.vectors import Vectors
from .base import Adapter as BaseAdapter
from .calls import EmbedCall, EmbedResult, RerankCall, RerankResult, search_units

INPUT_TYPES = {"query": "search_query", "document": "search_document", None: "search_document"}


class Adapter(BaseAdapter):
    provider = "cohere"
    default_base_url = "https://api.cohere.com"
    accepts_max_tokens_per_doc = True

    async def _embed(self, call: EmbedCall) -> EmbedResult:
        body: dict[str, Any] = {
            "model": call.deployment.native,
            "texts": call.texts,
            "input_type": INPUT_TYPES[call.input_type],
            "embedding_types": ["float"],
        }
        if call.dimensions is not None:
            body["output_dimension"] = call.dimensions
        url = f"{self.base_url(call.credentials)}/v2/embed"
        payload = await self.post(
            url, body, self.bearer(call.credentials), timeout=call.timeout, limit=call.answer_limit
        )
        embeddings = payload["embeddings"]
        vectors = Vectors("float", embeddings["float"])
        billed = (payload.get("meta") or {}).get("billed_units") or {}
        return EmbedResult(vectors, int(billed.get("input_tokens") or 0))

    async def _rerank(self, call: RerankCall) -> RerankResult:
        body: dict[str, Any] = {
            "model": call.deployment.native,
            "query": call.query,
            "documents": call.documents,
            "top_n": call.top_n,
        }
        if call.max_tokens_per_doc is not None:
            body["max_tokens_per_doc"] = call.max_tokens_per_doc
        url = f"{self.base_url(call.credentials)}/v2/rerank"
        payload = await self.post(
            url, body, self.bearer(call.credentials), timeout=call.timeout, limit=call.answer_limit
        )
        billed = (payload.get("meta") or {}).get("billed_units") or {}
        units = billed.get("search_units")
        counted = int(units) if units is not None else search_units(len(call.documents))
        return RerankResult(self.scored(payload["results"]), search_units=counted)
