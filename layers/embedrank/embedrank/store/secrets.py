"""Provider credentials from one Secrets Manager secret (JSON by provider id), cached with a TTL.

The secret looks like ``{"openai": {"api_key": "...", "base_url": "optional"}, "cohere": {...}, ...}``. It is read
through Powertools Parameters with the process's Secrets Manager client (``aws.secretsmanager``) and parsed whole into
one cache entry that expires after ``max_age`` seconds, so a rotated key is picked up without a deploy, and a cache hit
needs no I/O (the hot path skips a thread hop). Neither the secret nor any value in it is ever logged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .. import aws
from ..cache import TtlCache
from ..domain.records import Credentials
from ..errors import ProviderNotConfigured
from .dynamo import unavailable

Entries = dict[str, Credentials]
MIN_SECRET = 6  # shorter "keys" (a placeholder such as "none") are not secrets worth mangling messages for


class CredentialStore:
    def __init__(self, secret_name: str, max_age: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.secret_name = secret_name
        self._cache: TtlCache[str, Entries] = TtlCache(max_age, maxsize=1, clock=clock)
        # Every key ever read in this container, a rotated one included: redacted from provider text for good.
        self._secrets: set[str] = set()

    def _load(self, name: str) -> Entries:
        from aws_lambda_powertools.utilities import parameters

        provider = parameters.SecretsProvider(boto3_client=aws.secretsmanager())
        try:
            # Fetched, not read from Powertools' own cache: this store's is the one cache, with the one expiry.
            value: Any = provider.get(name, transform="json", force_fetch=True)
        except parameters.exceptions.GetParameterError as exc:
            # Powertools wraps every failure; the AWS error it caught says whether AWS failed or the secret is wrong.
            mapped = unavailable(exc.__context__) if exc.__context__ is not None else None
            if mapped is not None and mapped.aws_code != "ResourceNotFoundException":
                raise mapped from None
            raise ProviderNotConfigured(
                "The provider secret could not be read; check PROVIDER_SECRET_NAME and the function's permissions."
            ) from None
        except parameters.exceptions.TransformParameterError:
            raise ProviderNotConfigured("The provider secret is not a JSON object of provider entries.") from None
        entries: Entries = {}
        for provider_id, entry in (value if isinstance(value, dict) else {}).items():
            if isinstance(entry, dict):
                extra = {k: str(v) for k, v in entry.items() if k not in ("api_key", "base_url") and v is not None}
                entries[provider_id] = Credentials(
                    str(entry.get("api_key") or ""), entry.get("base_url") or None, extra
                )
        self._secrets.update(c.api_key for c in entries.values() if len(c.api_key) >= MIN_SECRET)
        return entries

    def cached(self, provider: str) -> tuple[bool, Credentials | None]:
        """``(True, credentials)`` when known without I/O, else ``(False, None)``: then call ``get``."""
        found, entries = self._cache.peek(self.secret_name)
        return (True, entries.get(provider)) if found and entries is not None else (False, None)

    def get(self, provider: str) -> Credentials | None:
        """The provider's credentials, or None when the secret has no entry for it (e.g. Bedrock uses IAM).

        Synchronous (Secrets Manager when the cache is cold or expired): call it off the event loop.
        """
        return self._cache.get(self.secret_name, self._load).get(provider)

    def configured(self) -> Entries:
        """Every provider entry (synchronous, like ``get``): the values whose text never leaves the gateway."""
        return self._cache.get(self.secret_name, self._load)

    def redact(self, text: str) -> str:
        """``text`` without any configured provider key in it: a provider's error may quote the key it was sent."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "[redacted]")
        return text

    def clear(self) -> None:
        self._cache.clear()
