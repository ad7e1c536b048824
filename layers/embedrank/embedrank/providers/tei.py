"""Hugging Face Text Embeddings Inference rerank (POST {base}/rerank), for self-hosted cross-encoders.

TEI serves one model per server, so the base URL (from the provider secret; locally ``TEI_BASE_URL``, the prefix before
``/rerank``) names the model and no model field is sent. Its answer is a bare array ``[{index, score}]`` covering every
text, not Cohere-shaped, and it has no ``top_n``: the gateway sorts and cuts. A key is optional (``--api-key``).

TEI refuses requests with more texts than its ``--max-client-batch-size`` (32 by default), so documents are sent in
batches of that size, run concurrently; a cross-encoder scores each (query, text) pair on its own, so batching does
not change a score. ``max_batch_size`` in the provider secret's ``tei`` entry overrides the size for servers started
with a larger limit. ``truncate: true`` makes TEI cut over-long texts to the model's window, as the hosted providers
do, instead of failing the whole request.
"""

from __future__ import annotations

from typing import Any

from ..domain.reliability import gather_or_cancel
from .base import Adapter as BaseAdapter
from .calls import RerankCall, RerankResult

DEFAULT_BATCH = 32  # TEI's default --max-client-batch-size


class Adapter(BaseAdapter):
    provider = "tei"
    needs_credentials = False  # a base URL is required (base_url() says so); a key only if the server wants one

    async def _rerank(self, call: RerankCall) -> RerankResult:
        url = f"{self.base_url(call.credentials)}/rerank"
        headers = self.bearer(call.credentials)
        size = _batch_size(call)
        starts = range(0, len(call.documents), size)
        # One failed batch fails the request: the others are stopped rather than orphaned.
        batches = [call.documents[start : start + size] for start in starts]
        answers = await gather_or_cancel([self._score(url, headers, call, batch) for batch in batches])
        results: list[tuple[int, float]] = []
        for start, answer in zip(starts, answers, strict=True):
            results.extend((start + int(item["index"]), float(item["score"])) for item in answer)
        return RerankResult(results)  # TEI reports no usage; its models cost nothing per token here

    async def _score(self, url: str, headers: dict[str, str], call: RerankCall, texts: list[str]) -> list[Any]:
        body = {"query": call.query, "texts": texts, "raw_scores": False, "return_text": False, "truncate": True}
        answer = await self.post(url, body, headers, timeout=call.timeout, limit=call.answer_limit)
        if not isinstance(answer, list) or len(answer) != len(texts):
            raise ValueError(f"expected a list of {len(texts)} scores")
        # Indices are the batch's own: each of 0..len(texts)-1 once, or a score lands on another batch's document.
        if sorted(item["index"] for item in answer) != list(range(len(texts))):
            raise ValueError(f"the scores' indices are not each of 0..{len(texts) - 1} once")
        return answer


def _batch_size(call: RerankCall) -> int:
    raw = call.credentials.extra.get("max_batch_size") if call.credentials else None
    try:
        size = int(raw) if raw is not None else DEFAULT_BATCH
    except ValueError:
        size = DEFAULT_BATCH
    return max(1, size)
