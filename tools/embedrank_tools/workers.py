"""``make serve``'s batch job workers: threads doing what the worker function does in Lambda, on the local SQS.

Each thread polls the chunk queue (or its dead-letter queue) and hands each message to ``Jobs.handle`` on an event
loop of its own; a message is deleted once handled, and one that failed comes back after the queue's visibility
timeout, until SQS moves it to the dead-letter queue after 3 receives (the queue's redrive policy, as in AWS).
"""

from __future__ import annotations

import asyncio
import threading

from embedrank import aws
from embedrank.domain.jobs import Jobs
from embedrank.observability import logger


class LocalWorkers:
    def __init__(self, jobs: Jobs, count: int) -> None:
        self.jobs = jobs
        self.count = count
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        queues = [False] * self.count + [True]  # ``count`` on the chunk queue, one on the dead letters
        for dead_letter in queues:
            thread = threading.Thread(target=self._poll, args=(dead_letter,), daemon=True, name="job-worker")
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def _poll(self, dead_letter: bool) -> None:
        loop = asyncio.new_event_loop()
        sqs = aws.sqs()
        url = self.jobs.queue.url(dead_letters=dead_letter)
        while not self._stop.is_set():
            try:
                messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=1)
            except Exception as exc:  # the local AWS stopping under us
                logger.warning("job worker cannot poll", extra={"error_type": type(exc).__name__})
                self._stop.wait(1)
                continue
            for message in messages.get("Messages", []):
                try:
                    loop.run_until_complete(self.jobs.handle(message["Body"], dead_letter=dead_letter))
                except Exception as exc:
                    logger.warning("job chunk failed; SQS retries it", extra={"error_type": type(exc).__name__})
                    continue
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        loop.close()
