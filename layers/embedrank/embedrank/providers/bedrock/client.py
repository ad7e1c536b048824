"""What Bedrock embeddings and rerank share: their boto3 clients and the mapping of botocore failures onto errors.

Credentials and region come the standard AWS way (the Lambda role, or the usual chain locally); the provider secret
holds nothing for Bedrock but an optional ``rerank_region``. Endpoints too: a configured
``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` / ``AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME`` (or a profile's ``services``
section) is honoured, as by any boto3 client. ``make serve`` sets only DynamoDB's and Secrets Manager's, so Bedrock
calls never reach its local AWS.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ...errors import (
    EmbedrankError,
    ProviderNotConfigured,
    ProviderRejected,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)

PROVIDER = "bedrock"

# ClientError codes -> (error class, our code). Anything unlisted is a plain 502.
CLIENT_ERRORS: dict[str, tuple[type[UpstreamError], str | None]] = {
    "ThrottlingException": (UpstreamRateLimited, None),
    "ServiceQuotaExceededException": (UpstreamRateLimited, None),
    "ValidationException": (ProviderRejected, None),
    "AccessDeniedException": (UpstreamError, "provider_auth_failed"),
    "UnrecognizedClientException": (UpstreamError, "provider_auth_failed"),
    "ResourceNotFoundException": (ProviderRejected, None),
    "ModelTimeoutException": (UpstreamTimeout, None),
    "ModelNotReadyException": (UpstreamUnavailable, None),
    "ServiceUnavailableException": (UpstreamUnavailable, None),
    "InternalServerException": (UpstreamUnavailable, None),
}


def upstream_error(exc: Exception) -> EmbedrankError | None:
    """The gateway error for a boto3/botocore failure, or None when ``exc`` is not one of them."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectTimeoutError,
        NoCredentialsError,
        NoRegionError,
        ReadTimeoutError,
    )

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        meta = exc.response.get("ResponseMetadata", {})
        name = str(error.get("Code", ""))
        cls, code = CLIENT_ERRORS.get(name, (UpstreamError, None))
        message = f"{PROVIDER} returned {name or 'an error'}: {error.get('Message') or 'no message'}"[:500]
        return cls(message, provider=PROVIDER, upstream_status=meta.get("HTTPStatusCode"), code=code)
    if isinstance(exc, (ReadTimeoutError, ConnectTimeoutError)):
        return UpstreamTimeout(f"{PROVIDER} did not answer in time.", provider=PROVIDER)
    if isinstance(exc, (NoCredentialsError, NoRegionError)):
        return ProviderNotConfigured(f"Provider {PROVIDER} is not configured: {type(exc).__name__}.")
    if isinstance(exc, BotoCoreError):
        return UpstreamUnavailable(f"Could not reach {PROVIDER}: {type(exc).__name__}.", provider=PROVIDER)
    return None


async def in_thread[T](work: Callable[[], T], timeout: float) -> T:
    """A blocking boto3 call, run in a thread and bounded by the attempt's timeout; its failures mapped.

    botocore's own read timeout is the provider timeout, fixed when the client is built; the attempt's timeout is
    the shorter of that and what is left of the request's deadline, so the request answers in time even when
    Bedrock does not (the thread is left to finish on its own).
    """
    try:
        async with asyncio.timeout(timeout):
            return await asyncio.to_thread(work)
    except TimeoutError:
        raise UpstreamTimeout(f"{PROVIDER} did not answer within {timeout:.1f} s.", provider=PROVIDER) from None
    except Exception as exc:
        mapped = upstream_error(exc)
        if mapped is None:
            raise
        raise mapped from None


def too_large(limit: int) -> UpstreamError:
    return UpstreamError(
        f"{PROVIDER} sent an answer larger than this request can produce (more than {limit} bytes); it was refused.",
        provider=PROVIDER,
        code="provider_answer_too_large",
    )
