"""The provider secret is cached once, whole, for SECRET_CACHE_SECONDS: a rotation shows after that, not before."""

from __future__ import annotations

import json

import boto3

from conftest import PROVIDER_SECRET
from embedrank.config import Settings
from embedrank.store.secrets import CredentialStore


def test_a_rotated_key_is_used_once_the_cache_expires_and_not_before(aws: None, settings: Settings) -> None:
    now = [1000.0]
    store = CredentialStore(settings.provider_secret, max_age=300, clock=lambda: now[0])
    assert store.cached("openai") == (False, None)  # cold: the caller must fetch, off the event loop
    first = store.get("openai")
    assert first is not None and first.api_key == PROVIDER_SECRET["openai"]["api_key"]
    assert store.cached("openai") == (True, first) and store.cached("bedrock") == (True, None)  # parsed whole
    rotated = {**PROVIDER_SECRET, "openai": {"api_key": "sk-rotated"}}
    boto3.client("secretsmanager").put_secret_value(SecretId=settings.provider_secret, SecretString=json.dumps(rotated))
    now[0] += 299
    assert store.get("openai") == first  # still within SECRET_CACHE_SECONDS
    now[0] += 2
    assert store.cached("openai") == (False, None)
    fresh = store.get("openai")
    assert fresh is not None and fresh.api_key == "sk-rotated"
