"""Bedrock through boto3 bedrock-runtime: Titan v2 fan-out and Cohere Embed, with botocore's Stubber."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from conftest import FakeUpstream, validate
from fakes import decode_b64, vector
from provider_fakes import (
    BedrockFake,
    StubbedBedrock,
    bedrock_cohere_payload,
    post,
    seed,
    titan_answer,
)

TEXTS = ["first text", "second", "the third one"]
TOKENS = {"x-amzn-bedrock-input-token-count": "11"}


@pytest.fixture
def bedrock(services: Any) -> StubbedBedrock:
    stub = StubbedBedrock()
    services.gateway.registry.embedding("bedrock").runtime = stub.client
    return stub


@pytest.mark.parametrize(
    ("input_type", "native"), [("query", "search_query"), ("document", "search_document"), (None, "search_document")]
)
@pytest.mark.parametrize("dimensions", [None, 512])
def test_cohere_v4_request_and_float_response(
    client: Any,
    bedrock: StubbedBedrock,
    upstream: FakeUpstream,
    input_type: str | None,
    native: str,
    dimensions: int | None,
) -> None:
    bedrock.answer("cohere.embed-v4:0", bedrock_cohere_payload(TEXTS, dimensions or 1536), TOKENS)
    body: dict[str, Any] = {"model": "bedrock/cohere.embed-v4:0", "input": TEXTS, "input_type": input_type}
    if dimensions is not None:
        body["dimensions"] = dimensions
    r = post(client, body)
    assert r.status_code == 200, r.text
    bedrock.stubber.assert_no_pending_responses()
    expected: dict[str, Any] = {
        "texts": TEXTS,
        "input_type": native,
        "embedding_types": ["float"],
        "truncate": "RIGHT",
    }
    if dimensions is not None:
        expected["output_dimension"] = dimensions
    assert bedrock.bodies == [expected]
    validate("bedrock-cohere-embed-request.json", expected)
    out = r.json()
    assert out["model"] == "bedrock/cohere.embed-v4:0" and out["provider"] == "bedrock"
    assert [d["embedding"] for d in out["data"]] == [vector(seed(t), dimensions or 1536) for t in TEXTS]
    assert out["usage"]["prompt_tokens"] == 11 and "estimated" not in out["usage"]
    assert not upstream.requests


def test_cohere_v3_plain_list_answer_base64_and_estimated_tokens(client: Any, bedrock: StubbedBedrock) -> None:
    bedrock.answer("cohere.embed-english-v3", bedrock_cohere_payload(TEXTS, by_type=False))  # no token header
    r = post(client, {"model": "bedrock/cohere.embed-english-v3", "input": TEXTS, "encoding_format": "base64"})
    assert r.status_code == 200, r.text
    assert bedrock.bodies[0]["truncate"] == "END"  # v3 names the end END, v4 RIGHT
    validate("bedrock-cohere-embed-request.json", bedrock.bodies[0])
    assert [decode_b64(d["embedding"]) for d in r.json()["data"]] == [vector(seed(t), 1024) for t in TEXTS]
    usage = r.json()["usage"]
    assert usage["estimated"] is True and usage["prompt_tokens"] == sum(-(-len(t) // 4) for t in TEXTS)


@pytest.mark.parametrize("dimensions", [None, 256])
@pytest.mark.parametrize("input_type", ["query", "document", None])
def test_titan_single_text(
    client: Any, bedrock: StubbedBedrock, input_type: str | None, dimensions: int | None
) -> None:
    payload, _ = titan_answer("", {"inputText": "hello there", **({"dimensions": dimensions} if dimensions else {})})
    bedrock.answer("amazon.titan-embed-text-v2:0", payload)
    body: dict[str, Any] = {"model": "bedrock/amazon.titan-embed-text-v2:0", "input": "hello there"}
    body |= {"input_type": input_type} | ({"dimensions": dimensions} if dimensions else {})
    r = post(client, body)
    assert r.status_code == 200, r.text
    expected: dict[str, Any] = {"inputText": "hello there"}  # symmetric: input_type is dropped
    if dimensions is not None:
        expected["dimensions"] = dimensions
    assert bedrock.bodies == [expected]
    validate("bedrock-titan-embed-v2-request.json", expected)
    assert r.json()["data"][0]["embedding"] == vector(seed("hello there"), dimensions or 1024)
    assert r.json()["usage"]["prompt_tokens"] == 2


def test_titan_fans_out_concurrently_and_keeps_input_order(client: Any, services: Any) -> None:
    fake = BedrockFake(titan_answer)
    services.gateway.registry.embedding("bedrock").runtime = fake.client
    texts = [f"text number {i}" for i in range(12)]
    r = post(client, {"model": "bedrock/amazon.titan-embed-text-v2:0", "input": texts, "encoding_format": "base64"})
    assert r.status_code == 200, r.text
    assert sorted(body["inputText"] for _, body in fake.calls) == sorted(texts)
    assert {model for model, _ in fake.calls} == {"amazon.titan-embed-text-v2:0"}
    assert 1 < fake.peak <= services.settings.max_concurrency
    assert [decode_b64(d["embedding"]) for d in r.json()["data"]] == [vector(seed(t), 1024) for t in texts]
    assert r.json()["usage"]["prompt_tokens"] == 3 * 12


def test_token_header_is_read_through_botocore(client: Any, services: Any) -> None:
    fake = BedrockFake(
        lambda model, body: (bedrock_cohere_payload(body["texts"]), {"X-Amzn-Bedrock-Input-Token-Count": "42"})
    )
    services.gateway.registry.embedding("bedrock").runtime = fake.client
    r = post(client, {"model": "bedrock/cohere.embed-multilingual-v3", "input": TEXTS})
    assert r.status_code == 200, r.text
    assert fake.calls[0][0] == "cohere.embed-multilingual-v3"
    assert r.json()["usage"]["prompt_tokens"] == 42 and "estimated" not in r.json()["usage"]


@pytest.mark.parametrize(
    ("code", "http", "status", "ours"),
    [
        ("ThrottlingException", 429, 502, "provider_rate_limited"),
        ("ValidationException", 400, 400, "provider_rejected_request"),
        ("AccessDeniedException", 403, 502, "provider_auth_failed"),
        ("ModelTimeoutException", 408, 504, "provider_timeout"),
        ("ServiceUnavailableException", 503, 502, "provider_unavailable"),
        ("InternalServerException", 500, 502, "provider_unavailable"),
    ],
)
def test_client_errors_are_mapped(
    client: Any, bedrock: StubbedBedrock, code: str, http: int, status: int, ours: str
) -> None:
    # Faults worth retrying are tried RETRY_ATTEMPTS (3) times; the stub must hold one answer per attempt.
    for _ in range(1 if ours in ("provider_rejected_request", "provider_auth_failed") else 3):
        bedrock.fail(code, http, message="Input is too long for requested model.")
    r = post(client, {"model": "bedrock/amazon.titan-embed-text-v2:0", "input": "x"})
    assert r.status_code == status, r.text
    err = r.json()["error"]
    kind = "invalid_request_error" if status == 400 else "provider_error"
    assert err["code"] == ours and err["type"] == kind and code in err["message"]


def titan_call(text: str) -> Any:
    from embedrank.domain.catalog import catalog
    from embedrank.providers.calls import EmbedCall

    deployment = catalog().deployments["bedrock/amazon.titan-embed-text-v2:0"]
    return EmbedCall(deployment, [text], None, None, None, "float", credentials=None)


def test_missing_region_is_not_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    from embedrank.errors import ProviderNotConfigured
    from embedrank.providers.bedrock.embed import Adapter
    from embedrank.providers.http import Http

    for var in ("AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    with pytest.raises(ProviderNotConfigured, match="NoRegionError"):
        asyncio.run(Adapter(Http()).embed(titan_call("x")))


def test_the_client_honours_a_configured_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    from embedrank import aws

    # given the endpoint settings boto3 reads: one for every service, and Bedrock's own, which wins
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "http://127.0.0.1:4567")
    # when the Bedrock runtime client is built, then it goes where the user said
    runtime = aws.bedrock_runtime(10.0)
    assert runtime.meta.endpoint_url == "http://127.0.0.1:4567"
    assert runtime.meta.config.read_timeout == 10.0


def test_adapter_needs_no_secret() -> None:
    from embedrank.providers.bedrock.embed import Adapter
    from embedrank.providers.http import Http

    stub = StubbedBedrock()
    payload, _ = titan_answer("", {"inputText": "hi"})
    stub.answer("amazon.titan-embed-text-v2:0", payload)
    result = asyncio.run(Adapter(Http(), runtime=stub.client).embed(titan_call("hi")))
    assert result.tokens == 1 and result.vectors.items == [vector(seed("hi"), 1024)]


def test_a_hung_bedrock_call_is_a_timeout_within_the_attempts_time() -> None:
    import dataclasses
    import time

    from embedrank.errors import UpstreamTimeout
    from embedrank.providers.bedrock.embed import Adapter
    from embedrank.providers.http import Http

    # given Bedrock takes 2 s to answer, and the attempt may take 0.2 s (botocore's own read timeout is 25 s)
    def slow(model: str, body: Any) -> tuple[Any, dict[str, str]]:
        time.sleep(2)
        return titan_answer(model, body)

    fake = BedrockFake(slow)
    call = dataclasses.replace(titan_call("hi"), timeout=0.2)

    async def attempt() -> float:
        started = time.monotonic()
        with pytest.raises(UpstreamTimeout):
            await Adapter(Http(), runtime=fake.client).embed(call)
        return time.monotonic() - started

    # when the adapter calls it, then the attempt ends on time, as a retryable timeout (the thread finishes later)
    assert asyncio.run(attempt()) < 1.0
