"""Batch jobs' chunks in SQS: one message per chunk of lines, sent in batches of 10; a chunk that keeps failing is
moved to the dead-letter queue by SQS itself (the queue's redrive policy), where its lines are reported as failed."""

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


class ChunkQueue:
    def __init__(self, settings: Settings, client: SQSClient | None = None) -> None:
        self.settings = settings
        self._client = client
        self._urls: dict[str, str] = {}

    @property
    def sqs(self) -> SQSClient:
        return self._client or aws.sqs()

    def url(self, dead_letters: bool = False) -> str:
        """The queue's URL (the dead-letter queue's): configured, else looked up by name once."""
        if not dead_letters and self.settings.jobs_queue_url:
            return self.settings.jobs_queue_url
        name = self.settings.jobs_dlq if dead_letters else self.settings.jobs_queue
        if name not in self._urls:
            with translated():
                self._urls[name] = self.sqs.get_queue_url(QueueName=name)["QueueUrl"]
        return self._urls[name]

    def send(self, messages: Sequence[Mapping[str, Any]]) -> None:
        """Send every message (JSON); an entry SQS refuses is sent once more, then the send fails."""
        url = self.url()
        for i in range(0, len(messages), SEND_BATCH):
            entries: list[Any] = [
                {"Id": str(n), "MessageBody": orjson.dumps(m).decode()}
                for n, m in enumerate(messages[i : i + SEND_BATCH])
            ]
            for _ in range(2):
                with translated():
                    answer = self.sqs.send_message_batch(QueueUrl=url, Entries=entries)
                failed = {f["Id"] for f in answer.get("Failed", [])}
                entries = [e for e in entries if e["Id"] in failed]
                if not entries:
                    break
            if entries:
                raise StoreUnavailable(
                    f"The job queue refused {len(entries)} chunks; retry shortly.", aws_code="SendMessageBatchFailed"
                )
