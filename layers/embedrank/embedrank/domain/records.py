"""The records the domain works with, whatever stores them: keys, plans, usage, rollups, and one admission.

``store/`` turns them into DynamoDB items and back; nothing here knows a table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

ALL = "all"


@dataclass(frozen=True, slots=True)
class Credentials:
    """A provider's secret and optional base URL (the prefix the provider's own SDK uses)."""

    api_key: str = field(repr=False)
    base_url: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class KeyRecord:
    key_id: str
    name: str
    plan: str
    status: Literal["active", "revoked"]
    created: str
    monthly_budget: float | None = None


CacheScope = Literal["key", "plan"]


@dataclass(frozen=True, slots=True)
class Plan:
    name: str
    allowed_models: frozenset[str] | Literal["all"]
    limits: dict[str, int] = field(default_factory=dict)
    monthly_budget: float | None = None
    description: str = ""
    # The per-input embedding cache (domain/cache.py): entries kept this many days (0: off), shared by each key
    # alone or by every key of the plan.
    embedding_cache_days: int = 0
    embedding_cache_scope: CacheScope = "key"

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
    cached_inputs: int = 0  # inputs answered from the embedding cache
    cost_saved: float = 0.0  # USD: what those inputs would have cost from the provider (estimated)
    # A batch job's chunk is metered in one record: its lines are its requests, its failed lines its errors.
    requests: int = 1
    errors: int | None = None  # None: 1 if ``status`` is an error, else 0
    # What admission held against the budget (USD) and on which day's meter: the usage write settles it there.
    reserved: float = 0.0
    meter_day: str = ""


@dataclass(frozen=True, slots=True)
class Rollup:
    """One rollup item: a day or a month (``period``) of one model's usage by one key."""

    period: str
    model: str
    requests: int
    errors: int
    tokens: int
    search_units: int
    cost: float
    cached_inputs: int = 0
    cost_saved: float = 0.0


@dataclass(frozen=True, slots=True)
class MeterUpdate:
    """One admission, as data: which counters to bump, the bounds they must be under, what to clean up."""

    key_id: str
    day: str  # YYYY-MM-DD: whose meter item
    expires_at: int  # epoch seconds: when the meter item may go
    counters: Sequence[str]  # attributes to ADD 1 to
    bounds: dict[str, float]  # attribute -> admitted only while absent or below this
    spend_left: float | None = None  # USD: admitted only while the day's spend is below it (None: no budget)
    reserve: float = 0.0  # USD: this request's estimated cost, held against the budget until its usage is written
    stale: Sequence[str] = ()  # expired window counters to REMOVE


@dataclass(frozen=True, slots=True)
class Spend:
    month: float  # USD spent this month (month total rollup)
    day: float  # USD of it spent today (the day's meter)


@dataclass(frozen=True, slots=True)
class MeterResult:
    admitted: bool
    values: dict[str, float]  # the meter's counters and ``cost`` (USD): after the update, or as they stood if refused


# -- batch jobs ---------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class JobFile:
    """A file of the Files API: a batch's input (``batch``) or its output or errors (``batch_output``)."""

    id: str
    key_id: str
    filename: str
    purpose: str
    bytes: int
    created_at: int
    expires_at: int
    object_key: str  # where it lives in the files bucket


@dataclass(slots=True)
class Upload:
    """An upload in parts (OpenAI's Uploads API), completed into a ``JobFile``."""

    id: str
    key_id: str
    filename: str
    purpose: str
    bytes: int
    mime_type: str
    created_at: int
    expires_at: int
    status: Literal["pending", "completed", "cancelled", "expired"] = "pending"
    file_id: str | None = None


BATCH_TIMES = ("in_progress_at", "finalizing_at", "completed_at", "failed_at", "cancelling_at", "cancelled_at")


@dataclass(slots=True)
class Batch:
    """A batch job: its request lines, in chunks, run by the job workers (domain/jobs.py)."""

    id: str
    key_id: str
    endpoint: str
    input_file_id: str
    completion_window: str
    created_at: int
    expires_at: int
    status: str
    metadata: dict[str, str] | None = None
    model: str | None = None  # the one model every line names; None when lines name several
    total: int = 0  # lines
    chunks_total: int = 0
    completed: int = 0
    failed: int = 0
    chunks_done: int = 0
    tokens: int = 0  # the completed lines' input tokens
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: list[dict[str, object]] | None = None
    reserved: float = 0.0  # USD held against the budget at creation, settled chunk by chunk
    meter_day: str = ""
    times: dict[str, int] = field(default_factory=dict)  # BATCH_TIMES that have happened
