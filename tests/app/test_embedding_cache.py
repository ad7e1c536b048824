"""The per-input embedding cache, through the app: exact vectors whatever the mix of hits, misses and duplicates,
HTTP's Cache-Control, the usage it reports, isolation between keys, and a cache that fails without failing anyone."""

from __future__ import annotations

import base64
import hashlib
import json
import random
from array import array
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest

from conftest import DEV_KEY, FakeUpstream, auth, usage_records
from embedrank.config import Settings
from embedrank.domain.cache import EmbeddingCache, entry_keys, policy
from embedrank.domain.catalog import catalog
from embedrank.store.cache import CacheStore
from embedrank.store.dynamo import Stores
from fakes import json_response

CACHED_A = "er-test-cached-key-a-000000000000000000000000000000000"
CACHED_B = "er-test-cached-key-b-000000000000000000000000000000000"
SHARED_A = "er-test-shared-key-a-000000000000000000000000000000000"
SHARED_B = "er-test-shared-key-b-000000000000000000000000000000000"
POOL = [f"chunk {i}: " + "words " * (i % 7) for i in range(30)]


def provider_vector(text: str, dims: int, input_type: str | None) -> array[float]:
    """What the fake provider embeds ``text`` as: float32 values with random mantissas, seeded by everything that
    changes a real provider's answer (so a vector served for the wrong input, type or width is caught)."""
    seed = hashlib.sha256(f"{text}|{dims}|{input_type}".encode()).digest()
    rng = random.Random(seed)
    return array("f", [rng.uniform(-0.1, 0.1) for _ in range(dims)])


def providers(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    if request.url.path.endswith("/v1/embeddings"):  # OpenAI
        dims = body.get("dimensions", 1536)
        encode = body.get("encoding_format") == "base64"
        data = []
        for i, text in enumerate(body["input"]):
            v = provider_vector(text, dims, None)
            data.append({"object": "embedding", "index": i, "embedding": _b64(v) if encode else v.tolist()})
        usage = {"prompt_tokens": 3 * len(data), "total_tokens": 3 * len(data)}
        return json_response({"object": "list", "data": data, "model": body["model"], "usage": usage})
    # Cohere v2 /embed
    dims = body.get("output_dimension", 1536 if body["model"] == "embed-v4.0" else 1024)
    kind = body["input_type"]
    floats = [provider_vector(t, dims, kind).tolist() for t in body["texts"]]
    billed = {"input_tokens": 2 * len(floats)}
    return json_response({"id": "x", "embeddings": {"float": floats}, "meta": {"billed_units": billed}})


def _b64(v: array[float]) -> str:
    return base64.b64encode(v.tobytes()).decode()


@pytest.fixture
def cache_keys(aws: None, settings: Settings) -> None:
    """Two plans with the cache on: each key its own entries (``cached``), or all keys of the plan (``shared``)."""
    from embedrank_tools.provision import create_key

    db = boto3.client("dynamodb")
    stores = Stores(settings, db)
    for name, scope in (("cached", "key"), ("shared", "plan")):
        stores.put_plan(
            {"name": name, "allowed_models": "all", "embedding_cache_days": 30, "embedding_cache_scope": scope}
        )
    for key, plan, key_id in (
        (CACHED_A, "cached", "key_ca"),
        (CACHED_B, "cached", "key_cb"),
        (SHARED_A, "shared", "key_sa"),
        (SHARED_B, "shared", "key_sb"),
    ):
        create_key(db, settings, plan=plan, name=key_id, key=key, key_id=key_id)


@pytest.fixture
def cached(client: Any, cache_keys: None, upstream: FakeUpstream) -> Iterator[Any]:
    upstream.handler = providers
    yield client


def embed(client: Any, key: str, body: dict[str, Any], **headers: str) -> dict[str, Any]:
    r = client.post("/v1/embeddings", json=body, headers={**auth(key), **headers})
    assert r.status_code == 200, r.text[:300]
    return r.json()  # type: ignore[no-any-return]


def sent_texts(upstream: FakeUpstream, since: int) -> list[str]:
    out: list[str] = []
    for request in upstream.requests[since:]:
        body = json.loads(request.content)
        out += body.get("input") or body.get("texts") or []
    return out


# -- exact, whatever the mix --------------------------------------------------------------------------------------


MODELS = [
    # (model, the weights' shared id for the test's bookkeeping, dimensions to try, input types that matter)
    ("openai/text-embedding-3-small", "oai-small", [None, 256, 512], [None]),
    ("cohere/embed-v4.0", "cohere-v4", [None, 256], [None, "query", "document"]),
    ("cohere/embed-english-v3.0", "cohere-en-v3", [None], ["query", "document"]),
    ("route/cohere-embed-v3-english-3", "cohere-en-v3", [None], ["query", "document"]),
]


def test_fuzzed_batches_match_the_provider_vector_for_vector(cached: Any, upstream: FakeUpstream) -> None:
    rng = random.Random(20261206)
    seen: set[tuple[str, Any, Any, str]] = set()  # what the cached key has already bought
    for _ in range(30):
        # given a batch drawn from a small pool: hits, misses and duplicates mixed, any encoding, width, type
        model, weights, dims_options, types = rng.choice(MODELS)
        dims, input_type = rng.choice(dims_options), rng.choice(types)
        texts = [rng.choice(POOL) for _ in range(rng.randint(1, 40))]
        body: dict[str, Any] = {"model": model, "input": texts, "encoding_format": rng.choice(["float", "base64"])}
        if dims:
            body["dimensions"] = dims
        if input_type:
            body["input_type"] = input_type
        before = len(upstream.requests)
        # when the cached key asks for it
        got = embed(cached, CACHED_A, body)
        sent = sent_texts(upstream, before)
        # and a key without the cache asks for the same (the provider serves every input)
        reference = embed(cached, DEV_KEY, body)
        # then every vector is the provider's, in input order: base64 bit for bit, floats equal
        assert [d["index"] for d in got["data"]] == list(range(len(texts)))
        assert [d["embedding"] for d in got["data"]] == [d["embedding"] for d in reference["data"]]
        # only what was never bought went upstream, once each
        entries = [(weights, dims, input_type, t) for t in texts]
        new = [t for e, t in zip(entries, texts, strict=True) if e not in seen]
        assert sorted(sent) == sorted(set(new))
        assert got["usage"]["cached_inputs"] == len(texts) - len(new)
        if not new:
            assert got["usage"]["cost"] == 0 and got["usage"]["total_tokens"] == 0
        seen.update(entries)


def test_base64_from_the_cache_is_the_providers_text_and_float_its_float32(cached: Any) -> None:
    body = {"model": "openai/text-embedding-3-small", "input": POOL[:5], "encoding_format": "base64"}
    first = embed(cached, CACHED_A, body)
    again = embed(cached, CACHED_A, body)
    as_float = embed(cached, CACHED_A, {**body, "encoding_format": "float"})
    assert again["usage"]["cached_inputs"] == 5 and as_float["usage"]["cached_inputs"] == 5
    assert [d["embedding"] for d in again["data"]] == [d["embedding"] for d in first["data"]]
    for d, text in zip(as_float["data"], POOL[:5], strict=True):
        assert array("f", d["embedding"]) == provider_vector(text, 1536, None)


# -- the interface ------------------------------------------------------------------------------------------------


def test_no_cache_skips_the_read_but_writes_and_no_store_skips_the_write(cached: Any, upstream: FakeUpstream) -> None:
    body = {"model": "openai/text-embedding-3-small", "input": POOL[:3]}
    # no-store: served by the provider, and nothing kept
    assert embed(cached, CACHED_A, body, **{"Cache-Control": "no-store"})["usage"]["cached_inputs"] == 0
    assert embed(cached, CACHED_A, body, **{"Cache-Control": "no-cache"})["usage"]["cached_inputs"] == 0
    # no-cache wrote: the next plain request is answered from the cache
    before = len(upstream.requests)
    assert embed(cached, CACHED_A, body)["usage"]["cached_inputs"] == 3
    assert len(upstream.requests) == before
    # both: the cache is left alone entirely
    assert embed(cached, CACHED_A, body, **{"Cache-Control": "no-cache, no-store"})["usage"]["cached_inputs"] == 0


def test_usage_records_and_reports_show_cached_inputs_and_what_they_saved(cached: Any, settings: Settings) -> None:
    body = {"model": "openai/text-embedding-3-small", "input": POOL[:4]}
    paid = embed(cached, CACHED_A, body)
    free = embed(cached, CACHED_A, body)
    assert paid["usage"]["cost"] > 0 and free["usage"]["cost"] == 0 and free["usage"]["cached_inputs"] == 4
    records = sorted(usage_records(settings), key=lambda r: r["ts"]["S"])
    assert [int(r["cached_inputs"]["N"]) for r in records if r["key_id"]["S"] == "key_ca"] == [0, 4]
    day = records[-1]["ts"]["S"][:10]
    report = cached.get(f"/v1/usage?start={day}&end={day}", headers=auth(CACHED_A)).json()
    assert report["totals"]["cached_inputs"] == 4 and report["totals"]["requests"] == 2
    assert report["totals"]["cost_saved"] > 0 and report["totals"]["cost"] == pytest.approx(paid["usage"]["cost"])


def test_a_plan_without_the_cache_reports_zero_cached_inputs(cached: Any) -> None:
    body = {"model": "openai/text-embedding-3-small", "input": POOL[:2]}
    embed(cached, DEV_KEY, body)
    assert embed(cached, DEV_KEY, body)["usage"]["cached_inputs"] == 0


# -- isolation ----------------------------------------------------------------------------------------------------


def test_another_key_never_hits_a_keys_entries_but_a_plan_scope_shares(cached: Any, upstream: FakeUpstream) -> None:
    body = {"model": "openai/text-embedding-3-small", "input": POOL[:3]}
    embed(cached, CACHED_A, body)
    assert embed(cached, CACHED_B, body)["usage"]["cached_inputs"] == 0  # same plan, scope "key"
    embed(cached, SHARED_A, body)
    assert embed(cached, SHARED_B, body)["usage"]["cached_inputs"] == 3  # scope "plan"


def test_a_revoked_keys_entries_are_unreachable(cached: Any, settings: Settings) -> None:
    from embedrank_tools.accounts import revoke_key

    body = {"model": "openai/text-embedding-3-small", "input": POOL[:2]}
    embed(cached, CACHED_A, body)
    revoke_key(Stores(settings, boto3.client("dynamodb")), "key_ca")
    cached.app.state.services.auth._keys.clear()
    assert cached.post("/v1/embeddings", json=body, headers=auth(CACHED_A)).status_code == 401


def test_a_route_and_its_direct_model_share_entries(cached: Any) -> None:
    body = {"model": "cohere/embed-english-v3.0", "input": POOL[:3], "input_type": "document"}
    embed(cached, CACHED_A, body)
    hit = embed(cached, CACHED_A, {**body, "model": "route/cohere-embed-v3-english-3"})
    assert hit["usage"]["cached_inputs"] == 3
    # and a query is another vector than a document
    assert embed(cached, CACHED_A, {**body, "input_type": "query"})["usage"]["cached_inputs"] == 0


# -- faults -------------------------------------------------------------------------------------------------------


class Faulty:
    """The DynamoDB client, with one batch operation failing as AWS fails."""

    def __init__(self, real: Any, operation: str, code: str) -> None:
        self.real, self.operation, self.code = real, operation, code

    def __getattr__(self, name: str) -> Any:
        if name == self.operation:

            def fail(**_: Any) -> Any:
                from botocore.exceptions import ClientError

                raise ClientError({"Error": {"Code": self.code, "Message": "injected"}}, name)

            return fail
        return getattr(self.real, name)


@pytest.mark.parametrize(
    ("operation", "code"),
    [
        ("batch_get_item", "ProvisionedThroughputExceededException"),
        ("batch_get_item", "ResourceNotFoundException"),
        ("batch_write_item", "ThrottlingException"),
        ("batch_write_item", "ValidationException"),  # an item too large
    ],
)
def test_a_failing_cache_never_fails_the_request(
    cached: Any, settings: Settings, operation: str, code: str, log_stream: Any
) -> None:
    services = cached.app.state.services
    body = {"model": "openai/text-embedding-3-small", "input": POOL[:3], "encoding_format": "base64"}
    reference = embed(cached, DEV_KEY, body)
    # given the cache table failing
    faulty = Faulty(boto3.client("dynamodb"), operation, code)
    services.cache = EmbeddingCache(CacheStore(Stores(settings, faulty)))  # type: ignore[arg-type]
    # when a cached key asks, twice
    first, second = embed(cached, CACHED_A, body), embed(cached, CACHED_A, body)
    # then the provider serves it, exactly, and the failure is logged (no key, no text)
    assert [d["embedding"] for d in first["data"]] == [d["embedding"] for d in reference["data"]]
    assert [d["embedding"] for d in second["data"]] == [d["embedding"] for d in reference["data"]]
    assert second["usage"]["cached_inputs"] == 0
    lines = [json.loads(x) for x in log_stream.getvalue().splitlines() if x.startswith("{")]
    failures = [x for x in lines if x["message"].startswith("embedding cache unavailable")]
    assert failures and failures[0]["error_code"] == code
    assert POOL[0] not in log_stream.getvalue() and CACHED_A not in log_stream.getvalue()


def test_a_corrupted_entry_is_never_returned(cached: Any, settings: Settings) -> None:
    body = {"model": "openai/text-embedding-3-small", "input": POOL[:2], "encoding_format": "base64"}
    reference = embed(cached, DEV_KEY, body)
    # given the first input's entry holds the wrong number of bytes
    deployment = catalog().deployments["openai/text-embedding-3-small"]
    services = cached.app.state.services
    plan = services.stores.get_plan("cached")
    [key] = entry_keys(policy(plan, "key_ca", None), deployment, POOL[:1], None, width=1536, native=False)  # type: ignore[arg-type]
    boto3.client("dynamodb").put_item(
        TableName=settings.cache_table,
        Item={"k": {"B": key}, "v": {"B": b"\x00" * 1000}, "expires_at": {"N": "9999999999"}},
    )
    # when it is asked for, then the provider's vector comes back, and the entry is replaced
    got = embed(cached, CACHED_A, body)
    assert [d["embedding"] for d in got["data"]] == [d["embedding"] for d in reference["data"]]
    assert got["usage"]["cached_inputs"] == 0
    assert embed(cached, CACHED_A, body)["usage"]["cached_inputs"] == 2


def test_a_large_batch_reads_and_writes_in_parallel_chunks(cached: Any, upstream: FakeUpstream) -> None:
    texts = [f"document {i}" for i in range(450)]
    body = {"model": "openai/text-embedding-3-small", "input": texts, "dimensions": 256, "encoding_format": "base64"}
    first = embed(cached, CACHED_A, body)
    second = embed(cached, CACHED_A, {**body, "input": texts[::-1]})
    assert second["usage"]["cached_inputs"] == 450
    assert [d["embedding"] for d in second["data"]] == [d["embedding"] for d in first["data"]][::-1]


def test_in_lambda_an_entry_is_written_before_the_answer_and_hit_by_the_next_invocation(
    aws: None, settings: Settings, upstream: FakeUpstream
) -> None:
    import embeddings_handler

    from embedrank_tools.accounts import load_plans
    from lambda_harness import event, invoke, wired

    # given the dev key's plan with the cache on, and the embeddings function as Lambda runs it (Mangum)
    ultra = next(p for p in load_plans() if p["name"] == "ultra")
    Stores(settings, boto3.client("dynamodb")).put_plan({**ultra, "embedding_cache_days": 1})
    upstream.handler = providers
    handler = wired(embeddings_handler, upstream)
    body = {"model": "openai/text-embedding-3-small", "input": POOL[:4]}
    request = event("POST", "/v1/embeddings", body, headers={"x-api-key": DEV_KEY})
    # when two invocations ask for the same inputs
    status, _, first = invoke(handler, request)
    calls = len(upstream.requests)
    status2, _, second = invoke(handler, request)
    # then the second is answered from what the first wrote before it returned
    assert status == status2 == 200
    assert (first["usage"]["cached_inputs"], second["usage"]["cached_inputs"]) == (0, 4)
    assert len(upstream.requests) == calls and second["data"] == first["data"]
