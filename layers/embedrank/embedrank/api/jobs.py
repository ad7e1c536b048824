"""Batch jobs' operations: OpenAI's Files, Uploads and Batch endpoints. Each parses, calls ``domain.jobs`` (off the
event loop: it is S3, DynamoDB and SQS), and answers one of ``responses``' shapes; every object is its key's alone
(another key gets a 404, and never sees it listed)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..domain.jobs import batch_object, file_object, upload_object
from ..errors import InvalidRequest, PayloadTooLarge
from .exchange import Exchange
from .requests import BatchCreate, ListQuery, UploadComplete, UploadCreate, parse_body
from .responses import BatchObject, FileDeleted, FileObject, UploadObject, UploadPart
from .sizes import LAMBDA_PAYLOAD_LIMIT

# A multipart body reaches Lambda base64-encoded (API Gateway treats it as binary): 4/3 of it, and the event's own
# headers and context (16 KiB allowed for them), must fit Lambda's 6 MiB invocation payload.
MAX_BINARY_BODY = (LAMBDA_PAYLOAD_LIMIT - 16 * 1024) * 3 // 4  # 4,706,304 bytes, 4.49 MiB


def _json(body: Any) -> Response:
    from .endpoints import json_response

    return json_response(body)


async def _form(ex: Exchange) -> FormData:
    """The multipart body, refused with a 413 past what a base64-encoded body leaves of Lambda's payload."""
    declared = ex.request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BINARY_BODY:
        raise PayloadTooLarge(
            f"The multipart body declares {declared} bytes; at most {MAX_BINARY_BODY} bytes (4.49 MiB) fit: API "
            "Gateway hands it to Lambda base64-encoded, within Lambda's 6 MiB. Upload larger files in parts of at "
            "most 4 MiB (client.uploads.upload_file_chunked(..., part_size=4 * 1024 * 1024)).",
            code="request_too_large",
        )
    body = await ex.body()
    if len(body) > MAX_BINARY_BODY:
        raise PayloadTooLarge(f"The multipart body is over {MAX_BINARY_BODY} bytes.", code="request_too_large")

    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        return await Request(ex.request.scope, replay).form(max_files=1, max_fields=8)
    except Exception:  # python-multipart's parse errors, as Starlette raises them
        raise InvalidRequest("The body is not valid multipart/form-data.") from None


async def _file_field(form: FormData, name: str) -> tuple[str, bytes]:
    field = form.get(name)
    if not isinstance(field, UploadFile):
        raise InvalidRequest(f"Missing required file field '{name}'.", param=name)
    return field.filename or "", await field.read()


async def _listing[Item](
    ex: Exchange,
    page: Callable[[str, str | None, int], tuple[Sequence[Item], bool]],
    shape: Callable[[Item], FileObject | BatchObject],
) -> Response:
    """One page of the key's files or batches, newest first, in OpenAI's list shape (``FileList``, ``BatchList``)."""
    from pydantic import ValidationError

    principal = await ex.authenticate()
    await ex.admit()
    try:
        query = ListQuery.model_validate(dict(ex.request.query_params))
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        param = ".".join(str(p) for p in err["loc"])
        raise InvalidRequest(f"Invalid value for '{param}': {err['msg']}.", param=param) from None
    items, more = await ex.io(page, principal.key_id, query.after, query.limit)
    data = [shape(i) for i in items]
    ends = (data[0]["id"], data[-1]["id"]) if data else (None, None)
    return _json({"object": "list", "data": data, "first_id": ends[0], "last_id": ends[1], "has_more": more})


# -- files --------------------------------------------------------------------------------------------------------


async def create_file(ex: Exchange) -> Response:
    principal = await ex.authenticate()
    await ex.admit()
    form = await _form(ex)
    filename, data = await _file_field(form, "file")
    purpose = form.get("purpose")
    if not isinstance(purpose, str):
        raise InvalidRequest("Missing required parameter: 'purpose'.", param="purpose")
    f = await ex.io(ex.services.jobs.create_file, principal, filename, purpose, data)
    body: FileObject = file_object(f)
    return _json(body)


async def list_files(ex: Exchange) -> Response:
    return await _listing(ex, ex.services.jobs.store.list_files, file_object)


async def get_file(ex: Exchange) -> Response:
    principal = await ex.authenticate()
    await ex.admit()
    body: FileObject = file_object(await ex.io(ex.services.jobs.file, principal, ex.request.path_params["file_id"]))
    return _json(body)


async def delete_file(ex: Exchange) -> Response:
    principal = await ex.authenticate()
    await ex.admit()
    file_id = await ex.io(ex.services.jobs.delete_file, principal, ex.request.path_params["file_id"])
    body: FileDeleted = {"id": file_id, "object": "file", "deleted": True}
    return _json(body)


async def file_content(ex: Exchange) -> Response:
    """A redirect to the file in S3 (a presigned URL, 5 minutes): a file of any size, read straight from S3."""
    principal = await ex.authenticate()
    await ex.admit()
    url = await ex.io(ex.services.jobs.file_url, principal, ex.request.path_params["file_id"])
    return RedirectResponse(url, status_code=307)


# -- uploads ------------------------------------------------------------------------------------------------------


async def create_upload(ex: Exchange) -> Response:
    principal = await ex.authenticate()
    request: UploadCreate = parse_body(UploadCreate, await ex.body())
    await ex.admit()
    jobs = ex.services.jobs
    upload = await ex.io(jobs.create_upload, principal, request.filename, request.purpose, request.bytes,
                         request.mime_type)  # fmt: skip
    body: UploadObject = upload_object(upload)
    return _json(body)


async def add_part(ex: Exchange) -> Response:
    principal = await ex.authenticate()
    await ex.admit()
    _, data = await _file_field(await _form(ex), "data")
    upload_id = ex.request.path_params["upload_id"]
    part_id, created = await ex.io(ex.services.jobs.add_part, principal, upload_id, data)
    body: UploadPart = {"id": part_id, "object": "upload.part", "created_at": created, "upload_id": upload_id}
    return _json(body)


async def complete_upload(ex: Exchange) -> Response:
    principal = await ex.authenticate()
    request: UploadComplete = parse_body(UploadComplete, await ex.body())
    await ex.admit()
    upload_id = ex.request.path_params["upload_id"]
    upload, f = await ex.io(ex.services.jobs.complete_upload, principal, upload_id, request.part_ids)
    body: UploadObject = upload_object(upload, f)
    return _json(body)


async def cancel_upload(ex: Exchange) -> Response:
    principal = await ex.authenticate()
    await ex.admit()
    upload = await ex.io(ex.services.jobs.cancel_upload, principal, ex.request.path_params["upload_id"])
    body: UploadObject = upload_object(upload)
    return _json(body)


# -- batches ------------------------------------------------------------------------------------------------------


async def create_batch(ex: Exchange) -> Response:
    """The file is checked and its cost reserved against the budget in the job's own admission (no other)."""
    principal = await ex.authenticate()
    request: BatchCreate = parse_body(BatchCreate, await ex.body())
    b = await ex.io(ex.services.jobs.create_batch, principal, request.input_file_id, request.endpoint,
                    request.completion_window, request.metadata)  # fmt: skip
    body: BatchObject = batch_object(b)
    return _json(body)


async def list_batches(ex: Exchange) -> Response:
    return await _listing(ex, ex.services.jobs.store.list_batches, batch_object)


async def get_batch(ex: Exchange) -> Response:
    principal = await ex.authenticate()
    await ex.admit()
    body: BatchObject = batch_object(await ex.io(ex.services.jobs.batch, principal, ex.request.path_params["batch_id"]))
    return _json(body)


async def cancel_batch(ex: Exchange) -> Response:
    principal = await ex.authenticate()
    await ex.admit()
    b = await ex.io(ex.services.jobs.cancel_batch, principal, ex.request.path_params["batch_id"])
    body: BatchObject = batch_object(b)
    return _json(body)
