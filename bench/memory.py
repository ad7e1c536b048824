"""Peak memory while the gateway refuses a 1 GiB provider answer: ``python -m bench.memory [--gzip]`` prints JSON.

In a fresh process, a loopback server streams 1 GiB (chunked, no length declared, then the same gzipped: a few MB on
the wire) to ``providers.http.Http.post`` with the largest answer limit any call has (64 MiB). The figure is the
growth of the process's peak resident set (``VmHWM``, reset through ``/proc/self/clear_refs`` just before) over what
it held before the call: what a Lambda function would need on top of its baseline.
"""

from __future__ import annotations

import asyncio
import json
import zlib
from pathlib import Path
from typing import Any

MiB = 1024 * 1024
ANSWER = 1024 * MiB


def peak_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def current_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def gzipped_gib() -> list[bytes]:
    squeeze = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(MiB)
    payload = b"".join([squeeze.compress(block) for _ in range(ANSWER // MiB)] + [squeeze.flush()])
    return [payload[i : i + 65536] for i in range(0, len(payload), 65536)]


async def refuse(gzip: bool) -> dict[str, Any]:
    from embedrank.errors import UpstreamError
    from embedrank.providers.calls import MAX_ANSWER_BYTES
    from embedrank.providers.http import Http

    chunks = gzipped_gib() if gzip else [b"0" * MiB] * (ANSWER // MiB)
    head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n" + (b"content-encoding: gzip\r\n" if gzip else b"")

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(head + b"\r\n")
            for chunk in chunks:
                writer.write(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                await writer.drain()
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/embeddings"
    http = Http()
    http.client()  # built before the baseline: the client is part of every warm container
    Path("/proc/self/clear_refs").write_text("5")  # noqa: ASYNC240 - reset VmHWM to the current resident set
    before = current_rss()
    code = ""
    try:
        await http.post("bench", url, b"{}", {}, timeout=120, limit=MAX_ANSWER_BYTES)
    except UpstreamError as exc:
        code = exc.code
    grown = peak_rss() - before
    server.close()
    return {
        "answer_mib": ANSWER // MiB,
        "limit_mib": MAX_ANSWER_BYTES // MiB,
        "code": code,
        "peak_growth_mib": round(grown / MiB, 1),
    }


def main() -> None:
    import sys

    print(json.dumps(asyncio.run(refuse(gzip=sys.argv[1:] == ["--gzip"]))))


if __name__ == "__main__":
    main()
