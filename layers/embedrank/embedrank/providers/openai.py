"""OpenAI embeddings (POST {base}/embeddings), and the base for every OpenAI-compatible server.

OpenAI's request schema forbids unknown properties, so only its own fields are sent: ``input_type`` is dropped (the
model is symmetric) and ``user`` stays in the gateway. Vectors are always requested as base64 (little-endian float32),
which is ~4x smaller on the wire and passes straight through when the caller wants base64 too.
"""

from __future__ import annotations

from typing import Any

from ..vectors import Encoding, Vectors
from .base import Adapter as BaseAdapter
from .base import EmbedCall, EmbedResult


class Adapter(BaseAdapter):
    provider = "openai"
    default_base_url = "https://api.openai.com/v1"

    def embed_body(self, call: EmbedCall) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": call.deployment.native,
            "input": call.texts if call.texts is not None else call.tokens,
            "encoding_format": "base64",
        }
        if call.dimensions is not None:
            body["dimensions"] = call.dimensions
        return body

    async def _embed(self, call: EmbedCall) -> EmbedResult:
        url = f"{self.base_url(call.credentials)}/embeddings"
        payload = await self.post(url, self.embed_body(call), self.bearer(call.credentials), call.timeout)
        data = sorted(payload["data"], key=lambda item: item["index"])
        items = [item["embedding"] for item in data]
        # A server that ignores encoding_format answers floats; keep whichever arrived, without converting.
        encoding: Encoding = "base64" if all(isinstance(v, str) for v in items) else "float"
        usage = payload.get("usage") or {}
        tokens = int(usage.get("prompt_tokens") or usage.get("total_tokens") or 0)
        return EmbedResult(Vectors(encoding, items), tokens)
