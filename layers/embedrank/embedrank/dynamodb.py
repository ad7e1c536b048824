"""The request path's DynamoDB client: DynamoDB's JSON protocol, signed with SigV4, over kept-alive connections.

Every request makes two DynamoDB calls (admission, the usage write), and through boto3 each cost ~1 ms of CPU in
botocore on the dev machine (serializer, event hooks, endpoint rules, urllib3), against ~0.25 ms here for the same
``UpdateItem`` (README, Development, has the figures). Under ``make serve`` that CPU also held the GIL
while the next request waited for it. So the calls a request makes (``GetItem`` for a key or plan on a cache miss,
``UpdateItem``, ``TransactWriteItems``, ``TransactGetItems``) come here; the admin paths keep boto3.

Callers cannot tell the two apart: the answer is boto3's low-level answer (DynamoDB's JSON as sent: these calls
never carry binary attributes, the one type boto3 decodes), with ``ResponseMetadata``; an error is botocore's
``ClientError`` with the same ``response`` (``Error.Code``, ``Error.Message``, ``CancellationReasons``, ``Item``).
``tests/test_dynamodb.py`` checks both against boto3 on devaws, and the signature against botocore's signer.

Like botocore's legacy retry mode for DynamoDB: 3 attempts on throttling, 5xx and connection errors, waiting
50 ms × 2^n × random(0, 1) between them. Credentials and region come from botocore's usual chain (in Lambda, the
environment); the endpoint from ``AWS_ENDPOINT_URL_DYNAMODB`` or ``AWS_ENDPOINT_URL``, else the region's public one.
Tests inject an ``httpx.BaseTransport`` (``use_transport``); when the X-Ray SDK is on, each call is a ``dynamodb``
subsegment made by the SDK's own botocore metadata processor, as boto3's calls are.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import os
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import httpx
import orjson

if TYPE_CHECKING:
    from botocore.exceptions import ClientError

API_VERSION = "DynamoDB_20120810"
CONTENT_TYPE = "application/x-amz-json-1.0"
ATTEMPTS = 3
BASE_DELAY = 0.05
RETRYABLE = frozenset(
    {
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionInProgressException",
    }
)


def endpoint_for(region: str, environ: dict[str, str] | os._Environ[str] = os.environ) -> str:
    configured = environ.get("AWS_ENDPOINT_URL_DYNAMODB") or environ.get("AWS_ENDPOINT_URL")
    if configured:
        return configured.rstrip("/")
    return f"https://dynamodb.{region}.amazonaws.com" + (".cn" if region.startswith("cn-") else "")


class Signer:
    """SigV4 for DynamoDB's POST-only protocol: every header signed, the signing key derived once per day."""

    def __init__(self, region: str, credentials: Callable[[], Any]) -> None:
        self.region = region
        self._credentials = credentials  # botocore's Credentials.get_frozen_credentials: refreshes when due
        self._keys: dict[tuple[str, str], bytes] = {}

    def headers(self, host: str, target: str, body: bytes, now: datetime | None = None) -> dict[str, str]:
        creds = self._credentials()
        if creds is None:
            from botocore.exceptions import NoCredentialsError

            raise NoCredentialsError
        amz_date = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
        day = amz_date[:8]
        scope = f"{day}/{self.region}/dynamodb/aws4_request"
        # Signed in name order; the session token (always there in Lambda) is signed too, as botocore does.
        signed = [("content-type", CONTENT_TYPE), ("host", host), ("x-amz-date", amz_date)]
        if creds.token:
            signed.append(("x-amz-security-token", creds.token))
        signed.append(("x-amz-target", target))
        names = ";".join(name for name, _ in signed)
        canonical = "POST\n/\n\n{}\n{}\n{}".format(
            "".join(f"{name}:{value}\n" for name, value in signed), names, hashlib.sha256(body).hexdigest()
        )
        to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        key = self._keys.get((creds.secret_key, day))
        if key is None:
            key = ("AWS4" + creds.secret_key).encode()
            for part in (day, self.region, "dynamodb", "aws4_request"):
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            self._keys = {(creds.secret_key, day): key}  # one entry: yesterday's key and a rotated secret go
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        headers = dict(signed)
        headers["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={creds.access_key}/{scope}, SignedHeaders={names}, Signature={signature}"
        )
        return headers


class WireClient:
    """The four calls, each taking boto3's keyword arguments and returning boto3's answer."""

    def __init__(
        self,
        transport: httpx.BaseTransport,
        *,
        region: str,
        credentials: Callable[[], Any],
        endpoint: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._transport = transport
        self._url = httpx.URL((endpoint or endpoint_for(region)) + "/")
        self._host = self._url.netloc.decode("ascii")
        self._signer = Signer(region, credentials)
        self._sleep = sleep
        self.meta = SimpleNamespace(region_name=region)  # what the X-Ray SDK's metadata processor reads
        self.tracing = False

    def get_item(self, **params: Any) -> dict[str, Any]:
        return self.call("GetItem", params)

    def update_item(self, **params: Any) -> dict[str, Any]:
        return self.call("UpdateItem", params)

    def transact_write_items(self, **params: Any) -> dict[str, Any]:
        return self.call("TransactWriteItems", params)

    def transact_get_items(self, **params: Any) -> dict[str, Any]:
        return self.call("TransactGetItems", params)

    def call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        if not self.tracing:
            return self._send(operation, params)
        from aws_xray_sdk.core import xray_recorder
        from aws_xray_sdk.ext.boto_utils import aws_meta_processor

        answer: dict[str, Any] = xray_recorder.record_subsegment(
            self._send,
            self,
            (operation, params),
            {},
            name="dynamodb",
            namespace="aws",
            meta_processor=aws_meta_processor,
        )
        return answer

    def _send(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        body = orjson.dumps(params)
        target = f"{API_VERSION}.{operation}"
        for attempt in range(ATTEMPTS):
            last = attempt == ATTEMPTS - 1
            headers = self._signer.headers(self._host, target, body)
            if self.tracing:
                _inject_trace_header(headers)
            try:
                response = self._transport.handle_request(
                    httpx.Request("POST", self._url, headers=headers, content=body)
                )
                content = response.read()
            except httpx.TransportError:
                if last:
                    raise
            else:
                answer = _json(content)
                metadata = {
                    "RequestId": response.headers.get("x-amzn-requestid", ""),
                    "HTTPStatusCode": response.status_code,
                }
                if response.status_code < 400:
                    answer["ResponseMetadata"] = metadata
                    return answer
                error = _client_error(operation, answer, metadata)
                if last or not (response.status_code >= 500 or error.response["Error"]["Code"] in RETRYABLE):
                    raise error
            self._sleep(BASE_DELAY * (2**attempt) * random.random())
        raise AssertionError("unreachable")


def _json(content: bytes) -> dict[str, Any]:
    try:
        answer = orjson.loads(content) if content else {}
    except orjson.JSONDecodeError:
        return {}  # a proxy's HTML error page: the status alone says what happened
    return answer if isinstance(answer, dict) else {}


def _client_error(operation: str, body: dict[str, Any], metadata: dict[str, Any]) -> ClientError:
    """botocore's ``ClientError`` as boto3 raises it: the code after the ``#`` of ``__type``, the modeled fields
    (``CancellationReasons``, ``Item``) beside ``Error``. (botocore also repeats the message as ``message`` or
    ``Message`` for the errors its model names; nothing here reads it.)"""
    from botocore.exceptions import ClientError

    code = str(body.pop("__type", "")).rpartition("#")[2] or f"HTTP{metadata['HTTPStatusCode']}"
    message = str(body.pop("message", body.pop("Message", "")))
    response: Any = {**body, "Error": {"Code": code, "Message": message}, "ResponseMetadata": metadata}
    return ClientError(response, operation)


def _inject_trace_header(headers: dict[str, str]) -> None:
    from aws_xray_sdk.core import xray_recorder
    from aws_xray_sdk.core.exceptions.exceptions import SegmentNotFoundException
    from aws_xray_sdk.ext.util import inject_trace_header

    try:
        subsegment = xray_recorder.current_subsegment()
    except SegmentNotFoundException:
        return
    if subsegment is not None:
        inject_trace_header(headers, subsegment)


class _Stale(Exception):
    """A connection that failed before any answer came: on a kept-alive one, almost always the server having closed
    it while idle, so the request is sent once more on a fresh connection (as botocore and urllib3 do)."""


class PooledTransport(httpx.BaseTransport):
    """Blocking HTTP/1.1 with kept-alive connections (``http.client``), safe across threads: each request takes an
    idle connection or opens one, and gives it back when the answer was read whole. httpcore's sync pool cost twice
    the CPU for these small exchanges (0.4 against 0.2 ms per ``UpdateItem`` on the dev machine)."""

    def __init__(self, connect_timeout: float = 2.0, read_timeout: float = 5.0, max_idle: int = 32) -> None:
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._max_idle = max_idle
        self._ssl: ssl.SSLContext | None = None

    def _open(self, url: httpx.URL) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection
        if url.scheme == "https":
            self._ssl = self._ssl or ssl.create_default_context()
            conn = http.client.HTTPSConnection(url.host, url.port, timeout=self._connect_timeout, context=self._ssl)
        else:
            conn = http.client.HTTPConnection(url.host, url.port, timeout=self._connect_timeout)
        conn.connect()
        assert conn.sock is not None
        conn.sock.settimeout(self._read_timeout)
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        headers = dict(request.headers)
        body = request.read()
        if conn is not None:
            try:
                return self._exchange(conn, request, headers, body)
            except _Stale:
                pass  # closed by the server while idle, before it saw this request: sent again on a fresh one
        try:
            conn = self._open(request.url)
        except TimeoutError:
            raise httpx.ConnectTimeout("connecting to DynamoDB timed out", request=request) from None
        except OSError as exc:
            raise httpx.ConnectError(f"{type(exc).__name__} connecting to DynamoDB", request=request) from None
        try:
            return self._exchange(conn, request, headers, body)
        except _Stale:
            raise httpx.RemoteProtocolError(
                "DynamoDB closed the connection without answering", request=request
            ) from None

    def _exchange(
        self, conn: http.client.HTTPConnection, request: httpx.Request, headers: dict[str, str], body: bytes
    ) -> httpx.Response:
        """One request on ``conn``; ``_Stale`` when it failed before any answer came, so it can be sent again."""
        try:
            try:
                conn.request(request.method, request.url.raw_path.decode("ascii"), body, headers)
                answer = conn.getresponse()
            except (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine):
                raise _Stale from None
            content = answer.read()
        except _Stale:
            conn.close()
            raise
        except TimeoutError:
            conn.close()
            raise httpx.ReadTimeout("DynamoDB did not answer in time", request=request) from None
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise httpx.ReadError(f"{type(exc).__name__} reading DynamoDB's answer", request=request) from None
        if not answer.will_close:
            with self._lock:
                if len(self._idle) < self._max_idle:
                    self._idle.append(conn)
                    return httpx.Response(answer.status, headers=answer.getheaders(), content=content, request=request)
        conn.close()
        return httpx.Response(answer.status, headers=answer.getheaders(), content=content, request=request)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


_client: dict[str, WireClient] = {}
_client_lock = threading.Lock()
_transport: dict[str, httpx.BaseTransport] = {}


def use_transport(transport: httpx.BaseTransport | None) -> None:
    """The transport the process-wide client sends through (tests: moto in-process); None for the real one."""
    with _client_lock:
        _client.clear()
        _transport.clear()
        if transport is not None:
            _transport["default"] = transport


def client() -> WireClient:
    """The process-wide client, built on first use from botocore's credential chain and region settings."""
    built = _client.get("default")
    if built is None:
        with _client_lock:
            built = _client.get("default")
            if built is None:
                import botocore.session

                session = botocore.session.get_session()
                credentials = session.get_credentials()
                region = session.get_config_variable("region")
                if not region:
                    from botocore.exceptions import NoRegionError

                    raise NoRegionError  # as boto3 would: a guessed region would only fail later, less clearly
                built = WireClient(
                    _transport.get("default") or PooledTransport(),
                    region=region,
                    credentials=credentials.get_frozen_credentials if credentials else (lambda: None),
                )
                from .observability import tracing_enabled

                built.tracing = tracing_enabled()
                _client["default"] = built
    return built
