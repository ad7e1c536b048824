"""The request id: API Gateway's, whichever way the request reached the app, and never one a client made up."""

from __future__ import annotations

import json

from starlette.requests import Request

from embedrank.api.errors import request_id


def request(headers: dict[str, str], event: dict[str, object] | None = None) -> Request:
    scope: dict[str, object] = {
        "type": "http",
        "method": "POST",
        "path": "/v1/embeddings",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    if event is not None:
        scope["aws.event"] = event
    return Request(scope)


def test_mangums_event_gives_api_gateways_request_id() -> None:
    assert request_id(request({}, {"requestContext": {"requestId": "evt-1"}})) == "evt-1"


def test_the_lambda_web_adapters_header_gives_it_in_lambda() -> None:
    # given the request context the adapter forwards (it replaces any header of that name the client sent)
    forwarded = {"x-amzn-request-context": json.dumps({"requestId": "rest-api-req-9", "stage": "prod"})}
    # then in Lambda it is API Gateway's id; elsewhere the header is the client's own, and ignored
    assert request_id(request(forwarded), in_lambda=True) == "rest-api-req-9"
    assert request_id(request(forwarded), in_lambda=False) != "rest-api-req-9"


def test_a_malformed_context_gets_a_fresh_id() -> None:
    for value in ("not json", "[]", json.dumps({"requestId": 7})):
        rid = request_id(request({"x-amzn-request-context": value}), in_lambda=True)
        assert len(rid) == 32 and int(rid, 16) >= 0
