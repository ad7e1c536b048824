"""`make serve` against a fake Bedrock: the Bedrock adapters reach the endpoints configured for Bedrock itself.

One real server process for the whole module: bedrock-runtime at ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` and
bedrock-agent-runtime at ``AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME`` (two fakes, see bedrock_fake.py), and a Cohere that
answers 500 to everything, so that every Cohere-first route falls back to Bedrock. DynamoDB and Secrets Manager are
the local AWS that `make serve` starts on ``LOCAL_AWS_PORT``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from bedrock_fake import DownProvider, FakeBedrock, RefusingProxy, bedrock_vector, overlap_score, word_count
from conftest import validate
from live import LIVE_KEY, local_env, start_local_server, stop

REGION = "us-east-1"
RERANK_ARN = f"arn:aws:bedrock:{REGION}::foundation-model/cohere.rerank-v3-5:0"
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@dataclass(frozen=True)
class Served:
    base: str
    local_aws_port: int
    runtime: FakeBedrock  # AWS_ENDPOINT_URL_BEDROCK_RUNTIME
    agent: FakeBedrock  # AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME
    cohere: DownProvider  # COHERE_BASE_URL

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(f"{self.base}{path}", json=body, headers={"X-API-Key": LIVE_KEY}, timeout=15)


def serve_env(**extra: str) -> dict[str, str]:
    """`make serve`'s environment: the dev key, one region, nothing from the developer's ~/.aws or proxies."""
    env = {k: v for k, v in local_env(None).items() if k.lower() not in PROXY_VARIABLES and k != "AWS_PROFILE"}
    env.update(
        EMBEDRANK_DEV_API_KEY=LIVE_KEY,
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE=os.devnull,  # a profile's region or endpoints would change where Bedrock is reached
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        RETRY_ATTEMPTS="1",  # a failing provider fails at once, without the gateway's backoff
    )
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def server() -> Iterator[Served]:
    runtime, agent, cohere = FakeBedrock(), FakeBedrock(), DownProvider()
    for fake in (runtime, agent, cohere):
        fake.start()
    env = serve_env(
        COHERE_API_KEY="co-fake",
        COHERE_BASE_URL=cohere.url,
        AWS_ENDPOINT_URL_BEDROCK_RUNTIME=runtime.url,
        AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME=agent.url,
    )
    proc, base = start_local_server(env)
    try:
        yield Served(base, int(env["LOCAL_AWS_PORT"]), runtime, agent, cohere)
    finally:
        code, err = stop(proc)
        for fake in (runtime, agent, cohere):
            fake.stop()
        assert code == 0, err


@pytest.fixture
def served(server: Served) -> Served:
    """The module's server, its fakes with no calls recorded yet."""
    for fake in (server.runtime, server.agent, server.cohere):
        fake.calls.clear()
    return server


def test_cohere_embed_on_bedrock_reaches_the_runtime_endpoint(served: Served) -> None:
    # given
    texts = ["hello world", "vector search in postgres"]

    # when
    r = served.post(
        "/v1/embeddings", {"model": "bedrock/cohere.embed-english-v3", "input": texts, "input_type": "query"}
    )

    # then
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["provider"] == "bedrock" and out["model"] == "bedrock/cohere.embed-english-v3"
    assert [d["embedding"] for d in out["data"]] == [bedrock_vector(t, 1024) for t in texts]
    assert out["usage"]["prompt_tokens"] == 6 and "estimated" not in out["usage"]  # the token-count header's
    [call] = served.runtime.calls
    assert call.path == "/model/cohere.embed-english-v3/invoke"
    validate("bedrock-cohere-embed-request.json", call.body)
    assert call.body == {
        "texts": texts,
        "input_type": "search_query",
        "embedding_types": ["float"],
        "truncate": "END",
    }
    assert served.agent.calls == [] and served.cohere.calls == []


def test_titan_v2_on_bedrock_reaches_the_runtime_endpoint_once_per_text(served: Served) -> None:
    # given
    texts = ["first text", "the second one", "third"]

    # when
    r = served.post(
        "/v1/embeddings", {"model": "bedrock/amazon.titan-embed-text-v2:0", "input": texts, "dimensions": 256}
    )

    # then
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["provider"] == "bedrock"
    assert [d["embedding"] for d in out["data"]] == [bedrock_vector(t, 256) for t in texts]  # in input order
    assert out["usage"]["prompt_tokens"] == sum(word_count(t) for t in texts)
    calls = served.runtime.calls
    assert {c.path for c in calls} == {"/model/amazon.titan-embed-text-v2:0/invoke"}
    for call in calls:
        validate("bedrock-titan-embed-v2-request.json", call.body)
    assert sorted(c.body["inputText"] for c in calls) == sorted(texts)
    assert all(c.body == {"inputText": c.body["inputText"], "dimensions": 256} for c in calls)


def test_rerank_on_bedrock_reaches_the_agent_runtime_endpoint_and_reads_every_page(served: Served) -> None:
    # given: the fake answers two results per page, so three come in two pages
    query = "vector database search"
    documents = ["Redis is a cache", "PostgreSQL is a vector database", "a vector search database for embeddings"]

    # when
    r = served.post("/v1/rerank", {"model": "bedrock/cohere.rerank-v3-5:0", "query": query, "documents": documents})

    # then
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["provider"] == "bedrock" and out["usage"]["search_units"] == 1
    assert [(x["index"], x["relevance_score"]) for x in out["results"]] == [
        (2, 1.0),
        (1, overlap_score(query, documents[1])),
        (0, 0.0),
    ]
    first, second = served.agent.calls
    assert first.path == second.path == "/rerank"
    for call in (first, second):
        validate("bedrock-rerank-request.json", call.body)
    assert "nextToken" not in first.body and second.body["nextToken"] == "2"
    assert first.body["queries"] == [{"type": "TEXT", "textQuery": {"text": query}}]
    assert [s["inlineDocumentSource"]["textDocument"]["text"] for s in first.body["sources"]] == documents
    assert first.body["rerankingConfiguration"] == {
        "type": "BEDROCK_RERANKING_MODEL",
        "bedrockRerankingConfiguration": {"numberOfResults": 3, "modelConfiguration": {"modelArn": RERANK_ARN}},
    }
    assert served.runtime.calls == [] and served.cohere.calls == []


def test_rerank_on_bedrock_top_n(served: Served) -> None:
    # given
    query = "vector database search"
    documents = ["Redis is a cache", "PostgreSQL is a vector database", "a vector search database for embeddings"]

    # when
    r = served.post(
        "/v1/rerank",
        {
            "model": "bedrock/cohere.rerank-v3-5:0",
            "query": query,
            "documents": documents,
            "top_n": 1,
            "return_documents": True,
        },
    )

    # then
    assert r.status_code == 200, r.text
    assert r.json()["results"] == [{"index": 2, "relevance_score": 1.0, "document": {"text": documents[2]}}]
    [call] = served.agent.calls
    assert call.body["rerankingConfiguration"]["bedrockRerankingConfiguration"]["numberOfResults"] == 1


def test_embed_route_falls_back_from_a_failing_cohere_to_bedrock(served: Served) -> None:
    # given: Cohere answers 500 to everything
    texts = ["a document about routes"]

    # when
    r = served.post(
        "/v1/embeddings", {"model": "route/cohere-embed-v3-english-3", "input": texts, "input_type": "document"}
    )

    # then
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["provider"] == "bedrock" and out["model"] == "route/cohere-embed-v3-english-3"
    assert out["data"][0]["embedding"] == bedrock_vector(texts[0], 1024)
    assert served.cohere.paths() == ["/v2/embed"]  # Cohere was asked first, once (RETRY_ATTEMPTS=1)
    [call] = served.runtime.calls
    assert call.path == "/model/cohere.embed-english-v3/invoke"
    validate("bedrock-cohere-embed-request.json", call.body)
    assert call.body["texts"] == texts and call.body["input_type"] == "search_document"


def test_rerank_route_falls_back_from_a_failing_cohere_to_bedrock(served: Served) -> None:
    # given: Cohere answers 500 to everything
    query = "fallback route"
    documents = ["no match here", "the fallback route works"]

    # when
    r = served.post("/v1/rerank", {"model": "route/cohere-rerank-v3.5", "query": query, "documents": documents})

    # then
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["provider"] == "bedrock" and out["model"] == "route/cohere-rerank-v3.5"
    assert [(x["index"], x["relevance_score"]) for x in out["results"]] == [(1, 1.0), (0, 0.0)]
    assert served.cohere.paths() == ["/v2/rerank"]
    [call] = served.agent.calls
    validate("bedrock-rerank-request.json", call.body)
    assert call.body["rerankingConfiguration"]["bedrockRerankingConfiguration"]["modelConfiguration"] == {
        "modelArn": RERANK_ARN
    }


def test_bedrock_goes_to_its_own_endpoints_never_to_the_local_aws(served: Served) -> None:
    # given: the local AWS (DynamoDB, Secrets Manager) on LOCAL_AWS_PORT, each Bedrock service on a fake of its own
    assert served.local_aws_port not in (served.runtime.port, served.agent.port)

    # when: the API key is checked in the local AWS's DynamoDB, then Bedrock is called
    embedded = served.post("/v1/embeddings", {"model": "bedrock/amazon.titan-embed-text-v2:0", "input": "x"})
    reranked = served.post("/v1/rerank", {"model": "bedrock/cohere.rerank-v3-5:0", "query": "q", "documents": ["q"]})

    # then: each call reached the endpoint configured for its service, signed for Bedrock
    assert embedded.status_code == 200 and reranked.status_code == 200, (embedded.text, reranked.text)
    [invoke] = served.runtime.calls
    [rerank] = served.agent.calls
    assert invoke.path == "/model/amazon.titan-embed-text-v2:0/invoke" and rerank.path == "/rerank"
    assert invoke.headers["host"] == f"127.0.0.1:{served.runtime.port}"
    assert rerank.headers["host"] == f"127.0.0.1:{served.agent.port}"
    for call in (invoke, rerank):
        # the credentials `make serve` set for its local AWS, a SigV4 scope of region and Bedrock's signing name
        assert call.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=local/")
        assert f"/{REGION}/bedrock/aws4_request" in call.headers["authorization"]


def test_without_bedrock_endpoints_bedrock_heads_for_aws_not_the_local_aws() -> None:
    # given: `make serve` with no Bedrock endpoint variable; an HTTPS proxy that only records where each connection
    # would go (loopback, so the local AWS, is exempt from it)
    proxy = RefusingProxy()
    proxy.start()
    env = serve_env(HTTPS_PROXY=proxy.url, HTTP_PROXY=proxy.url, NO_PROXY="127.0.0.1,localhost")
    proc, base = start_local_server(env)
    try:
        # when: the API key is checked in the local AWS's DynamoDB, then Bedrock is called
        auth = {"X-API-Key": LIVE_KEY}
        embedded = httpx.post(
            f"{base}/v1/embeddings",
            json={"model": "bedrock/amazon.titan-embed-text-v2:0", "input": "x"},
            headers=auth,
            timeout=15,
        )
        reranked = httpx.post(
            f"{base}/v1/rerank",
            json={"model": "bedrock/cohere.rerank-v3-5:0", "query": "q", "documents": ["q"]},
            headers=auth,
            timeout=15,
        )
    finally:
        code, err = stop(proc)
        proxy.stop()

    # then: both headed for AWS's regional Bedrock endpoints (and, refused, are the provider's fault), none for the
    # local AWS, which answered the key lookup
    assert code == 0, err
    assert embedded.status_code == reranked.status_code == 502, (embedded.text, reranked.text)
    assert embedded.json()["error"]["code"] == reranked.json()["error"]["code"] == "provider_unavailable"
    assert set(proxy.targets()) == {
        f"bedrock-runtime.{REGION}.amazonaws.com:443",
        f"bedrock-agent-runtime.{REGION}.amazonaws.com:443",
    }
