"""Every response body, declared once: the code builds these ``TypedDict`` shapes (mypy checks it does) and
``openapi.py`` documents the same classes through pydantic.

A ``TypedDict`` is a plain dict at run time: building one costs nothing more than the dict, and a vector inside it
stays data (base64 text, or the provider's own float text as an ``orjson.Fragment``), never a Python object per
float. ``extra="forbid"`` makes each documented schema closed, so a field the code starts sending without declaring it
here fails the OpenAPI tests instead of drifting silently.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired, TypedDict

from pydantic import ConfigDict, Field, WithJsonSchema, with_config

CLOSED = ConfigDict(extra="forbid")

ErrorType = Literal[
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "rate_limit_error",
    "provider_error",
    "service_unavailable_error",
    "internal_error",
]


@with_config(CLOSED)
class ErrorBody(TypedDict):
    message: Annotated[str, Field(description="What went wrong, for a human. Never holds a key or the request's text.")]
    type: ErrorType
    code: Annotated[str, Field(description="Machine-readable reason, e.g. 'invalid_api_key', 'budget_exceeded'.")]
    param: Annotated[str | None, Field(description="The request field at fault, when one is.")]


@with_config(CLOSED)
class ErrorResponse(TypedDict):
    """Every error, whatever the status: OpenAI's envelope, which the openai SDK turns into typed exceptions."""

    error: ErrorBody


# -- embeddings ------------------------------------------------------------------------------------------------------


@with_config(CLOSED)
class EmbeddingUsage(TypedDict):
    prompt_tokens: int
    total_tokens: int
    cost: Annotated[
        float,
        Field(description="USD paid to the provider: the catalog price times its reported tokens (0 when all cached)."),
    ]
    cached_inputs: Annotated[int, Field(description="Inputs answered from the plan's embedding cache (0 without one).")]
    estimated: NotRequired[
        Annotated[bool, Field(description="Present (true) only when the provider reported no token count.")]
    ]


# Base64 text, a list of numbers, or the provider's own float text (an ``orjson.Fragment``, written as it came).
Vector = Annotated[
    Any,
    WithJsonSchema({"anyOf": [{"type": "array", "items": {"type": "number"}}, {"type": "string"}]}),
    Field(description="The vector: numbers, or with encoding_format 'base64' little-endian float32 bytes in base64."),
]


@with_config(CLOSED)
class EmbeddingItem(TypedDict):
    object: Literal["embedding"]
    index: Annotated[int, Field(description="Position of the input in the request.")]
    embedding: Vector


@with_config(CLOSED)
class EmbeddingResponse(TypedDict):
    object: Literal["list"]
    data: Annotated[list[EmbeddingItem], Field(description="One item per input, in input order.")]
    model: Annotated[str, Field(description="The model id (or route alias) the request named.")]
    provider: Annotated[str, Field(description="The provider that served it (for a route: who answered).")]
    usage: EmbeddingUsage


# -- rerank ----------------------------------------------------------------------------------------------------------


@with_config(CLOSED)
class SearchUnitUsage(TypedDict):
    """Models billed per search (Cohere, Bedrock)."""

    search_units: int
    cost: Annotated[float, Field(description="USD, from the catalog price and the provider-reported units.")]


@with_config(CLOSED)
class TokenUsage(TypedDict):
    """Models billed per token (Voyage, Jina, Infinity, TEI)."""

    total_tokens: int
    cost: Annotated[float, Field(description="USD, from the catalog price and the provider-reported tokens.")]


@with_config(CLOSED)
class RerankDocument(TypedDict):
    text: str


@with_config(CLOSED)
class RerankItem(TypedDict):
    index: Annotated[int, Field(description="Position of the document in the request.")]
    relevance_score: float
    document: NotRequired[
        Annotated[RerankDocument, Field(description="Only with return_documents: true; the text the request sent.")]
    ]


@with_config(CLOSED)
class ApiVersion(TypedDict):
    version: str


@with_config(CLOSED)
class BilledUnits(TypedDict):
    search_units: NotRequired[int]
    input_tokens: NotRequired[int]


@with_config(CLOSED)
class RerankMeta(TypedDict):
    """Cohere's ``meta``, so its SDK's ``response.meta`` is filled: what the provider billed."""

    api_version: ApiVersion
    billed_units: BilledUnits


@with_config(CLOSED)
class RerankResponse(TypedDict):
    id: Annotated[str, Field(description="The request id (also in the x-request-id header).")]
    object: Literal["list"]
    results: Annotated[list[RerankItem], Field(description="Sorted by relevance_score, highest first; at most top_n.")]
    model: Annotated[str, Field(description="The model id (or route alias) the request named.")]
    provider: Annotated[str, Field(description="The provider that served it.")]
    usage: Annotated[
        SearchUnitUsage | TokenUsage, Field(description="The unit the provider bills in, and the USD cost.")
    ]
    meta: RerankMeta


# -- account ---------------------------------------------------------------------------------------------------------


@with_config(CLOSED)
class TokenPricing(TypedDict):
    currency: Literal["USD"]
    per_million_tokens: float


@with_config(CLOSED)
class SearchPricing(TypedDict):
    currency: Literal["USD"]
    per_1k_searches: float


@with_config(CLOSED)
class InputLimits(TypedDict):
    float: int
    float_gzip: int
    base64: int


@with_config(CLOSED)
class ModeLimits(TypedDict):
    """The largest request a model answers in one deployment mode (README, "Deployment modes")."""

    answer_bytes: Annotated[int, Field(description="The most an answer may take as it leaves the function")]
    inputs: NotRequired[
        Annotated[
            InputLimits,
            Field(
                description="Embedding models: inputs per request at the default dimensions, by encoding_format "
                "(float_gzip: float to a client sending Accept-Encoding: gzip)"
            ),
        ]
    ]
    documents: NotRequired[Annotated[int, Field(description="Rerank models: documents per request")]]


@with_config(CLOSED)
class ModelLimits(TypedDict):
    streaming: ModeLimits
    buffered: ModeLimits


@with_config(CLOSED)
class ModelEntry(TypedDict):
    id: str
    object: Literal["model"]
    owned_by: Annotated[str, Field(description="The provider serving it (for a route: the first of its chain)")]
    type: Literal["embedding", "rerank"]
    dimensions: Annotated[int | None, Field(description="Default output width; null for rerank models")]
    max_inputs: Annotated[int, Field(description="Inputs per provider call (documents, for rerank models)")]
    pricing: TokenPricing | SearchPricing
    limits: Annotated[ModelLimits, Field(description="The largest request it answers, per deployment mode")]
    deployments: NotRequired[Annotated[list[str], Field(description="Routes only: the deployments, in fallback order")]]
    canonical: NotRequired[
        Annotated[str, Field(description="Bare names only (a provider's own model name): the catalog id it names")]
    ]


@with_config(CLOSED)
class ModelList(TypedDict):
    """``GET /v1/models``: the models the caller's plan allows."""

    object: Literal["list"]
    data: list[ModelEntry]


Day = Annotated[str, Field(description="A UTC day, YYYY-MM-DD.", json_schema_extra={"format": "date"})]


@with_config(CLOSED)
class UsageTotals(TypedDict):
    requests: int
    errors: int
    tokens: int
    search_units: int
    cost: Annotated[float, Field(description="USD")]
    cached_inputs: Annotated[int, Field(description="Inputs answered from the embedding cache")]
    cost_saved: Annotated[float, Field(description="USD those inputs would have cost from the provider (estimated)")]


@with_config(CLOSED)
class UsageRow(UsageTotals):
    """One day and model: the same counts as the totals."""

    date: Day
    model: Annotated[
        str,
        Field(
            description="A model id; '(none)' for requests without one, '(unknown)' for ids the catalog does not know"
        ),
    ]


@with_config(CLOSED)
class UsageReport(TypedDict):
    """``GET /v1/usage?start=YYYY-MM-DD&end=YYYY-MM-DD``: the caller's own usage by day and model."""

    object: Literal["usage"]
    key_id: str
    start: Day
    end: Day
    data: list[UsageRow]
    totals: UsageTotals


# -- files, uploads, batches (OpenAI's shapes: the openai SDK parses them) --------------------------------------------

FilePurpose = Literal["batch", "batch_output"]


@with_config(CLOSED)
class FileObject(TypedDict):
    id: str
    object: Literal["file"]
    bytes: int
    created_at: int
    filename: str
    purpose: FilePurpose
    status: Literal["uploaded", "processed", "error"]
    expires_at: int


@with_config(CLOSED)
class FileList(TypedDict):
    object: Literal["list"]
    data: list[FileObject]
    first_id: str | None
    last_id: str | None
    has_more: bool


@with_config(CLOSED)
class FileDeleted(TypedDict):
    id: str
    object: Literal["file"]
    deleted: bool


@with_config(CLOSED)
class UploadObject(TypedDict):
    id: str
    object: Literal["upload"]
    bytes: int
    created_at: int
    expires_at: int
    filename: str
    purpose: str
    status: Literal["pending", "completed", "cancelled", "expired"]
    file: FileObject | None


@with_config(CLOSED)
class UploadPart(TypedDict):
    id: str
    object: Literal["upload.part"]
    created_at: int
    upload_id: str


@with_config(CLOSED)
class BatchTokenDetails(TypedDict):
    cached_tokens: int


@with_config(CLOSED)
class BatchOutputDetails(TypedDict):
    reasoning_tokens: int


@with_config(CLOSED)
class BatchUsage(TypedDict):
    input_tokens: int
    input_tokens_details: BatchTokenDetails
    output_tokens: int
    output_tokens_details: BatchOutputDetails
    total_tokens: int


@with_config(CLOSED)
class BatchCounts(TypedDict):
    total: int
    completed: int
    failed: int


@with_config(CLOSED)
class BatchErrorItem(TypedDict):
    code: str
    message: str
    line: int | None
    param: str | None


@with_config(CLOSED)
class BatchErrors(TypedDict):
    object: Literal["list"]
    data: list[BatchErrorItem]


BatchStatus = Literal[
    "validating", "failed", "in_progress", "finalizing", "completed", "expired", "cancelling", "cancelled"
]


@with_config(CLOSED)
class BatchObject(TypedDict):
    id: str
    object: Literal["batch"]
    endpoint: str
    errors: BatchErrors | None
    input_file_id: str
    completion_window: str
    status: BatchStatus
    output_file_id: str | None
    error_file_id: str | None
    created_at: int
    in_progress_at: int | None
    expires_at: int
    finalizing_at: int | None
    completed_at: int | None
    failed_at: int | None
    expired_at: int | None
    cancelling_at: int | None
    cancelled_at: int | None
    request_counts: BatchCounts
    metadata: dict[str, str] | None
    model: str | None
    usage: BatchUsage


@with_config(CLOSED)
class BatchList(TypedDict):
    object: Literal["list"]
    data: list[BatchObject]
    first_id: str | None
    last_id: str | None
    has_more: bool
