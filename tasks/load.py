"""Load: every write to the database goes through here, in bulk and in short transactions.

Articles go in as an Arrow table registered with DuckDB and one `INSERT … ON CONFLICT`, never
row by row (executemany is tens of times slower, DESIGN.md). A batch is one transaction, so a
killed run leaves whole batches or nothing of them.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import duckdb
import pyarrow as pa

from schemas.errors import ConfigError
from schemas.models import Article, FeedBatch, FeedCheck, IngestErrorRecord, RunCounts, utcnow
from tasks.dedup import LayerCounts, cluster_new_articles, unique_articles
from tasks.fingerprint import fingerprint_articles
from tasks.health import FeedState, next_state, read_feed_states
from tasks.store import Database

LOGGER = logging.getLogger(__name__)

_TS = pa.timestamp("us", tz="UTC")
ARTICLE_SCHEMA = pa.schema(
    [
        ("article_id", pa.string()),
        ("url", pa.string()),
        ("canonical_url", pa.string()),
        ("guid", pa.string()),
        ("feed_url", pa.string()),
        ("source", pa.string()),
        ("title", pa.string()),
        ("author", pa.string()),
        ("published_at", _TS),
        ("updated_at", _TS),
        ("categories", pa.list_(pa.string())),
        ("tags", pa.list_(pa.string())),
        ("image_url", pa.string()),
        ("thumbnail_url", pa.string()),
        ("comments", pa.bool_()),
        ("language", pa.string()),
        ("summary", pa.string()),
        ("body_text", pa.string()),
        ("content_hash", pa.string()),
        ("story_id", pa.string()),
        ("duplicate_of", pa.string()),
        ("extra", pa.string()),
        ("first_seen_at", _TS),
        ("last_seen_at", _TS),
    ]
)
_ARTICLE_COLUMNS = [f.name for f in ARTICLE_SCHEMA]
# On conflict the stored row keeps its identity and first sighting; content is refreshed.
_KEEP_ON_CONFLICT = {"article_id", "canonical_url", "first_seen_at", "story_id", "duplicate_of"}
_UPSERT_ARTICLES = (
    f"INSERT INTO articles ({', '.join(_ARTICLE_COLUMNS)}) "
    f"SELECT {', '.join(c if c != 'extra' else 'extra::JSON' for c in _ARTICLE_COLUMNS)} "
    "FROM batch_articles ON CONFLICT (article_id) DO UPDATE SET "
    + ", ".join(
        f"{c} = coalesce(excluded.{c}, articles.{c})"
        for c in _ARTICLE_COLUMNS
        if c not in _KEEP_ON_CONFLICT
    )
)


def articles_table(articles: Sequence[Article]) -> pa.Table:
    rows: dict[str, list[Any]] = {c: [] for c in _ARTICLE_COLUMNS}
    for a in articles:
        record = a.model_dump()
        record["extra"] = json.dumps(a.extra, ensure_ascii=False, default=str) if a.extra else None
        for c in _ARTICLE_COLUMNS:
            rows[c].append(record[c])
    return pa.table(rows, schema=ARTICLE_SCHEMA)


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def upsert_articles(con: duckdb.DuckDBPyConnection, articles: Sequence[Article]) -> tuple[int, int]:
    """Insert new articles and refresh known ones; returns (new, updated). Call in a transaction."""
    if not articles:
        return 0, 0
    table = articles_table(articles)
    con.register("batch_articles", table)
    try:
        row = con.execute(
            "SELECT count(*) FROM batch_articles b JOIN articles a USING (article_id)"
        ).fetchone()
        updated = int(row[0]) if row else 0
        con.execute(_UPSERT_ARTICLES)
    finally:
        con.unregister("batch_articles")
    return len(articles) - updated, updated


def record_feed_refs(
    con: duckdb.DuckDBPyConnection, feed_url: str, refs: Sequence[tuple[str, str | None]]
) -> None:
    """Remember that this feed carried these articles (and under which GUID)."""
    if not refs:
        return
    now = utcnow()
    table = pa.table(
        {
            "article_id": [r[0] for r in refs],
            "feed_url": [feed_url] * len(refs),
            "guid": [r[1] for r in refs],
            "first_seen_at": pa.array([now] * len(refs), _TS),
        }
    )
    con.register("batch_refs", table)
    try:
        con.execute(
            "INSERT INTO article_feeds SELECT DISTINCT ON (article_id) * FROM batch_refs "
            "ON CONFLICT (article_id, feed_url) DO UPDATE SET guid = coalesce(excluded.guid, "
            "article_feeds.guid)"
        )
        con.execute(
            "UPDATE articles SET last_seen_at = ? WHERE article_id IN "
            "(SELECT article_id FROM batch_refs)",
            [now],
        )
    finally:
        con.unregister("batch_refs")


def record_errors(
    con: duckdb.DuckDBPyConnection, run_id: str | None, errors: Sequence[IngestErrorRecord]
) -> None:
    if not errors:
        return
    table = pa.table(
        {
            "run_id": [run_id] * len(errors),
            "occurred_at": pa.array([e.occurred_at for e in errors], _TS),
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


def record_feed_check(
    con: duckdb.DuckDBPyConnection,
    check: FeedCheck,
    *,
    name: str | None,
    source: str | None,
    default_interval: float,
) -> FeedState:
    previous = read_feed_states(con).get(check.url)
    state = next_state(check, previous, default_interval)
    con.execute(
        """
        INSERT INTO feeds (url, name, source, title, etag, last_modified, status,
            consecutive_failures, last_checked_at, last_success_at, next_check_at, last_error,
            last_error_kind, last_status_code, poll_interval_s, last_new_items_at, articles_total)
        VALUES ($url, $name, $source, $title, $etag, $lm, $status, $failures, $checked,
            CASE WHEN $ok THEN $checked END, $next, $error, $kind, $code, $interval,
            CASE WHEN $new > 0 THEN $checked END, $new)
        ON CONFLICT (url) DO UPDATE SET
            name = coalesce(excluded.name, feeds.name),
            source = coalesce(excluded.source, feeds.source),
            title = coalesce(excluded.title, feeds.title),
            etag = excluded.etag,
            last_modified = excluded.last_modified,
            status = excluded.status,
            consecutive_failures = excluded.consecutive_failures,
            last_checked_at = excluded.last_checked_at,
            last_success_at = coalesce(excluded.last_success_at, feeds.last_success_at),
            next_check_at = excluded.next_check_at,
            last_error = CASE WHEN $ok THEN feeds.last_error ELSE excluded.last_error END,
            last_error_kind = CASE WHEN $ok THEN feeds.last_error_kind
                                   ELSE excluded.last_error_kind END,
            last_status_code = excluded.last_status_code,
            poll_interval_s = excluded.poll_interval_s,
            last_new_items_at = coalesce(excluded.last_new_items_at, feeds.last_new_items_at),
            articles_total = feeds.articles_total + excluded.articles_total
        """,
        {
            "url": check.url,
            "name": name,
            "source": source,
            "title": check.title,
            "etag": state.etag,
            "lm": state.last_modified,
            "status": state.status,
            "failures": state.consecutive_failures,
            "checked": check.checked_at,
            "ok": check.ok,
            "next": state.next_check_at,
            "error": check.error,
            "kind": check.error_kind,
            "code": check.status_code,
            "interval": state.poll_interval_s,
            "new": check.entries_new,
        },
    )
    return state


def set_feed_status(con: duckdb.DuckDBPyConnection, url: str, status: str) -> None:
    """Re-enable (status active, due now) or disable a feed by hand."""
    found = con.execute(
        "UPDATE feeds SET status = ?, consecutive_failures = 0, next_check_at = NULL "
        "WHERE url = ? RETURNING url",
        [status, url],
    ).fetchall()
    if not found:
        raise ConfigError(f"no such feed in the database: {url}")


def load_batch(
    db: Database,
    run_id: str,
    batch: FeedBatch,
    *,
    name: str | None = None,
    source: str | None = None,
    default_interval: float = 1800.0,
) -> RunCounts:
    """Write one feed's contribution in one transaction; returns what it added."""
    articles = unique_articles(batch.articles)
    # Pure CPU work, done before taking the database so that other writers wait less.
    prints = fingerprint_articles(articles)
    with db.session() as con, transaction(con):
        layers = cluster_new_articles(con, articles, prints)
        new, updated = upsert_articles(con, articles)
        refs = [(a.article_id, a.guid) for a in articles] + list(batch.seen_again)
        record_feed_refs(con, batch.feed_url, refs)
        batch.check.entries_new = new
        record_feed_check(
            con, batch.check, name=name, source=source, default_interval=default_interval
        )
        record_errors(con, run_id, batch.errors)
    return RunCounts(
        feeds_checked=1,
        feeds_failed=0 if batch.check.ok else 1,
        feeds_not_modified=1 if batch.check.status_code == 304 else 0,
        entries_seen=batch.check.entries_seen,
        pages_downloaded=batch.pages_downloaded,
        articles_new=new,
        articles_updated=updated,
        errors=len(batch.errors),
        **duplicate_counts(batch, len(batch.articles) - len(articles), layers),
    )


def duplicate_counts(batch: FeedBatch, repeated: int, layers: LayerCounts) -> dict[str, int]:
    """The `dup_*` counters of a batch and their sum; `repeated` are items of the batch that
    share a canonical URL with an earlier one."""
    counts = {
        "dup_url": len(batch.seen_again) - batch.seen_again_by_guid + repeated,
        "dup_guid": batch.seen_again_by_guid,
        "dup_title": layers.title,
        "dup_body": layers.body,
        "dup_near": layers.near,
    }
    return {"duplicates": sum(counts.values()), **counts}


# --- runs -----------------------------------------------------------------------------------


def start_run(db: Database, flow: str, parameters: dict[str, Any]) -> str:
    """A `runs` row in state running; runs of dead processes on this host become crashed."""
    run_id = uuid.uuid4().hex[:16]
    host = socket.gethostname()
    with db.session() as con, transaction(con):
        for other_id, pid in con.execute(
            "SELECT run_id, pid FROM runs WHERE status = 'running' AND hostname = ?", [host]
        ).fetchall():
            if pid is None or not _pid_alive(pid):
                con.execute("UPDATE runs SET status = 'crashed' WHERE run_id = ?", [other_id])
        con.execute(
            "INSERT INTO runs (run_id, flow, started_at, status, pid, hostname, parameters) "
            "VALUES (?, ?, ?, 'running', ?, ?, ?)",
            [run_id, flow, utcnow(), os.getpid(), host, json.dumps(parameters, default=str)],
        )
    return run_id


def _pid_alive(pid: int) -> bool:
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
    with db.session() as con:
        con.execute(
            f"UPDATE runs SET finished_at = ?, status = ?, {assignments} WHERE run_id = ?",
            [utcnow(), status, *(getattr(counts, f) for f in fields), run_id],
        )
