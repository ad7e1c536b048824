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
import orjson
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from botocore.parsers import ResponseParserError

from embedrank.devaws import DevAws
from embedrank.dynamodb import PooledTransport, Signer, WireClient, configured_endpoint, endpoint_for

CREDS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
TEMPORARY = Credentials("ASIAEXAMPLE", "secret/with+chars", token="IQoJb3JpZ2luX2VjEJr//////////session")


@pytest.mark.parametrize("path", ["/", "/ddb/"], ids=["root", "endpoint-with-a-path"])
@pytest.mark.parametrize("creds", [CREDS, TEMPORARY], ids=["static", "session-token"])
def test_the_signature_is_botocores(creds: Credentials, path: str) -> None:
    body = b'{"TableName":"t","Key":{"pk":{"S":"a"}}}'
    request = AWSRequest(
        method="POST",
        url=f"https://dynamodb.eu-west-1.amazonaws.com{path}",
        data=body,
        headers={"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "DynamoDB_20120810.GetItem"},
    )
    SigV4Auth(creds, "dynamodb", "eu-west-1").add_auth(request)
    when = datetime.strptime(request.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)

    ours = Signer("eu-west-1", creds.get_frozen_credentials).headers(
        "dynamodb.eu-west-1.amazonaws.com", "DynamoDB_20120810.GetItem", body, now=when, path=path
    )
    assert ours["authorization"] == request.headers["Authorization"]
    assert ours.get("x-amz-security-token") == request.headers.get("X-Amz-Security-Token")


REGIONS = ["us-east-1", "eu-west-1", "cn-north-1", "us-gov-west-1", "us-iso-east-1", "us-isob-east-1", "eusc-de-east-1"]


@pytest.mark.parametrize("fips", [False, True], ids=["standard", "fips"])
@pytest.mark.parametrize("region", REGIONS)
def test_the_public_endpoint_is_the_one_boto3_resolves(region: str, fips: bool) -> None:
    config = Config(use_fips_endpoint=fips)
    boto = boto3.client("dynamodb", region_name=region, config=config, aws_access_key_id="x", aws_secret_access_key="x")
    assert endpoint_for(region, fips=fips) == boto.meta.endpoint_url


class Profile:
    """What ``configured_endpoint`` reads of a botocore session."""

    def __init__(self, profile: dict[str, Any], full: dict[str, Any] | None = None, ignore: bool = False) -> None:
        self.profile, self.full_config, self.ignore = profile, full or {}, ignore

    def get_config_variable(self, name: str) -> Any:
        assert name == "ignore_configured_endpoint_urls"
        return self.ignore

    def get_scoped_config(self) -> dict[str, Any]:
        return self.profile


def test_a_configured_endpoint_is_found_where_botocore_looks_in_its_order() -> None:
    services = {"services": {"local": {"dynamodb": {"endpoint_url": "http://svc:3"}}}}
    profile = {"services": "local", "endpoint_url": "http://global:4"}
    both = {"AWS_ENDPOINT_URL": "http://a:1", "AWS_ENDPOINT_URL_DYNAMODB": "http://b:2"}
    assert configured_endpoint(Profile(profile, services), both) == "http://b:2"
    assert configured_endpoint(Profile(profile, services), {"AWS_ENDPOINT_URL": "http://a:1"}) == "http://a:1"
    assert configured_endpoint(Profile(profile, services), {}) == "http://svc:3"
    assert configured_endpoint(Profile(profile), {}) == "http://global:4"
    assert configured_endpoint(Profile({}), {}) is None
    assert configured_endpoint(Profile(profile, services, ignore=True), both) is None


def test_an_endpoint_with_a_path_is_sent_to_and_signed_for_that_path() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    client = WireClient(
        httpx.MockTransport(handler), region="us-east-1", credentials=CREDS.get_frozen_credentials,
        endpoint="http://proxy.internal:8000/ddb",
    )  # fmt: skip
    client.get_item(TableName="usage", Key={})
    [sent] = seen
    assert sent.url.raw_path == b"/ddb/"
    when = datetime.strptime(sent.headers["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    signer = Signer("us-east-1", CREDS.get_frozen_credentials)
    for path, matches in (("/ddb/", True), ("/", False)):  # botocore signs that path alike: see the test above
        expected = signer.headers("proxy.internal:8000", "DynamoDB_20120810.GetItem", sent.content, now=when, path=path)
        assert (sent.headers["authorization"] == expected["authorization"]) is matches


# -- the same calls through boto3 and through the client, on devaws (real HTTP) ------------------------------------


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


def test_throttling_and_5xx_are_retried_like_botocores_legacy_mode_then_answered() -> None:
    ok = httpx.Response(200, json={"Attributes": {"d": {"N": "1"}}}, headers={"x-amzn-RequestId": "r-4"})
    client, requests, sleeps = scripted(
        aws_error("ProvisionedThroughputExceededException"), aws_error("InternalServerError", 500),
        aws_error("ThrottlingException"), ok,
    )  # fmt: skip
    answer = client.update_item(TableName="usage", Key={})
    assert answer == {"Attributes": {"d": {"N": "1"}}, "ResponseMetadata": {"RequestId": "r-4", "HTTPStatusCode": 200}}
    assert len(requests) == 4 and sleeps == [0.05, 0.1, 0.2]  # DynamoDB's base in botocore's _retry.json
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
    client, requests, _ = scripted(httpx.Response(501, text="not implemented"))
    with pytest.raises(ClientError):
        client.get_item(TableName="usage", Key={})
    assert len(requests) == 1  # 501 is not among botocore's retried statuses


def test_the_last_failure_surfaces_after_four_attempts_as_botocore_would_raise_it() -> None:
    client, requests, _ = scripted(*[httpx.Response(503, text="<html>busy</html>")] * 4)
    with pytest.raises(ClientError) as caught:
        client.get_item(TableName="usage", Key={})
    assert len(requests) == 4 and caught.value.response["Error"]["Code"] == "HTTP503"

    for failure, raised in (
        (httpx.ConnectError("refused"), EndpointConnectionError),
        (httpx.ConnectTimeout("slow"), ConnectTimeoutError),
        (httpx.ReadTimeout("slow"), ReadTimeoutError),
        (httpx.ReadError("reset"), ConnectionClosedError),
    ):
        client, requests, _ = scripted(*[failure] * 4)
        with pytest.raises(raised) as error:
            client.transact_write_items(TransactItems=[])
        assert len(requests) == 4 and isinstance(error.value, BotoCoreError)  # what the CLI and callers catch


def test_an_answer_that_is_not_json_is_an_error_not_an_empty_item() -> None:
    client, _, _ = scripted(httpx.Response(200, text="<html>captive portal</html>"))
    with pytest.raises(ResponseParserError):
        client.get_item(TableName="usage", Key={})


def test_a_transaction_carries_one_idempotency_token_across_retries() -> None:
    client, requests, _ = scripted(aws_error("InternalServerError", 500), httpx.Response(200, json={}))
    client.transact_write_items(TransactItems=[])
    tokens = {orjson.loads(r.content)["ClientRequestToken"] for r in requests}
    assert len(requests) == 2 and len(tokens) == 1
    client, requests, _ = scripted(httpx.Response(200, json={}))
    client.transact_write_items(TransactItems=[], ClientRequestToken="mine")
    assert orjson.loads(requests[0].content)["ClientRequestToken"] == "mine"


# -- kept-alive connections ------------------------------------------------------------------------------------------


class _Dynamo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    connections: set[int] = set()  # noqa: RUF012 - one server per test
    drop_after_answer = False
    delay = 0.0
    received = 0
    hang_up_on: set[int] = set()  # noqa: RUF012

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        seen = _Dynamo.received
        _Dynamo.received += 1
        if seen in self.hang_up_on:
            self.close_connection = True
            return
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
    _Dynamo.received = 0
    _Dynamo.hang_up_on = set()
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


def test_a_connection_the_server_closed_while_idle_is_replaced_without_an_error(server: ThreadingHTTPServer) -> None:
    _Dynamo.drop_after_answer = True
    client, transport = pooled(server)
    sleeps: list[float] = []
    client._sleep = sleeps.append  # no attempt may be spent on a connection known to be closed
    for _ in range(3):
        assert client.get_item(TableName="usage", Key={})["Item"] == {"n": {"N": "1"}}
        time.sleep(0.05)  # idle: the server's close arrives
    assert len(_Dynamo.connections) == 3 and sleeps == []
    transport.close()


def test_a_request_the_server_dropped_unanswered_is_sent_again_only_as_the_clients_next_attempt(
    server: ThreadingHTTPServer,
) -> None:
    _Dynamo.hang_up_on = {1}  # the second request: read, then the connection closed without an answer
    client, transport = pooled(server)
    sleeps: list[float] = []
    client._sleep = sleeps.append
    client.get_item(TableName="usage", Key={})
    client.get_item(TableName="usage", Key={})
    assert _Dynamo.received == 3 and sleeps == [0.05]
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
    with pytest.raises(ReadTimeoutError):
        client.get_item(TableName="usage", Key={})
    assert len(sleeps) == 3  # four attempts
