"""``GET /v1/models``: what a key's plan lets it see, described from the catalog in OpenAI's list shape."""

from __future__ import annotations

from typing import Literal

from ..api.requests import MAX_DOCUMENTS, MAX_INPUTS
from ..api.responses import ModelEntry, ModeLimits, ModelLimits, ModelList, SearchPricing, TokenPricing
from ..api.sizes import CHANNELS, Channel, embedding_capacity
from ..errors import ModelNotFound
from .catalog import Catalog, Deployment
from .records import Plan


def _pricing(d: Deployment) -> TokenPricing | SearchPricing:
    if d.kind == "rerank" and d.billing == "search_units":
        return {"currency": "USD", "per_1k_searches": d.price_per_1k_searches}
    return {"currency": "USD", "per_million_tokens": d.price_per_mtok}


def _mode_limits(chain: tuple[Deployment, ...], channel: Channel) -> ModeLimits:
    first = chain[0]
    limits: ModeLimits = {"answer_bytes": channel.response_limit}
    if first.kind == "embedding":
        width = max(d.dimensions for d in chain)  # a route's answer is sized for its widest deployment

        def inputs(encoding: Literal["float", "base64"], gzipped: bool) -> int:
            return min(MAX_INPUTS, embedding_capacity(width, encoding, gzipped, channel))

        limits["inputs"] = {
            "float": inputs("float", False),
            "float_gzip": inputs("float", True),
            "base64": inputs("base64", True),
        }
    else:
        limits["documents"] = min(first.max_documents, MAX_DOCUMENTS)
    return limits


def model_limits(chain: tuple[Deployment, ...]) -> ModelLimits:
    """The largest request ``chain`` answers in each deployment mode."""
    return {
        "streaming": _mode_limits(chain, CHANNELS["streaming"]),
        "buffered": _mode_limits(chain, CHANNELS["buffered"]),
    }


def _model_entry(model_id: str, chain: tuple[Deployment, ...], *, route: bool) -> ModelEntry:
    first = chain[0]
    entry: ModelEntry = {
        "id": model_id,
        "object": "model",
        "owned_by": first.provider,
        "type": first.kind,
        "dimensions": first.dimensions if first.kind == "embedding" else None,
        # What one request may carry: the provider's limit, or the API's own document cap when that is lower.
        "max_inputs": first.max_inputs if first.kind == "embedding" else min(first.max_documents, MAX_DOCUMENTS),
        "pricing": _pricing(first),
        "limits": model_limits(chain),
    }
    if route:
        entry["deployments"] = [d.id for d in chain]  # who serves it, in fallback order
    return entry


def visible_models(catalog: Catalog, plan: Plan) -> ModelList:
    """``GET /v1/models``: the catalog's deployments and routes that ``plan`` allows, in OpenAI's list shape, then the
    bare names of those deployments (``text-embedding-3-small``), each naming its ``canonical`` id.

    A route is described by the first deployment of its chain (the one normally serving it)."""
    data = [_entry(catalog, model_id) for model_id in catalog.model_ids() if plan.allows(model_id)]
    data += [_entry(catalog, bare) for bare, model_id in catalog.bare_names.items() if plan.allows(model_id)]
    return {"object": "list", "data": data}


def model_entry(catalog: Catalog, plan: Plan, model: str) -> ModelEntry:
    """``GET /v1/models/{id}``: one model the plan allows; any other id is a 404, as for a model that does not exist
    (what a key may not use is not shown to it)."""
    try:
        canonical = catalog.canonical(model)
    except ModelNotFound:
        canonical = None
    if canonical is None or not plan.allows(canonical):
        raise ModelNotFound(
            f"The model '{model[:128]}' does not exist or is not in your plan. GET /v1/models lists yours.",
            param="model",
        )
    return _entry(catalog, model)


def _entry(catalog: Catalog, model: str) -> ModelEntry:
    canonical = catalog.canonical(model)
    chain = catalog.routes.get(canonical)
    deployments = tuple(catalog.deployments[d] for d in chain) if chain else (catalog.deployments[canonical],)
    entry = _model_entry(model, deployments, route=chain is not None)
    if canonical != model:
        entry["canonical"] = canonical
    return entry
