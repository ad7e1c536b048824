"""Usage is never lost: a usage write that keeps failing leaves one replay log line, and `embedrank usage replay`
re-ingests such lines exactly once."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from conftest import DEV_KEY, FakeUpstream, auth, run_cli, usage_records
from embedrank.config import Settings
from embedrank.domain.records import UsageRecord
from embedrank.domain.usage import Meter
from embedrank.store.dynamo import Stores
from embedrank_tools.cli import main
from embedrank_tools.replay import parse_replay_line
from fakes import openai_answer
from lambda_harness import captured_logs
from usage_faults import FaultyUsageWrites, cancelled_by_throttling, replay_lines, throttled

SECRET_INPUT = "confidential-quarterly-numbers"


def record(request_id: str = "req-1", **changes: Any) -> UsageRecord:
    values: dict[str, Any] = {
        "request_id": request_id,
        "key_id": "key_dev",
        "timestamp": "2025-06-02T10:11:12.345+00:00",
        "endpoint": "embeddings",
        "model": "openai/text-embedding-3-small",
        "provider": "openai",
        "status": 200,
        "latency_ms": 12.5,
        "input_count": 2,
        "tokens": 7,
        "cost": 1.4e-7,
        **changes,
    }
    return UsageRecord(**values)


def faulty_meter(settings: Settings, client: FaultyUsageWrites, **options: Any) -> Meter:
    return Meter(Stores(settings, client=client), settings.usage_retention_days, **options)  # type: ignore[arg-type]


def day_rollup(settings: Settings, key_id: str, day: str, model: str) -> dict[str, Any] | None:
    item: dict[str, Any] | None = (
        boto3.client("dynamodb")
        .get_item(TableName=settings.usage_table, Key={"pk": {"S": f"key#{key_id}"}, "sk": {"S": f"day#{day}#{model}"}})
        .get("Item")
    )
    return item


def test_throttled_usage_write_answers_200_logs_one_replay_line_and_replays_once(
    services: Any, client: Any, upstream: FakeUpstream, settings: Settings, tmp_path: Path, capsys: Any
) -> None:
    upstream.handler = openai_answer
    writes = FaultyUsageWrites(boto3.client("dynamodb"), always=throttled())
    services.meter = faulty_meter(settings, writes, known_models=services.gateway.catalog.model_ids())
    with captured_logs() as logs:
        r = client.post(
            "/v1/embeddings",
            json={"model": "openai/text-embedding-3-small", "input": [SECRET_INPUT, "b"]},
            headers=auth(),
        )
    assert r.status_code == 200, r.text
    assert len(r.json()["data"]) == 2
    assert writes.calls == 3  # retried, then given up
    assert usage_records(settings) == []
    [line] = replay_lines(logs.getvalue())
    logged = line["record"]
    assert line["usage_replay"] is True and line["level"] == "WARNING"
    assert line["error_code"] == "ProvisionedThroughputExceededException"
    assert logged["request_id"] == r.headers["x-request-id"] and logged["key_id"] == "key_dev"
    assert (logged["status"], logged["tokens"], logged["input_count"]) == (200, 6, 2)
    assert logged["cost"] == r.json()["usage"]["cost"]
    assert set(logged) == set(UsageRecord.__dataclass_fields__)
    assert DEV_KEY not in logs.getvalue() and SECRET_INPUT not in logs.getvalue()

    # The log export: other lines around it, once as the raw JSON and once as CloudWatch prints it, prefixed.
    replay_json = json.dumps(line)
    export = tmp_path / "export.log"
    export.write_text(
        "START RequestId: 1234 Version: $LATEST\n"
        + logs.getvalue()
        + f"2025-06-02T10:11:12.400Z\t2025/06/02/[$LATEST]abcdef {replay_json}\n"
        + "END RequestId: 1234\n"
    )
    day = logged["timestamp"][:10]
    code, out, err = run_cli(capsys, "usage", "replay", str(export))
    assert code == 0, err
    # The same line twice in the file: counted once, the second found present.
    assert "Replayed 1 usage records; 1 already present" in out
    [stored] = usage_records(settings)
    assert stored["request_id"]["S"] == logged["request_id"] and stored["tokens"]["N"] == "6"
    rollup = day_rollup(settings, "key_dev", day, "openai/text-embedding-3-small")
    assert rollup is not None and rollup["requests"]["N"] == "1" and rollup["tokens"]["N"] == "6"

    # Replaying the whole export again counts nothing twice.
    code, out, _ = run_cli(capsys, "usage", "replay", str(export))
    assert code == 0 and "Replayed 0 usage records; 2 already present" in out
    assert len(usage_records(settings)) == 1
    rollup = day_rollup(settings, "key_dev", day, "openai/text-embedding-3-small")
    assert rollup is not None and rollup["requests"]["N"] == "1"


@pytest.mark.parametrize(
    "error",
    [throttled(), throttled("ThrottlingException"), throttled("RequestLimitExceeded"), cancelled_by_throttling()],
)
def test_a_passing_fault_is_retried_without_a_replay_line(aws: None, settings: Settings, error: Exception) -> None:
    writes = FaultyUsageWrites(boto3.client("dynamodb"), error)
    with captured_logs() as logs:
        assert faulty_meter(settings, writes).record(record()) is True
    assert writes.calls == 2
    assert replay_lines(logs.getvalue()) == []
    assert len(usage_records(settings)) == 1


def test_retries_are_bounded_in_time(aws: None, settings: Settings) -> None:
    writes = FaultyUsageWrites(boto3.client("dynamodb"), always=throttled())
    started = time.monotonic()
    with captured_logs() as logs:
        assert faulty_meter(settings, writes, attempts=50).record(record()) is None
    assert time.monotonic() - started < 1.0  # the 0.5 s budget, not 50 attempts
    assert 2 <= writes.calls < 50
    assert len(replay_lines(logs.getvalue())) == 1


@pytest.mark.parametrize(
    ("error", "logged"),
    [
        (throttled("ValidationException"), ("StoreUnavailable", "ValidationException")),
        (throttled("ResourceNotFoundException"), ("StoreUnavailable", "ResourceNotFoundException")),
        (RuntimeError("a bug"), ("RuntimeError", None)),
    ],
)
def test_a_permanent_error_or_a_bug_is_logged_once_and_never_raised(
    aws: None, settings: Settings, error: Exception, logged: tuple[str, str | None]
) -> None:
    # given a usage write that fails in a way another attempt cannot fix
    writes = FaultyUsageWrites(boto3.client("dynamodb"), always=error)
    # when a request's usage is recorded
    with captured_logs() as logs:
        assert faulty_meter(settings, writes).record(record()) is None
    # then it is tried once, and its record is one replay line naming the error's type and code, never its message
    assert writes.calls == 1
    [line] = replay_lines(logs.getvalue())
    assert (line["error_type"], line.get("error_code")) == logged and "a bug" not in logs.getvalue()


def test_replay_of_a_record_the_request_already_wrote_is_skipped(
    aws: None, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The write succeeded but its answer was lost (a timeout after the commit): the replay line is redundant.
    assert Meter(Stores(settings), 90).record(record("req-committed")) is True
    writes = FaultyUsageWrites(boto3.client("dynamodb"), always=throttled())
    with captured_logs() as logs:
        faulty_meter(settings, writes).record(record("req-committed"))
    export = tmp_path / "export.log"
    export.write_text(logs.getvalue())
    code, out, _ = run_cli(capsys, "usage", "replay", str(export))
    assert code == 0 and "Replayed 0 usage records; 1 already present" in out
    rollup = day_rollup(settings, "key_dev", "2025-06-02", "openai/text-embedding-3-small")
    assert rollup is not None and rollup["requests"]["N"] == "1" and rollup["tokens"]["N"] == "7"


def test_replay_reports_damaged_lines_and_keeps_going(
    aws: None, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = json.dumps({"message": "usage_replay", "usage_replay": True, "record": vars_of(record("req-good"))})
    no_key = json.dumps({"message": "usage_replay", "usage_replay": True, "record": vars_of(record(key_id=""))})
    export = tmp_path / "export.log"
    export.write_text(
        "\n".join(
            [
                good[:40],  # truncated by an export
                '{"message": "usage_replay", "usage_replay": true, "record": {"tokens": "many"}}',
                no_key,
                '{"message": "request", "status": 200}',
                "plain text mentioning usage_replay",
                good,
            ]
        )
        + "\n"
    )
    code, out, err = run_cli(capsys, "usage", "replay", str(export))
    assert code == 1  # damaged lines need a look
    assert "Replayed 1 usage records; 0 already present (not counted again); 2 lines skipped" in out
    assert "3 replay lines could not be read (lines 1, 2, 3)" in err
    assert [r["request_id"]["S"] for r in usage_records(settings)] == ["req-good"]


def test_replay_cli_errors(aws: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "usage", "replay", str(tmp_path / "missing.log"))
    assert code == 1 and "cannot read" in err
    with pytest.raises(SystemExit) as exit_:
        main(["usage"])
    assert exit_.value.code == 2 and "--key ID is required" in capsys.readouterr().err


def test_parse_replay_line_round_trips_every_field() -> None:
    original = record(estimated=True, search_units=3, status=502)
    line = "2025-06-02T10:11:12Z " + json.dumps(
        {"usage_replay": True, "record": vars_of(original), "x": "usage_replay"}
    )
    assert parse_replay_line(line) == original
    assert parse_replay_line('{"message": "request"}') is None
    assert parse_replay_line(json.dumps({"message": "usage_replay", "usage_replay": False})) is None


def vars_of(r: UsageRecord) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(r)


def test_an_unknown_model_id_is_logged_bounded(aws: None, settings: Settings) -> None:
    writes = FaultyUsageWrites(boto3.client("dynamodb"), always=throttled("ValidationException"))
    meter = faulty_meter(settings, writes, known_models={"openai/text-embedding-3-small"})
    with captured_logs() as logs:
        meter.record(record("req-a", model="m" * 10_000))
        meter.record(record("req-b"))
    unknown, known = replay_lines(logs.getvalue())
    assert unknown["record"]["model"] == "m" * 128  # caller input: bounded, as in the request log
    assert known["record"]["model"] == "openai/text-embedding-3-small"


def test_a_replayed_older_record_counts_but_leaves_last_used_alone(
    aws: None, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stores = Stores(settings)
    older = record("req-older", timestamp="2025-06-02T09:00:00.000+00:00")
    writes = FaultyUsageWrites(boto3.client("dynamodb"), always=throttled())
    with captured_logs() as logs:
        faulty_meter(settings, writes).record(older)  # lost for now: one replay line
    assert Meter(stores, 90).record(record("req-newer")) is True  # 10:11:12, answered after the failure
    assert stores.last_used("key_dev") == "2025-06-02T10:11:12.345+00:00"
    export = tmp_path / "export.log"
    export.write_text(logs.getvalue())
    code, out, _ = run_cli(capsys, "usage", "replay", str(export))
    assert code == 0 and "Replayed 1 usage records" in out
    rollup = day_rollup(settings, "key_dev", "2025-06-02", "openai/text-embedding-3-small")
    assert rollup is not None and rollup["requests"]["N"] == "2"  # the replayed request is counted...
    assert stores.last_used("key_dev") == "2025-06-02T10:11:12.345+00:00"  # ...without moving last use back
