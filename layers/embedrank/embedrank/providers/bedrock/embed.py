"""AWS Bedrock embeddings through boto3 ``bedrock-runtime`` ``invoke_model``: Titan Text v2 and Cohere Embed.

Credentials, region and endpoint come the standard AWS way (``client.py``). boto3 is synchronous, so each call runs
in a thread; the answer is read up to the call's ``answer_limit`` and no further.

- **Titan v2** embeds ONE text per call (the catalog says ``max_inputs: 1``, and the gateway fans a batch out
  concurrently). It is symmetric, so ``input_type`` is dropped; ``dimensions`` 256/512/1024 is native; tokens come
  from ``inputTextTokenCount``.
- **Cohere Embed v3/v4** take the same body as Cohere's own API with ``input_type`` required: null is embedded as
  ``search_document``, exactly as on Cohere direct, so a route falling back from Cohere to Bedrock returns the same
  vectors. Bedrock's ``truncate`` defaults to NONE (an error on overflow) where Cohere direct truncates the end, so
  the end-truncating value is sent for the same reason. Tokens come from the ``x-amzn-bedrock-input-token-count``
  response header; when it is absent they are estimated and marked so.

Both answer floats only; the gateway encodes base64.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import orjson

from ... import aws
from ...config import settings
from ...domain.vectors import Vectors
from ...errors import ProviderNotConfigured
from ..base import Adapter as BaseAdapter
from ..calls import EmbedCall, EmbedResult, estimate_tokens
from ..cohere import INPUT_TYPES as COHERE_INPUT_TYPES  # the same vocabulary, so a fallback gives the same vectors
from .client import PROVIDER, in_thread, too_large

if TYPE_CHECKING:
    from mypy_boto3_bedrock_runtime import BedrockRuntimeClient

    from ..http import Http

COUNT_HEADER = "x-amzn-bedrock-input-token-count"  # botocore lowercases header names


class Adapter(BaseAdapter):
    provider = PROVIDER
    needs_credentials = False

    def __init__(self, http: Http, runtime: BedrockRuntimeClient | None = None) -> None:
        super().__init__(http)
        self.runtime = runtime  # injectable (tests: a Stubber-wrapped client); else the process's client

    async def invoke(self, model_id: str, body: dict[str, Any], call: EmbedCall) -> tuple[Any, dict[str, str]]:
        """One InvokeModel call: the decoded JSON answer and the HTTP headers."""
        limit = call.answer_limit

        def invoke(runtime: BedrockRuntimeClient) -> tuple[bytes, dict[str, str]]:
            response = runtime.invoke_model(
                modelId=model_id, body=orjson.dumps(body), contentType="application/json", accept="application/json"
            )
            stream = response["body"]
            try:
                raw = stream.read(limit + 1)
            finally:
                stream.close()
            if len(raw) > limit:
                raise too_large(limit)
            return raw, response.get("ResponseMetadata", {}).get("HTTPHeaders", {})

        raw, headers = await in_thread(
            lambda: invoke(self.runtime or aws.bedrock_runtime(settings().upstream_timeout)), call.timeout
        )
        return orjson.loads(raw), headers

    async def _embed(self, call: EmbedCall) -> EmbedResult:
        native = call.deployment.native
        if native.startswith("amazon.titan-embed"):
            return await self._titan(call)
        if native.startswith("cohere.embed"):
            return await self._cohere(call)
        raise ProviderNotConfigured(f"The gateway has no Bedrock body mapping for model {native}.")

    async def _titan(self, call: EmbedCall) -> EmbedResult:
        async def one(text: str) -> tuple[list[float], int]:
            body: dict[str, Any] = {"inputText": text}
            if call.dimensions is not None:
                body["dimensions"] = call.dimensions
            payload, _ = await self.invoke(call.deployment.native, body, call)
            return payload["embedding"], int(payload["inputTextTokenCount"])

        answers = await asyncio.gather(*(one(text) for text in call.texts or []))
        return EmbedResult(Vectors("float", [a[0] for a in answers]), sum(a[1] for a in answers))

    async def _cohere(self, call: EmbedCall) -> EmbedResult:
        v4 = call.deployment.native.startswith("cohere.embed-v4")
        body: dict[str, Any] = {
            "texts": call.texts,
            "input_type": COHERE_INPUT_TYPES[call.input_type],
            "embedding_types": ["float"],
            "truncate": "RIGHT" if v4 else "END",  # v4 names the sides LEFT/RIGHT, v3 START/END
        }
        if call.dimensions is not None:
            body["output_dimension"] = call.dimensions
        payload, headers = await self.invoke(call.deployment.native, body, call)
        embeddings = payload["embeddings"]
        # With embedding_types the answer is by type; without (or from an older model) a plain list of lists.
        vectors = Vectors("float", embeddings["float"] if isinstance(embeddings, dict) else embeddings)
        counted = headers.get(COUNT_HEADER)
        if counted is None:
            return EmbedResult(vectors, estimate_tokens(call.texts or []), estimated=True)
        return EmbedResult(vectors, int(counted))
