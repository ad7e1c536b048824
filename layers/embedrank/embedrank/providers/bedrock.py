"""AWS Bedrock embeddings through boto3 ``bedrock-runtime`` ``invoke_model``: Titan Text v2 and Cohere Embed.

Credentials and region come the standard AWS way (the Lambda role, or the usual chain locally); the secret holds
nothing for Bedrock. The client ignores configured endpoint overrides (``AWS_ENDPOINT_URL``), so pointing DynamoDB
and Secrets Manager at a local AWS never redirects Bedrock. boto3 is synchronous, so each call runs in a thread.

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
from typing import TYPE_CHECKING, Any, Literal

import orjson

from ..errors import (
    EmbedrankError,
    ProviderNotConfigured,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from ..vectors import Vectors
from .base import Adapter as BaseAdapter
from .base import EmbedCall, EmbedResult, estimate_tokens
from .cohere import INPUT_TYPES as COHERE_INPUT_TYPES  # the same vocabulary, so a fallback gives the same vectors

if TYPE_CHECKING:
    import httpx
    from mypy_boto3_bedrock_runtime import BedrockRuntimeClient


def client(service: Literal["bedrock-runtime", "bedrock-agent-runtime"], region: str | None, timeout: float) -> Any:
    """A Bedrock client (embeddings' runtime or rerank's agent runtime), configured the same way for both."""
    import boto3
    from botocore.config import Config

    # botocore-stubs lags botocore: the option exists at runtime (botocore >= 1.31) but not in the stubs.
    config = Config(  # type: ignore[call-arg]
        # Locally AWS_ENDPOINT_URL* point at the embedded AWS, which has no Bedrock.
        ignore_configured_endpoint_urls=True,
        connect_timeout=min(timeout, 5.0),
        read_timeout=timeout,
        # One quick retry of transient faults; the gateway's retry policy and a route's next deployment do the rest.
        retries={"mode": "standard", "total_max_attempts": 2},
        max_pool_connections=32,
    )
    return boto3.session.Session().client(service, region_name=region, config=config)


COUNT_HEADER = "x-amzn-bedrock-input-token-count"  # botocore lowercases header names

# ClientError codes -> (error class, our code). Anything unlisted is a plain 502.
CLIENT_ERRORS: dict[str, tuple[type[UpstreamError], str | None]] = {
    "ThrottlingException": (UpstreamRateLimited, None),
    "ServiceQuotaExceededException": (UpstreamRateLimited, None),
    "ValidationException": (UpstreamError, "provider_rejected_request"),
    "AccessDeniedException": (UpstreamError, "provider_auth_failed"),
    "ResourceNotFoundException": (UpstreamError, "provider_rejected_request"),
    "ModelTimeoutException": (UpstreamTimeout, None),
    "ModelNotReadyException": (UpstreamUnavailable, None),
    "ServiceUnavailableException": (UpstreamUnavailable, None),
    "InternalServerException": (UpstreamUnavailable, None),
}


def upstream_error(exc: Exception, provider: str = "bedrock") -> EmbedrankError | None:
    """The gateway error for a boto3/botocore failure, or None when ``exc`` is not one of them."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectTimeoutError,
        NoCredentialsError,
        NoRegionError,
        ReadTimeoutError,
    )

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        meta = exc.response.get("ResponseMetadata", {})
        name = str(error.get("Code", ""))
        cls, code = CLIENT_ERRORS.get(name, (UpstreamError, None))
        message = f"{provider} returned {name or 'an error'}: {error.get('Message') or 'no message'}"[:500]
        return cls(message, provider=provider, upstream_status=meta.get("HTTPStatusCode"), code=code)
    if isinstance(exc, (ReadTimeoutError, ConnectTimeoutError)):
        return UpstreamTimeout(f"{provider} did not answer in time.", provider=provider)
    if isinstance(exc, (NoCredentialsError, NoRegionError)):
        return ProviderNotConfigured(f"Provider {provider} is not configured: {type(exc).__name__}.")
    if isinstance(exc, BotoCoreError):
        return UpstreamUnavailable(f"Could not reach {provider}: {type(exc).__name__}.", provider=provider)
    return None


class Adapter(BaseAdapter):
    provider = "bedrock"
    needs_credentials = False

    def __init__(
        self, transport: httpx.AsyncBaseTransport | None = None, runtime: BedrockRuntimeClient | None = None
    ) -> None:
        super().__init__(transport)
        self.runtime = runtime  # injectable (tests: a Stubber-wrapped client); else created on first use

    def _runtime(self, timeout: float) -> BedrockRuntimeClient:
        if self.runtime is None:
            self.runtime = client("bedrock-runtime", None, timeout)
        return self.runtime

    async def invoke(self, model_id: str, body: dict[str, Any], timeout: float) -> tuple[Any, dict[str, str]]:
        """One InvokeModel call: the decoded JSON answer and the HTTP headers."""

        def call(runtime: BedrockRuntimeClient) -> tuple[bytes, dict[str, str]]:
            response = runtime.invoke_model(
                modelId=model_id, body=orjson.dumps(body), contentType="application/json", accept="application/json"
            )
            return response["body"].read(), response.get("ResponseMetadata", {}).get("HTTPHeaders", {})

        try:
            # The client is created here, on the event loop, so concurrent calls never race to create several.
            raw, headers = await asyncio.to_thread(call, self._runtime(timeout))
        except Exception as exc:
            mapped = upstream_error(exc, self.provider)
            if mapped is None:
                raise
            raise mapped from None
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
            payload, _ = await self.invoke(call.deployment.native, body, call.timeout)
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
        payload, headers = await self.invoke(call.deployment.native, body, call.timeout)
        embeddings = payload["embeddings"]
        # With embedding_types the answer is by type; without (or from an older model) a plain list of lists.
        vectors = Vectors("float", embeddings["float"] if isinstance(embeddings, dict) else embeddings)
        counted = headers.get(COUNT_HEADER)
        if counted is None:
            return EmbedResult(vectors, estimate_tokens(call.texts or []), estimated=True)
        return EmbedResult(vectors, int(counted))
