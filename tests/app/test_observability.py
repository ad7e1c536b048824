"""Metrics (EMF, one document per request) and the X-Ray tracer (Lambda only, subsegments per upstream and AWS call)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from conftest import DEV_KEY, EVENTS, ROOT, FakeUpstream
from embedrank import observability
from fakes import openai_answer

PYTHONPATH = ":".join(
    str(ROOT / p)
    for p in (
        "layers/embedrank",
        "tools",
        "functions/embeddings",
        "functions/rerank",
        "functions/account",
        "tests/support",
    )
)
LAMBDA_ENV = {
    "AWS_LAMBDA_FUNCTION_NAME": "EmbeddingsFunction",
    "LAMBDA_TASK_ROOT": "/var/task",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
}


def run_python(code: str, env: dict[str, str], *args: str) -> str:
    """``code`` in a fresh interpreter with only the layer, the functions and tests/ on the path; its last line."""
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": PYTHONPATH, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


# -- metrics --------------------------------------------------------------------------------------------------------


@pytest.fixture
def emit_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(observability, "EMIT_METRICS", True)


def emf_documents(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{") and '"_aws"' in line]


def test_metrics_are_on_in_lambda_only_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_LAMBDA_FUNCTION_NAME", "EMBEDRANK_METRICS", "POWERTOOLS_METRICS_DISABLED", "POWERTOOLS_DEV"):
        monkeypatch.delenv(name, raising=False)
    assert not observability.metrics_enabled() and not observability.EMIT_METRICS  # tests and `make serve`
    monkeypatch.setenv("EMBEDRANK_METRICS", "1")
    assert observability.metrics_enabled()
    monkeypatch.delenv("EMBEDRANK_METRICS")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "EmbeddingsFunction")
    assert observability.metrics_enabled()
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    assert not observability.metrics_enabled()


def test_one_emf_document_per_request_dimensioned_by_model_and_provider(
    client: Any, upstream: FakeUpstream, emit_metrics: None, capfd: pytest.CaptureFixture[str]
) -> None:
    upstream.handler = openai_answer
    key = {"X-API-Key": DEV_KEY}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. Powertools' "No application metrics to publish"
        ok = client.post(
            "/v1/embeddings", json={"model": "openai/text-embedding-3-small", "input": ["a", "b"]}, headers=key
        )
        client.post("/v1/embeddings", json={"model": "acme/secret-project-model", "input": "x"}, headers=key)
        client.get("/v1/models")
    assert ok.status_code == 200
    docs = emf_documents(capfd.readouterr().out)
    assert len(docs) == 3
    for doc in docs:
        [directive] = doc["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "Embedrank" and directive["Dimensions"] == [["model", "provider"]]
        assert doc["Requests"] == [1.0]  # Powertools writes every value as an array
    served, unknown, anonymous = docs
    assert (served["model"], served["provider"]) == ("openai/text-embedding-3-small", "openai")
    assert served["ClientErrors"] == served["ServerErrors"] == [0.0]
    assert served["Tokens"] == [6.0] and served["Cost"] == [pytest.approx(6 * 0.02 / 1e6)]
    assert served["UpstreamAttempts"] == [1.0] and 0 < served["UpstreamLatency"][0] < served["Latency"][0]
    # A caller's model string never becomes a dimension value (cardinality, and it is caller input).
    assert (unknown["model"], unknown["provider"], unknown["ClientErrors"]) == ("(unknown)", "(none)", [1.0])
    assert "Tokens" not in unknown and "UpstreamLatency" not in unknown
    assert (anonymous["model"], anonymous["ClientErrors"]) == ("(none)", [1.0])
    assert not observability.metrics.metric_set  # flushed: nothing accumulates between requests


def test_upstream_failures_count_as_server_errors_with_every_attempt_timed(
    client: Any, upstream: FakeUpstream, emit_metrics: None, capfd: pytest.CaptureFixture[str]
) -> None:
    upstream.handler = lambda request: httpx.Response(503, json={"error": {"message": "overloaded"}})
    response = client.post(
        "/v1/embeddings", json={"model": "openai/text-embedding-3-small", "input": "a"}, headers={"X-API-Key": DEV_KEY}
    )
    assert response.status_code == 502
    [doc] = emf_documents(capfd.readouterr().out)
    assert doc["provider"] == "openai" and doc["ServerErrors"] == [1.0] and doc["ClientErrors"] == [0.0]
    assert doc["UpstreamAttempts"] == [3.0] and len(doc["UpstreamLatency"]) == 3  # one value per attempt


# -- tracer ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def fresh_tracer() -> Iterator[None]:
    observability.tracer.cache_clear()
    yield
    observability.tracer.cache_clear()


def test_tracer_is_off_in_tests_locally_and_in_sam_local(monkeypatch: pytest.MonkeyPatch, fresh_tracer: None) -> None:
    assert observability.tracer() is None
    monkeypatch.setenv("EMBEDRANK_XRAY_SDK", "1")
    assert not observability.tracing_enabled()  # not in Lambda
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "EmbeddingsFunction")
    assert observability.tracing_enabled()
    monkeypatch.setenv("AWS_SAM_LOCAL", "true")
    assert not observability.tracing_enabled()
    monkeypatch.delenv("AWS_SAM_LOCAL")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    assert not observability.tracing_enabled()
    monkeypatch.delenv("POWERTOOLS_TRACE_DISABLED")
    monkeypatch.setenv("EMBEDRANK_XRAY_SDK", "0")
    assert not observability.tracing_enabled()


def test_handlers_never_import_the_xray_sdk_when_tracing_is_off() -> None:
    code = "import sys, embeddings_handler, rerank_handler, account_handler; print('aws_xray_sdk' in sys.modules)"
    assert run_python(code, {"AWS_DEFAULT_REGION": "us-east-1"}) == "False"  # tests, `make serve`
    assert run_python(code, LAMBDA_ENV) == "False"  # Lambda with XRaySdkTracing off
    assert run_python(code, {**LAMBDA_ENV, "EMBEDRANK_XRAY_SDK": "1", "AWS_SAM_LOCAL": "true"}) == "False"


# Runs in a fresh interpreter: the X-Ray SDK patches botocore and httpx process-wide. It receives the subsegments on
# a UDP socket standing in for the X-Ray daemon, the way the Lambda runtime's daemon does.
TRACED_INVOCATION = """
import json, socket, sys
daemon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
daemon.bind(("127.0.0.1", int(sys.argv[1])))
daemon.settimeout(2)

import boto3, httpx
from moto import mock_aws
from embedrank.config import Settings
from embedrank_tools.provision import create_key, create_tables, put_provider_secret, seed_plans
from fakes import openai_answer

with mock_aws():
    config = Settings.from_env({})
    db = boto3.client("dynamodb")
    create_tables(db, config)
    seed_plans(db, config)
    create_key(db, config, plan="ultra", name="dev", key=sys.argv[2], key_id="key_dev")
    put_provider_secret(boto3.client("secretsmanager"), config.provider_secret, {"openai": {"api_key": "sk-x"}})

    import embeddings_handler
    from embedrank.observability import tracer
    from embedrank.providers import Registry

    # Built after the handler's import, like the real client (created on the first provider call).
    transport = httpx.MockTransport(openai_answer)
    embeddings_handler.app.state.services.gateway.registry = Registry(transport)

    class Context:
        function_name = "EmbeddingsFunction"
        memory_limit_in_mb = 1024
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:EmbeddingsFunction"
        aws_request_id = "req-1"

        def get_remaining_time_in_millis(self):
            return 29000

    event = json.load(open(sys.argv[3]))
    result = embeddings_handler.handler(event, Context())
    subsegments = []
    try:
        while True:
            packet = daemon.recv(65536).decode().split("\\n", 1)[1]
            subsegments.append(json.loads(packet))
    except socket.timeout:
        pass
    print(json.dumps({"status": result["statusCode"], "tracer": type(tracer()).__name__, "subsegments": subsegments}))
"""


def test_in_lambda_the_tracer_records_the_handler_each_aws_call_and_each_provider_call() -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **LAMBDA_ENV,
        "EMBEDRANK_XRAY_SDK": "1",
        "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{port}",
        "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
    }
    out = json.loads(run_python(TRACED_INVOCATION, env, str(port), DEV_KEY, str(EVENTS / "embeddings_success.json")))
    assert out["status"] == 200 and out["tracer"] == "Tracer"
    by_name: dict[str, list[dict[str, Any]]] = {}
    for sub in out["subsegments"]:
        by_name.setdefault(sub["name"], []).append(sub)
    [handler] = by_name["## lambda_handler"]
    annotations = handler["annotations"]
    assert annotations["model"] == "openai/text-embedding-3-small" and annotations["provider"] == "openai"
    assert annotations["status"] == 200
    [provider_call] = by_name["api.openai.com"]  # httpx: one subsegment per provider call
    assert provider_call["namespace"] == "remote" and provider_call["http"]["response"]["status"] == 200
    dynamodb = [s["aws"]["operation"] for s in by_name["dynamodb"]]  # one per DynamoDB call, as botocore's patch does
    assert "UpdateItem" in dynamodb and "TransactWriteItems" in dynamodb, dynamodb
    assert {s["parent_id"] for s in by_name["dynamodb"] + [provider_call]} == {handler["id"]}
    assert "response" not in json.dumps(handler.get("metadata", {}))  # vectors never copied into the trace
    assert DEV_KEY not in json.dumps(out)
