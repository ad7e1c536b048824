"""Bedrock rerank through boto3 bedrock-agent-runtime, with botocore's Stubber on an injected client."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from conftest import FakeUpstream, auth, replace_provider_secret, usage_records, validate

QUERY = "best database for vector search"
DOCS = ["PostgreSQL supports pgvector", "Redis is an in-memory store", "SQLite is embedded"]
ARN = "arn:aws:bedrock:us-west-2::foundation-model/{}"


def expected_request(model: str, docs: list[str], top_n: int, token: str | None = None) -> dict[str, Any]:
    request: dict[str, Any] = {
        "queries": [{"type": "TEXT", "textQuery": {"text": QUERY}}],
        "sources": [
            {"type": "INLINE", "inlineDocumentSource": {"type": "TEXT", "textDocument": {"text": d}}} for d in docs
        ],
        "rerankingConfiguration": {
            "type": "BEDROCK_RERANKING_MODEL",
            "bedrockRerankingConfiguration": {
                "numberOfResults": top_n,
                "modelConfiguration": {"modelArn": ARN.format(model)},
            },
        },
    }
    if token is not None:
        request["nextToken"] = token
    validate("bedrock-rerank-request.json", request)
    return request


def page(results: list[tuple[int, float]], token: str | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"results": [{"index": i, "relevanceScore": s} for i, s in results]}
    if token is not None:
        answer["nextToken"] = token
    validate("bedrock-rerank-response.json", answer)
    return answer


@pytest.fixture
def stub(services: Any) -> Any:
    agent = boto3.client("bedrock-agent-runtime", region_name="us-west-2")
    services.gateway.registry.rerank("bedrock").agent = agent
    with Stubber(agent) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def test_cohere_on_bedrock_follows_next_token(client: Any, stub: Any, upstream: FakeUpstream, settings: Any) -> None:
    model = "cohere.rerank-v3-5:0"
    stub.add_response("rerank", page([(2, 0.88)], token="page-2"), expected_request(model, DOCS, 3))
    stub.add_response("rerank", page([(0, 0.61), (1, 0.12)]), expected_request(model, DOCS, 3, token="page-2"))
    r = client.post(
        "/v1/rerank",
        json={"model": f"bedrock/{model}", "query": QUERY, "documents": DOCS, "return_documents": True},
        headers=auth(),
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["provider"] == "bedrock" and out["model"] == "bedrock/cohere.rerank-v3-5:0"
    assert out["results"] == [
        {"index": 2, "relevance_score": 0.88, "document": {"text": DOCS[2]}},
        {"index": 0, "relevance_score": 0.61, "document": {"text": DOCS[0]}},
        {"index": 1, "relevance_score": 0.12, "document": {"text": DOCS[1]}},
    ]
    assert out["usage"] == {"search_units": 1, "cost": pytest.approx(2.00 / 1000)}
    assert not upstream.requests  # nothing went over HTTP
    [record] = usage_records(settings)
    assert record["provider"]["S"] == "bedrock" and record["search_units"]["N"] == "1"


def test_amazon_rerank_bills_one_query_per_100_documents(client: Any, stub: Any) -> None:
    model = "amazon.rerank-v1:0"
    docs = [f"document number {i}" for i in range(150)]
    answer = page([(i, 1 - i / 1000) for i in (149, 7, 0)])
    stub.add_response("rerank", answer, expected_request(model, docs, 3))
    r = client.post(
        "/v1/rerank",
        json={"model": f"bedrock/{model}", "query": QUERY, "documents": docs, "top_n": 3},
        headers=auth(),
    )
    assert r.status_code == 200, r.text
    assert [x["index"] for x in r.json()["results"]] == [0, 7, 149]
    assert "document" not in r.json()["results"][0]
    assert r.json()["usage"] == {"search_units": 2, "cost": pytest.approx(2 * 1.00 / 1000)}


@pytest.mark.parametrize(
    ("code", "status", "ours"),
    [
        ("ThrottlingException", 429, "provider_rate_limited"),
        ("AccessDeniedException", 403, "provider_auth_failed"),
        ("ValidationException", 400, "provider_rejected_request"),
        ("ModelTimeoutException", 408, "provider_timeout"),
        ("InternalServerException", 500, "provider_unavailable"),
    ],
)
def test_client_errors_are_mapped(client: Any, stub: Any, code: str, status: int, ours: str) -> None:
    # Faults worth retrying are tried RETRY_ATTEMPTS (3) times; the stub must hold one answer per attempt.
    for _ in range(1 if ours in ("provider_rejected_request", "provider_auth_failed") else 3):
        stub.add_client_error("rerank", service_error_code=code, service_message="nope", http_status_code=status)
    r = client.post(
        "/v1/rerank",
        json={"model": "bedrock/amazon.rerank-v1:0", "query": QUERY, "documents": DOCS},
        headers=auth(),
    )
    rejected = ours == "provider_rejected_request"  # the request itself was refused: the caller's to fix
    assert r.json()["error"]["code"] == ours
    assert r.json()["error"]["type"] == ("invalid_request_error" if rejected else "provider_error")
    assert r.status_code == {"provider_timeout": 504, "provider_rejected_request": 400}.get(ours, 502)


def test_malformed_answer_is_502(client: Any, stub: Any) -> None:
    stub.add_response("rerank", page([(5, 0.9), (0, 0.5), (1, 0.4)]))  # index 5 of 3 documents
    r = client.post(
        "/v1/rerank",
        json={"model": "bedrock/amazon.rerank-v1:0", "query": QUERY, "documents": DOCS},
        headers=auth(),
    )
    assert r.status_code == 502 and r.json()["error"]["code"] == "provider_malformed_response"


def test_the_client_honours_a_configured_endpoint_and_takes_the_rerank_region(monkeypatch: pytest.MonkeyPatch) -> None:
    from embedrank.providers.bedrock.rerank import Adapter
    from embedrank.providers.http import Http

    # given an endpoint configured for Bedrock's agent runtime only, the way boto3 reads it
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME", "http://127.0.0.1:4567")
    adapter = Adapter(Http())
    # when the adapter builds its clients, then they use that endpoint, in the region asked for
    agent = adapter._agent("eu-central-1")
    assert agent.meta.endpoint_url == "http://127.0.0.1:4567"
    assert agent.meta.region_name == "eu-central-1"
    assert agent.meta.config.read_timeout == 25.0  # UPSTREAM_TIMEOUT_SECONDS
    assert adapter._agent("eu-central-1") is agent  # one client per region per container
    assert adapter._agent(None).meta.region_name == "us-east-1"  # the function's own region


def test_rerank_region_comes_from_the_bedrock_secret_entry(
    client: Any, services: Any, stub: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    replace_provider_secret(services, {"bedrock": {"rerank_region": "ca-central-1"}})
    adapter = services.gateway.registry.rerank("bedrock")
    regions: list[str | None] = []

    def agent_for(region: str | None) -> Any:
        regions.append(region)
        return adapter.agent

    monkeypatch.setattr(adapter, "_agent", agent_for)
    stub.add_response("rerank", page([(0, 0.5), (1, 0.4), (2, 0.3)]))
    r = client.post(
        "/v1/rerank", json={"model": "bedrock/amazon.rerank-v1:0", "query": QUERY, "documents": DOCS}, headers=auth()
    )
    assert r.status_code == 200, r.text
    assert regions == ["ca-central-1"]
