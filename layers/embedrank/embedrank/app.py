"""The ASGI app factory: routes, the request lifecycle, and the one place errors become HTTP responses.

Every endpoint runs inside ``Exchange.run``: it gets a request id, authenticates, calls the domain, and whatever
happens (success, a domain error, a bug) leaves as a response with ``x-request-id``, one usage record if the caller
got past authentication, and one log line.
"""

from __future__ import annotations

import asyncio
import sys
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .accounts import visible_models
from .auth import Authenticator, Principal
from .catalog import Catalog, catalog
from .config import Settings, settings
from .credentials import CredentialStore
from .errors import EmbedrankError, InvalidRequest, UpstreamError
from .limits import Admission, Limiter
from .observability import NO_PROVIDER, annotate_trace, logger, publish_request
from .providers import Registry
from .reliability import Budget, start_budget
from .reranking import rerank
from .schemas import EmbeddingRequest, RerankRequest, parse_body
from .service import Gateway
from .sizes import MAX_REQUEST_BYTES, accepts_gzip, fit_body, request_too_large
from .stores import Stores, UsageRecord
from .usage import MAX_LOGGED_MODEL, Meter, daily_report, report_range

JSON = "application/json"


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=JSON, headers=headers)


def error_response(err: EmbedrankError) -> Response:
    headers = dict(err.headers)
    return json_response(err.body(), err.status, headers)


@dataclass(slots=True)
class Services:
    """Everything an endpoint needs, built once per container (module scope in the handler)."""

    settings: Settings
    gateway: Gateway
    auth: Authenticator
    meter: Meter
    limiter: Limiter
    stores: Stores
    # Usage writes still running after their response went out (uvicorn only; see ``Exchange.run``).
    settling: set[asyncio.Future[None]] = field(default_factory=set)

    async def settled(self) -> None:
        """Wait for the usage writes of responses already sent, so a read sees them."""
        if self.settling:
            await asyncio.gather(*self.settling, return_exceptions=True)

    @classmethod
    def build(
        cls,
        config: Settings | None = None,
        *,
        stores: Stores | None = None,
        registry: Registry | None = None,
        models: Catalog | None = None,
    ) -> Services:
        config = config or settings()
        stores = stores or Stores(config)
        gateway = Gateway(
            config,
            models or catalog(),
            registry or Registry(),
            CredentialStore(config.provider_secret, config.secret_max_age),
        )
        return cls(
            settings=config,
            gateway=gateway,
            auth=Authenticator(stores, config.auth_cache_ttl),
            meter=Meter(stores, config.usage_retention_days, gateway.catalog.model_ids()),
            limiter=Limiter(stores),
            stores=stores,
        )


class Exchange:
    """One request's lifecycle state: who asked, for what, and what it cost."""

    __slots__ = (
        "admission",
        "budget",
        "endpoint",
        "principal",
        "record",
        "request",
        "request_id",
        "services",
        "started",
    )

    def __init__(self, services: Services, request: Request, endpoint: str) -> None:
        self.services = services
        self.request = request
        self.endpoint = endpoint
        self.request_id = _request_id(request)
        self.started = time.perf_counter()
        self.principal: Principal | None = None
        self.admission: Admission | None = None
        self.budget: Budget | None = None
        self.record = UsageRecord(
            request_id=self.request_id,
            key_id="",
            timestamp="",
            endpoint=endpoint,
            model="",
            provider="",
            status=0,
            latency_ms=0.0,
        )

    async def io[R](self, call: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        """Run blocking I/O (boto3). In Lambda a container serves one request at a time, so the call runs inline
        and saves the thread hop; under uvicorn it goes to a worker thread so other requests keep flowing."""
        if "aws.context" in self.request.scope:
            return call(*args, **kwargs)
        return await asyncio.to_thread(call, *args, **kwargs)

    async def authenticate(self) -> Principal:
        principal, self.admission = await self.io(self._admit)
        return principal

    def _admit(self) -> tuple[Principal, Admission | None]:
        """Authentication (cached) and rate-limit admission (one DynamoDB call) in one trip off the event loop."""
        principal = self.services.auth.authenticate(self.request.headers)
        # From here on the request is metered, even when admission refuses it.
        self.principal, self.record.key_id = principal, principal.key_id
        return principal, self.services.limiter.admit(principal, billable=ENDPOINTS[self.endpoint].billable)

    async def body(self) -> bytes:
        """The request body, refused with a 413 past Lambda's 6 MB: by its declared length before reading, else as
        soon as the bytes read pass it (a chunked upload declares none)."""
        declared = self.request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
            raise request_too_large(int(declared), declared=True)
        chunks: list[bytes] = []
        size = 0
        async for chunk in self.request.stream():
            size += len(chunk)
            if size > MAX_REQUEST_BYTES:
                raise request_too_large(size, declared=False)
            chunks.append(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def accepts_gzip(self) -> bool:
        return accepts_gzip(self.request.headers.get("accept-encoding"))

    def fit(self, response: Response) -> Response:
        """A large answer gzipped for a client that accepts it; one that cannot fit Lambda's response is a 413."""
        body = bytes(response.body)
        packed = fit_body(body, self.request.headers.get("accept-encoding"), self.services.settings.gzip_min_bytes)
        if packed is None:
            return response
        headers = {k: v for k, v in response.headers.items() if k != "content-length"}
        headers.update({"content-encoding": "gzip", "vary": "Accept-Encoding"})
        return Response(packed, status_code=response.status_code, headers=headers)

    async def run(self, work: Callable[[Exchange], Awaitable[Response]]) -> Response:
        context = self.request.scope.get("aws.context")
        remaining = context.get_remaining_time_in_millis() if context is not None else None
        self.budget = start_budget(self.services.settings.request_deadline, remaining)
        error: EmbedrankError | None = None
        try:
            response = self.fit(await work(self))
        except EmbedrankError as err:
            response = error_response(err)
            error = err
        except Exception as exc:
            # A bug: log the type and where, answer a clean 500; the message might quote input, so it is not logged.
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            logger.error(
                "unhandled error",
                extra={
                    "request_id": self.request_id,
                    "error_type": type(exc).__name__,
                    "where": f"{frame.filename}:{frame.lineno}",
                },
            )
            error = EmbedrankError("The gateway failed unexpectedly; the error has been logged.")
            response = error_response(error)
        record = self.record
        record.status = response.status_code
        record.latency_ms = (time.perf_counter() - self.started) * 1000
        response.headers["x-request-id"] = self.request_id
        if self.admission is not None:
            response.headers.update(self.admission.headers)
        if response.status_code < 400 and ENDPOINTS[self.endpoint].billable:
            response.headers["x-embedrank-cost"] = f"{record.cost:.10f}".rstrip("0").rstrip(".")
        if self.principal is not None:
            record.timestamp = datetime.now(UTC).isoformat(timespec="milliseconds")
        if "aws.context" in self.request.scope:
            await self._settle(error)  # Lambda may freeze the container as soon as the handler returns
            return response
        # Under uvicorn the usage write starts now and runs while the response is sent, instead of before it. The
        # ASGI call still ends only once it is done (a background task), so shutdown and the test client wait for
        # it, and /v1/usage waits for those still running (``Services.settled``).
        settling = asyncio.ensure_future(self._settle(error))
        self.services.settling.add(settling)
        settling.add_done_callback(self.services.settling.discard)
        response.background = BackgroundTask(_finish, settling)
        return response

    async def _settle(self, error: EmbedrankError | None) -> None:
        """The request's usage record (never raises: a failed write becomes a replay log line), log line, metrics."""
        if self.principal is not None:
            await self.io(self.services.meter.record, self.record)
        self._observe(error)

    def _observe(self, error: EmbedrankError | None) -> None:
        """The request's one log line and its metrics: ids, model, numbers and status, never a key or input text."""
        record, budget = self.record, self.budget
        # A failed provider call leaves no provider on the record (nothing was served); the error still names it.
        provider = record.provider or (error.provider if isinstance(error, UpstreamError) else "")
        upstream_ms = budget.upstream_ms if budget is not None else []
        attempts = budget.attempts if budget is not None else 0
        # Metrics first: their EMF line waits in the stdout buffer and leaves with the log line's flush, one write.
        model = self.services.meter.rollup_model(record.model)
        annotate_trace(model, provider or NO_PROVIDER, record.status)
        publish_request(
            # Dimension values stay few: catalog ids, else "(none)" / "(unknown)", never the caller's string.
            model=model,
            provider=provider or NO_PROVIDER,
            status=record.status,
            latency_ms=record.latency_ms,
            upstream_ms=upstream_ms,
            attempts=attempts,
            tokens=record.tokens,
            search_units=record.search_units,
            cost=record.cost,
        )
        logger.info(
            "request",
            extra={
                "request_id": self.request_id,
                "endpoint": self.endpoint,
                "path": self.request.scope["path"],  # not request.url: that builds a URL object per request
                "key_id": record.key_id or None,
                # The model id is caller input: bounded so a request cannot write an arbitrary blob into the logs.
                "model": record.model[:MAX_LOGGED_MODEL] or None,
                "provider": provider or None,
                "status": record.status,
                "latency_ms": round(record.latency_ms, 2),
                "upstream_attempts": attempts,
                "upstream_ms": round(sum(upstream_ms), 2),
                "tokens": record.tokens,
                "search_units": record.search_units,
                "cost": record.cost,
                "estimated": record.estimated or None,
                "error_code": error.code if error is not None else None,
            },
        )
        sys.stdout.flush()  # a no-op after the log line's flush; the EMF line's write when the level filters it out


async def _embeddings(ex: Exchange) -> Response:
    principal = await ex.authenticate()
    request: EmbeddingRequest = parse_body(EmbeddingRequest, await ex.body())
    ex.record.model = request.model
    ex.record.input_count = request.count
    outcome = await ex.services.gateway.embed(request, principal, gzip=ex.accepts_gzip())
    record = ex.record
    record.provider, record.tokens, record.cost = outcome.deployment.provider, outcome.tokens, outcome.cost
    record.estimated = outcome.estimated
    items = outcome.vectors.as_encoding(request.encoding_format)
    usage: dict[str, Any] = {"prompt_tokens": outcome.tokens, "total_tokens": outcome.tokens, "cost": outcome.cost}
    if outcome.estimated:
        usage["estimated"] = True
    return json_response(
        {
            "object": "list",
            "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(items)],
            "model": request.model,
            "provider": outcome.deployment.provider,
            "usage": usage,
        }
    )


async def _rerank(ex: Exchange) -> Response:
    principal = await ex.authenticate()
    request: RerankRequest = parse_body(RerankRequest, await ex.body())
    ex.record.model = request.model
    ex.record.input_count = len(request.documents)
    outcome = await rerank(ex.services.gateway, request, principal)
    record = ex.record
    record.provider, record.cost = outcome.deployment.provider, outcome.cost
    record.tokens, record.search_units = outcome.tokens, outcome.search_units
    return json_response(
        {
            "id": ex.request_id,
            "object": "list",
            "results": outcome.items(),
            "model": request.model,
            "provider": outcome.deployment.provider,
            "usage": outcome.usage(),
        }
    )


async def _models(ex: Exchange) -> Response:
    principal = await ex.authenticate()
    return json_response(visible_models(ex.services.gateway.catalog, principal.plan))


async def _usage(ex: Exchange) -> Response:
    principal = await ex.authenticate()
    await ex.services.settled()
    start, end = report_range(ex.request.query_params)
    report = await ex.io(daily_report, ex.services.stores, principal.key_id, start, end)
    return json_response(report)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One API operation: what the router serves and what ``openapi.py`` documents, from the same entry."""

    paths: tuple[str, ...]
    method: str
    handler: Callable[[Exchange], Awaitable[Response]]
    summary: str
    response: str  # the ``responses`` model describing the 200 body (the handler still builds a dict)
    request: type[BaseModel] | None = None  # the JSON body
    query: str | None = None  # the ``responses`` model whose fields are the query parameters
    errors: tuple[int, ...] = ()  # statuses answered with ErrorResponse, besides 500
    tag: str = ""
    # Calls a provider and costs money: held to the budget and answered with ``x-embedrank-cost``. Account
    # endpoints are not, so a key over its budget can still see its models and what it spent.
    billable: bool = True


# Statuses every authenticated endpoint can answer: no/bad key, a key whose plan is gone, a plan limit.
_AUTH_ERRORS = (401, 403, 429)
# ...and those that call a provider: bad request, unknown model, too large, provider failed / unconfigured / slow.
_PROVIDER_ERRORS = (400, *_AUTH_ERRORS, 404, 413, 502, 503, 504)

ENDPOINTS: dict[str, Endpoint] = {
    "embeddings": Endpoint(
        paths=("/v1/embeddings", "/api/v1/embeddings"),
        method="POST",
        handler=_embeddings,
        summary="Create embeddings (OpenAI-compatible)",
        response="EmbeddingResponse",
        request=EmbeddingRequest,
        errors=_PROVIDER_ERRORS,
        tag="embeddings",
    ),
    # /v2/rerank too: the cohere SDK's ClientV2 posts there, the v1 Client to /v1/rerank; both get the same shape.
    "rerank": Endpoint(
        paths=("/v1/rerank", "/api/v1/rerank", "/v2/rerank"),
        method="POST",
        handler=_rerank,
        summary="Rerank documents against a query (Cohere-shaped)",
        response="RerankResponse",
        request=RerankRequest,
        errors=_PROVIDER_ERRORS,
        tag="rerank",
    ),
    "models": Endpoint(
        paths=("/v1/models", "/api/v1/models"),
        method="GET",
        handler=_models,
        summary="List the models the key's plan allows",
        response="ModelList",
        errors=_AUTH_ERRORS,
        tag="account",
        billable=False,
    ),
    "usage": Endpoint(
        paths=("/v1/usage", "/api/v1/usage"),
        method="GET",
        handler=_usage,
        summary="The key's own usage by UTC day and model, with totals",
        response="UsageReport",
        query="UsageQuery",
        errors=(400, *_AUTH_ERRORS),
        tag="account",
        billable=False,
    ),
}
OPENAPI_PATH = "/openapi.json"


async def _finish(settling: asyncio.Future[None]) -> None:
    # Shielded: a client that disconnects cancels the request's task, and must not cancel its usage write with it.
    await asyncio.shield(settling)


def _route(
    services: Services, name: str, work: Callable[[Exchange], Awaitable[Response]]
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return await Exchange(services, request, name).run(work)

    return endpoint


def _request_id(request: Request) -> str:
    event = request.scope.get("aws.event") or {}
    return str((event.get("requestContext") or {}).get("requestId") or uuid.uuid4().hex)


async def _openapi(request: Request) -> Response:
    """``GET /openapi.json``: unauthenticated and unmetered. Imported here, on first use: building the document
    (pydantic's JSON-schema generation) stays off the handlers' cold-import path."""
    from .openapi import document

    return Response(document(), media_type=JSON, headers={"x-request-id": _request_id(request)})


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    message = {
        404: f"No route for {request.method} {request.url.path}.",
        405: f"Method {request.method} is not allowed on {request.url.path}.",
    }.get(status, "Request failed.")
    err = InvalidRequest(message, code="not_found" if status == 404 else "method_not_allowed")
    err.status = status
    response = error_response(err)
    if isinstance(exc, HTTPException) and exc.headers:
        response.headers.update(exc.headers)  # a 405's Allow header, which HTTP requires
    response.headers["x-request-id"] = _request_id(request)
    return response


def create_app(endpoints: Iterable[str] | None = None, services: Services | None = None) -> Starlette:
    """An app serving ``endpoints`` (all when None): each Lambda function builds one with just its own."""
    services = services or Services.build()
    names = list(ENDPOINTS) if endpoints is None else list(endpoints)
    routes = [
        Route(path, _route(services, name, ENDPOINTS[name].handler), methods=[ENDPOINTS[name].method])
        for name in names
        for path in ENDPOINTS[name].paths
    ]
    # Every function serves the whole API's document; API Gateway routes GET /openapi.json to one of them.
    routes.append(Route(OPENAPI_PATH, _openapi, methods=["GET"]))
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
    app.state.services = services
    return app
