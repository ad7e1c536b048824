"""The official clients, unmodified, against the real local server (`make serve`'s app) and a fake upstream."""

from __future__ import annotations

import pytest

from fakes import vector
from live import LIVE_KEY, SEEN


def test_openai_sdk_default_base64(live_server: str) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=f"{live_server}/v1", api_key=LIVE_KEY)
    result = client.embeddings.create(model="openai/text-embedding-3-small", input=["hello", "world"])
    # The SDK asked for base64 (its default) and decoded float32 itself.
    assert len(result.data) == 2 and result.data[1].embedding == pytest.approx(vector(1, 1536))
    assert result.model == "openai/text-embedding-3-small" and result.usage.total_tokens == 4
    assert SEEN.last()[2]["encoding_format"] == "base64"


def test_openai_sdk_float_dimensions_and_input_type(live_server: str) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=f"{live_server}/v1", api_key=LIVE_KEY)
    result = client.embeddings.create(
        model="cohere/embed-v4.0",
        input="a question",
        encoding_format="float",
        dimensions=256,
        extra_body={"input_type": "query"},
    )
    assert result.data[0].embedding == vector(0, 256)
    path, _, sent = SEEN.last()
    assert path == "/v2/embed" and sent["input_type"] == "search_query" and sent["output_dimension"] == 256


def test_openai_sdk_errors_are_typed(live_server: str) -> None:
    import openai

    client = openai.OpenAI(base_url=f"{live_server}/v1", api_key="er-not-a-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.embeddings.create(model="openai/text-embedding-3-small", input="x")
    client = openai.OpenAI(base_url=f"{live_server}/v1", api_key=LIVE_KEY, max_retries=0)
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="nope/nothing", input="x")
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="openai/text-embedding-3-small", input=[""])


def test_langchain_openai_embeddings(live_server: str) -> None:
    from langchain_openai import OpenAIEmbeddings

    # check_embedding_ctx_length=False sends strings (the default tokenizes with tiktoken, which downloads its
    # vocabulary and sends token arrays that only OpenAI models accept).
    embeddings = OpenAIEmbeddings(
        model="cohere/embed-english-v3.0",
        base_url=f"{live_server}/v1",
        api_key=LIVE_KEY,
        check_embedding_ctx_length=False,
    )
    docs = embeddings.embed_documents(["first doc", "second doc", "third doc"])
    assert len(docs) == 3 and docs[2] == pytest.approx(vector(2, 1024))
    query = embeddings.embed_query("a question")
    assert query == pytest.approx(vector(0, 1024))
    assert SEEN.last()[2]["texts"] == ["a question"]


def test_cohere_sdk_rerank(live_server: str) -> None:
    import cohere

    client = cohere.Client(base_url=live_server, api_key=LIVE_KEY)
    docs = ["PostgreSQL supports pgvector", "Redis is a cache", "SQLite is embedded"]
    result = client.rerank(
        model="route/cohere-rerank-v4.0-pro", query="vector search", documents=docs, top_n=2, return_documents=True
    )
    path, _, sent = SEEN.last()
    assert path == "/v2/rerank" and sent["documents"] == docs and sent["top_n"] == 2
    assert [r.index for r in result.results] == [0, 1]
    assert result.results[0].relevance_score > result.results[1].relevance_score
    assert result.results[0].document is not None and result.results[0].document.text == docs[0]
    plain = client.rerank(model="cohere/rerank-v3.5", query="q", documents=docs, top_n=3)
    assert len(plain.results) == 3 and plain.results[0].document is None


def test_cohere_v2_sdk_rerank(live_server: str) -> None:
    import cohere

    client = cohere.ClientV2(base_url=live_server, api_key=LIVE_KEY)
    result = client.rerank(model="cohere/rerank-v3.5", query="q", documents=["a", "b"], top_n=1)
    assert [r.index for r in result.results] == [0]


def test_langchain_input_type_through_model_kwargs(live_server: str) -> None:
    from langchain_openai import OpenAIEmbeddings

    # As the README shows: input_type rides in the openai SDK's extra_body, one instance per role.
    queries = OpenAIEmbeddings(
        model="cohere/embed-english-v3.0",
        base_url=f"{live_server}/v1",
        api_key=LIVE_KEY,
        check_embedding_ctx_length=False,
        model_kwargs={"extra_body": {"input_type": "query"}},
    )
    assert queries.embed_query("a question") == pytest.approx(vector(0, 1024))
    path, _, sent = SEEN.last()
    assert path == "/v2/embed" and sent["input_type"] == "search_query"


def test_openai_sdk_with_bare_model_names_and_models_retrieve(live_server: str) -> None:
    import openai

    # given code written for OpenAI, only the base URL and the key changed
    client = openai.OpenAI(base_url=f"{live_server}/v1", api_key=LIVE_KEY, max_retries=0)
    # when it names OpenAI's own model, lists models and retrieves one
    result = client.embeddings.create(model="text-embedding-3-small", input="hello")
    listed = {m.id for m in client.models.list()}
    one = client.models.retrieve("openai/text-embedding-3-small")
    bare = client.models.retrieve("text-embedding-3-small")
    # then it works as against OpenAI
    assert result.model == "text-embedding-3-small" and len(result.data[0].embedding) == 1536
    assert {"text-embedding-3-small", "openai/text-embedding-3-small", "rerank-v3.5"} <= listed
    assert (
        one.id == "openai/text-embedding-3-small" and one.owned_by == "openai" and bare.id == "text-embedding-3-small"
    )
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope/nothing")


def test_cohere_sdk_meta_and_top_n_over_the_documents(live_server: str) -> None:
    import cohere

    # given LangChain's CohereRerank default (top_n=3) and two documents, with Cohere's own model name
    client = cohere.ClientV2(base_url=live_server, api_key=LIVE_KEY)
    result = client.rerank(model="rerank-v3.5", query="q", documents=["a", "b"], top_n=3)
    # then every document comes back, and the SDK's meta is filled
    assert sorted(r.index for r in result.results) == [0, 1]
    assert result.meta is not None and result.meta.billed_units is not None
    assert result.meta.billed_units.search_units == 1
