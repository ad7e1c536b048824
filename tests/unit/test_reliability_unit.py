"""Retry policy, deadline and circuit breaker in isolation (the HTTP-level fault suite is test_faults.py)."""

from __future__ import annotations

import asyncio
import time

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
    async def scenario() -> None:
        clock = Clock()
        breakers = Breakers(threshold=5, cooldown=60, clock=clock)
        deadline = Deadline(5, clock=clock)
        # given four failures, the circuit is still closed; the fifth opens it for the cool-down
        for _ in range(4):
            breakers.failure("cohere/x")
        assert await breakers.acquire("cohere/x", deadline)
        breakers.failure("cohere/x")
        assert not await breakers.acquire("cohere/x", deadline) and breakers.is_open("cohere/x")
        assert breakers.retry_after("cohere/x") == 60
        # when the cool-down is over, the first call is the probe; when it fails, the circuit opens again
        clock.now += 61
        assert await breakers.acquire("cohere/x", deadline)
        breakers.failure("cohere/x")
        assert not await breakers.acquire("cohere/x", deadline)
        # then, after another cool-down, a successful probe closes it
        clock.now += 61
        assert await breakers.acquire("cohere/x", deadline)
        breakers.success("cohere/x")
        assert await breakers.acquire("cohere/x", deadline) and not breakers.is_open("cohere/x")
        assert await breakers.acquire("other/y", deadline)

    asyncio.run(scenario())


def test_calls_arriving_during_the_probe_wait_for_its_outcome() -> None:
    async def scenario(probe_succeeds: bool) -> list[bool]:
        clock = Clock()
        breakers = Breakers(threshold=1, cooldown=60, clock=clock)
        breakers.failure("cohere/x")
        clock.now += 61
        # given the probe in flight
        assert await breakers.acquire("cohere/x", Deadline(5, clock=clock))
        # when 200 more calls arrive before it ends
        waiting = [asyncio.create_task(breakers.acquire("cohere/x", Deadline(5))) for _ in range(200)]
        await asyncio.sleep(0.01)
        assert not any(task.done() for task in waiting)
        (breakers.success if probe_succeeds else breakers.failure)("cohere/x")
        return list(await asyncio.gather(*waiting))

    # then they all go ahead when the provider recovered, and none does when it did not
    assert asyncio.run(scenario(True)) == [True] * 200
    assert asyncio.run(scenario(False)) == [False] * 200


def test_a_call_waiting_for_the_probe_gives_up_at_its_deadline() -> None:
    async def scenario() -> tuple[bool, float]:
        clock = Clock()
        breakers = Breakers(threshold=1, cooldown=60, clock=clock)
        breakers.failure("cohere/x")
        clock.now += 61
        assert await breakers.acquire("cohere/x", Deadline(5, clock=clock))  # the probe, which never ends
        started = time.monotonic()
        allowed = await breakers.acquire("cohere/x", Deadline(0.1))
        return allowed, time.monotonic() - started

    allowed, waited = asyncio.run(scenario())
    assert not allowed and 0.05 < waited < 1.0


def test_an_abandoned_probe_hands_over_to_the_next_call() -> None:
    async def scenario() -> bool:
        clock = Clock()
        breakers = Breakers(threshold=1, cooldown=60, clock=clock)
        breakers.failure("cohere/x")
        clock.now += 61
        assert await breakers.acquire("cohere/x", Deadline(5, clock=clock))
        breakers.abandon("cohere/x")  # the probe was cancelled (the caller left): no verdict
        return await breakers.acquire("cohere/x", Deadline(5, clock=clock))  # this call probes instead

    assert asyncio.run(scenario())


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
