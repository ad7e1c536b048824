"""The README's embedding-cache cost table is computed from the catalog and DynamoDB's on-demand prices."""

from __future__ import annotations

import math

from readme import block

from embedrank.domain.catalog import load_catalog

# DynamoDB on-demand, us-east-1, Standard table class, since the November 2024 price cut (aws.amazon.com/dynamodb/
# pricing/on-demand): per million write / read request units, per GB-month stored.
WRU, RRU, GB_MONTH = 0.625, 0.125, 0.25
ITEM_OVERHEAD = 100  # bytes DynamoDB adds to each item for storage (its indexing overhead)
TOKENS_PER_INPUT = 500  # a typical retrieval chunk


def item_bytes(dims: int) -> int:
    """An entry's DynamoDB size: attribute names plus values: k (32 bytes), v (float32 x dims), expires_at (a
    10-digit number, 6 bytes as DynamoDB sizes numbers)."""
    return (1 + 32) + (1 + 4 * dims) + (len("expires_at") + 6)


def cost_table() -> str:
    rows = [
        "| model | dims | entry | write (WRU) | read, strongly consistent (RRU) | stored a month "
        "| provider, 500 tokens | hits that pay for the write |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for d in load_catalog().deployments.values():
        if d.kind != "embedding":
            continue
        size = item_bytes(d.dimensions)
        wru, rru = math.ceil(size / 1024), math.ceil(size / 4096)
        write, read = wru * WRU, rru * RRU  # USD per million entries / hits
        stored = (size + ITEM_OVERHEAD) * 1e6 / 1e9 * GB_MONTH
        provider = TOKENS_PER_INPUT * d.price_per_mtok  # USD per million inputs
        pays = f"{write / (provider - read):.2f}" if provider > read else "never (the model costs less than a read)"
        rows.append(
            f"| `{d.id}` | {d.dimensions} | {size / 1024:.1f} KB | {wru}: ${write:.2f} | {rru}: ${read:.2f} "
            f"| ${stored:.2f} | ${provider:.2f} | {pays} |"
        )
    return "\n".join(rows)


def test_the_readme_cost_table_is_computed_from_the_catalog() -> None:
    expected = cost_table()
    assert block("cache-costs") == expected, "the README's table is stale; it should read:\n" + expected
