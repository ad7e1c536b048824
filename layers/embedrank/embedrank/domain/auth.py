"""API keys: how they look, how they are hashed, and who a request's key belongs to.

Keys are ``er-`` followed by 43 url-safe characters (32 random bytes). Only their SHA-256 is stored: a key has 256
bits of entropy, so a slow password hash would add latency without adding safety. Lookups are cached per container
for ``auth_cache_ttl`` seconds (≤ 60), which bounds how long a revoked key keeps working.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ..cache import TtlCache
from ..errors import AuthenticationError, InvalidRequest, PermissionDenied
from ..store.dynamo import Stores
from .records import KeyRecord, Plan

KEY_PREFIX = "er-"


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class Headers(Protocol):
    """What the key is read from: Starlette's ``Headers`` (every value of a repeated header)."""

    def getlist(self, key: str) -> list[str]: ...


def _one(headers: Headers, name: str) -> str | None:
    """The header's single value. Sent twice (two headers, or API Gateway's comma-joined value) is a 400: a request
    carries one credential (RFC 6750, 2), and which one was meant cannot be guessed."""
    values = headers.getlist(name)
    if len(values) > 1 or (values and "," in values[0]):
        raise InvalidRequest(
            f"The {name} header was sent more than once; send one API key.", code="duplicate_credentials"
        )
    return values[0].strip() if values else None


def extract_key(headers: Headers) -> str:
    """The API key, from ``X-API-Key`` or ``Authorization: Bearer``. Both may be sent only when they agree."""
    api_key = _one(headers, "x-api-key")
    authorization = _one(headers, "authorization")
    bearer = None
    if authorization:
        scheme, _, value = authorization.partition(" ")
        bearer = value.strip() if scheme.lower() == "bearer" else None
    if api_key and bearer and api_key != bearer:
        raise AuthenticationError(
            "Two different API keys were sent (X-API-Key and Authorization: Bearer); send one.",
            code="conflicting_credentials",
        )
    key = api_key or bearer
    if not key:
        raise AuthenticationError(
            "No API key provided. Send it as 'X-API-Key: <key>' or 'Authorization: Bearer <key>'.",
            code="missing_api_key",
        )
    return key


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

    def cached(self, headers: Headers) -> Principal | None:
        """The principal when its key and plan are cached (no I/O), else None: then call ``authenticate``."""
        key_hash = hash_key(extract_key(headers))
        found, record = self._keys.peek(key_hash)
        if not found or record is None or record.status != "active":
            return None
        found, plan = self._plans.peek(record.plan)
        return Principal(record.key_id, record, plan) if found and plan is not None else None

    def authenticate(self, headers: Headers) -> Principal:
        """Synchronous (DynamoDB on a cache miss): call it off the event loop."""
        record = self._keys.get(hash_key(extract_key(headers)), self._stores.get_key)
        if record is None:
            raise AuthenticationError("Incorrect API key provided.")
        if record.status != "active":
            raise AuthenticationError("This API key has been revoked.", code="revoked_api_key")
        return self._principal(record)

    def by_id(self, key_id: str) -> Principal:
        """The principal of a key id, as it stands now (a batch job's worker: no key is sent). Synchronous."""
        found = self._stores.find_key(key_id)
        if found is None:
            raise AuthenticationError("The batch's API key no longer exists.")
        if found[1].status != "active":
            raise AuthenticationError("This API key has been revoked.", code="revoked_api_key")
        return self._principal(found[1])

    def _principal(self, record: KeyRecord) -> Principal:
        plan = self._plans.get(record.plan, self._stores.get_plan)
        if plan is None:
            raise PermissionDenied(f"This API key's plan '{record.plan}' does not exist.", code="unknown_plan")
        return Principal(record.key_id, record, plan)
