"""Batch jobs' files in S3: inputs, uploads' parts, each chunk's output, and the joined output and error files.

    files/<key_id>/<file_id>                 a file (an input, or a batch's joined output or errors)
    uploads/<upload_id>/<part_id>            one part of an upload, until the upload completes
    jobs/<batch_id>/out/<chunk>.jsonl        one chunk's output lines (and err/<chunk>.jsonl, its errors)

Large outputs are never held whole: ``join`` writes a multipart upload whose parts are the sources themselves where
S3 allows (``UploadPartCopy`` of a source of 5 MiB or more), and buffers of at most ``PART_BYTES`` built from the
smaller ones otherwise (every part but the last must be 5 MiB or more). Reads of a file go to the caller through a
presigned URL, so no function carries a large file either way. Every AWS failure becomes ``StoreUnavailable``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .. import aws
from ..config import Settings
from .dynamo import translated

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MIN_PART = 5 * 1024 * 1024  # S3's smallest part but the last
PART_BYTES = 8 * 1024 * 1024  # what a joined file's parts are built up to from small sources
URL_SECONDS = 300


class ObjectStore:
    def __init__(self, settings: Settings, client: S3Client | None = None) -> None:
        self.settings = settings
        self._client = client

    @property
    def s3(self) -> S3Client:
        return self._client or aws.s3()

    @property
    def bucket(self) -> str:
        return self.settings.files_bucket

    def put(self, key: str, body: bytes, content_type: str = "application/jsonl") -> None:
        with translated():
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)

    def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        """The object, or its bytes ``start`` to ``end`` (exclusive)."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if start is not None and end is not None:
            if end <= start:
                return b""
            params["Range"] = f"bytes={start}-{end - 1}"
        with translated():
            return self.s3.get_object(**params)["Body"].read()

    def lines(self, key: str, chunk: int = 1024 * 1024) -> Iterator[tuple[int, bytes]]:
        """Each line of the object with the byte offset it starts at, read a megabyte at a time."""
        with translated():
            body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"]
            offset, rest = 0, b""
            for block in body.iter_chunks(chunk):
                rest += block
                *whole, rest = rest.split(b"\n")
                for line in whole:
                    yield offset, line
                    offset += len(line) + 1
            if rest:
                yield offset, rest

    def copy_in(self, bucket: str, key: str, target: str) -> int:
        """Copy another bucket's object to ``target``, inside S3; its size."""
        with translated():
            self.s3.copy_object(Bucket=self.bucket, Key=target, CopySource={"Bucket": bucket, "Key": key})
        return self.size(target)

    def size(self, key: str) -> int:
        with translated():
            return int(self.s3.head_object(Bucket=self.bucket, Key=key)["ContentLength"])

    def delete(self, keys: Sequence[str]) -> None:
        for i in range(0, len(keys), 1000):
            with translated():
                self.s3.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in keys[i : i + 1000]], "Quiet": True}
                )

    def url(self, key: str, filename: str) -> str:
        """A presigned GET of the object, valid ``URL_SECONDS``, saved under ``filename``."""
        with translated():
            return self.s3.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self.bucket,
                    "Key": key,
                    "ResponseContentDisposition": f'attachment; filename="{filename}"',
                },
                ExpiresIn=URL_SECONDS,
            )

    def join(self, sources: Sequence[str], target: str) -> int:
        """``target`` = the ``sources`` one after the other; its size. Sources that do not exist count as empty."""
        sizes = [self._size_or_zero(key) for key in sources]
        total = sum(sizes)
        if total < MIN_PART:  # one small object: written at once
            self.put(target, b"".join(self.get(k) for k, n in zip(sources, sizes, strict=True) if n))
            return total
        with translated():
            upload = self.s3.create_multipart_upload(Bucket=self.bucket, Key=target, ContentType="application/jsonl")
        upload_id = upload["UploadId"]
        parts: list[dict[str, Any]] = []
        buffer = bytearray()

        def flush() -> None:
            with translated():
                done = self.s3.upload_part(
                    Bucket=self.bucket, Key=target, UploadId=upload_id, PartNumber=len(parts) + 1, Body=bytes(buffer)
                )
            parts.append({"PartNumber": len(parts) + 1, "ETag": done["ETag"]})
            buffer.clear()

        try:
            for key, size in zip(sources, sizes, strict=True):
                if not size:
                    continue
                if size >= MIN_PART and not buffer:  # big enough to be a part as it is: copied inside S3
                    with translated():
                        copied = self.s3.upload_part_copy(
                            Bucket=self.bucket,
                            Key=target,
                            UploadId=upload_id,
                            PartNumber=len(parts) + 1,
                            CopySource={"Bucket": self.bucket, "Key": key},
                        )
                    parts.append({"PartNumber": len(parts) + 1, "ETag": copied["CopyPartResult"]["ETag"]})
                    continue
                for start in range(0, size, PART_BYTES):  # a range at a time: memory stays under two parts
                    buffer += self.get(key, start, min(start + PART_BYTES, size))
                    if len(buffer) >= PART_BYTES:
                        flush()
            if buffer:
                flush()
            with translated():
                self.s3.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=target,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},  # type: ignore[typeddict-item]
                )
        except BaseException:
            with translated():
                self.s3.abort_multipart_upload(Bucket=self.bucket, Key=target, UploadId=upload_id)
            raise
        return total

    def _size_or_zero(self, key: str) -> int:
        from botocore.exceptions import ClientError

        try:
            return int(self.s3.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return 0
            with translated():
                raise
