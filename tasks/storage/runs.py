"""The `runs`, `ingest_errors` and `loaded_batches` tables: a run's own record, its error rows,
and which staged batches are loaded."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Sequence
from typing import Any

import duckdb
import pyarrow as pa

from newsflow.schemas.models import IngestErrorRecord, RunCounts, StagedRef, new_run_id, utcnow
from newsflow.tasks.storage.articles import TIMESTAMP
from newsflow.tasks.storage.store import Database
from newsflow.tasks.storage.transaction import transaction


def start_run(db: Database, flow: str, parameters: dict[str, Any]) -> str:
    """A `runs` row in state running; runs of dead processes on this host become crashed."""
    run_id = new_run_id()
    host = socket.gethostname()
    with db.session() as con, transaction(con):
        for other_id, pid in con.execute(
            "SELECT run_id, pid FROM runs WHERE status = 'running' AND hostname = ?", [host]
        ).fetchall():
            if pid is None or not pid_alive(pid):
                con.execute("UPDATE runs SET status = 'crashed' WHERE run_id = ?", [other_id])
        con.execute(
            "INSERT INTO runs (run_id, flow, started_at, status, pid, hostname, parameters) "
            "VALUES (?, ?, ?, 'running', ?, ?, ?)",
            [run_id, flow, utcnow(), os.getpid(), host, json.dumps(parameters, default=str)],
        )
    return run_id


def pid_alive(pid: int) -> bool:
    """Whether a process of this machine runs under that id (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def finish_run(db: Database, run_id: str, counts: RunCounts, status: str = "completed") -> None:
    fields = RunCounts.model_fields
    assignments = ", ".join(f"{f} = ?" for f in fields)
    with db.session() as con, transaction(con):
        con.execute(
            f"UPDATE runs SET finished_at = ?, status = ?, {assignments} WHERE run_id = ?",
            [utcnow(), status, *(getattr(counts, f) for f in fields), run_id],
        )
        # Feeds claimed but never recorded (a task that raised): due again for the next run.
        con.execute("UPDATE feeds SET claimed_by = NULL WHERE claimed_by = ?", [run_id])


def record_errors(
    con: duckdb.DuckDBPyConnection, run_id: str | None, errors: Sequence[IngestErrorRecord]
) -> None:
    if not errors:
        return
    table = pa.table(
        {
            "run_id": [run_id] * len(errors),
            "occurred_at": pa.array([e.occurred_at for e in errors], TIMESTAMP),
            "stage": [e.stage for e in errors],
            "url": [e.url for e in errors],
            "kind": [e.kind for e in errors],
            "message": [e.message[:2000] for e in errors],
            "feed_url": [e.feed_url for e in errors],
        }
    )
    con.register("batch_errors", table)
    try:
        con.execute("INSERT INTO ingest_errors BY NAME SELECT * FROM batch_errors")
    finally:
        con.unregister("batch_errors")


def record_loaded_batches(
    con: duckdb.DuckDBPyConnection, staged: Sequence[tuple[StagedRef, str]], run_id: str
) -> set[str]:
    """Mark staged batches (each with its feed's URL) loaded, in one statement; returns the ids
    of those that were not loaded already. Call inside the transaction that writes their rows,
    so a loader killed midway has loaded each batch wholly or not at all."""
    if not staged:
        return set()
    now = utcnow()
    table = pa.table(
        {
            "batch_id": [ref.batch_id for ref, _ in staged],
            "feed_url": [feed_url for _, feed_url in staged],
            "part": [ref.part for ref, _ in staged],
            "load_run_id": [ref.load_run_id for ref, _ in staged],
        }
    )
    con.register("batch_loaded", table)
    try:
        inserted = con.execute(
            "INSERT INTO loaded_batches (batch_id, run_id, feed_url, part, loaded_at, load_run_id) "
            "SELECT batch_id, $run, feed_url, part, $now, load_run_id FROM batch_loaded "
            "ON CONFLICT DO NOTHING RETURNING batch_id",
            {"run": run_id, "now": now},
        ).fetchall()
    finally:
        con.unregister("batch_loaded")
    return {batch_id for (batch_id,) in inserted}


def loaded_batch_ids(con: duckdb.DuckDBPyConnection, batch_ids: Sequence[str]) -> set[str]:
    """Those of the staged batch ids that are loaded already."""
    rows = con.execute(
        "SELECT batch_id FROM loaded_batches WHERE batch_id IN (SELECT unnest(?::VARCHAR[]))",
        [list(batch_ids)],
    ).fetchall()
    return {r[0] for r in rows}
