"""Batch jobs: OpenAI's Files, Uploads and Batch APIs, run on S3, DynamoDB and SQS.

A batch's input file is checked whole at ``batches.create``, before anything is spent: every line must be a JSON
object with a ``custom_id`` seen nowhere else in the file, ``"method": "POST"``, the batch's ``url`` and a body the
synchronous endpoint would take (its model known and in the key's plan). The first bad line refuses the file with a
400 naming it (one rule: a job never runs half a file by surprise). The file's estimated cost is then reserved
against the key's budget in one admission, the lines are cut into chunks of ``JOB_CHUNK_LINES`` by byte range (a
chunk's lines all go first to providers of one lane: ``store/queue.py``), and each chunk becomes one SQS message on
its lane's queue.

A worker (``run_chunk``; the worker function in Lambda, threads in ``make serve``) reads its chunk's lines from S3
and runs each through the same domain code as a synchronous request (``embeddings.plan``/``embed`` with the cache,
``rerank.plan``/``rerank``), writes the chunk's output and error lines to S3, meters the chunk in one usage write
(its lines as requests, settling its share of the reservation), and counts it into the batch once: the chunk item is
written only if absent and the usage record only if absent, so a chunk retried by SQS is never billed or counted
twice, and its objects are overwritten, not appended to. A chunk that keeps failing reaches the dead-letter queue,
where ``dead_letter`` reports its lines as failed. Whoever counts the last chunk finalizes: the chunks' outputs are
joined in S3 into the output and error files (``ObjectStore.join``), and the batch ends ``completed`` (or
``cancelled``). Cancelling stops chunks not yet started; the ones done are kept.

Jobs have their own pace: chunks are admitted by the queue's consumers (the worker's maximum concurrency), not by
the key's per-minute limits, so a job never uses up the allowance of the key's live traffic; its budget is held at
creation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from ..api.bodies import embedding_body, rerank_body
from ..api.requests import EmbeddingRequest, RerankRequest, parse_body
from ..api.responses import BatchObject, FileObject, UploadObject
from ..errors import AuthenticationError, EmbedrankError, InvalidRequest, ModelNotFound
from ..observability import logger
from ..store.jobs import JobStore, new_id
from ..store.objects import ObjectStore
from ..store.queue import LANE_OF, ChunkQueue
from .auth import Principal
from .cache import EmbeddingCache
from .embeddings import EmbedPlan, embed
from .embeddings import plan as plan_embedding
from .gateway import Gateway
from .limits import Limiter
from .records import Batch, JobFile, Upload, UsageRecord
from .rerank import RerankPlan, rerank
from .rerank import plan as plan_rerank
from .usage import Meter

ENDPOINTS = {"/v1/embeddings": "embeddings", "/v1/rerank": "rerank"}
Chunk = tuple[int, int, int, int, str]  # a chunk's first byte, end byte, lines, its first line's number, its lane
COMPLETION_WINDOW = "24h"
FILE_DAYS = 30  # files and batches are kept this long (OpenAI keeps batch files 30 days)
UPLOAD_SECONDS = 3600  # an upload not completed within the hour expires (OpenAI's rule)
# batches.create checks every line inside one API Gateway request (29 s), and the time goes with the lines: on one
# core here 100,000 lines of 16 short inputs took 6.9 s (~35 us a line, the rest sending 1,000 chunks), a 199 MiB file
# of 12,800 lines of 16 KB 0.7 s. The jobs function has one vCPU. OpenAI's limits: 50,000 requests, 200 MB a file.
MAX_FILE_BYTES = 200 * 1024 * 1024
MAX_LINES = 100_000
MAX_METADATA = 16
LINES_AT_ONCE = 4  # a chunk's lines in flight at once (each may fan out into several provider calls)
RUNNING = ("validating", "in_progress")


@dataclass(slots=True)
class Jobs:
    """The jobs' state, files and queue, and what the synchronous endpoints use to run each line."""

    store: JobStore
    objects: ObjectStore
    queue: ChunkQueue
    gateway: Gateway
    cache: EmbeddingCache
    meter: Meter
    limiter: Limiter
    principal_of: Callable[[str], Principal]  # key id -> the key and its plan, now (a revoked key raises)
    chunk_lines: int = 100
    clock: Callable[[], float] = field(default=time.time)

    # -- files ------------------------------------------------------------------------------------------------------

    def create_file(self, principal: Principal, filename: str, purpose: str, data: bytes) -> JobFile:
        if purpose != "batch":
            raise InvalidRequest(
                f"Unsupported purpose '{purpose[:40]}': files here are 'batch' inputs.", param="purpose"
            )
        if not data.strip():
            raise InvalidRequest("The file is empty: send JSONL, one request per line.", param="file")
        _check_jsonl(data)
        now = int(self.clock())
        f = JobFile(
            id=new_id("file-"),
            key_id=principal.key_id,
            filename=filename[:255] or "input.jsonl",
            purpose=purpose,
            bytes=len(data),
            created_at=now,
            expires_at=now + FILE_DAYS * 86_400,
            object_key="",
        )
        f.object_key = f"files/{principal.key_id}/{f.id}"
        self.objects.put(f.object_key, data)
        self.store.put_file(f)
        return f

    def import_file(self, key_id: str, bucket: str, key: str) -> JobFile:
        """An S3 object of the account made a batch input file of ``key_id``'s (the operator's CLI): copied inside S3,
        checked by ``batches.create`` like any other."""
        now = int(self.clock())
        f = JobFile(new_id("file-"), key_id, key.rsplit("/", 1)[-1][:255] or "input.jsonl", "batch", 0, now,
                    now + FILE_DAYS * 86_400, "")  # fmt: skip
        f.object_key = f"files/{key_id}/{f.id}"
        f.bytes = self.objects.copy_in(bucket, key, f.object_key)
        self.store.put_file(f)
        return f

    def file(self, principal: Principal, file_id: str) -> JobFile:
        found = self.store.get_file(principal.key_id, file_id)
        if found is None:
            raise ModelNotFound(f"No file with id '{file_id[:64]}'.", param="file_id", code="file_not_found")
        return found

    def delete_file(self, principal: Principal, file_id: str) -> str:
        f = self.file(principal, file_id)
        self.store.delete_file(principal.key_id, f.id)
        self.objects.delete([f.object_key])
        return f.id

    def file_url(self, principal: Principal, file_id: str) -> str:
        f = self.file(principal, file_id)
        return self.objects.url(f.object_key, f.filename)

    # -- uploads ----------------------------------------------------------------------------------------------------

    def create_upload(self, principal: Principal, filename: str, purpose: str, size: int, mime_type: str) -> Upload:
        if purpose != "batch":
            raise InvalidRequest(
                f"Unsupported purpose '{purpose[:40]}': files here are 'batch' inputs.", param="purpose"
            )
        if not 0 < size <= MAX_FILE_BYTES:
            raise InvalidRequest(
                f"bytes must be from 1 to {MAX_FILE_BYTES} ({MAX_FILE_BYTES >> 20} MiB).", param="bytes"
            )
        now = int(self.clock())
        upload = Upload(
            id=new_id("upload_"),
            key_id=principal.key_id,
            filename=filename[:255],
            purpose=purpose,
            bytes=size,
            mime_type=mime_type[:100],
            created_at=now,
            expires_at=now + UPLOAD_SECONDS,
        )
        self.store.put_upload(upload)
        return upload

    def _pending(self, principal: Principal, upload_id: str) -> Upload:
        upload = self.store.get_upload(principal.key_id, upload_id)
        if upload is None:
            raise ModelNotFound(f"No upload with id '{upload_id[:64]}'.", param="upload_id", code="upload_not_found")
        if upload.status == "pending" and self.clock() >= upload.expires_at:
            upload.status = "expired"
        if upload.status != "pending":
            raise InvalidRequest(f"The upload is {upload.status}.", param="upload_id", code="upload_not_pending")
        return upload

    def add_part(self, principal: Principal, upload_id: str, data: bytes) -> tuple[str, int]:
        upload = self._pending(principal, upload_id)
        if not data:
            raise InvalidRequest("The part is empty.", param="data")
        part_id = new_id("part_")
        self.objects.put(f"uploads/{upload.id}/{part_id}", data, "application/octet-stream")
        now = int(self.clock())
        self.store.put_part(upload.id, part_id, len(data), now, upload.expires_at + 86_400)
        return part_id, now

    def complete_upload(self, principal: Principal, upload_id: str, part_ids: Sequence[str]) -> tuple[Upload, JobFile]:
        upload = self._pending(principal, upload_id)
        parts = self.store.parts(upload.id)
        unknown = [p for p in part_ids if p not in parts]
        if unknown or not part_ids or len(set(part_ids)) != len(part_ids):
            raise InvalidRequest(
                f"part_ids must list this upload's parts, each once; unknown: {', '.join(unknown[:3]) or 'none'}.",
                param="part_ids",
            )
        size = sum(parts[p] for p in part_ids)
        if size != upload.bytes:
            raise InvalidRequest(
                f"The parts hold {size} bytes; the upload was created for {upload.bytes}.", param="part_ids"
            )
        now = int(self.clock())
        f = JobFile(new_id("file-"), principal.key_id, upload.filename, upload.purpose, size, now,
                    now + FILE_DAYS * 86_400, "")  # fmt: skip
        f.object_key = f"files/{principal.key_id}/{f.id}"
        # Parts of under 5 MiB (all that fit a request) cannot be S3 parts themselves: joined here, 8 MiB at a time.
        self.objects.join([f"uploads/{upload.id}/{p}" for p in part_ids], f.object_key)
        upload.status, upload.file_id = "completed", f.id
        if not self.store.end_upload(upload):
            raise InvalidRequest("The upload was completed or cancelled meanwhile.", code="upload_not_pending")
        self.store.put_file(f)
        self.objects.delete([f"uploads/{upload.id}/{p}" for p in parts])
        return upload, f

    def cancel_upload(self, principal: Principal, upload_id: str) -> Upload:
        upload = self._pending(principal, upload_id)
        upload.status = "cancelled"
        if not self.store.end_upload(upload):
            raise InvalidRequest("The upload was completed or cancelled meanwhile.", code="upload_not_pending")
        self.objects.delete([f"uploads/{upload.id}/{p}" for p in self.store.parts(upload.id)])
        return upload

    # -- batches ----------------------------------------------------------------------------------------------------

    def create_batch(
        self,
        principal: Principal,
        input_file_id: str,
        endpoint: str,
        completion_window: str,
        metadata: dict[str, str] | None,
    ) -> Batch:
        if endpoint not in ENDPOINTS:
            raise InvalidRequest(
                f"Unsupported endpoint '{endpoint[:60]}'; batches run {', '.join(ENDPOINTS)}.", param="endpoint"
            )
        if completion_window != COMPLETION_WINDOW:
            raise InvalidRequest(f"completion_window must be '{COMPLETION_WINDOW}'.", param="completion_window")
        _check_metadata(metadata)
        source = self.file(principal, input_file_id)
        if source.purpose != "batch":
            raise InvalidRequest("The input file must be one uploaded with purpose 'batch'.", param="input_file_id")
        if source.bytes > MAX_FILE_BYTES:
            raise InvalidRequest(f"The input file is over {MAX_FILE_BYTES >> 20} MiB.", param="input_file_id")
        chunks, estimate, models = self._plan_lines(principal, source, endpoint)
        admission = self.limiter.admit(principal, billable=True, reserve=estimate)
        now = int(self.clock())
        b = Batch(
            id=new_id("batch_"),
            key_id=principal.key_id,
            endpoint=endpoint,
            input_file_id=source.id,
            completion_window=completion_window,
            created_at=now,
            expires_at=now + 86_400,
            status="in_progress",
            metadata=metadata,
            model=models.pop() if len(models) == 1 else None,
            total=sum(c[2] for c in chunks),
            chunks_total=len(chunks),
            reserved=admission.reserved if admission is not None else 0.0,
            meter_day=admission.day if admission is not None else "",
            times={"in_progress_at": now},
        )
        self.store.put_batch(b)
        messages = [
            {
                "key_id": b.key_id,
                "batch_id": b.id,
                "chunk": n,
                "start": start,
                "end": end,
                "lines": lines,
                "first": first,
                "lane": lane,
            }
            for n, (start, end, lines, first, lane) in enumerate(chunks)
        ]
        try:
            self.queue.send(messages)
        except EmbedrankError:
            # Chunks already sent find the batch failed and count themselves as done, with nothing billed.
            b.errors = [{"code": "queue_unavailable", "message": "The job queue refused its chunks.", "line": None,
                         "param": None}]  # fmt: skip
            self.store.put_batch(b)
            self.store.set_batch(b, "failed", expect=RUNNING, at="failed_at")
            raise
        return b

    def _plan_lines(self, principal: Principal, source: JobFile, endpoint: str) -> tuple[list[Chunk], float, set[str]]:
        """The file's chunks, its estimated cost and the models its lines name; a 400 naming the first bad line. A
        chunk holds consecutive lines of one lane (their model's first provider's queue), at most ``chunk_lines``."""
        seen: set[str] = set()
        models: set[str] = set()
        chunks: list[Chunk] = []
        estimate, start, count, number, end, lane = 0.0, 0, 0, 0, 0, ""
        for offset, raw in self.objects.lines(source.object_key):
            if not raw.strip():
                continue
            number += 1
            if number > MAX_LINES:
                raise InvalidRequest(f"The file holds more than {MAX_LINES} requests.", param="input_file_id")
            cost, provider, model = self._check_line(principal, raw, number, endpoint, seen)
            models.add(model)
            if count and (count == self.chunk_lines or LANE_OF[provider] != lane):
                chunks.append((start, end, count, number - count, lane))
                count = 0
            if count == 0:
                start, lane = offset, LANE_OF[provider]
            estimate += cost
            count += 1
            end = offset + len(raw) + 1
        if count:
            chunks.append((start, end, count, number - count + 1, lane))
        if not chunks:
            raise InvalidRequest("The input file holds no requests.", param="input_file_id")
        return chunks, estimate, models

    def _check_line(
        self, principal: Principal, raw: bytes, number: int, endpoint: str, seen: set[str]
    ) -> tuple[float, str, str]:
        """The line's estimated cost, the provider it goes to first, and its model's catalog id."""

        def bad(reason: str) -> InvalidRequest:
            return InvalidRequest(f"Line {number} of the input file: {reason}", param="input_file_id",
                                  code="invalid_batch_line")  # fmt: skip

        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise bad("not valid JSON.") from None
        if not isinstance(line, dict):
            raise bad("not a JSON object.")
        custom_id = line.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id or len(custom_id) > 512:
            raise bad("custom_id must be a non-empty string of at most 512 characters.")
        if custom_id in seen:
            raise bad(f"custom_id '{custom_id[:64]}' repeats an earlier line's.")
        seen.add(custom_id)
        if line.get("method") != "POST":
            raise bad("method must be 'POST'.")
        if line.get("url") != endpoint:
            raise bad(f"url must be the batch's endpoint, '{endpoint}'.")
        body = line.get("body")
        if not isinstance(body, dict):
            raise bad("body must be a JSON object: the request to send.")
        try:
            planned = self._plan(principal, endpoint, body)
        except EmbedrankError as err:
            raise bad(err.message) from None
        return planned.estimate, planned.chain[0].provider, planned.model

    def _plan(self, principal: Principal, endpoint: str, body: dict[str, Any]) -> EmbedPlan | RerankPlan:
        if ENDPOINTS[endpoint] == "embeddings":
            request = parse_body(EmbeddingRequest, orjson.dumps(body))
            return plan_embedding(self.gateway, request, principal)
        return plan_rerank(self.gateway, parse_body(RerankRequest, orjson.dumps(body)), principal)

    def batch(self, principal: Principal, batch_id: str) -> Batch:
        found = self.store.get_batch(principal.key_id, batch_id)
        if found is None:
            raise ModelNotFound(f"No batch with id '{batch_id[:64]}'.", param="batch_id", code="batch_not_found")
        return found

    def cancel_batch(self, principal: Principal, batch_id: str) -> Batch:
        b = self.batch(principal, batch_id)
        if not self.store.set_batch(b, "cancelling", expect=RUNNING, at="cancelling_at"):
            b = self.batch(principal, batch_id)
            if b.status not in ("cancelling", "cancelled"):
                raise InvalidRequest(f"The batch is {b.status}: there is nothing to cancel.", code="batch_not_running")
        return b

    # -- the worker -------------------------------------------------------------------------------------------------

    async def handle(self, body: str, *, dead_letter: bool) -> None:
        """One SQS message of the chunk queue (``run_chunk``) or of its dead-letter queue (``dead_letter``)."""
        message = orjson.loads(body)
        await (self.dead_letter(message) if dead_letter else self.run_chunk(message))

    async def run_chunk(self, message: dict[str, Any]) -> None:
        """One chunk: its lines run, written, metered and counted, once. Raises for SQS to retry it."""
        b = await asyncio.to_thread(self.store.get_batch, message["key_id"], message["batch_id"])
        if b is None:
            return  # deleted with its key's data: nothing to do
        chunk = int(message["chunk"])
        if b.status not in ("in_progress", "finalizing"):
            # Cancelled (or failed) before this chunk started: nothing run, its share of the reservation released.
            await asyncio.to_thread(self._meter, b, chunk, message, [])
            await self._count(b, chunk, 0, 0)
            return
        source = await asyncio.to_thread(self.store.get_file, b.key_id, b.input_file_id)
        raw = (
            b""
            if source is None
            else await asyncio.to_thread(
                self.objects.get, source.object_key, int(message["start"]), int(message["end"])
            )
        )
        lines = [orjson.loads(line) for line in raw.split(b"\n") if line.strip()]
        try:
            principal = await asyncio.to_thread(self.principal_of, b.key_id)
        except AuthenticationError as err:  # revoked since: every line fails, nothing is called
            results = [_failed(line, err, b.id) for line in lines]
        else:
            gate = asyncio.Semaphore(LINES_AT_ONCE)

            async def one(line: dict[str, Any]) -> LineResult:
                async with gate:
                    return await self._run_line(principal, b, line)

            results = list(await asyncio.gather(*(one(line) for line in lines)))
        good = b"".join(r.line for r in results if r.ok)
        bad = b"".join(r.line for r in results if not r.ok)
        for kind, data in (("out", good), ("err", bad)):
            if data:
                await asyncio.to_thread(self.objects.put, _part(b.id, kind, chunk), data)
        await asyncio.to_thread(self._meter, b, chunk, message, results)
        tokens = sum(r.metered.tokens for r in results if r.metered is not None)
        await self._count(b, chunk, sum(r.ok for r in results), sum(not r.ok for r in results), tokens)

    async def _run_line(self, principal: Principal, b: Batch, line: dict[str, Any]) -> LineResult:
        request_id = new_id("batch_req_")
        custom_id = str(line.get("custom_id", ""))
        try:
            planned = self._plan(principal, b.endpoint, line["body"])
            if isinstance(planned, EmbedPlan):
                embedded = await embed(self.gateway, planned, self.cache)
                body: Any = embedding_body(planned.request, embedded, with_data=True)
                metered = Metered(planned.model, embedded.deployment.provider, embedded.tokens, 0, embedded.cost,
                                  embedded.cached_inputs, embedded.cost_saved)  # fmt: skip
            else:
                ranked = await rerank(self.gateway, planned)
                body = rerank_body(request_id, planned.request, ranked)
                metered = Metered(planned.model, ranked.deployment.provider, ranked.tokens, ranked.search_units,
                                  ranked.cost)  # fmt: skip
        except EmbedrankError as err:
            return _failed(line, err, request_id, self.gateway.credentials.redact)
        except Exception as exc:  # a bug: the line fails, the chunk goes on
            logger.error("batch line failed", extra={"batch_id": b.id, "error_type": type(exc).__name__})
            return _failed(line, EmbedrankError("The gateway failed unexpectedly on this line."), request_id)
        answer = {
            "id": request_id,
            "custom_id": custom_id,
            "response": {"status_code": 200, "request_id": request_id, "body": body},
            "error": None,
        }
        return LineResult(orjson.dumps(answer) + b"\n", True, metered)

    def _meter(self, b: Batch, chunk: int, message: dict[str, Any], results: Sequence[LineResult]) -> None:
        """The chunk's usage: one record per model it used (usually one), under a request id of its own, so a
        retried chunk is recorded once; the first also settles the chunk's share of the reservation."""
        by_model: dict[str, list[LineResult]] = {}
        for r in results:
            by_model.setdefault(r.metered.model if r.metered else "", []).append(r)
        share = b.reserved * int(message["lines"]) / b.total if b.total else 0.0
        timestamp = datetime.now(UTC).isoformat(timespec="milliseconds")
        for i, (model, group) in enumerate(by_model.items() or [("", [])]):
            paid = [r.metered for r in group if r.metered]
            self.meter.record(
                UsageRecord(
                    request_id=f"{b.id}-{chunk:06d}-{i}",
                    key_id=b.key_id,
                    timestamp=timestamp,
                    endpoint="batch",
                    model=model,
                    provider=paid[0].provider if paid else "",
                    status=200,
                    latency_ms=0.0,
                    input_count=len(group),
                    tokens=sum(m.tokens for m in paid),
                    search_units=sum(m.search_units for m in paid),
                    cost=sum(m.cost for m in paid),
                    cached_inputs=sum(m.cached_inputs for m in paid),
                    cost_saved=sum(m.cost_saved for m in paid),
                    requests=len(group),
                    errors=sum(not r.ok for r in group),
                    reserved=share if i == 0 else 0.0,
                    meter_day=b.meter_day,
                )
            )

    async def _count(self, b: Batch, chunk: int, completed: int, failed: int, tokens: int = 0) -> None:
        if await asyncio.to_thread(self.store.finish_chunk, b, chunk, completed, failed, tokens):
            fresh = await asyncio.to_thread(self.store.get_batch, b.key_id, b.id)
            if fresh is not None and fresh.chunks_done >= fresh.chunks_total:
                await asyncio.to_thread(self.finalize, fresh)
        else:  # a retry of a chunk counted already: perhaps the finalization it started did not end
            fresh = await asyncio.to_thread(self.store.get_batch, b.key_id, b.id)
            if fresh is not None and fresh.status == "finalizing" and fresh.chunks_done >= fresh.chunks_total:
                await asyncio.to_thread(self.finalize, fresh)

    async def dead_letter(self, message: dict[str, Any]) -> None:
        """A chunk that failed every attempt: its lines reported failed, its reservation share released."""
        b = await asyncio.to_thread(self.store.get_batch, message["key_id"], message["batch_id"])
        if b is None:
            return
        chunk, first, count = int(message["chunk"]), int(message["first"]), int(message["lines"])
        try:
            source = self.store.get_file(b.key_id, b.input_file_id)
            raw = b"" if source is None else self.objects.get(source.object_key, int(message["start"]),
                                                              int(message["end"]))  # fmt: skip
            ids = [str(orjson.loads(line).get("custom_id", "")) for line in raw.split(b"\n") if line.strip()]
        except (EmbedrankError, orjson.JSONDecodeError):
            ids = []
        error = EmbedrankError("This line's chunk failed on every attempt; it was not run.", code="chunk_failed")
        lines = [{"custom_id": ids[i] if i < len(ids) else f"line {first + i}"} for i in range(count)]
        results = [_failed(line, error, new_id("batch_req_"), status=500) for line in lines]
        await asyncio.to_thread(self.objects.put, _part(b.id, "err", chunk), b"".join(r.line for r in results))
        await asyncio.to_thread(self._meter, b, chunk, message, results)
        await self._count(b, chunk, 0, count)

    def finalize(self, b: Batch) -> None:
        """Join the chunks' outputs into the output and error files; end the batch. Safe to run again."""
        if not self.store.set_batch(b, "finalizing", expect=("in_progress", "cancelling", "finalizing"),
                                    at="finalizing_at"):  # fmt: skip
            return
        cancelled = "cancelling_at" in b.times
        files: dict[str, str | None] = {}
        for kind, field_name in (("out", "output_file_id"), ("err", "error_file_id")):
            file_id = f"file-{b.id.removeprefix('batch_')}{'o' if kind == 'out' else 'e'}"
            key = f"files/{b.key_id}/{file_id}"
            size = self.objects.join([_part(b.id, kind, n) for n in range(b.chunks_total)], key)
            files[field_name] = None
            if size:
                now = int(self.clock())
                name = f"{b.id}_{'output' if kind == 'out' else 'error'}.jsonl"
                self.store.put_file(JobFile(file_id, b.key_id, name, "batch_output", size, now,
                                            now + FILE_DAYS * 86_400, key))  # fmt: skip
                files[field_name] = file_id
        status, at = ("cancelled", "cancelled_at") if cancelled else ("completed", "completed_at")
        self.store.set_batch(b, status, expect=("finalizing",), at=at, **files)
        self.objects.delete([_part(b.id, kind, n) for kind in ("out", "err") for n in range(b.chunks_total)])


@dataclass(frozen=True, slots=True)
class Metered:
    model: str
    provider: str
    tokens: int
    search_units: int
    cost: float
    cached_inputs: int = 0
    cost_saved: float = 0.0


@dataclass(frozen=True, slots=True)
class LineResult:
    line: bytes  # the output or error file's line
    ok: bool
    metered: Metered | None = None


def _failed(
    line: dict[str, Any],
    err: EmbedrankError,
    request_id: str,
    redact: Callable[[str], str] | None = None,
    status: int | None = None,
) -> LineResult:
    message = redact(err.message) if redact else err.message
    error = {"message": message, "type": err.type, "code": err.code, "param": err.param}
    answer = {
        "id": request_id,
        "custom_id": str(line.get("custom_id", "")),
        "response": {"status_code": status or err.status, "request_id": request_id, "body": {"error": error}},
        "error": None,
    }
    return LineResult(orjson.dumps(answer) + b"\n", False)


def _part(batch_id: str, kind: str, chunk: int) -> str:
    return f"jobs/{batch_id}/{kind}/{chunk:06d}.jsonl"


def _check_jsonl(data: bytes) -> None:
    """A 400 naming the first line that is not a JSON object (the request rules are checked at batches.create)."""
    for number, line in enumerate(data.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            if isinstance(orjson.loads(line), dict):
                continue
        except orjson.JSONDecodeError:
            pass
        raise InvalidRequest(
            f"Line {number} of the file is not a JSON object: the file must be JSONL, one request per line.",
            param="file",
            code="invalid_jsonl",
        )


def _check_metadata(metadata: dict[str, str] | None) -> None:
    if metadata is None:
        return
    if len(metadata) > MAX_METADATA or any(
        not isinstance(k, str) or not isinstance(v, str) or len(k) > 64 or len(v) > 512 for k, v in metadata.items()
    ):
        raise InvalidRequest(
            f"metadata holds at most {MAX_METADATA} string pairs, keys of at most 64 characters and values of 512.",
            param="metadata",
        )


def file_object(f: JobFile) -> FileObject:
    return {
        "id": f.id,
        "object": "file",
        "bytes": f.bytes,
        "created_at": f.created_at,
        "filename": f.filename,
        "purpose": "batch_output" if f.purpose == "batch_output" else "batch",
        "status": "processed",
        "expires_at": f.expires_at,
    }


def upload_object(u: Upload, f: JobFile | None = None) -> UploadObject:
    return {
        "id": u.id,
        "object": "upload",
        "bytes": u.bytes,
        "created_at": u.created_at,
        "expires_at": u.expires_at,
        "filename": u.filename,
        "purpose": u.purpose,
        "status": u.status,
        "file": file_object(f) if f is not None else None,
    }


def batch_object(b: Batch) -> BatchObject:
    t = b.times
    return {
        "id": b.id,
        "object": "batch",
        "endpoint": b.endpoint,
        "errors": {"object": "list", "data": b.errors} if b.errors else None,  # type: ignore[typeddict-item]
        "input_file_id": b.input_file_id,
        "completion_window": b.completion_window,
        "status": b.status,  # type: ignore[typeddict-item]
        "output_file_id": b.output_file_id,
        "error_file_id": b.error_file_id,
        "created_at": b.created_at,
        "in_progress_at": t.get("in_progress_at"),
        "expires_at": b.expires_at,
        "finalizing_at": t.get("finalizing_at"),
        "completed_at": t.get("completed_at"),
        "failed_at": t.get("failed_at"),
        "expired_at": None,
        "cancelling_at": t.get("cancelling_at"),
        "cancelled_at": t.get("cancelled_at"),
        "request_counts": {"total": b.total, "completed": b.completed, "failed": b.failed},
        "metadata": b.metadata,
        "model": b.model,
        # The tokens the providers billed for the completed lines: embedding and rerank lines have input tokens only.
        # Inputs served by the embedding cache were not sent, so they are in neither figure (GET /v1/usage shows
        # what the cache saved), and a rerank's search units are in GET /v1/usage too.
        "usage": {
            "input_tokens": b.tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 0,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": b.tokens,
        },
    }
