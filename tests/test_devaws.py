"""devaws (the in-memory local AWS behind `make serve`) against moto: the same boto3 calls, the same answers.

Each scenario runs twice, under moto in-process (``mock_aws``) and against a DevAws server on a free loopback port,
and the recorded outcomes must match: a response without ResponseMetadata, dates, ARNs and version ids, or an error's
code, message and modeled fields (``Item``, ``CancellationReasons``). Where moto 5.2.5 deviates from AWS's documented
behaviour, the comparison is replaced by an assertion of AWS's behaviour for devaws (``MOTO_DEVIATIONS``, each with
its reason), or, where only moto's message text differs, by comparing the error codes (``MESSAGES_DIFFER``). Both
tables are checked to be current: an entry that moto now agrees with fails the test.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import boto3
import orjson
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ParamValidationError
from moto import mock_aws

from conftest import ROOT
from embedrank.config import Settings
from embedrank.devaws import DevAws
from embedrank.stores import KeyRecord, Stores, UsageRecord

# -- recording ------------------------------------------------------------------------------------------------------

VOLATILE = {
    "ResponseMetadata", "CreationDateTime", "TableId", "TableArn", "IndexArn", "TableSizeBytes", "ItemCount",
    "IndexSizeBytes", "ProvisionedThroughput", "ARN", "VersionId", "CreatedDate", "ConsumedCapacity",
    "ItemCollectionMetrics",  # moto adds an empty one nobody asked for
}  # fmt: skip
DESCRIPTION = {"TableName", "KeySchema", "AttributeDefinitions", "TableStatus", "BillingModeSummary"}
INDEX = {"IndexName", "KeySchema", "Projection", "IndexStatus"}


def clean(value: Any) -> Any:
    """A response as compared: no metadata, dates, ARNs or ids; sets sorted (their order is unspecified)."""
    if isinstance(value, list):
        return [clean(v) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1 and next(iter(value)) in ("SS", "NS", "BS"):
        ((tag, members),) = value.items()
        return {tag: sorted(members)}
    if "KeySchema" in value and "TableName" in value:  # a table description: what callers rely on
        out = {k: clean(v) for k, v in value.items() if k in DESCRIPTION}
        out["AttributeDefinitions"] = sorted(value["AttributeDefinitions"], key=lambda d: d["AttributeName"])
        indexes = value.get("GlobalSecondaryIndexes", [])
        out["GlobalSecondaryIndexes"] = [{k: v for k, v in ix.items() if k in INDEX} for ix in indexes]
        return out
    return {k: clean(v) for k, v in value.items() if k not in VOLATILE}


class Recorder:
    """Runs calls and records each outcome under "part: label"."""

    def __init__(self) -> None:
        self.steps: dict[str, Any] = {}
        self.part = ""

    def __call__(self, label: str, call: Callable[..., Any], **params: Any) -> Any:
        try:
            answer = call(**params)
        except ClientError as exc:
            error = exc.response["Error"]
            extra = {k: clean(exc.response[k]) for k in ("Item", "CancellationReasons") if k in exc.response}
            self.value(label, {"error": error["Code"], "message": error["Message"], **extra})
            return None
        except ParamValidationError as exc:  # botocore refused it before sending: no server saw it
            self.value(label, {"client_rejected": type(exc).__name__})
            return None
        except Exception as exc:  # moto in-process raises its own bugs (a 500 through its server)
            self.value(label, {"crash": type(exc).__name__})
            return None
        self.value(label, clean(answer))
        return answer

    def value(self, label: str, value: Any) -> None:
        label = f"{self.part}: {label}"
        assert label not in self.steps, label
        self.steps[label] = value

    def sort(self, label: str, key: Callable[[Any], Any]) -> None:
        """Sort recorded Items whose order AWS leaves unspecified."""
        found = self.steps[f"{self.part}: {label}"]
        if "Items" in found:
            found["Items"].sort(key=key)


# -- the scenario ---------------------------------------------------------------------------------------------------


def S(value: str) -> dict[str, Any]:
    return {"S": value}


def N(value: Any) -> dict[str, Any]:
    return {"N": str(value)}


def table_spec(name: str, *keys: tuple[str, str], **extra: Any) -> dict[str, Any]:
    """A PAY_PER_REQUEST table: keys as (name, type), hash first."""
    return {
        "TableName": name,
        "KeySchema": [{"AttributeName": n, "KeyType": k} for (n, _), k in zip(keys, ("HASH", "RANGE"), strict=False)],
        "AttributeDefinitions": [{"AttributeName": n, "AttributeType": t} for n, t in keys],
        "BillingMode": "PAY_PER_REQUEST",
        **extra,
    }


def index(name: str, *keys: str, projection: str = "ALL", **extra: Any) -> dict[str, Any]:
    schema = [{"AttributeName": n, "KeyType": k} for n, k in zip(keys, ("HASH", "RANGE"), strict=False)]
    return {"IndexName": name, "KeySchema": schema, "Projection": {"ProjectionType": projection, **extra}}


def tables(rec: Recorder, db: Any) -> None:
    things = table_spec("things", ("pk", "S"), ("sk", "S"))
    things["AttributeDefinitions"] += [
        {"AttributeName": "owner", "AttributeType": "S"},
        {"AttributeName": "rank", "AttributeType": "N"},
    ]
    things["GlobalSecondaryIndexes"] = [
        index("by-owner", "owner", "rank"),
        index("owner-keys", "owner", projection="KEYS_ONLY"),
        index("owner-some", "owner", projection="INCLUDE", NonKeyAttributes=["color"]),
    ]
    rec("create things", db.create_table, **things)
    rec("create nums", db.create_table, **table_spec("nums", ("pk", "S"), ("n", "N")))
    rec("create probe", db.create_table, **table_spec("probe", ("id", "S")))
    rec("create bins", db.create_table, **table_spec("bins", ("pk", "B"), ("sk", "B")))
    rec("create again", db.create_table, **table_spec("probe", ("id", "S")))
    db.get_waiter("table_exists").wait(TableName="things")
    rec("describe", db.describe_table, TableName="things")
    rec("describe missing", db.describe_table, TableName="nothing-here")
    rec("list", db.list_tables)
    ttl = {"TableName": "things", "TimeToLiveSpecification": {"Enabled": True, "AttributeName": "expires_at"}}
    rec("ttl off", db.describe_time_to_live, TableName="things")
    rec("ttl on", db.update_time_to_live, **ttl)
    rec("ttl described", db.describe_time_to_live, TableName="things")
    rec("ttl on again", db.update_time_to_live, **ttl)
    rec("ttl missing table", db.describe_time_to_live, TableName="nothing-here")


def items(rec: Recorder, db: Any) -> None:
    key = {"pk": S("a"), "sk": S("1")}
    item = {**key, "owner": S("ann"), "rank": N(2), "color": S("red"), "size": N(3)}
    put = {"TableName": "things", "Item": item}
    not_there = {"ConditionExpression": "attribute_not_exists(pk)"}
    all_old = {"ReturnValuesOnConditionCheckFailure": "ALL_OLD"}
    rec("put", db.put_item, **put)
    rec("put all_old", db.put_item, TableName="things", Item={**item, "color": S("blue")}, ReturnValues="ALL_OLD")
    rec("put cond fails", db.put_item, **put, **not_there)
    rec("put cond fails all_old", db.put_item, **put, **not_there, **all_old)
    rec("put cond fails all_old, no item", db.put_item, TableName="things", Item={**item, "sk": S("new")},
        ConditionExpression="attribute_exists(pk)", **all_old)  # fmt: skip
    rec("put missing key", db.put_item, TableName="things", Item={"pk": S("a")})
    rec("put key type", db.put_item, TableName="things", Item={"pk": S("a"), "sk": N(1)})
    rec("put empty key", db.put_item, TableName="things", Item={"pk": S(""), "sk": S("x")})
    odd = {"pk": S("a"), "sk": S("odd")}
    rec("put index key type", db.put_item, TableName="things", Item={**odd, "owner": N(1)})
    db.transact_write_items(TransactItems=[{"Delete": {"TableName": "things", "Key": odd}}])  # moto stored it
    rec("put missing table", db.put_item, TableName="nothing-here", Item=item)
    rec("get", db.get_item, TableName="things", Key=key)
    rec("get none", db.get_item, TableName="things", Key={"pk": S("a"), "sk": S("zz")})
    rec("get projection", db.get_item, TableName="things", Key=key, ProjectionExpression="color, #s, nope",
        ExpressionAttributeNames={"#s": "size"})  # fmt: skip
    rec("get bad key", db.get_item, TableName="things", Key={"pk": S("a")})
    rec("get extra key", db.get_item, TableName="things", Key={**key, "color": S("red")})
    rec("get missing table", db.get_item, TableName="nothing-here", Key=key)
    rec("get reserved word", db.get_item, TableName="things", Key=key, ProjectionExpression="size")


def numbers(rec: Recorder, db: Any) -> None:
    key = {"pk": S("num"), "n": N(0)}
    given = {"a": "1.50", "b": "3.0", "c": "1e2", "d": "-0.0", "e": "0.000100", "f": "-12.3400", "g": "1E-7",
             "h": "12345678901234567890123456789012345678", "i": "0.5e1"}  # fmt: skip
    item = {**key, **{k: N(v) for k, v in given.items()}, "ns": {"NS": ["1.0", "2", "03"]}}
    rec("put numbers", db.put_item, TableName="nums", Item=item)
    rec("get numbers", db.get_item, TableName="nums", Key=key)
    rec("add exact", db.update_item, TableName="nums", Key=key, UpdateExpression="ADD a :x SET b = b + :y, f = f - :y",
        ExpressionAttributeValues={":x": N("0.1"), ":y": N("0.2")}, ReturnValues="UPDATED_NEW")  # fmt: skip
    rec("39 digits", db.put_item, TableName="nums", Item={**key, "x": N("1234567890123456789012345678901234567890")})
    rec("not a number", db.put_item, TableName="nums", Item={**key, "x": N("abc")})
    for i, n in enumerate(["10", "-5", "2", "100", "-0.5", "3.25", "1e3"]):
        db.put_item(TableName="nums", Item={"pk": S("order"), "n": N(n), "i": N(i)})
    order = {"TableName": "nums", "ExpressionAttributeValues": {":p": S("order")}}
    rec("numeric order", db.query, **order, KeyConditionExpression="pk = :p")
    order["ExpressionAttributeValues"] |= {":a": N(-1), ":b": N("10.0")}
    rec("numeric range", db.query, **order, KeyConditionExpression="pk = :p AND n BETWEEN :a AND :b")


PROBE = [
    {"id": S("i1"), "s": S("apple"), "n": N(5), "b": {"B": b"\x01\x02"}, "ss": {"SS": ["x", "y"]},
     "ns": {"NS": ["1", "2"]}, "l": {"L": [N(1), S("a")]}, "m": {"M": {"k": S("v"), "n": N(3)}},
     "t": {"BOOL": True}, "z": {"NULL": True}},
    {"id": S("i2"), "s": S("banana"), "n": N(10), "l": {"L": []}, "m": {"M": {}}, "t": {"BOOL": False}},
    {"id": S("i3"), "s": S("Apple"), "n": N("-1.5"), "ss": {"SS": ["a"]}},
    {"id": S("i4"), "n": S("5")},
    {"id": S("i5"), "s": S(""), "n": N(0)},
    {"id": S("i6"), "s": S("éclair"), "n": N(100),
     "nested": {"M": {"a": {"M": {"b": {"L": [N(10), {"M": {"c": S("deep")}}]}}}}}},
]  # fmt: skip
VALUES = {
    ":apple": S("apple"), ":banana": S("banana"), ":zero": N(0), ":one": N(1), ":two": N(2), ":three": N(3),
    ":five": N(5), ":ten": N(10), ":b": S("b"), ":a": S("a"), ":c": S("c"), ":ap": S("ap"), ":an": S("an"),
    ":x": S("x"), ":S": S("S"), ":N": S("N"), ":deep": S("deep"), ":v": S("v"), ":true": {"BOOL": True},
    ":null": {"NULL": True}, ":bin": {"B": b"\x01\x02"}, ":b1": {"B": b"\x01"}, ":ns": {"NS": ["2", "1"]},
    ":m": {"M": {"n": N(3), "k": S("v")}}, ":l": {"L": [N(1), S("a")]}, ":bool": {"BOOL": True}, ":XX": S("XX"),
}  # fmt: skip
FILTERS = [
    # comparisons, ranges, sets of values
    "s = :apple", "s <> :apple", "n < :ten", "n <= :ten", "n > :five", "n >= :five", "s < :b", "s > :a",
    "n BETWEEN :zero AND :ten", "s BETWEEN :a AND :c", "s IN (:apple, :banana)", "n IN (:five)", "n <> :five",
    "n < :apple", "s = :one", "t = :true", "z = :null", "b = :bin", "ns = :ns", "m = :m", "l = :l",
    # functions
    "attribute_exists(ss)", "attribute_not_exists(s)", "attribute_type(n, :S)", "attribute_type(n, :N)",
    "begins_with(s, :ap)", "begins_with(b, :b1)", "contains(s, :an)", "contains(ss, :x)", "contains(ns, :one)",
    "contains(l, :a)", "size(s) > :three", "size(l) = :zero", "size(m) >= :one", "size(ss) = :two",
    "size(b) = :two", "attribute_exists(nested.a.b[1])",
    # precedence: NOT binds tighter than AND, AND than OR
    "NOT s = :apple", "NOT n = :five AND s = :banana OR s = :apple", "n = :five OR n = :ten AND s = :apple",
    "(n = :five OR n = :ten) AND s = :apple", "NOT (n = :five OR n = :ten)", "NOT NOT s = :apple",
    "s = :apple AND n = :five AND t = :true",
    # document paths
    "nested.a.b[1].c = :deep", "nested.a.b[0] = :ten", "m.k = :v", "l[0] = :one", "l[5] = :one",
    # errors
    "n < :bool", "attribute_type(n, :XX)", "n BETWEEN :ten AND :zero", "n BETWEEN :zero AND :a",
    "begins_with(s, :one)", "s = :apple AND", "(s = :apple", "nofunc(s)", "size = :one", "#undefined = :one",
    "s = :undefined", "s == :apple", "if_not_exists(s, :apple)", "size(s)",
]  # fmt: skip


def filters(rec: Recorder, db: Any) -> None:
    for item in PROBE:
        db.put_item(TableName="probe", Item=item)
    for expression in FILTERS:
        values = {k: v for k, v in VALUES.items() if k in re.findall(r":\w+", expression)}
        params: dict[str, Any] = {"TableName": "probe", "FilterExpression": expression}
        answer = rec(
            f"filter {expression}", db.scan, **params, **({"ExpressionAttributeValues": values} if values else {})
        )
        if answer is not None:  # scan order is unspecified: compare the matching ids
            rec.steps[f"filters: filter {expression}"] = sorted(i["id"]["S"] for i in answer["Items"])
    scan = {"TableName": "probe", "FilterExpression": "s = :a"}
    rec("unused value", db.scan, **scan, ExpressionAttributeValues={":a": S("a"), ":b": S("b")})
    rec("unused name", db.scan, **scan, ExpressionAttributeValues={":a": S("a")}, ExpressionAttributeNames={"#n": "n"})
    rec("names without expression", db.get_item, TableName="probe", Key={"id": S("i1")},
        ExpressionAttributeNames={"#n": "n"})  # fmt: skip


def updates(rec: Recorder, db: Any) -> None:
    def update(label: str, expression: str | None, returns: str = "ALL_NEW", **extra: Any) -> None:
        params = {"TableName": "things", "Key": {"pk": S("u"), "sk": S("1")}, "ReturnValues": returns, **extra}
        rec(label, db.update_item, **params, **({"UpdateExpression": expression} if expression else {}))

    def values(**named: Any) -> dict[str, Any]:
        return {"ExpressionAttributeValues": {f":{k}": v for k, v in named.items()}}

    update("create by update", "SET a = :one, b = :two", **values(one=N(1), two=N(2)))
    update("arithmetic", "SET c = a + :ten, d = b - :ten", "UPDATED_NEW", **values(ten=N(10)))
    update("swap reads the old item", "SET a = b, b = a", "UPDATED_OLD")
    update(
        "if_not_exists", "SET a = if_not_exists(a, :nine), e = if_not_exists(e, :nine)", "ALL_OLD", **values(nine=N(9))
    )
    update("add", "ADD a :one, tags :tags, fresh :one", **values(one=N(1), tags={"SS": ["x", "y"]}))
    update("add to set", "ADD tags :more", **values(more={"SS": ["y", "z"]}))
    update("delete from set", "DELETE tags :gone", **values(gone={"SS": ["x", "y"]}))
    update("delete last members", "DELETE tags :gone", **values(gone={"SS": ["z"]}))
    update("clauses in any order", "REMOVE fresh ADD a :one SET g = :s DELETE nope :ns",
           **values(one=N(1), s=S("str"), ns={"NS": ["1"]}))  # fmt: skip
    update("list_append", "SET l = list_append(if_not_exists(l, :empty), :l)",
           **values(empty={"L": []}, l={"L": [S("p"), S("q")]}))  # fmt: skip
    update("nested set", "SET m = :m", **values(m={"M": {"x": {"M": {}}}}))
    update("nested paths", "SET m.x.y = :one, l[0] = :two, l[9] = :three REMOVE l[1]",
           **values(one=N(1), two=N(2), three=N(3)))  # fmt: skip
    update("updated_new nested", "SET m.x.z = :one", "UPDATED_NEW", **values(one=N(1)))
    update("returns none", "SET h = :one", "NONE", **values(one=N(1)))
    update("no expression", None)
    update("conditional ok", "SET h = h + :one", ConditionExpression="h = :one AND attribute_exists(pk)",
           **values(one=N(1)))  # fmt: skip
    update("conditional fails", "SET h = h + :one", ConditionExpression="h = :one",
           ReturnValuesOnConditionCheckFailure="ALL_OLD", **values(one=N(1)))  # fmt: skip
    update("missing operand", "SET x = nope + :one", **values(one=N(1)))
    update("wrong operand type", "SET x = g + :one", **values(one=N(1)))
    update("add to a string", "ADD g :one", **values(one=N(1)))
    update("add a string", "ADD a :s", **values(s=S("s")))
    update("delete a number", "DELETE a :one", **values(one=N(1)))
    update("update a key", "SET sk = :s", **values(s=S("s")))
    update("overlapping paths", "SET a = :one REMOVE a", **values(one=N(1)))
    update("two SET clauses", "SET a = :one SET b = :one", **values(one=N(1)))
    update("syntax error", "SET a = = :one", **values(one=N(1)))
    update("reserved word", "SET status = :one", **values(one=N(1)))
    update("bad nested path", "SET nope.x = :one", **values(one=N(1)))
    update("invalid ReturnValues", "SET h = :one", "ALL", **values(one=N(1)))
    update("missing table", "SET h = :one", TableName="nothing-here", **values(one=N(1)))
    update("arithmetic on a string literal", "SET h = :s + :one", **values(s=S("s"), one=N(1)))
    rec("final", db.get_item, TableName="things", Key={"pk": S("u"), "sk": S("1")})


def queries(rec: Recorder, db: Any) -> None:
    for pk, owner in (("q", "bob"), ("r", "bob"), ("s", "cat")):
        for i, sk in enumerate(["a", "ab", "abc", "b", "B", "é", "z", "~", "\u00ff", "日本", "😀"]):
            attributes = {"owner": S(owner), "rank": N(i * 7 % 11), "color": S("red" if i % 2 else "blue")}
            db.put_item(TableName="things", Item={"pk": S(pk), "sk": S(sk), **attributes, "extra": N(i)})

    def query(label: str, condition: str, values: dict[str, Any] | None = None, **extra: Any) -> Any:
        params = {"TableName": "things", "KeyConditionExpression": condition, **extra}
        params.setdefault("ExpressionAttributeValues", {":p": S("q"), **(values or {})})
        return rec(label, db.query, **params)

    query("utf-8 order", "pk = :p")
    query("backwards", "pk = :p", ScanIndexForward=False)
    query("range =", "pk = :p AND sk = :v", {":v": S("ab")})
    query("range <", "pk = :p AND sk < :v", {":v": S("b")})
    query("range <=", "pk = :p AND sk <= :v", {":v": S("b")})
    query("range >", "pk = :p AND sk > :v", {":v": S("b")})
    query("range >=", "pk = :p AND sk >= :v", {":v": S("b")})
    query("range between", "pk = :p AND sk BETWEEN :v AND :w", {":v": S("ab"), ":w": S("z")})
    query("begins_with", "pk = :p AND begins_with(sk, :v)", {":v": S("ab")})
    query("begins_with backwards", "pk = :p AND begins_with(sk, :v)", {":v": S("a")}, ScanIndexForward=False)
    query("names", "#k = :p AND #r > :v", {":v": S("b")}, ExpressionAttributeNames={"#k": "pk", "#r": "sk"})
    query("filter", "pk = :p", {":c": S("red")}, FilterExpression="color = :c")
    query("projection", "pk = :p AND sk < :v", {":v": S("b")}, ProjectionExpression="sk, extra")
    query("count", "pk = :p", {":c": S("red")}, FilterExpression="color = :c", Select="COUNT")
    query("limit", "pk = :p", Limit=3)
    query("limit with filter", "pk = :p", {":c": S("red")}, FilterExpression="color = :c", Limit=4)
    query("limit exactly the rest", "pk = :p AND sk > :v", {":v": S("日本")}, Limit=1)
    query("start key", "pk = :p", ExclusiveStartKey={"pk": S("q"), "sk": S("b")}, Limit=2)
    query("start key backwards", "pk = :p", ExclusiveStartKey={"pk": S("q"), "sk": S("b")}, ScanIndexForward=False)
    query("empty partition", "pk = :v", ExpressionAttributeValues={":v": S("none")})
    query("filter on a key", "pk = :p", {":v": S("a")}, FilterExpression="sk = :v")
    query("missing hash", "sk = :v", ExpressionAttributeValues={":v": S("a")})
    query("hash not =", "pk > :p")
    query("key type", "pk = :p AND sk = :v", {":v": N(1)})
    query("or", "pk = :p OR sk = :v", {":v": S("a")})
    query("not a key", "pk = :p AND color = :v", {":v": S("a")})
    rec("no key condition", db.query, TableName="things")
    owner = {"ExpressionAttributeNames": {"#o": "owner"}, "ExpressionAttributeValues": {":o": S("bob")}}
    for name in ("by-owner", "owner-keys", "owner-some"):
        query(f"index {name}", "#o = :o", IndexName=name, **owner)
        if name != "by-owner":  # the order within one index key is unspecified
            rec.sort(f"index {name}", key=lambda i: (i["pk"]["S"], i["sk"]["S"]))
    ranked = {"ExpressionAttributeNames": {"#o": "owner", "#r": "rank"}, "IndexName": "by-owner"}
    query("index range", "#o = :o AND #r BETWEEN :a AND :b", **ranked,
          ExpressionAttributeValues={":o": S("cat"), ":a": N(2), ":b": N(8)})  # fmt: skip
    query("index paged", "#o = :o AND #r > :a", **ranked, Limit=2, ScanIndexForward=False,
          ExpressionAttributeValues={":o": S("cat"), ":a": N(2)})  # fmt: skip
    query("index consistent read", "#o = :o", IndexName="by-owner", ConsistentRead=True, **owner)
    query("no such index", "#o = :o", IndexName="nope", **owner)
    pages = db.get_paginator("query").paginate(
        TableName="things",
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": S("r")},
        PaginationConfig={"PageSize": 4},
    )
    rec.value("query paginator", [[i["sk"]["S"] for i in page["Items"]] for page in pages])
    for pk in (b"\x00", b"b", b"a", b"zz"):
        for sk in (b"\xff\x00", b"\x01", b"\xff"):
            db.put_item(TableName="bins", Item={"pk": {"B": pk}, "sk": {"B": sk}})
    for i in range(12):  # 100 KB each: a page stops after the item that reaches 1 MB
        db.put_item(TableName="things", Item={"pk": S("big"), "sk": S(f"{i:02d}"), "blob": S("x" * 100_000)})
    answer = db.query(TableName="things", KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": S("big")})
    # AWS documents the 1 MB but not whether the item crossing it is returned: only the paging is compared
    rec.value("1 MB page", (9 <= len(answer["Items"]) <= 11, "LastEvaluatedKey" in answer))
    rec("item over 400 KB", db.put_item, TableName="things", Item={"pk": S("big"), "sk": S("x"), "b": S("x" * 410_000)})
    big = [{"Delete": {"TableName": "things", "Key": {"pk": S("big"), "sk": S(f"{i:02d}")}}} for i in range(12)]
    db.transact_write_items(TransactItems=big)
    rec("binary keys", db.query, TableName="bins", KeyConditionExpression="pk = :p AND begins_with(sk, :s)",
        ExpressionAttributeValues={":p": {"B": b"a"}, ":s": {"B": b"\xff"}})  # fmt: skip


def scans(rec: Recorder, db: Any) -> None:
    pages = db.get_paginator("scan").paginate(TableName="things", PaginationConfig={"PageSize": 7})
    seen = [(i["pk"]["S"], i["sk"]["S"]) for page in pages for i in page["Items"]]
    rec.value("paginator: every item once", sorted(seen) == sorted(set(seen)))
    rec.value("paginator: the items", sorted(seen))
    answer = db.scan(TableName="things", Limit=5)  # which five is unspecified (hash order)
    rec.value("limit", (len(answer["Items"]), answer["ScannedCount"], "LastEvaluatedKey" in answer))
    rec("count", db.scan, TableName="things", Select="COUNT", FilterExpression="color = :c",
        ExpressionAttributeValues={":c": S("red")})  # fmt: skip
    rec("projection", db.scan, TableName="probe", ProjectionExpression="id, m.k, l[1]")
    rec.sort("projection", key=lambda i: i["id"]["S"])
    rec("overlapping projection", db.scan, TableName="probe", ProjectionExpression="m, m.k")
    rec("missing table", db.scan, TableName="nothing-here")
    rec("bad limit", db.scan, TableName="things", Limit=0)


def transactions(rec: Recorder, db: Any) -> None:
    def put(sk: str, condition: str | None = None, **extra: Any) -> dict[str, Any]:
        body = {"TableName": "things", "Item": {"pk": S("t"), "sk": S(sk), "v": N(1)}, **extra}
        return {"Put": {**body, **({"ConditionExpression": condition} if condition else {})}}

    def key(sk: str, table: str = "things") -> dict[str, Any]:
        return {"TableName": table, "Key": {"pk": S("t"), "sk": S(sk)}}

    one = {":one": N(1)}
    add = {"Update": {**key("1"), "UpdateExpression": "ADD v :one", "ExpressionAttributeValues": one}}
    check = {"ConditionCheck": {**key("2"), "ConditionExpression": "v = :one", "ExpressionAttributeValues": one}}
    rec("write", db.transact_write_items, TransactItems=[put("1"), put("2"), put("3")])
    rec("all kinds", db.transact_write_items, TransactItems=[add, check, {"Delete": key("3")}, put("4")])
    failing = put("1", "attribute_not_exists(pk)", ReturnValuesOnConditionCheckFailure="ALL_OLD")
    add2 = {"Update": {**add["Update"], **key("2")}}
    rec(
        "cancelled",
        db.transact_write_items,
        TransactItems=[put("5"), failing, add2, put("4", "attribute_not_exists(sk)")],
    )
    rec("nothing written", db.query, TableName="things", KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": S("t")})  # fmt: skip
    rec("same item twice", db.transact_write_items, TransactItems=[add, put("1")])
    rec("bad expression", db.transact_write_items, TransactItems=[put("6"), put("7", "attribute_exists(")])
    rec("missing table", db.transact_write_items, TransactItems=[{"Put": {**key("x", "nothing-here"), "Item": {}}}])
    broken = {"Update": {**add["Update"], "UpdateExpression": "SET v = nope + :one"}}
    rec("runtime error", db.transact_write_items, TransactItems=[put("8"), broken])
    gets = [{**key("1"), "ProjectionExpression": "v"}, key("none"), {"TableName": "probe", "Key": {"id": S("i2")}}]
    rec("get", db.transact_get_items, TransactItems=[{"Get": g} for g in gets])


def secrets(rec: Recorder, sm: Any) -> None:
    created = rec("create", sm.create_secret, Name="app/secret", SecretString='{"a": 1}', Description="d")
    rec("create again", sm.create_secret, Name="app/secret", SecretString="x")
    rec("get", sm.get_secret_value, SecretId="app/secret")
    rec("get by arn", sm.get_secret_value, SecretId=created["ARN"] if created else "")
    rec("put", sm.put_secret_value, SecretId="app/secret", SecretString='{"a": 2}')
    rec("get current", sm.get_secret_value, SecretId="app/secret")
    rec("get previous", sm.get_secret_value, SecretId="app/secret", VersionStage="AWSPREVIOUS")
    rec("get missing stage", sm.get_secret_value, SecretId="app/secret", VersionStage="NOPE")
    rec("get missing", sm.get_secret_value, SecretId="nope")
    rec("put missing", sm.put_secret_value, SecretId="nope", SecretString="x")


def scenario(db: Any, sm: Any) -> dict[str, Any]:
    rec = Recorder()
    for part in (tables, items, numbers, filters, updates, queries, scans, transactions):
        rec.part = part.__name__
        part(rec, db)
    rec.part = "secrets"
    secrets(rec, sm)
    return rec.steps


# -- moto's deviations from AWS ---------------------------------------------------------------------------------------


def _error(code: str, message: str | None = None) -> Callable[[Any], None]:
    def check(got: Any) -> None:
        assert got.get("error") == code and (message is None or message in got["message"]), got

    return check


def _ids(*ids: str) -> Callable[[Any], None]:
    def check(got: Any) -> None:
        assert got == list(ids), got

    return check


def _field(path: str, expected: Any) -> Callable[[Any], None]:
    def check(got: Any) -> None:
        value = got
        for key in path.split("."):
            value = value[key]
        assert value == expected, got

    return check


CROSS_TYPE = "AWS: comparing different types is false (moto raises TypeError: a 500 through its server)"
LITERALS = "AWS checks the types of literal operands before reading any item: ValidationException"
CANONICAL = "AWS stores numbers in canonical form: 1.50 -> 1.5, 3.0 -> 3, 1e2 -> 100, -0.0 -> 0 (moto echoes them)"
SIZE = "moto cannot parse size() in a filter"
NUMBERS = {
    "pk": S("num"), "n": N(0), "a": N("1.5"), "b": N(3), "c": N(100), "d": N(0), "e": N("0.0001"), "f": N("-12.34"),
    "g": N("0.0000001"), "h": N("12345678901234567890123456789012345678"), "i": N(5), "ns": {"NS": ["1", "2", "3"]},
}  # fmt: skip
ORDERED = [
    {"pk": S("order"), "n": N(n), "i": N(i)}
    for n, i in [("-5", 1), ("-0.5", 4), ("2", 2), ("3.25", 5), ("10", 0), ("100", 3), ("1000", 6)]
]
TABLES = ["bins", "nums", "probe", "things"]
PROJECTED = [{"Item": {"v": N(2)}}, {}, {"Item": PROBE[1]}]
INVALID = "ValidationException"
NOT_FOUND = "The provided expression refers to an attribute that does not exist in the item"
MOTO_DEVIATIONS: dict[str, tuple[str, Callable[[Any], None]]] = {
    "tables: list": ("AWS lists tables by name (moto: by creation)", _field("TableNames", [*TABLES])),
    "tables: ttl on again": ("AWS: UpdateTimeToLive is not idempotent", _error(INVALID, "already enabled")),
    "tables: ttl missing table": ("moto's code is ResourceNotFound", _error("ResourceNotFoundException")),
    "items: put index key type": ("AWS checks index key types", _error(INVALID, "Type mismatch for Index Key")),
    "numbers: get numbers": (CANONICAL, _field("Item", NUMBERS)),
    "numbers: add exact": (CANONICAL, _field("Attributes", {"a": N("1.6"), "b": N("3.2"), "f": N("-12.54")})),
    "numbers: numeric order": (CANONICAL, _field("Items", ORDERED)),
    "numbers: 39 digits": ("AWS: at most 38 significant digits", _error(INVALID, "38 significant digits")),
    "filters: filter n < :ten": (CROSS_TYPE, _ids("i1", "i3", "i5")),
    "filters: filter n <= :ten": (CROSS_TYPE, _ids("i1", "i2", "i3", "i5")),
    "filters: filter n > :five": (CROSS_TYPE, _ids("i2", "i6")),
    "filters: filter n >= :five": (CROSS_TYPE, _ids("i1", "i2", "i6")),
    "filters: filter n BETWEEN :zero AND :ten": (CROSS_TYPE, _ids("i1", "i2", "i5")),
    "filters: filter n < :apple": (CROSS_TYPE, _ids("i4")),
    "filters: filter z = :null": ("moto matches every item on a NULL comparison", _ids("i1")),
    "filters: filter begins_with(b, :b1)": ("AWS: begins_with takes a String or a Binary", _ids("i1")),
    "filters: filter size(s) > :three": (SIZE, _ids("i1", "i2", "i3", "i6")),
    "filters: filter size(l) = :zero": (SIZE, _ids("i2")),
    "filters: filter size(m) >= :one": (SIZE, _ids("i1")),
    "filters: filter size(ss) = :two": (SIZE, _ids("i1")),
    "filters: filter size(b) = :two": (SIZE, _ids("i1")),
    "filters: filter NOT NOT s = :apple": ("AWS's grammar: NOT condition, recursively", _ids("i1")),
    "filters: filter n < :bool": (LITERALS, _error("ValidationException", "Incorrect operand type")),
    "filters: filter attribute_type(n, :XX)": (LITERALS, _error("ValidationException", "Invalid attribute type")),
    "filters: filter n BETWEEN :ten AND :zero": (LITERALS, _error("ValidationException", "upper bound")),
    "filters: filter n BETWEEN :zero AND :a": (LITERALS, _error("ValidationException", "same data type")),
    "filters: filter begins_with(s, :one)": (LITERALS, _error("ValidationException", "Incorrect operand type")),
    "filters: filter #undefined = :one": ("moto raises KeyError", _error("ValidationException", "not defined")),
    "filters: filter s = :undefined": ("moto raises KeyError", _error("ValidationException", "not defined")),
    "filters: unused value": ("AWS rejects unused ExpressionAttributeValues", _error(INVALID, "unused")),
    "updates: no expression": ("AWS: UpdateExpression is optional (moto raises)", _field("Attributes.h", N(1))),
    "queries: limit exactly the rest": (
        "AWS returns LastEvaluatedKey whenever Limit ends a page, even with nothing after it (Query: only an absent "
        "LastEvaluatedKey means the end)",
        _field("LastEvaluatedKey", {"pk": S("q"), "sk": S("😀")}),
    ),
    "queries: filter on a key": ("AWS: a Query filter takes no key attributes", _error(INVALID, "non-primary")),
    "queries: key type": ("AWS checks the key condition's types", _error(INVALID, "does not match schema")),
    "queries: or": ("moto fails an assertion", _error("ValidationException", "OR")),
    "queries: no such index": ("AWS answers ValidationException", _error("ValidationException", "specified index")),
    "scans: overlapping projection": ("AWS rejects overlapping paths", _error("ValidationException", "overlap")),
    "transactions: bad expression": ("moto raises ValueError", _error("ValidationException", "Syntax error")),
    "transactions: runtime error": (
        "AWS cancels the transaction with a ValidationError reason (TransactWriteItems)",
        _field("CancellationReasons", [{"Code": "None"}, {"Code": "ValidationError", "Message": NOT_FOUND}]),
    ),
    "transactions: get": ("moto ignores a Get's ProjectionExpression", _field("Responses", PROJECTED)),
}  # fmt: skip

# Same error code, but moto's message is not AWS's: only the codes are compared.
MESSAGES_DIFFER = {
    "items: put empty key", "items: get bad key", "items: get reserved word", "filters: filter s = :apple AND",
    "filters: filter (s = :apple", "filters: filter nofunc(s)", "filters: filter size = :one",
    "filters: filter s == :apple", "filters: filter if_not_exists(s, :apple)", "filters: filter size(s)",
    "updates: wrong operand type", "updates: add a string", "updates: delete a number", "updates: overlapping paths",
    "updates: two SET clauses", "queries: no key condition", "secrets: get missing stage",
}  # fmt: skip


def compare(moto: dict[str, Any], ours: dict[str, Any]) -> list[str]:
    assert list(moto) == list(ours)
    assert not (set(MOTO_DEVIATIONS) | MESSAGES_DIFFER) - set(moto), "a deviation names no step"
    problems = []
    for label, expected in moto.items():
        got = ours[label]
        if isinstance(got, dict) and "crash" in got:  # devaws must answer (an AWS error at worst), never crash
            problems.append(f"{label}: devaws crashed: {got['crash']}")
        elif label in MOTO_DEVIATIONS:
            assert got != expected, f"{label}: moto now agrees with AWS; drop the deviation"
            MOTO_DEVIATIONS[label][1](got)
        elif label in MESSAGES_DIFFER:
            assert expected.get("error") == got.get("error") and got["message"] != expected["message"], label
        elif got != expected:
            problems.append(f"{label}:\n    moto:   {expected}\n    devaws: {got}")
    return problems


# -- fixtures -------------------------------------------------------------------------------------------------------


def clients(endpoint: str | None) -> tuple[Any, Any]:
    config = Config(retries={"mode": "legacy", "max_attempts": 1}, max_pool_connections=32)
    where = {"endpoint_url": endpoint} if endpoint else {}
    return (
        boto3.client("dynamodb", region_name="us-east-1", config=config, **where),
        boto3.client("secretsmanager", region_name="us-east-1", config=config, **where),
    )


def on_devaws(aws: DevAws, run: Callable[[Any, Any], Any]) -> Any:
    aws.dynamodb.tables.clear()
    aws.secretsmanager.secrets.clear()
    return run(*clients(aws.endpoint))


def test_devaws_answers_like_moto_where_moto_is_right(devaws: DevAws) -> None:
    with mock_aws():
        moto = scenario(*clients(None))
    problems = compare(moto, on_devaws(devaws, scenario))
    assert not problems, "\n".join(problems)


# -- the project's own code against both ----------------------------------------------------------------------------

T0 = datetime(2025, 3, 31, 23, 58, 30, 250_000, tzinfo=UTC)
DEV_KEY = "er-devaws-test-key-00000000000000000000000000000000000"


def usage(key_id: str, when: datetime, model: str, tokens: int, cost: float, rid: str) -> UsageRecord:
    return UsageRecord(
        request_id=rid,
        key_id=key_id,
        timestamp=when.isoformat(timespec="milliseconds"),
        endpoint="embeddings",
        model=model,
        provider=model.split("/", maxsplit=1)[0],
        status=200 if tokens else 502,
        latency_ms=12.345,
        input_count=2,
        tokens=tokens,
        cost=cost,
    )


def blank(record: KeyRecord | None) -> KeyRecord | None:
    """Without its creation time (now, so different in each run)."""
    return dataclasses.replace(record, created="") if record else record


def project_flow(db: Any, sm: Any) -> dict[str, Any]:
    """Provisioning, keys, plans, admissions, usage and spend, through the project's own modules."""
    from aws_lambda_powertools.utilities import parameters

    from embedrank import accounts
    from embedrank.auth import Principal, hash_key
    from embedrank.credentials import CredentialStore
    from embedrank.errors import RateLimited
    from embedrank.limits import Limiter
    from embedrank.provision import create_key, create_tables, put_provider_secret, seed_plans

    settings = Settings.from_env({})
    out: dict[str, Any] = {}
    create_tables(db, settings)
    create_tables(db, settings)  # a second `make serve` against the same local AWS: TTL is not enabled twice
    out["tables"] = db.list_tables()["TableNames"]
    out["ttl"] = db.describe_time_to_live(TableName=settings.usage_table)["TimeToLiveDescription"]
    out["plans seeded"] = seed_plans(db, settings)
    key_id, key = create_key(db, settings, plan="ultra", name="dev", key=DEV_KEY, key_id="key_dev")
    put_provider_secret(sm, settings.provider_secret, {"openai": {"api_key": "sk-1"}})
    put_provider_secret(sm, settings.provider_secret, {"openai": {"api_key": "sk-2", "base_url": "http://x"}})
    parameters.clear_caches()  # Powertools' own client, built from the environment
    try:
        out["credentials"] = CredentialStore(settings.provider_secret, 0).get("openai")
    finally:
        parameters.clear_caches()
    stores = Stores(settings, db)
    out["get_key"] = blank(stores.get_key(hash_key(key)))
    found = stores.find_key(key_id)
    out["find_key"] = found and (found[0], blank(found[1]))
    try:
        stores.put_key(hash_key(key), KeyRecord("other", "x", "free", "active", ""))
    except ClientError as exc:
        out["put_key twice"] = exc.response["Error"]["Code"]
    out["plans"] = sorted((p.name, p.limits, p.monthly_budget) for p in stores.list_plans())
    limits = {"requests_per_minute": 3, "tokens_per_minute": 50}
    stores.put_plan({"name": "tiny", "allowed_models": ["openai/text-embedding-3-small"], "limits": limits,
                     "monthly_budget": 0.002})  # fmt: skip
    plan = out["tiny"] = stores.get_plan("tiny")
    tiny_id, _ = accounts.create_key(stores, plan="tiny", name="tiny", key_id="key_tiny")
    record = stores.find_key(tiny_id)
    assert plan is not None and record is not None
    who, limiter = Principal(tiny_id, record[1], plan), Limiter(stores, lambda: T0)
    out["admissions"] = []
    for _ in range(4):
        try:
            out["admissions"].append(limiter.admit(who, billable=True).headers)  # type: ignore[union-attr]
        except RateLimited as exc:
            out["admissions"].append((exc.code, exc.headers))
    records = [
        usage(tiny_id, T0, "openai/text-embedding-3-small", 30, 0.0012, "r1"),
        usage(tiny_id, T0, "openai/text-embedding-3-small", 25, 0.0009, "r2"),
        usage(tiny_id, T0.replace(day=30), "cohere/embed-english-v3.0", 7, 1e-7, "r3"),
        usage(tiny_id, T0.replace(day=30), "cohere/embed-english-v3.0", 0, 0.0, "r4"),
    ]
    out["written"] = [stores.write_usage(r, 1_900_000_000, 1_800_000_000, r.model) for r in records]
    out["replayed"] = stores.write_usage(records[0], 1_900_000_000, 1_800_000_000, records[0].model)
    out["day_rollups"] = stores.day_rollups(tiny_id, "2025-03-01", "2025-03-31")
    out["month_rollups"] = stores.month_rollups(tiny_id, "2025-03")
    out["last_used"] = stores.last_used(tiny_id)
    out["usage_records"] = stores.usage_records(tiny_id, "2025-03-30T00:00:00", "2025-03-31T23:59:59")
    out["spend"] = stores.spend(tiny_id, "2025-03-31")
    try:
        limiter.admit(who, billable=True)
    except RateLimited as exc:
        out["over budget"] = exc.code
    out["revoked"] = blank(accounts.revoke_key(stores, key_id))
    out["set_plan"] = blank(accounts.set_plan(stores, tiny_id, "free"))
    new_key = accounts.rotate_key(stores, tiny_id)
    out["rotated"] = (blank(stores.get_key(hash_key(new_key))), stores.get_key(hash_key("gone")))
    out["keys"] = [(blank(k.record), k.last_used) for k in accounts.list_keys(stores)]
    return out


def test_the_project_code_gets_the_same_answers(devaws: DevAws, monkeypatch: pytest.MonkeyPatch) -> None:
    with mock_aws():
        moto = project_flow(*clients(None))
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", devaws.endpoint)  # for Powertools' client
    ours = on_devaws(devaws, project_flow)
    assert ours["credentials"].api_key == "sk-2" and ours["credentials"].base_url == "http://x"
    assert ours["admissions"][-1][0] == "requests_per_minute_exceeded" and ours["over budget"] == "budget_exceeded"
    assert ours["written"] == [True] * 4 and ours["replayed"] is False
    assert ours["put_key twice"] == "ConditionalCheckFailedException" and len(ours["usage_records"]) == 4
    assert ours == moto


# -- concurrency, raw HTTP, the standalone server -------------------------------------------------------------------


def test_conditional_admission_is_exact_under_16_threads(devaws: DevAws) -> None:
    db, _ = on_devaws(devaws, lambda db, sm: (db, sm))
    db.create_table(**table_spec("meter", ("pk", "S")))
    limit, threads, attempts = 37, 16, 10
    admitted: list[int] = []
    refused: list[str] = []  # each refusal's error code (asserted here: an assert in a thread cannot fail the test)
    start = threading.Barrier(threads)

    def worker() -> None:
        start.wait()
        for _ in range(attempts):
            try:
                answer = db.update_item(
                    TableName="meter",
                    Key={"pk": S("k")},
                    UpdateExpression="ADD n :one",
                    ConditionExpression="attribute_not_exists(n) OR n < :limit",
                    ExpressionAttributeValues={":one": N(1), ":limit": N(limit)},
                    ReturnValues="UPDATED_NEW",
                )
                admitted.append(int(answer["Attributes"]["n"]["N"]))
            except ClientError as exc:
                refused.append(exc.response["Error"]["Code"])

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert sorted(admitted) == list(range(1, limit + 1))  # each count handed out once: no lost update
    assert refused == ["ConditionalCheckFailedException"] * (threads * attempts - limit)
    assert db.get_item(TableName="meter", Key={"pk": S("k")})["Item"]["n"] == N(limit)


def post(aws: DevAws, target: str | None, body: bytes) -> tuple[int, Any]:
    headers = {"Content-Type": "application/x-amz-json-1.0", **({"X-Amz-Target": target} if target else {})}
    request = urllib.request.Request(aws.endpoint, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:  # loopback only
            return answer.status, orjson.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())


def test_bad_requests_are_400s_never_500s(devaws: DevAws) -> None:
    dynamodb, coral = "com.amazonaws.dynamodb.v20120810#", "com.amazon.coral.service#"
    db, _ = on_devaws(devaws, lambda db, sm: (db, sm))
    db.create_table(**table_spec("limits", ("pk", "S")))
    query = (
        b'"TableName": "limits", "KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "a"}}'
    )
    cases = [
        ("DynamoDB_20120810.CreateBackup", b"{}", coral + "UnknownOperationException"),
        ("DynamoDB_20120810.GetItem", b"{not json", coral + "SerializationException"),
        ("DynamoDB_20120810.GetItem", b"[]", coral + "SerializationException"),
        ("DynamoDB_20120810.PutItem", b'{"TableName": 5}', dynamodb + "ResourceNotFoundException"),
        ("DynamoDB_20120810.CreateTable", b'{"TableName": "abc", "KeySchema": 7}', dynamodb + "ValidationException"),
        ("DynamoDB_20120810.TransactWriteItems", b'{"TransactItems": [{"Put": 1}]}', dynamodb + "ValidationException"),
        ("DynamoDB_20120810.TransactGetItems", b'{"TransactItems": [{"Get": 1}]}', dynamodb + "ValidationException"),
        ("DynamoDB_20120810.Query", b'{%s, "Limit": "many"}' % query, dynamodb + "ValidationException"),
        ("DynamoDB_20120810.Scan", b'{"TableName": "limits", "Limit": true}', dynamodb + "ValidationException"),
        ("DynamoDB_20120810.DeleteTable", b'{"TableName": "limits"}', coral + "UnknownOperationException"),
        ("secretsmanager.RotateSecret", b"{}", "UnknownOperationException"),
        ("secretsmanager.GetSecretValue", b"{}", "ResourceNotFoundException"),
        (None, b"{}", coral + "UnknownOperationException"),
    ]
    for target, body, error in cases:
        status, answer = post(devaws, target, body)
        assert (status, answer["__type"]) == (400, error), (target, body, answer)
        assert b"Limit" not in body or "at 'limit'" in answer["message"], answer
    assert post(devaws, "DynamoDB_20120810.Query", b"{%s}" % query)[0] == 200  # the Limit cases fail on Limit alone
    with urllib.request.urlopen(devaws.endpoint, timeout=5) as answer:  # GET: a health check
        assert answer.status == 200


def test_python_m_devaws_serves_standalone_and_stops_with_its_parent() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "layers" / "embedrank")}
    command = [sys.executable, "-m", "embedrank.devaws", "--port", "0", "--exit-on-stdin-eof"]
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        endpoint = proc.stdout.readline().strip()
        assert endpoint.startswith("http://127.0.0.1:")
        db = boto3.client("dynamodb", endpoint_url=endpoint, region_name="eu-west-1")
        db.create_table(**table_spec("standalone", ("pk", "S")))
        assert db.describe_table(TableName="standalone")["Table"]["TableArn"].startswith("arn:aws:dynamodb:eu-west-1:")
        proc.stdin.close()  # what the parent's exit does
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
