"""Powertools Logger, Metrics and Tracer, built once per container and shared by every function.

Log lines carry ids, models, numbers and statuses only: never an API key, a provider secret or input text.

The X-Ray SDK Tracer (subsegments for provider and AWS calls) is opt-in: ``EMBEDRANK_XRAY_SDK=1`` in Lambda. It
imports the X-Ray SDK and botocore when constructed (~250-450 ms on the 2-core dev machine), which alone breaks the
250 ms cold-import budget (issue 7); ``Tracing: Active`` still records each invocation's segment without it.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

SERVICE = "embedrank"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace="Embedrank", service=SERVICE)


def tracing_enabled() -> bool:
    if os.environ.get("POWERTOOLS_TRACE_DISABLED", "").lower() in ("1", "true"):
        return False
    if os.environ.get("EMBEDRANK_XRAY_SDK", "").lower() not in ("1", "true"):
        return False
    return bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME")) and not os.environ.get("AWS_SAM_LOCAL")


@functools.cache
def tracer() -> Tracer | None:
    if not tracing_enabled():
        return None
    from aws_lambda_powertools import Tracer

    return Tracer(service=SERVICE, auto_patch=False, patch_modules=["botocore", "httpx"])


def lambda_entry[F: Callable[..., Any]](handler: F) -> F:
    """Wrap a Lambda handler in Powertools' Logger, Metrics and (when on) Tracer decorators."""

    # A plain function: the Tracer's decorator reads ``__name__``, which a Mangum instance does not have.
    def lambda_handler(event: Any, context: Any) -> Any:
        return handler(event, context)

    wrapped: Callable[..., Any] = lambda_handler
    traced = tracer()
    if traced is not None:
        traced.patch(modules=["botocore", "httpx"])
        wrapped = traced.capture_lambda_handler(wrapped, capture_response=False)
    wrapped = metrics.log_metrics(wrapped)
    wrapped = logger.inject_lambda_context(wrapped, correlation_id_path="requestContext.requestId")
    return wrapped  # type: ignore[return-value]
