"""What Bedrock embeddings and rerank share: their boto3 clients and the mapping of botocore failures onto errors.

Credentials and region come the standard AWS way (the Lambda role, or the usual chain locally); the provider secret
holds nothing for Bedrock but an optional ``rerank_region``. Endpoints too: a configured
``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` / ``AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME`` (or a profile's ``services``
section) is honoured, as by any boto3 client. ``make serve`` sets only DynamoDB's and Secrets Manager's, so Bedrock
calls never reach its local AWS.
"""

from __future__ import annotations

from ...errors import (
    EmbedrankError,
    ProviderNotConfigured,
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
    "ValidationException": (UpstreamError, "provider_rejected_request"),
    "AccessDeniedException": (UpstreamError, "provider_auth_failed"),
    "UnrecognizedClientException": (UpstreamError, "provider_auth_failed"),
    "ResourceNotFoundException": (UpstreamError, "provider_rejected_request"),
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


def too_large(limit: int) -> UpstreamError:
    return UpstreamError(
        f"{PROVIDER} sent an answer larger than this request can produce (more than {limit} bytes); it was refused.",
        provider=PROVIDER,
        code="provider_answer_too_large",
    )
