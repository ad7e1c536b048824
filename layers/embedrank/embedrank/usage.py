"""Metering and usage reports.

``Meter.record`` is the one usage write per request that reached authentication (one ``TransactWriteItems``, see
``stores.write_usage``). Reports read the rollups, never the raw per-request records.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from datetime import date, timedelta
from typing import Any

from .errors import InvalidRequest
from .limits import meter_expiry
from .stores import Rollup, Stores, UsageRecord

NO_MODEL = "(none)"  # requests that named no model: /v1/models, /v1/usage, bodies rejected before the model
UNKNOWN_MODEL = "(unknown)"  # a model id the catalog does not know: kept out of sort keys, it is caller input
MAX_REPORT_DAYS = 366


class Meter:
    def __init__(self, stores: Stores, retention_days: int, known_models: Collection[str] | None = None) -> None:
        self._stores = stores
        self._retention = retention_days * 86_400
        self._known = frozenset(known_models) if known_models is not None else None

    def rollup_model(self, model: str) -> str:
        if not model:
            return NO_MODEL
        if self._known is not None and model not in self._known:
            return UNKNOWN_MODEL
        return model

    def record(self, record: UsageRecord) -> bool:
        """Synchronous (DynamoDB): call it off the event loop. False when the record was already written."""
        expires_at = int(time.time()) + self._retention
        meter_expires_at = meter_expiry(record.timestamp[:10])
        return self._stores.write_usage(record, expires_at, meter_expires_at, self.rollup_model(record.model))


def parse_day(value: str | None, param: str) -> date:
    if not value:
        raise InvalidRequest(f"The query parameter '{param}' is required (YYYY-MM-DD).", param=param)
    try:
        if len(value) != 10:
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(
            f"The query parameter '{param}' must be a date as YYYY-MM-DD, got '{value[:40]}'.",
            param=param,
            code="invalid_date",
        ) from None


def report_range(params: Mapping[str, str]) -> tuple[date, date]:
    """``start`` and ``end`` (inclusive) from the query string, checked."""
    start, end = parse_day(params.get("start"), "start"), parse_day(params.get("end"), "end")
    if end < start:
        raise InvalidRequest("'end' must not be before 'start'.", param="end", code="invalid_date")
    if end - start >= timedelta(days=MAX_REPORT_DAYS):
        raise InvalidRequest(
            f"The range may span at most {MAX_REPORT_DAYS} days; ask for it in parts.", param="end", code="invalid_date"
        )
    return start, end


def _row(rollup: Rollup, period_name: str) -> dict[str, Any]:
    return {
        period_name: rollup.period,
        "model": rollup.model,
        "requests": rollup.requests,
        "errors": rollup.errors,
        "tokens": rollup.tokens,
        "search_units": rollup.search_units,
        "cost": round(rollup.cost, 10),
    }


def _totals(rollups: list[Rollup]) -> dict[str, Any]:
    return {
        "requests": sum(r.requests for r in rollups),
        "errors": sum(r.errors for r in rollups),
        "tokens": sum(r.tokens for r in rollups),
        "search_units": sum(r.search_units for r in rollups),
        "cost": round(sum(r.cost for r in rollups), 10),
    }


def daily_report(stores: Stores, key_id: str, start: date, end: date) -> dict[str, Any]:
    """The key's usage by day and model, with totals: the body of ``GET /v1/usage``. Synchronous (one Query)."""
    rollups = stores.day_rollups(key_id, start.isoformat(), end.isoformat())
    return {
        "object": "usage",
        "key_id": key_id,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "data": [_row(r, "date") for r in rollups],
        "totals": _totals(rollups),
    }


def monthly_report(stores: Stores, key_id: str, month: str) -> dict[str, Any]:
    """One month's usage by model, with totals (the admin CLI)."""
    rollups = stores.month_rollups(key_id, month)
    return {"key_id": key_id, "month": month, "data": [_row(r, "month") for r in rollups], "totals": _totals(rollups)}
