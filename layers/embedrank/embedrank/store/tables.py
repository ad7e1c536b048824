"""DynamoDB table shapes, in one place: local provisioning and tests build from these, and a test checks that
``template.yaml`` declares the same keys."""

from __future__ import annotations

from typing import Any

KEYS: dict[str, Any] = {
    "KeySchema": [{"AttributeName": "key_hash", "KeyType": "HASH"}],
    "AttributeDefinitions": [
        {"AttributeName": "key_hash", "AttributeType": "S"},
        {"AttributeName": "key_id", "AttributeType": "S"},
    ],
    "GlobalSecondaryIndexes": [
        {
            "IndexName": "by-key-id",
            "KeySchema": [{"AttributeName": "key_id", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "ALL"},
        }
    ],
}
PLANS: dict[str, Any] = {
    "KeySchema": [{"AttributeName": "name", "KeyType": "HASH"}],
    "AttributeDefinitions": [{"AttributeName": "name", "AttributeType": "S"}],
}
USAGE: dict[str, Any] = {
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    "AttributeDefinitions": [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "sk", "AttributeType": "S"},
    ],
}
USAGE_TTL_ATTRIBUTE = "expires_at"
# The per-input embedding cache: one item per entry, keyed by the entry's SHA-256 (domain/cache.py), the vector as
# float32 bytes, gone after the plan's days (TTL).
EMBEDDING_CACHE: dict[str, Any] = {
    "KeySchema": [{"AttributeName": "k", "KeyType": "HASH"}],
    "AttributeDefinitions": [{"AttributeName": "k", "AttributeType": "B"}],
}
EMBEDDING_CACHE_TTL_ATTRIBUTE = "expires_at"
# Batch jobs' state (store/jobs.py): files, uploads, batches under their key's partition, and each batch's chunks.
JOBS: dict[str, Any] = {
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    "AttributeDefinitions": [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "sk", "AttributeType": "S"},
    ],
}
JOBS_TTL_ATTRIBUTE = "expires_at"
