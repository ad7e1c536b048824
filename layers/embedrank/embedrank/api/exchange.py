"""One request's lifecycle: a request id, authentication and admission, the body, the answer's size, and, whatever
happens (an answer, a domain error, a bug), one response with ``x-request-id``, one usage record if the caller got
past authentication, and one log line with its metrics.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.background import BackgroundTask
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse

from ..domain.auth import Principal
from ..domain.limits import Admission
from ..domain.records import UsageRecord
from ..domain.reliability import Budget, start_budget
from ..domain.usage import MAX_LOGGED_MODEL
from ..errors import ClientClosedRequest, EmbedrankError, UpstreamError
from ..observability import NO_PROVIDER, annotate_trace, logger, publish_request
from .errors import error_response, request_id, unexpected
from .sizes import BUFFERED, MAX_REQUEST_BYTES, accepts_gzip, channel_of, fit_body, request_too_large

if TYPE_CHECKING:
    from .app import Services


class Exchange:
    """One request's lifecycle state: who asked, for what, and what it cost."""

    __slots__ = (
        "admission",
        "billable",
        "budget",
        "cache_errors",
        "channel",
        "endpoint",
        "principal",
        "record",
        "request",
        "request_id",
        "services",
        "started",
    )

    def __init__(self, services: Services, request: Request, endpoint: str, billable: bool) -> None:
        self.services = services
        self.request = request
        self.endpoint = endpoint
        self.billable = billable
        self.request_id = request_id(request)
        self.started = time.perf_counter()
        self.channel = channel_of(services.settings, request.scope)  # how the answer leaves, and so its limits
        self.cache_errors = 0  # the embedding cache's failures this request (served by the provider instead)
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
        """Who is asking: the key and its plan, cached per container (DynamoDB on a miss). From here on the request
        is metered, whatever happens next."""
        auth, headers = self.services.auth, self.request.headers
        principal = auth.cached(headers)
        if principal is None:
            principal = await self.io(auth.authenticate, headers)
        self.principal, self.record.key_id = principal, principal.key_id
        return principal

    async def admit(self, reserve: float = 0.0) -> None:
        """The plan's rate limits and, for a billable request, its budget, with ``reserve`` (USD, the request's
        estimated cost) held against it until the usage write settles it: one DynamoDB call. Raises ``RateLimited``."""
        assert self.principal is not None, "authenticate first"
        limiter, principal = self.services.limiter, self.principal
        self.admission = await self.io(limiter.admit, principal, billable=self.billable, reserve=reserve)
        if self.admission is not None:
            self.record.reserved, self.record.meter_day = self.admission.reserved, self.admission.day

    async def body(self) -> bytes:
        """The request body, refused with a 413 past Lambda's 6 MB: by its declared length before reading, else as
        soon as the bytes read pass it (a chunked upload declares none)."""
        declared = self.request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
            raise request_too_large(int(declared), declared=True)
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in self.request.stream():
                size += len(chunk)
                if size > MAX_REQUEST_BYTES:
                    raise request_too_large(size, declared=False)
                chunks.append(chunk)
        except ClientDisconnect:
            raise ClientClosedRequest("The client disconnected before its request arrived whole.") from None
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def accepts_gzip(self) -> bool:
        return accepts_gzip(self.request.headers.get("accept-encoding"))

    def fit(self, response: Response) -> Response:
        """Buffered: a large answer gzipped for a client that accepts it; one that cannot fit Lambda's response is a
        413. (Streamed answers are gzipped as they go: ``streaming.GzipStreamed``.)"""
        if self.channel is not BUFFERED:
            return response
        body = bytes(response.body)
        # A REST API (the streaming deployment's account routes) returns a Lambda proxy answer's base64 body as
        # bytes only for its binaryMediaTypes, none of which are set (they would base64 every request body too): such
        # answers go uncompressed.
        rest_api = "httpMethod" in self.request.scope.get("aws.event", {})
        accepted = None if rest_api else self.request.headers.get("accept-encoding")
        packed = fit_body(body, accepted, self.services.settings.gzip_min_bytes)
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
            response = error_response(err, self.services.gateway.credentials.redact)
            error = err
        except Exception as exc:
            error = unexpected(exc, self.request_id)
            response = error_response(error)
        record = self.record
        record.status = response.status_code
        record.latency_ms = (time.perf_counter() - self.started) * 1000
        response.headers["x-request-id"] = self.request_id
        if self.admission is not None:
            response.headers.update(self.admission.headers)
        if response.status_code < 400 and self.billable:
            response.headers["x-embedrank-cost"] = f"{record.cost:.10f}".rstrip("0").rstrip(".")
        if self.principal is not None:
            record.timestamp = datetime.now(UTC).isoformat(timespec="milliseconds")
        if "aws.context" in self.request.scope:
            await self._settle(error)  # Lambda may freeze the container as soon as the handler returns
            return response
        # Under uvicorn the usage write starts now and runs while the response is sent, instead of before it;
        # /v1/usage waits for those still running (``Services.settled``).
        settling = asyncio.ensure_future(self._settle(error))
        self.services.settling.add(settling)
        settling.add_done_callback(self.services.settling.discard)
        if isinstance(response, StreamingResponse):
            # The last byte waits for it: under the Lambda Web Adapter the invocation ends with the answer, and
            # Lambda may freeze the container right after.
            response.body_iterator = self._streamed(response.body_iterator, settling)
        elif self.services.settings.in_lambda:
            await settling  # the same, for an answer sent whole
        else:
            # The ASGI call ends once it is done (a background task): shutdown and the test client wait for it.
            response.background = BackgroundTask(_finish, settling)
        return response

    async def _streamed(self, chunks: AsyncIterable[Any], settling: asyncio.Future[None]) -> AsyncIterator[Any]:
        """A streamed answer's chunks, then the usage write's end. A failure past the first byte cannot change the
        status any more: it is logged and drops the connection, so the client's body never parses
        (``streaming``'s docstring)."""
        try:
            async for chunk in chunks:
                yield chunk
        except Exception as exc:
            logger.error(
                "answer stream failed; the connection is dropped",
                extra={"request_id": self.request_id, "error_type": type(exc).__name__},
            )
            raise
        finally:
            await asyncio.shield(settling)

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
            cached_inputs=record.cached_inputs,
            cache_errors=self.cache_errors,
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
                "cached_inputs": record.cached_inputs or None,
                "estimated": record.estimated or None,
                "error_code": error.code if error is not None else None,
            },
        )
        sys.stdout.flush()  # a no-op after the log line's flush; the EMF line's write when the level filters it out


async def _finish(settling: asyncio.Future[None]) -> None:
    # Shielded: a client that disconnects cancels the request's task, and must not cancel its usage write with it.
    await asyncio.shield(settling)
