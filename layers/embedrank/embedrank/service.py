"""Embeddings domain logic: resolve the model, shape the provider calls, check and assemble the answer.

Nothing here knows HTTP or DynamoDB: the app hands in a parsed request and an authenticated principal, and gets
back vectors plus what to meter. Provider calls go through the registry's adapters; credentials come from the
credential store (run off the event loop, it may call Secrets Manager).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from .auth import Principal
from .catalog import Catalog, Deployment
from .config import Settings
from .credentials import CredentialStore
from .errors import EmbedrankError, InvalidRequest, ProviderNotConfigured, UpstreamError, UpstreamUnavailable
from .providers import Registry
from .providers.base import Credentials, EmbedCall, EmbedResult
from .reliability import Breakers, RetryPolicy, current_budget, gather_or_cancel
from .schemas import EmbeddingRequest
from .sizes import check_embedding_answer
from .vectors import Vectors

T = TypeVar("T")


def batch_spans(
    inputs: Sequence[str] | Sequence[list[int]], max_inputs: int, max_tokens: int | None
) -> list[tuple[int, int]]:
    """Consecutive ``[start, end)`` slices of ``inputs``, one per provider call.

    A call holds at most ``max_inputs`` items and, where the provider caps a request's summed tokens (Mistral:
    16,384), at most ``max_tokens`` of them. Text is sized at one token per 3 UTF-8 bytes, deliberately more than
    real tokenizers produce (~4 bytes per token in English), so a batch stays under the cap without a tokenizer; an
    input that alone exceeds the cap gets its own call and the provider's verdict.
    """
    if max_tokens is None:
        return [(i, min(i + max_inputs, len(inputs))) for i in range(0, len(inputs), max_inputs)]
    spans: list[tuple[int, int]] = []
    start = used = 0
    for i, item in enumerate(inputs):
        size = len(item) if not isinstance(item, str) else len(item.encode("utf-8")) // 3 + 1
        if i > start and (i - start == max_inputs or used + size > max_tokens):
            spans.append((start, i))
            start, used = i, 0
        used += size
    if inputs:
        spans.append((start, len(inputs)))
    return spans


@dataclass(slots=True)
class EmbedOutcome:
    deployment: Deployment
    vectors: Vectors
    tokens: int
    cost: float
    estimated: bool


class Gateway:
    """The domain entry points shared by every function: embeddings here, rerank in ``reranking.py``."""

    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        registry: Registry,
        credentials: CredentialStore,
        *,
        policy: RetryPolicy | None = None,
        breakers: Breakers | None = None,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.registry = registry
        self.credentials = credentials
        self.policy = policy or RetryPolicy(attempts=settings.retry_attempts)
        self.breakers = breakers or Breakers(settings.breaker_threshold, settings.breaker_cooldown)

    async def credentials_for(self, provider: str) -> Credentials | None:
        known, credentials = self.credentials.cached(provider)
        if known:
            return credentials
        return await asyncio.to_thread(self.credentials.get, provider)

    async def over_chain(self, chain: Sequence[Deployment], attempt: Callable[[Deployment], Awaitable[T]]) -> T:
        """Try each deployment of a route in order; move on only after a fault that is not the caller's.

        A deployment whose circuit is open is skipped without a call; when every deployment is skipped or failed,
        the last fault (or a 502 saying the circuits are open) is the answer.
        """
        failure: EmbedrankError | None = None
        for deployment in chain:
            if not self.breakers.allow(deployment.id):
                continue
            try:
                return await attempt(deployment)
            except (UpstreamError, ProviderNotConfigured) as exc:
                # The next deployment can help when this one is down or holds bad gateway credentials; not when the
                # request itself was refused.
                if not (exc.retryable or isinstance(exc, ProviderNotConfigured) or exc.code == "provider_auth_failed"):
                    raise
                failure = exc
        if failure is not None:
            raise failure
        raise UpstreamUnavailable(
            f"Every deployment of this model failed repeatedly; calls are paused for up to "
            f"{self.breakers.cooldown:.0f} s before the next probe.",
            code="circuit_open",
            retry_after=self.breakers.cooldown,
        )

    async def call[R](self, deployment: Deployment, work: Callable[[float], Awaitable[R]]) -> R:
        """One provider call, retried within the request's deadline; its outcome feeds the deployment's circuit.

        ``work`` receives the timeout for this attempt: the provider timeout, or less when the deadline is nearer.
        """
        budget = current_budget(self.settings.request_deadline)

        async def attempt(remaining: float) -> R:
            # Timed per attempt (the UpstreamLatency metric): the provider's own latency, without retry backoff.
            started = time.perf_counter()
            try:
                return await work(min(remaining, self.settings.upstream_timeout))
            finally:
                budget.observe(started)

        try:
            result = await self.policy.run(attempt, budget.deadline, budget.count)
        except UpstreamError as exc:
            if exc.retryable:
                self.breakers.failure(deployment.id)
            raise
        self.breakers.success(deployment.id)
        return result

    async def embed(self, request: EmbeddingRequest, principal: Principal, *, gzip: bool = False) -> EmbedOutcome:
        """``gzip``: the caller accepts a gzip answer, which lets a larger one through the response size limit."""
        chain = self.catalog.resolve(request.model, "embedding")
        principal.require_model(request.model)
        if request.texts is None:
            unsupported = sorted({d.provider for d in chain if not self.registry.get(d.provider).accepts_tokens})
            if unsupported:
                raise InvalidRequest(
                    f"Token arrays are only accepted by OpenAI models; '{request.model}' is served by "
                    f"{', '.join(unsupported)}. Send strings instead (LangChain: OpenAIEmbeddings("
                    "check_embedding_ctx_length=False)).",
                    param="input",
                    code="token_input_unsupported",
                )
        # Reject unsupported dimensions, and answers too big to return, before any provider call.
        width = max(deployment.resolve_dimensions(request.dimensions)[0] for deployment in chain)
        check_embedding_answer(request.count, width, request.encoding_format, gzip)
        return await self.over_chain(chain, lambda d: self._embed_on(d, request))

    async def _embed_on(self, deployment: Deployment, request: EmbeddingRequest) -> EmbedOutcome:
        width, native = deployment.resolve_dimensions(request.dimensions)
        texts = request.texts
        if texts is not None and deployment.asymmetry == "prompt":
            prefix = deployment.prompts["query" if request.input_type == "query" else "document"]
            if prefix:
                texts = [prefix + t for t in texts]
        tokens = None if texts is not None else request.token_arrays
        credentials = await self.credentials_for(deployment.provider)
        adapter = self.registry.get(deployment.provider)
        inputs: Sequence[str] | Sequence[list[int]] = texts if texts is not None else tokens or []
        calls = [
            EmbedCall(
                deployment=deployment,
                texts=list(texts[i:j]) if texts is not None else None,
                tokens=list(tokens[i:j]) if tokens is not None else None,
                input_type=request.input_type,
                dimensions=width if native else None,
                encoding=request.encoding_format,
                credentials=credentials,
                timeout=self.settings.upstream_timeout,
            )
            for i, j in batch_spans(inputs, deployment.max_inputs, deployment.max_tokens_per_call)
        ]
        expected = width if native else deployment.dimensions

        async def embed_batch(call: EmbedCall) -> EmbedResult:
            return await self.call(
                deployment, lambda timeout: self._checked(adapter.embed(replace(call, timeout=timeout)), call, expected)
            )

        results = await self._bounded([embed_batch(call) for call in calls])
        vectors = Vectors.concat([r.vectors for r in results])
        if width != expected:
            vectors = vectors.truncated(width)
        used = sum(r.tokens for r in results)
        return EmbedOutcome(
            deployment=deployment,
            vectors=vectors,
            tokens=used,
            cost=deployment.embedding_cost(used),
            estimated=any(r.estimated for r in results),
        )

    async def _checked(self, work: Awaitable[EmbedResult], call: EmbedCall, width: int) -> EmbedResult:
        """A provider answer with the wrong count or width is the provider's fault, never a silently wrong answer.
        (A float answer kept as JSON text has its width counted on its first vector only: ``vectors._json_widths``.)"""
        result = await work
        provider = call.deployment.provider
        if len(result.vectors) != call.count:
            raise UpstreamError(
                f"{provider} returned {len(result.vectors)} embeddings for {call.count} inputs.",
                provider=provider,
                code="provider_malformed_response",
            )
        widths = result.vectors.widths()
        if widths != {width}:
            got = ", ".join("malformed" if w < 0 else str(w) for w in sorted(widths))
            raise UpstreamError(
                f"{provider} returned vectors of {got} dimensions; {width} were expected.",
                provider=provider,
                code="provider_malformed_response",
            )
        return result

    async def _bounded(self, works: list[Awaitable[T]]) -> list[T]:
        if len(works) == 1:
            return [await works[0]]
        gate = asyncio.Semaphore(self.settings.max_concurrency)

        async def run(work: Awaitable[T]) -> T:
            async with gate:
                return await work

        return await gather_or_cancel([run(w) for w in works])
