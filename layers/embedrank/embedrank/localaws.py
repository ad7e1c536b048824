"""Make moto fast enough for many requests in a row (the tests, and the bench's in-process AWS-call counts;
``make serve`` uses devaws instead).

moto rolls a failed ``TransactWriteItems`` back by deep-copying, before every transaction, each whole table it
touches. The usage write is one transaction per request into a table that grows by a record per request, so the copy
makes every request slower than the last (~100 ms after a thousand requests, measured with ``make bench``). Here the
rollback snapshot holds only the items the transaction names, which is all a rollback needs. Never used in Lambda.
"""

from __future__ import annotations

import copy
from typing import Any

_PATCHED: dict[str, bool] = {}


class _TablesByReference:
    """Stands in for the ``copy`` module inside moto's DynamoDB backend: tables are not copied, anything else is."""

    def __init__(self, table_type: type) -> None:
        self._table_type = table_type

    def deepcopy(self, value: Any, memo: dict[int, Any] | None = None) -> Any:
        if isinstance(value, self._table_type):
            return value
        return copy.deepcopy(value, memo)


def item_level_transactions() -> None:
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

    models.copy = _TablesByReference(Table)  # type: ignore[attr-defined,assignment]
    models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    _PATCHED["done"] = True
