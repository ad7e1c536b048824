"""``make serve``'s batch job workers: threads doing what the worker function does in Lambda, on the local SQS.

Each thread polls the lanes' chunk queues in turn (or the dead-letter queue) and hands each message to ``Jobs.handle``
on an event loop of its own; a message is deleted once handled, and one that failed comes back after the queue's
visibility timeout, until SQS moves it to the dead-letter queue after 3 receives (the queues' redrive policy, as in
AWS). Unlike Lambda's event source mappings, the threads are shared by every lane: no per-lane concurrency here.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any

from embedrank import aws
from embedrank.domain.jobs import Jobs
from embedrank.observability import logger
from embedrank.store.queue import LANES

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

# The pause after a pass over every queue found nothing doubles up to a second, so an idle `make serve` does not spend
# a fifth of a core polling its local SQS (measured: 19% at a fixed 0.25 s, the server and moto together).
IDLE_FIRST, IDLE_MOST = 0.05, 1.0


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
        queue = self.jobs.queue
        urls = [queue.url(dead_letters=True)] if dead_letter else [queue.url(lane) for lane in LANES]
        turn, idle = 0, IDLE_FIRST
        while not self._stop.is_set():
            found = False
            for i in range(len(urls)):
                url = urls[(turn + i) % len(urls)]
                try:
                    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1).get("Messages", [])
                except Exception as exc:  # the local AWS stopping under us
                    logger.warning("job worker cannot poll", extra={"error_type": type(exc).__name__})
                    break
                if messages:
                    found, turn = True, (turn + i + 1) % len(urls)  # the next poll starts at the next lane
                    self._run(loop, sqs, url, messages[0], dead_letter)
                    break
            if found:
                idle = IDLE_FIRST
            else:
                self._stop.wait(idle)
                idle = min(2 * idle, IDLE_MOST)
        loop.close()

    def _run(self, loop: asyncio.AbstractEventLoop, sqs: SQSClient, url: str, message: Any, dead_letter: bool) -> None:
        try:
            loop.run_until_complete(self.jobs.handle(message["Body"], dead_letter=dead_letter))
        except Exception as exc:
            logger.warning("job chunk failed; SQS retries it", extra={"error_type": type(exc).__name__})
            return
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
