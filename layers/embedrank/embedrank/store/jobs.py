"""Batch jobs' state in DynamoDB (``tables.JOBS``): one table, its items by what they describe.

    pk                      sk                      what
    key#<key_id>            file#<file_id>          a file (JobFile)
    key#<key_id>            upload#<upload_id>      an upload (Upload)
    upload#<upload_id>      part#<part_id>          one part of it
    key#<key_id>            batch#<batch_id>        a batch (Batch): status, times and counters as attributes
    batch#<batch_id>        chunk#<n>               a finished chunk: written once, so a retried chunk counts once

Every object lives under its key's partition, so another key can neither read nor list it. Ids start with their
creation time in hex (``new_id``), so a partition's items sort oldest first and a list reads them newest first.
Every AWS failure becomes ``StoreUnavailable`` (``dynamo.translated``).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import orjson

from ..domain.records import BATCH_TIMES, Batch, JobFile, Upload
from ..errors import StoreUnavailable
from .dynamo import Stores, translated
from .tables import JOBS_TTL_ATTRIBUTE

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

KEY = "key#"
CONDITION_FAILED = "ConditionalCheckFailedException"
COUNTERS = ("completed", "failed", "chunks_done", "tokens")


def new_id(prefix: str) -> str:
    """``prefix`` + the time in ms (hex, fixed width: ids sort by creation) + 48 random bits."""
    return f"{prefix}{int(time.time() * 1000):011x}{secrets.token_hex(6)}"


class JobStore:
    """Files, uploads, batches and chunks in the jobs table, on the ``Stores``' DynamoDB client. Synchronous."""

    def __init__(self, stores: Stores) -> None:
        self.settings = stores.settings
        self._stores = stores

    @property
    def db(self) -> DynamoDBClient:
        return self._stores.db

    @property
    def table(self) -> str:
        return self.settings.jobs_table

    def _put(self, item: dict[str, Any], condition: str | None = None) -> None:
        params: dict[str, Any] = {"TableName": self.table, "Item": item}
        if condition:
            params["ConditionExpression"] = condition
        with translated():
            self.db.put_item(**params)

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        with translated():
            item = self.db.get_item(TableName=self.table, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True)
        return item.get("Item")

    def _page(self, pk: str, kind: str, after: str | None, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """Items ``kind#...`` of ``pk``, newest first, after (older than) the id ``after``; and whether more remain."""
        high = f"{kind}#{after}" if after else f"{kind}#\uffff"
        with translated():
            answer = self.db.query(
                TableName=self.table,
                KeyConditionExpression="pk = :pk AND sk BETWEEN :lo AND :hi",
                ExpressionAttributeValues={":pk": {"S": pk}, ":lo": {"S": f"{kind}#"}, ":hi": {"S": high}},
                ScanIndexForward=False,
                Limit=limit + 2,
                ConsistentRead=True,
            )
        items = [i for i in answer["Items"] if not after or i["sk"]["S"] != high]
        return items[:limit], len(items) > limit

    # -- files ------------------------------------------------------------------------------------------------------

    def put_file(self, f: JobFile) -> None:
        self._put(_doc_item(KEY + f.key_id, f"file#{f.id}", asdict(f), f.expires_at))

    def get_file(self, key_id: str, file_id: str) -> JobFile | None:
        item = self._get(KEY + key_id, f"file#{file_id}")
        return JobFile(**_doc(item)) if item and _alive(item) else None

    def list_files(self, key_id: str, after: str | None, limit: int) -> tuple[list[JobFile], bool]:
        items, more = self._page(KEY + key_id, "file", after, limit)
        return [JobFile(**_doc(i)) for i in items if _alive(i)], more

    def delete_file(self, key_id: str, file_id: str) -> None:
        with translated():
            self.db.delete_item(TableName=self.table, Key={"pk": {"S": KEY + key_id}, "sk": {"S": f"file#{file_id}"}})

    # -- uploads ----------------------------------------------------------------------------------------------------

    def put_upload(self, u: Upload) -> None:
        self._put(_doc_item(KEY + u.key_id, f"upload#{u.id}", asdict(u), u.expires_at) | {"state": {"S": u.status}})

    def get_upload(self, key_id: str, upload_id: str) -> Upload | None:
        item = self._get(KEY + key_id, f"upload#{upload_id}")
        return Upload(**_doc(item)) if item else None

    def end_upload(self, u: Upload) -> bool:
        """Record ``u``'s new status (and file) if it was still pending; False if another call ended it first."""
        item = _doc_item(KEY + u.key_id, f"upload#{u.id}", asdict(u), u.expires_at) | {"state": {"S": u.status}}
        try:
            with translated():
                self.db.put_item(
                    TableName=self.table,
                    Item=item,
                    ConditionExpression="#state = :pending",
                    ExpressionAttributeNames={"#state": "state"},
                    ExpressionAttributeValues={":pending": {"S": "pending"}},
                )
        except StoreUnavailable as exc:
            if exc.aws_code == CONDITION_FAILED:
                return False
            raise
        return True

    def put_part(self, upload_id: str, part_id: str, size: int, created_at: int, expires_at: int) -> None:
        self._put(
            {
                "pk": {"S": f"upload#{upload_id}"},
                "sk": {"S": f"part#{part_id}"},
                "size": {"N": str(size)},
                "created_at": {"N": str(created_at)},
                JOBS_TTL_ATTRIBUTE: {"N": str(expires_at)},
            }
        )

    def parts(self, upload_id: str) -> dict[str, int]:
        """The upload's parts: part id -> size."""
        found: dict[str, int] = {}
        with translated():
            pages = self.db.get_paginator("query").paginate(
                TableName=self.table,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": f"upload#{upload_id}"}},
                ConsistentRead=True,
            )
            for page in pages:
                for item in page["Items"]:
                    found[item["sk"]["S"].removeprefix("part#")] = int(item["size"]["N"])
        return found

    # -- batches ----------------------------------------------------------------------------------------------------

    def put_batch(self, b: Batch) -> None:
        item = _doc_item(KEY + b.key_id, f"batch#{b.id}", _static(b), b.expires_at + 30 * 86_400)
        item |= {"status": {"S": b.status}} | {k: {"N": str(getattr(b, k))} for k in COUNTERS}
        item |= {k: {"N": str(v)} for k, v in b.times.items()}
        self._put(item)

    def get_batch(self, key_id: str, batch_id: str) -> Batch | None:
        item = self._get(KEY + key_id, f"batch#{batch_id}")
        return _batch(item) if item else None

    def list_batches(self, key_id: str, after: str | None, limit: int) -> tuple[list[Batch], bool]:
        items, more = self._page(KEY + key_id, "batch", after, limit)
        return [_batch(i) for i in items], more

    def set_batch(
        self, b: Batch, status: str, *, expect: tuple[str, ...], at: str | None = None, **fields: str | None
    ) -> bool:
        """Move ``b`` to ``status`` (stamping the time ``at``, setting ``fields``) if it is in one of ``expect``;
        False if it was not. ``b`` is updated to match on success."""
        now = int(time.time())
        sets = ["#status = :status"]
        values: dict[str, Any] = {":status": {"S": status}}
        names = {"#status": "status"}
        if at:
            sets.append(f"#{at} = if_not_exists(#{at}, :now)")
            names[f"#{at}"], values[":now"] = at, {"N": str(now)}
        for name, value in fields.items():
            if value is not None:
                sets.append(f"#{name} = :{name}")
                names[f"#{name}"], values[f":{name}"] = name, {"S": value}
        allowed = [f":e{i}" for i in range(len(expect))]
        values |= {f":e{i}": {"S": s} for i, s in enumerate(expect)}
        try:
            with translated():
                self.db.update_item(
                    TableName=self.table,
                    Key={"pk": {"S": KEY + b.key_id}, "sk": {"S": f"batch#{b.id}"}},
                    UpdateExpression="SET " + ", ".join(sets),
                    ConditionExpression=f"#status IN ({', '.join(allowed)})",
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                )
        except StoreUnavailable as exc:
            if exc.aws_code == CONDITION_FAILED:
                return False
            raise
        b.status = status
        if at:
            b.times.setdefault(at, now)
        for name, value in fields.items():
            setattr(b, name, value)
        return True

    def finish_chunk(self, b: Batch, chunk: int, completed: int, failed: int, tokens: int = 0) -> bool:
        """Count a chunk's lines into its batch, once: False when this chunk was counted already (a retry)."""
        try:
            with translated():
                self.db.transact_write_items(
                    TransactItems=[
                        {
                            "Put": {
                                "TableName": self.table,
                                "Item": {
                                    "pk": {"S": f"batch#{b.id}"},
                                    "sk": {"S": f"chunk#{chunk:06d}"},
                                    "completed": {"N": str(completed)},
                                    "failed": {"N": str(failed)},
                                    JOBS_TTL_ATTRIBUTE: {"N": str(b.expires_at + 30 * 86_400)},
                                },
                                "ConditionExpression": "attribute_not_exists(pk)",
                            }
                        },
                        {
                            "Update": {
                                "TableName": self.table,
                                "Key": {"pk": {"S": KEY + b.key_id}, "sk": {"S": f"batch#{b.id}"}},
                                "UpdateExpression": "ADD completed :c, failed :f, chunks_done :one, tokens :t",
                                "ExpressionAttributeValues": {
                                    ":c": {"N": str(completed)},
                                    ":f": {"N": str(failed)},
                                    ":one": {"N": "1"},
                                    ":t": {"N": str(tokens)},
                                },
                            }
                        },
                    ]
                )
        except StoreUnavailable as exc:
            if exc.aws_code == "TransactionCanceledException" and cancelled_by_condition(exc.__cause__):
                return False
            raise
        return True


def cancelled_by_condition(exc: BaseException | None) -> bool:
    """A transaction cancelled because its first item's condition failed (the chunk was counted already)."""
    reasons = (getattr(exc, "response", None) or {}).get("CancellationReasons") or []
    return bool(reasons) and reasons[0].get("Code") == "ConditionalCheckFailed"


def _doc_item(pk: str, sk: str, doc: dict[str, Any], expires_at: int) -> dict[str, Any]:
    return {
        "pk": {"S": pk},
        "sk": {"S": sk},
        "doc": {"S": orjson.dumps(doc).decode()},
        JOBS_TTL_ATTRIBUTE: {"N": str(expires_at)},
    }


def _doc(item: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(item["doc"]["S"])
    return doc


def _alive(item: dict[str, Any]) -> bool:
    """DynamoDB deletes expired items within days, not at once: an expired file is gone already."""
    return int(item[JOBS_TTL_ATTRIBUTE]["N"]) > time.time()


def _static(b: Batch) -> dict[str, Any]:
    doc = asdict(b)
    for name in ("status", "times", *COUNTERS, "output_file_id", "error_file_id"):
        doc.pop(name)
    return doc


def _batch(item: dict[str, Any]) -> Batch:
    b = Batch(**_doc(item), status=item["status"]["S"])
    for name in COUNTERS:
        setattr(b, name, int(item.get(name, {}).get("N", "0")))
    b.times = {t: int(item[t]["N"]) for t in BATCH_TIMES if t in item}
    b.output_file_id = item.get("output_file_id", {}).get("S")
    b.error_file_id = item.get("error_file_id", {}).get("S")
    return b
