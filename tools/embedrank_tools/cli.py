"""``embedrank``: the operator's CLI for keys, plans and usage.

Tables come from ``KEYS_TABLE``/``PLANS_TABLE``/``USAGE_TABLE`` (the stack outputs), DynamoDB from the standard AWS
configuration: ``AWS_ENDPOINT_URL=http://127.0.0.1:4566`` reaches the local stack of ``make serve``. A key is
printed once, by ``keys create`` and ``keys rotate``; nothing else ever shows one.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from embedrank.config import Settings
from embedrank.domain.usage import Meter, totals
from embedrank.errors import StoreUnavailable
from embedrank.store.dynamo import Stores

from . import accounts
from .accounts import AccountError
from .replay import ReplayReport, replay

MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def _table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    cells = [[str(c) for c in header], *([("-" if c is None else str(c)) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells)


def _month(value: str) -> str:
    if not MONTH.match(value):
        raise argparse.ArgumentTypeError(f"'{value}' is not a month as YYYY-MM")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="embedrank", description="Embedrank admin: keys, plans and usage.")
    groups = parser.add_subparsers(dest="group", required=True)

    keys = groups.add_parser("keys", help="API keys").add_subparsers(dest="action", required=True)
    create = keys.add_parser("create", help="create a key and print it (once)")
    create.add_argument("--plan", required=True)
    create.add_argument("--name", required=True)
    keys.add_parser("list", help="list keys (never the keys themselves)")
    for action, text in (("revoke", "revoke a key"), ("rotate", "replace a key's secret, keeping id, plan, usage")):
        keys.add_parser(action, help=text).add_argument("key_id", metavar="ID")
    set_plan = keys.add_parser("set-plan", help="move a key to another plan")
    set_plan.add_argument("key_id", metavar="ID")
    set_plan.add_argument("plan", metavar="PLAN")

    plans = groups.add_parser("plans", help="plan tiers").add_subparsers(dest="action", required=True)
    seed = plans.add_parser("seed", help="create or replace the plans in FILE")
    seed.add_argument("file", nargs="?", type=Path, default=accounts.PLANS_SEED, metavar="FILE")
    plans.add_parser("list", help="list plans")
    plans.add_parser("show", help="one plan in full").add_argument("name", metavar="NAME")

    usage = groups.add_parser("usage", help="a key's usage for one month, by model (--key ID), or: usage replay FILE")
    # --key is checked in main: `usage replay` needs none, and argparse cannot make it conditional.
    usage.add_argument("--key", dest="key_id", metavar="ID", help="the key whose month to report")
    usage.add_argument("--month", type=_month, default=None, help="YYYY-MM (default: this month, UTC)")
    replay = usage.add_subparsers(dest="action").add_parser(
        "replay", help="re-ingest usage records logged as usage_replay lines (idempotent)"
    )
    replay.add_argument("file", type=Path, metavar="FILE", help="log lines, e.g. exported from CloudWatch; - for stdin")

    files = groups.add_parser("files", help="batch jobs' files").add_subparsers(dest="action", required=True)
    hand = files.add_parser("import", help="hand an S3 object of this account over as a key's batch input file")
    hand.add_argument("--key", dest="key_id", required=True, metavar="ID", help="the key that will own the file")
    hand.add_argument("source", metavar="s3://BUCKET/KEY", help="a JSONL object; copied inside S3, never downloaded")
    return parser


def _keys(stores: Stores, args: argparse.Namespace) -> None:
    if args.action == "create":
        accounts.require_plan(stores, args.plan)
        key_id, key = accounts.create_key(stores, plan=args.plan, name=args.name)
        print(f"Created key {key_id} (name '{args.name}', plan '{args.plan}'). It is shown only this once:")
        print(key)
    elif args.action == "list":
        rows = [
            (i.record.key_id, i.record.name, i.record.plan, i.record.status, i.record.created, i.last_used)
            for i in accounts.list_keys(stores)
        ]
        print(_table(rows, ("ID", "NAME", "PLAN", "STATUS", "CREATED", "LAST USED")))
    elif args.action == "revoke":
        accounts.revoke_key(stores, args.key_id)
        print(
            f"Revoked {args.key_id}; it stops working within AUTH_CACHE_SECONDS ({stores.settings.auth_cache_ttl} s)."
        )
    elif args.action == "rotate":
        key = accounts.rotate_key(stores, args.key_id)
        print(f"Rotated {args.key_id}: the old key stops working within {stores.settings.auth_cache_ttl} s. New key:")
        print(key)
    else:
        record = accounts.set_plan(stores, args.key_id, args.plan)
        print(f"Key {record.key_id} is now on plan '{record.plan}'.")


def _plans(stores: Stores, args: argparse.Namespace) -> None:
    if args.action == "seed":
        names = accounts.seed_plans(stores, args.file)
        print(f"Seeded {len(names)} plans from {args.file}: {', '.join(names)}")
        return
    plans = sorted(stores.list_plans(), key=lambda p: p.name)
    if args.action == "list":
        rows = [
            (
                p.name,
                "all" if p.allowed_models == "all" else len(p.allowed_models),
                p.limits.get("requests_per_minute"),
                p.limits.get("tokens_per_minute"),
                p.monthly_budget,
            )
            for p in plans
        ]
        print(_table(rows, ("NAME", "MODELS", "REQ/MIN", "TOKENS/MIN", "BUDGET USD")))
        return
    plan = accounts.require_plan(stores, args.name)
    print(f"name: {plan.name}")
    if plan.description:
        print(f"description: {plan.description}")
    print(f"monthly budget (USD): {'none' if plan.monthly_budget is None else f'{plan.monthly_budget:g}'}")
    print("limits:" + "".join(f"\n  {k}: {v}" for k, v in sorted(plan.limits.items())))
    cache = plan.embedding_cache_days
    print(f"embedding cache: {f'{cache} days, shared per {plan.embedding_cache_scope}' if cache else 'off'}")
    models = ["all"] if plan.allowed_models == "all" else sorted(plan.allowed_models)
    print("models:" + "".join(f"\n  {m}" for m in models))


def _replay(stores: Stores, file: Path) -> int:
    from embedrank.domain.catalog import catalog

    meter = Meter(stores, stores.settings.usage_retention_days, catalog().model_ids())
    report = ReplayReport()
    failure: Exception | None = None
    try:
        if str(file) == "-":
            replay(meter, sys.stdin, report)
        else:
            with file.open(encoding="utf-8", errors="replace") as lines:
                replay(meter, lines, report)
    except OSError as exc:
        print(f"embedrank: cannot read {file}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # AWS, typically: report the progress so far; running it again is safe
        failure = exc
    print(
        f"Replayed {report.replayed} usage records; {report.present} already present (not counted again); "
        f"{report.skipped} lines skipped (not replay lines)."
    )
    if report.invalid:
        shown = ", ".join(str(n) for n in report.invalid[:20]) + (", ..." if len(report.invalid) > 20 else "")
        print(f"embedrank: {len(report.invalid)} replay lines could not be read (lines {shown})", file=sys.stderr)
    if failure is not None:
        print(
            f"embedrank: stopped by an error ({type(failure).__name__}: {failure}); running it again is safe",
            file=sys.stderr,
        )
    return 1 if failure is not None or report.invalid else 0


def _usage(stores: Stores, args: argparse.Namespace) -> None:
    accounts.require_key(stores, args.key_id)
    month = args.month or datetime.now(UTC).strftime("%Y-%m")
    rollups = stores.month_rollups(args.key_id, month)
    rows: list[tuple[Any, ...]] = [
        (r.model, r.requests, r.errors, r.tokens, r.search_units, f"{r.cost:.6f}") for r in rollups
    ]
    t = totals(rollups)
    rows.append(("TOTAL", t["requests"], t["errors"], t["tokens"], t["search_units"], f"{t['cost']:.6f}"))
    print(f"Usage of {args.key_id} in {month}:")
    print(_table(rows, ("MODEL", "REQUESTS", "ERRORS", "TOKENS", "SEARCH UNITS", "COST USD")))


def _files(stores: Stores, args: argparse.Namespace) -> None:
    from embedrank.api.app import Services

    accounts.require_key(stores, args.key_id)
    bucket, _, key = args.source.removeprefix("s3://").partition("/")
    if not args.source.startswith("s3://") or not bucket or not key:
        raise AccountError(f"Not an S3 URL: {args.source!r} (expected s3://BUCKET/KEY).")
    f = Services.build(stores.settings, stores=stores).jobs.import_file(args.key_id, bucket, key)
    print(f"Imported {args.source} as {f.id} ({f.bytes} bytes) for {args.key_id}: client.batches.create(")
    print(f'    input_file_id="{f.id}", endpoint="/v1/embeddings", completion_window="24h")  # with that key')


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    stores = Stores(Settings.from_env())
    if args.group == "usage" and args.action == "replay":
        return _replay(stores, args.file)
    if args.group == "usage" and args.key_id is None:
        parser.error("usage: --key ID is required (or: usage replay FILE)")
    try:
        {"keys": _keys, "plans": _plans, "usage": _usage, "files": _files}[args.group](stores, args)
    except AccountError as exc:
        print(f"embedrank: {exc}", file=sys.stderr)
        return 1
    except StoreUnavailable as exc:  # no credentials, no table, endpoint down: say so, no traceback
        print(f"embedrank: AWS error: {exc.__cause__ or exc.message}", file=sys.stderr)  # botocore's own words
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
