"""OpenAI embeddings (POST {base}/embeddings), and the base for every OpenAI-compatible server.

OpenAI's request schema forbids unknown properties, so only its own fields are sent: ``input_type`` is dropped (the
model is symmetric) and ``user`` stays in the gateway. Vectors are requested in the caller's encoding and pass
through untouched: base64 strings as they are, float arrays as the provider's own JSON text (never parsed into
Python floats and printed again).
"""

from __future__ import annotations

from typing import Any

from ..vectors import Kind, Vectors, split_float_arrays
from .base import Adapter as BaseAdapter
from .base import EmbedCall, EmbedResult


class Adapter(BaseAdapter):
    provider = "openai"
    default_base_url = "https://api.openai.com/v1"

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
        url = f"{self.base_url(call.credentials)}/embeddings"
        # Floats are cut out of the answer as text and passed through as such (see vectors.split_float_arrays).
        payload, spans = await self.post(
            url, self.embed_body(call), self.bearer(call.credentials), call.timeout, decode=split_float_arrays
        )
        spans_left = iter(spans)
        rows: list[tuple[int, Any]] = []
        for item in payload["data"]:
            value = item["embedding"]
            rows.append((int(item["index"]), next(spans_left) if value == 0 and not isinstance(value, str) else value))
        rows.sort(key=lambda row: row[0])
        items = [value for _, value in rows]
        # A server may ignore encoding_format: keep whichever form arrived, without converting.
        kind: Kind = "json" if all(isinstance(v, bytes) for v in items) else "base64"
        if kind == "base64" and not all(isinstance(v, str) for v in items):
            raise ValueError("embeddings are neither all float arrays nor all base64 strings")
        usage = payload.get("usage") or {}
        tokens = int(usage.get("prompt_tokens") or usage.get("total_tokens") or 0)
        return EmbedResult(Vectors(kind, items), tokens)
