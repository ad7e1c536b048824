"""The API's operations: each one parses, calls the domain, and serializes one of ``responses``' shapes; ``ENDPOINTS``
is the table the router serves and ``openapi.py`` documents, from the same entries."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel
from starlette.responses import Response

from ..domain.embeddings import embed
from ..domain.embeddings import plan as plan_embedding
from ..domain.models import model_entry, visible_models
from ..domain.rerank import plan as plan_rerank
from ..domain.rerank import rerank
from ..domain.usage import daily_report, report_range
from . import jobs
from .bodies import embedding_body, rerank_body
from .exchange import Exchange
from .requests import (
    BatchCreate,
    EmbeddingRequest,
    ListQuery,
    RerankRequest,
    UploadComplete,
    UploadCreate,
    UsageQuery,
    parse_body,
)
from .responses import (
    BatchList,
    BatchObject,
    EmbeddingResponse,
    FileDeleted,
    FileList,
    FileObject,
    ModelEntry,
    ModelList,
    RerankResponse,
    UploadObject,
    UploadPart,
    UsageReport,
)
from .sizes import check_embedding_answer, check_rerank_answer
from .streaming import embeddings_response

JSON = "application/json"


def json_response(body: Any) -> Response:
    return Response(orjson.dumps(body), media_type=JSON)


async def embeddings(ex: Exchange) -> Response:
    principal = await ex.authenticate()
    request: EmbeddingRequest = parse_body(EmbeddingRequest, await ex.body())
    gzip = ex.accepts_gzip()
    ex.record.model, ex.record.input_count = request.model, request.count
    planned = plan_embedding(
        ex.services.gateway,
        request,
        principal,
        lambda count, width: check_embedding_answer(count, width, request.encoding_format, gzip, ex.channel),
        cache_control=ex.request.headers.get("cache-control"),
    )
    ex.record.model = planned.model
    await ex.admit(planned.estimate)
    outcome = await embed(ex.services.gateway, planned, ex.services.cache)
    record = ex.record
    record.provider, record.tokens, record.cost = outcome.deployment.provider, outcome.tokens, outcome.cost
    record.estimated, record.cached_inputs, record.cost_saved = (
        outcome.estimated,
        outcome.cached_inputs,
        outcome.cost_saved,
    )
    ex.cache_errors = outcome.cache_errors
    body = embedding_body(request, outcome, with_data=False)  # the vectors: filled whole, or streamed
    return embeddings_response(body, outcome.vectors, request.encoding_format, ex.channel)


async def rerank_documents(ex: Exchange) -> Response:
    principal = await ex.authenticate()
    request: RerankRequest = parse_body(RerankRequest, await ex.body())
    ex.record.model, ex.record.input_count = request.model, len(request.documents)
    planned = plan_rerank(
        ex.services.gateway, request, principal, lambda texts, top_n: check_rerank_answer(texts, top_n, ex.channel)
    )
    ex.record.model = planned.model
    await ex.admit(planned.estimate)
    outcome = await rerank(ex.services.gateway, planned)
    record = ex.record
    record.provider, record.cost = outcome.deployment.provider, outcome.cost
    record.tokens, record.search_units = outcome.tokens, outcome.search_units
    body = rerank_body(ex.request_id, request, outcome)
    return json_response(body)


async def models(ex: Exchange) -> Response:
    principal = await ex.authenticate()
    await ex.admit()
    body: ModelList = visible_models(ex.services.gateway.catalog, principal.plan)
    return json_response(body)


async def model(ex: Exchange) -> Response:
    principal = await ex.authenticate()
    await ex.admit()
    body: ModelEntry = model_entry(ex.services.gateway.catalog, principal.plan, ex.request.path_params["model_id"])
    return json_response(body)


async def usage(ex: Exchange) -> Response:
    principal = await ex.authenticate()
    await ex.admit()
    await ex.services.settled()
    start, end = report_range(ex.request.query_params)
    body: UsageReport = await ex.io(daily_report, ex.services.stores, principal.key_id, start, end)
    return json_response(body)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One API operation: what the router serves and what ``openapi.py`` documents, from the same entry."""

    paths: tuple[str, ...]
    method: str
    handler: Callable[[Exchange], Awaitable[Response]]
    summary: str
    response: type  # the ``responses`` shape of the 200 body
    request: type[BaseModel] | None = None  # the JSON body
    query: type[BaseModel] | None = None  # a model whose fields are the query parameters
    errors: tuple[int, ...] = ()  # statuses answered with ErrorResponse, besides 500
    tag: str = ""
    # Calls a provider and costs money: held to the budget and answered with ``x-embedrank-cost``. Account
    # endpoints are not, so a key over its budget can still see its models and what it spent.
    billable: bool = True
    redirect: bool = False  # answers a 307 to where the content is (``response`` then names what is there)


# Statuses every authenticated endpoint can answer: a credential sent twice, no/bad key, a key whose plan is gone, a
# plan limit, AWS down.
_AUTH_ERRORS = (400, 401, 403, 429, 503)
# ...and those that call a provider: unknown model, too large, provider failed / unconfigured / slow.
_PROVIDER_ERRORS = (*_AUTH_ERRORS, 404, 413, 502, 504)

ENDPOINTS: dict[str, Endpoint] = {
    "embeddings": Endpoint(
        paths=("/v1/embeddings", "/api/v1/embeddings"),
        method="POST",
        handler=embeddings,
        summary="Create embeddings (OpenAI-compatible)",
        response=EmbeddingResponse,
        request=EmbeddingRequest,
        errors=_PROVIDER_ERRORS,
        tag="embeddings",
    ),
    # /v2/rerank too: the cohere SDK's ClientV2 posts there, the v1 Client to /v1/rerank; both get the same shape.
    "rerank": Endpoint(
        paths=("/v1/rerank", "/api/v1/rerank", "/v2/rerank"),
        method="POST",
        handler=rerank_documents,
        summary="Rerank documents against a query (Cohere-shaped)",
        response=RerankResponse,
        request=RerankRequest,
        errors=_PROVIDER_ERRORS,
        tag="rerank",
    ),
    "models": Endpoint(
        paths=("/v1/models", "/api/v1/models"),
        method="GET",
        handler=models,
        summary="List the models the key's plan allows",
        response=ModelList,
        errors=_AUTH_ERRORS,
        tag="account",
        billable=False,
    ),
    # Ids hold slashes ("openai/text-embedding-3-small"): the path parameter takes the rest of the path.
    "model": Endpoint(
        paths=("/v1/models/{model_id:path}", "/api/v1/models/{model_id:path}"),
        method="GET",
        handler=model,
        summary="One model the key's plan allows (the openai SDK's models.retrieve)",
        response=ModelEntry,
        errors=(*_AUTH_ERRORS, 404),
        tag="account",
        billable=False,
    ),
    "usage": Endpoint(
        paths=("/v1/usage", "/api/v1/usage"),
        method="GET",
        handler=usage,
        summary="The key's own usage by UTC day and model, with totals",
        response=UsageReport,
        query=UsageQuery,
        errors=_AUTH_ERRORS,
        tag="account",
        billable=False,
    ),
}
# Batch jobs (OpenAI's Files, Uploads and Batch APIs): statuses a job operation can answer besides the auth ones.
_JOB_ERRORS = (*_AUTH_ERRORS, 404, 413)


def _job(
    path: str,
    method: str,
    handler: Callable[[Exchange], Awaitable[Response]],
    summary: str,
    response: type,
    *,
    request: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    redirect: bool = False,
) -> Endpoint:
    return Endpoint(
        (path,), method, handler, summary, response, request, query, _JOB_ERRORS, "jobs", billable=False,
        redirect=redirect,
    )  # fmt: skip


ENDPOINTS |= {
    "files.create": _job("/v1/files", "POST", jobs.create_file, "Upload a batch input file (multipart: file, purpose)",
                         FileObject),
    "files.list": _job("/v1/files", "GET", jobs.list_files, "The key's files, newest first", FileList,
                       query=ListQuery),
    "files.retrieve": _job("/v1/files/{file_id}", "GET", jobs.get_file, "One file", FileObject),
    "files.delete": _job("/v1/files/{file_id}", "DELETE", jobs.delete_file, "Delete a file", FileDeleted),
    "files.content": _job("/v1/files/{file_id}/content", "GET", jobs.file_content,
                          "A file's content: a redirect to it in S3 (a presigned URL)", FileObject, redirect=True),
    "uploads.create": _job("/v1/uploads", "POST", jobs.create_upload, "Start an upload in parts", UploadObject,
                           request=UploadCreate),
    "uploads.parts": _job("/v1/uploads/{upload_id}/parts", "POST", jobs.add_part,
                          "Add a part (multipart: data; at most 4,706,304 bytes a request)", UploadPart),
    "uploads.complete": _job("/v1/uploads/{upload_id}/complete", "POST", jobs.complete_upload,
                             "Join the parts into a file", UploadObject, request=UploadComplete),
    "uploads.cancel": _job("/v1/uploads/{upload_id}/cancel", "POST", jobs.cancel_upload, "Cancel an upload",
                           UploadObject),
    "batches.create": _job("/v1/batches", "POST", jobs.create_batch, "Start a batch job over an input file",
                           BatchObject, request=BatchCreate),
    "batches.list": _job("/v1/batches", "GET", jobs.list_batches, "The key's batches, newest first", BatchList,
                         query=ListQuery),
    "batches.retrieve": _job("/v1/batches/{batch_id}", "GET", jobs.get_batch, "One batch", BatchObject),
    "batches.cancel": _job("/v1/batches/{batch_id}/cancel", "POST", jobs.cancel_batch, "Cancel a batch",
                           BatchObject),
}  # fmt: skip
OPENAPI_PATH = "/openapi.json"
