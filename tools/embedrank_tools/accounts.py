"""The operator's key and plan lifecycle, for the admin CLI and ``make serve``'s provisioning.

These functions never touch DynamoDB's wire format (``embedrank.store`` does) and never print (``cli.py`` does). A key
is shown once, when created or rotated; afterwards only its hash exists.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from embedrank.domain.auth import hash_key, new_key
from embedrank.domain.limits import REQUEST_WINDOWS, TOKENS
from embedrank.domain.records import KeyRecord, Plan
from embedrank.store.dynamo import Stores

PLANS_SEED = Path(__file__).resolve().parents[2] / "infra" / "plans.json"


class AccountError(Exception):
    """An operator mistake (unknown key id or plan, bad seed file): the CLI prints it and exits non-zero."""


# -- key lifecycle --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyInfo:
    record: KeyRecord
    last_used: str | None


def require_plan(stores: Stores, name: str) -> Plan:
    plan = stores.get_plan(name)
    if plan is None:
        known = ", ".join(sorted(p.name for p in stores.list_plans())) or "none (run 'embedrank plans seed')"
        raise AccountError(f"No plan named '{name}'. Plans: {known}.")
    return plan


def require_key(stores: Stores, key_id: str) -> tuple[str, KeyRecord]:
    found = stores.find_key(key_id)
    if found is None:
        raise AccountError(f"No key with id '{key_id}'. 'embedrank keys list' shows the ids.")
    return found


def create_key(
    stores: Stores, *, plan: str, name: str, key: str | None = None, key_id: str | None = None
) -> tuple[str, str]:
    """Store a new key (only its hash) and return ``(key_id, key)``; the key is never retrievable again."""
    import secrets

    key = key or new_key()
    record = KeyRecord(
        key_id=key_id or "key_" + secrets.token_hex(8),
        name=name,
        plan=plan,
        status="active",
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    stores.put_key(hash_key(key), record)
    return record.key_id, key


def list_keys(stores: Stores) -> list[KeyInfo]:
    """Every key with its last use (from the newest month total rollup: one Query per key, admin only)."""
    records = sorted(stores.list_keys(), key=lambda r: (r.created, r.key_id))
    return [KeyInfo(r, stores.last_used(r.key_id)) for r in records]


def revoke_key(stores: Stores, key_id: str) -> KeyRecord:
    key_hash, record = require_key(stores, key_id)
    stores.update_key(key_hash, status="revoked")
    return replace(record, status="revoked")


def rotate_key(stores: Stores, key_id: str) -> str:
    """A new secret for the same key id, plan and usage history; the old secret stops working (after the auth
    cache TTL). Returns the new key."""
    old_hash, record = require_key(stores, key_id)
    if record.status != "active":
        raise AccountError(f"Key '{key_id}' is revoked; create a new key instead of rotating it.")
    key = new_key()
    stores.replace_key_hash(old_hash, hash_key(key), record)
    return key


def set_plan(stores: Stores, key_id: str, plan: str) -> KeyRecord:
    require_plan(stores, plan)
    key_hash, record = require_key(stores, key_id)
    stores.update_key(key_hash, plan=plan)
    return replace(record, plan=plan)


# -- plans ----------------------------------------------------------------------------------------------------------

PLAN_FIELDS = {f.name for f in fields(Plan)}
MAX_CACHE_DAYS = 3650
LIMIT_NAMES = {w.limit for w in (*REQUEST_WINDOWS, TOKENS)}


def load_plans(path: Path = PLANS_SEED) -> list[dict[str, Any]]:
    """The seed file's plans, checked: a typo in a limit name would otherwise silently mean "no limit"."""
    try:
        plans = orjson.loads(path.read_bytes())["plans"]
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise AccountError(f"Cannot read plans from {path}: {exc}") from None
    for plan in plans:
        name = plan.get("name") if isinstance(plan, dict) else None
        if not isinstance(name, str) or not name:
            raise AccountError(f"{path}: every plan needs a 'name'.")
        unknown = set(plan) - PLAN_FIELDS
        bad_limits = set(plan.get("limits", {})) - LIMIT_NAMES
        allowed = plan.get("allowed_models")
        if unknown or bad_limits:
            raise AccountError(f"{path}: plan '{name}' has unknown fields {sorted(unknown | bad_limits)}.")
        if allowed != "all" and not (isinstance(allowed, list) and all(isinstance(m, str) for m in allowed)):
            raise AccountError(f"{path}: plan '{name}': allowed_models is \"all\" or a list of model ids.")
        if any(not isinstance(v, int) or v <= 0 for v in plan.get("limits", {}).values()):
            raise AccountError(f"{path}: plan '{name}': limits are positive integers.")
        days = plan.get("embedding_cache_days", 0)
        if not isinstance(days, int) or isinstance(days, bool) or not 0 <= days <= MAX_CACHE_DAYS:
            raise AccountError(
                f"{path}: plan '{name}': embedding_cache_days is a whole number of days from 0 (off) to "
                f"{MAX_CACHE_DAYS}, got {days!r}."
            )
        if plan.get("embedding_cache_scope", "key") not in ("key", "plan"):
            raise AccountError(
                f'{path}: plan \'{name}\': embedding_cache_scope is "key" (each API key its own entries) or "plan" '
                f"(every key of the plan shares them), got {plan['embedding_cache_scope']!r}."
            )
    return list(plans)


def seed_plans(stores: Stores, path: Path = PLANS_SEED) -> list[str]:
    plans = load_plans(path)
    for plan in plans:
        stores.put_plan(plan)
    return [p["name"] for p in plans]
