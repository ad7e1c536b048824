"""Google Gemini API embeddings (POST {base}/models/{model}:batchEmbedContents, key in ``x-goog-api-key``).

One ``requests[]`` item per text, each naming the same ``models/{model}`` as the URL (the API rejects a mismatch).
``input_type`` becomes ``taskType`` RETRIEVAL_QUERY / RETRIEVAL_DOCUMENT; null omits it. ``outputDimensionality``
is native (Matryoshka, 128..3072): Google pre-normalizes only the full 3072-wide output, so narrower vectors are
L2-normalized here, making them as usable with a dot product as every other model's.

The API returns floats only (the gateway encodes base64) and **no token counts**: usage is estimated with
``estimate_tokens`` and marked ``estimated`` in the response and the usage record.
"""

from __future__ import annotations

from typing import Any

from ..domain.vectors import Vectors
from .base import Adapter as BaseAdapter
from .calls import EmbedCall, EmbedResult, estimate_tokens

TASK_TYPES = {"query": "RETRIEVAL_QUERY", "document": "RETRIEVAL_DOCUMENT"}


class Adapter(BaseAdapter):
    provider = "google"
    default_base_url = "https://generativelanguage.googleapis.com/v1beta"

    async def _embed(self, call: EmbedCall) -> EmbedResult:
        texts = call.texts or []
        model = f"models/{call.deployment.native}"
        item: dict[str, Any] = {"model": model}
        if call.input_type is not None:
            item["taskType"] = TASK_TYPES[call.input_type]
        if call.dimensions is not None:
            item["outputDimensionality"] = call.dimensions
        body = {"requests": [{**item, "content": {"parts": [{"text": text}]}} for text in texts]}
        url = f"{self.base_url(call.credentials)}/{model}:batchEmbedContents"
        headers = {"x-goog-api-key": call.credentials.api_key if call.credentials else ""}
        payload = await self.post(url, body, headers, timeout=call.timeout, limit=call.answer_limit)
        vectors = Vectors("float", [embedding["values"] for embedding in payload["embeddings"]])
        width = call.dimensions
        # Only re-normalize vectors of the expected width; a wrong width must reach the gateway's shape check intact.
        if width is not None and width != call.deployment.dimensions and vectors.widths() == {width}:
            vectors = vectors.truncated(width)  # truncating to the same width = L2-normalizing
        return EmbedResult(vectors, estimate_tokens(texts), estimated=True)
