"""DynamoDB faults for the usage write, and the Powertools log lines they leave (moto cannot throttle)."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError


def throttled(code: str = "ProvisionedThroughputExceededException") -> ClientError:
    """The error botocore raises once its own retries give up on a throttled call."""
    response: Any = {
        "Error": {"Code": code, "Message": "Rate of requests exceeds the allowed throughput."},
        "ResponseMetadata": {"HTTPStatusCode": 400},
    }
    return ClientError(response, "TransactWriteItems")


def cancelled_by_throttling() -> ClientError:
    """A transaction DynamoDB cancelled because one of its items was throttled (botocore does not retry these)."""
    response: Any = {
        "Error": {"Code": "TransactionCanceledException", "Message": "Transaction cancelled"},
        "CancellationReasons": [{"Code": "None"}, {"Code": "ThrottlingError"}],
        "ResponseMetadata": {"HTTPStatusCode": 400},
    }
    return ClientError(response, "TransactWriteItems")


class FaultyUsageWrites:
    """A DynamoDB client (moto's) whose ``TransactWriteItems`` fails with ``errors`` in turn, then succeeds; with
    ``always`` set, it fails every time with that error."""

    def __init__(self, real: Any, *errors: Exception, always: Exception | None = None) -> None:
        self.real = real
        self.errors = list(errors)
        self.always = always
        self.calls = 0

    def transact_write_items(self, **kwargs: Any) -> Any:
        self.calls += 1
        if self.always is not None:
            raise self.always
        if self.errors:
            raise self.errors.pop(0)
        return self.real.transact_write_items(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def replay_lines(logs: str) -> list[dict[str, Any]]:
    entries = [json.loads(line) for line in logs.splitlines() if line.strip()]
    return [e for e in entries if e.get("message") == "usage_replay"]
