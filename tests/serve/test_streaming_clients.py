"""Answers past Lambda's 6 MB through `make serve` (streaming, as the default deployment), with the clients unmodified:
every vector exact and in input order."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from fakes import vector
from live import FAIL_MARK, LIVE_KEY, local_env, start_local_server, stop

LARGE = "openai/text-embedding-3-large"  # 3,072 dimensions


def texts(n: int) -> list[str]:
    return [f"text-{i}" for i in range(n)]  # the fake provider answers text-N with vector N, wherever it lands


def test_openai_sdk_default_call_with_2048_inputs_to_a_3072_dimension_model(live_server: str) -> None:
    from openai import OpenAI

    # given the openai SDK as its users call it (base64, its default)
    client = OpenAI(base_url=f"{live_server}/v1", api_key=LIVE_KEY, max_retries=0)
    # when it sends the most inputs it allows: a 33.6 MB answer, 5.5 times what a buffered Lambda can return
    result = client.embeddings.create(model=LARGE, input=texts(2048))
    # then every vector comes back exact, in input order
    assert [d.index for d in result.data] == list(range(2048))
    assert all(d.embedding == vector(i, 3072) for i, d in enumerate(result.data))
    assert result.usage.total_tokens == 4096


def test_the_same_as_float_json(live_server: str) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=f"{live_server}/v1", api_key=LIVE_KEY, max_retries=0)
    result = client.embeddings.create(model=LARGE, input=texts(2048), encoding_format="float")
    assert [d.index for d in result.data] == list(range(2048))
    assert all(d.embedding == vector(i, 3072) for i, d in enumerate(result.data))


def test_langchain_openai_embeddings_default_chunk_size_on_1200_documents(live_server: str) -> None:
    from langchain_openai import OpenAIEmbeddings

    # given LangChain's OpenAIEmbeddings with its defaults (chunk_size 1000: a first request of 1,000 texts, 8.2 MB of
    # base64), except check_embedding_ctx_length=False: its default tokenizes with tiktoken, which downloads its
    # vocabulary (no network here) and would send token arrays, which only OpenAI models accept anyway
    embeddings = OpenAIEmbeddings(
        model="openai/text-embedding-3-small",
        base_url=f"{live_server}/v1",
        api_key=LIVE_KEY,
        check_embedding_ctx_length=False,
        max_retries=0,
    )
    assert embeddings.chunk_size == 1000
    # when it embeds 1,200 documents
    vectors = embeddings.embed_documents(texts(1200))
    # then all come back, exact and in order
    assert len(vectors) == 1200
    assert all(v == pytest.approx(vector(i, 1536), abs=0) for i, v in enumerate(vectors))


def test_a_batch_failing_after_others_succeeded_is_an_error_never_a_partial_list(live_server: str) -> None:
    # given 2,048 inputs split into several provider calls, one of which the provider fails every time
    inputs = texts(2048)
    inputs[1500] = FAIL_MARK
    body = {"model": LARGE, "input": inputs, "encoding_format": "base64"}
    # when the request is sent
    r = httpx.post(f"{live_server}/v1/embeddings", json=body, headers={"x-api-key": LIVE_KEY}, timeout=120)
    # then the answer is one error envelope: every call finishes before the first byte, so no 200 ever starts
    assert r.status_code == 502, r.text[:300]
    assert r.json()["error"]["code"] == "provider_unavailable"


@pytest.fixture(scope="module")
def buffered_server(fake_provider: str) -> Iterator[str]:
    """`make serve` with the buffered deployment's limits (RESPONSE_MODE=buffered)."""
    proc, base = start_local_server(local_env(fake_provider, RESPONSE_MODE="buffered"))
    yield base
    stop(proc)


def test_the_buffered_mode_still_answers_413_with_advice(buffered_server: str) -> None:
    from openai import APIStatusError, OpenAI

    from embedrank.api.sizes import BUFFERED, embedding_capacity

    fits = embedding_capacity(3072, "base64", True, BUFFERED)
    assert fits == 378
    client = OpenAI(base_url=f"{buffered_server}/v1", api_key=LIVE_KEY, max_retries=0)
    with pytest.raises(APIStatusError) as caught:  # the SDK has no class of its own for 413
        client.embeddings.create(model=LARGE, input=texts(2048))
    assert caught.value.status_code == 413
    error = caught.value.body  # the SDK keeps the envelope's "error" object
    assert isinstance(error, dict)
    assert error["code"] == "response_too_large"
    assert f"send at most {fits} inputs per request" in error["message"]
    # and what fits there still works
    result = client.embeddings.create(model=LARGE, input=texts(fits))
    assert all(d.embedding == vector(i, 3072) for i, d in enumerate(result.data))
