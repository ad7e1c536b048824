"""Under uvicorn (no Lambda context) the answer leaves before the usage write; nothing is lost or read stale."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from typing import Any

import boto3
import httpx
import orjson

from conftest import DEV_KEY, FakeUpstream, usage_records
from embedrank.api.app import Services, create_app
from embedrank.config import Settings
from embedrank.providers import Registry
from embedrank.store.dynamo import Stores
from fakes import openai_answer


class GatedUsageWrites:
    """moto's DynamoDB client whose usage write (``TransactWriteItems``) waits until the test opens the gate."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.gate = threading.Event()
        self.waiting = threading.Event()

    def transact_write_items(self, **kwargs: Any) -> Any:
        self.waiting.set()
        assert self.gate.wait(10), "the test never opened the gate"
        return self.real.transact_write_items(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def scope(method: str, path: str, query: bytes = b"") -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"x-api-key", DEV_KEY.encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def call(
    app: Any, method: str, path: str, body: bytes = b"", query: bytes = b""
) -> tuple[asyncio.Task[None], Any]:
    """Start one ASGI call; return its task and an event set once the whole answer was sent, with the messages."""
    sent = asyncio.Event()
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            sent.set()

    task = asyncio.create_task(app(scope(method, path, query), receive, send))
    return task, (sent, messages)


def test_the_answer_leaves_before_the_usage_write_and_usage_reads_wait_for_it(
    aws: None, settings: Settings, upstream: FakeUpstream
) -> None:
    upstream.handler = openai_answer
    db = GatedUsageWrites(boto3.client("dynamodb"))
    services = Services.build(settings, stores=Stores(settings, db), registry=Registry(httpx.MockTransport(upstream)))
    app = create_app(services=services)
    body = orjson.dumps({"model": "openai/text-embedding-3-small", "input": ["a", "b"]})

    async def scenario() -> None:
        embed, (embed_sent, messages) = await call(app, "POST", "/v1/embeddings", body)
        await asyncio.wait_for(embed_sent.wait(), 10)  # the whole answer is out...
        assert messages[0]["status"] == 200
        assert await asyncio.to_thread(db.waiting.wait, 10)
        assert not embed.done() and usage_records(settings) == []  # ...while its usage write is still waiting
        today = datetime.now(UTC).date().isoformat().encode()
        report, (report_sent, report_messages) = await call(
            app, "GET", "/v1/usage", query=b"start=%s&end=%s" % (today, today)
        )
        await asyncio.sleep(0.2)
        assert not report_sent.is_set()  # a usage read waits for the writes of answers already sent
        db.gate.set()
        await asyncio.wait_for(asyncio.gather(embed, report), 10)
        assert report_messages[0]["status"] == 200
        totals = orjson.loads(report_messages[-1]["body"])["totals"]
        assert totals["requests"] == 1 and totals["tokens"] == 6  # the embeddings request, written before the read
        assert len(usage_records(settings)) == 2  # and the usage read's own record

    asyncio.run(scenario())
