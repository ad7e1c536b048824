"""Retries, deadlines and circuit breaking for provider calls.

A request gets one ``Deadline``: in Lambda, the function's remaining time less a margin (so the gateway answers before
API Gateway's 30 s cut-off instead of being killed mid-flight), locally ``REQUEST_DEADLINE_SECONDS``. Every provider
attempt is bounded by what remains of it. ``RetryPolicy`` retries only faults marked ``retryable`` in ``errors``
(429, 5xx, connection failures, timeouts), with full-jitter exponential backoff, honouring the provider's
``Retry-After`` when it fits in the deadline. ``Breakers`` keeps one circuit per deployment in this container: after
``threshold`` consecutive failures the deployment is skipped for ``cooldown`` seconds, then a single probe decides.
State is per container, not shared: a shared breaker would cost a DynamoDB call per request, and a cold container
re-learns a dead deployment within ``threshold`` attempts.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field

from ..errors import UpstreamError, UpstreamTimeout


class Deadline:
    """An absolute point in time (monotonic clock) by which the request must be answered."""

    __slots__ = ("_clock", "at")

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.at = clock() + seconds

    def remaining(self) -> float:
        return self.at - self._clock()

    def expired(self) -> bool:
        return self.remaining() <= 0


class Budget:
    """One request's deadline, the upstream attempts made under it and how long each took (for logs and metrics)."""

    __slots__ = ("attempts", "deadline", "upstream_ms")

    def __init__(self, deadline: Deadline) -> None:
        self.deadline = deadline
        self.attempts = 0
        self.upstream_ms: list[float] = []

    def count(self) -> None:
        self.attempts += 1

    def observe(self, started: float) -> None:
        """One attempt that began at ``started`` (``time.perf_counter``) has ended, answered or not."""
        self.upstream_ms.append((time.perf_counter() - started) * 1000)


_BUDGET: ContextVar[Budget | None] = ContextVar("embedrank_budget", default=None)

# API Gateway answers 504 itself after 30 s; leave room to send our own answer before that.
API_GATEWAY_LIMIT = 29.0
LAMBDA_MARGIN = 1.0


def start_budget(default_seconds: float, lambda_remaining_ms: int | None = None) -> Budget:
    """Begin a request's budget: the Lambda's remaining time less a margin, else ``default_seconds``."""
    seconds = default_seconds
    if lambda_remaining_ms is not None:
        seconds = min(lambda_remaining_ms / 1000 - LAMBDA_MARGIN, API_GATEWAY_LIMIT)
    budget = Budget(Deadline(max(seconds, 0.0)))
    _BUDGET.set(budget)
    return budget


def current_budget(default_seconds: float) -> Budget:
    """The running request's budget (tasks copy the context, so batch calls share it); a fresh one outside a request."""
    budget = _BUDGET.get()
    return budget if budget is not None else start_budget(default_seconds)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 3  # per deployment, including the first
    base: float = 0.2  # seconds; attempt n waits up to base * 2**n
    cap: float = 4.0
    min_attempt_time: float = 0.25  # do not start an attempt with less time than this left

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after
        return random.uniform(0, min(self.cap, self.base * 2**attempt))  # full jitter

    async def run[T](
        self, work: Callable[[float], Awaitable[T]], deadline: Deadline, on_attempt: Callable[[], None] | None = None
    ) -> T:
        """Call ``work(timeout)`` until it succeeds, fails for good, or the deadline leaves no room for another try."""
        attempt = 0
        while True:
            remaining = deadline.remaining()
            if remaining < self.min_attempt_time:
                raise UpstreamTimeout("The request deadline passed before the provider answered.")
            if on_attempt is not None:
                on_attempt()
            try:
                return await work(remaining)
            except UpstreamError as exc:
                attempt += 1
                if not exc.retryable or attempt >= self.attempts:
                    raise
                wait = self.backoff(attempt, exc.retry_after)
                if wait + self.min_attempt_time > deadline.remaining():
                    raise
                await asyncio.sleep(wait)


@dataclass(slots=True)
class _Circuit:
    failures: int = 0
    open_until: float = 0.0
    probe: asyncio.Future[bool] | None = None  # the half-open probe in flight; True once it succeeded


@dataclass
class Breakers:
    """One circuit per deployment, in this container.

    Closed, every call goes ahead. After ``threshold`` consecutive failures it is open for ``cooldown`` seconds:
    calls are declined at once (``retry_after`` says for how long). Then the first call is the probe; calls that
    arrive while it is in flight wait for its outcome, within their own deadline, instead of failing: a provider that
    recovered serves them all, one that did not re-opens the circuit for another cooldown.
    """

    threshold: int = 5
    cooldown: float = 60.0
    clock: Callable[[], float] = time.monotonic
    _circuits: dict[str, _Circuit] = field(default_factory=dict)

    async def acquire(self, key: str, deadline: Deadline) -> bool:
        """Whether a call to ``key`` may go ahead now, waiting for a probe in flight; False: the circuit is open."""
        circuit = self._circuits.get(key)
        if circuit is None or circuit.failures < self.threshold:
            return True
        if self.clock() < circuit.open_until:
            return False
        probe = circuit.probe
        loop = asyncio.get_running_loop()
        if probe is None or probe.done() or probe.get_loop() is not loop:
            circuit.probe = loop.create_future()  # this call is the probe
            return True
        try:
            async with asyncio.timeout(max(0.0, deadline.remaining())):
                return await asyncio.shield(probe)
        except TimeoutError:
            return False

    def retry_after(self, key: str) -> float:
        """Seconds until an open circuit lets its next probe through (0 when it is not open)."""
        circuit = self._circuits.get(key)
        return max(0.0, circuit.open_until - self.clock()) if circuit is not None else 0.0

    def success(self, key: str) -> None:
        circuit = self._circuits.pop(key, None)
        if circuit is not None and circuit.probe is not None and not circuit.probe.done():
            circuit.probe.set_result(True)

    def failure(self, key: str) -> None:
        circuit = self._circuits.setdefault(key, _Circuit())
        circuit.failures += 1
        if circuit.failures >= self.threshold:
            circuit.open_until = self.clock() + self.cooldown
        self._settle_probe(circuit)

    def abandon(self, key: str) -> None:
        """A call that ended without a verdict on the provider (cancelled, a bug): the next call probes instead."""
        circuit = self._circuits.get(key)
        if circuit is not None:
            self._settle_probe(circuit)

    @staticmethod
    def _settle_probe(circuit: _Circuit) -> None:
        if circuit.probe is not None and not circuit.probe.done():
            circuit.probe.set_result(False)
        circuit.probe = None

    def is_open(self, key: str) -> bool:
        circuit = self._circuits.get(key)
        return circuit is not None and circuit.failures >= self.threshold and self.clock() < circuit.open_until


async def gather_or_cancel[T](works: Sequence[Awaitable[T]]) -> list[T]:
    """All the results, in order; when one fails (or the caller is cancelled), the others are cancelled rather than
    left running as orphans, and the failure is raised."""
    tasks = [asyncio.ensure_future(work) for work in works]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        raise
