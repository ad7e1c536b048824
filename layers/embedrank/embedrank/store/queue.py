"""Batch jobs' chunks in SQS: one message per chunk of lines, sent in batches of 10, on its provider's lane; a chunk
that keeps failing is moved to the dead-letter queue by SQS itself (each lane's redrive policy), where its lines are
reported as failed.

A lane is a chunk queue of its own that the worker consumes at a maximum concurrency of its own (``template.yaml``:
one ``JobsConcurrency<Lane>`` parameter each), so each provider's jobs go at the pace its rate limits allow, and a
long job on one provider never holds back another provider's. The team's own servers share one lane.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from .. import aws
from ..config import Settings
from ..errors import StoreUnavailable
from .dynamo import translated

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

SEND_BATCH = 10  # SendMessageBatch's most entries
# Every provider of the registry (providers/__init__.py) and its lane; the template declares one queue per lane.
LANE_OF: dict[str, str] = {
    "openai": "openai",
    "cohere": "cohere",
    "voyage": "voyage",
    "jina": "jina",
    "google": "google",
    "mistral": "mistral",
    "bedrock": "bedrock",
    "selfhosted": "selfhosted",
    "tei": "selfhosted",
    "infinity": "selfhosted",
}
LANES: tuple[str, ...] = tuple(dict.fromkeys(LANE_OF.values()))


class ChunkQueue:
    def __init__(self, settings: Settings, client: SQSClient | None = None) -> None:
        self.settings = settings
        self._client = client
        self._urls: dict[str, str] = {}

    @property
    def sqs(self) -> SQSClient:
        return self._client or aws.sqs()

    def url(self, lane: str = "", dead_letters: bool = False) -> str:
        """A lane's queue URL (or the dead-letter queue's, shared): configured (``JOBS_QUEUE_URLS``), else looked up
        by its name, ``<JOBS_QUEUE>-<lane>``, once."""
        if dead_letters:
            name = self.settings.jobs_dlq
        elif lane in self.settings.jobs_queue_urls:
            return self.settings.jobs_queue_urls[lane]
        elif lane in LANES:
            name = f"{self.settings.jobs_queue}-{lane}"
        else:
            raise ValueError(f"no job lane {lane!r}")
        if name not in self._urls:
            with translated():
                self._urls[name] = self.sqs.get_queue_url(QueueName=name)["QueueUrl"]
        return self._urls[name]

    def send(self, messages: Sequence[Mapping[str, Any]]) -> None:
        """Send every message (JSON) to its ``lane``'s queue; an entry SQS refuses is sent once more, then the send
        fails."""
        by_lane: dict[str, list[Mapping[str, Any]]] = {}
        for m in messages:
            by_lane.setdefault(m["lane"], []).append(m)
        for lane, batch in by_lane.items():
            url = self.url(lane)
            for i in range(0, len(batch), SEND_BATCH):
                self._send(url, batch[i : i + SEND_BATCH])

    def _send(self, url: str, messages: Sequence[Mapping[str, Any]]) -> None:
        entries: list[Any] = [{"Id": str(n), "MessageBody": orjson.dumps(m).decode()} for n, m in enumerate(messages)]
        for _ in range(2):
            with translated():
                answer = self.sqs.send_message_batch(QueueUrl=url, Entries=entries)
            failed = {f["Id"] for f in answer.get("Failed", [])}
            entries = [e for e in entries if e["Id"] in failed]
            if not entries:
                return
        raise StoreUnavailable(
            f"The job queue refused {len(entries)} chunks; retry shortly.", aws_code="SendMessageBatchFailed"
        )
