"""Retry policy, deadline and circuit breaker in isolation (the HTTP-level fault suite is test_faults.py)."""

from __future__ import annotations

import asyncio

import pytest

from embedrank.domain.reliability import Breakers, Deadline, RetryPolicy, gather_or_cancel
from embedrank.errors import UpstreamError, UpstreamRateLimited, UpstreamTimeout, UpstreamUnavailable


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run_policy(policy: RetryPolicy, failures: list[Exception], deadline: float = 10.0) -> tuple[str | None, int]:
    calls = {"n": 0}

    async def work(timeout: float) -> str:
        calls["n"] += 1
        if failures:
            raise failures.pop(0)
        return "ok"

    async def main() -> str | None:
        try:
            return await policy.run(work, Deadline(deadline))
        except UpstreamError:
            return None

    return asyncio.run(main()), calls["n"]


def test_retryable_faults_are_retried_until_success() -> None:
    policy = RetryPolicy(attempts=3, base=0.001)
    assert run_policy(policy, [UpstreamUnavailable("500"), UpstreamTimeout("slow")]) == ("ok", 3)


def test_caller_faults_are_not_retried() -> None:
    policy = RetryPolicy(attempts=3, base=0.001)
    assert run_policy(policy, [UpstreamError("400 from provider")]) == (None, 1)


def test_attempts_are_bounded() -> None:
    policy = RetryPolicy(attempts=2, base=0.001)
    assert run_policy(policy, [UpstreamUnavailable("a"), UpstreamUnavailable("b"), UpstreamUnavailable("c")]) == (
        None,
        2,
    )


def test_retry_after_is_honoured_but_never_past_the_deadline() -> None:
    policy = RetryPolicy(attempts=3, base=0.001)
    assert policy.backoff(1, 2.5) == 2.5
    # Retry-After of 30 s does not fit a 1 s deadline: fail now instead of sleeping past it.
    assert run_policy(policy, [UpstreamRateLimited("429", retry_after=30)], deadline=1.0) == (None, 1)


def test_backoff_is_jittered_and_capped() -> None:
    policy = RetryPolicy(base=0.2, cap=1.0)
    waits = {policy.backoff(5, None) for _ in range(50)}
    assert len(waits) > 1 and max(waits) <= 1.0


def test_deadline_counts_down() -> None:
    clock = Clock()
    deadline = Deadline(5, clock)
    clock.now += 4
    assert deadline.remaining() == pytest.approx(1)
    clock.now += 2
    assert deadline.expired()


def test_breaker_opens_after_threshold_then_lets_one_probe_through() -> None:
    clock = Clock()
    breakers = Breakers(threshold=5, cooldown=60, clock=clock)
    for _ in range(4):
        breakers.failure("cohere/x")
    assert breakers.allow("cohere/x")
    breakers.failure("cohere/x")
    assert not breakers.allow("cohere/x") and breakers.is_open("cohere/x")
    clock.now += 61
    assert breakers.allow("cohere/x")  # the probe
    assert not breakers.allow("cohere/x")  # only one at a time
    breakers.failure("cohere/x")  # probe failed: open again for a full cool-down
    assert not breakers.allow("cohere/x")
    clock.now += 61
    assert breakers.allow("cohere/x")
    breakers.success("cohere/x")
    assert breakers.allow("cohere/x") and breakers.allow("cohere/x") and not breakers.is_open("cohere/x")
    assert breakers.allow("other/y")


def test_gather_or_cancel_stops_the_siblings_of_any_failure() -> None:
    stopped: list[str] = []

    async def slow(name: str) -> str:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            stopped.append(name)
            raise
        return name

    async def broken() -> str:
        await asyncio.sleep(0)
        raise ValueError("not an EmbedrankError: a bug, or a malformed answer")

    async def scenario() -> None:
        assert await gather_or_cancel([asyncio.sleep(0, "a"), asyncio.sleep(0, "b")]) == ["a", "b"]
        with pytest.raises(ValueError):
            await gather_or_cancel([slow("x"), broken(), slow("y")])
        await asyncio.sleep(0)
        assert sorted(stopped) == ["x", "y"]

    asyncio.run(scenario())
