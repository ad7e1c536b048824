"""Mistral embeddings (POST {base}/embeddings).

Mistral's models are symmetric and its request schema forbids unknown properties, so ``input_type`` is dropped.
``output_dimension`` is native on codestral-embed only (the catalog marks mistral-embed as fixed at 1024). Mistral
caps a request at 16,384 tokens summed over the batch; the gateway's batcher splits by the catalog's
``max_tokens_per_call`` before calls reach here.

Vectors are requested as floats: Mistral offers ``encoding_format: base64`` but its response schema types the
embedding as a float array and documents no byte layout, so the gateway encodes base64 itself.
"""

from __future__ import annotations

from typing import Any

from .base import Adapter as BaseAdapter
from .calls import EmbedCall, EmbedResult


class Adapter(BaseAdapter):
    provider = "mistral"
    default_base_url = "https://api.mistral.ai/v1"

    async def _embed(self, call: EmbedCall) -> EmbedResult:
        body: dict[str, Any] = {"model": call.deployment.native, "input": call.texts}
        if call.dimensions is not None:
            body["output_dimension"] = call.dimensions
        return await self.post_embeddings(f"{self.base_url(call.credentials)}/embeddings", body, call)
