"""The one place errors become HTTP: a domain error's envelope and status, a routing miss's, and a bug's.

Every error leaves as OpenAI's envelope, ``{"error": {"message", "type", "code", "param"}}``, with ``x-request-id``.
"""

from __future__ import annotations

import traceback
import uuid
from collections.abc import Callable

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from ..config import settings
from ..errors import EmbedrankError, InvalidRequest
from ..observability import logger
from .responses import ErrorResponse

JSON = "application/json"


def error_response(err: EmbedrankError, redact: Callable[[str], str] | None = None) -> Response:
    """The envelope for ``err``; ``redact`` removes every provider key from the message, which may quote a
    provider's own words (and a provider may quote the key it was sent)."""
    message = redact(err.message) if redact is not None else err.message
    body: ErrorResponse = {"error": {"message": message, "type": err.type, "code": err.code, "param": err.param}}  # type: ignore[typeddict-item]
    return Response(orjson.dumps(body), status_code=err.status, media_type=JSON, headers=dict(err.headers))


def unexpected(exc: Exception, request_id: str) -> EmbedrankError:
    """A bug: its type and place are logged (never its message, which might quote input); the caller gets a 500."""
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    logger.error(
        "unhandled error",
        extra={
            "request_id": request_id,
            "error_type": type(exc).__name__,
            "where": f"{frame.filename}:{frame.lineno}" if frame else None,
        },
    )
    return EmbedrankError("The gateway failed unexpectedly; the error has been logged.")


def request_id(request: Request, in_lambda: bool | None = None) -> str:
    """API Gateway's request id in Lambda (from Mangum's event, or from the ``x-amzn-request-context`` header the
    Lambda Web Adapter sets, and only there: elsewhere a client could send that header), a fresh one elsewhere."""
    event = request.scope.get("aws.event")
    if event is not None:
        return str((event.get("requestContext") or {}).get("requestId") or uuid.uuid4().hex)
    forwarded = request.headers.get("x-amzn-request-context")
    if forwarded and (settings().in_lambda if in_lambda is None else in_lambda):
        try:
            context = orjson.loads(forwarded)
        except orjson.JSONDecodeError:
            context = None
        if isinstance(context, dict) and isinstance(context.get("requestId"), str) and context["requestId"]:
            return str(context["requestId"])[:128]
    return uuid.uuid4().hex


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no route, wrong method) in the same envelope."""
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
    response.headers["x-request-id"] = request_id(request)
    return response
