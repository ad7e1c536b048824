"""The request path's DynamoDB client (``embedrank.dynamodb``): boto3's answers and errors, botocore's signature,
legacy-mode retries, and kept-alive connections that survive a server closing them."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from embedrank.devaws import DevAws
from embedrank.dynamodb import PooledTransport, Signer, WireClient, endpoint_for

CREDS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
TEMPORARY = Credentials("ASIAEXAMPLE", "secret/with+chars", token="IQoJb3JpZ2luX2VjEJr//////////session")


@pytest.mark.parametrize("creds", [CREDS, TEMPORARY], ids=["static", "session-token"])
def test_the_signature_is_botocores(creds: Credentials) -> None:
    body = b'{"TableName":"t","Key":{"pk":{"S":"a"}}}'
    request = AWSRequest(
        method="POST",
        url="https://dynamodb.eu-west-1.amazonaws.com/",
        data=body,
        headers={"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "DynamoDB_20120810.GetItem"},
    )
    SigV4Auth(creds, "dynamodb", "eu-west-1").add_auth(request)
    when = datetime.strptime(request.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)

    ours = Signer("eu-west-1", creds.get_frozen_credentials).headers(
        "dynamodb.eu-west-1.amazonaws.com", "DynamoDB_20120810.GetItem", body, now=when
    )
    assert ours["authorization"] == request.headers["Authorization"]
    assert ours.get("x-amz-security-token") == request.headers.get("X-Amz-Security-Token")


def test_the_endpoint_follows_botocores_settings() -> None:
    assert endpoint_for("us-east-1", {}) == "https://dynamodb.us-east-1.amazonaws.com"
    assert endpoint_for("cn-north-1", {}) == "https://dynamodb.cn-north-1.amazonaws.com.cn"
    assert endpoint_for("us-east-1", {"AWS_ENDPOINT_URL": "http://127.0.0.1:4566/"}) == "http://127.0.0.1:4566"
    both = {"AWS_ENDPOINT_URL": "http://a:1", "AWS_ENDPOINT_URL_DYNAMODB": "http://b:2"}
    assert endpoint_for("us-east-1", both) == "http://b:2"  # the service's own setting wins, as in botocore


# -- the same calls through boto3 and through the client, on devaws (real HTTP) ------------------------------------


@pytest.fixture(scope="module")
def devaws() -> Iterator[DevAws]:
    with DevAws(port=0) as aws:
        yield aws


def fresh_table(aws: DevAws) -> Any:
    aws.dynamodb.tables.clear()
    config = Config(retries={"mode": "legacy", "max_attempts": 1})
    boto = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=aws.endpoint, config=config)
    boto.create_table(
        TableName="usage",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk")],
        BillingMode="PAY_PER_REQUEST",
    )
    return boto


def outcome(call: Any, **params: Any) -> Any:
    """An answer or an error, without what differs per call (request ids, headers, retry counts)."""
    try:
        answer = dict(call(**params))
    except ClientError as exc:
        # botocore repeats the message (``message`` or ``Message``) for the errors its model names; the client does not.
        error = {k: v for k, v in exc.response.items() if k not in ("ResponseMetadata", "message", "Message")}
        return ("error", error, exc.response["ResponseMetadata"]["HTTPStatusCode"])
    status = answer.pop("ResponseMetadata")["HTTPStatusCode"]
    return ("ok", answer, status)


def key(sk: str) -> dict[str, Any]:
    return {"pk": {"S": "key#a"}, "sk": {"S": sk}}


def bump(sk: str, bound: int) -> dict[str, Any]:
    return {
        "TableName": "usage",
        "Key": key(sk),
        "UpdateExpression": "ADD d :one SET #e = :e",
        "ConditionExpression": "attribute_not_exists(d) OR d < :bound",
        "ExpressionAttributeNames": {"#e": "expires_at"},
        "ExpressionAttributeValues": {":one": {"N": "1"}, ":e": {"N": "99"}, ":bound": {"N": str(bound)}},
        "ReturnValues": "ALL_NEW",
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }


def usage_write(sk: str) -> dict[str, Any]:
    return {
        "TransactItems": [
            {
                "Put": {
                    "TableName": "usage",
                    "Item": {**key(sk), "n": {"N": "1"}},
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            {
                "Update": {
                    "TableName": "usage",
                    "Key": key("total"),
                    "UpdateExpression": "ADD requests :one",
                    "ExpressionAttributeValues": {":one": {"N": "1"}},
                }
            },
        ]
    }


STEPS: list[tuple[str, dict[str, Any]]] = [
    ("update_item", bump("meter", 2)),  # admitted: ALL_NEW
    ("update_item", bump("meter", 2)),
    ("update_item", bump("meter", 2)),  # refused: the old item rides on the error
    ("get_item", {"TableName": "usage", "Key": key("meter")}),
    ("get_item", {"TableName": "usage", "Key": key("absent")}),
    ("transact_write_items", usage_write("req#1")),
    ("transact_write_items", usage_write("req#1")),  # a replay: cancelled, with the reasons
    ("transact_get_items", {"TransactItems": [{"Get": {"TableName": "usage", "Key": key("total")}}]}),
    ("get_item", {"TableName": "missing", "Key": key("x")}),
    ("update_item", {"TableName": "usage", "Key": key("x"), "UpdateExpression": "ADD"}),
]


def test_answers_and_errors_are_boto3s(devaws: DevAws) -> None:
    boto = fresh_table(devaws)
    by_boto = [outcome(getattr(boto, method), **params) for method, params in STEPS]
    fresh_table(devaws)
    wire = WireClient(
        PooledTransport(), region="us-east-1", credentials=CREDS.get_frozen_credentials, endpoint=devaws.endpoint
    )
    by_wire = [outcome(getattr(wire, method), **params) for method, params in STEPS]
    assert by_wire == by_boto
    codes = [answer["Error"]["Code"] if kind == "error" else kind for kind, answer, _ in by_wire]
    assert codes == ["ok", "ok", "ConditionalCheckFailedException", "ok", "ok", "ok", "TransactionCanceledException",
                     "ok", "ResourceNotFoundException", "ValidationException"]  # fmt: skip
    assert by_wire[2][1]["Item"]["d"] == {"N": "2"}
    assert [r["Code"] for r in by_wire[6][1]["CancellationReasons"]] == ["ConditionalCheckFailed", "None"]


# -- retries (botocore's legacy mode for DynamoDB) -----------------------------------------------------------------


def scripted(*answers: httpx.Response | Exception) -> tuple[WireClient, list[httpx.Request], list[float]]:
    requests: list[httpx.Request] = []
    sleeps: list[float] = []
    queue = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    client = WireClient(
        httpx.MockTransport(handler), region="us-east-1", credentials=CREDS.get_frozen_credentials, sleep=sleeps.append
    )
    return client, requests, sleeps


def aws_error(code: str, status: int = 400) -> httpx.Response:
    return httpx.Response(status, json={"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": code})


def test_throttling_and_5xx_are_retried_with_backoff_then_answered() -> None:
    ok = httpx.Response(200, json={"Attributes": {"d": {"N": "1"}}}, headers={"x-amzn-RequestId": "r-3"})
    client, requests, sleeps = scripted(
        aws_error("ProvisionedThroughputExceededException"), aws_error("InternalServerError", 500), ok
    )
    answer = client.update_item(TableName="usage", Key={})
    assert answer == {"Attributes": {"d": {"N": "1"}}, "ResponseMetadata": {"RequestId": "r-3", "HTTPStatusCode": 200}}
    assert len(requests) == 3 and len(sleeps) == 2
    assert 0 <= sleeps[0] <= 0.05 and 0 <= sleeps[1] <= 0.1  # 50 ms × 2^n × random
    assert requests[0].headers["x-amz-target"] == "DynamoDB_20120810.UpdateItem"
    assert requests[0].url == "https://dynamodb.us-east-1.amazonaws.com/"


def test_a_client_error_is_not_retried_and_reads_like_boto3s() -> None:
    client, requests, _ = scripted(aws_error("ConditionalCheckFailedException"))
    with pytest.raises(ClientError) as caught:
        client.update_item(TableName="usage", Key={})
    assert len(requests) == 1
    assert caught.value.response["Error"] == {
        "Code": "ConditionalCheckFailedException",
        "Message": "ConditionalCheckFailedException",
    }
    assert caught.value.operation_name == "UpdateItem"


def test_the_last_failure_surfaces_after_three_attempts() -> None:
    client, requests, _ = scripted(*[httpx.Response(503, text="<html>busy</html>")] * 3)
    with pytest.raises(ClientError) as caught:
        client.get_item(TableName="usage", Key={})
    assert len(requests) == 3 and caught.value.response["Error"]["Code"] == "HTTP503"

    refused = httpx.ConnectError("refused")
    client, requests, _ = scripted(refused, refused, refused)
    with pytest.raises(httpx.ConnectError):
        client.transact_write_items(TransactItems=[])
    assert len(requests) == 3


# -- kept-alive connections ------------------------------------------------------------------------------------------


class _Dynamo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    connections: set[int] = set()  # noqa: RUF012 - one server per test
    drop_after_answer = False
    delay = 0.0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        time.sleep(self.delay)
        self.connections.add(self.client_address[1])  # one local port per connection
        body = b'{"Item":{"n":{"N":"1"}}}'
        self.send_response(200)
        self.send_header("content-type", "application/x-amz-json-1.0")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        # Closing without saying so: what a load balancer does to an idle kept-alive connection.
        self.close_connection = self.drop_after_answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    _Dynamo.connections = set()
    _Dynamo.drop_after_answer = False
    _Dynamo.delay = 0.0
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Dynamo)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def pooled(server: ThreadingHTTPServer) -> tuple[WireClient, PooledTransport]:
    transport = PooledTransport()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    return WireClient(
        transport, region="us-east-1", credentials=CREDS.get_frozen_credentials, endpoint=endpoint
    ), transport


def test_one_connection_serves_call_after_call(server: ThreadingHTTPServer) -> None:
    client, transport = pooled(server)
    for _ in range(5):
        assert client.get_item(TableName="usage", Key={})["Item"] == {"n": {"N": "1"}}
    assert len(_Dynamo.connections) == 1
    transport.close()


def test_a_connection_the_server_closed_is_replaced_without_an_error(server: ThreadingHTTPServer) -> None:
    _Dynamo.drop_after_answer = True
    client, transport = pooled(server)
    sleeps: list[float] = []
    client._sleep = sleeps.append  # no retry may be spent on a stale connection
    for _ in range(3):
        assert client.get_item(TableName="usage", Key={})["Item"] == {"n": {"N": "1"}}
    assert len(_Dynamo.connections) == 3 and sleeps == []
    transport.close()


def test_threads_share_the_pool(server: ThreadingHTTPServer) -> None:
    client, transport = pooled(server)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(20):
                client.get_item(TableName="usage", Key={})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and 1 <= len(_Dynamo.connections) <= 8
    transport.close()


def test_a_slow_answer_is_a_read_timeout_retried_like_any_transport_error(server: ThreadingHTTPServer) -> None:
    _Dynamo.delay = 0.3
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    sleeps: list[float] = []
    client = WireClient(
        PooledTransport(read_timeout=0.1),
        region="us-east-1",
        credentials=CREDS.get_frozen_credentials,
        endpoint=endpoint,
        sleep=sleeps.append,
    )
    with pytest.raises(httpx.ReadTimeout):
        client.get_item(TableName="usage", Key={})
    assert len(sleeps) == 2  # three attempts
