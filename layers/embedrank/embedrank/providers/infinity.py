"""Infinity rerank (POST {base}/rerank), for self-hosted rerankers; the API follows Cohere's v1 rerank.

One Infinity server can serve several models, chosen by the ``model`` field, so the catalog's native name is sent and
an operator adds a model by adding a catalog entry. The base URL comes from the provider secret (locally
``INFINITY_BASE_URL``, the prefix before ``/rerank``); a key is optional (``--api-key``). Documents are never asked
back (``return_documents: false``): the gateway has the texts, and Infinity would echo them as plain strings anyway.
"""

from __future__ import annotations

from .base import Adapter as BaseAdapter
from .calls import RerankCall, RerankResult


class Adapter(BaseAdapter):
    provider = "infinity"
    needs_credentials = False  # a base URL is required (base_url() says so); a key only if the server wants one

    async def _rerank(self, call: RerankCall) -> RerankResult:
        body = {
            "model": call.deployment.native,
            "query": call.query,
            "documents": call.documents,
            "top_n": call.top_n,
            "return_documents": False,
            "raw_scores": False,
        }
        url = f"{self.base_url(call.credentials)}/rerank"
        payload = await self.post(
            url, body, self.bearer(call.credentials), timeout=call.timeout, limit=call.answer_limit
        )
        return RerankResult(self.scored(payload["results"]), tokens=self.total_tokens(payload))
