"""Embeddings: resolve the model, shape the provider calls, check and assemble the answer.

The app hands in a parsed request and an authenticated principal, and gets back vectors plus what to meter. A
request larger than one provider call takes is split (``batch_spans``), the calls run concurrently, and the answer is
reassembled in input order; a route falls back along its chain (``Gateway.over_chain``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from ..api.requests import EmbeddingRequest
from ..errors import InvalidRequest, UpstreamError
from ..providers.calls import EmbedCall, EmbedResult, inputs_within_answer_limit
from .auth import Principal
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
    cost: float
    estimated: bool


@dataclass(frozen=True, slots=True)
class EmbedPlan:
    """A request checked against the catalog and the caller's plan, before anything is spent."""

    request: EmbeddingRequest
    model: str  # the catalog id the request named (a bare name resolved)
    chain: tuple[Deployment, ...]
    estimate: float  # USD: the most the dearest deployment of the chain can bill for it


def plan(
    gateway: Gateway, request: EmbeddingRequest, principal: Principal, check: AnswerCheck | None = None
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
    return EmbedPlan(request, model, chain, estimate)


async def embed(gateway: Gateway, planned: EmbedPlan) -> EmbedOutcome:
    return await gateway.over_chain(planned.chain, lambda d: _embed_on(gateway, d, planned.request))


async def _embed_on(gateway: Gateway, deployment: Deployment, request: EmbeddingRequest) -> EmbedOutcome:
    width, native = deployment.resolve_dimensions(request.dimensions)
    texts = request.texts
    if texts is not None and deployment.asymmetry == "prompt":
        prefix = deployment.prompts["query" if request.input_type == "query" else "document"]
        if prefix:
            texts = [prefix + t for t in texts]
    tokens = None if texts is not None else request.token_arrays
    credentials = await gateway.credentials_for(deployment.provider)
    adapter = gateway.registry.embedding(deployment.provider)
    inputs: Sequence[str] | Sequence[list[int]] = texts if texts is not None else tokens or []
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
