"""Metering and usage reports.

``Meter.record`` is the one usage write per request that reached authentication (one ``TransactWriteItems``, see
``stores.write_usage``). It never fails the request: a write that fails (throttling, a DynamoDB outage, any error) is
retried a few times within a fraction of a second, and if it still fails the whole record is logged as one
``usage_replay`` line, which ``embedrank usage replay`` (``embedrank_tools.replay``) re-ingests later. The record is
keyed by its timestamp and request id and written only if absent, so a replay never counts a request twice. Reports
read the rollups, never the raw per-request records.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import asdict
from datetime import date, datetime, timedelta
from typing import Any

from ..api.responses import UsageReport, UsageRow, UsageTotals
from ..errors import InvalidRequest, StoreUnavailable
from ..observability import logger
from ..store.dynamo import Stores, conflict_wait, conflicted
from .limits import meter_expiry
from .records import Rollup, UsageRecord

NO_MODEL = "(none)"  # requests that named no model: /v1/models, /v1/usage, bodies rejected before the model
UNKNOWN_MODEL = "(unknown)"  # a model id the catalog does not know: kept out of sort keys, it is caller input
MAX_REPORT_DAYS = 366

REPLAY_MESSAGE = "usage_replay"
MAX_LOGGED_MODEL = 128  # a model id is caller input: the longest part of it a log line carries
# The usage write happens while the caller waits (a Lambda container is frozen once it answers), so its retries are
# few and short: attempt n waits up to 50 ms * 2**n (full jitter), 5-20 ms * n after a transaction conflict, and none
# starts after 0.5 s. This is on top of the DynamoDB client's own retries (aws.py: botocore's legacy mode, 50 and
# 100 ms). An error another attempt cannot fix (``StoreUnavailable.retryable`` False) is not retried.
WRITE_ATTEMPTS = 3
WRITE_BACKOFF = 0.05
WRITE_BUDGET = 0.5


class Meter:
    def __init__(
        self,
        stores: Stores,
        retention_days: int,
        known_models: Collection[str] | None = None,
        *,
        attempts: int = WRITE_ATTEMPTS,
        budget: float = WRITE_BUDGET,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stores = stores
        self._retention = retention_days * 86_400
        self._known = frozenset(known_models) if known_models is not None else None
        self._attempts = attempts
        self._budget = budget
        self._sleep = sleep
        self._clock = clock

    def rollup_model(self, model: str) -> str:
        if not model:
            return NO_MODEL
        if self._known is not None and model not in self._known:
            return UNKNOWN_MODEL
        return model

    def record(self, record: UsageRecord) -> bool | None:
        """Write the request's usage; never raises. True: written. False: it was already written (a replay).
        None: it could not be written and was logged as one ``usage_replay`` line instead.

        Synchronous (DynamoDB): call it off the event loop.
        """
        try:
            return self.write(record)
        except Exception as exc:
            # The whole record (ids, model, numbers: never a key or input text), so nothing is lost; the error's
            # type and code only, since a message may quote what was sent.
            logger.warning(
                REPLAY_MESSAGE,
                extra={
                    "usage_replay": True,
                    "record": self._loggable(record),
                    "error_type": type(exc).__name__,
                    "error_code": (exc.aws_code if isinstance(exc, StoreUnavailable) else "") or None,
                },
            )
            return None

    def _loggable(self, record: UsageRecord) -> dict[str, Any]:
        fields = asdict(record)
        # The model id is caller input: one the catalog does not know is bounded, as in the request log, so a request
        # cannot write an arbitrary blob into the logs (its rollups go under "(unknown)" either way).
        if self.rollup_model(record.model) == UNKNOWN_MODEL:
            fields["model"] = record.model[:MAX_LOGGED_MODEL]
        return fields

    def write(self, record: UsageRecord, *, live: bool = True) -> bool:
        """The usage write, retried on any error but a permanent one; raises the last error. False: already there.
        ``live`` is False for a replayed record, which leaves the key's ``last_used`` alone."""
        started = self._clock()
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._stores.write_usage(
                    record,
                    self.expires_at(record),
                    meter_expiry(record.meter_day or record.timestamp[:10]),
                    self.rollup_model(record.model),
                    live=live,
                )
            except StoreUnavailable as exc:
                if attempt >= self._attempts or not exc.retryable:
                    raise
                wait = conflict_wait(attempt) if conflicted(exc) else random.uniform(0, WRITE_BACKOFF * 2**attempt)
                if self._clock() - started + wait > self._budget:
                    raise
                self._sleep(wait)

    def expires_at(self, record: UsageRecord) -> int:
        """When the per-request record may go: its own time plus the retention (the same for a later replay)."""
        return int(datetime.fromisoformat(record.timestamp).timestamp()) + self._retention


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


def totals(rollups: list[Rollup]) -> UsageTotals:
    return {
        "requests": sum(r.requests for r in rollups),
        "errors": sum(r.errors for r in rollups),
        "tokens": sum(r.tokens for r in rollups),
        "search_units": sum(r.search_units for r in rollups),
        "cost": round(sum(r.cost for r in rollups), 10),
        "cached_inputs": sum(r.cached_inputs for r in rollups),
        "cost_saved": round(sum(r.cost_saved for r in rollups), 10),
    }


def daily_report(stores: Stores, key_id: str, start: date, end: date) -> UsageReport:
    """The key's usage by day and model, with totals: the body of ``GET /v1/usage``. Synchronous (one Query)."""
    rollups = stores.day_rollups(key_id, start.isoformat(), end.isoformat())
    rows: list[UsageRow] = [
        {
            "date": r.period,
            "model": r.model,
            "requests": r.requests,
            "errors": r.errors,
            "tokens": r.tokens,
            "search_units": r.search_units,
            "cost": round(r.cost, 10),
            "cached_inputs": r.cached_inputs,
            "cost_saved": round(r.cost_saved, 10),
        }
        for r in rollups
    ]
    return {
        "object": "usage",
        "key_id": key_id,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "data": rows,
        "totals": totals(rollups),
    }
