"""Provider credentials from one Secrets Manager secret (JSON by provider id), cached with a TTL.

The secret looks like ``{"openai": {"api_key": "...", "base_url": "optional"}, "cohere": {...}, ...}``. It is read
through Powertools Parameters and parsed whole into one cache that expires after ``max_age`` seconds, so a rotated key
is picked up without a deploy, and a cache hit needs no I/O (the hot path skips a thread hop). Neither the secret nor
any value in it is ever logged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .errors import ProviderNotConfigured
from .providers.base import Credentials


class CredentialStore:
    def __init__(self, secret_name: str, max_age: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.secret_name = secret_name
        self.max_age = max_age
        self._clock = clock
        self._entries: tuple[float, dict[str, Credentials]] | None = None  # (expires at, by provider)

    def _load(self) -> dict[str, Credentials]:
        from aws_lambda_powertools.utilities import parameters

        try:
            # Fetched, not read from Powertools' own cache: this store's is the one cache, with the one expiry.
            value: Any = parameters.get_secret(self.secret_name, transform="json", force_fetch=True)
        except parameters.exceptions.GetParameterError:
            raise ProviderNotConfigured(
                "The provider secret could not be read; check PROVIDER_SECRET_NAME and the function's permissions."
            ) from None
        entries: dict[str, Credentials] = {}
        for provider, entry in (value if isinstance(value, dict) else {}).items():
            if isinstance(entry, dict):
                extra = {k: str(v) for k, v in entry.items() if k not in ("api_key", "base_url") and v is not None}
                entries[provider] = Credentials(str(entry.get("api_key") or ""), entry.get("base_url") or None, extra)
        return entries

    def cached(self, provider: str) -> tuple[bool, Credentials | None]:
        """``(True, credentials)`` when known without I/O, else ``(False, None)``: then call ``get``."""
        held = self._entries
        if held is not None and held[0] > self._clock():
            return True, held[1].get(provider)
        return False, None

    def get(self, provider: str) -> Credentials | None:
        """The provider's credentials, or None when the secret has no entry for it (e.g. Bedrock uses IAM).

        Synchronous (Secrets Manager when the cache is cold or expired): call it off the event loop.
        """
        known, credentials = self.cached(provider)
        if known:
            return credentials
        entries = self._load()
        self._entries = (self._clock() + self.max_age, entries)
        return entries.get(provider)

    def clear(self) -> None:
        self._entries = None
