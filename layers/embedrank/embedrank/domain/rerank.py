"""Rerank domain logic: resolve the model, call the provider, check and normalize the answer.

Like ``embeddings.py``, nothing here knows HTTP: the app hands in a parsed ``RerankRequest`` and an
authenticated principal, and gets back the ranked results plus what to meter. Falling back along a route's chain
reuses ``Gateway.over_chain``; a chain only holds deployments of the same weights, so scores stay comparable.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from ..api.requests import RerankRequest
from ..api.responses import BilledUnits, RerankItem, RerankMeta, SearchUnitUsage, TokenUsage
from ..errors import InvalidRequest, UpstreamError
from ..providers import RerankAdapter
from ..providers.calls import RerankCall, RerankResult, search_units
from .auth import Principal
from .catalog import Deployment
from .embeddings import reserve_tokens
from .gateway import Gateway

# Called with (texts, top_n) before any provider call when the documents come back: the API's check that they fit.
DocumentsCheck = Callable[[list[str], int], None]


@dataclass(slots=True)
class RerankOutcome:
    deployment: Deployment
    results: list[tuple[int, float]]  # (index into the request's documents, score), best first, at most top_n
    documents: list[str] | None  # the text of each result, in the same order, when the caller asked for it
    tokens: int
    search_units: int
    cost: float

    def usage(self) -> SearchUnitUsage | TokenUsage:
        """The response's usage block: the unit the provider bills in, and the USD cost."""
        if self.deployment.billing == "search_units":
            return {"search_units": self.search_units, "cost": self.cost}
        return {"total_tokens": self.tokens, "cost": self.cost}

    def meta(self) -> RerankMeta:
        """Cohere's ``meta`` block, in the unit the provider bills in."""
        billed: BilledUnits = (
            {"search_units": self.search_units}
            if self.deployment.billing == "search_units"
            else {"input_tokens": self.tokens}
        )
        return {"api_version": {"version": "2"}, "billed_units": billed}

    def items(self) -> list[RerankItem]:
        items: list[RerankItem] = [{"index": i, "relevance_score": score} for i, score in self.results]
        if self.documents is not None:
            for item, text in zip(items, self.documents, strict=True):
                item["document"] = {"text": text}
        return items


# Cohere bills a document as one more "document" of a search unit for every 500 tokens it holds with the query.
TOKENS_PER_CHUNK = 500


@dataclass(frozen=True, slots=True)
class RerankPlan:
    """A request checked against the catalog and the caller's plan, before anything is spent."""

    request: RerankRequest
    model: str  # the catalog id the request named (a bare name resolved)
    chain: tuple[Deployment, ...]
    estimate: float  # USD: the most the dearest deployment of the chain can bill for it


def plan(
    gateway: Gateway, request: RerankRequest, principal: Principal, check: DocumentsCheck | None = None
) -> RerankPlan:
    """Everything refused before a provider is called: unknown model, outside the plan, over a deployment's limits,
    documents that could not be sent back (``check``)."""
    model = gateway.catalog.canonical(request.model)
    chain = gateway.catalog.resolve(model, "rerank")
    principal.require_model(model)
    for deployment in chain:  # reject what any deployment cannot take before any provider call
        _check_limits(deployment, request, gateway.registry.rerank(deployment.provider))
    if request.return_documents and check is not None:  # echoed texts are the only part of an answer that can grow
        check(request.texts, request.limit)
    return RerankPlan(request, model, chain, max(_estimate(d, request) for d in chain))


def _estimate(deployment: Deployment, request: RerankRequest) -> float:
    """The most a deployment can bill: search units counted as the provider counts them (documents split every 500
    tokens with the query, 100 to a unit), tokens at 2 bytes each (``embeddings.reserve_tokens``)."""
    query = reserve_tokens([request.query])
    per_document = [query + reserve_tokens([text]) for text in request.texts]
    if deployment.billing == "search_units":
        cap = deployment.max_tokens_per_doc  # documents are cut there before they are split
        chunks = sum(-(-min(t, cap or t) // TOKENS_PER_CHUNK) for t in per_document)
        return deployment.rerank_cost(tokens=0, search_units=search_units(chunks))
    return deployment.rerank_cost(tokens=sum(per_document), search_units=0)


async def rerank(gateway: Gateway, planned: RerankPlan) -> RerankOutcome:
    return await gateway.over_chain(planned.chain, lambda d: _rerank_on(gateway, d, planned.request))


def _check_limits(deployment: Deployment, request: RerankRequest, adapter: RerankAdapter) -> None:
    count = len(request.documents)
    if count > deployment.max_documents:
        raise InvalidRequest(
            f"Model {deployment.id} accepts at most {deployment.max_documents} documents; {count} were sent.",
            param="documents",
        )
    if request.max_tokens_per_doc is not None and not adapter.accepts_max_tokens_per_doc:
        raise InvalidRequest(
            f"max_tokens_per_doc is not supported by {deployment.id}: {deployment.provider} only truncates each "
            "document to the model's own window.",
            param="max_tokens_per_doc",
        )
    cap = deployment.max_tokens_per_doc
    if request.max_tokens_per_doc is not None and cap is not None and request.max_tokens_per_doc > cap:
        raise InvalidRequest(
            f"Model {deployment.id} reads at most {cap} tokens per document; max_tokens_per_doc="
            f"{request.max_tokens_per_doc} is over that.",
            param="max_tokens_per_doc",
        )


async def _rerank_on(gateway: Gateway, deployment: Deployment, request: RerankRequest) -> RerankOutcome:
    texts = request.texts
    call = RerankCall(
        deployment=deployment,
        query=request.query,
        documents=texts,
        top_n=request.limit,
        max_tokens_per_doc=request.max_tokens_per_doc,
        credentials=await gateway.credentials_for(deployment.provider),
        timeout=gateway.settings.upstream_timeout,
    )
    adapter = gateway.registry.rerank(deployment.provider)
    result = await gateway.call(deployment, lambda timeout: adapter.rerank(replace(call, timeout=timeout)))
    ranked = _ranked(result, call)
    documents = None
    if request.return_documents:
        # Adapters do not ask providers to echo documents (it only costs bandwidth): the request has the texts.
        documents = [texts[i] for i, _ in ranked]
    return RerankOutcome(
        deployment=deployment,
        results=ranked,
        documents=documents,
        tokens=result.tokens,
        search_units=result.search_units,
        cost=deployment.rerank_cost(tokens=result.tokens, search_units=result.search_units),
    )


def _ranked(result: RerankResult, call: RerankCall) -> list[tuple[int, float]]:
    """Best first, at most top_n; a bad index, a repeat, a non-finite score or too few results: the provider's fault."""
    provider = call.deployment.provider
    seen: set[int] = set()
    for index, score in result.results:
        if not 0 <= index < len(call.documents) or index in seen or not math.isfinite(score):
            raise UpstreamError(
                f"{provider} returned an invalid rerank result (index {index}, score {score}) for "
                f"{len(call.documents)} documents.",
                provider=provider,
                code="provider_malformed_response",
            )
        seen.add(index)
    if len(seen) < call.top_n:
        raise UpstreamError(
            f"{provider} returned {len(seen)} rerank results; {call.top_n} were asked for.",
            provider=provider,
            code="provider_malformed_response",
        )
    # Ties keep document order, so the same answer always gives the same ranking.
    ordered = sorted(result.results, key=lambda r: (-r[1], r[0]))
    return ordered[: call.top_n]
