"""Provider credentials from one Secrets Manager secret (JSON by provider id), cached with a TTL.

The secret looks like ``{"openai": {"api_key": "...", "base_url": "optional"}, "cohere": {...}, ...}``. It is read
through Powertools Parameters, whose cache expires after ``max_age`` seconds, so a rotated key is picked up without a
deploy. Neither the secret nor any value in it is ever logged.
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
        # Parsed entries, valid until Powertools' own cache would refetch: lets the hot path skip a thread hop.
        self._parsed: tuple[float, dict[str, Credentials | None]] | None = None

    def _secret(self) -> dict[str, Any]:
        from aws_lambda_powertools.utilities import parameters

        try:
            value = parameters.get_secret(self.secret_name, transform="json", max_age=self.max_age)
        except parameters.exceptions.GetParameterError:
            raise ProviderNotConfigured(
                "The provider secret could not be read; check PROVIDER_SECRET_NAME and the function's permissions."
            ) from None
        return value if isinstance(value, dict) else {}

    def cached(self, provider: str) -> tuple[bool, Credentials | None]:
        """``(True, credentials)`` when known without I/O, else ``(False, None)``: then call ``get``."""
        parsed = self._parsed
        if parsed is not None and parsed[0] > self._clock() and provider in parsed[1]:
            return True, parsed[1][provider]
        return False, None

    def get(self, provider: str) -> Credentials | None:
        """The provider's credentials, or None when the secret has no entry for it (e.g. Bedrock uses IAM).

        Synchronous (Secrets Manager when the cache is cold): call it off the event loop.
        """
        secret = self._secret()
        entry = secret.get(provider)
        credentials = None
        if isinstance(entry, dict):
            extra = {k: str(v) for k, v in entry.items() if k not in ("api_key", "base_url") and v is not None}
            credentials = Credentials(str(entry.get("api_key") or ""), entry.get("base_url") or None, extra)
        parsed = self._parsed
        if parsed is None or parsed[0] <= self._clock():
            parsed = (self._clock() + self.max_age, {})
        parsed[1][provider] = credentials
        self._parsed = parsed
        return credentials

    def clear(self) -> None:
        self._parsed = None
