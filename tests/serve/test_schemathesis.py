"""Schemathesis against the real local server (`make serve`'s app, tests/live.py) and its fake OpenAI/Cohere upstream.

Every operation in the served /openapi.json gets its documented examples plus a bounded number of generated requests,
valid and invalid (hypothesis, derandomized so a run is reproducible). Each response must be no 5xx, carry a
documented status, content type and headers, and match the documented schema. A third of the generated bodies get a
model the fake upstream serves, so generation reaches the providers and the success paths, not only 404s.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from embedrank.api.endpoints import ENDPOINTS, OPENAPI_PATH
from live import LIVE_KEY, SEEN

EXAMPLES = 25  # generated requests per operation (valid and invalid); ~15 s for the whole API on 2 cores
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Models the fake upstream in tests/live.py answers for (OpenAI /v1/embeddings, Cohere /v2/embed and /v2/rerank).
SERVED = {
    "embeddings": ["openai/text-embedding-3-small", "cohere/embed-english-v3.0", "route/cohere-embed-v3-english-3"],
    "rerank": ["cohere/rerank-v3.5", "route/cohere-rerank-v4.0-pro"],
}


@pytest.fixture(scope="module")
def api_schema(live_server: str) -> Any:
    schema = schemathesis.openapi.from_url(
        f"{live_server}/openapi.json",
        config=schemathesis.Config.from_dict(
            {
                # Coverage enumerates every boundary of every field (hundreds of requests per operation): the
                # examples and the bounded fuzzing below keep the run within its time budget.
                "phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}},
            }
        ),
    )

    @schema.hook
    def flatmap_body(context: schemathesis.HookContext, body: Any) -> Any:
        family = "rerank" if "rerank" in (context.operation.path if context.operation else "") else "embeddings"
        if not isinstance(body, dict) or "model" not in body:
            return st.just(body)
        served = [{**body, "model": model} for model in SERVED[family]]
        return st.one_of(st.just(body), st.sampled_from(served))

    return schema


# One test per operation, listed from the endpoint table (the schema itself is only served once the server runs).
# schemathesis' own pytest integration (from_fixture + parametrize) does not run under pytest 9, so the operations'
# strategies are driven with hypothesis directly.
OPERATIONS = [(e.method, re.sub(r"\{(\w+):path\}", r"{\1}", path)) for e in ENDPOINTS.values() for path in e.paths]
OPERATIONS.append(("GET", OPENAPI_PATH))
# The operations whose bodies name a model: their examples are in the document, and generation reaches a provider.
MODEL_OPERATIONS = {(e.method, p) for e in ENDPOINTS.values() if e.tag in ("embeddings", "rerank") for p in e.paths}
SETTINGS = settings(
    deadline=None,
    derandomize=True,  # the same requests on every run: a failure reproduces
    database=None,
    suppress_health_check=list(HealthCheck),
)


def drive(strategy: Any, max_examples: int) -> None:
    @settings(SETTINGS, max_examples=max_examples)
    @given(strategy)
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(headers={"X-API-Key": LIVE_KEY}, checks=CHECKS, timeout=30)

    run()


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_api_conforms_to_its_openapi_document(api_schema: Any, method: str, path: str) -> None:
    operation = api_schema[path][method]
    examples = operation.get_strategies_from_examples()
    for example in examples:
        drive(example, 1)
    upstream_calls = len(SEEN.requests)
    modes = [GenerationMode.POSITIVE]
    if operation.body or operation.query:  # something to make invalid besides the (overridden) key
        modes.append(GenerationMode.NEGATIVE)
    strategy = st.one_of([operation.as_strategy(mode) for mode in modes])
    drive(strategy, EXAMPLES)
    if (method, path) in MODEL_OPERATIONS:
        assert len(examples) == 2  # the request models' examples are in the document and were sent
        # Generation reached the provider too, not only validation errors and unknown models.
        assert len(SEEN.requests) > upstream_calls
