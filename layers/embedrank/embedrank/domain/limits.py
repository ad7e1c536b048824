"""Plan enforcement on the hot path: request and token rate limits and the monthly budget, global across containers.

Admission is one conditional ``UpdateItem`` on the key's meter item for the day (``store/dynamo.py``): it adds 1 to
the minute, hour and day request counters, and the request's estimated cost to the day's spend, only if every counter
is below its limit, the minute's tokens are below ``tokens_per_minute`` and the month's spend plus that estimate is
below the budget. DynamoDB applies a conditional update to one item atomically, so concurrent containers can never
admit more than the limit or reserve more than the budget, and there is no read-then-write. The update returns the
new counters, which gives the exact ``x-ratelimit-remaining-*``; a refused update changes nothing and returns the
counters as they stood, which names the limit that was hit.

**The budget holds under concurrency.** Each billable request reserves its estimated cost at admission (tokens
estimated from the text at 2 UTF-8 bytes per token, more than real tokenizers produce; rerank search units exactly;
the dearest deployment of a route), and its usage write settles the meter to the provider-reported cost, in the same
``TransactWriteItems`` it makes anyway: no extra AWS call. So requests in flight count against the budget, and it can
only be exceeded by what the providers bill beyond the estimate (a text that tokenizes at more than one token per two
bytes), never by concurrency.

The budget is monthly but the meter is daily (one item a day keeps its counters small), so the condition is "today's
spend and reservations + this reservation < budget - spend before today". Spend before today no longer changes, so
each container reads it once per key and day (one ``TransactGetItems`` of the month total and today's meter) and
keeps it; every other request makes one call.

Windows are calendar windows in UTC (the minute, hour and day a request starts in), so a counter resets at the
window's boundary and ``Retry-After`` is the time to that boundary. Tokens are only known after the provider
answered: the usage write adds them to the minute's token counter, and admission checks the tokens spent so far
in the minute (a request may overshoot ``tokens_per_minute`` once; the next one waits).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..cache import TtlCache
from ..errors import RateLimited
from ..store.dynamo import Stores
from .auth import Principal
from .records import MeterResult, MeterUpdate


@dataclass(frozen=True, slots=True, eq=False)  # one instance per window: identity is equality, and a cheap hash
class Window:
    limit: str  # the plan's limit name, also the error code's stem
    prefix: str  # counter attribute prefix in the meter item
    fmt: str  # ``str.format`` of the window inside the day (a third of strftime's cost; 7 calls a request)
    step: timedelta

    def counter(self, now: datetime) -> str:
        return self.prefix + self.fmt.format(now)

    def start(self, now: datetime) -> datetime:
        if self.step == timedelta(days=1):
            return now.replace(hour=0, minute=0, second=0, microsecond=0)
        if self.step == timedelta(hours=1):
            return now.replace(minute=0, second=0, microsecond=0)
        return now.replace(second=0, microsecond=0)

    def reset_after(self, now: datetime) -> int:
        """Whole seconds until this window's counter is fresh (at least 1)."""
        return max(1, math.ceil((self.start(now) + self.step - now).total_seconds()))


MINUTE = Window("requests_per_minute", "m", "{0.hour:02d}{0.minute:02d}", timedelta(minutes=1))
HOUR = Window("requests_per_hour", "h", "{0.hour:02d}", timedelta(hours=1))
DAY = Window("requests_per_day", "d", "", timedelta(days=1))
REQUEST_WINDOWS = (MINUTE, HOUR, DAY)
TOKENS = Window("tokens_per_minute", "t", "{0.hour:02d}{0.minute:02d}", timedelta(minutes=1))
BUDGET = "budget"


def duration(seconds: int) -> str:
    """OpenAI's reset format: ``17s``, ``6m0s``, ``2h0m5s``."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def month_reset_after(now: datetime) -> int:
    first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = (first + timedelta(days=32)).replace(day=1)
    return max(1, math.ceil((following - now).total_seconds()))


@dataclass(frozen=True, slots=True)
class Admission:
    """What one admission saw (the ``x-ratelimit-*`` headers every authenticated response carries) and what it held
    against the budget, on which day's meter: the usage write settles it there."""

    headers: dict[str, str]
    day: str = ""
    reserved: float = 0.0


class Limiter:
    def __init__(self, stores: Stores, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._stores = stores
        self._clock = clock
        # (key_id, day) -> USD spent this month before that day: it no longer changes, so it is read once a day.
        self._spent_before: TtlCache[tuple[str, str], float] = TtlCache(ttl=86_400)

    def admit(self, principal: Principal, *, billable: bool, reserve: float = 0.0) -> Admission | None:
        """Synchronous (one DynamoDB call): call it off the event loop. Raises ``RateLimited`` when refused.

        ``billable`` requests (embeddings, rerank) are also held to the budget, their estimated cost (``reserve``,
        USD) reserved in the same atomic update; account requests (models, usage) are not, so a key over budget can
        still see what it spent. None when the plan sets no limits at all.
        """
        limits = principal.plan.limits
        budget = principal.key.monthly_budget
        if budget is None:
            budget = principal.plan.monthly_budget
        if not billable:
            budget = None
        now = self._clock().astimezone(UTC)
        names = {w: w.counter(now) for w in (*REQUEST_WINDOWS, TOKENS)}
        bounds = {names[w]: float(limits[w.limit]) for w in names if w.limit in limits}
        if not bounds and budget is None:
            return None
        day = now.date().isoformat()
        before = 0.0 if budget is None else self.spent_before(principal.key_id, day)
        result = self._stores.update_meter(
            MeterUpdate(
                key_id=principal.key_id,
                day=day,
                expires_at=meter_expiry(day),
                counters=[names[w] for w in REQUEST_WINDOWS],
                bounds=bounds,
                spend_left=None if budget is None else budget - before,
                reserve=0.0 if budget is None else reserve,
                stale=stale_counters(now),
            )
        )
        headers = rate_headers(limits, result, now, names)
        if not result.admitted:
            held = None if budget is None else (budget, before, reserve)
            raise refusal(principal, result, now, held, headers)
        return Admission(headers, day, 0.0 if budget is None else reserve)

    def spent_before(self, key_id: str, day: str) -> float:
        return self._spent_before.get((key_id, day), self._load_spent_before)

    def _load_spent_before(self, key: tuple[str, str]) -> float:
        spend = self._stores.spend(*key)
        return max(0.0, spend.month - spend.day)


@functools.lru_cache(maxsize=8)
def meter_expiry(day: str) -> int:
    """A day's meter may go once the day after it is over (TTL deletes lazily anyway)."""
    start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    return int((start + timedelta(days=2)).timestamp())


def stale_counters(now: datetime) -> list[str]:
    """The previous minute's and hour's counters: removed on each admission, to keep the meter item small."""
    minute, hour = now - timedelta(minutes=1), now - timedelta(hours=1)
    return [MINUTE.counter(minute), TOKENS.counter(minute), HOUR.counter(hour)]


def rate_headers(
    limits: dict[str, int], result: MeterResult, now: datetime, names: dict[Window, str]
) -> dict[str, str]:
    """``x-ratelimit-*`` for the tightest request window (fewest requests left; the shorter window on a tie) and
    for tokens per minute. After a refusal the counters are as they stood, so "remaining" is what is left now.
    ``names``: each window's counter attribute at ``now``."""
    headers: dict[str, str] = {}
    windows = [w for w in REQUEST_WINDOWS if w.limit in limits]
    if windows:
        left = {w: max(0, limits[w.limit] - int(result.values.get(names[w], 0))) for w in windows}
        tightest = min(windows, key=lambda w: (left[w], w.step))
        headers["x-ratelimit-limit-requests"] = str(limits[tightest.limit])
        headers["x-ratelimit-remaining-requests"] = str(left[tightest])
        headers["x-ratelimit-reset-requests"] = duration(tightest.reset_after(now))
    if TOKENS.limit in limits:
        used = int(result.values.get(names[TOKENS], 0))
        headers["x-ratelimit-limit-tokens"] = str(limits[TOKENS.limit])
        headers["x-ratelimit-remaining-tokens"] = str(max(0, limits[TOKENS.limit] - used))
        headers["x-ratelimit-reset-tokens"] = duration(TOKENS.reset_after(now))
    return headers


def refusal(
    principal: Principal,
    result: MeterResult,
    now: datetime,
    budget: tuple[float, float, float] | None,  # (budget, spent before today, this request's reservation), USD
    headers: dict[str, str],
) -> RateLimited:
    """The error for a refused admission, naming the limit that was hit; when several were, the one that resets
    last, since ``Retry-After`` must cover them all."""
    limits, values, plan = principal.plan.limits, result.values, principal.plan.name
    hit: list[tuple[int, str, str]] = []
    for w in (*REQUEST_WINDOWS, TOKENS):
        if w.limit in limits and values.get(w.counter(now), 0) >= limits[w.limit]:
            unit = "tokens" if w is TOKENS else "requests"
            per = w.limit.rsplit("_", 1)[1]
            hit.append((w.reset_after(now), w.limit, f"{limits[w.limit]} {unit} per {per}"))
    if budget is not None:
        allowed, before, reserve = budget
        spent = before + values.get("cost", 0.0)  # reservations of requests still in flight included
        if spent + reserve > allowed:
            what = f"the monthly budget of ${allowed:g} (spent or reserved ${spent:.4f}; this request ${reserve:.4f})"
            hit.append((month_reset_after(now), BUDGET, what))
    # ALL_OLD is the item the condition saw, so something is always hit; the fallback keeps a refusal a clean 429.
    retry, limit, what = max(hit) if hit else (MINUTE.reset_after(now), MINUTE.limit, "the request rate limit")
    return RateLimited(
        f"Rate limit reached for plan '{plan}': {what}. Retry after {retry} s.",
        code=f"{limit}_exceeded",
        headers={**headers, "retry-after": str(retry)},
    )
