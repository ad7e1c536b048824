"""Data access: API keys, plans and usage in DynamoDB. The only module that knows the tables' items and requests.

Every call goes through the process's one boto3 DynamoDB client (``aws.dynamodb``) and through ``translated``, the
one place an AWS failure becomes a domain error: throttling, an unreachable endpoint, a 5xx, refused credentials or a
missing table raise ``StoreUnavailable`` (a 503 with ``Retry-After``), never a 500. Outcomes that are answers, not
failures, are read before that: a refused admission (``ConditionalCheckFailedException``), a usage record already
written (a replay), a transaction conflict (retried).

The usage table holds everything metered for one key under one partition, ``pk = "key#<key_id>"``; the sort key's
prefix says what an item is:

    sk                                 what                                          expires
    req#<iso ts>#<request_id>          one request (UsageRecord)                     USAGE_RETENTION_DAYS
    day#<YYYY-MM-DD>#<model>           day × model rollup                            never
    month#<YYYY-MM>#<model>            month × model rollup                          never
    total#<YYYY-MM>                    month total rollup, ``last_used``             never
    meter#<YYYY-MM-DD>                 the day's rate counters and spend (limits)    the day after

Rollups carry ``requests``, ``errors``, ``tokens``, ``search_units`` and ``cost_nano_usd``, all maintained with
atomic ``ADD``. Money is summed as integer nano-dollars (every catalog price is a whole number of them per token or
search), so millions of additions never drift the way float sums do; it is USD everywhere outside this module.

The meter is what the hot path checks, in one conditional ``UpdateItem``. Its rate counters are attributes named
after their window, so they never need resetting: ``d`` requests that day, ``h<HH>`` that hour, ``m<HHMM>`` that
minute, ``t<HHMM>`` tokens that minute; ``cost_nano_usd`` is the day's spend. Each admission removes the previous
minute's and hour's counters; one that outlives its window (after a gap in traffic) is a few bytes, gone with the
item the next day.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, cast

from .. import aws
from ..config import Settings
from ..domain.records import ALL, KeyRecord, MeterResult, MeterUpdate, Plan, Rollup, Spend, UsageRecord
from ..errors import StoreUnavailable
from .tables import USAGE_TTL_ATTRIBUTE as TTL

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

KEY_PREFIX = "key#"
COST = "cost_nano_usd"
CACHED = "cached_inputs"
SAVED = "saved_nano_usd"
NANO = 1_000_000_000
# DynamoDB answers a write that collides with an in-flight transaction on the same item with a conflict, which
# botocore does not retry; per-key rollups are hot items, so a few quick retries absorb bursts from one key.
CONFLICT_ATTEMPTS = 4
CONFLICT = "TransactionConflict"
# AWS error codes another attempt cannot fix: a request that meets one fails at once (still a 503: the gateway, not
# the caller, is at fault).
PERMANENT = frozenset(
    {
        "ValidationException",
        "ResourceNotFoundException",
        "AccessDeniedException",
        "UnrecognizedClientException",
        "MissingAuthenticationTokenException",
        "InvalidSignatureException",
        "NoCredentialsError",
        "NoRegionError",
    }
)


def _n(value: float | int) -> dict[str, str]:
    # Positional notation: "1e-07" is valid DynamoDB, but moto's ADD (the local stack) only parses plain decimals.
    return {"N": format(Decimal(repr(value)), "f") if isinstance(value, float) else str(value)}


def _s(item: dict[str, Any], name: str, default: str = "") -> str:
    value = item.get(name)
    return str(value["S"]) if value else default


def _num(item: dict[str, Any], name: str) -> float:
    value = item.get(name)
    return float(value["N"]) if value else 0.0


def _meter_values(item: dict[str, Any]) -> dict[str, float]:
    """The meter item's numbers, with the spend as USD under ``cost``."""
    values = {k: float(v["N"]) for k, v in item.items() if "N" in v}
    values["cost"] = values.pop(COST, 0.0) / NANO
    return values


def aws_code(exc: BaseException) -> str:
    """An AWS error's code (``ConditionalCheckFailedException``, ...), or "" for anything else."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _cancellation_reasons(exc: BaseException) -> list[str]:
    reasons = (getattr(exc, "response", None) or {}).get("CancellationReasons") or []
    return [str(r.get("Code", "")) for r in reasons]


def unavailable(exc: BaseException) -> StoreUnavailable | None:
    """The domain error for a botocore failure; None when ``exc`` is not one (a bug, left to surface as one)."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        code = aws_code(exc)
        cancelled_by_conflict = code == "TransactionCanceledException" and CONFLICT in _cancellation_reasons(exc)
        if cancelled_by_conflict or code == "TransactionConflictException":
            code = CONFLICT
    elif isinstance(exc, BotoCoreError):
        code = type(exc).__name__
    else:
        return None
    # The code only: an AWS message can name the account, the table's ARN or the key that was looked up.
    return StoreUnavailable(
        f"The gateway's data store is unavailable ({code}); retry shortly.",
        aws_code=code,
        retryable=code not in PERMANENT,
    )


@contextmanager
def translated() -> Iterator[None]:
    """The one place AWS failures become ``StoreUnavailable``."""
    try:
        yield
    except StoreUnavailable:
        raise
    except Exception as exc:
        mapped = unavailable(exc)
        if mapped is None:
            raise
        raise mapped from exc


def conflicted(exc: BaseException) -> bool:
    """A collision with another transaction on the same item: worth a quick retry (see ``conflict_wait``)."""
    return isinstance(exc, StoreUnavailable) and exc.aws_code == CONFLICT


def conflict_wait(attempt: int) -> float:
    """The pause before retry ``attempt`` (1, 2, ...) after a conflict: the other transaction ends in milliseconds."""
    return random.uniform(0.005, 0.02) * attempt


class Stores:
    """Keys, plans and usage tables. Every method is synchronous (boto3); callers run them off the event loop.

    ``client`` replaces the process's DynamoDB client (tests, tools); every method raises ``StoreUnavailable`` when
    AWS fails, and nothing else from AWS.
    """

    def __init__(self, settings: Settings, client: DynamoDBClient | None = None) -> None:
        self.settings = settings
        self._client = client

    @property
    def db(self) -> DynamoDBClient:
        return self._client or aws.dynamodb()

    def _call(self, operation: str, **params: Any) -> Any:
        with translated():
            return getattr(self.db, operation)(**params)

    def _pages(self, operation: str, **params: Any) -> Iterator[dict[str, Any]]:
        with translated():
            yield from self.db.get_paginator(operation).paginate(**params)  # type: ignore[call-overload]

    # -- keys -------------------------------------------------------------------------------------------------------

    def get_key(self, key_hash: str) -> KeyRecord | None:
        item = self._call("get_item", TableName=self.settings.keys_table, Key={"key_hash": {"S": key_hash}}).get("Item")
        return key_from_item(item) if item else None

    def put_key(self, key_hash: str, record: KeyRecord) -> None:
        self._call(
            "put_item",
            TableName=self.settings.keys_table,
            Item=key_to_item(key_hash, record),
            ConditionExpression="attribute_not_exists(key_hash)",
        )

    def find_key(self, key_id: str) -> tuple[str, KeyRecord] | None:
        """``(key_hash, record)`` for a key id, through the ``by-key-id`` index."""
        items = self._call(
            "query",
            TableName=self.settings.keys_table,
            IndexName="by-key-id",
            KeyConditionExpression="key_id = :id",
            ExpressionAttributeValues={":id": {"S": key_id}},
        )["Items"]
        return (items[0]["key_hash"]["S"], key_from_item(items[0])) if items else None

    def list_keys(self) -> list[KeyRecord]:
        """Every key (a scan: admin use only, never on a request's path)."""
        pages = self._pages("scan", TableName=self.settings.keys_table)
        return [key_from_item(item) for page in pages for item in page["Items"]]

    def update_key(self, key_hash: str, *, status: str | None = None, plan: str | None = None) -> None:
        values = {k: v for k, v in (("status", status), ("plan", plan)) if v is not None}
        self._call(
            "update_item",
            TableName=self.settings.keys_table,
            Key={"key_hash": {"S": key_hash}},
            UpdateExpression="SET " + ", ".join(f"#{k} = :{k}" for k in values),
            ConditionExpression="attribute_exists(key_hash)",
            ExpressionAttributeNames={f"#{k}": k for k in values},
            ExpressionAttributeValues={f":{k}": {"S": v} for k, v in values.items()},
        )

    def replace_key_hash(self, old_hash: str, new_hash: str, record: KeyRecord) -> None:
        """Rotation: the same key record under a new hash, the old hash gone, in one transaction."""
        self._call(
            "transact_write_items",
            TransactItems=[
                {
                    "Delete": {
                        "TableName": self.settings.keys_table,
                        "Key": {"key_hash": {"S": old_hash}},
                        "ConditionExpression": "key_id = :id",
                        "ExpressionAttributeValues": {":id": {"S": record.key_id}},
                    }
                },
                {
                    "Put": {
                        "TableName": self.settings.keys_table,
                        "Item": key_to_item(new_hash, record),
                        "ConditionExpression": "attribute_not_exists(key_hash)",
                    }
                },
            ],
        )

    # -- plans ------------------------------------------------------------------------------------------------------

    def get_plan(self, name: str) -> Plan | None:
        item = self._call("get_item", TableName=self.settings.plans_table, Key={"name": {"S": name}}).get("Item")
        return plan_from_item(item) if item else None

    def put_plan(self, plan: dict[str, Any]) -> None:
        self._call("put_item", TableName=self.settings.plans_table, Item=plan_to_item(plan))

    def list_plans(self) -> list[Plan]:
        pages = self._pages("scan", TableName=self.settings.plans_table)
        return [plan_from_item(item) for page in pages for item in page["Items"]]

    # -- limits: the hot path's one call ----------------------------------------------------------------------------

    def update_meter(self, update: MeterUpdate) -> MeterResult:
        """Bump the window counters in one conditional ``UpdateItem`` on the month total item; refused (nothing
        changes) when any bound or the budget is already reached."""
        values: dict[str, Any] = {":one": _n(1), ":exp": _n(update.expires_at)}
        names: dict[str, str] = {"#exp": TTL}
        conditions = []
        for i, (attribute, bound) in enumerate(update.bounds.items()):
            values[f":b{i}"] = _n(bound)
            conditions.append(f"(attribute_not_exists({attribute}) OR {attribute} < :b{i})")
        adds = [f"{c} :one" for c in update.counters]
        if update.spend_left is not None:
            # Admitted only while today's spend (reservations in flight included) plus this request's reservation
            # stays within what is left of the budget; the reservation is added in the same atomic update.
            names["#cost"] = COST
            cap = round(update.spend_left * NANO) - round(update.reserve * NANO)
            values[":cap"] = _n(cap)
            # cap < 0: the budget cannot take this request; a condition that cannot hold still returns the
            # counters for the headers.
            conditions.append("(attribute_not_exists(#cost) OR #cost <= :cap)" if cap >= 0 else "#cost <= :cap")
            if update.reserve > 0:
                values[":reserve"] = _n(round(update.reserve * NANO))
                adds.append("#cost :reserve")
        expression = "ADD " + ", ".join(adds) + " SET #exp = :exp"
        if update.stale:
            expression += " REMOVE " + ", ".join(update.stale)
        params: dict[str, Any] = {
            "TableName": self.settings.usage_table,
            "Key": {"pk": {"S": KEY_PREFIX + update.key_id}, "sk": {"S": f"meter#{update.day}"}},
            "UpdateExpression": expression,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ReturnValues": "ALL_NEW",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if conditions:
            params["ConditionExpression"] = " AND ".join(conditions)
        from botocore.exceptions import ClientError

        for attempt in range(1, CONFLICT_ATTEMPTS + 1):
            try:
                with translated():
                    try:
                        answer = self.db.update_item(**params)
                    except ClientError as exc:
                        if aws_code(exc) != "ConditionalCheckFailedException":
                            raise
                        # Refused: ALL_OLD is the item as the condition saw it, which names the limit that was hit.
                        old = cast(dict[str, Any], exc.response).get("Item") or {}
                        return MeterResult(False, _meter_values(old))
                return MeterResult(True, _meter_values(answer.get("Attributes") or {}))
            except StoreUnavailable as exc:
                if attempt == CONFLICT_ATTEMPTS or not conflicted(exc):
                    raise
                time.sleep(conflict_wait(attempt))
        raise AssertionError("unreachable")

    def spend(self, key_id: str, day: str) -> Spend:
        """This month's and today's spend, read together (one ``TransactGetItems``: a consistent snapshot)."""
        pk = {"S": KEY_PREFIX + key_id}
        answer = self._call(
            "transact_get_items",
            TransactItems=[
                {"Get": {"TableName": self.settings.usage_table, "Key": {"pk": pk, "sk": {"S": f"total#{day[:7]}"}}}},
                {"Get": {"TableName": self.settings.usage_table, "Key": {"pk": pk, "sk": {"S": f"meter#{day}"}}}},
            ],
        )
        month, today = (_num(r.get("Item") or {}, COST) / NANO for r in answer["Responses"])
        return Spend(month=month, day=today)

    # -- usage ------------------------------------------------------------------------------------------------------

    def write_usage(
        self, record: UsageRecord, expires_at: int, meter_expires_at: int, rollup_model: str, *, live: bool = True
    ) -> bool:
        """The one usage write, one ``TransactWriteItems``: the request record, its day and month rollups, the
        month total, and the day's meter (spend for the budget, tokens for the minute's token counter). The meter
        of the day the request was admitted gets the cost less what admission reserved there, which settles the
        reservation. Returns False for a replay: the record exists already, so nothing is counted twice."""
        pk = {"S": KEY_PREFIX + record.key_id}
        ts = record.timestamp
        day, month, minute = ts[:10], ts[:7], "t" + ts[11:13] + ts[14:16]
        amounts = {
            "requests": record.requests,
            "errors": int(record.status >= 400) if record.errors is None else record.errors,
            "tokens": record.tokens,
            "search_units": record.search_units,
            COST: round(record.cost * NANO),
        }
        if record.cached_inputs:  # only requests the embedding cache answered carry these
            amounts |= {CACHED: record.cached_inputs, SAVED: round(record.cost_saved * NANO)}
        adds = ", ".join(f"#{k} :{k}" for k in amounts)
        values = {f":{k}": _n(v) for k, v in amounts.items()}
        names = {f"#{k}": k for k in amounts}

        def rollup(sk: str, period: str) -> dict[str, Any]:
            return {
                "Update": {
                    "TableName": self.settings.usage_table,
                    "Key": {"pk": pk, "sk": {"S": sk}},
                    "UpdateExpression": f"ADD {adds} SET #period = :period, #model = :model",
                    "ExpressionAttributeNames": {**names, "#period": "period", "#model": "model"},
                    "ExpressionAttributeValues": {**values, ":period": {"S": period}, ":model": {"S": rollup_model}},
                }
            }

        total_set = "SET #period = :period"
        total_names, total_values = {**names, "#period": "period"}, {**values, ":period": {"S": month}}
        if live:  # a replayed record is older than the key's latest use: it leaves ``last_used`` alone
            total_set += ", #last = :ts"
            total_names["#last"], total_values[":ts"] = "last_used", {"S": ts}
        meter_adds = f"#{COST} :settle" + (f", {minute} :tokens" if record.tokens else "")
        settle = _n(round(record.cost * NANO) - round(record.reserved * NANO))
        items: list[Any] = [
            {
                "Put": {
                    "TableName": self.settings.usage_table,
                    "Item": usage_item(record, expires_at),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            rollup(f"day#{day}#{rollup_model}", day),
            rollup(f"month#{month}#{rollup_model}", month),
            {
                "Update": {
                    "TableName": self.settings.usage_table,
                    "Key": {"pk": pk, "sk": {"S": f"total#{month}"}},
                    "UpdateExpression": f"ADD {adds} {total_set}",
                    "ExpressionAttributeNames": total_names,
                    "ExpressionAttributeValues": total_values,
                }
            },
            {
                "Update": {
                    "TableName": self.settings.usage_table,
                    "Key": {"pk": pk, "sk": {"S": f"meter#{record.meter_day or day}"}},
                    "UpdateExpression": f"ADD {meter_adds} SET #exp = if_not_exists(#exp, :exp)",
                    "ExpressionAttributeNames": {f"#{COST}": COST, "#exp": TTL},
                    "ExpressionAttributeValues": {
                        ":settle": settle,
                        ":exp": _n(meter_expires_at),
                        **({":tokens": values[":tokens"]} if record.tokens else {}),
                    },
                }
            },
        ]
        from botocore.exceptions import ClientError

        # Not retried here: ``usage.Meter.write`` retries the whole write, a conflict included, within its budget.
        with translated():
            try:
                self.db.transact_write_items(TransactItems=items)
            except ClientError as exc:
                # The record is the first item: its condition failing means this request was written already.
                if _cancellation_reasons(exc)[:1] == ["ConditionalCheckFailed"]:
                    return False
                raise
        return True

    def day_rollups(self, key_id: str, start: str, end: str) -> list[Rollup]:
        """Day × model rollups for ``start``..``end`` (YYYY-MM-DD, inclusive): one Query, paged."""
        # '$' sorts right after '#', so "day#<end>$" is above every "day#<end>#<model>" and below the next day.
        return list(self._rollups(key_id, "sk BETWEEN :a AND :b", {":a": f"day#{start}", ":b": f"day#{end}$"}))

    def month_rollups(self, key_id: str, month: str) -> list[Rollup]:
        return list(self._rollups(key_id, "begins_with(sk, :p)", {":p": f"month#{month}#"}))

    def last_used(self, key_id: str) -> str | None:
        """The newest request's timestamp, from the newest month total item."""
        items = self._call(
            "query",
            TableName=self.settings.usage_table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :p)",
            ExpressionAttributeValues={":pk": {"S": KEY_PREFIX + key_id}, ":p": {"S": "total#"}},
            ScanIndexForward=False,
            Limit=1,
        )["Items"]
        return _s(items[0], "last_used") or None if items else None

    def usage_records(self, key_id: str, start: str, end: str) -> list[UsageRecord]:
        """Raw per-request records between two ISO timestamps (admin and tests; the API reads rollups)."""
        pages = self._pages(
            "query",
            TableName=self.settings.usage_table,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :a AND :b",
            ExpressionAttributeValues={
                ":pk": {"S": KEY_PREFIX + key_id},
                ":a": {"S": f"req#{start}"},
                ":b": {"S": f"req#{end}$"},
            },
        )
        return [usage_from_item(item) for page in pages for item in page["Items"]]

    def _rollups(self, key_id: str, condition: str, values: dict[str, str]) -> Iterator[Rollup]:
        pages = self._pages(
            "query",
            TableName=self.settings.usage_table,
            KeyConditionExpression=f"pk = :pk AND {condition}",
            ExpressionAttributeValues={":pk": {"S": KEY_PREFIX + key_id}, **{k: {"S": v} for k, v in values.items()}},
        )
        for page in pages:
            for item in page["Items"]:
                yield Rollup(
                    period=_s(item, "period"),
                    model=_s(item, "model"),
                    requests=int(_num(item, "requests")),
                    errors=int(_num(item, "errors")),
                    tokens=int(_num(item, "tokens")),
                    search_units=int(_num(item, "search_units")),
                    cost=_num(item, COST) / NANO,
                    cached_inputs=int(_num(item, CACHED)),
                    cost_saved=_num(item, SAVED) / NANO,
                )


def key_from_item(item: dict[str, Any]) -> KeyRecord:
    budget = item.get("monthly_budget")
    status = _s(item, "status", "revoked")
    return KeyRecord(
        key_id=_s(item, "key_id"),
        name=_s(item, "name"),
        plan=_s(item, "plan"),
        status="active" if status == "active" else "revoked",
        created=_s(item, "created"),
        monthly_budget=float(budget["N"]) if budget else None,
    )


def key_to_item(key_hash: str, record: KeyRecord) -> dict[str, Any]:
    item: dict[str, Any] = {
        "key_hash": {"S": key_hash},
        "key_id": {"S": record.key_id},
        "name": {"S": record.name},
        "plan": {"S": record.plan},
        "status": {"S": record.status},
        "created": {"S": record.created},
    }
    if record.monthly_budget is not None:
        item["monthly_budget"] = _n(float(record.monthly_budget))
    return item


def plan_from_item(item: dict[str, Any]) -> Plan:
    allowed = item.get("allowed_models", {})
    models: frozenset[str] | Literal["all"] = (
        "all" if allowed.get("S") == ALL else frozenset(v["S"] for v in allowed.get("L", []))
    )
    limits = {k: int(v["N"]) for k, v in item.get("limits", {}).get("M", {}).items()}
    budget = item.get("monthly_budget")
    cache_days = item.get("embedding_cache_days")
    return Plan(
        name=item["name"]["S"],
        allowed_models=models,
        limits=limits,
        monthly_budget=float(budget["N"]) if budget else None,
        description=_s(item, "description"),
        embedding_cache_days=int(cache_days["N"]) if cache_days else 0,
        embedding_cache_scope="plan" if _s(item, "embedding_cache_scope") == "plan" else "key",
    )


def plan_to_item(plan: dict[str, Any]) -> dict[str, Any]:
    """A plan from the seed file (``infra/plans.json``) as a DynamoDB item."""
    allowed = plan["allowed_models"]
    item: dict[str, Any] = {
        "name": {"S": plan["name"]},
        "allowed_models": {"S": ALL} if allowed == ALL else {"L": [{"S": m} for m in allowed]},
        "limits": {"M": {k: _n(int(v)) for k, v in plan.get("limits", {}).items()}},
    }
    if plan.get("monthly_budget") is not None:
        item["monthly_budget"] = _n(float(plan["monthly_budget"]))
    if plan.get("description"):
        item["description"] = {"S": plan["description"]}
    if plan.get("embedding_cache_days"):
        item["embedding_cache_days"] = _n(int(plan["embedding_cache_days"]))
        item["embedding_cache_scope"] = {"S": plan.get("embedding_cache_scope", "key")}
    return item


def usage_item(record: UsageRecord, expires_at: int) -> dict[str, Any]:
    return {
        "pk": {"S": KEY_PREFIX + record.key_id},
        "sk": {"S": f"req#{record.timestamp}#{record.request_id}"},
        "request_id": {"S": record.request_id},
        "key_id": {"S": record.key_id},
        "ts": {"S": record.timestamp},
        "endpoint": {"S": record.endpoint},
        "model": {"S": record.model},
        "provider": {"S": record.provider},
        "status": _n(record.status),
        "latency_ms": _n(round(record.latency_ms, 3)),
        "input_count": _n(record.input_count),
        "tokens": _n(record.tokens),
        "search_units": _n(record.search_units),
        "cost": _n(round(record.cost, 10)),
        "estimated": {"BOOL": record.estimated},
        CACHED: _n(record.cached_inputs),
        "cost_saved": _n(round(record.cost_saved, 10)),
        TTL: _n(expires_at),
    } | ({"requests": _n(record.requests), "errors": _n(record.errors or 0)} if record.requests != 1 else {})


def usage_from_item(item: dict[str, Any]) -> UsageRecord:
    return UsageRecord(
        request_id=_s(item, "request_id"),
        key_id=_s(item, "key_id"),
        timestamp=_s(item, "ts"),
        endpoint=_s(item, "endpoint"),
        model=_s(item, "model"),
        provider=_s(item, "provider"),
        status=int(_num(item, "status")),
        latency_ms=_num(item, "latency_ms"),
        input_count=int(_num(item, "input_count")),
        tokens=int(_num(item, "tokens")),
        search_units=int(_num(item, "search_units")),
        cost=_num(item, "cost"),
        cached_inputs=int(_num(item, CACHED)),
        cost_saved=_num(item, "cost_saved"),
        requests=int(_num(item, "requests")) if "requests" in item else 1,
        errors=int(_num(item, "errors")) if "errors" in item else None,
        estimated=bool(item.get("estimated", {}).get("BOOL", False)),
    )
