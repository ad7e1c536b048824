"""Data access: API keys, plans and usage in DynamoDB. The only module that speaks DynamoDB's wire format.

boto3 is imported when the first client is built, not at module import (cold start). Endpoints come from the
standard per-service settings (``AWS_ENDPOINT_URL_DYNAMODB``), so local mode can point DynamoDB at the embedded
local AWS without redirecting Bedrock.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .config import Settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

ALL = "all"


@dataclass(frozen=True, slots=True)
class KeyRecord:
    key_id: str
    name: str
    plan: str
    status: Literal["active", "revoked"]
    created: str
    monthly_budget: float | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    name: str
    allowed_models: frozenset[str] | Literal["all"]
    limits: dict[str, int] = field(default_factory=dict)
    monthly_budget: float | None = None

    def allows(self, model: str) -> bool:
        return self.allowed_models == ALL or model in self.allowed_models


@dataclass(slots=True)
class UsageRecord:
    request_id: str
    key_id: str
    timestamp: str  # ISO 8601 UTC, millisecond precision
    endpoint: str
    model: str
    provider: str
    status: int
    latency_ms: float
    input_count: int = 0
    tokens: int = 0
    search_units: int = 0
    cost: float = 0.0
    estimated: bool = False


_local = threading.local()


def dynamodb_client() -> DynamoDBClient:
    """A DynamoDB client per thread (boto3 clients are thread-safe, but sessions are not)."""
    client: DynamoDBClient | None = getattr(_local, "dynamodb", None)
    if client is None:
        import boto3
        from botocore.config import Config

        config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=2, read_timeout=5)
        client = boto3.session.Session().client("dynamodb", config=config)
        _local.dynamodb = client
    return client


def _n(value: float | int) -> dict[str, str]:
    return {"N": repr(value) if isinstance(value, float) else str(value)}


def _s(item: dict[str, Any], name: str, default: str = "") -> str:
    value = item.get(name)
    return str(value["S"]) if value else default


class Stores:
    """Keys, plans and usage tables. Every method is synchronous (boto3); callers run them off the event loop."""

    def __init__(self, settings: Settings, client: DynamoDBClient | None = None) -> None:
        self.settings = settings
        self._client = client

    @property
    def db(self) -> DynamoDBClient:
        return self._client or dynamodb_client()

    def get_key(self, key_hash: str) -> KeyRecord | None:
        item = self.db.get_item(TableName=self.settings.keys_table, Key={"key_hash": {"S": key_hash}}).get("Item")
        if not item:
            return None
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

    def get_plan(self, name: str) -> Plan | None:
        item = self.db.get_item(TableName=self.settings.plans_table, Key={"name": {"S": name}}).get("Item")
        return plan_from_item(item) if item else None

    def put_usage(self, record: UsageRecord, expires_at: int) -> None:
        self.db.put_item(
            TableName=self.settings.usage_table,
            Item=usage_item(record, expires_at),
            ConditionExpression="attribute_not_exists(pk)",
        )


def plan_from_item(item: dict[str, Any]) -> Plan:
    allowed = item.get("allowed_models", {})
    models: frozenset[str] | Literal["all"] = (
        "all" if allowed.get("S") == ALL else frozenset(v["S"] for v in allowed.get("L", []))
    )
    limits = {k: int(v["N"]) for k, v in item.get("limits", {}).get("M", {}).items()}
    budget = item.get("monthly_budget")
    return Plan(
        name=item["name"]["S"],
        allowed_models=models,
        limits=limits,
        monthly_budget=float(budget["N"]) if budget else None,
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
    return item


def usage_item(record: UsageRecord, expires_at: int) -> dict[str, Any]:
    return {
        "pk": {"S": f"key#{record.key_id}"},
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
        "expires_at": _n(expires_at),
    }
