"""Voyage AI embeddings (POST {base}/embeddings) and rerank (POST {base}/rerank).

``input_type`` passes through as Voyage's own ``query``/``document`` (Voyage prepends its retrieval prompt
server-side); null is omitted, which Voyage documents as "no prompt". ``output_dimension`` is native on the 3.5 and
3-large families. Vectors are requested as base64: the voyageai SDK decodes them with
``np.frombuffer(b64decode(s), "float32")``, i.e. the same little-endian float32 layout as the canonical one, so they
pass straight through to a base64 caller.
"""

from __future__ import annotations

from typing import Any

from .base import Adapter as BaseAdapter
from .calls import EmbedCall, EmbedResult, RerankCall, RerankResult


class Adapter(BaseAdapter):
    provider = "voyage"
    default_base_url = "https://api.voyageai.com/v1"

    async def _embed(self, call: EmbedCall) -> EmbedResult:
        body: dict[str, Any] = {
            "model": call.deployment.native,
            "input": call.texts,
            "encoding_format": "base64",
        }
        if call.input_type is not None:
            body["input_type"] = call.input_type
        if call.dimensions is not None:
            body["output_dimension"] = call.dimensions
        return await self.post_embeddings(f"{self.base_url(call.credentials)}/embeddings", body, call)

    async def _rerank(self, call: RerankCall) -> RerankResult:
        # Voyage only has a truncation switch (on by default), not a token count: refuse rather than ignore it.
        body = {
            "model": call.deployment.native,
            "query": call.query,
            "documents": call.documents,
            "top_k": call.top_n,
            "return_documents": False,  # the gateway has the texts; asking for them back only costs bandwidth
        }
        url = f"{self.base_url(call.credentials)}/rerank"
        payload = await self.post(
            url, body, self.bearer(call.credentials), timeout=call.timeout, limit=call.answer_limit
        )
        return RerankResult(self.scored(payload["data"]), tokens=self.total_tokens(payload))
