"""The embedding cache's entry keys: equal exactly when the vector must be equal (domain/cache.py's docstring)."""

from __future__ import annotations

from embedrank.domain.cache import CachePolicy, entry_keys, policy
from embedrank.domain.catalog import catalog
from embedrank.domain.records import Plan

KEY = CachePolicy("key:key_a", 30, read=True, write=True)


def keys(model: str, inputs: list[str] | list[list[int]], input_type: str | None = None, **kw: object) -> list[bytes]:
    deployment = catalog().deployments[model]
    width = kw.pop("width", deployment.dimensions)
    native = kw.pop("native", False)
    scope = kw.pop("scope", KEY)
    return entry_keys(scope, deployment, inputs, input_type, width=width, native=native)  # type: ignore[arg-type]


def test_the_same_weights_share_entries_whoever_serves_them() -> None:
    direct = keys("cohere/embed-english-v3.0", ["a"], "query")
    assert keys("bedrock/cohere.embed-english-v3", ["a"], "query") == direct


def test_anything_that_changes_the_vector_changes_the_key() -> None:
    base = keys("cohere/embed-english-v3.0", ["a"], "query")[0]
    variants = [
        keys("cohere/embed-multilingual-v3.0", ["a"], "query")[0],  # other weights
        keys("cohere/embed-english-v3.0", ["a"], "document")[0],  # other input type
        keys("cohere/embed-english-v3.0", ["a"], None)[0],
        keys("cohere/embed-english-v3.0", ["a "], "query")[0],  # other text, by one byte
        keys("cohere/embed-english-v3.0", ["a"], "query", width=512)[0],  # other width
        keys("cohere/embed-english-v3.0", ["a"], "query", native=True)[0],  # the provider's width, not ours
        keys("cohere/embed-english-v3.0", ["a"], "query", scope=CachePolicy("key:key_b", 30, True, True))[0],
        keys("cohere/embed-english-v3.0", ["a"], "query", scope=CachePolicy("plan:x", 30, True, True))[0],
    ]
    assert len({base, *variants}) == len(variants) + 1


def test_input_type_is_ignored_where_the_provider_takes_none() -> None:
    assert keys("openai/text-embedding-3-small", ["a"], "query") == keys("openai/text-embedding-3-small", ["a"], None)


def test_text_and_token_ids_never_collide() -> None:
    assert keys("openai/text-embedding-3-small", ["1,2"]) != keys("openai/text-embedding-3-small", [[1, 2]])
    assert keys("openai/text-embedding-3-small", [[1, 2]]) != keys("openai/text-embedding-3-small", [[12]])


def test_a_plans_cache_and_the_requests_cache_control() -> None:
    on = Plan("p", "all", embedding_cache_days=7)
    assert policy(Plan("p", "all"), "k", None) is None
    assert policy(on, "k", None) == CachePolicy("key:k", 7, read=True, write=True)
    assert policy(on, "k", "No-Cache") == CachePolicy("key:k", 7, read=False, write=True)
    assert policy(on, "k", "max-age=0, no-store") == CachePolicy("key:k", 7, read=True, write=False)
    assert policy(on, "k", "no-cache, no-store") is None
    shared = Plan("team", "all", embedding_cache_days=7, embedding_cache_scope="plan")
    assert policy(shared, "k", None) == CachePolicy("plan:team", 7, read=True, write=True)
