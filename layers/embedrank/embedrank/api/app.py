"""The ASGI app factory: the services a container builds once, and the routes of the endpoints it serves.

Each Lambda function builds an app with just its own endpoints (``functions/*/``, at module scope); ``make serve``
builds one with all of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..config import Settings, settings
from ..domain.auth import Authenticator
from ..domain.cache import EmbeddingCache
from ..domain.catalog import Catalog, catalog
from ..domain.gateway import Gateway
from ..domain.jobs import Jobs
from ..domain.limits import Limiter
from ..domain.usage import Meter
from ..providers import Registry
from ..store.cache import CacheStore
from ..store.dynamo import Stores
from ..store.jobs import JobStore
from ..store.objects import ObjectStore
from ..store.queue import ChunkQueue
from ..store.secrets import CredentialStore
from .endpoints import ENDPOINTS, JSON, OPENAPI_PATH, Endpoint
from .errors import http_error, request_id
from .exchange import Exchange
from .streaming import GzipStreamed


@dataclass(slots=True)
class Services:
    """Everything an endpoint needs, built once per container (module scope in the handler)."""

    settings: Settings
    gateway: Gateway
    auth: Authenticator
    meter: Meter
    limiter: Limiter
    stores: Stores
    cache: EmbeddingCache
    jobs: Jobs
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
        auth = Authenticator(stores, config.auth_cache_ttl)
        meter = Meter(stores, config.usage_retention_days, gateway.catalog.model_ids())
        limiter = Limiter(stores)
        cache = EmbeddingCache(CacheStore(stores))
        jobs = Jobs(
            store=JobStore(stores),
            objects=ObjectStore(config),
            queue=ChunkQueue(config),
            gateway=gateway,
            cache=cache,
            meter=meter,
            limiter=limiter,
            principal_of=auth.by_id,
            chunk_lines=config.job_chunk_lines,
        )
        return cls(config, gateway, auth, meter, limiter, stores, cache, jobs)


def _route(services: Services, name: str, endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
    async def serve(request: Request) -> Response:
        return await Exchange(services, request, name, endpoint.billable).run(endpoint.handler)

    return serve


async def _openapi(request: Request) -> Response:
    """``GET /openapi.json``: unauthenticated and unmetered. Imported here, on first use: building the document
    (pydantic's JSON-schema generation) stays off the handlers' cold-import path."""
    from .openapi import document

    return Response(document(), media_type=JSON, headers={"x-request-id": request_id(request)})


def create_app(endpoints: Iterable[str] | None = None, services: Services | None = None) -> Starlette:
    """An app serving ``endpoints`` (all when None): each Lambda function builds one with just its own."""
    services = services or Services.build()
    names = list(ENDPOINTS) if endpoints is None else list(endpoints)
    # Each path also with a trailing slash, served the same (API Gateway routes "/v1/embeddings/" to
    # "/v1/embeddings"): Starlette would answer it with a bare 307 redirect, which clients do not follow for a POST.
    routes = [
        Route(variant, _route(services, name, ENDPOINTS[name]), methods=[ENDPOINTS[name].method])
        for name in names
        for path in ENDPOINTS[name].paths
        for variant in (path, path + "/")
    ]
    # Every function serves the whole API's document; API Gateway routes GET /openapi.json to one of them.
    routes.append(Route(OPENAPI_PATH, _openapi, methods=["GET"]))
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: http_error},
        middleware=[Middleware(GzipStreamed, settings=services.settings)],
    )
    app.router.redirect_slashes = False
    app.state.services = services
    return app
