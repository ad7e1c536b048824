"""API keys: how they look, how they are hashed, and who a request's key belongs to.

Keys are ``er-`` followed by 43 url-safe characters (32 random bytes). Only their SHA-256 is stored: a key has 256
bits of entropy, so a slow password hash would add latency without adding safety. Lookups are cached per container
for ``auth_cache_ttl`` seconds (≤ 60), which bounds how long a revoked key keeps working.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..cache import TtlCache
from ..errors import AuthenticationError, PermissionDenied
from ..store.dynamo import Stores
from .records import KeyRecord, Plan

KEY_PREFIX = "er-"


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def extract_key(headers: Mapping[str, str]) -> str:
    key = headers.get("x-api-key")
    if not key:
        scheme, _, value = (headers.get("authorization") or "").partition(" ")
        key = value.strip() if scheme.lower() == "bearer" else ""
    if not key:
        raise AuthenticationError(
            "No API key provided. Send it as 'X-API-Key: <key>' or 'Authorization: Bearer <key>'.",
            code="missing_api_key",
        )
    return key.strip()


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    key: KeyRecord
    plan: Plan

    def require_model(self, model: str) -> None:
        if not self.plan.allows(model):
            raise PermissionDenied(
                f"The model '{model}' is not included in your plan '{self.plan.name}'. "
                "GET /v1/models lists the models your plan allows.",
                param="model",
            )


class Authenticator:
    def __init__(self, stores: Stores, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._stores = stores
        self._keys: TtlCache[str, KeyRecord | None] = TtlCache(ttl, clock=clock)
        self._plans: TtlCache[str, Plan | None] = TtlCache(ttl, clock=clock)

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        """Synchronous (DynamoDB on a cache miss): call it off the event loop."""
        record = self._keys.get(hash_key(extract_key(headers)), self._stores.get_key)
        if record is None:
            raise AuthenticationError("Incorrect API key provided.")
        if record.status != "active":
            raise AuthenticationError("This API key has been revoked.", code="revoked_api_key")
        plan = self._plans.get(record.plan, self._stores.get_plan)
        if plan is None:
            raise PermissionDenied(f"This API key's plan '{record.plan}' does not exist.", code="unknown_plan")
        return Principal(record.key_id, record, plan)
