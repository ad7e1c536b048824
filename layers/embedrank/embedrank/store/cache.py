"""Data access for the per-input embedding cache: one DynamoDB item per entry (``tables.EMBEDDING_CACHE``).

    k            the entry's key: SHA-256 of everything that decides the vector (domain/cache.py), 32 bytes
    v            the vector as little-endian float32 bytes
    expires_at   epoch seconds: DynamoDB's TTL removes the entry after the plan's days

Reads are ``BatchGetItem`` (100 keys a call, strongly consistent, so an entry written by a request is seen by the
caller's next one), writes ``BatchWriteItem`` (25 items a call). DynamoDB may leave part of a batch unprocessed under
load; those are sent again, at most ``UNPROCESSED_ROUNDS`` times, then given up (read: misses; write: not cached).
Every AWS failure becomes ``StoreUnavailable`` (``dynamo.translated``); the domain serves the request without the
cache then.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .dynamo import Stores, translated
from .tables import EMBEDDING_CACHE_TTL_ATTRIBUTE

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

GET_BATCH = 100  # BatchGetItem's most keys per call
PUT_BATCH = 25  # BatchWriteItem's most items per call
UNPROCESSED_ROUNDS = 3
UNPROCESSED_PAUSE = 0.02  # seconds before sending what DynamoDB left unprocessed, doubled each round


class CacheStore:
    """Reads and writes cache entries, one batch call (and its unprocessed rest) per method call. Synchronous."""

    def __init__(self, stores: Stores) -> None:
        self.settings = stores.settings
        self._stores = stores

    @property
    def db(self) -> DynamoDBClient:
        return self._stores.db

    def get(self, keys: Sequence[bytes]) -> tuple[dict[bytes, bytes], int]:
        """The entries found among ``keys`` (at most ``GET_BATCH``): {key: vector bytes}, and how many keys stayed
        unprocessed (counted as misses)."""
        table = self.settings.cache_table
        request: dict[str, Any] = {
            table: {"Keys": [{"k": {"B": k}} for k in keys], "ConsistentRead": True, "ProjectionExpression": "k, v"}
        }
        found: dict[bytes, bytes] = {}
        pause = UNPROCESSED_PAUSE
        for round_ in range(UNPROCESSED_ROUNDS + 1):
            with translated():
                answer = self.db.batch_get_item(RequestItems=request)
            for item in answer.get("Responses", {}).get(table, []):
                key, vector = item.get("k", {}).get("B"), item.get("v", {}).get("B")
                if isinstance(key, bytes) and isinstance(vector, bytes):
                    found[key] = vector
            request = dict(answer.get("UnprocessedKeys") or {})
            if not request or round_ == UNPROCESSED_ROUNDS:
                break
            time.sleep(pause)
            pause *= 2
        left = len(request.get(table, {}).get("Keys", [])) if request else 0
        return found, left

    def put(self, entries: Mapping[bytes, bytes], expires_at: int) -> int:
        """Write ``entries`` (at most ``PUT_BATCH``); how many stayed unprocessed (not cached)."""
        table = self.settings.cache_table
        writes: list[Any] = [
            {
                "PutRequest": {
                    "Item": {"k": {"B": k}, "v": {"B": v}, EMBEDDING_CACHE_TTL_ATTRIBUTE: {"N": str(expires_at)}}
                }
            }
            for k, v in entries.items()
        ]
        request: dict[str, Any] = {table: writes}
        pause = UNPROCESSED_PAUSE
        for round_ in range(UNPROCESSED_ROUNDS + 1):
            with translated():
                answer = self.db.batch_write_item(RequestItems=request)
            request = dict(answer.get("UnprocessedItems") or {})
            if not request or round_ == UNPROCESSED_ROUNDS:
                break
            time.sleep(pause)
            pause *= 2
        return len(request.get(table, [])) if request else 0
