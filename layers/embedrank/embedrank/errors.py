"""Embedrank's one exception hierarchy.

Every failure the gateway reports to a caller is an ``EmbedrankError``; the ASGI app turns it into the
OpenAI-style envelope ``{"error": {"message", "type", "code", "param"}}`` in one place (``app.py``), so a
handler never builds an error body itself. Lower-layer errors (httpx, botocore, pydantic) are mapped to this
hierarchy where they are caught: provider HTTP in ``providers/http.py``, Bedrock in ``providers/bedrock/client.py``,
DynamoDB and Secrets Manager in ``store/`` (the one place AWS errors on the request path are mapped), request validation
in ``api/requests.py``; ``api/errors.py`` is the one place they become HTTP.

    EmbedrankError                    500 internal_error (never raised on purpose)
    ├── InvalidRequest                400 invalid_request_error   bad body, unsupported option
    │   ├── PayloadTooLarge           413 invalid_request_error   request or answer over the size limits
    │   └── ClientClosedRequest       499 invalid_request_error   the caller hung up before its body arrived
    ├── AuthenticationError           401 authentication_error    missing, unknown or revoked key
    ├── PermissionDenied              403 permission_error        model not in the key's plan
    ├── ModelNotFound                 404 invalid_request_error   unknown model id
    ├── RateLimited                   429 rate_limit_error        plan limit or budget exhausted
    ├── UpstreamError                 502 provider_error          provider failed or answered nonsense
    │   ├── ProviderRejected          400 invalid_request_error   the provider refused the request itself (400/404/422)
    │   ├── UpstreamRateLimited       502 provider_rate_limited   429 from the provider (retryable)
    │   ├── UpstreamUnavailable       502 provider_unavailable    5xx / connection failure (retryable)
    │   └── UpstreamTimeout           504 provider_timeout        no answer in time (retryable)
    ├── CircuitOpen                   503 circuit_open            every deployment paused after failures (Retry-After)
    ├── ProviderNotConfigured         503 provider_not_configured no credentials for the provider
    └── StoreUnavailable              503 store_unavailable       DynamoDB or Secrets Manager failed (Retry-After)

``retryable`` marks the faults worth another attempt (or the next deployment of a route); a provider's 4xx that is
the caller's fault (``UpstreamError`` with ``retryable=False``) is never retried.
"""

from __future__ import annotations

import math


class EmbedrankError(Exception):
    status = 500
    type = "internal_error"
    code = "internal_error"
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict[str, dict[str, str | None]]:
        return {"error": {"message": self.message, "type": self.type, "code": self.code, "param": self.param}}


class InvalidRequest(EmbedrankError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class PayloadTooLarge(InvalidRequest):
    status = 413
    code = "payload_too_large"


class ClientClosedRequest(InvalidRequest):
    """The caller disconnected before its request arrived whole (nginx's 499): recorded, never answered."""

    status = 499
    code = "client_closed_request"


class AuthenticationError(EmbedrankError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(EmbedrankError):
    status = 403
    type = "permission_error"
    code = "model_not_allowed"


class ModelNotFound(EmbedrankError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class RateLimited(EmbedrankError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class UpstreamError(EmbedrankError):
    """The provider failed. ``provider`` names it; the message keeps the provider's own words, never its secret."""

    status = 502
    type = "provider_error"
    code = "provider_error"

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        upstream_status: int | None = None,
        retry_after: float | None = None,
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message, code=code, param=param)
        self.provider = provider
        self.upstream_status = upstream_status
        self.retry_after = retry_after


class ProviderRejected(UpstreamError):
    """The provider refused the request itself (its 400, 404 or 422): the caller's to fix, so a 400 that keeps
    the provider's message (never a secret), and neither retried nor sent to a route's next deployment."""

    status = 400
    type = "invalid_request_error"
    code = "provider_rejected_request"


class UpstreamRateLimited(UpstreamError):
    code = "provider_rate_limited"
    retryable = True


class UpstreamUnavailable(UpstreamError):
    code = "provider_unavailable"
    retryable = True


class ProviderNotConfigured(EmbedrankError):
    status = 503
    type = "provider_error"
    code = "provider_not_configured"


class CircuitOpen(EmbedrankError):
    """Every deployment of the model failed repeatedly and is paused: the gateway declines, no provider was called.
    ``Retry-After`` is the whole seconds until the next probe."""

    status = 503
    type = "provider_error"
    code = "circuit_open"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message, headers={"retry-after": str(max(1, math.ceil(retry_after)))})


class StoreUnavailable(EmbedrankError):
    """An AWS call on the request path failed (throttled, unreachable, a 5xx, refused credentials, a missing table):
    the gateway cannot answer now, and says when to try again. ``aws_code`` is the AWS error code, when there is one;
    ``retryable`` is False for errors another attempt cannot fix (a missing table, a denied permission)."""

    status = 503
    type = "service_unavailable_error"
    code = "store_unavailable"

    def __init__(self, message: str, *, aws_code: str = "", retryable: bool = True, retry_after: int = 1) -> None:
        super().__init__(message, headers={"retry-after": str(retry_after)})
        self.aws_code = aws_code
        self.retryable = retryable


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "provider_timeout"
    retryable = True
