"""A 100,000-line batch job through ``make serve``: ``python -m bench.jobs`` prints JSON, one row per worker count.

Each run starts ``make serve``'s server with ``JOB_WORKERS`` workers against the fake Cohere (``bench.fake``) with a
50 ms delay per call; the job is 100,000 lines of 16 inputs to ``cohere/embed-v4.0`` (96 inputs a call: one call a
line), uploaded with the openai SDK in 4 MiB parts and started with ``batches.create``, as a user would. The
throughput is the completed lines per second over a window of steady state (after the first chunks), read from
``batches.retrieve``; then the job is cancelled (a full 100,000-line run at one worker would take tens of minutes).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from .client import fake_upstream
from .scenarios import DEV_KEY
from .server import local_server

LINES, INPUTS, DELAY_MS = 100_000, 16, 50
WORKERS = (1, 2, 4, 8)
WARM, WINDOW = 4.0, 30.0
MODEL = "cohere/embed-v4.0"


def job_file(lines: int) -> bytes:
    rows = []
    for i in range(lines):
        body = {"model": MODEL, "input": [f"doc {i} chunk {j}" for j in range(INPUTS)], "encoding_format": "base64"}
        rows.append(json.dumps({"custom_id": f"c{i}", "method": "POST", "url": "/v1/embeddings", "body": body}))
    return ("\n".join(rows) + "\n").encode()


def run(workers: int, fake_port: int, data: bytes, lines: int, window: float) -> dict[str, Any]:
    from openai import OpenAI

    base = f"http://127.0.0.1:{fake_port}/delay/{DELAY_MS}"
    with local_server(fake_port, JOB_WORKERS=str(workers), COHERE_BASE_URL=base) as port:
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=DEV_KEY, max_retries=0, timeout=600)
        t0 = time.perf_counter()
        upload = client.uploads.upload_file_chunked(
            file=data, filename="job.jsonl", bytes=len(data), mime_type="text/jsonl", purpose="batch",
            part_size=4 * 1024 * 1024,
        )  # fmt: skip
        uploaded = time.perf_counter() - t0
        assert upload.file is not None
        t0 = time.perf_counter()
        batch = client.batches.create(input_file_id=upload.file.id, endpoint="/v1/embeddings", completion_window="24h")
        created = time.perf_counter() - t0
        samples: list[tuple[float, int]] = []
        started = time.perf_counter()
        while True:
            b = client.batches.retrieve(batch.id)
            now = time.perf_counter() - started
            done = b.request_counts.completed if b.request_counts else 0
            samples.append((now, done))
            if done >= lines or now > WARM + window:
                break
            time.sleep(1.0)
        if b.status == "in_progress":
            client.batches.cancel(batch.id)
    steady = [s for s in samples if s[0] >= WARM]
    if len(steady) < 2:  # a small job, done before the window: its whole run
        steady = [(0.0, 0), samples[-1]]
    (t1, c1), (t2, c2) = steady[0], steady[-1]
    rate = (c2 - c1) / (t2 - t1) if t2 > t1 else 0.0
    return {
        "workers": workers,
        "lines": lines,
        "inputs_per_line": INPUTS,
        "upload_s": round(uploaded, 1),
        "create_s": round(created, 1),
        "lines_per_s": round(rate, 1),
        "inputs_per_s": round(rate * INPUTS, 0),
        "chunk_s": round(workers * 100 / rate, 2) if rate else None,  # each worker runs one 100-line chunk at a time
    }


def measure(lines: int = LINES, workers: tuple[int, ...] = WORKERS, window: float = WINDOW) -> list[dict[str, Any]]:
    data = job_file(lines)
    with fake_upstream() as fake_port:
        return [run(n, fake_port, data, lines, window) for n in workers]


def main() -> None:
    sys.stdout.write(json.dumps(measure()) + "\n")


if __name__ == "__main__":
    main()
