"""`cronframework history JOB [-o json] [--limit N]`: launch records, newest first, with what the backend says now.

JSON keys are those of records.LaunchRecord (docs/operations.md): `outcome` says whether the launch started, `result`
how its task ended (`succeeded`, `failed`, `timed_out`, `lost`) with `exit_code`, `result_reason`, `started_at`,
`ended_at` and `duration`. A launch whose result is still to come also carries `lookup` {state, exit_code, reason}:
the backend's view of it now (a read-only lookup; `--no-lookup` skips it). With --addr the records come from a
replica's API (`GET /v1/jobs/{job}/history`), without `lookup`.
"""

from __future__ import annotations

import argparse
from typing import Any

from cronframework.adapters import BackendSet
from cronframework.cli.common import (
    add_output_args,
    add_remote_args,
    add_store_args,
    backend_set,
    command,
    open_store,
    positive_int,
    print_json,
    require_job,
    result_text,
    wants_json,
)
from cronframework.cli.remote import connect, job_path
from cronframework.ops.status import LAUNCHED, backend_result
from cronframework.records import LaunchRecord


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = command(
        sub,
        "history",
        "list a job's launch records, newest first, with each launch's result",
        ["cronframework history nightly-report --limit 5", "cronframework history nightly-report -o json | jq ."],
    )
    parser.add_argument("job", metavar="JOB")
    add_store_args(parser)
    add_remote_args(parser)
    parser.add_argument("--limit", type=positive_int, default=20, metavar="N", help="newest N records (default 20)")
    add_output_args(parser)
    parser.add_argument("--no-lookup", action="store_true", help="do not ask the backend about launches still running")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    remote = connect(args)
    rows = remote.get(job_path(args.job, "history"), limit=args.limit) if remote is not None else _local(args)
    if wants_json(args):
        print_json(rows)
        return 0
    print(f"{'LAUNCH':45} {'SCHEDULED':27} {'OUTCOME':16} {'RESULT':18} {'DURATION':>9}  REASON")
    for row in rows:
        outcome = row["outcome"] or row["state"]
        duration = f"{row['duration']:.1f}s" if row.get("duration") is not None else "-"
        reason = row.get("result_reason") or row["reason"] or ""
        print(f"{row['name']:45} {row['scheduled']:27} {outcome:16} {result_text(row):18} {duration:>9}  {reason}")
    return 0


def _local(args: argparse.Namespace) -> list[dict[str, Any]]:
    store = open_store(args)
    try:
        records = store.history(args.job, limit=args.limit)
        # a deleted job's records are still its history; a name with neither is a typo
        stored = require_job(store, args.job) if not records else store.read_specs().get(args.job)
    finally:
        store.close()
    backend_name = str(stored.document.get("backend", "process")) if stored else None
    backends = None if args.no_lookup or backend_name is None else backend_set(args)  # adapters load on first use
    return [_row(record, backends, backend_name) for record in records]


def _row(record: LaunchRecord, backends: BackendSet | None, backend_name: str | None) -> dict[str, Any]:
    row = record.to_dict()
    if record.outcome in LAUNCHED and record.result is None and backends is not None and backend_name:
        row["lookup"] = backend_result(backends, backend_name, record.name)
    return row
