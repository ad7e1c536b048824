"""``embedrank usage replay``: re-ingest the usage records a request could not write, from its ``usage_replay`` log
lines (see ``embedrank.domain.usage.Meter.record``)."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import TypeAdapter, ValidationError

from embedrank.domain.records import UsageRecord
from embedrank.domain.usage import REPLAY_MESSAGE, Meter


@functools.cache
def _record_adapter() -> TypeAdapter[UsageRecord]:
    return TypeAdapter(UsageRecord)


@dataclass
class ReplayReport:
    replayed: int = 0  # records written now
    present: int = 0  # records already written (by the request itself, or an earlier replay): not counted again
    skipped: int = 0  # lines that are not replay lines
    invalid: list[int] = field(default_factory=list)  # line numbers of replay lines that could not be read


def parse_replay_line(line: str) -> UsageRecord | None:
    """The record of a ``usage_replay`` log line, None for any other line; ValueError for a damaged replay line.

    Accepts the JSON line as logged and as exported, with whatever prefix (a timestamp, a log stream name) before it.
    """
    if REPLAY_MESSAGE not in line:
        return None  # the cheap test first: a log export is mostly other lines
    start = line.find("{")
    if start < 0:
        return None
    try:
        entry, _ = json.JSONDecoder().raw_decode(line, start)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc.msg}") from None
    if not isinstance(entry, dict) or entry.get("usage_replay") is not True:
        return None
    try:
        record = _record_adapter().validate_python(entry.get("record"))
        datetime.fromisoformat(record.timestamp)
    except (ValidationError, ValueError, TypeError) as exc:
        raise ValueError(f"not a usage record ({type(exc).__name__})") from None
    if not (record.request_id and record.key_id and len(record.timestamp) >= 10):
        raise ValueError("the record lacks its request id, key id or timestamp")
    return record


def replay(meter: Meter, lines: Iterable[str], report: ReplayReport) -> None:
    """Re-ingest the replay lines among ``lines`` into ``report``'s counts; safe to repeat (records are written only
    if absent). Raises the AWS error that stops it, with ``report`` holding the progress so far."""
    for number, line in enumerate(lines, start=1):
        try:
            record = parse_replay_line(line)
        except ValueError:
            report.invalid.append(number)
            continue
        if record is None:
            report.skipped += 1
        elif meter.write(record, live=False):
            report.replayed += 1
        else:
            report.present += 1
