"""GET /openapi.json: generated from ENDPOINTS and the pydantic models, and true to what the app really answers.

Real responses of the app (successes of every shape, and errors) are validated with jsonschema against the schemas
in the served document: a field the app sends that a model does not describe (the response schemas are closed), a
type that changed, a status a route answers without documenting it, or a documented header that is missing, fails.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any, get_args

import httpx
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_spec

from conftest import FREE_KEY, ROOT, FakeUpstream, auth, usage_records
from embedrank import errors
from embedrank.api.app import create_app
from embedrank.api.endpoints import ENDPOINTS, OPENAPI_PATH
from embedrank.api.responses import ErrorType
from fakes import cohere_embed_answer, json_response, openai_answer
from provider_fakes import gemini_answer


def rerank_answer(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    n = len(body["documents"])
    ranked = [{"index": i, "relevance_score": 1 - i / (n + 1)} for i in range(n)][
        : body.get("top_n") or body.get("top_k")
    ]
    if "api.voyageai.com" in str(request.url):
        return json_response({"object": "list", "data": ranked, "model": body["model"], "usage": {"total_tokens": 9}})
    return json_response({"id": "r", "results": ranked, "meta": {"billed_units": {"search_units": 1}}})


def provider(request: httpx.Request) -> httpx.Response:
    """Every provider the requests below reach, by URL."""
    url = str(request.url)
    if url.endswith("/rerank"):
        return rerank_answer(request)
    if "api.openai.com" in url:
        return openai_answer(request)
    if "generativelanguage" in url:
        return gemini_answer(request)
    if "wrong-key" in request.content.decode():
        return json_response({"error": {"message": "bad key"}}, 401)
    if "refused" in request.content.decode():
        return json_response({"error": {"message": "bad request"}}, 400)
    return cohere_embed_answer(request)


@pytest.fixture
def doc(client: Any) -> dict[str, Any]:
    response = client.get(OPENAPI_PATH)
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    document: dict[str, Any] = response.json()
    return document


def check(doc: dict[str, Any], method: str, response: Any) -> int:
    """``response`` is what the document says ``method`` on its path answers with its status; returns the status."""
    operation = doc["paths"][response.request.url.path][method]
    status = str(response.status_code)
    assert status in operation["responses"], f"{method} {response.request.url.path} answered undocumented {status}"
    spec = operation["responses"][status]
    schema = {**spec["content"]["application/json"]["schema"], "components": doc["components"]}
    Draft202012Validator(schema).validate(response.json())
    for name, header in spec.get("headers", {}).items():
        header = doc["components"]["headers"][header["$ref"].rsplit("/", 1)[1]]
        if header.get("required"):
            assert name in response.headers, f"documented header {name} missing on {status}"
        if name in response.headers:
            value = response.headers[name]
            Draft202012Validator(header["schema"]).validate(
                int(value) if header["schema"]["type"] == "integer" else value
            )
    return response.status_code


def test_document_is_valid_openapi_and_served_without_auth_or_metering(
    client: Any, doc: dict[str, Any], settings: Any
) -> None:
    from embedrank.api.openapi import build

    validate_spec(doc)
    assert doc == build()
    assert doc["components"]["securitySchemes"] == {
        "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        "Bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "The same key, as 'Authorization: Bearer <key>'.",
        },
    }
    assert client.get(OPENAPI_PATH).headers["x-request-id"]
    assert usage_records(settings) == []  # served to anyone, recorded for no one


def test_every_route_is_documented_and_nothing_else(doc: dict[str, Any]) -> None:
    def template(path: str) -> str:  # Starlette's {name:path} is OpenAPI's {name}
        return re.sub(r"\{(\w+):path\}", r"{\1}", path)

    routes = {(path, e.method.lower()) for e in ENDPOINTS.values() for path in e.paths}
    documented = {(path, method) for path, item in doc["paths"].items() for method in item}
    assert documented == {(template(p), m) for p, m in routes} | {(OPENAPI_PATH, "get")}
    from types import SimpleNamespace

    from embedrank.config import Settings

    app = create_app(services=SimpleNamespace(settings=Settings()))  # type: ignore[arg-type]
    served = {(r.path, m.lower()) for r in app.routes for m in r.methods if m != "HEAD"}  # type: ignore[attr-defined]
    # each path also with a trailing slash (served the same, never a redirect)
    assert served == routes | {(p + "/", m) for p, m in routes} | {(OPENAPI_PATH, "get")}
    for name, endpoint in ENDPOINTS.items():
        for path in endpoint.paths:
            operation = doc["paths"][template(path)][endpoint.method.lower()]
            ok = "307" if endpoint.redirect else "200"  # files.content: a redirect to the file in S3
            assert set(operation["responses"]) == {ok, "500", *map(str, endpoint.errors)}
            assert operation["security"] == [{"ApiKey": []}, {"Bearer": []}]
            assert ("requestBody" in operation) == (endpoint.request is not None)
            assert ("x-embedrank-cost" in operation["responses"][ok]["headers"]) == ENDPOINTS[name].billable
    usage = doc["paths"]["/v1/usage"]["get"]["parameters"]
    assert [(p["name"], p["in"], p["required"], p["schema"]) for p in usage] == [
        ("start", "query", True, {"type": "string", "format": "date"}),
        ("end", "query", True, {"type": "string", "format": "date"}),
    ]


def test_every_error_the_code_can_raise_is_documented() -> None:
    from embedrank.api.openapi import ERROR_STATUSES

    classes = [errors.EmbedrankError]
    for cls in classes:
        classes.extend(cls.__subclasses__())
    assert {c.type for c in classes} <= set(get_args(ErrorType))
    assert {c.status for c in classes} <= set(ERROR_STATUSES)
    for endpoint in ENDPOINTS.values():
        assert set(endpoint.errors) <= set(ERROR_STATUSES)


def test_success_responses_match_the_document(client: Any, doc: dict[str, Any], upstream: FakeUpstream) -> None:
    upstream.handler = provider
    embed = {"model": "openai/text-embedding-3-small", "input": ["a", "b"]}
    cases = [
        ("/v1/embeddings", embed),
        ("/api/v1/embeddings", {**embed, "encoding_format": "base64", "dimensions": 8}),
        ("/v1/embeddings", {"model": "cohere/embed-english-v3.0", "input": "q", "input_type": "query"}),
        ("/v1/embeddings", {"model": "google/gemini-embedding-001", "input": "q"}),  # usage.estimated
        ("/v1/rerank", {"model": "cohere/rerank-v3.5", "query": "q", "documents": ["a", {"text": "b"}]}),
        (
            "/v2/rerank",
            {"model": "cohere/rerank-v3.5", "query": "q", "documents": ["a", "b"], "return_documents": True},
        ),
        ("/api/v1/rerank", {"model": "voyage/rerank-2.5", "query": "q", "documents": ["a", "b", "c"], "top_n": 1}),
    ]
    bodies = []
    for path, body in cases:
        response = client.post(path, json=body, headers=auth())
        assert check(doc, "post", response) == 200, response.json()
        bodies.append(response.json())
    assert isinstance(bodies[0]["data"][0]["embedding"], list) and isinstance(bodies[1]["data"][0]["embedding"], str)
    assert bodies[3]["usage"]["estimated"] is True
    assert "search_units" in bodies[4]["usage"] and "document" not in bodies[4]["results"][0]
    assert bodies[5]["results"][0]["document"] == {"text": "a"} and "total_tokens" in bodies[6]["usage"]

    models = client.get("/v1/models", headers=auth())
    assert check(doc, "get", models) == 200
    kinds = {
        (m["type"], "deployments" in m, next(iter(set(m["pricing"]) - {"currency"}))) for m in models.json()["data"]
    }
    assert kinds == {  # every shape a model entry takes was validated
        ("embedding", False, "per_million_tokens"),
        ("embedding", True, "per_million_tokens"),
        ("rerank", False, "per_1k_searches"),
        ("rerank", True, "per_1k_searches"),
        ("rerank", False, "per_million_tokens"),
    }
    usage = client.get("/api/v1/usage", params={"start": "2020-01-01", "end": "2100-01-01"}, headers=auth())
    assert check(doc, "get", usage) == 400  # over 366 days
    today = datetime.now(UTC).date().isoformat()
    usage = client.get("/v1/usage", params={"start": today, "end": today}, headers=auth())
    assert check(doc, "get", usage) == 200 and usage.json()["data"]


def test_error_responses_match_the_document(
    client: Any, doc: dict[str, Any], upstream: FakeUpstream, services: Any
) -> None:
    from embedrank_tools.provision import create_key

    upstream.handler = provider
    ok = {"model": "cohere/embed-english-v3.0", "input": "x"}
    statuses = [
        check(doc, "post", client.post("/v1/embeddings", json=ok)),
        check(doc, "post", client.post("/v1/embeddings", json=ok, headers=auth("er-unknown"))),
        check(doc, "post", client.post("/v1/embeddings", json={**ok, "extra": 1}, headers=auth())),
        check(doc, "post", client.post("/v1/embeddings", content=b"{", headers=auth())),
        check(doc, "post", client.post("/v1/embeddings", json=ok, headers=auth(FREE_KEY))),
        check(doc, "post", client.post("/v1/embeddings", json={**ok, "model": "nope/none"}, headers=auth())),
        check(doc, "post", client.post("/v1/embeddings", json={**ok, "input": "wrong-key"}, headers=auth())),
        check(doc, "post", client.post("/v1/embeddings", json={**ok, "input": "refused"}, headers=auth())),
        check(doc, "post", client.post("/v1/rerank", json={"model": "cohere/rerank-v3.5"}, headers=auth())),
        check(doc, "get", client.get("/v1/models")),
        check(doc, "get", client.get("/v1/usage", params={"start": "2025-13-01"}, headers=auth())),
    ]
    assert statuses == [401, 401, 400, 400, 403, 404, 502, 400, 400, 401, 400]

    import boto3

    services.stores.put_plan({"name": "one", "allowed_models": "all", "limits": {"requests_per_minute": 1}})
    create_key(boto3.client("dynamodb"), services.settings, plan="one", name="one", key="er-one-" + "0" * 40)
    key = auth("er-one-" + "0" * 40)
    assert check(doc, "get", client.get("/v1/models", headers=key)) == 200
    assert check(doc, "post", client.post("/v1/embeddings", json=ok, headers=key)) == 429


def test_the_check_fails_on_an_undocumented_field(client: Any, doc: dict[str, Any], upstream: FakeUpstream) -> None:
    """The response schemas are closed: had the app sent one more field, the checks above would have failed."""
    upstream.handler = provider
    response = client.post(
        "/v1/embeddings", json={"model": "openai/text-embedding-3-small", "input": "a"}, headers=auth()
    )
    body = response.json()
    schema = {**doc["paths"]["/v1/embeddings"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]}
    validator = Draft202012Validator({**schema, "components": doc["components"]})
    validator.validate(body)
    assert not validator.is_valid({**body, "usage": {**body["usage"], "cached_tokens": 0}})
    assert not validator.is_valid({**body, "data": [{**body["data"][0], "embedding": None}]})


def test_handlers_do_not_import_the_openapi_builder() -> None:
    """Cold import budget: the document's builder is imported by its endpoint, never by a handler module."""
    code = (
        "import sys, embeddings_handler, rerank_handler, account_handler\nprint('embedrank.openapi' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "AWS_DEFAULT_REGION": "us-east-1",
            "PYTHONPATH": ":".join(
                str(ROOT / p)
                for p in ("layers/embedrank", "functions/embeddings", "functions/rerank", "functions/account")
            ),
        },
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "False"
