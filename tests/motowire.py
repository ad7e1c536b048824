"""moto behind an ``httpx`` transport, for ``embedrank.dynamodb``'s client: the request path's DynamoDB calls reach
the same in-process moto backends that ``mock_aws`` gives boto3, through the transport the client takes."""

from __future__ import annotations

import httpx
from botocore.awsrequest import AWSPreparedRequest, HTTPHeaders


class MotoTransport(httpx.BaseTransport):
    def handle_request(self, request: httpx.Request) -> httpx.Response:
        from moto.core.models import botocore_stubber

        if not botocore_stubber.enabled:
            raise AssertionError("a DynamoDB call outside mock_aws: the test would reach no AWS")
        headers = HTTPHeaders()
        for name, value in request.headers.items():
            headers[name] = value
        prepared = AWSPreparedRequest("POST", str(request.url), headers, request.read(), stream_output=False)
        answer = botocore_stubber.process_request(prepared)
        assert answer is not None, f"moto has no backend for {request.url}"
        status, answer_headers, body = answer
        content = body if isinstance(body, bytes) else str(body).encode()
        return httpx.Response(status, headers=dict(answer_headers), content=content, request=request)
