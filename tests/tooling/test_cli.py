"""The ``embedrank`` admin CLI end to end against moto: keys, plans, usage."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from starlette.datastructures import Headers

from conftest import run_cli
from embedrank.config import Settings
from embedrank.domain.auth import Authenticator, hash_key
from embedrank.domain.records import UsageRecord
from embedrank.domain.usage import Meter
from embedrank.errors import AuthenticationError
from embedrank.store.dynamo import Stores
from embedrank_tools.cli import main


def created_key(out: str) -> tuple[str, str]:
    first, key = out.strip().splitlines()
    return first.split()[2], key


def test_key_lifecycle(aws: None, settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    stores = Stores(settings)
    code, out, _ = run_cli(capsys, "keys", "create", "--plan", "premium", "--name", "ci bot")
    assert code == 0
    key_id, key = created_key(out)
    assert key.startswith("er-") and len(key) >= 3 + 43
    found = stores.find_key(key_id)
    assert found is not None and found[0] == hash_key(key) and found[1].plan == "premium"
    assert Authenticator(stores, 0).authenticate(Headers({"x-api-key": key})).plan.name == "premium"

    # keys list: ids, names, plans, status, created, last used; never a key.
    Meter(stores, 90).record(
        UsageRecord(
            "r1",
            key_id,
            "2025-04-05T06:07:08.000+00:00",
            "embeddings",
            "openai/text-embedding-3-small",
            "openai",
            200,
            3.0,
            tokens=10,
            cost=2e-7,
        )
    )
    code, out, _ = run_cli(capsys, "keys", "list")
    assert code == 0 and key not in out
    line = next(row for row in out.splitlines() if row.startswith(key_id))
    assert "ci bot" in line and "premium" in line and "active" in line and "2025-04-05T06:07:08.000+00:00" in line
    assert any(row.startswith("key_dev") and row.rstrip().endswith("-") for row in out.splitlines())  # never used

    # rotate: new secret, same id, plan and usage; the old key is gone.
    code, out, _ = run_cli(capsys, "keys", "rotate", key_id)
    assert code == 0
    new_key = out.strip().splitlines()[-1]
    assert new_key != key and new_key.startswith("er-")
    assert stores.get_key(hash_key(key)) is None
    rotated = stores.get_key(hash_key(new_key))
    assert rotated is not None and (rotated.key_id, rotated.plan) == (key_id, "premium")
    code, out, _ = run_cli(capsys, "usage", "--key", key_id, "--month", "2025-04")
    assert code == 0 and "openai/text-embedding-3-small" in out
    assert out.splitlines()[-1].split()[:4] == ["TOTAL", "1", "0", "10"]

    # set-plan, revoke.
    assert run_cli(capsys, "keys", "set-plan", key_id, "max")[0] == 0
    assert stores.get_key(hash_key(new_key)).plan == "max"  # type: ignore[union-attr]
    code, _, err = run_cli(capsys, "keys", "set-plan", key_id, "platinum")
    assert code == 1 and "No plan named 'platinum'" in err and "premium" in err
    assert run_cli(capsys, "keys", "revoke", key_id)[0] == 0
    with pytest.raises(AuthenticationError):
        Authenticator(stores, 0).authenticate(Headers({"x-api-key": new_key}))
    code, _, err = run_cli(capsys, "keys", "rotate", key_id)
    assert code == 1 and "revoked" in err
    code, _, err = run_cli(capsys, "keys", "revoke", "key_missing")
    assert code == 1 and "No key with id 'key_missing'" in err


def test_create_needs_a_known_plan(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "keys", "create", "--plan", "gold", "--name", "x")
    assert code == 1 and out == "" and "No plan named 'gold'" in err


def test_plans_seed_list_show(aws: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "plans", "seed")
    assert code == 0 and "free, premium, max, ultra" in out
    seed = tmp_path / "plans.json"
    plan: dict[str, Any] = {
        "name": "team",
        "allowed_models": ["openai/text-embedding-3-small"],
        "limits": {"requests_per_minute": 7},
        "monthly_budget": 12.5,
    }
    seed.write_text(json.dumps({"plans": [plan]}))
    assert run_cli(capsys, "plans", "seed", str(seed))[0] == 0
    code, out, _ = run_cli(capsys, "plans", "list")
    assert code == 0
    rows = {row.split()[0]: row.split() for row in out.splitlines()[1:]}
    assert set(rows) == {"free", "premium", "max", "ultra", "team"}
    assert rows["premium"][1:4] == ["14", "100", "1000000"] and rows["team"][1:] == ["1", "7", "-", "12.5"]
    code, out, _ = run_cli(capsys, "plans", "show", "premium")
    assert code == 0 and "requests_per_hour: 500" in out and "route/cohere-embed-v3-english-3" in out
    assert "monthly budget (USD): 50" in out
    assert run_cli(capsys, "plans", "show", "nope")[0] == 1

    seed.write_text(json.dumps({"plans": [{**plan, "limits": {"request_per_minute": 7}}]}))  # a typo
    code, _, err = run_cli(capsys, "plans", "seed", str(seed))
    assert code == 1 and "request_per_minute" in err


def test_usage_rejects_bad_months_and_unknown_keys(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["usage", "--key", "key_dev", "--month", "2025-13"])
    assert info.value.code == 2
    assert "YYYY-MM" in capsys.readouterr().err
    assert run_cli(capsys, "usage", "--key", "key_nobody")[0] == 1
    code, out, _ = run_cli(capsys, "usage", "--key", "key_dev")
    assert code == 0 and datetime.now(UTC).strftime("%Y-%m") in out and "TOTAL" in out


def test_an_unreachable_dynamodb_is_one_clean_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    # given DynamoDB's endpoint is a port nothing listens on
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", f"http://127.0.0.1:{port}")
    # when the CLI reads a plan, then it says why in one line, botocore's own, and exits 1
    code, _, err = run_cli(capsys, "plans", "show", "premium")
    assert code == 1 and err.startswith("embedrank: AWS error: Could not connect to the endpoint URL")
    assert "Traceback" not in err


def test_plans_seed_takes_the_embedding_cache_fields(
    aws: None, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a plan that turns the cache on, shared by the plan's keys
    seed = tmp_path / "plans.json"
    plan = {"name": "indexing", "allowed_models": "all", "embedding_cache_days": 30, "embedding_cache_scope": "plan"}
    seed.write_text(json.dumps({"plans": [plan]}))
    # when it is seeded, then the store holds it, and `plans show` says so
    assert run_cli(capsys, "plans", "seed", str(seed))[0] == 0
    stored = Stores(settings).get_plan("indexing")
    assert stored is not None and (stored.embedding_cache_days, stored.embedding_cache_scope) == (30, "plan")
    code, out, _ = run_cli(capsys, "plans", "show", "indexing")
    assert code == 0 and "embedding cache: 30 days, shared per plan" in out
    # and the seeded plans keep it off
    assert "embedding cache: off" in run_cli(capsys, "plans", "show", "ultra")[1]


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"embedding_cache_days": -1}, "embedding_cache_days is a whole number of days from 0 (off) to 3650"),
        ({"embedding_cache_days": "30"}, "got '30'"),
        ({"embedding_cache_days": True}, "got True"),
        ({"embedding_cache_days": 1.5}, "got 1.5"),
        ({"embedding_cache_days": 100_000}, "got 100000"),
        ({"embedding_cache_scope": "tenant"}, 'embedding_cache_scope is "key"'),
    ],
)
def test_plans_seed_refuses_bad_cache_fields(
    aws: None, tmp_path: Path, capsys: pytest.CaptureFixture[str], fields: dict[str, Any], says: str
) -> None:
    seed = tmp_path / "plans.json"
    seed.write_text(json.dumps({"plans": [{"name": "bad", "allowed_models": "all", **fields}]}))
    code, _, err = run_cli(capsys, "plans", "seed", str(seed))
    assert code != 0 and says in err and "Traceback" not in err


def test_files_import_hands_an_s3_object_over_as_a_keys_batch_input(
    aws: None, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    import boto3

    # given a JSONL object in another bucket of the account
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="team-corpus")
    request = {"model": "openai/text-embedding-3-small", "input": ["x"]}
    body = json.dumps({"custom_id": "a", "method": "POST", "url": "/v1/embeddings", "body": request}).encode() + b"\n"
    s3.put_object(Bucket="team-corpus", Key="exports/chunks.jsonl", Body=body)
    # when the operator imports it for a key
    code, out, _ = run_cli(capsys, "files", "import", "--key", "key_dev", "s3://team-corpus/exports/chunks.jsonl")
    # then the key owns a batch input file with the same bytes
    assert code == 0
    file_id = out.split()[3]
    from embedrank.store.dynamo import Stores
    from embedrank.store.jobs import JobStore

    f = JobStore(Stores(settings)).get_file("key_dev", file_id)
    assert f is not None and f.bytes == len(body) and f.filename == "chunks.jsonl" and f.purpose == "batch"
    assert s3.get_object(Bucket=settings.files_bucket, Key=f.object_key)["Body"].read() == body
    # and a bad URL or an unknown key is one line, no traceback
    assert run_cli(capsys, "files", "import", "--key", "key_dev", "team-corpus/x")[0] == 1
    assert run_cli(capsys, "files", "import", "--key", "key_nope", "s3://team-corpus/x")[0] == 1
