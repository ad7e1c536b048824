"""Embeddings: resolve the model, shape the provider calls, check and assemble the answer.

The app hands in a parsed request and an authenticated principal, and gets back vectors plus what to meter. A
request larger than one provider call takes is split (``batch_spans``), the calls run concurrently, and the answer is
reassembled in input order; a route falls back along its chain (``Gateway.over_chain``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import cast

from ..api.requests import EmbeddingRequest
from ..errors import InvalidRequest, UpstreamError
from ..providers.calls import EmbedCall, EmbedResult, inputs_within_answer_limit
from .auth import Principal
from .cache import CachePolicy, EmbeddingCache, Lookup, entry_keys, policy, to_b64, to_bytes
from .catalog import Deployment
from .gateway import Gateway
from .vectors import Vectors

# Called with (vectors, width) before any provider call: the API's check that such an answer can be sent.
AnswerCheck = Callable[[int, int], None]


def reserve_tokens(texts: Sequence[str]) -> int:
    """Tokens to hold against the budget before the call: one per 2 UTF-8 bytes and one more per text, more than
    real tokenizers produce (~4 bytes per token in English, ~3 in most other scripts), so a budget is not overrun by
    concurrent requests whose cost is not known yet."""
    return sum(len(text.encode("utf-8")) // 2 + 1 for text in texts)


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
    cost: float  # USD: what the provider was paid (cached inputs cost nothing)
    estimated: bool
    cached_inputs: int = 0  # inputs answered from the cache
    cost_saved: float = 0.0  # USD: what they would have cost (estimated: ~4 bytes a token, token arrays exactly)
    cache_errors: int = 0


@dataclass(frozen=True, slots=True)
class EmbedPlan:
    """A request checked against the catalog and the caller's plan, before anything is spent."""

    request: EmbeddingRequest
    model: str  # the catalog id the request named (a bare name resolved)
    chain: tuple[Deployment, ...]
    estimate: float  # USD: the most the dearest deployment of the chain can bill for it
    cache: CachePolicy | None = None


def plan(
    gateway: Gateway,
    request: EmbeddingRequest,
    principal: Principal,
    check: AnswerCheck | None = None,
    cache_control: str | None = None,
) -> EmbedPlan:
    """Everything refused before a provider is called: an unknown model (404), one outside the plan (403), options a
    deployment cannot take (400), an answer the API could not send (``check``)."""
    model = gateway.catalog.canonical(request.model)
    chain = gateway.catalog.resolve(model, "embedding")
    principal.require_model(model)
    if request.texts is None:
        unsupported = sorted({d.provider for d in chain if not gateway.registry.embedding(d.provider).accepts_tokens})
        if unsupported:
            raise InvalidRequest(
                f"Token arrays are only accepted by OpenAI models; '{request.model}' is served by "
                f"{', '.join(unsupported)}. Send strings instead (LangChain: OpenAIEmbeddings("
                "check_embedding_ctx_length=False)).",
                param="input",
                code="token_input_unsupported",
            )
    width = max(deployment.resolve_dimensions(request.dimensions)[0] for deployment in chain)
    if check is not None:
        check(request.count, width)
    if request.texts is not None:
        tokens = reserve_tokens(request.texts)
        prefix = {d.id: max(d.prompts.values(), key=len, default="") for d in chain}  # prompt-based models
        estimate = max(d.embedding_cost(tokens + reserve_tokens([prefix[d.id]]) * request.count) for d in chain)
    else:
        estimate = max(d.embedding_cost(sum(len(t) for t in request.token_arrays)) for d in chain)
    return EmbedPlan(request, model, chain, estimate, policy(principal.plan, principal.key_id, cache_control))


async def embed(gateway: Gateway, planned: EmbedPlan, cache: EmbeddingCache | None = None) -> EmbedOutcome:
    lookup = Lookup(planned.cache) if planned.cache is not None and cache is not None else None

    async def on(deployment: Deployment) -> EmbedOutcome:
        if lookup is None or cache is None:
            return await _embed_on(gateway, deployment, planned.request)
        return await _cached_on(gateway, deployment, planned.request, cache, lookup)

    return await gateway.over_chain(planned.chain, on)


def _as_sent(deployment: Deployment, request: EmbeddingRequest) -> Sequence[str] | Sequence[list[int]]:
    """The inputs as the provider gets them: the prompt of a prompt-based model applied."""
    texts = request.texts
    if texts is not None and deployment.asymmetry == "prompt":
        prefix = deployment.prompts["query" if request.input_type == "query" else "document"]
        if prefix:
            return [prefix + t for t in texts]
    return texts if texts is not None else request.token_arrays or []


async def _cached_on(
    gateway: Gateway, deployment: Deployment, request: EmbeddingRequest, cache: EmbeddingCache, lookup: Lookup
) -> EmbedOutcome:
    """``_embed_on`` for the inputs the cache lacks; the answer reassembled in input order (``cache``'s docstring)."""
    width, native = deployment.resolve_dimensions(request.dimensions)
    inputs = _as_sent(deployment, request)
    keys = entry_keys(lookup.policy, deployment, inputs, request.input_type, width=width, native=native)
    found = await cache.read(lookup, keys, width)
    first: dict[bytes, int] = {}  # each missing entry, at the first input that needs it
    for i, key in enumerate(keys):
        if key not in found and key not in first:
            first[key] = i
    if first:
        fetched = await _embed_on(gateway, deployment, request, only=list(first.values()))
    else:
        fetched = EmbedOutcome(deployment, Vectors("base64", []), 0, 0.0, False)
    fresh: list[str] = fetched.vectors.as_encoding("base64")
    if not found and len(first) == len(keys):  # nothing from the cache, nothing twice: the provider's answer as is
        vectors = fetched.vectors
    else:
        position = {key: j for j, key in enumerate(first)}
        vectors = Vectors("base64", [to_b64(found[key]) if key in found else fresh[position[key]] for key in keys])
    await cache.write(lookup, {key: to_bytes(fresh[j]) for j, key in enumerate(first)})
    hits = [i for i, key in enumerate(keys) if key in found]
    saved_tokens = sum(_token_estimate(inputs[i]) for i in hits)
    return EmbedOutcome(
        deployment=deployment,
        vectors=vectors,
        tokens=fetched.tokens,
        cost=fetched.cost,
        estimated=fetched.estimated,
        cached_inputs=len(hits),
        cost_saved=deployment.embedding_cost(saved_tokens),
        cache_errors=lookup.errors,
    )


def _token_estimate(item: str | list[int]) -> int:
    """What an input would have been billed: token arrays exactly, text at ~4 UTF-8 bytes a token."""
    return len(item) if not isinstance(item, str) else len(item.encode("utf-8")) // 4 + 1


async def _embed_on(
    gateway: Gateway, deployment: Deployment, request: EmbeddingRequest, only: list[int] | None = None
) -> EmbedOutcome:
    """The provider's vectors for the request's inputs (``only``: for these positions, in this order)."""
    if only is not None:
        if request.texts is not None:
            request = request.model_copy(update={"input": [request.texts[i] for i in only]})
        else:
            request = request.model_copy(update={"input": [(request.token_arrays or [])[i] for i in only]})
    width, native = deployment.resolve_dimensions(request.dimensions)
    inputs = _as_sent(deployment, request)
    texts = cast(list[str], inputs) if request.texts is not None else None
    tokens = None if request.texts is not None else request.token_arrays
    credentials = await gateway.credentials_for(deployment.provider)
    adapter = gateway.registry.embedding(deployment.provider)
    expected = width if native else deployment.dimensions
    # A call's answer is refused past its limit (providers/calls.py); a call asks for no more vectors than fit it.
    per_call = min(deployment.max_inputs, inputs_within_answer_limit(expected))
    calls = [
        EmbedCall(
            deployment=deployment,
            texts=list(texts[i:j]) if texts is not None else None,
            tokens=list(tokens[i:j]) if tokens is not None else None,
            input_type=request.input_type,
            dimensions=width if native else None,
            encoding=request.encoding_format,
            credentials=credentials,
            timeout=gateway.settings.upstream_timeout,
        )
        for i, j in batch_spans(inputs, per_call, deployment.max_tokens_per_call)
    ]

    async def embed_batch(call: EmbedCall) -> EmbedResult:
        async def attempt(timeout: float) -> EmbedResult:
            return _checked(await adapter.embed(replace(call, timeout=timeout)), call, expected)

        return await gateway.call(deployment, attempt)

    results = await gateway.bounded([embed_batch(call) for call in calls])
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


def _checked(result: EmbedResult, call: EmbedCall, width: int) -> EmbedResult:
    """A provider answer with the wrong count or width is the provider's fault, never a silently wrong answer.
    (A float answer kept as JSON text has its width counted on its first vector only: ``vectors._json_widths``.)"""
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
