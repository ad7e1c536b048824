"""The batch jobs' two Lambda handlers invoked as Lambda does: the jobs API with API Gateway v2 events, the worker
with SQS events (tests/events/files_create_batch.json, batches_list.json, worker_chunk.json: `sam local invoke -e`)."""

from __future__ import annotations

import copy
import json
from types import ModuleType
from typing import Any

import boto3
import pytest

from conftest import FakeUpstream, auth
from embedrank.config import Settings
from fakes import openai_answer
from lambda_harness import LambdaContext, event, invoke, load_event, wired


@pytest.fixture
def jobs_handler(aws: None, upstream: FakeUpstream) -> Any:
    import jobs_handler

    upstream.handler = openai_answer
    return wired(jobs_handler, upstream)


@pytest.fixture
def worker(aws: None, upstream: FakeUpstream) -> ModuleType:
    import httpx
    import worker_handler

    from embedrank.providers import Registry

    services = worker_handler.services
    services.gateway.registry = Registry(httpx.MockTransport(upstream))
    services.auth._keys.clear()
    services.auth._plans.clear()
    services.gateway.credentials.clear()
    return worker_handler


def sqs_event(messages: list[dict[str, Any]], queue: str) -> dict[str, Any]:
    """``worker_chunk.json`` carrying these SQS messages, as the event source mapping delivers them from ``queue``."""
    base = load_event("worker_chunk.json")
    [template] = base["Records"]
    records = []
    for m in messages:
        record = copy.deepcopy(template)
        record.update(messageId=m["MessageId"], receiptHandle=m["ReceiptHandle"], body=m["Body"])
        record["eventSourceARN"] = f"arn:aws:sqs:us-east-1:123456789012:{queue}"
        records.append(record)
    return {"Records": records}


def queued(settings: Settings, dead_letters: bool = False) -> list[dict[str, Any]]:
    name = settings.jobs_dlq if dead_letters else f"{settings.jobs_queue}-openai"
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    messages: list[dict[str, Any]] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return messages


def create_batch(handler: Any) -> dict[str, Any]:
    status, _, f = invoke(handler, load_event("files_create_batch.json"), "JobsFunction")
    assert status == 200, f
    assert f["purpose"] == "batch" and f["filename"] == "chunks.jsonl" and f["status"] == "processed"
    body = {"input_file_id": f["id"], "endpoint": "/v1/embeddings", "completion_window": "24h"}
    status, _, b = invoke(handler, event("POST", "/v1/batches", body, auth()), "JobsFunction")
    assert status == 200, b
    return b


def retrieve(handler: Any, batch_id: str) -> dict[str, Any]:
    status, _, b = invoke(handler, event("GET", f"/v1/batches/{batch_id}", None, auth()), "JobsFunction")
    assert status == 200, b
    return b


def test_a_file_uploaded_through_api_gateway_runs_as_a_batch_in_the_worker(
    jobs_handler: Any, worker: ModuleType, settings: Settings, upstream: FakeUpstream
) -> None:
    # given the multipart upload event (API Gateway base64-encodes the binary body) and a batch over it
    b = create_batch(jobs_handler)
    assert b["request_counts"] == {"total": 2, "completed": 0, "failed": 0}
    # when the worker gets the chunk's SQS event
    answer = worker.handler(
        sqs_event(queued(settings), f"{settings.jobs_queue}-openai"), LambdaContext("WorkerFunction")
    )
    # then nothing is handed back to SQS, the batch is completed and listed
    assert answer == {"batchItemFailures": []}
    done = retrieve(jobs_handler, b["id"])
    assert done["status"] == "completed" and done["request_counts"] == {"total": 2, "completed": 2, "failed": 0}
    sent = sorted(t for r in upstream.requests for t in json.loads(r.content)["input"])
    assert sent == ["first chunk", "second chunk", "third chunk"]
    s3 = boto3.client("s3")
    out = s3.get_object(Bucket=settings.files_bucket, Key=f"files/key_dev/{done['output_file_id']}")["Body"].read()
    assert sorted(json.loads(x)["custom_id"] for x in out.splitlines()) == ["doc-1", "doc-2"]
    status, _, listed = invoke(jobs_handler, load_event("batches_list.json"), "JobsFunction")
    assert status == 200 and [x["id"] for x in listed["data"]] == [b["id"]] and listed["object"] == "list"


def test_a_record_that_fails_is_handed_back_to_sqs_and_its_dead_letter_reports_the_lines(
    jobs_handler: Any, worker: ModuleType, settings: Settings, upstream: FakeUpstream
) -> None:
    b = create_batch(jobs_handler)
    [message] = queued(settings)
    # given a record the worker cannot run (its body is not JSON)
    broken = {"MessageId": "m-broken", "ReceiptHandle": "r", "Body": "{not json"}
    answer = worker.handler(sqs_event([broken], f"{settings.jobs_queue}-openai"), LambdaContext("WorkerFunction"))
    # then only that record is handed back for SQS to retry
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-broken"}]}
    # and when the real chunk arrives from the dead-letter queue (every attempt failed), its lines are failed
    answer = worker.handler(sqs_event([message], settings.jobs_dlq), LambdaContext("WorkerFunction"))
    assert answer == {"batchItemFailures": []}
    done = retrieve(jobs_handler, b["id"])
    assert done["status"] == "completed" and done["request_counts"] == {"total": 2, "completed": 0, "failed": 2}
    assert not upstream.requests


def test_the_checked_in_worker_event_names_a_batch_that_is_gone_and_is_acknowledged(worker: ModuleType) -> None:
    # `sam local invoke WorkerFunction -e tests/events/worker_chunk.json`: a chunk of a deleted batch is dropped
    assert worker.handler(load_event("worker_chunk.json"), LambdaContext("WorkerFunction")) == {"batchItemFailures": []}


def test_the_jobs_api_refuses_a_request_without_a_key(jobs_handler: Any) -> None:
    e = load_event("batches_list.json")
    del e["headers"]["authorization"]
    status, _, body = invoke(jobs_handler, e, "JobsFunction")
    assert status == 401 and body["error"]["code"] == "missing_api_key"
    assert json.dumps(body).find("er-test") == -1
