"""Provider credentials from one Secrets Manager secret (JSON by provider id), cached with a TTL.

The secret looks like ``{"openai": {"api_key": "...", "base_url": "optional"}, "cohere": {...}, ...}``. It is read
through Powertools Parameters, whose cache expires after ``max_age`` seconds, so a rotated key is picked up without a
deploy. Neither the secret nor any value in it is ever logged.
"""

from __future__ import annotations

from typing import Any

from .errors import ProviderNotConfigured
from .providers.base import Credentials


class CredentialStore:
    def __init__(self, secret_name: str, max_age: int) -> None:
        self.secret_name = secret_name
        self.max_age = max_age

    def _secret(self) -> dict[str, Any]:
        from aws_lambda_powertools.utilities import parameters

        try:
            value = parameters.get_secret(self.secret_name, transform="json", max_age=self.max_age)
        except parameters.exceptions.GetParameterError:
            raise ProviderNotConfigured(
                "The provider secret could not be read; check PROVIDER_SECRET_NAME and the function's permissions."
            ) from None
        return value if isinstance(value, dict) else {}

    def get(self, provider: str) -> Credentials | None:
        """The provider's credentials, or None when the secret has no entry for it (e.g. Bedrock uses IAM)."""
        entry = self._secret().get(provider)
        if not isinstance(entry, dict):
            return None
        extra = {k: str(v) for k, v in entry.items() if k not in ("api_key", "base_url") and v is not None}
        return Credentials(str(entry.get("api_key") or ""), entry.get("base_url") or None, extra)
