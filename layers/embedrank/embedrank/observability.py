"""Powertools Logger, Metrics and Tracer, built once per container and shared by every function.

Log lines and metrics carry ids, models, numbers and statuses only: never an API key, a provider secret or input
text.

- **Logger**: one JSON line per request (``app.Exchange._observe``); in Lambda ``inject_lambda_context`` adds the
  invocation context and sets API Gateway's request id (also the response's ``x-request-id``) as correlation id.
- **Metrics**: one EMF document per request in namespace ``Embedrank``, dimensioned by ``model`` and ``provider``
  only. On in Lambda; elsewhere only with ``EMBEDRANK_METRICS=1`` (it prints EMF to stdout).
- **Tracer**: the X-Ray SDK, patching botocore (DynamoDB, Secrets Manager, Bedrock) and httpx (the provider calls),
  so each upstream and AWS call is a subsegment. Built in Lambda when
  ``EMBEDRANK_XRAY_SDK`` is on (the template's ``XRaySdkTracing`` parameter, default on); never in tests, under
  ``make serve`` or ``sam local``. Importing the SDK costs ~250 ms of cold start on the 2-core dev machine, which
  is why it is not imported anywhere else.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence
from numbers import Number
from typing import TYPE_CHECKING, Any, cast

import orjson
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

from .config import Settings

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

SERVICE = "embedrank"
NAMESPACE = "Embedrank"
NO_PROVIDER = "(none)"  # the provider dimension of requests that reached no provider
PATCHED_MODULES = ("botocore", "httpx")

COUNT, MILLISECONDS, NO_UNIT = MetricUnit.Count.value, MetricUnit.Milliseconds.value, MetricUnit.NoUnit.value


def _json(record: dict[str, Any]) -> str:
    return orjson.dumps(record, default=str).decode()


logger = Logger(service=SERVICE, json_serializer=_json)
# service="": Powertools would otherwise add a "service" dimension (from POWERTOOLS_SERVICE_NAME) to every metric,
# and a metric is queried by its full dimension set; model and provider are the only dimensions.
metrics = Metrics(namespace=NAMESPACE, service="")


def metrics_enabled() -> bool:
    # Powertools' own switches (POWERTOOLS_METRICS_DISABLED, POWERTOOLS_DEV) win: its flush neither prints nor clears
    # when they are set, so adding metrics then would only pile them up.
    if is_metrics_disabled():
        return False
    config = Settings.from_env()  # read once, at import (EMIT_METRICS)
    return config.metrics if config.metrics is not None else config.in_lambda


EMIT_METRICS = metrics_enabled()


def publish_request(
    *,
    model: str,
    provider: str,
    status: int,
    latency_ms: float,
    upstream_ms: Sequence[float],
    attempts: int,
    tokens: int,
    search_units: int,
    cost: float,
    cached_inputs: int = 0,
    cache_errors: int = 0,
) -> None:
    """The request's metrics, written at once as one EMF document.

    Written here, not by ``log_metrics`` at the end of an invocation: under uvicorn concurrent requests cannot mix
    their dimensions and nothing accumulates in a long-running process, and Lambda needs no decorator (which warned
    "No application metrics to publish" on every invocation that added none). The metric set is built as data and
    Powertools serializes it to EMF: its ``add_metric`` validates each name and unit on every call (~6 µs each,
    eight a request) and its flush prints through the stdlib ``json``; the names and units here are constants.
    ``ClientErrors``/``ServerErrors`` are 0 or 1 on every request, so their average is the error rate.
    """
    if not EMIT_METRICS:
        return
    values: list[tuple[str, str, list[float]]] = [
        ("Requests", COUNT, [1.0]),
        ("ClientErrors", COUNT, [1.0 if 400 <= status < 500 else 0.0]),
        ("ServerErrors", COUNT, [1.0 if status >= 500 else 0.0]),
        ("Latency", MILLISECONDS, [latency_ms]),
    ]
    if upstream_ms:  # one value per provider attempt (EMF keeps them as one array)
        values.append(("UpstreamLatency", MILLISECONDS, [float(ms) for ms in upstream_ms]))
    if attempts:
        values.append(("UpstreamAttempts", COUNT, [float(attempts)]))
    if tokens:
        values.append(("Tokens", COUNT, [float(tokens)]))
    if search_units:
        values.append(("SearchUnits", COUNT, [float(search_units)]))
    if cost:
        values.append(("Cost", NO_UNIT, [cost]))  # USD
    if cached_inputs:
        values.append(("CachedInputs", COUNT, [float(cached_inputs)]))
    if cache_errors:  # the embedding cache failed and the provider served instead (domain/cache.py)
        values.append(("CacheErrors", COUNT, [float(cache_errors)]))
    metric_set = {name: {"Unit": unit, "StorageResolution": 60, "Value": v} for name, unit, v in values}
    document = metrics.serialize_metric_set(
        metrics=metric_set, dimensions={"model": model, "provider": provider}, metadata={}
    )
    sys.stdout.write(orjson.dumps(document).decode() + "\n")


def tracing_enabled() -> bool:
    config = Settings.from_env()  # read once, when the tracer is first asked for
    # Not built at all when disabled: a disabled Tracer would still import the X-Ray SDK.
    return config.xray_sdk and not config.trace_disabled and config.in_lambda and not config.sam_local


@functools.cache
def tracer() -> Tracer | None:
    if not tracing_enabled():
        return None
    from aws_lambda_powertools import Tracer

    # Patched now, at import in Lambda, before the first provider client is built (providers/http.py builds it on the
    # first call); botocore's patch covers clients created before it, too.
    return Tracer(service=SERVICE, patch_modules=PATCHED_MODULES)


def annotate_trace(model: str, provider: str, status: int) -> None:
    """Indexed annotations on the invocation's subsegment, so X-Ray can find traces by model, provider or status."""
    traced = tracer()
    if traced is not None:
        traced.put_annotation(key="model", value=model)
        traced.put_annotation(key="provider", value=provider)
        # A number, so X-Ray filters can compare it (annotation.status >= 500); ints are Numbers at runtime.
        traced.put_annotation(key="status", value=cast("Number", status))


def lambda_entry[F: Callable[..., Any]](handler: F) -> F:
    """Wrap a Lambda handler in Powertools' Logger and (when on) Tracer decorators; metrics flush per request."""

    # A plain function: the Tracer's decorator reads ``__name__``, which a Mangum instance does not have.
    def lambda_handler(event: Any, context: Any) -> Any:
        return handler(event, context)

    wrapped: Callable[..., Any] = lambda_handler
    traced = tracer()
    if traced is not None:
        # The response holds vectors: never copied into the trace.
        wrapped = traced.capture_lambda_handler(wrapped, capture_response=False)
    wrapped = logger.inject_lambda_context(wrapped, correlation_id_path="requestContext.requestId")
    return wrapped  # type: ignore[return-value]
