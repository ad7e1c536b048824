"""Metering: one usage record per request that reached authentication."""

from __future__ import annotations

import time

from .stores import Stores, UsageRecord


class Meter:
    def __init__(self, stores: Stores, retention_days: int) -> None:
        self._stores = stores
        self._retention = retention_days * 86_400

    def record(self, record: UsageRecord) -> None:
        """Synchronous (DynamoDB): call it off the event loop."""
        self._stores.put_usage(record, expires_at=int(time.time()) + self._retention)
