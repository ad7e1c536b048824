"""Batch jobs through the app, the worker run in-process over moto's SQS: files, uploads, batches, bad lines,
isolation, cancel, retried and dead-lettered chunks, and what a job is billed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from conftest import DEV_KEY, PREMIUM_KEY, FakeUpstream, auth
from embedrank.config import Settings
from embedrank.store.queue import LANES
from fakes import cohere_embed_answer, decode_b64, json_response, vector
from provider_fakes import openai_shaped, seed

EMBED = "openai/text-embedding-3-small"
TODAY = datetime.now(UTC).date().isoformat()


def openai_by_text(request: Any) -> Any:
    body = json.loads(request.content)
    usage = {"prompt_tokens": 2 * len(body["input"]), "total_tokens": 2 * len(body["input"])}
    return openai_shaped(body, body.get("dimensions", 1536), usage)


def line(custom_id: str, texts: list[str], **body: Any) -> dict[str, Any]:
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/embeddings",
            "body": {"model": EMBED, "input": texts, "encoding_format": "base64", **body}}  # fmt: skip


def jsonl(lines: list[Any]) -> bytes:
    return b"".join(json.dumps(x).encode() + b"\n" for x in lines)


def upload(client: Any, data: bytes, key: str = DEV_KEY, purpose: str = "batch") -> Any:
    return client.post(
        "/v1/files", files={"file": ("chunks.jsonl", data)}, data={"purpose": purpose}, headers=auth(key)
    )


def drain(services: Any, dead_letter: bool = False) -> int:
    """Run every message waiting on the chunk queue (or its dead-letter queue) as the worker would; how many."""
    sqs = boto3.client("sqs")
    queue = services.jobs.queue
    urls = [queue.url(dead_letters=True)] if dead_letter else [queue.url(lane) for lane in LANES]
    done = 0
    for url in urls:
        while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            for message in messages:
                asyncio.run(services.jobs.handle(message["Body"], dead_letter=dead_letter))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                done += 1
    return done


def output(services: Any, settings: Settings, key_id: str, file_id: str) -> list[dict[str, Any]]:
    data = boto3.client("s3").get_object(Bucket=settings.files_bucket, Key=f"files/{key_id}/{file_id}")["Body"].read()
    return [json.loads(x) for x in data.splitlines()]


@pytest.fixture
def jobs(client: Any, upstream: FakeUpstream) -> Iterator[Any]:
    upstream.handler = openai_by_text
    yield client


def texts_of(n: int) -> list[list[str]]:
    return [[f"line {i} text {j}" for j in range(3)] for i in range(n)]


# -- files --------------------------------------------------------------------------------------------------------


def test_files_are_created_listed_retrieved_and_deleted_by_their_key_alone(jobs: Any) -> None:
    data = jsonl([line("a", ["x"])])
    f = upload(jobs, data).json()
    assert f["object"] == "file" and f["bytes"] == len(data) and f["purpose"] == "batch" and f["id"].startswith("file-")
    assert jobs.get(f"/v1/files/{f['id']}", headers=auth()).json() == f
    assert [x["id"] for x in jobs.get("/v1/files", headers=auth()).json()["data"]] == [f["id"]]
    # another key: 404, and an empty list
    assert jobs.get(f"/v1/files/{f['id']}", headers=auth(PREMIUM_KEY)).status_code == 404
    assert jobs.get("/v1/files", headers=auth(PREMIUM_KEY)).json()["data"] == []
    assert jobs.delete(f"/v1/files/{f['id']}", headers=auth(PREMIUM_KEY)).status_code == 404
    # its own key deletes it
    assert jobs.delete(f"/v1/files/{f['id']}", headers=auth()).json() == {
        "id": f["id"],
        "object": "file",
        "deleted": True,
    }
    assert jobs.get(f"/v1/files/{f['id']}", headers=auth()).status_code == 404


@pytest.mark.parametrize(
    ("data", "purpose", "says"),
    [
        (b"", "batch", "empty"),
        (b'{"custom_id": "a"}\nnot json\n', "batch", "Line 2 of the file is not a JSON object"),
        (b"[1, 2]\n", "batch", "Line 1"),
        (b'{"a": 1}\n', "fine-tune", "Unsupported purpose"),
    ],
)
def test_a_file_that_is_not_batch_jsonl_is_a_400(jobs: Any, data: bytes, purpose: str, says: str) -> None:
    r = upload(jobs, data, purpose=purpose)
    assert r.status_code == 400 and says in r.json()["error"]["message"]


def test_files_list_pages_newest_first(jobs: Any) -> None:
    ids = [upload(jobs, jsonl([line(str(i), ["x"])])).json()["id"] for i in range(5)]
    first = jobs.get("/v1/files?limit=2", headers=auth()).json()
    assert [f["id"] for f in first["data"]] == ids[::-1][:2] and first["has_more"]
    rest = jobs.get(f"/v1/files?limit=10&after={first['last_id']}", headers=auth()).json()
    assert [f["id"] for f in rest["data"]] == ids[::-1][2:] and not rest["has_more"]
    assert (first["first_id"], rest["last_id"]) == (ids[-1], ids[0])
    # an empty page has no ends; a limit out of range is a 400 naming it
    empty = jobs.get("/v1/batches", headers=auth()).json()
    assert empty == {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False}
    bad = jobs.get("/v1/files?limit=0", headers=auth())
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "limit"


# -- batches ------------------------------------------------------------------------------------------------------


def create(client: Any, file_id: str, endpoint: str = "/v1/embeddings", key: str = DEV_KEY) -> Any:
    body = {"input_file_id": file_id, "endpoint": endpoint, "completion_window": "24h", "metadata": {"run": "t"}}
    return client.post("/v1/batches", json=body, headers=auth(key))


def test_a_batch_runs_every_line_once_and_exactly(jobs: Any, settings: Settings, upstream: FakeUpstream) -> None:
    # given 250 lines of 3 texts: three chunks of 100, 100 and 50 lines
    lines = [line(f"req-{i}", texts) for i, texts in enumerate(texts_of(250))]
    f = upload(jobs, jsonl(lines)).json()
    b = create(jobs, f["id"]).json()
    assert b["status"] == "in_progress" and b["request_counts"] == {"total": 250, "completed": 0, "failed": 0}
    services = jobs.app.state.services
    # when the worker runs the chunks
    assert drain(services) == 3
    # then the batch is completed, with every line's answer exactly once, its vectors exact
    done = jobs.get(f"/v1/batches/{b['id']}", headers=auth()).json()
    assert done["status"] == "completed" and done["request_counts"] == {"total": 250, "completed": 250, "failed": 0}
    assert done["error_file_id"] is None and done["metadata"] == {"run": "t"}
    # the one model every line names, and the tokens the provider billed (2 a text)
    assert done["model"] == EMBED
    assert done["usage"]["input_tokens"] == done["usage"]["total_tokens"] == 250 * 6
    out = output(services, settings, "key_dev", done["output_file_id"])
    assert sorted(o["custom_id"] for o in out) == sorted(f"req-{i}" for i in range(250))
    for o in out:
        i = int(o["custom_id"].removeprefix("req-"))
        assert o["response"]["status_code"] == 200 and o["error"] is None
        data = o["response"]["body"]["data"]
        assert [decode_b64(d["embedding"]) for d in data] == [vector(seed(t), 1536) for t in texts_of(250)[i]]
    # the output is a file of its key's, listed with the others
    assert jobs.get(f"/v1/files/{done['output_file_id']}", headers=auth()).json()["purpose"] == "batch_output"
    # metered per chunk: 250 requests in 3 usage records, the lines' provider cost
    report = jobs.get(f"/v1/usage?start={TODAY}&end={TODAY}", headers=auth()).json()
    batch_rows = [r for r in report["data"] if r["model"] == EMBED]
    assert sum(r["requests"] for r in batch_rows) == 250
    assert sum(r["tokens"] for r in batch_rows) == 250 * 6


def test_each_chunk_goes_to_its_providers_lane(jobs: Any, settings: Settings, upstream: FakeUpstream) -> None:
    # given lines for OpenAI and Cohere, interleaved, in chunks of at most 2 lines
    upstream.handler = lambda r: cohere_embed_answer(r, 1536) if "cohere" in r.url.host else openai_by_text(r)
    services = jobs.app.state.services
    services.jobs.chunk_lines = 2
    models = ["openai"] * 3 + ["cohere"] * 2 + ["openai"]
    lines = [line(f"r{i}", ["t"], model=f"{m}/{'text-embedding-3-small' if m == 'openai' else 'embed-v4.0'}")
             for i, m in enumerate(models)]  # fmt: skip
    b = create(jobs, upload(jobs, jsonl(lines)).json()["id"]).json()
    # then a chunk holds one lane's consecutive lines, on that lane's queue
    sqs = boto3.client("sqs")
    queued = {}
    for lane in ("openai", "cohere"):
        got = sqs.receive_message(QueueUrl=services.jobs.queue.url(lane), MaxNumberOfMessages=10, VisibilityTimeout=0)
        queued[lane] = sorted((m["first"], m["lines"]) for m in (json.loads(x["Body"]) for x in got["Messages"]))
    assert queued == {"openai": [(1, 2), (3, 1), (6, 1)], "cohere": [(4, 2)]}
    # and the worker runs them all into one batch
    assert drain(services) == 4
    done = jobs.get(f"/v1/batches/{b['id']}", headers=auth()).json()
    errors = output(services, settings, "key_dev", done["error_file_id"]) if done["error_file_id"] else []
    assert done["request_counts"] == {"total": 6, "completed": 6, "failed": 0}, errors
    out = output(services, settings, "key_dev", done["output_file_id"])
    assert sorted(o["custom_id"] for o in out) == [f"r{i}" for i in range(6)]
    assert {o["custom_id"]: o["response"]["body"]["provider"] for o in out}["r3"] == "cohere"
    assert done["model"] is None  # the lines name two models


def test_a_route_alias_runs_on_its_first_providers_lane(jobs: Any, settings: Settings, upstream: FakeUpstream) -> None:
    upstream.handler = cohere_embed_answer
    services = jobs.app.state.services
    route = "route/cohere-embed-v3-english-3"  # Cohere, then Bedrock's Cohere
    b = create(jobs, upload(jobs, jsonl([line("a", ["t"], model=route)])).json()["id"]).json()
    sqs = boto3.client("sqs")
    got = sqs.receive_message(QueueUrl=services.jobs.queue.url("cohere"), VisibilityTimeout=0)
    assert [json.loads(m["Body"])["lane"] for m in got["Messages"]] == ["cohere"]
    assert drain(services) == 1
    done = jobs.get(f"/v1/batches/{b['id']}", headers=auth()).json()
    assert done["request_counts"] == {"total": 1, "completed": 1, "failed": 0} and done["model"] == route
    [out] = output(services, settings, "key_dev", done["output_file_id"])
    assert out["response"]["body"]["provider"] == "cohere" and len(out["response"]["body"]["data"]) == 1


def test_rerank_lines_run_too(jobs: Any, settings: Settings, upstream: FakeUpstream) -> None:
    def cohere_rerank(request: Any) -> Any:
        docs = json.loads(request.content)["documents"]
        results = [{"index": i, "relevance_score": 1 - i / 10} for i in range(len(docs))]
        return json_response({"id": "r", "results": results, "meta": {"billed_units": {"search_units": 1}}})

    upstream.handler = cohere_rerank
    body = {"model": "cohere/rerank-v3.5", "query": "q", "documents": ["a", "b"]}
    lines = [{"custom_id": f"q{i}", "method": "POST", "url": "/v1/rerank", "body": body} for i in range(3)]
    b = create(jobs, upload(jobs, jsonl(lines)).json()["id"], "/v1/rerank").json()
    drain(jobs.app.state.services)
    done = jobs.get(f"/v1/batches/{b['id']}", headers=auth()).json()
    assert done["request_counts"]["completed"] == 3
    out = output(None, settings, "key_dev", done["output_file_id"])
    assert {o["custom_id"] for o in out} == {"q0", "q1", "q2"}
    assert out[0]["response"]["body"]["results"][0] == {"index": 0, "relevance_score": 1.0}


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        (b"not json", "not a JSON object"),  # refused already by files.create
        (json.dumps({**line("c", ["x"]), "custom_id": "a"}).encode(), "repeats an earlier line's"),
        (json.dumps({**line("c", ["x"]), "url": "/v1/rerank"}).encode(), "url must be the batch's endpoint"),
        (json.dumps({**line("c", ["x"]), "method": "GET"}).encode(), "method must be 'POST'"),
        (json.dumps(line("c", ["x"], model="nope/nothing")).encode(), "does not exist"),
        (json.dumps(line("c", [""])).encode(), "input"),
    ],
)
def test_the_first_bad_line_refuses_the_file_and_nothing_runs(jobs: Any, bad: bytes, says: str) -> None:
    data = jsonl([line("a", ["x"]), line("b", ["y"])]) + bad + b"\n" + jsonl([line("d", ["z"])])
    r = create(jobs, upload(jobs, data).json()["id"]) if b"not json" not in bad else None
    if r is None:  # a line that is not JSON is refused already by files.create
        r = upload(jobs, data)
    assert r.status_code == 400 and "Line 3" in r.json()["error"]["message"] and says in r.json()["error"]["message"]
    assert drain(jobs.app.state.services) == 0


def test_a_file_over_the_line_or_size_limit_is_refused(jobs: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from embedrank.domain import jobs as domain

    f = upload(jobs, jsonl([line(f"r{i}", ["t"]) for i in range(4)])).json()
    monkeypatch.setattr(domain, "MAX_LINES", 3)
    r = create(jobs, f["id"])
    assert r.status_code == 400 and "more than 3 requests" in r.json()["error"]["message"]
    monkeypatch.setattr(domain, "MAX_LINES", 100_000)
    monkeypatch.setattr(domain, "MAX_FILE_BYTES", f["bytes"] - 1)
    r = create(jobs, f["id"])
    assert r.status_code == 400 and r.json()["error"]["param"] == "input_file_id"
    assert not jobs.get("/v1/batches", headers=auth()).json()["data"]


def test_a_model_outside_the_plan_refuses_the_file(jobs: Any) -> None:
    f = upload(jobs, jsonl([line("a", ["x"], model="voyage/voyage-3-large")]), key=PREMIUM_KEY).json()
    r = create(jobs, f["id"], key=PREMIUM_KEY)
    assert r.status_code == 400 and "not included in your plan" in r.json()["error"]["message"]


def test_another_keys_batches_and_files_are_not_found(jobs: Any) -> None:
    f = upload(jobs, jsonl([line("a", ["x"])])).json()
    assert create(jobs, f["id"], key=PREMIUM_KEY).status_code == 404  # not its file
    b = create(jobs, f["id"]).json()
    assert jobs.get(f"/v1/batches/{b['id']}", headers=auth(PREMIUM_KEY)).status_code == 404
    assert jobs.post(f"/v1/batches/{b['id']}/cancel", headers=auth(PREMIUM_KEY)).status_code == 404
    assert jobs.get("/v1/batches", headers=auth(PREMIUM_KEY)).json()["data"] == []
    assert [x["id"] for x in jobs.get("/v1/batches", headers=auth()).json()["data"]] == [b["id"]]


def test_cancel_stops_the_chunks_not_started_and_keeps_the_ones_done(jobs: Any, settings: Settings) -> None:
    services = jobs.app.state.services
    services.jobs.chunk_lines = 10
    b = create(jobs, upload(jobs, jsonl([line(f"r{i}", ["t"]) for i in range(50)])).json()["id"]).json()
    sqs = boto3.client("sqs")
    url = services.jobs.queue.url("openai")
    # given two chunks run
    for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2)["Messages"]:
        asyncio.run(services.jobs.handle(message["Body"], dead_letter=False))
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    # when the batch is cancelled, then the rest run nothing
    assert jobs.post(f"/v1/batches/{b['id']}/cancel", headers=auth()).json()["status"] == "cancelling"
    drain(services)
    done = jobs.get(f"/v1/batches/{b['id']}", headers=auth()).json()
    assert done["status"] == "cancelled" and done["cancelled_at"] and done["request_counts"]["completed"] == 20
    assert len(output(services, settings, "key_dev", done["output_file_id"])) == 20
    # cancelling it again changes nothing
    assert jobs.post(f"/v1/batches/{b['id']}/cancel", headers=auth()).json()["status"] == "cancelled"


def test_files_uploads_and_batches_have_the_openai_sdks_fields(jobs: Any) -> None:
    from openai.types import Batch, FileObject, Upload

    # given one of each, as the API answers them
    f = upload(jobs, jsonl([line("a", ["t"])])).json()
    b = create(jobs, f["id"]).json()
    u = jobs.post("/v1/uploads", json={"filename": "x.jsonl", "purpose": "batch", "bytes": 10,
                                       "mime_type": "text/jsonl"}, headers=auth()).json()  # fmt: skip
    for body, model in ((f, FileObject), (b, Batch), (u, Upload)):
        # then every field is one the SDK's model declares, and every field it requires is there
        assert set(body) <= set(model.model_fields), set(body) - set(model.model_fields)
        assert {n for n, x in model.model_fields.items() if x.is_required()} <= set(body)
        model.model_validate(body, strict=False)
    assert set(b) == set(Batch.model_fields)  # a batch: all of them, as OpenAI's do


def one_chunk(jobs: Any, lines: int) -> tuple[Any, dict[str, Any], str]:
    """A batch of ``lines`` one-text lines (one chunk): the app's services, the batch, its chunk's SQS message."""
    services = jobs.app.state.services
    b = create(jobs, upload(jobs, jsonl([line(f"r{i}", ["t"]) for i in range(lines)])).json()["id"]).json()
    [message] = boto3.client("sqs").receive_message(QueueUrl=services.jobs.queue.url("openai"))["Messages"]
    return services, b, message["Body"]


def test_a_retried_chunk_is_billed_and_counted_once(jobs: Any, upstream: FakeUpstream) -> None:
    services, b, message = one_chunk(jobs, 5)
    # the same chunk delivered twice (a worker that timed out after doing it, say)
    asyncio.run(services.jobs.handle(message, dead_letter=False))
    asyncio.run(services.jobs.handle(message, dead_letter=False))
    done = jobs.get(f"/v1/batches/{b['id']}", headers=auth()).json()
    assert done["request_counts"] == {"total": 5, "completed": 5, "failed": 0}
    report = jobs.get(f"/v1/usage?start={TODAY}&end={TODAY}", headers=auth()).json()
    assert sum(r["requests"] for r in report["data"] if r["model"] == EMBED) == 5
    # and a completed batch cannot be cancelled
    assert jobs.post(f"/v1/batches/{b['id']}/cancel", headers=auth()).status_code == 400


def test_a_chunk_that_keeps_failing_reports_its_lines_failed(jobs: Any, settings: Settings) -> None:
    services, b, message = one_chunk(jobs, 4)
    # SQS moved it to the dead-letter queue after its last failed receive
    asyncio.run(services.jobs.handle(message, dead_letter=True))
    done = jobs.get(f"/v1/batches/{b['id']}", headers=auth()).json()
    assert done["status"] == "completed" and done["request_counts"] == {"total": 4, "completed": 0, "failed": 4}
    errors = output(services, settings, "key_dev", done["error_file_id"])
    assert sorted(e["custom_id"] for e in errors) == ["r0", "r1", "r2", "r3"]
    assert errors[0]["response"]["status_code"] == 500
    assert errors[0]["response"]["body"]["error"]["code"] == "chunk_failed"


def test_a_provider_error_fails_only_its_line(jobs: Any, settings: Settings, upstream: FakeUpstream) -> None:
    def fails_on_bad(request: Any) -> Any:
        if "bad" in json.loads(request.content)["input"]:
            return json_response({"error": {"message": "input rejected"}}, status=400)
        return openai_by_text(request)

    upstream.handler = fails_on_bad
    lines = [line("ok-1", ["fine"]), line("no", ["bad"]), line("ok-2", ["good"])]
    b = create(jobs, upload(jobs, jsonl(lines)).json()["id"]).json()
    drain(jobs.app.state.services)
    done = jobs.get(f"/v1/batches/{b['id']}", headers=auth()).json()
    assert done["request_counts"] == {"total": 3, "completed": 2, "failed": 1}
    [error] = output(None, settings, "key_dev", done["error_file_id"])
    assert error["custom_id"] == "no" and error["response"]["status_code"] == 400
    assert error["response"]["body"]["error"]["code"] == "provider_rejected_request"


def test_a_batch_over_the_budget_is_refused_before_it_runs(jobs: Any, settings: Settings) -> None:
    from embedrank.store.dynamo import Stores
    from embedrank_tools.accounts import load_plans

    ultra = next(p for p in load_plans() if p["name"] == "ultra")
    Stores(settings, boto3.client("dynamodb")).put_plan({**ultra, "monthly_budget": 0.000001})
    jobs.app.state.services.auth._plans.clear()
    lines = [line(f"r{i}", ["a long text " * 200]) for i in range(20)]
    r = create(jobs, upload(jobs, jsonl(lines)).json()["id"])
    assert r.status_code == 429 and r.json()["error"]["code"] == "budget_exceeded"
    assert drain(jobs.app.state.services) == 0


# -- uploads ------------------------------------------------------------------------------------------------------


def test_an_upload_in_4_mib_parts_becomes_one_file(jobs: Any, settings: Settings) -> None:
    # given a 9 MiB JSONL file (over what one request carries)
    row = json.dumps(line("r", ["x" * 900])).encode() + b"\n"
    data = row * (9 * 1024 * 1024 // len(row))
    u = jobs.post("/v1/uploads", json={"bytes": len(data), "filename": "big.jsonl", "mime_type": "text/jsonl",
                                       "purpose": "batch"}, headers=auth()).json()  # fmt: skip
    assert u["status"] == "pending"
    # when it is sent in parts of 4 MiB
    part = 4 * 1024 * 1024
    ids = []
    for i in range(0, len(data), part):
        r = jobs.post(f"/v1/uploads/{u['id']}/parts", files={"data": ("blob", data[i : i + part])}, headers=auth())
        assert r.status_code == 200, r.text
        ids.append(r.json()["id"])
    done = jobs.post(f"/v1/uploads/{u['id']}/complete", json={"part_ids": ids}, headers=auth()).json()
    # then the file holds exactly the bytes sent
    assert done["status"] == "completed" and done["file"]["bytes"] == len(data)
    stored = output(None, settings, "key_dev", done["file"]["id"])
    assert len(stored) == data.count(b"\n")
    key = f"files/key_dev/{done['file']['id']}"
    assert boto3.client("s3").get_object(Bucket=settings.files_bucket, Key=key)["Body"].read() == data


def test_a_part_over_what_lambda_takes_is_a_413_that_names_the_limit(jobs: Any) -> None:
    u = jobs.post("/v1/uploads", json={"bytes": 10, "filename": "f", "mime_type": "text/jsonl", "purpose": "batch"},
                  headers=auth()).json()  # fmt: skip
    r = jobs.post(f"/v1/uploads/{u['id']}/parts", files={"data": ("blob", b"x" * 4_800_000)}, headers=auth())
    assert r.status_code == 413 and "4706304 bytes (4.49 MiB)" in r.json()["error"]["message"]


def test_an_upload_whose_parts_do_not_add_up_is_a_400(jobs: Any) -> None:
    u = jobs.post("/v1/uploads", json={"bytes": 10, "filename": "f", "mime_type": "text/jsonl", "purpose": "batch"},
                  headers=auth()).json()  # fmt: skip
    p = jobs.post(f"/v1/uploads/{u['id']}/parts", files={"data": ("blob", b"abc")}, headers=auth()).json()
    r = jobs.post(f"/v1/uploads/{u['id']}/complete", json={"part_ids": [p["id"]]}, headers=auth())
    assert r.status_code == 400 and "3 bytes" in r.json()["error"]["message"]
    assert jobs.post(f"/v1/uploads/{u['id']}/cancel", headers=auth()).json()["status"] == "cancelled"


def test_outputs_are_joined_in_s3_with_part_copies_and_bounded_buffers(aws: None, settings: Settings) -> None:
    from embedrank.store.objects import MIN_PART, ObjectStore

    # given chunk outputs of every size: one over S3's 5 MiB part minimum, small ones, an empty one, a missing one
    objects = ObjectStore(settings)
    parts = {
        "jobs/b/out/000000.jsonl": b"a" * (MIN_PART + 11),  # a part as it is: copied inside S3
        "jobs/b/out/000001.jsonl": b"b" * 100,
        "jobs/b/out/000002.jsonl": b"c" * (MIN_PART + 123),  # after a small one: read into the buffer by ranges
        "jobs/b/out/000003.jsonl": b"",
        "jobs/b/out/000005.jsonl": b"d" * 3000,
    }
    for key, data in parts.items():
        objects.put(key, data)
    sources = [f"jobs/b/out/{n:06d}.jsonl" for n in range(6)]
    # when they are joined, then the file is their bytes in order, the missing one counting as empty
    size = objects.join(sources, "files/k/joined")
    expected = b"".join(parts.get(k, b"") for k in sources)
    assert size == len(expected) and objects.get("files/k/joined") == expected
