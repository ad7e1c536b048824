"""OpenAI embeddings (POST {base}/embeddings), and the base for every OpenAI-compatible server.

OpenAI's request schema forbids unknown properties, so only its own fields are sent: ``input_type`` is dropped (the
model is symmetric) and ``user`` stays in the gateway. Vectors are requested in the caller's encoding and pass
through untouched: base64 strings as they are, float arrays as the provider's own JSON text (never parsed into
Python floats and printed again).
"""

from __future__ import annotations

from typing import Any

from .base import Adapter as BaseAdapter
from .calls import EmbedCall, EmbedResult


class Adapter(BaseAdapter):
    provider = "openai"
    default_base_url = "https://api.openai.com/v1"
    accepts_tokens = True

    def embed_body(self, call: EmbedCall) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": call.deployment.native,
            "input": call.texts if call.texts is not None else call.tokens,
            "encoding_format": call.encoding,
        }
        if call.dimensions is not None:
            body["dimensions"] = call.dimensions
        return body

    async def _embed(self, call: EmbedCall) -> EmbedResult:
        return await self.post_embeddings(f"{self.base_url(call.credentials)}/embeddings", self.embed_body(call), call)
