"""The one per-container cache: get-or-load over ``cachetools.TTLCache``.

Keys and plans (``AUTH_CACHE_SECONDS``), the provider secret (``SECRET_CACHE_SECONDS``) and each key's spend before
today all go through it. A miss is cached too (``None``), so an unknown key costs one lookup per TTL, not one per
request. Bounded, so values keyed by caller input (a hashed key) cannot grow a container's memory without limit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

from cachetools import TTLCache

_MISSING = object()


class TtlCache[K: Hashable, V]:
    def __init__(self, ttl: float, maxsize: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._items: TTLCache[K, object] = TTLCache(maxsize=maxsize, ttl=ttl, timer=clock)

    def get(self, key: K, load: Callable[[K], V]) -> V:
        """The cached value, else ``load(key)``, kept for the TTL (whatever it is, ``None`` included)."""
        value = self._items.get(key, _MISSING)
        if value is _MISSING:
            value = self._items[key] = load(key)
        return value  # type: ignore[return-value]

    def peek(self, key: K) -> tuple[bool, V | None]:
        """``(True, value)`` when cached and fresh, without loading; ``(False, None)`` otherwise."""
        value = self._items.get(key, _MISSING)
        return (False, None) if value is _MISSING else (True, value)  # type: ignore[return-value]

    def clear(self) -> None:
        self._items.clear()
