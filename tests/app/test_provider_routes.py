"""Routes: same-weights chains, fallback on retryable failures, and the IAM policy matching the catalog."""

from __future__ import annotations

from typing import Any

import pytest
from cfnlint.decode import cfn_yaml
from pydantic import ValidationError

from conftest import ROOT, FakeUpstream, usage_records
from embedrank.domain.catalog import Catalog, catalog
from embedrank.domain.embeddings import batch_spans
from fakes import cohere_embed_answer, json_response, vector
from provider_fakes import StubbedBedrock, bedrock_cohere_payload, post, seed

EMBED = {"kind": "embedding", "dimensions": 1024, "max_inputs": 96}


def test_validator_rejects_a_route_mixing_weights() -> None:
    deployments = {
        "cohere/embed-english-v3.0": {**EMBED, "weights": "cohere/embed-english-v3.0"},
        "bedrock/cohere.embed-english-v3": {**EMBED, "weights": "cohere/embed-english-v3.0"},
        "bedrock/amazon.titan-embed-text-v2:0": {**EMBED, "weights": "amazon/titan-embed-text-v2"},
    }
    good = ["cohere/embed-english-v3.0", "bedrock/cohere.embed-english-v3"]
    Catalog.model_validate({"deployments": deployments, "routes": {"route/ok": good}})
    with pytest.raises(ValidationError, match="mixes different models"):
        Catalog.model_validate(
            {"deployments": deployments, "routes": {"route/bad": [*good, "bedrock/amazon.titan-embed-text-v2:0"]}}
        )


def test_catalog_routes_resolve_to_the_same_weights() -> None:
    cat = catalog()
    english = cat.resolve("route/cohere-embed-v3-english-3", "embedding")
    assert [d.id for d in english] == ["cohere/embed-english-v3.0", "bedrock/cohere.embed-english-v3"]
    multi = cat.resolve("route/cohere-embed-v3-multilingual-3", "embedding")
    assert [d.provider for d in multi] == ["cohere", "bedrock"]
    [qwen] = cat.resolve("route/qwen3-embedding-8b", "embedding")
    assert qwen.provider == "selfhosted" and qwen.dimension_mode == "truncate"


@pytest.fixture
def bedrock(services: Any) -> StubbedBedrock:
    stub = StubbedBedrock()
    services.gateway.registry.embedding("bedrock").runtime = stub.client
    return stub


def test_route_falls_back_to_bedrock_on_a_retryable_failure(
    client: Any, upstream: FakeUpstream, bedrock: StubbedBedrock, settings: Any
) -> None:
    upstream.handler = lambda request: json_response({"message": "service unavailable"}, 503)
    texts = ["a query", "another"]
    bedrock.answer("cohere.embed-english-v3", bedrock_cohere_payload(texts), {"x-amzn-bedrock-input-token-count": "5"})
    r = post(client, {"model": "route/cohere-embed-v3-english-3", "input": texts, "input_type": "query"})
    assert r.status_code == 200, r.text
    assert str(upstream.requests[0].url) == "https://api.cohere.com/v2/embed"
    assert bedrock.bodies[0]["input_type"] == "search_query" == upstream.json()["input_type"]
    out = r.json()
    assert out["model"] == "route/cohere-embed-v3-english-3" and out["provider"] == "bedrock"
    assert [d["embedding"] for d in out["data"]] == [vector(seed(t), 1024) for t in texts]
    assert out["usage"]["prompt_tokens"] == 5
    [record] = usage_records(settings)
    assert record["provider"]["S"] == "bedrock"


def test_route_serves_from_the_first_deployment_when_it_works(
    client: Any, upstream: FakeUpstream, bedrock: StubbedBedrock
) -> None:
    upstream.handler = cohere_embed_answer
    r = post(client, {"model": "route/cohere-embed-v3-multilingual-3", "input": "hola"})
    assert r.status_code == 200, r.text
    assert r.json()["provider"] == "cohere" and r.json()["model"] == "route/cohere-embed-v3-multilingual-3"
    assert bedrock.bodies == []


def test_route_does_not_fall_back_on_the_callers_fault(
    client: Any, upstream: FakeUpstream, bedrock: StubbedBedrock
) -> None:
    upstream.handler = lambda request: json_response({"message": "invalid input"}, 400)
    r = post(client, {"model": "route/cohere-embed-v3-english-3", "input": "x"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "provider_rejected_request"
    assert bedrock.bodies == []


def test_every_bedrock_embedding_deployment_is_in_the_iam_policy() -> None:
    template = cfn_yaml.load(str(ROOT / "template.yaml"))
    statements = template["Resources"]["EmbeddingsFunction"]["Properties"]["Policies"][0]["Statement"]
    resources = [
        r["Fn::Sub"] if isinstance(r, dict) else r
        for s in statements
        if "bedrock:InvokeModel" in s["Action"]
        for r in s["Resource"]
    ]
    allowed = {r.split("::foundation-model/", 1)[1] for r in resources}
    wanted = {d.native for d in catalog().deployments.values() if d.provider == "bedrock" and d.kind == "embedding"}
    assert wanted and wanted <= allowed, f"missing from the IAM policy: {sorted(wanted - allowed)}"


def test_batch_spans() -> None:
    assert batch_spans(["a"] * 5, 2, None) == [(0, 2), (2, 4), (4, 5)]
    assert batch_spans([], 2, None) == []
    # ~ bytes/3 + 1 tokens each: 34 per 99-byte text; a 100-token cap holds two
    assert batch_spans(["x" * 99] * 5, 10, 100) == [(0, 2), (2, 4), (4, 5)]
    # an input over the cap alone gets its own call; token arrays count exactly
    assert batch_spans(["x" * 999, "y"], 10, 100) == [(0, 1), (1, 2)]
    assert batch_spans([[1] * 60, [2] * 40, [3]], 10, 100) == [(0, 2), (2, 3)]
