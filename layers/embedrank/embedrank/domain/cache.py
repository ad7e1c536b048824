"""The per-input embedding cache: a vector already bought is not bought again, and never returned for anything else.

A plan turns it on (``embedding_cache_days``, ``embedding_cache_scope``); a request can opt out in HTTP's own words
(``Cache-Control: no-cache``: do not read, may write; ``no-store``: do not write).

**Exact by construction.** An entry's key is the SHA-256 of everything that decides the vector:

    the scope        the API key (``key:<key_id>``, the default) or the plan (``plan:<name>``)
    the weights      the catalog's ``weights``: a route and the direct model, Cohere direct and Cohere on Bedrock,
                     share entries; different weights never do
    the input type   as it reaches the provider: the request's ``input_type`` where the provider takes one as a field,
                     nothing where it takes none, and for prompt-based models the prompt is in the text itself
    the width        the output dimensions, and whether the provider made them (native) or the gateway truncated
    the precision    float32 (float and base64 answers share entries)
    the input        the exact text as sent (prompt included), or the token ids

A batch is looked up whole, only its distinct misses are sent to the provider (split as usual), and the answer is
reassembled in input order from the entries and the provider's vectors: the index of every vector is its input's
position, whatever mix of hits, misses and duplicates the batch holds. A base64 hit is the provider's bytes, so its
base64 is the provider's own; a float hit is the same float32 values.

**Never fails a request.** A throttled or unreachable table, an entry of the wrong size (corrupted, or not what this
model returns): logged (ids and counts only), counted in the ``CacheErrors`` metric, and served by the provider.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from base64 import b64decode, b64encode
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

from ..errors import StoreUnavailable
from ..observability import logger
from ..store.cache import GET_BATCH, PUT_BATCH, CacheStore
from .catalog import Deployment
from .records import Plan

VERSION = b"embedrank-cache-v1"
FLOAT32 = 4
CONCURRENCY = 8  # batch calls in flight for one request


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """What the cache may do for one request."""

    scope: str
    days: int
    read: bool
    write: bool


def policy(plan: Plan, key_id: str, cache_control: str | None) -> CachePolicy | None:
    """The request's cache policy: None when the plan has no cache, or the request neither reads nor writes."""
    if plan.embedding_cache_days <= 0:
        return None
    directives = {part.split("=", 1)[0].strip().lower() for part in (cache_control or "").split(",")}
    read, write = "no-cache" not in directives, "no-store" not in directives
    if not (read or write):
        return None
    scope = f"plan:{plan.name}" if plan.embedding_cache_scope == "plan" else f"key:{key_id}"
    return CachePolicy(scope, plan.embedding_cache_days, read, write)


def entry_keys(
    policy: CachePolicy,
    deployment: Deployment,
    inputs: Sequence[str] | Sequence[list[int]],
    input_type: str | None,
    *,
    width: int,
    native: bool,
) -> list[bytes]:
    """Each input's entry key (``inputs`` as they reach the provider: prompts applied)."""
    mode = (input_type or "-") if deployment.asymmetry == "field" else deployment.asymmetry
    head = b"\0".join(
        (
            VERSION,
            policy.scope.encode(),
            deployment.weights.encode(),
            mode.encode(),
            b"%d%s" % (width, b"n" if native else b"t"),
            b"f32",
            b"",
        )
    )
    keys = []
    for item in inputs:
        body = b"s" + item.encode() if isinstance(item, str) else b"t" + ",".join(map(str, item)).encode()
        keys.append(hashlib.sha256(head + body).digest())
    return keys


@dataclass(slots=True)
class Lookup:
    """One request's use of the cache: what it found (kept across a route's deployments) and what went wrong."""

    policy: CachePolicy
    found: dict[bytes, bytes] = field(default_factory=dict)
    asked: set[bytes] = field(default_factory=set)
    errors: int = 0


class EmbeddingCache:
    """The cache's reads and writes for a request, in parallel batch calls, never raising."""

    def __init__(self, store: CacheStore, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self._clock = clock

    async def read(self, lookup: Lookup, keys: Sequence[bytes], width: int) -> dict[bytes, bytes]:
        """The entries among ``keys`` (each of ``width`` float32 values), or none when the cache fails."""
        if not lookup.policy.read:
            return {}
        wanted = [k for k in dict.fromkeys(keys) if k not in lookup.asked]
        lookup.asked.update(wanted)
        if wanted:
            try:
                results = await _bounded(
                    [partial(self.store.get, wanted[i : i + GET_BATCH]) for i in range(0, len(wanted), GET_BATCH)]
                )
            except StoreUnavailable as exc:
                self._failed(lookup, "read", exc.aws_code, len(wanted))
                return {}
            size = width * FLOAT32
            for found, _unprocessed in results:
                for key, vector in found.items():
                    if len(vector) == size:
                        lookup.found[key] = vector
                    else:  # corrupted, or another width under a colliding key: never returned
                        self._failed(lookup, "read", "WrongSize", 1)
        return {k: lookup.found[k] for k in keys if k in lookup.found}

    async def write(self, lookup: Lookup, entries: dict[bytes, bytes]) -> None:
        """Store ``entries``; before the answer is sent, so the caller's next request sees them."""
        if not lookup.policy.write or not entries:
            return
        expires = int(self._clock()) + lookup.policy.days * 86_400
        items = list(entries.items())
        batches = [dict(items[i : i + PUT_BATCH]) for i in range(0, len(items), PUT_BATCH)]
        try:
            left = await _bounded([partial(self.store.put, batch, expires) for batch in batches])
        except StoreUnavailable as exc:
            self._failed(lookup, "write", exc.aws_code, len(entries))
            return
        if sum(left):
            self._failed(lookup, "write", "Unprocessed", sum(left))

    def _failed(self, lookup: Lookup, operation: str, code: str, entries: int) -> None:
        lookup.errors += 1
        logger.warning(
            "embedding cache unavailable; the provider serves these inputs",
            extra={"cache_operation": operation, "error_code": code, "entries": entries},
        )


async def _bounded[T](calls: Sequence[Callable[[], T]]) -> list[T]:
    """The blocking batch calls in worker threads, at most ``CONCURRENCY`` at once; the first failure is raised once
    all have ended."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(call: Callable[[], T]) -> T:
        async with gate:
            return await asyncio.to_thread(call)

    results = await asyncio.gather(*(one(c) for c in calls), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results  # type: ignore[return-value]


def to_bytes(b64: str) -> bytes:
    return b64decode(b64)


def to_b64(vector: bytes) -> str:
    return b64encode(vector).decode("ascii")
