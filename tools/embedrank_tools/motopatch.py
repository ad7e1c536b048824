"""One documented patch of moto, applied only by the dev tooling (``make serve``'s local AWS, the tests, the bench).

moto's ``DynamoDBBackend.transact_write_items`` deep-copies every table a transaction touches before running it, so
that it can restore them if the transaction is cancelled. The gateway's usage write is one transaction per request
into a table that grows by a record per request, so each request is slower than the last: measured against moto
server on the dev machine, a usage write took 143 ms after 800 requests (and keeps growing), against 10-11 ms with
this patch, flat. Here the rollback snapshot holds only the items the transaction names, which is all a rollback
needs: moto's own code still runs every operation, and a cancelled transaction still leaves every item as it was
(``tests/tooling/test_motopatch.py``).

``check()`` compares moto's method with the source this patch was written against; the tests call it, so a moto
upgrade that changes the method fails loudly instead of silently running the patch over code it no longer fits.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
from typing import Any

# sha256 of moto 5.2.5's DynamoDBBackend.transact_write_items source, which this patch wraps.
PATCHED_SOURCE_SHA256 = "81db2cb7d94e39c90b3a2077e1f4bb41a449c558ef9b1b1e2910fdaa39978ad4"
_PATCHED: dict[str, bool] = {}


class _TablesByReference:
    """Stands in for the ``copy`` module inside moto's DynamoDB backend: tables are not copied, anything else is."""

    def __init__(self, table_type: type) -> None:
        self._table_type = table_type

    def deepcopy(self, value: Any, memo: dict[int, Any] | None = None) -> Any:
        if isinstance(value, self._table_type):
            return value
        return copy.deepcopy(value, memo)


def source_digest() -> str:
    """The sha256 of moto's unpatched ``transact_write_items`` source."""
    from moto.dynamodb import models

    original = getattr(models.DynamoDBBackend.transact_write_items, "__wrapped__", None)
    method = original or models.DynamoDBBackend.transact_write_items
    return hashlib.sha256(inspect.getsource(method).encode()).hexdigest()


def check() -> None:
    """Raise when moto's method is no longer the one this patch was written for."""
    digest = source_digest()
    if digest != PATCHED_SOURCE_SHA256:
        raise RuntimeError(
            "moto's DynamoDBBackend.transact_write_items changed (source sha256 "
            f"{digest}); re-read embedrank_tools/motopatch.py against it, then update PATCHED_SOURCE_SHA256."
        )


def item_level_transactions() -> None:
    """Apply the patch (once per process)."""
    if _PATCHED.get("done"):
        return
    from moto.dynamodb import models
    from moto.dynamodb.models.table import Table

    original = models.DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        snapshots: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
        for entry in transact_items:
            op = next(iter(entry.values()))
            table = self.tables.get(op.get("TableName"))
            if table is None:
                continue
            key = op.get("Key")
            if key is None:  # a Put names its key inside the item
                key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = op["Item"][table.range_key_attr]
            current = self.get_item(op["TableName"], key)
            snapshots.append((op["TableName"], key, current.to_json()["Attributes"] if current else None))
        try:
            original(self, transact_items)
        except Exception:
            for table_name, key, attributes in reversed(snapshots):
                if attributes is None:
                    self.delete_item(table_name, key)
                else:
                    self.put_item(table_name, attributes)
            raise

    transact_write_items.__wrapped__ = original  # type: ignore[attr-defined]
    models.copy = _TablesByReference(Table)  # type: ignore[attr-defined,assignment]
    models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    _PATCHED["done"] = True
