"""The domain's entry object, shared by embeddings and rerank: the catalog, the adapters, the credentials, and how a
provider call is made (retried, timed, circuit-broken) and how a route falls back along its chain.

Nothing here knows HTTP or DynamoDB: ``embeddings.py`` and ``rerank.py`` take a parsed request and an authenticated
principal and return what was computed and what to meter.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from ..config import Settings
from ..errors import CircuitOpen, EmbedrankError, ProviderNotConfigured, UpstreamError
from ..providers import Registry
from ..store.secrets import CredentialStore
from .catalog import Catalog, Deployment
from .records import Credentials
from .reliability import Breakers, RetryPolicy, current_budget, gather_or_cancel

T = TypeVar("T")


class Gateway:
    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        registry: Registry,
        credentials: CredentialStore,
        *,
        policy: RetryPolicy | None = None,
        breakers: Breakers | None = None,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.registry = registry
        self.credentials = credentials
        self.policy = policy or RetryPolicy(attempts=settings.retry_attempts)
        self.breakers = breakers or Breakers(settings.breaker_threshold, settings.breaker_cooldown)

    async def credentials_for(self, provider: str) -> Credentials | None:
        known, credentials = self.credentials.cached(provider)
        if known:
            return credentials
        return await asyncio.to_thread(self.credentials.get, provider)

    async def over_chain(self, chain: Sequence[Deployment], attempt: Callable[[Deployment], Awaitable[T]]) -> T:
        """Try each deployment of a route in order; move on only after a fault that is not the caller's.

        A deployment whose circuit is open is skipped without a call; when every deployment is skipped or failed,
        the last fault is the answer, or, when none was called, a 503 saying when the next probe goes.
        """
        failure: EmbedrankError | None = None
        waits: list[float] = []
        deadline = current_budget(self.settings.request_deadline).deadline
        for deployment in chain:
            if not await self.breakers.acquire(deployment.id, deadline):
                waits.append(self.breakers.retry_after(deployment.id))
                continue
            try:
                return await attempt(deployment)
            except (UpstreamError, ProviderNotConfigured) as exc:
                # The next deployment can help when this one is down or holds bad gateway credentials; not when the
                # request itself was refused.
                if not (exc.retryable or isinstance(exc, ProviderNotConfigured) or exc.code == "provider_auth_failed"):
                    raise
                failure = exc
        if failure is not None:
            raise failure
        wait = min(waits, default=self.breakers.cooldown)
        raise CircuitOpen(
            f"Every deployment of this model failed repeatedly; the gateway pauses calls to it for {wait:.0f} s "
            "more, then lets one probe through.",
            retry_after=wait,
        )

    async def call[R](self, deployment: Deployment, work: Callable[[float], Awaitable[R]]) -> R:
        """One provider call, retried within the request's deadline; its outcome feeds the deployment's circuit.

        ``work`` receives the timeout for this attempt: the provider timeout, or less when the deadline is nearer.
        """
        budget = current_budget(self.settings.request_deadline)

        async def attempt(remaining: float) -> R:
            # Timed per attempt (the UpstreamLatency metric): the provider's own latency, without retry backoff.
            started = time.perf_counter()
            try:
                return await work(min(remaining, self.settings.upstream_timeout))
            finally:
                budget.observe(started)

        try:
            result = await self.policy.run(attempt, budget.deadline, budget.count)
        except UpstreamError as exc:
            if exc.retryable or exc.code == "provider_malformed_response":
                self.breakers.failure(deployment.id)
            else:  # the provider answered, refusing the request or the gateway's key: it is up
                self.breakers.success(deployment.id)
            raise
        except BaseException:
            self.breakers.abandon(deployment.id)
            raise
        self.breakers.success(deployment.id)
        return result

    async def bounded(self, works: list[Awaitable[T]]) -> list[T]:
        """Every result in order, at most ``UPSTREAM_CONCURRENCY`` in flight; one failure cancels the rest."""
        if len(works) == 1:
            return [await works[0]]
        gate = asyncio.Semaphore(self.settings.max_concurrency)

        async def run(work: Awaitable[T]) -> T:
            async with gate:
                return await work

        return await gather_or_cancel([run(w) for w in works])
