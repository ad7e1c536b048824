"""The README's table of the largest request each model answers in each deployment mode is what the API says
(``GET /v1/models``' ``limits``, from ``api/sizes.py``)."""

from __future__ import annotations

from readme import block

from embedrank.domain.catalog import load_catalog
from embedrank.domain.models import model_limits


def limits_table() -> str:
    catalog = load_catalog()
    rows = [
        "| model | dims | streaming: float / float+gzip / base64 | buffered: float / float+gzip / base64 |",
        "|---|---|---|---|",
    ]
    documents = set()
    for model_id in catalog.model_ids():
        chain = catalog.routes.get(model_id)
        deployments = tuple(catalog.deployments[d] for d in chain) if chain else (catalog.deployments[model_id],)
        limits = model_limits(deployments)
        if deployments[0].kind != "embedding":
            documents.add((limits["streaming"]["documents"], limits["buffered"]["documents"]))
            continue
        width = max(d.dimensions for d in deployments)
        cells = [
            " / ".join(str(limits[mode]["inputs"][k]) for k in ("float", "float_gzip", "base64"))  # type: ignore[literal-required]
            for mode in ("streaming", "buffered")
        ]
        rows.append(f"| `{model_id}` | {width} | {cells[0]} | {cells[1]} |")
    assert documents == {(1000, 1000)}  # every rerank model: its documents cap in both modes (answers are small)
    return "\n".join(rows)


def test_the_readme_states_each_models_largest_request_per_mode() -> None:
    expected = limits_table()
    assert block("limits") == expected, "the README's table is stale; it should read:\n" + expected
