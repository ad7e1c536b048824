"""Response envelopes and query strings, described for the OpenAPI document only.

The hot path builds plain dicts and serializes them with orjson; these models are never instantiated per request and
are imported only when ``/openapi.json`` is first served, which keeps ~30 model classes off the Lambda cold start.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from .schemas import RerankDocument

# -- response envelopes (descriptions only) --------------------------------------------------------------------------
# ``extra="forbid"`` makes the schemas closed, so a field the app starts sending without describing it here fails the
# OpenAPI tests instead of drifting silently.


class _Described(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _omitted(schema: dict[str, Any]) -> None:
    """For fields the app leaves out rather than sending null: no ``default: null`` against a non-null type."""
    schema.pop("default", None)


ErrorType = Literal[
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "rate_limit_error",
    "provider_error",
    "internal_error",
]


class ErrorBody(_Described):
    message: str = Field(description="What went wrong, for a human. Never holds a key or the request's text.")
    type: ErrorType
    code: str = Field(description="Machine-readable reason, e.g. 'invalid_api_key', 'requests_per_minute_exceeded'.")
    param: str | None = Field(description="The request field at fault, when one is.")


class ErrorResponse(_Described):
    """Every error, whatever the status: OpenAI's envelope, which the openai SDK turns into typed exceptions."""

    error: ErrorBody


class EmbeddingUsage(_Described):
    prompt_tokens: int
    total_tokens: int
    cost: float = Field(description="USD, from the catalog price and the provider-reported tokens.")
    estimated: bool = Field(
        default=False, description="Present (true) only when the provider reported no token count and it was estimated."
    )


class EmbeddingItem(_Described):
    object: Literal["embedding"]
    index: int = Field(description="Position of the input in the request.")
    embedding: list[float] | str = Field(
        description="The vector: numbers, or with encoding_format 'base64' little-endian float32 bytes in base64."
    )


class EmbeddingResponse(_Described):
    object: Literal["list"]
    data: list[EmbeddingItem] = Field(description="One item per input, in input order.")
    model: str = Field(description="The model id (or route alias) the request named.")
    provider: str = Field(description="The provider that served it (for a route: the deployment that answered).")
    usage: EmbeddingUsage


class SearchUnitUsage(_Described):
    """Models billed per search (Cohere, Bedrock)."""

    search_units: int
    cost: float = Field(description="USD, from the catalog price and the provider-reported units.")


class TokenUsage(_Described):
    """Models billed per token (Voyage, Jina, Infinity, TEI)."""

    total_tokens: int
    cost: float = Field(description="USD, from the catalog price and the provider-reported tokens.")


class RerankItem(_Described):
    index: int = Field(description="Position of the document in the request.")
    relevance_score: float
    # Omitted, never null, without return_documents: SkipJsonSchema keeps null out of the documented type.
    document: RerankDocument | SkipJsonSchema[None] = Field(
        default=None,
        json_schema_extra=_omitted,
        description="Only with return_documents: true; the text the request sent.",
    )


class RerankResponse(_Described):
    id: str = Field(description="The request id (also in the x-request-id header).")
    object: Literal["list"]
    results: list[RerankItem] = Field(description="Sorted by relevance_score, highest first; at most top_n.")
    model: str = Field(description="The model id (or route alias) the request named.")
    provider: str = Field(description="The provider that served it.")
    usage: SearchUnitUsage | TokenUsage = Field(description="The unit the provider bills in, and the USD cost.")


class TokenPricing(_Described):
    currency: Literal["USD"]
    per_million_tokens: float


class SearchPricing(_Described):
    currency: Literal["USD"]
    per_1k_searches: float


class ModelEntry(_Described):
    id: str
    object: Literal["model"]
    owned_by: str = Field(description="The provider serving it (for a route: the first of its chain)")
    type: Literal["embedding", "rerank"]
    dimensions: int | None = Field(description="Default output width (embedding models); null for rerank models")
    max_inputs: int = Field(description="Inputs per request (documents, for rerank models)")
    pricing: TokenPricing | SearchPricing
    deployments: list[str] | SkipJsonSchema[None] = Field(
        default=None, json_schema_extra=_omitted, description="Routes only: the deployments, in fallback order"
    )


class ModelList(_Described):
    """``GET /v1/models``: the models the caller's plan allows."""

    object: Literal["list"]
    data: list[ModelEntry]


class UsageQuery(BaseModel):
    """``GET /v1/usage``'s query string (read by ``usage.report_range``; described here for the OpenAPI document)."""

    start: dt.date = Field(description="First day, UTC, as YYYY-MM-DD.")
    end: dt.date = Field(description="Last day, UTC, inclusive, as YYYY-MM-DD; at most 366 days from start.")


class UsageTotals(_Described):
    requests: int
    errors: int
    tokens: int
    search_units: int
    cost: float = Field(description="USD")


class UsageRow(UsageTotals):
    date: dt.date = Field(description="The UTC day")
    model: str = Field(description="A model id, '(none)' for requests without one, '(unknown)' for unknown ids")


class UsageReport(_Described):
    """``GET /v1/usage?start=YYYY-MM-DD&end=YYYY-MM-DD``: the caller's own usage by day and model."""

    object: Literal["usage"]
    key_id: str
    start: dt.date
    end: dt.date
    data: list[UsageRow]
    totals: UsageTotals
