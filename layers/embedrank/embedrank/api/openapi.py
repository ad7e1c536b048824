"""The OpenAPI 3.1 document of the whole API, generated from ``endpoints.ENDPOINTS``, the request models in
``requests`` and the response shapes in ``responses``.

Nothing here is written by hand that the code also knows: paths, methods, bodies, query parameters, success and
error schemas all come from the endpoint table and the classes the code uses, so the document cannot drift from what
the app routes, validates and builds (the API tests check real responses against it). Only prose lives here:
what each error status means and what the headers carry.

Built on the first ``GET /openapi.json`` and cached for the container's life; ``app`` imports this module inside that
endpoint, so JSON-schema generation never costs a handler's cold import.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import JsonSchemaMode

from .endpoints import ENDPOINTS, OPENAPI_PATH
from .responses import ErrorResponse

if TYPE_CHECKING:
    from .endpoints import Endpoint

Refs = Mapping[tuple[type, str], str]

REF = "#/components/schemas/{model}"
JSON = "application/json"

# Why each status happens (the `errors` module's hierarchy, for a reader of the document).
ERROR_STATUSES: dict[int, str] = {
    400: "Invalid request: a malformed body or query, an unknown field, or an option the model does not support.",
    401: "No API key, or an unknown or revoked one.",
    403: "The model is not in the key's plan, or the key's plan does not exist.",
    404: "No model with that id (GET /v1/models lists them).",
    413: "The request, or the provider's answer, is over the size limits.",
    429: "A plan limit or the monthly budget is exhausted; Retry-After says in how many seconds to retry.",
    499: "The client disconnected before its request arrived whole (recorded in usage; never delivered).",
    500: "The gateway failed unexpectedly (a bug; it has been logged).",
    502: "The provider failed, rate limited the gateway, or answered something malformed.",
    503: "The provider serving this model has no credentials configured, or the gateway's own AWS services are "
    "unavailable (Retry-After says when to retry).",
    504: "The provider did not answer within the request's deadline.",
}

HEADERS: dict[str, dict[str, Any]] = {
    "RequestId": {
        "description": "The request id: API Gateway's in AWS, a random one locally; also the log correlation id.",
        "required": True,
        "schema": {"type": "string"},
    },
    "Cost": {
        "description": "The request's cost in USD, as a decimal number.",
        "required": True,
        "schema": {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$"},
    },
    "RetryAfter": {
        "description": "Seconds until the limit that was hit resets, or until the gateway expects to answer again.",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
    },
    "RateLimitLimitRequests": {
        "description": "The tightest request window's limit.",
        "schema": {"type": "integer"},
    },
    "RateLimitRemainingRequests": {
        "description": "Requests left in the tightest window.",
        "schema": {"type": "integer"},
    },
    "RateLimitResetRequests": {
        "description": "Time until the tightest window resets, e.g. '17s' or '6m0s'.",
        "schema": {"type": "string"},
    },
    "RateLimitLimitTokens": {"description": "The plan's tokens per minute.", "schema": {"type": "integer"}},
    "RateLimitRemainingTokens": {"description": "Tokens left this minute.", "schema": {"type": "integer"}},
    "RateLimitResetTokens": {"description": "Time until the token window resets.", "schema": {"type": "string"}},
}
_RATE_LIMIT_HEADERS = {
    "x-ratelimit-limit-requests": "RateLimitLimitRequests",
    "x-ratelimit-remaining-requests": "RateLimitRemainingRequests",
    "x-ratelimit-reset-requests": "RateLimitResetRequests",
    "x-ratelimit-limit-tokens": "RateLimitLimitTokens",
    "x-ratelimit-remaining-tokens": "RateLimitRemainingTokens",
    "x-ratelimit-reset-tokens": "RateLimitResetTokens",
}

SECURITY_SCHEMES = {
    "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "Bearer": {"type": "http", "scheme": "bearer", "description": "The same key, as 'Authorization: Bearer <key>'."},
}
# Either scheme authenticates (alternatives, not both).
SECURITY: list[dict[str, list[str]]] = [{"ApiKey": []}, {"Bearer": []}]


def _header_refs(names: Mapping[str, str]) -> dict[str, Any]:
    return {header: {"$ref": f"#/components/headers/{name}"} for header, name in names.items()}


def _operation_id(name: str, path: str, first: bool) -> str:
    # The first path is the canonical one; aliases get an id from their path, since ids must be unique.
    return name if first else f"{name}_" + re.sub(r"[^A-Za-z0-9]+", "_", path).strip("_")


def _responses(name: str, endpoint: Endpoint, refs: Refs) -> dict[str, Any]:
    ok_headers = _header_refs({"x-request-id": "RequestId", **_RATE_LIMIT_HEADERS})
    if endpoint.billable:  # the same flag that puts the header on the response
        ok_headers["x-embedrank-cost"] = {"$ref": "#/components/headers/Cost"}
    responses: dict[str, Any] = {
        "200": {
            "description": endpoint.summary,
            "headers": ok_headers,
            "content": {JSON: {"schema": {"$ref": refs[endpoint.response, "serialization"]}}},
        }
    }
    if endpoint.redirect:
        location = {"description": "Where the content is, for a few minutes", "schema": {"type": "string"}}
        responses = {"307": {"description": endpoint.summary, "headers": ok_headers | {"location": location}}}
    error_schema = {"$ref": refs[ErrorResponse, "serialization"]}
    for status in sorted({*endpoint.errors, 500}):
        headers = _header_refs({"x-request-id": "RequestId", **_RATE_LIMIT_HEADERS})
        if status in (429, 503):
            headers["retry-after"] = {"$ref": "#/components/headers/RetryAfter"}
        responses[str(status)] = {
            "description": ERROR_STATUSES[status],
            "headers": headers,
            "content": {JSON: {"schema": error_schema}},
        }
    return responses


def _path_parameters(path: str) -> tuple[str, list[dict[str, Any]]]:
    """Starlette's ``{name:path}`` as OpenAPI's ``{name}``, with its parameter (a value that may hold slashes)."""
    names = re.findall(r"\{(\w+)(?::\w+)?\}", path)
    template = re.sub(r"\{(\w+)(?::\w+)?\}", r"{\1}", path)
    parameters = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "description": "A model id from GET /v1/models; it may hold slashes (openai/text-embedding-3-small).",
            "schema": {"type": "string"},
        }
        for name in names
    ]
    return template, parameters


def _parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema()
    required = set(schema.get("required", ()))
    parameters = []
    for name, prop in schema["properties"].items():
        value = {k: v for k, v in prop.items() if k not in ("title", "description")}
        parameters.append(
            {
                "name": name,
                "in": "query",
                "required": name in required,
                "description": prop.get("description", ""),
                "schema": value,
            }
        )
    return parameters


def _request_body(model: type[BaseModel], refs: Refs) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": {"$ref": refs[model, "validation"]}}
    extra = model.model_config.get("json_schema_extra")
    examples = extra.get("examples") if isinstance(extra, dict) else None
    if isinstance(examples, list):
        media["examples"] = {f"example{i + 1}": {"value": value} for i, value in enumerate(examples)}
    return {"required": True, "content": {JSON: media}}


def build(endpoints: Mapping[str, Endpoint] = ENDPOINTS) -> dict[str, Any]:
    """The document for ``endpoints`` (every endpoint of the API by default)."""
    wanted: list[tuple[type, JsonSchemaMode]] = [(ErrorResponse, "serialization")]
    for endpoint in endpoints.values():
        wanted.append((endpoint.response, "serialization"))
        if endpoint.request is not None:
            wanted.append((endpoint.request, "validation"))
    wanted = list(dict.fromkeys(wanted))
    keyed, defs = TypeAdapter.json_schemas(
        [((shape, mode), mode, TypeAdapter(shape)) for shape, mode in wanted], ref_template=REF
    )
    refs: dict[tuple[type, str], str] = {key: keyed[key, key[1]]["$ref"] for key in wanted}
    schemas: dict[str, Any] = defs.get("$defs", {})
    for schema in schemas.values():
        schema.pop("examples", None)  # shown once, on the request body's media type

    paths: dict[str, dict[str, Any]] = {}
    for name, endpoint in endpoints.items():
        for i, path in enumerate(endpoint.paths):
            operation: dict[str, Any] = {
                "operationId": _operation_id(name, path, i == 0),
                "summary": endpoint.summary,
                "tags": [endpoint.tag or name],
                "security": SECURITY,
                "responses": _responses(name, endpoint, refs),
            }
            if i:
                operation["description"] = f"An alias of {endpoint.paths[0]}."
            if endpoint.query is not None:
                operation["parameters"] = _parameters(endpoint.query)
            if endpoint.request is not None:
                operation["requestBody"] = _request_body(endpoint.request, refs)
            template, parameters = _path_parameters(path)
            if parameters:
                operation["parameters"] = [*parameters, *operation.get("parameters", [])]
            paths.setdefault(template, {})[endpoint.method.lower()] = operation
    paths[OPENAPI_PATH] = {
        "get": {
            "operationId": "openapi",
            "summary": "This document",
            "tags": ["meta"],
            "security": [],
            "responses": {
                "200": {
                    "description": "The OpenAPI 3.1 document of the API.",
                    "headers": _header_refs({"x-request-id": "RequestId"}),
                    "content": {JSON: {"schema": {"type": "object"}}},
                }
            },
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Embedrank",
            "version": "v1",  # the API's version (its path prefix), not the package's
            "description": (
                "One OpenAI-compatible embeddings API and one Cohere-shaped rerank API in front of every major "
                "provider. Authenticate with 'X-API-Key: <key>' or 'Authorization: Bearer <key>'."
            ),
        },
        "paths": paths,
        "components": {"schemas": schemas, "headers": HEADERS, "securitySchemes": SECURITY_SCHEMES},
    }


@functools.cache
def document() -> bytes:
    """The serialized document, built once per container."""
    return orjson.dumps(build())
