"""The openai SDK's Files, Uploads and Batch calls, unchanged, against `make serve`: the job runs end to end on the
local AWS (moto's S3, SQS and DynamoDB) with the worker threads inside the server."""

from __future__ import annotations

import io
import json
import time
from typing import Any

from fakes import vector
from live import LIVE_KEY

SMALL = "openai/text-embedding-3-small"


def wait_for(client: Any, batch_id: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        b = client.batches.retrieve(batch_id)
        if b.status in ("completed", "cancelled", "failed", "expired"):
            return b
        time.sleep(0.2)
    raise AssertionError(f"the batch is still {b.status} after {timeout} s: {b.request_counts}")


def test_the_openai_sdk_runs_a_batch_end_to_end(live_server: str) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=f"{live_server}/v1", api_key=LIVE_KEY, max_retries=0)
    # given 1,000 lines of 4 texts each, every custom_id once
    lines = [
        {"custom_id": f"chunk-{i}", "method": "POST", "url": "/v1/embeddings",
         "body": {"model": SMALL, "input": [f"text-{4 * i + j}" for j in range(4)]}}
        for i in range(1000)
    ]  # fmt: skip
    data = "".join(json.dumps(x) + "\n" for x in lines).encode()
    # when it is run as the openai SDK documents it
    started = time.monotonic()
    f = client.files.create(file=("chunks.jsonl", io.BytesIO(data)), purpose="batch")
    b = client.batches.create(input_file_id=f.id, endpoint="/v1/embeddings", completion_window="24h")
    done = wait_for(client, b.id)
    elapsed = time.monotonic() - started
    # then every line is answered once, every vector exact
    assert done.status == "completed" and done.request_counts.completed == 1000 and done.request_counts.failed == 0
    assert elapsed < 60
    out = [json.loads(x) for x in client.files.content(done.output_file_id).content.splitlines()]
    assert sorted(o["custom_id"] for o in out) == sorted(x["custom_id"] for x in lines)
    for o in out:
        i = int(o["custom_id"].removeprefix("chunk-"))
        got = [d["embedding"] for d in o["response"]["body"]["data"]]
        assert got == [vector(4 * i + j, 1536) for j in range(4)]
    assert done.error_file_id is None
    # and the SDK's list, cancel and delete calls work on it
    assert b.id in [x.id for x in client.batches.list(limit=10)]
    assert f.id in [x.id for x in client.files.list()]
    assert client.files.delete(f.id).deleted


def test_the_sdk_uploads_a_file_in_4_mib_parts(live_server: str, tmp_path: Any) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=f"{live_server}/v1", api_key=LIVE_KEY, max_retries=0)
    row = json.dumps({"custom_id": "x", "method": "POST", "url": "/v1/embeddings",
                      "body": {"model": SMALL, "input": ["y" * 2000]}}) + "\n"  # fmt: skip
    path = tmp_path / "big.jsonl"
    path.write_text(row * (10 * 1024 * 1024 // len(row)))
    upload = client.uploads.upload_file_chunked(
        file=path, mime_type="text/jsonl", purpose="batch", part_size=4 * 1024 * 1024
    )
    assert upload.status == "completed" and upload.file is not None
    assert upload.file.bytes == path.stat().st_size
    assert client.files.content(upload.file.id).content == path.read_bytes()
