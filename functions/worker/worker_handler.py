"""Lambda entry point for the batch jobs' chunks: SQS events from the chunk queue and from its dead-letter queue."""

from __future__ import annotations

import asyncio
from typing import Any

from embedrank.api.app import Services
from embedrank.observability import logger

services = Services.build()
loop = asyncio.new_event_loop()


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Each record run in turn; the ones that failed are returned for SQS to retry (after 3 receives it moves them
    to the dead-letter queue, whose records report their lines as failed)."""
    failures = []
    for record in event.get("Records", []):
        dead_letter = record.get("eventSourceARN", "").endswith(":" + services.settings.jobs_dlq)
        try:
            loop.run_until_complete(services.jobs.handle(record["body"], dead_letter=dead_letter))
        except Exception as exc:
            logger.warning("job chunk failed; SQS retries it", extra={"error_type": type(exc).__name__})
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}
