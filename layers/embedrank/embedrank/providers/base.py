"""The base class every provider adapter extends: credentials, the provider's HTTP calls, and malformed answers.

A provider module holds that provider's whole wire mapping and exposes one class named ``Adapter``. This class owns
what they share, so a concrete adapter implements only ``_embed`` (and/or ``_rerank``): build the provider's body,
call ``self.post`` (or ``self.post_embeddings`` for OpenAI-shaped answers), read the answer. An answer missing a
field or holding the wrong type (``KeyError``, ``TypeError``, ...) becomes one 502 here, never a 500.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar, TypeVar

import orjson

from ..domain.records import Credentials
from ..domain.vectors import Vectors, split_float_arrays
from ..errors import EmbedrankError, InvalidRequest, ProviderNotConfigured, UpstreamError
from .calls import EmbedCall, EmbedResult, RerankCall, RerankResult
from .http import Http

T = TypeVar("T")


class Adapter:
    """Base for provider adapters: the ``EmbeddingAdapter`` and ``RerankAdapter`` protocols of ``providers``."""

    provider: ClassVar[str]
    default_base_url: ClassVar[str] = ""
    needs_credentials: ClassVar[bool] = True
    # Takes ``input`` as token id arrays (the ids of the provider's own tokenizer, as OpenAI's SDK sends them).
    accepts_tokens: ClassVar[bool] = False
    # Rerank: caps each document at ``max_tokens_per_doc`` tokens; the others only truncate at the model's window.
    accepts_max_tokens_per_doc: ClassVar[bool] = False

    def __init__(self, http: Http) -> None:
        self.http = http

    # -- the one method (or two) a concrete provider implements -------------------------------------------------
    async def _embed(self, call: EmbedCall) -> EmbedResult:
        raise InvalidRequest(f"Provider {self.provider} does not serve embeddings.", param="model")

    async def _rerank(self, call: RerankCall) -> RerankResult:
        raise InvalidRequest(f"Provider {self.provider} does not serve rerank.", param="model")

    # -- public entry points --------------------------------------------------------------------------------------
    async def embed(self, call: EmbedCall) -> EmbedResult:
        self._check_credentials(call.credentials)
        return await self._guard(self._embed(call))

    async def rerank(self, call: RerankCall) -> RerankResult:
        self._check_credentials(call.credentials)
        return await self._guard(self._rerank(call))

    # -- helpers for concrete adapters ----------------------------------------------------------------------------
    async def post(
        self,
        url: str,
        body: Any,
        headers: Mapping[str, str],
        *,
        timeout: float,
        limit: int,
        decode: Callable[[bytes], Any] = orjson.loads,
    ) -> Any:
        """POST ``body`` as JSON and return the decoded answer; every failure leaves as an ``UpstreamError``."""
        status, _, content = await self.http.post(
            self.provider, url, orjson.dumps(body), headers, timeout=timeout, limit=limit
        )
        try:
            return decode(content)
        except orjson.JSONDecodeError:
            raise UpstreamError(
                f"{self.provider} returned a response that is not JSON (HTTP {status}).",
                provider=self.provider,
                upstream_status=status,
                code="provider_malformed_response",
            ) from None

    async def post_embeddings(self, url: str, body: Any, call: EmbedCall) -> EmbedResult:
        """POST an embeddings request and read an OpenAI-shaped answer, ``{data: [{index, embedding}], usage}``
        (OpenAI, Voyage, Jina, Mistral, self-hosted servers).

        Float arrays are cut out of the answer as the provider's own text (``vectors.split_float_arrays``) and base64
        strings are kept as they are: whichever form arrived passes through without a Python float per element.
        """
        payload, spans = await self.post(
            url,
            body,
            self.bearer(call.credentials),
            timeout=call.timeout,
            limit=call.answer_limit,
            decode=split_float_arrays,
        )
        arrays = iter(spans)  # in document order, like ``data``; a 0 marks where each array was cut out
        rows = sorted(
            (
                (item["index"], next(arrays) if item["embedding"] == 0 else item["embedding"])
                for item in payload["data"]
            ),
            key=lambda row: row[0] if isinstance(row[0], int) else -1,
        )
        # Each input's vector under its own index: 0..n-1, each once. A repeat or a gap would put a vector in another
        # input's place and still look like an answer.
        indices = [index for index, _ in rows]
        if indices != list(range(call.count)) or not all(type(i) is int for i in indices):
            shown = ", ".join(str(i) for i in indices[:8]) + (", ..." if len(indices) > 8 else "")
            raise UpstreamError(
                f"{self.provider} answered with embedding indices [{shown}] for {call.count} inputs; each of "
                f"0..{call.count - 1} must appear once.",
                provider=self.provider,
                code="provider_malformed_response",
            )
        items = [value for _, value in rows]
        if all(isinstance(v, bytes) for v in items):
            vectors = Vectors("json", items)
        elif all(isinstance(v, str) for v in items):
            vectors = Vectors("base64", items)
        else:
            raise ValueError("embeddings are neither all float arrays nor all base64 strings")
        usage = payload.get("usage") or {}
        return EmbedResult(vectors, int(usage.get("prompt_tokens") or usage.get("total_tokens") or 0))

    @staticmethod
    def scored(rows: Any, score: str = "relevance_score") -> list[tuple[int, float]]:
        """``[(index, score)]`` from a provider's result rows."""
        return [(int(row["index"]), float(row[score])) for row in rows]

    @staticmethod
    def total_tokens(payload: Any) -> int:
        usage = payload.get("usage") or {}
        return int(usage.get("total_tokens") or 0)

    def base_url(self, credentials: Credentials | None) -> str:
        url = (credentials.base_url if credentials else None) or self.default_base_url
        if not url:
            raise ProviderNotConfigured(f"Provider {self.provider} has no base URL configured.")
        return url.rstrip("/")

    @staticmethod
    def bearer(credentials: Credentials | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {credentials.api_key}"} if credentials and credentials.api_key else {}

    def _check_credentials(self, credentials: Credentials | None) -> None:
        if self.needs_credentials and (credentials is None or not credentials.api_key):
            raise ProviderNotConfigured(
                f"Provider {self.provider} is not configured: add its credentials to the provider secret."
            )

    async def _guard(self, work: Awaitable[T]) -> T:
        try:
            return await work
        except EmbedrankError:
            raise
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise UpstreamError(
                f"{self.provider} returned a malformed response ({type(exc).__name__}: {exc}).",
                provider=self.provider,
                code="provider_malformed_response",
            ) from None
