"""The ASGI app factory: routes, the request lifecycle, and the one place errors become HTTP responses.

Every endpoint runs inside ``Exchange.run``: it gets a request id, authenticates, calls the domain, and whatever
happens (success, a domain error, a bug) leaves as a response with ``x-request-id``, one usage record if the caller
got past authentication, and one log line.
"""

from __future__ import annotations

import asyncio
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .accounts import visible_models
from .auth import Authenticator, Principal
from .catalog import Catalog, catalog
from .config import Settings, settings
from .credentials import CredentialStore
from .errors import EmbedrankError, InvalidRequest
from .limits import Admission, Limiter
from .observability import logger
from .providers import Registry
from .reliability import Budget, start_budget
from .reranking import rerank
from .schemas import EmbeddingRequest, RerankRequest, parse_body
from .service import Gateway
from .stores import Stores, UsageRecord
from .usage import Meter, daily_report, report_range

JSON = "application/json"
# Endpoints about the account itself: rate limited like every request, but not held to the budget (a key over its
# budget can still see its usage) and without a cost header.
ACCOUNT_ENDPOINTS = frozenset({"models", "usage"})


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
        event = request.scope.get("aws.event") or {}
        self.request_id: str = (event.get("requestContext") or {}).get("requestId") or uuid.uuid4().hex
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

    async def authenticate(self) -> Principal:
        self.principal = await asyncio.to_thread(self.services.auth.authenticate, self.request.headers)
        self.record.key_id = self.principal.key_id
        billable = self.endpoint not in ACCOUNT_ENDPOINTS
        self.admission = await asyncio.to_thread(self.services.limiter.admit, self.principal, billable=billable)
        return self.principal

    async def body(self) -> bytes:
        return await self.request.body()

    async def run(self, work: Callable[[Exchange], Awaitable[Response]]) -> Response:
        context = self.request.scope.get("aws.context")
        remaining = context.get_remaining_time_in_millis() if context is not None else None
        self.budget = start_budget(self.services.settings.request_deadline, remaining)
        try:
            response = await work(self)
        except EmbedrankError as err:
            response = error_response(err)
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
            response = error_response(EmbedrankError("The gateway failed unexpectedly; the error has been logged."))
        record = self.record
        record.status = response.status_code
        record.latency_ms = (time.perf_counter() - self.started) * 1000
        response.headers["x-request-id"] = self.request_id
        if self.admission is not None:
            response.headers.update(self.admission.headers)
        if response.status_code < 400 and self.endpoint not in ACCOUNT_ENDPOINTS:
            response.headers["x-embedrank-cost"] = f"{record.cost:.10f}".rstrip("0").rstrip(".")
        if self.principal is not None:
            record.timestamp = datetime.now(UTC).isoformat(timespec="milliseconds")
            await asyncio.to_thread(self.services.meter.record, record)
        logger.info(
            "request",
            extra={
                "request_id": self.request_id,
                "endpoint": self.endpoint,
                "key_id": record.key_id or None,
                "model": record.model or None,
                "provider": record.provider or None,
                "status": record.status,
                "latency_ms": round(record.latency_ms, 2),
                "tokens": record.tokens,
                "cost": record.cost,
            },
        )
        return response


async def _embeddings(ex: Exchange) -> Response:
    principal = await ex.authenticate()
    request: EmbeddingRequest = parse_body(EmbeddingRequest, await ex.body())
    ex.record.model = request.model
    ex.record.input_count = request.count
    outcome = await ex.services.gateway.embed(request, principal)
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
    start, end = report_range(ex.request.query_params)
    report = await asyncio.to_thread(daily_report, ex.services.stores, principal.key_id, start, end)
    return json_response(report)


ENDPOINTS: dict[str, tuple[tuple[str, ...], str, Callable[[Exchange], Awaitable[Response]]]] = {
    "embeddings": (("/v1/embeddings", "/api/v1/embeddings"), "POST", _embeddings),
    # /v2/rerank too: the cohere SDK's ClientV2 posts there, the v1 Client to /v1/rerank; both get the same shape.
    "rerank": (("/v1/rerank", "/api/v1/rerank", "/v2/rerank"), "POST", _rerank),
    "models": (("/v1/models", "/api/v1/models"), "GET", _models),
    "usage": (("/v1/usage", "/api/v1/usage"), "GET", _usage),
}


def _route(
    services: Services, name: str, work: Callable[[Exchange], Awaitable[Response]]
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return await Exchange(services, request, name).run(work)

    return endpoint


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    message = {
        404: f"No route for {request.method} {request.url.path}.",
        405: f"Method {request.method} is not allowed on {request.url.path}.",
    }.get(status, "Request failed.")
    err = InvalidRequest(message, code="not_found" if status == 404 else "method_not_allowed")
    err.status = status
    response = error_response(err)
    response.headers["x-request-id"] = uuid.uuid4().hex
    return response


def create_app(endpoints: Iterable[str] | None = None, services: Services | None = None) -> Starlette:
    """An app serving ``endpoints`` (all when None): each Lambda function builds one with just its own."""
    services = services or Services.build()
    names = list(ENDPOINTS) if endpoints is None else list(endpoints)
    routes = [
        Route(path, _route(services, name, ENDPOINTS[name][2]), methods=[ENDPOINTS[name][1]])
        for name in names
        for path in ENDPOINTS[name][0]
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
    app.state.services = services
    return app
