"""Rate limits and budgets: exact at the boundary under concurrency, windows resetting, budgets blocking."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from starlette.datastructures import Headers

from conftest import PREMIUM_KEY
from embedrank.config import Settings
from embedrank.domain.auth import Authenticator, Principal
from embedrank.domain.limits import Admission, Limiter, duration
from embedrank.domain.records import KeyRecord, UsageRecord
from embedrank.domain.usage import Meter
from embedrank.errors import RateLimited
from embedrank.store.dynamo import Stores
from embedrank_tools.provision import create_tables

T0 = datetime(2025, 3, 31, 22, 59, 30, 250_000, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def make_plan(stores: Stores, name: str, limits: dict[str, int], budget: float | None = None) -> None:
    stores.put_plan({"name": name, "allowed_models": "all", "limits": limits, "monthly_budget": budget})


def principal(stores: Stores, key_id: str, plan: str, budget: float | None = None) -> Principal:
    key = KeyRecord(key_id, key_id, plan, "active", "2025-01-01T00:00:00+00:00", budget)
    found = stores.get_plan(plan)
    assert found is not None
    return Principal(key_id, key, found)


def usage(key_id: str, when: datetime, *, tokens: int = 0, cost: float = 0.0, rid: str = "") -> UsageRecord:
    return UsageRecord(
        request_id=rid or f"r-{when.timestamp()}-{tokens}-{cost}",
        key_id=key_id,
        timestamp=when.isoformat(timespec="milliseconds"),
        endpoint="embeddings",
        model="openai/text-embedding-3-small",
        provider="openai",
        status=200,
        latency_ms=1.0,
        tokens=tokens,
        cost=cost,
    )


def refused(limiter: Limiter, who: Principal, billable: bool = True, reserve: float = 0.0) -> RateLimited:
    with pytest.raises(RateLimited) as info:
        limiter.admit(who, billable=billable, reserve=reserve)
    return info.value


@pytest.fixture
def stores(aws: None, settings: Settings) -> Stores:
    return Stores(settings)


# -- windows ----------------------------------------------------------------------------------------------------------


def test_minute_hour_and_day_windows_reset_at_their_boundaries(stores: Stores) -> None:
    make_plan(stores, "tiny", {"requests_per_minute": 3, "requests_per_hour": 5, "requests_per_day": 20})
    who = principal(stores, "key_w", "tiny")
    clock = Clock(T0)
    limiter = Limiter(stores, clock)

    seen = [limiter.admit(who, billable=True) for _ in range(3)]
    assert [a.headers["x-ratelimit-remaining-requests"] for a in seen if a] == ["2", "1", "0"]
    assert seen[0] is not None and seen[0].headers["x-ratelimit-limit-requests"] == "3"  # the minute is tightest
    err = refused(limiter, who)
    assert err.status == 429 and err.code == "requests_per_minute_exceeded"
    assert err.headers["retry-after"] == "30"  # 22:59:30.25 -> 23:00:00
    assert err.headers["x-ratelimit-remaining-requests"] == "0"

    clock.now = T0 + timedelta(seconds=30)  # 23:00:00.25: new minute, new hour
    for _ in range(3):
        limiter.admit(who, billable=True)
    clock.now += timedelta(minutes=1)  # 23:01: the minute resets, the hour (5) does not
    second = limiter.admit(who, billable=True)
    assert second is not None
    assert second.headers["x-ratelimit-limit-requests"] == "5"  # hour now tightest: 5 - 4 = 1 left
    assert second.headers["x-ratelimit-remaining-requests"] == "1"
    assert second.headers["x-ratelimit-reset-requests"] == "59m0s"
    limiter.admit(who, billable=True)
    err = refused(limiter, who)
    assert err.code == "requests_per_hour_exceeded" and err.headers["retry-after"] == str(59 * 60 - 0)

    clock.now = datetime(2025, 4, 1, 0, 0, 0, tzinfo=UTC)  # next day, next month: everything fresh
    assert limiter.admit(who, billable=True) is not None


def test_day_limit_names_itself_with_retry_after_to_midnight(stores: Stores) -> None:
    make_plan(stores, "daily", {"requests_per_minute": 100, "requests_per_day": 2})
    who = principal(stores, "key_d", "daily")
    clock = Clock(datetime(2025, 5, 6, 23, 0, 0, tzinfo=UTC))
    limiter = Limiter(stores, clock)
    limiter.admit(who, billable=True)
    limiter.admit(who, billable=True)
    err = refused(limiter, who)
    assert err.code == "requests_per_day_exceeded" and err.headers["retry-after"] == "3600"
    assert "2 requests per day" in err.message and "'daily'" in err.message
    clock.now = datetime(2025, 5, 7, 0, 0, 1, tzinfo=UTC)
    assert limiter.admit(who, billable=True) is not None


def test_tokens_per_minute_counts_metered_tokens(stores: Stores, settings: Settings) -> None:
    make_plan(stores, "tpm", {"requests_per_minute": 100, "tokens_per_minute": 1000})
    who = principal(stores, "key_t", "tpm")
    clock = Clock(datetime(2025, 5, 6, 12, 0, 10, tzinfo=UTC))
    limiter, meter = Limiter(stores, clock), Meter(stores, settings.usage_retention_days)
    first = limiter.admit(who, billable=True)
    assert first is not None and first.headers["x-ratelimit-remaining-tokens"] == "1000"
    meter.record(usage("key_t", clock.now, tokens=600))
    second = limiter.admit(who, billable=True)
    assert second is not None and second.headers["x-ratelimit-remaining-tokens"] == "400"
    meter.record(usage("key_t", clock.now, tokens=500))  # overshoots once: tokens are known only afterwards
    err = refused(limiter, who)
    assert err.code == "tokens_per_minute_exceeded" and err.headers["retry-after"] == "50"
    assert err.headers["x-ratelimit-remaining-tokens"] == "0"
    clock.now += timedelta(seconds=50)
    assert limiter.admit(who, billable=True) is not None


# -- budgets ----------------------------------------------------------------------------------------------------------


def test_budget_blocks_until_the_month_rolls_over(stores: Stores, settings: Settings) -> None:
    make_plan(stores, "budgeted", {"requests_per_minute": 100}, budget=1.0)
    who = principal(stores, "key_b", "budgeted")
    meter = Meter(stores, settings.usage_retention_days)
    day1 = datetime(2025, 6, 10, 9, 0, tzinfo=UTC)
    meter.record(usage("key_b", day1, cost=0.6))
    meter.record(usage("key_b", day1 + timedelta(hours=1), cost=0.5))  # earlier days: 1.1 spent

    clock = Clock(datetime(2025, 6, 11, 8, 0, tzinfo=UTC))
    limiter = Limiter(stores, clock)
    err = refused(limiter, who)
    assert err.code == "budget_exceeded" and "$1" in err.message
    assert err.headers["retry-after"] == str(int((datetime(2025, 7, 1, tzinfo=UTC) - clock.now).total_seconds()))
    assert err.headers["x-ratelimit-remaining-requests"] == "100"  # refusal did not count
    assert limiter.admit(who, billable=False) is not None  # account endpoints stay open

    clock.now = datetime(2025, 7, 1, 0, 0, 1, tzinfo=UTC)
    assert limiter.admit(who, billable=True) is not None


def test_budget_crossed_today_blocks_and_key_override_wins(stores: Stores, settings: Settings) -> None:
    make_plan(stores, "rich", {"requests_per_minute": 100}, budget=1000.0)
    who = principal(stores, "key_o", "rich", budget=0.25)  # the key's own budget overrides the plan's
    clock = Clock(datetime(2025, 6, 11, 8, 0, tzinfo=UTC))
    limiter, meter = Limiter(stores, clock), Meter(stores, settings.usage_retention_days)
    meter.record(usage("key_o", datetime(2025, 6, 2, tzinfo=UTC), cost=0.2))  # before today
    assert limiter.admit(who, billable=True) is not None
    meter.record(usage("key_o", clock.now, cost=0.04))
    assert limiter.admit(who, billable=True) is not None  # 0.24 < 0.25
    meter.record(usage("key_o", clock.now, cost=0.02))
    assert refused(limiter, who).code == "budget_exceeded"  # 0.26


def test_a_zero_budget_admits_nothing_that_costs(stores: Stores) -> None:
    # given a plan with no money to spend
    make_plan(stores, "zero", {"requests_per_minute": 100}, budget=0)
    who = principal(stores, "key_z", "zero")
    limiter = Limiter(stores, Clock(datetime(2025, 6, 11, 8, 0, tzinfo=UTC)))
    # then a request that costs anything is refused; one that costs nothing (a self-hosted model), and the
    # account endpoints, still answer
    assert refused(limiter, who, reserve=0.0001).code == "budget_exceeded"
    assert limiter.admit(who, billable=True, reserve=0.0) is not None
    assert limiter.admit(who, billable=False) is not None


def test_a_reservation_is_settled_to_the_cost_by_the_usage_write(stores: Stores, settings: Settings) -> None:
    # given a budget of $1 and a request admitted with $0.60 reserved
    make_plan(stores, "dollar", {"requests_per_minute": 100}, budget=1.0)
    who = principal(stores, "key_r", "dollar")
    clock = Clock(datetime(2025, 6, 11, 8, 0, tzinfo=UTC))
    limiter, meter = Limiter(stores, clock), Meter(stores, settings.usage_retention_days)
    admission = limiter.admit(who, billable=True, reserve=0.60)
    assert admission is not None and admission.reserved == 0.60
    # then a second such request does not fit while the first is in flight
    assert refused(limiter, who, reserve=0.60).code == "budget_exceeded"
    # when the first one's usage is written at its real cost, $0.10
    record = usage("key_r", clock.now, cost=0.10)
    record.reserved, record.meter_day = admission.reserved, admission.day
    assert meter.record(record) is True
    # then the budget has $0.90 left: the same request fits, and then not even $0.35 more
    assert limiter.admit(who, billable=True, reserve=0.60) is not None
    assert refused(limiter, who, reserve=0.35).code == "budget_exceeded"
    assert limiter.admit(who, billable=True, reserve=0.30) is not None


def test_no_limits_and_no_budget_make_no_call(stores: Stores) -> None:
    stores.put_plan({"name": "open", "allowed_models": "all"})
    who = principal(stores, "key_n", "open")

    class NoCalls(Stores):
        def update_meter(self, update: Any) -> Any:
            raise AssertionError("no limits: no DynamoDB call")

    assert Limiter(NoCalls(stores.settings)).admit(who, billable=True) is None


def test_duration_format() -> None:
    assert [duration(s) for s in (1, 59, 60, 61, 3600, 3725)] == ["1s", "59s", "1m0s", "1m1s", "1h0m0s", "1h2m5s"]


# -- revocation -------------------------------------------------------------------------------------------------------


def test_revocation_takes_effect_after_the_auth_cache_ttl(stores: Stores) -> None:
    from embedrank.errors import AuthenticationError
    from embedrank_tools import accounts

    now = [1000.0]
    authenticator = Authenticator(stores, 30, clock=lambda: now[0])
    headers = Headers({"x-api-key": PREMIUM_KEY})
    assert authenticator.authenticate(headers).key_id == "key_premium"
    accounts.revoke_key(stores, "key_premium")
    now[0] += 29.9
    assert authenticator.authenticate(headers).key_id == "key_premium"  # cached: still works inside the TTL
    now[0] += 0.2
    with pytest.raises(AuthenticationError) as info:
        authenticator.authenticate(headers)
    assert info.value.code == "revoked_api_key" and info.value.status == 401


# -- concurrency ------------------------------------------------------------------------------------------------------


@pytest.fixture
def serial_dynamodb(settings: Settings) -> Iterator[Stores]:
    """A moto server that handles one request at a time, as DynamoDB applies one item's updates one at a time.

    moto's in-process backend has no lock around ``UpdateItem`` (read, evaluate the condition, write), so under
    threads it can interleave two updates of one item, which real DynamoDB never does. The clients here still
    send concurrently over real HTTP connections; only the server serializes."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, DomainDispatcherApplication(create_backend_app), threaded=False)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        from botocore.config import Config

        endpoint = f"http://127.0.0.1:{server.server_port}"
        db = boto3.client("dynamodb", endpoint_url=endpoint, config=Config(max_pool_connections=64))
        create_tables(db, settings)
        yield Stores(settings, db)
    finally:
        server.shutdown()
        thread.join()


def test_limit_holds_exactly_under_concurrent_requests(serial_dynamodb: Stores) -> None:
    stores = serial_dynamodb
    make_plan(stores, "burst", {"requests_per_minute": 10, "requests_per_hour": 1000})
    who = principal(stores, "key_c", "burst")
    limiter = Limiter(stores, Clock(datetime(2025, 6, 11, 8, 0, 5, tzinfo=UTC)))
    admitted, codes = at_once(32, lambda: limiter.admit(who, billable=True))
    remaining = [a.headers["x-ratelimit-remaining-requests"] for a in admitted]
    assert len(remaining) == 10 and sorted(remaining) == sorted(str(i) for i in range(10))
    assert codes == ["requests_per_minute_exceeded"] * (32 - 10)


def at_once(n: int, admit: Callable[[], Admission | None]) -> tuple[list[Admission], list[str]]:
    """``admit`` from ``n`` threads released together: the admissions, and the codes of the refusals."""
    start = threading.Barrier(n)
    admitted: list[Admission] = []
    codes: list[str] = []

    def attempt() -> None:
        start.wait()
        try:
            result = admit()
            assert result is not None
            admitted.append(result)
        except RateLimited as err:
            codes.append(err.code)

    workers = [threading.Thread(target=attempt) for _ in range(n)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return admitted, codes


def test_usage_write_retries_a_transaction_conflict_then_gives_up(settings: Settings) -> None:
    """DynamoDB cancels a transaction that collides with another on a hot rollup; botocore does not retry that, the
    meter does (once, in one place: the whole write)."""
    from botocore.exceptions import ClientError

    from embedrank.errors import StoreUnavailable

    conflict = {
        "Error": {"Code": "TransactionCanceledException", "Message": "conflict"},
        "CancellationReasons": [{"Code": "None"}, {"Code": "TransactionConflict"}],
    }

    class Flaky:
        def __init__(self, failures: int) -> None:
            self.failures, self.calls = failures, 0

        def transact_write_items(self, **_: Any) -> dict[str, Any]:
            self.calls += 1
            if self.calls <= self.failures:
                raise ClientError(conflict, "TransactWriteItems")  # type: ignore[arg-type]
            return {}

    waits: list[float] = []

    def meter(client: Flaky) -> Meter:
        return Meter(Stores(settings, client), 90, sleep=waits.append)  # type: ignore[arg-type]

    record = usage("key_x", datetime(2025, 1, 2, tzinfo=UTC), tokens=3)
    flaky = Flaky(2)
    assert meter(flaky).write(record) is True
    assert flaky.calls == 3
    # The other transaction is done in milliseconds: short waits (5-20 ms × n), not the throttling backoff (≤ 100 ms ×).
    assert len(waits) == 2 and 0.005 <= waits[0] <= 0.02 and 0.01 <= waits[1] <= 0.04
    hopeless = Flaky(99)
    with pytest.raises(StoreUnavailable, match="TransactionConflict"):
        meter(hopeless).write(record)
    assert hopeless.calls == 3  # WRITE_ATTEMPTS, and no more: no retry loop nested inside another


def test_a_budget_holds_under_concurrent_requests(serial_dynamodb: Stores) -> None:
    # given a budget worth 20 requests, and 100 requests arriving at once, each reserving its estimated cost
    stores = serial_dynamodb
    make_plan(stores, "twenty", {"requests_per_minute": 1000}, budget=20 * 0.01)
    who = principal(stores, "key_b", "twenty")
    limiter = Limiter(stores, Clock(datetime(2025, 6, 11, 8, 0, 5, tzinfo=UTC)))
    admitted, codes = at_once(100, lambda: limiter.admit(who, billable=True, reserve=0.01))
    # then exactly 20 are admitted (the bar: at most 22), and every other one is refused for the budget
    assert len(admitted) == 20 and all(a.reserved == 0.01 for a in admitted)
    assert codes == ["budget_exceeded"] * (100 - len(admitted))
