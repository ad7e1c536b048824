"""The request path's DynamoDB client: DynamoDB's JSON protocol, signed with SigV4, over kept-alive connections.

Every request makes two DynamoDB calls (admission, the usage write), and through boto3 each cost ~1 ms of CPU in
botocore on the dev machine (serializer, event hooks, endpoint rules, urllib3), against ~0.25 ms here for the same
``UpdateItem`` (README, Development, has the figures). Under ``make serve`` that CPU also held the GIL while the next
request waited for it. So the calls a request makes (``GetItem`` for a key or plan on a cache miss, ``UpdateItem``,
``TransactWriteItems``, ``TransactGetItems``) come here, wherever ``Stores`` makes them (the CLI's plan reads and usage
replay too); every other call keeps boto3.

Callers cannot tell the two apart: the answer is boto3's low-level answer (DynamoDB's JSON as sent: these calls
never carry binary attributes, the one type boto3 decodes), with ``ResponseMetadata``; a service error is botocore's
``ClientError`` with the same ``response`` (``Error.Code``, ``Error.Message``, ``CancellationReasons``, ``Item``), a
connection failure botocore's ``EndpointConnectionError``, ``ConnectTimeoutError``, ``ReadTimeoutError`` or
``ConnectionClosedError``, an unreadable answer its ``ResponseParserError``. ``TransactWriteItems`` gets a
``ClientRequestToken`` when it has none, as boto3 adds one, so a retried transaction is applied once.
``tests/test_dynamodb.py`` checks answers and errors against boto3 on devaws, and the signature against botocore's.

Retries are botocore's legacy mode for DynamoDB (``_retry.json``): 4 attempts on throttling codes, 429/5xx/509 and
connection errors, 50, 100 then 200 ms apart. Credentials and region come from botocore's chain (in Lambda, the
environment); the endpoint from the same settings botocore reads (``AWS_ENDPOINT_URL_DYNAMODB``,
``AWS_ENDPOINT_URL``, a profile's ``services`` or ``endpoint_url``, unless ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS``),
else the region's own (FIPS when ``AWS_USE_FIPS_ENDPOINT``), its DNS suffix from botocore's partition data.
``AWS_CA_BUNDLE`` is honoured; proxies and dual-stack endpoints are not supported. Tests inject an
``httpx.BaseTransport`` (``use_transport``); when the X-Ray SDK is on, each call is a ``dynamodb`` subsegment made
by the SDK's own botocore metadata processor, as boto3's calls are.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import os
import re
import select
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import httpx
import orjson

if TYPE_CHECKING:
    from botocore.exceptions import BotoCoreError, ClientError

API_VERSION = "DynamoDB_20120810"
CONTENT_TYPE = "application/x-amz-json-1.0"
ATTEMPTS = 4  # botocore's legacy mode: max_attempts=3 retries after the first try
BASE_DELAY = 0.05  # DynamoDB's own base in botocore's _retry.json: 50, 100, 200 ms
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504, 509})
RETRY_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "ReplicatedWriteConflictException",
    }
)


def endpoint_for(region: str, *, fips: bool = False) -> str:
    """The region's public endpoint, its DNS suffix from botocore's partition data (aws, aws-cn, GovCloud, ISO)."""
    import json
    from importlib.resources import files

    partitions = json.loads(files("botocore").joinpath("data/partitions.json").read_text())["partitions"]
    suffix = "amazonaws.com"
    for partition in partitions:
        if region in partition["regions"] or re.match(partition["regionRegex"], region):
            suffix = partition["outputs"]["dnsSuffix"]
            break
    return f"https://dynamodb{'-fips' if fips else ''}.{region}.{suffix}"


def configured_endpoint(session: Any, environ: Mapping[str, str] = os.environ) -> str | None:
    """The endpoint botocore would take from settings, in its order: the service's environment variable, the global
    one, the profile's ``services`` section, the profile's ``endpoint_url``; none when told to ignore them."""
    if session.get_config_variable("ignore_configured_endpoint_urls"):
        return None
    profile = session.get_scoped_config()
    services = session.full_config.get("services", {}).get(profile.get("services", ""), {})
    for value in (
        environ.get("AWS_ENDPOINT_URL_DYNAMODB"),
        environ.get("AWS_ENDPOINT_URL"),
        (services.get("dynamodb") or {}).get("endpoint_url"),
        profile.get("endpoint_url"),
    ):
        if value:
            return str(value)
    return None


class Signer:
    """SigV4 for DynamoDB's POST-only protocol: every header signed, the signing key derived once per day."""

    def __init__(self, region: str, credentials: Callable[[], Any]) -> None:
        self.region = region
        self._credentials = credentials  # botocore's Credentials.get_frozen_credentials: refreshes when due
        self._keys: dict[tuple[str, str], bytes] = {}

    def headers(
        self, host: str, target: str, body: bytes, now: datetime | None = None, path: str = "/"
    ) -> dict[str, str]:
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
        canonical = "POST\n{}\n\n{}\n{}\n{}".format(
            path, "".join(f"{name}:{value}\n" for name, value in signed), names, hashlib.sha256(body).hexdigest()
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
        self._url = httpx.URL((endpoint or endpoint_for(region)).rstrip("/") + "/")
        self._host = self._url.netloc.decode("ascii")
        self._path = self._url.raw_path.decode("ascii")
        self._signer = Signer(region, credentials)
        self._sleep = sleep
        self.meta = SimpleNamespace(region_name=region)  # what the X-Ray SDK's metadata processor reads
        self.tracing = False

    def get_item(self, **params: Any) -> dict[str, Any]:
        return self.call("GetItem", params)

    def update_item(self, **params: Any) -> dict[str, Any]:
        return self.call("UpdateItem", params)

    def transact_write_items(self, **params: Any) -> dict[str, Any]:
        # boto3 fills this idempotency token in: a retry of a transaction that was applied is then applied once.
        params.setdefault("ClientRequestToken", str(uuid.uuid4()))
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
            headers = self._signer.headers(self._host, target, body, path=self._path)
            if self.tracing:
                _inject_trace_header(headers)
            try:
                response = self._transport.handle_request(
                    httpx.Request("POST", self._url, headers=headers, content=body)
                )
                content = response.read()
            except httpx.TransportError as exc:
                if last:
                    raise _connection_error(exc, str(self._url)) from exc
            else:
                metadata = {
                    "RequestId": response.headers.get("x-amzn-requestid", ""),
                    "HTTPStatusCode": response.status_code,
                }
                answer = _json(content)
                if response.status_code < 300:
                    if answer is None:
                        from botocore.parsers import ResponseParserError

                        raise ResponseParserError(f"DynamoDB answered {operation} with a body that is not JSON")
                    answer["ResponseMetadata"] = metadata
                    return answer
                error = _client_error(operation, answer or {}, metadata)
                code = error.response["Error"]["Code"]
                if last or not (response.status_code in RETRY_STATUSES or code in RETRY_CODES):
                    raise error
            self._sleep(BASE_DELAY * 2**attempt)
        raise AssertionError("unreachable")


def _json(content: bytes) -> dict[str, Any] | None:
    """The answer as an object, or None for anything else (a proxy's HTML error page, a cut-off body)."""
    try:
        answer = orjson.loads(content)
    except orjson.JSONDecodeError:
        return None
    return answer if isinstance(answer, dict) else None


def _connection_error(exc: httpx.TransportError, endpoint: str) -> BotoCoreError:
    """botocore's exception for the same failure, so callers that catch ``BotoCoreError`` catch these too."""
    from botocore import exceptions

    error: type[BotoCoreError]
    if isinstance(exc, httpx.ConnectTimeout):
        error = exceptions.ConnectTimeoutError
    elif isinstance(exc, httpx.ConnectError):
        error = exceptions.EndpointConnectionError
    elif isinstance(exc, httpx.TimeoutException):
        error = exceptions.ReadTimeoutError
    else:
        error = exceptions.ConnectionClosedError
    return error(endpoint_url=endpoint, error=str(exc))


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


class PooledTransport(httpx.BaseTransport):
    """Blocking HTTP/1.1 with kept-alive connections (``http.client``), safe across threads: each request takes an
    idle connection or opens one, and gives it back when the answer was read whole. httpcore's sync pool cost twice
    the CPU for these small exchanges (0.4 against 0.2 ms per ``UpdateItem`` on the dev machine).

    Like urllib3 under botocore, an idle connection is checked before reuse (one the server closed reads as ready)
    and a request is never sent twice here: any failure is the client's to retry, as one of its attempts."""

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
            # The CA bundle botocore would use when one is configured; else the system's.
            self._ssl = self._ssl or ssl.create_default_context(cafile=os.environ.get("AWS_CA_BUNDLE") or None)
            conn = http.client.HTTPSConnection(url.host, url.port, timeout=self._connect_timeout, context=self._ssl)
        else:
            conn = http.client.HTTPConnection(url.host, url.port, timeout=self._connect_timeout)
        try:
            conn.connect()
            assert conn.sock is not None
            conn.sock.settimeout(self._read_timeout)
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except BaseException:
            conn.close()
            raise
        return conn

    def _take(self) -> http.client.HTTPConnection | None:
        while True:
            with self._lock:
                if not self._idle:
                    return None
                conn = self._idle.pop()
            # Nothing is due on an idle connection: readable means closed by the server (or garbage). Then next.
            if conn.sock is not None and not select.select([conn.sock], [], [], 0)[0]:
                return conn
            conn.close()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        conn = self._take()
        if conn is None:
            try:
                conn = self._open(request.url)
            except TimeoutError:
                raise httpx.ConnectTimeout("connecting to DynamoDB timed out", request=request) from None
            except OSError as exc:
                raise httpx.ConnectError(f"{type(exc).__name__} connecting to DynamoDB", request=request) from None
        try:
            conn.request(request.method, request.url.raw_path.decode("ascii"), request.read(), dict(request.headers))
            answer = conn.getresponse()
            content = answer.read()
        except TimeoutError:
            conn.close()
            raise httpx.ReadTimeout("DynamoDB did not answer in time", request=request) from None
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise httpx.ReadError(f"{type(exc).__name__} talking to DynamoDB", request=request) from None
        except BaseException:
            conn.close()
            raise
        response = httpx.Response(answer.status, headers=answer.getheaders(), content=content, request=request)
        if not answer.will_close:
            with self._lock:
                if len(self._idle) < self._max_idle:
                    self._idle.append(conn)
                    return response
        conn.close()
        return response

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
                fips = bool(session.get_config_variable("use_fips_endpoint"))
                built = WireClient(
                    _transport.get("default") or PooledTransport(),
                    region=region,
                    credentials=credentials.get_frozen_credentials if credentials else (lambda: None),
                    endpoint=configured_endpoint(session) or endpoint_for(region, fips=fips),
                )
                from .observability import tracing_enabled

                built.tracing = tracing_enabled()
                _client["default"] = built
    return built
