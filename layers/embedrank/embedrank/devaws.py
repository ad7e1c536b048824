"""devaws: a small in-memory local AWS (DynamoDB and Secrets Manager) for ``make serve`` and the tests.

It speaks the real wire protocol (JSON over HTTP/1.1 with keep-alive, ``X-Amz-Target`` dispatch, AWS's error
shapes), so unmodified boto3 clients work against it through ``endpoint_url`` or ``AWS_ENDPOINT_URL_DYNAMODB`` /
``AWS_ENDPOINT_URL_SECRETS_MANAGER``. Any credentials are accepted; nothing is signed or checked. One lock
serializes every operation, which gives DynamoDB's item-level atomicity (a conditional update is atomic, a
transaction all-or-nothing). An item is a dict lookup away; a partition keeps its sort keys in a sorted list.

Only the operations the project makes (the gateway, the CLI, ``provision``, and boto3's waiters and paginators):
DynamoDB: CreateTable (hash / range keys, global secondary indexes with ALL / KEYS_ONLY / INCLUDE projections),
DescribeTable, ListTables (one page), UpdateTimeToLive / DescribeTimeToLive (recorded; nothing expires), GetItem,
PutItem, UpdateItem, Query, Scan, TransactWriteItems, TransactGetItems, with AWS's validation and error shapes; the
expression language is in ``devaws_expressions``. Query and Scan page at ``Limit`` and at 1 MB, as DynamoDB does.
Secrets Manager: CreateSecret, PutSecretValue, GetSecretValue.

Not covered: any other operation (an ``UnknownOperationException``, as AWS answers one it does not know), ListTables
paging, local secondary indexes, streams, PartiQL, parallel scans, the legacy parameters (``Expected``,
``AttributeUpdates``, ``KeyConditions``, ...), capacity accounting, throttling, TTL expiry, persistence, SigV4
checks, secret deletion, rotation and resource policies.

Standalone: ``python -m embedrank.devaws --host 127.0.0.1 --port 4566`` (prints its endpoint when it is ready).
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import re
import socket
import socketserver
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache, partial
from typing import Any

import orjson

from .devaws_expressions import (
    AV,
    And,
    BeginsWith,
    Between,
    Compare,
    Condition,
    Ctx,
    Invalid,
    Item,
    Operand,
    Parsed,
    Path,
    PathRef,
    Projection,
    Update,
    ValueRef,
    item_size,
    parse_condition,
    parse_projection,
    parse_update,
    project,
    sort_key,
    type_of,
    validate_item,
    validate_value,
)

ACCOUNT = "123456789012"
PAGE_BYTES = 1 << 20
ITEM_BYTES = 400 * 1024
PIV = "One or more parameter values were invalid: "
DYNAMODB_ERROR = "com.amazonaws.dynamodb.v20120810#"
LEGACY = frozenset(("Expected", "AttributeUpdates", "KeyConditions", "QueryFilter", "ScanFilter", "AttributesToGet"))
TABLE_NAME = re.compile(r"[a-zA-Z0-9_.-]{3,255}")
REGION = re.compile(rb"Credential=[^/]*/[^/]*/([^/]*)/")
Body = dict[str, Any]
Operation = Callable[[Body, str], Body]  # (request, region) -> answer


class AwsError(Exception):
    """An error answer other than a ValidationException (that is ``Invalid``), with any modeled fields."""

    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code, self.message, self.extra = code, message, extra


def require(ok: bool, message: str) -> None:
    if not ok:
        raise Invalid(message)


def present[T](value: T | None, message: str) -> T:
    """``value``, or a ValidationException with ``message`` when it is None."""
    if value is None:
        raise Invalid(message)
    return value


# -- tables -------------------------------------------------------------------------------------------------------

TableKey = tuple[Any, Any]  # (hash sort key, range sort key or ())


@dataclass(frozen=True, slots=True)
class KeySchema:
    hash: str
    range: str | None
    types: dict[str, str]  # attribute -> S / N / B

    @classmethod
    def parse(cls, schema: Any, definitions: dict[str, str]) -> KeySchema:
        kinds = [s.get("KeyType") for s in schema] if isinstance(schema, list) else []
        require(kinds in (["HASH"], ["HASH", "RANGE"]), "Invalid KeySchema: one HASH key, then at most one RANGE key")
        names = [str(s.get("AttributeName")) for s in schema]
        missing = [n for n in names if n not in definitions]
        require(
            not missing,
            f"{PIV}Some index key attributes are not defined in AttributeDefinitions. Keys: [{', '.join(missing)}], "
            f"AttributeDefinitions: [{', '.join(definitions)}]",
        )
        return cls(names[0], names[1] if len(names) > 1 else None, {n: definitions[n] for n in names})

    @property
    def names(self) -> tuple[str, ...]:
        return (self.hash,) if self.range is None else (self.hash, self.range)

    def describe(self) -> list[dict[str, str]]:
        return [{"AttributeName": n, "KeyType": k} for n, k in zip(self.names, ("HASH", "RANGE"), strict=False)]

    def of(self, item: Item) -> TableKey | None:
        """The key of an item, or None when it lacks a key attribute or has one of another type (an index skips it)."""
        values = []
        for name in self.names:
            value = item.get(name)
            if value is None or self.types[name] not in value:
                return None
            values.append(sort_key(value))
        return values[0], values[1] if len(values) > 1 else ()


class Partition:
    """One hash key's items: a dict by sort key, and the sort keys in order."""

    __slots__ = ("items", "order")

    def __init__(self) -> None:
        self.items: dict[Any, Item] = {}
        self.order: list[Any] = []

    def put(self, sk: Any, item: Item) -> None:
        if sk not in self.items:
            bisect.insort(self.order, sk)
        self.items[sk] = item

    def delete(self, sk: Any) -> None:
        if self.items.pop(sk, None) is not None:
            del self.order[bisect.bisect_left(self.order, sk)]


@dataclass(frozen=True, slots=True)
class Bounds:
    """A range key condition as sort-key bounds: ``low`` / ``high`` are (value, inclusive) or None."""

    low: tuple[Any, bool] | None = None
    high: tuple[Any, bool] | None = None

    def slice(self, order: list[Any]) -> tuple[int, int]:
        start, end = 0, len(order)
        if self.low is not None:
            start = (bisect.bisect_left if self.low[1] else bisect.bisect_right)(order, self.low[0])
        if self.high is not None:
            end = (bisect.bisect_right if self.high[1] else bisect.bisect_left)(order, self.high[0])
        return start, end

    def admits(self, sk: Any) -> bool:
        if self.low is not None and (sk < self.low[0] or (sk == self.low[0] and not self.low[1])):
            return False
        return self.high is None or sk < self.high[0] or (sk == self.high[0] and self.high[1])


def _prefix_end(prefix: Any) -> Any:
    """The smallest value above every value starting with ``prefix`` (str or bytes), or None when there is none."""
    if isinstance(prefix, str):
        prefix = prefix.rstrip("\U0010ffff")
        return prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix else None
    prefix = prefix.rstrip(b"\xff")
    return prefix[:-1] + bytes([prefix[-1] + 1]) if prefix else None


@dataclass
class Index:
    """A global secondary index: its entries by index hash key, kept in step with every write to the table."""

    name: str
    schema: KeySchema
    projection: dict[str, Any]
    entries: dict[Any, dict[TableKey, Item]] = field(default_factory=dict)

    def project(self, item: Item, table: KeySchema) -> Item:
        kind = self.projection.get("ProjectionType")
        if kind == "ALL":
            return item
        extra = self.projection.get("NonKeyAttributes", []) if kind == "INCLUDE" else []
        keep = {*table.names, *self.schema.names, *extra}
        return {k: v for k, v in item.items() if k in keep}

    def ordered(self, hash_sk: Any | None = None) -> list[tuple[Any, Item]]:
        """(position, item) in index order: one index partition, or all of them (a scan)."""
        groups = [(hash_sk, self.entries.get(hash_sk, {}))] if hash_sk is not None else self.entries.items()
        out = []
        for h, group in groups:
            for tk, item in group.items():
                rk = sort_key(item[self.schema.range]) if self.schema.range else ()
                out.append(((h, rk, tk), item))
        out.sort(key=lambda e: e[0])
        return out


class Table:
    def __init__(self, name: str, schema: KeySchema, definitions: list[Any], spec: Body, region: str) -> None:
        self.name, self.schema, self.definitions = name, schema, definitions
        self.arn = f"arn:aws:dynamodb:{region}:{ACCOUNT}:table/{name}"
        self.billing = spec.get("BillingMode", "PROVISIONED")
        self.throughput = spec.get("ProvisionedThroughput") or {}
        self.created = time.time()
        self.table_id = str(uuid.uuid4())
        self.ttl: Body = {"TimeToLiveStatus": "DISABLED"}
        self.indexes: dict[str, Index] = {}
        self.partitions: dict[Any, Partition] = {}
        self._hashes: list[Any] | None = None  # sorted partition keys, rebuilt when partitions come or go

    def describe(self) -> Body:
        throughput = {"NumberOfDecreasesToday": 0, "ReadCapacityUnits": 0, "WriteCapacityUnits": 0}
        throughput |= self.throughput
        indexes = [
            {"IndexName": ix.name, "KeySchema": ix.schema.describe(), "Projection": ix.projection,
             "IndexStatus": "ACTIVE", "ProvisionedThroughput": throughput, "IndexSizeBytes": 0,
             "ItemCount": sum(len(g) for g in ix.entries.values()), "IndexArn": f"{self.arn}/index/{ix.name}"}
            for ix in self.indexes.values()
        ]  # fmt: skip
        return {
            "AttributeDefinitions": self.definitions,
            "TableName": self.name,
            "KeySchema": self.schema.describe(),
            "TableStatus": "ACTIVE",
            "CreationDateTime": self.created,
            "ProvisionedThroughput": throughput,
            "TableSizeBytes": sum(item_size(i) for p in self.partitions.values() for i in p.items.values()),
            "ItemCount": sum(len(p.items) for p in self.partitions.values()),
            "TableArn": self.arn,
            "TableId": self.table_id,
            "BillingModeSummary": {"BillingMode": self.billing},
            "DeletionProtectionEnabled": False,
            **({"GlobalSecondaryIndexes": indexes} if indexes else {}),
        }

    # -- keys --
    def key(self, key: Any, bad: str = "The provided key element does not match the schema") -> tuple[TableKey, Item]:
        """The table key of a request's ``Key`` (exactly the key attributes, of the right types), and the ``Key``."""
        require(isinstance(key, dict) and set(key) == set(self.schema.names), bad)
        key = validate_item(key)
        return present(self.schema.of(key), bad), key

    def item_key(self, item: Item) -> tuple[TableKey, Item]:
        """The table key of a whole item being written, with DynamoDB's messages for what is wrong with it."""
        for name in self.schema.names:  # (messages built only when needed: this is on the hot path)
            value = item.get(name)
            if value is None:
                raise Invalid(f"{PIV}Missing the key {name} in the item")
            wanted, actual = self.schema.types[name], type_of(value)
            if wanted != actual:
                raise Invalid(f"{PIV}Type mismatch for key {name} expected: {wanted} actual: {actual}")
            if value[actual] == "":
                raise Invalid(
                    "One or more parameter values are not valid. The AttributeValue for a key attribute cannot "
                    f"contain an empty string value. Key: {name}"
                )
        return self.schema.of(item), {name: item[name] for name in self.schema.names}  # type: ignore[return-value]

    def check_written(self, item: Item) -> None:
        """What DynamoDB checks on an item about to be stored: its size, and the types of index key attributes."""
        if len(orjson.dumps(item)) > ITEM_BYTES:  # the JSON is never smaller than DynamoDB's size
            require(item_size(item) <= ITEM_BYTES, "Item size has exceeded the maximum allowed size")
        for ix in self.indexes.values():
            for name in ix.schema.names:
                value = item.get(name)
                if value is None:
                    continue
                wanted, actual = ix.schema.types[name], type_of(value)
                if wanted != actual:
                    raise Invalid(
                        f"{PIV}Type mismatch for Index Key {name} Expected: {wanted} Actual: {actual} "
                        f"IndexName: {ix.name}"
                    )
                if value[actual] == "":
                    raise Invalid(
                        "One or more parameter values are not valid. A value specified for a secondary index key is "
                        "not supported. The AttributeValue for a key attribute cannot contain an empty string value. "
                        f"IndexName: {ix.name}, IndexKey: {name}"
                    )

    # -- items --
    def get(self, key: TableKey) -> Item | None:
        part = self.partitions.get(key[0])
        return part.items.get(key[1]) if part is not None else None

    def store(self, key: TableKey, item: Item | None) -> None:
        """Put (or, with None, delete) one item, keeping the indexes in step."""
        old = self.get(key)
        if old is not None:
            for ix in self.indexes.values():
                ik = ix.schema.of(old)
                if ik is not None:
                    group = ix.entries[ik[0]]
                    del group[key]
                    if not group:
                        del ix.entries[ik[0]]
        part = self.partitions.get(key[0])
        if item is None:
            if part is not None:
                part.delete(key[1])
                if not part.items:
                    del self.partitions[key[0]]
                    self._hashes = None
            return
        if part is None:
            part = self.partitions[key[0]] = Partition()
            self._hashes = None
        part.put(key[1], item)
        for ix in self.indexes.values():
            ik = ix.schema.of(item)
            if ik is not None:
                ix.entries.setdefault(ik[0], {})[key] = item

    def in_partition(self, hash_sk: Any, bounds: Bounds, forward: bool, after: Any | None) -> Iterator[Item]:
        """One partition's items within ``bounds``, in order or reversed, starting after the sort key ``after``."""
        part = self.partitions.get(hash_sk)
        if part is None:
            return
        start, end = bounds.slice(part.order)
        if after is not None and forward:
            start = max(start, bisect.bisect_right(part.order, after))
        elif after is not None:
            end = min(end, bisect.bisect_left(part.order, after))
        for sk in part.order[start:end] if forward else part.order[start:end][::-1]:
            yield part.items[sk]

    def everything(self, after: TableKey | None) -> Iterator[Item]:
        """Every item in a stable order (hash key, then range key), starting after the table key ``after``."""
        if self._hashes is None:
            self._hashes = sorted(self.partitions)
        hashes = self._hashes
        for h in hashes[0 if after is None else bisect.bisect_left(hashes, after[0]) :]:
            part = self.partitions.get(h)
            if part is not None:
                first = bisect.bisect_right(part.order, after[1]) if after is not None and h == after[0] else 0
                for sk in part.order[first:]:
                    yield part.items[sk]


# -- one request's pieces -----------------------------------------------------------------------------------------

_PARSERS: dict[str, Callable[[str], Parsed]] = {
    "ConditionExpression": partial(parse_condition, kind="ConditionExpression"),
    "FilterExpression": partial(parse_condition, kind="FilterExpression"),
    "KeyConditionExpression": partial(parse_condition, kind="KeyConditionExpression"),
    "UpdateExpression": parse_update,
    "ProjectionExpression": parse_projection,
}


@lru_cache(maxsize=1024)
def _parse_all(texts: tuple[tuple[str, str], ...]) -> tuple[dict[str, Parsed], frozenset[str], frozenset[str]]:
    """A request's expressions, parsed, with every ``#name`` and ``:value`` they use (cached: the hot path repeats)."""
    parsed = {param: _PARSERS[param](text) for param, text in texts}
    names = frozenset(n for p in parsed.values() for n in p.names)
    return parsed, names, frozenset(v for p in parsed.values() for v in p.values)


def expressions(body: Body, allowed: tuple[str, ...]) -> tuple[Ctx, dict[str, Parsed]]:
    """Parse a request's expressions and bind its names and values, with DynamoDB's checks on both."""
    if not LEGACY.isdisjoint(body):
        raise Invalid(f"devaws does not support the legacy parameter {min(LEGACY.intersection(body))}")
    texts = tuple([(param, body[param]) for param in allowed if body.get(param) is not None])
    require(all([isinstance(text, str) for _, text in texts]), "An expression must be a string")
    parsed, used_names, used_values = _parse_all(texts)
    names, values = body.get("ExpressionAttributeNames"), body.get("ExpressionAttributeValues")
    for label, given in (("ExpressionAttributeNames", names), ("ExpressionAttributeValues", values)):
        if given is not None and not given:
            raise Invalid(f"{label} must not be empty")
        if given is not None and not parsed:
            raise Invalid(f"{label} can only be specified when using expressions")
    ctx = Ctx(names or {}, {k: validate_value(v) for k, v in (values or {}).items()})
    if used_names != ctx.names.keys() or used_values != ctx.values.keys():
        _placeholders(parsed, ctx, used_names, used_values)
    for p in parsed.values():
        if p.checks:
            p.check(ctx)
    return ctx, parsed


def _placeholders(parsed: dict[str, Parsed], ctx: Ctx, names: frozenset[str], values: frozenset[str]) -> None:
    """The error for a ``#name`` or ``:value`` that is used but not given, or given but not used."""
    for p in parsed.values():
        for name in sorted(p.names - ctx.names.keys()):
            raise Invalid(
                f"Invalid {p.kind}: An expression attribute name used in the document path is not defined; "
                f"attribute name: {name}"
            )
        for value in sorted(p.values - ctx.values.keys()):
            raise Invalid(
                f"Invalid {p.kind}: An expression attribute value used in expression is not defined; "
                f"attribute value: {value}"
            )
    for label, given, used in (
        ("ExpressionAttributeNames", ctx.names, names),
        ("ExpressionAttributeValues", ctx.values, values),
    ):
        unused = sorted(set(given) - used)
        require(not unused, f"Value provided in {label} unused in expressions: keys: {{{', '.join(unused)}}}")


def projected(item: Item, parsed: dict[str, Parsed], ctx: Ctx) -> Item:
    projection = parsed.get("ProjectionExpression")
    return project(item, projection.resolve(ctx)) if isinstance(projection, Projection) else item


class ConditionFailed(Exception):
    def __init__(self, old: Item | None) -> None:
        super().__init__("The conditional request failed")
        self.old = old


@dataclass
class Write:
    """One prepared write (PutItem, UpdateItem, or a transaction's action), checked but not yet run."""

    table: Table
    key: TableKey
    base: Item  # the key attributes
    kind: str  # Put, Update, Delete, ConditionCheck
    ctx: Ctx
    condition: Condition | None = None
    update: Update | None = None
    item: Item | None = None
    old_on_failure: bool = False

    def run(self) -> tuple[Item | None, Item | None, list[Path]]:
        """(old item, new item or None, paths an update wrote), without storing anything. Raises ConditionFailed,
        or Invalid for what depends on the item (an item-level ValidationException)."""
        old = self.table.get(self.key)
        if self.condition is not None and not self.condition.test(old or {}, self.ctx):
            raise ConditionFailed(old if self.old_on_failure else None)
        if self.kind in ("Delete", "ConditionCheck"):
            return old, None if self.kind == "Delete" else old, []
        paths: list[Path] = []
        if self.kind == "Put":
            new = self.item
        elif self.update is None:
            new = dict(old or self.base)
        else:
            new, paths = self.update.apply(old, self.base, self.ctx)
        assert new is not None
        self.table.check_written(new)
        return old, new, paths


def _return_values(mode: str, old: Item | None, new: Item | None, paths: list[Path]) -> Body:
    chosen = {"ALL_OLD": old, "ALL_NEW": new}.get(mode)
    if mode in ("UPDATED_OLD", "UPDATED_NEW"):
        before_or_after = old if mode == "UPDATED_OLD" else new
        chosen = project(before_or_after, paths) if before_or_after is not None else None
    return {"Attributes": chosen} if chosen else {}


def _key_bounds(condition: Condition, schema: KeySchema, ctx: Ctx) -> tuple[AV, Bounds]:
    """The hash key value and the range key bounds of a KeyConditionExpression: ``hash = :v``, and optionally one
    condition on the range key (=, <, <=, >, >=, BETWEEN, begins_with)."""
    terms: list[Any] = []
    pending = [condition.root]
    while pending:
        node = pending.pop()
        if isinstance(node, And):
            pending += [node.right, node.left]
        else:
            terms.append(node)
    require(len(terms) <= 2, "Conditions can be of length 1 or 2 only")
    hash_value: AV | None = None
    bounds = Bounds()
    for term in terms:
        operands: tuple[Operand, ...]
        if isinstance(term, Compare) and term.op != "<>":
            subject, operands, op = term.left, (term.right,), term.op
        elif isinstance(term, Between):
            subject, operands, op = term.subject, (term.low, term.high), "BETWEEN"
        elif isinstance(term, BeginsWith):
            subject, operands, op = term.subject, (term.prefix,), "begins_with"
        else:
            raise Invalid(f"Invalid operator used in KeyConditionExpression: {type(term).__name__.upper()}")
        simple = isinstance(subject, PathRef) and len(subject.elements) == 1
        require(simple and all(isinstance(o, ValueRef) for o in operands), "Query key condition not supported")
        assert isinstance(subject, PathRef)
        name = str(subject.resolve(ctx)[0])
        values = [o.get({}, ctx) for o in operands]
        require(name in schema.names, f"Query condition missed key schema element: {schema.range or schema.hash}")
        require(
            all(v is not None and type_of(v) == schema.types[name] for v in values),
            f"{PIV}Condition parameter type does not match schema type",
        )
        keys = [sort_key(v) for v in values if v is not None]
        if name == schema.hash:
            require(op == "=" and hash_value is None, "Query key condition not supported")
            hash_value = values[0]
        elif op in ("=", "BETWEEN"):
            bounds = Bounds((keys[0], True), (keys[-1], True))
        elif op in ("<", "<="):
            bounds = Bounds(None, (keys[0], op == "<="))
        elif op in (">", ">="):
            bounds = Bounds((keys[0], op == ">="), None)
        else:
            end = _prefix_end(keys[0])
            bounds = Bounds((keys[0], True), None if end is None else (end, False))
    return present(hash_value, f"Query condition missed key schema element: {schema.hash}"), bounds


def _unique(keys: list[Any], message: str) -> None:
    require(len(set(keys)) == len(keys), message)


# -- DynamoDB -----------------------------------------------------------------------------------------------------


class DynamoDB:
    """DynamoDB's operations over in-memory tables; the caller serializes calls."""

    def __init__(self) -> None:
        self.tables: dict[str, Table] = {}
        self.operations: dict[str, Operation] = {
            "CreateTable": self.create_table,
            "DescribeTable": lambda b, r: {"Table": self.table(b, describing=True).describe()},
            "ListTables": self.list_tables,
            "UpdateTimeToLive": self.update_time_to_live,
            "DescribeTimeToLive": lambda b, r: {"TimeToLiveDescription": self.table(b, describing=True).ttl},
            "GetItem": self.get_item,
            "PutItem": lambda b, r: self.write_item(b, "Put"),
            "UpdateItem": lambda b, r: self.write_item(b, "Update"),
            "Query": self.query,
            "Scan": self.scan,
            "TransactWriteItems": self.transact_write_items,
            "TransactGetItems": self.transact_get_items,
        }

    def table(self, body: Body, describing: bool = False) -> Table:
        name = body.get("TableName")
        table = self.tables.get(name) if isinstance(name, str) else None
        if table is None:
            suffix = f": Table: {name} not found" if describing else ""
            raise AwsError("ResourceNotFoundException", f"Requested resource not found{suffix}")
        return table

    # -- tables --
    def create_table(self, body: Body, region: str) -> Body:
        name = body.get("TableName")
        require(
            isinstance(name, str) and bool(TABLE_NAME.fullmatch(name)),
            f"1 validation error detected: Value '{name}' at 'tableName' failed to satisfy constraint: Member must "
            "satisfy regular expression pattern: [a-zA-Z0-9_.-]+ and have length between 3 and 255",
        )
        assert isinstance(name, str)
        if name in self.tables:
            raise AwsError("ResourceInUseException", f"Table already exists: {name}")
        require("LocalSecondaryIndexes" not in body, "devaws does not support local secondary indexes")
        definitions = body.get("AttributeDefinitions") or []
        types = {d["AttributeName"]: d["AttributeType"] for d in definitions}
        require(all(t in ("S", "N", "B") for t in types.values()), "AttributeType must be one of S, N, B")
        billing, throughput = body.get("BillingMode", "PROVISIONED"), "ProvisionedThroughput" in body
        require(
            billing != "PROVISIONED" or throughput,
            f"{PIV}ReadCapacityUnits and WriteCapacityUnits must both be specified when BillingMode is PROVISIONED",
        )
        require(
            billing != "PAY_PER_REQUEST" or not throughput,
            f"{PIV}Neither ReadCapacityUnits nor WriteCapacityUnits can be specified when BillingMode is "
            "PAY_PER_REQUEST",
        )
        table = Table(name, KeySchema.parse(body.get("KeySchema"), types), definitions, body, region)
        used = set(table.schema.names)
        for spec in body.get("GlobalSecondaryIndexes") or []:
            index_name, projection = spec.get("IndexName"), spec.get("Projection") or {}
            require(index_name not in table.indexes, f"{PIV}Duplicate index name: {index_name}")
            kind = projection.get("ProjectionType")
            require(kind in ("ALL", "KEYS_ONLY", "INCLUDE"), f"{PIV}Unknown ProjectionType: {kind}")
            require(
                (kind == "INCLUDE") == ("NonKeyAttributes" in projection),
                f"{PIV}NonKeyAttributes must be specified with, and only with, ProjectionType INCLUDE",
            )
            index = table.indexes[index_name] = Index(
                index_name, KeySchema.parse(spec.get("KeySchema"), types), projection
            )
            used.update(index.schema.names)
        require(
            used == set(types),
            f"{PIV}Some AttributeDefinitions are not used. AttributeDefinitions: [{', '.join(types)}], keys used: "
            f"[{', '.join(sorted(used))}]",
        )
        self.tables[name] = table
        return {"TableDescription": table.describe()}

    def list_tables(self, body: Body, region: str) -> Body:
        require(body.keys().isdisjoint(("Limit", "ExclusiveStartTableName")), "devaws does not page ListTables")
        return {"TableNames": sorted(self.tables)}

    def update_time_to_live(self, body: Body, region: str) -> Body:
        table = self.table(body, describing=True)
        spec = body.get("TimeToLiveSpecification") or {}
        enabled, attribute = spec.get("Enabled"), spec.get("AttributeName")
        require(isinstance(enabled, bool) and bool(attribute), "TimeToLiveSpecification needs Enabled, AttributeName")
        status = "ENABLED" if enabled else "DISABLED"
        require(table.ttl["TimeToLiveStatus"] != status, f"TimeToLive is already {status.lower()}")
        table.ttl = {"TimeToLiveStatus": status, **({"AttributeName": attribute} if enabled else {})}
        return {"TimeToLiveSpecification": {"Enabled": enabled, "AttributeName": attribute}}

    # -- items --
    def get_item(self, body: Body, region: str) -> Body:
        table = self.table(body)
        ctx, parsed = expressions(body, ("ProjectionExpression",))
        item = table.get(table.key(body.get("Key"))[0])
        return {"Item": projected(item, parsed, ctx)} if item is not None else {}

    def prepare(self, kind: str, body: Body) -> Write:
        """Check one write's request and expressions: every ValidationException that needs no item."""
        table = self.table(body)
        allowed = ("ConditionExpression", "UpdateExpression") if kind == "Update" else ("ConditionExpression",)
        ctx, parsed = expressions(body, allowed)
        condition, update = parsed.get("ConditionExpression"), parsed.get("UpdateExpression")
        require(kind != "ConditionCheck" or condition is not None, "A ConditionCheck needs a ConditionExpression")
        on_failure = body.get("ReturnValuesOnConditionCheckFailure", "NONE")
        require(on_failure in ("NONE", "ALL_OLD"), "ReturnValuesOnConditionCheckFailure must be NONE or ALL_OLD")
        item = validate_item(body.get("Item")) if kind == "Put" else None
        key, base = table.item_key(item) if item is not None else table.key(body.get("Key"))
        for action in update.actions if isinstance(update, Update) else []:
            name = action.path.resolve(ctx)[0]
            if name in table.schema.names:
                raise Invalid(f"{PIV}Cannot update attribute {name}. This attribute is part of the key")
        return Write(
            table, key, base, kind, ctx,
            condition=condition if isinstance(condition, Condition) else None,
            update=update if isinstance(update, Update) else None,
            item=item, old_on_failure=on_failure == "ALL_OLD",
        )  # fmt: skip

    def write_item(self, body: Body, kind: str) -> Body:
        mode = body.get("ReturnValues", "NONE")
        modes = (
            ("NONE", "ALL_OLD", "ALL_NEW", "UPDATED_OLD", "UPDATED_NEW") if kind == "Update" else ("NONE", "ALL_OLD")
        )
        require(mode in modes, "Return values set to invalid value")
        write = self.prepare(kind, body)
        try:
            old, new, paths = write.run()
        except ConditionFailed as failed:
            extra = {"Item": failed.old} if failed.old is not None else {}
            raise AwsError("ConditionalCheckFailedException", "The conditional request failed", **extra) from None
        write.table.store(write.key, new)
        return _return_values(mode, old, new, paths)

    # -- reads --
    def query(self, body: Body, region: str) -> Body:
        table = self.table(body)
        ctx, parsed = expressions(body, ("KeyConditionExpression", "FilterExpression", "ProjectionExpression"))
        key_condition = parsed.get("KeyConditionExpression")
        require(
            isinstance(key_condition, Condition),
            "Either the KeyConditions or KeyConditionExpression parameter must be specified in the request.",
        )
        assert isinstance(key_condition, Condition)
        index = self._index(table, body)
        schema = index.schema if index is not None else table.schema
        hash_value, bounds = _key_bounds(key_condition, schema, ctx)
        for ref in parsed["FilterExpression"].refs if "FilterExpression" in parsed else []:
            name = ref.resolve(ctx)[0]
            require(
                name not in schema.names,
                f"Filter Expression can only contain non-primary key attributes: Primary key attribute: {name}",
            )
        forward, start = body.get("ScanIndexForward", True) is not False, self._start(table, index, body)
        hash_sk = sort_key(hash_value)
        candidates: Iterable[Item]
        if index is not None:
            entries = index.ordered(hash_sk)
            candidates = (
                item for pos, item in (entries if forward else reversed(entries))
                if bounds.admits(pos[1]) and (start is None or (pos > start if forward else pos < start))
            )  # fmt: skip
        else:
            after = start[1] if start is not None and start[0] == hash_sk else None
            candidates = table.in_partition(hash_sk, bounds, forward, after)
        return self._page(table, index, candidates, body, parsed=parsed, ctx=ctx)

    def scan(self, body: Body, region: str) -> Body:
        table = self.table(body)
        ctx, parsed = expressions(body, ("FilterExpression", "ProjectionExpression"))
        require(body.get("TotalSegments", 1) == 1, "devaws does not support parallel scans (TotalSegments > 1)")
        index = self._index(table, body)
        start = self._start(table, index, body)
        candidates: Iterable[Item]
        if index is not None:
            candidates = (item for pos, item in index.ordered() if start is None or pos > start)
        else:
            candidates = table.everything(start)
        return self._page(table, index, candidates, body, parsed=parsed, ctx=ctx)

    def _index(self, table: Table, body: Body) -> Index | None:
        name = body.get("IndexName")
        if name is None:
            return None
        index = present(table.indexes.get(name), f"The table does not have the specified index: {name}")
        require(not body.get("ConsistentRead"), "Consistent reads are not supported on global secondary indexes")
        require(
            body.get("Select") != "ALL_ATTRIBUTES" or index.projection.get("ProjectionType") == "ALL",
            f"{PIV}Select type ALL_ATTRIBUTES is not supported for global secondary index {name} because its "
            "projection type is not ALL",
        )
        return index

    def _start(self, table: Table, index: Index | None, body: Body) -> Any | None:
        """Where a page starts (after ``ExclusiveStartKey``): a table key, or an index position."""
        start = body.get("ExclusiveStartKey")
        if start is None:
            return None
        bad = "The provided starting key is invalid: The provided key element does not match the schema"
        names = {*table.schema.names, *(index.schema.names if index else ())}
        require(isinstance(start, dict) and set(start) == names, bad)
        tk = table.key({k: start[k] for k in table.schema.names}, bad)[0]
        if index is None:
            return tk
        position = present(index.schema.of(validate_item(start)), bad)
        return position[0], position[1], tk

    def _page(
        self,
        table: Table,
        index: Index | None,
        candidates: Iterable[Item],
        body: Body,
        *,
        parsed: dict[str, Parsed],
        ctx: Ctx,
    ) -> Body:
        """One Query or Scan page: stop at ``Limit`` items read or at 1 MB, then filter, project and count."""
        limit, select = body.get("Limit"), body.get("Select", "ALL_ATTRIBUTES")
        require(
            limit is None or (type(limit) is int and limit >= 1),
            f"1 validation error detected: Value '{limit}' at 'limit' failed to satisfy constraint: Member must "
            "have value greater than or equal to 1",
        )
        projecting = "ProjectionExpression" in parsed
        require(select != "SPECIFIC_ATTRIBUTES" or projecting, "SPECIFIC_ATTRIBUTES needs a ProjectionExpression")
        require(
            select in ("ALL_ATTRIBUTES", "SPECIFIC_ATTRIBUTES") or not projecting,
            "Cannot specify the ProjectionExpression when choosing to get ALL_PROJECTED_ATTRIBUTES or COUNT",
        )
        condition = parsed.get("FilterExpression")
        items: list[Item] = []
        scanned = size = 0
        out: Body = {}
        for item in candidates:
            scanned += 1
            size += item_size(item)
            if not isinstance(condition, Condition) or condition.test(item, ctx):
                items.append(index.project(item, table.schema) if index is not None else item)
            if scanned == limit or size >= PAGE_BYTES:
                names = {*table.schema.names, *(index.schema.names if index else ())}
                out["LastEvaluatedKey"] = {k: v for k, v in item.items() if k in names}
                break
        if select != "COUNT":
            out["Items"] = [projected(item, parsed, ctx) for item in items]
        return {**out, "Count": len(items), "ScannedCount": scanned}

    # -- transactions --
    def transact_write_items(self, body: Body, region: str) -> Body:
        actions = body.get("TransactItems")
        require(
            isinstance(actions, list) and 1 <= len(actions) <= 100,
            "1 validation error detected: Value at 'transactItems' failed to satisfy constraint: Member must have "
            "length less than or equal to 100, Member must have length greater than or equal to 1",
        )
        writes: list[Write] = []
        for action in actions or []:
            kinds = ("Put", "Update", "Delete", "ConditionCheck")
            require(isinstance(action, dict) and len(action) == 1 and next(iter(action)) in kinds,
                    "A TransactItem has exactly one of Put, Update, Delete, ConditionCheck")  # fmt: skip
            ((kind, spec),) = action.items()
            writes.append(self.prepare(kind, spec))
        _unique(
            [(w.table.name, w.key) for w in writes],
            "Transaction request cannot include multiple operations on one item",
        )
        results: list[Item | None] = []
        reasons: list[Body] = []
        for write in writes:
            try:
                results.append(write.run()[1])
                reasons.append({"Code": "None"})
            except ConditionFailed as failed:
                old = {"Item": failed.old} if failed.old is not None else {}
                reasons.append({"Code": "ConditionalCheckFailed", "Message": "The conditional request failed", **old})
            except Invalid as exc:
                reasons.append({"Code": "ValidationError", "Message": str(exc)})
        if len(results) < len(writes):
            codes = ", ".join(r["Code"] for r in reasons)
            raise AwsError(
                "TransactionCanceledException",
                f"Transaction cancelled, please refer cancellation reasons for specific reasons [{codes}]",
                CancellationReasons=reasons,
            )
        for write, new in zip(writes, results, strict=True):
            if write.kind != "ConditionCheck":
                write.table.store(write.key, new)
        return {}

    def transact_get_items(self, body: Body, region: str) -> Body:
        gets = body.get("TransactItems")
        require(isinstance(gets, list) and 1 <= len(gets) <= 100, "TransactItems must have between 1 and 100 items")
        reads = []
        for get in gets or []:
            spec = get.get("Get") if isinstance(get, dict) else None
            require(isinstance(spec, dict), "A TransactGetItem must have a Get")
            assert isinstance(spec, dict)
            table = self.table(spec)
            ctx, parsed = expressions(spec, ("ProjectionExpression",))
            reads.append((table, table.key(spec.get("Key"))[0], parsed, ctx))
        _unique(
            [(t.name, k) for t, k, _, _ in reads], "Transaction request cannot include multiple operations on one item"
        )
        found = [(table.get(key), parsed, ctx) for table, key, parsed, ctx in reads]
        return {"Responses": [{"Item": projected(item, p, c)} if item is not None else {} for item, p, c in found]}


# -- Secrets Manager ----------------------------------------------------------------------------------------------


@dataclass
class Secret:
    name: str
    arn: str
    versions: dict[str, Body] = field(default_factory=dict)  # id -> SecretString or SecretBinary, CreatedDate
    stages: dict[str, str] = field(default_factory=dict)  # stage -> version id

    def stages_of(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {vid: [] for vid in self.versions}
        for stage, vid in self.stages.items():
            out[vid].append(stage)
        return out

    def add_version(self, body: Body) -> str:
        vid = str(body.get("ClientRequestToken") or uuid.uuid4())
        value: Body = {k: body[k] for k in ("SecretString", "SecretBinary") if k in body}
        if len(value) != 1:
            raise AwsError("InvalidRequestException", "You must provide either SecretString or SecretBinary.")
        self.versions[vid] = {**value, "CreatedDate": time.time()}
        if "AWSCURRENT" in self.stages:
            self.stages["AWSPREVIOUS"] = self.stages["AWSCURRENT"]
        self.stages["AWSCURRENT"] = vid
        return vid


class SecretsManager:
    def __init__(self) -> None:
        self.secrets: dict[str, Secret] = {}
        self.operations: dict[str, Operation] = {
            "CreateSecret": self.create_secret,
            "PutSecretValue": self.put_secret_value,
            "GetSecretValue": self.get_secret_value,
        }

    def find(self, body: Body) -> Secret:
        """A secret by name or ARN."""
        wanted = body.get("SecretId")
        for secret in self.secrets.values():
            if wanted in (secret.name, secret.arn):
                return secret
        raise AwsError("ResourceNotFoundException", "Secrets Manager can't find the specified secret.")

    def create_secret(self, body: Body, region: str) -> Body:
        name = body.get("Name")
        if not isinstance(name, str) or not name:
            raise AwsError("InvalidParameterException", "You must provide a Name for the secret.")
        if name in self.secrets:
            raise AwsError("ResourceExistsException", f"The operation failed because the secret {name} already exists.")
        secret = Secret(name, f"arn:aws:secretsmanager:{region}:{ACCOUNT}:secret:{name}-{uuid.uuid4().hex[:6]}")
        out: Body = {"ARN": secret.arn, "Name": name}
        if "SecretString" in body or "SecretBinary" in body:
            out["VersionId"] = secret.add_version(body)
        self.secrets[name] = secret
        return out

    def put_secret_value(self, body: Body, region: str) -> Body:
        secret = self.find(body)
        vid = secret.add_version(body)
        return {"ARN": secret.arn, "Name": secret.name, "VersionId": vid, "VersionStages": ["AWSCURRENT"]}

    def get_secret_value(self, body: Body, region: str) -> Body:
        secret = self.find(body)
        vid, stage = body.get("VersionId"), body.get("VersionStage")
        missing = "Secrets Manager can't find the specified secret value for"
        if vid is None:
            vid = secret.stages.get(stage or "AWSCURRENT")
            if vid is None:
                raise AwsError("ResourceNotFoundException", f"{missing} staging label: {stage or 'AWSCURRENT'}")
        version = secret.versions.get(vid)
        if version is None or (stage is not None and secret.stages.get(stage) != vid):
            raise AwsError("ResourceNotFoundException", f"{missing} VersionId: {vid}")
        stages = secret.stages_of()[vid]
        return {"ARN": secret.arn, "Name": secret.name, "VersionId": vid, **version, "VersionStages": stages}


# -- HTTP ---------------------------------------------------------------------------------------------------------

_SERVICES = {
    "DynamoDB_20120810": ("dynamodb", b"application/x-amz-json-1.0", DYNAMODB_ERROR),
    "secretsmanager": ("secretsmanager", b"application/x-amz-json-1.1", ""),
}
_STATUS = {200: b"OK", 400: b"Bad Request", 500: b"Internal Server Error"}
_HEAD = b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nx-amzn-RequestId: %s\r\n"


class DevAws:
    """DynamoDB and Secrets Manager on one loopback port. ``start()`` serves from a daemon thread; port 0 picks a
    free port (``.port``, ``.endpoint``)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.requested_port = host, port
        self.dynamodb, self.secretsmanager = DynamoDB(), SecretsManager()
        self.lock = threading.Lock()
        self._server: _Server | None = None
        self._serving = threading.Event()

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return int(self._server.server_address[1])

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def bind(self) -> DevAws:
        if self._server is None:
            self._server = _Server((self.host, self.requested_port), _Handler)
            self._server.app = self
        return self

    def start(self) -> DevAws:
        self.bind()
        threading.Thread(target=self.serve_forever, name="devaws", daemon=True).start()
        return self

    def serve_forever(self) -> None:
        server = self.bind()._server
        assert server is not None
        self._serving.set()
        try:
            server.serve_forever(poll_interval=0.1)
        finally:
            self._serving.clear()

    def stop(self) -> None:
        """Stop serving and drop every open connection (from any thread but the serving one)."""
        server, self._server = self._server, None
        if server is not None:
            if self._serving.is_set():
                server.shutdown()
            server.close_all()

    def __enter__(self) -> DevAws:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def handle(self, target: str, body: bytes, region: str) -> tuple[int, bytes, bytes]:
        """One call: (HTTP status, content type, JSON body)."""
        prefix, _, operation = target.partition(".")
        service, content_type, error_prefix = _SERVICES.get(prefix, ("", b"application/x-amz-json-1.0", ""))
        try:
            call = getattr(self, service).operations.get(operation) if service else None
            if call is None:
                raise AwsError("UnknownOperationException", f"Unknown operation {target or '(no X-Amz-Target)'}")
            try:
                request = orjson.loads(body or b"{}")
            except orjson.JSONDecodeError:
                raise AwsError("SerializationException", "The request body is not valid JSON") from None
            if not isinstance(request, dict):
                raise AwsError("SerializationException", "The request body must be a JSON object")
            with self.lock:
                answer = call(request, region)
            return 200, content_type, orjson.dumps(answer)
        except AwsError as exc:
            key = "Message" if exc.code == "TransactionCanceledException" else "message"
            if exc.code in ("UnknownOperationException", "SerializationException") and service != "secretsmanager":
                error_prefix = "com.amazon.coral.service#"  # the service framework answers these, as in AWS
            return 400, content_type, orjson.dumps({"__type": error_prefix + exc.code, key: exc.message, **exc.extra})
        except (Invalid, KeyError, TypeError, AttributeError, ValueError) as exc:
            # Invalid is DynamoDB's ValidationException; the others are malformed input that got past the explicit
            # checks: still the caller's error, never a 500.
            message = str(exc) if isinstance(exc, Invalid) else f"Invalid request: {exc!r}"
            return 400, content_type, orjson.dumps({"__type": error_prefix + "ValidationException", "message": message})


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128
    app: DevAws

    def __init__(self, address: tuple[str, int], handler: type[socketserver.BaseRequestHandler]) -> None:
        self.connections: set[socket.socket] = set()
        super().__init__(address, handler)

    def close_all(self) -> None:
        self.server_close()
        for connection in list(self.connections):
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(socketserver.StreamRequestHandler):
    """HTTP/1.1 with keep-alive, just enough for AWS SDKs. Each answer leaves in one ``sendall`` on a TCP_NODELAY
    socket: split writes would meet Nagle's algorithm and delayed ACKs (40 ms a call)."""

    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.connections.add(self.connection)

    def finish(self) -> None:
        self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def handle(self) -> None:
        with contextlib.suppress(OSError):
            while self.one_request():
                pass

    def one_request(self) -> bool:
        """Read and answer one request; False when the connection is done."""
        line = self.rfile.readline(65537)
        while line in (b"\r\n", b"\n"):
            line = self.rfile.readline(65537)
        if not line:
            return False
        parts = line.split()
        headers: dict[bytes, bytes] = {}
        while (header := self.rfile.readline(65537)) not in (b"\r\n", b"\n", b""):
            name, _, value = header.partition(b":")
            headers[name.strip().lower()] = value.strip()
        length = headers.get(b"content-length", b"0")
        if len(parts) != 3 or not length.isdigit() or b"chunked" in headers.get(b"transfer-encoding", b"").lower():
            self.reply(400, b"text/plain", b"devaws: malformed request (or chunked body)", close=True)
            return False
        if headers.get(b"expect", b"").lower() == b"100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = self.rfile.read(int(length))
        close = headers.get(b"connection", b"").lower() == b"close" or parts[2] == b"HTTP/1.0"
        if parts[0] != b"POST":  # a health check
            self.reply(
                200, b"application/json", b'{"status":"running","services":["dynamodb","secretsmanager"]}', close
            )
            return not close
        region = REGION.search(headers.get(b"authorization", b""))
        target = headers.get(b"x-amz-target", b"").decode("latin-1")
        try:
            status, content_type, payload = self.server.app.handle(
                target, body, region[1].decode() if region else "us-east-1"
            )
        except Exception as exc:  # a bug in devaws, not the caller's: say so
            status, content_type = 500, b"application/x-amz-json-1.0"
            payload = orjson.dumps({"__type": "InternalFailure", "message": f"devaws: {exc!r}"})
        self.reply(status, content_type, payload, close)
        return not close

    def reply(self, status: int, content_type: bytes, payload: bytes, close: bool = False) -> None:
        head = _HEAD % (status, _STATUS.get(status, b"Error"), content_type, len(payload), uuid.uuid4().hex.encode())
        tail = b"x-amz-crc32: %d\r\n%s\r\n" % (zlib.crc32(payload), b"Connection: close\r\n" if close else b"")
        self.wfile.write(head + tail + payload)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m embedrank.devaws", description="In-memory DynamoDB and Secrets Manager."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4566, help="0 picks a free port")
    parser.add_argument("--exit-on-stdin-eof", action="store_true", help="stop when stdin closes (the parent is gone)")
    args = parser.parse_args(argv)
    aws = DevAws(args.host, args.port).bind()
    if args.exit_on_stdin_eof:
        threading.Thread(target=_stop_at_eof, args=(aws,), daemon=True).start()
    print(aws.endpoint, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        aws.serve_forever()


def _stop_at_eof(aws: DevAws) -> None:
    sys.stdin.buffer.read()
    aws.stop()


if __name__ == "__main__":
    main()
