"""Invoking the Lambda handlers as Lambda does: a context object, the tests/events files, decoded answers, and the
Powertools logger's output."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import httpx

from conftest import EVENTS, FakeUpstream


@dataclass
class LambdaContext:
    function_name: str = "EmbeddingsFunction"
    memory_limit_in_mb: int = 1024
    aws_request_id: str = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


def load_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


def event(
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    query: str = "",
    request_id: str = "evt-built",
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event like tests/events/*.json: ``body`` as JSON (bytes as they are),
    ``headers`` as API Gateway passes them (a repeated header arrives comma-joined in one value)."""
    base = load_event("embeddings_success.json")
    raw = body if isinstance(body, bytes) else (b"" if body is None else json.dumps(body).encode())
    base["routeKey"] = f"{method} {path}"
    base["rawPath"], base["rawQueryString"] = path, query
    base["requestContext"]["http"].update(method=method, path=path)
    base["requestContext"]["requestId"] = request_id
    base["headers"] = (
        {k: v for k, v in base["headers"].items() if k not in ("x-api-key", "content-length")}
        | {"content-length": str(len(raw))}
        | (headers or {})
    )
    base["body"], base["isBase64Encoded"] = base64.b64encode(raw).decode(), True
    return base


def wired(module: ModuleType, upstream: FakeUpstream) -> Any:
    """The handler of ``module`` with the fake upstream injected; its services are built at import, as in Lambda."""
    from embedrank.providers import Registry

    services = module.app.state.services
    services.gateway.registry = Registry(httpx.MockTransport(upstream))
    services.auth._keys.clear()
    services.auth._plans.clear()
    services.gateway.credentials.clear()
    services.gateway.breakers._circuits.clear()
    return module.handler


def invoke(
    handler: Any, event: dict[str, Any], function: str = "EmbeddingsFunction"
) -> tuple[int, dict[str, str], Any]:
    result = handler(event, LambdaContext(function_name=function))
    body = result["body"]
    if result.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    return result["statusCode"], result["headers"], json.loads(body)


@contextmanager
def captured_logs() -> Iterator[io.StringIO]:
    """Everything the Powertools logger writes meanwhile (its handler keeps the stream it was built with)."""
    from embedrank.observability import logger

    buffer = io.StringIO()
    previous = logger.registered_handler.setStream(buffer)  # type: ignore[attr-defined]
    try:
        yield buffer
    finally:
        logger.registered_handler.setStream(previous)  # type: ignore[attr-defined]
