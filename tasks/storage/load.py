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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

import duckdb
import pyarrow as pa

from newsflow.schemas.config import FeedConfig
from newsflow.schemas.errors import ConfigError
from newsflow.schemas.models import (
    Article,
    ArticleBatch,
    FeedBatch,
    FeedCheck,
    IngestErrorRecord,
    RunCounts,
    StagedRef,
    new_run_id,
    utcnow,
)
from newsflow.tasks.coverage.tag import ArticleTags, Tagger, load_tagger, tag_tables
from newsflow.tasks.dedup.fingerprint import Fingerprint, fingerprint_articles
from newsflow.tasks.dedup.layers import LayerCounts, cluster_new_articles, unique_articles
from newsflow.tasks.sources.health import FeedState, due_feeds, next_state, read_feed_states
from newsflow.tasks.storage.store import Database

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
        ("body_source", pa.string()),
        ("published_precision", pa.string()),
        ("published_source", pa.string()),
        ("published_date", pa.date32()),
        ("origin_source", pa.string()),
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
# Stored rows that the upsert would leave as they are, the time of the sighting aside.
_UNCHANGED_ARTICLES = (
    "SELECT b.article_id FROM batch_articles b JOIN articles a USING (article_id) WHERE "
    + " AND ".join(
        f"coalesce(b.{c}{'::JSON' if c == 'extra' else ''}, a.{c}) IS NOT DISTINCT FROM a.{c}"
        for c in _ARTICLE_COLUMNS
        if c not in _KEEP_ON_CONFLICT | {"last_seen_at"}
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


def upsert_articles(
    con: duckdb.DuckDBPyConnection, articles: Sequence[Article]
) -> tuple[int, int, int]:
    """Insert new articles and refresh known ones; returns (new, updated, unchanged).

    "Updated" means the title or text changed; the same article again (another feed carrying
    it in the same run) is unchanged. Call in a transaction.
    """
    if not articles:
        return 0, 0, 0
    table = articles_table(articles)
    con.register("batch_articles", table)
    try:
        changed, known = con.execute(
            "SELECT count(*) FILTER (WHERE a.content_hash IS DISTINCT FROM b.content_hash "
            "OR a.title IS DISTINCT FROM b.title), count(*) "
            "FROM batch_articles b JOIN articles a USING (article_id)"
        ).fetchone() or (0, 0)
        con.execute(_UPSERT_ARTICLES)
    finally:
        con.unregister("batch_articles")
    return len(articles) - known, changed, known - changed


def stored_unchanged(con: duckdb.DuckDBPyConnection, articles: Sequence[Article]) -> set[str]:
    """Ids of the articles that are stored with these very values already."""
    if not articles:
        return set()
    con.register("batch_articles", articles_table(articles))
    try:
        return {row[0] for row in con.execute(_UNCHANGED_ARTICLES).fetchall()}
    finally:
        con.unregister("batch_articles")


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
    previous = read_feed_states(con, [check.url]).get(check.url)
    state = next_state(check, previous, default_interval)
    con.execute(
        """
        INSERT INTO feeds (url, name, source, title, etag, last_modified, status,
            consecutive_failures, last_checked_at, last_success_at, next_check_at, last_error,
            last_error_kind, last_status_code, poll_interval_s, poll_hint_s, retry_after_until,
            last_new_items_at, articles_total, claimed_by)
        VALUES ($url, $name, $source, $title, $etag, $lm, $status, $failures, $checked,
            CASE WHEN $ok THEN $checked END, $next, $error, $kind, $code, $interval, $hint,
            $retry_until, CASE WHEN $new > 0 THEN $checked END, $new, NULL)
        ON CONFLICT (url) DO UPDATE SET
            name = coalesce(excluded.name, feeds.name),
            source = coalesce(excluded.source, feeds.source),
            title = coalesce(excluded.title, feeds.title),
            etag = excluded.etag,
            last_modified = excluded.last_modified,
            -- disabled by hand while this check ran: stays disabled
            status = CASE WHEN feeds.status = 'disabled' THEN 'disabled' ELSE excluded.status END,
            consecutive_failures = excluded.consecutive_failures,
            last_checked_at = excluded.last_checked_at,
            last_success_at = coalesce(excluded.last_success_at, feeds.last_success_at),
            next_check_at = excluded.next_check_at,
            last_error = CASE WHEN $ok THEN feeds.last_error ELSE excluded.last_error END,
            last_error_kind = CASE WHEN $ok THEN feeds.last_error_kind
                                   ELSE excluded.last_error_kind END,
            last_status_code = excluded.last_status_code,
            poll_interval_s = excluded.poll_interval_s,
            poll_hint_s = excluded.poll_hint_s,
            retry_after_until = excluded.retry_after_until,
            claimed_by = NULL,
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
            "hint": state.poll_hint_s,
            "retry_until": state.retry_after_until,
            "new": check.entries_new,
        },
    )
    return state


def set_feed_status(con: duckdb.DuckDBPyConnection, feed: str, status: str) -> list[str]:
    """Re-enable (status active, due now) or disable a feed by hand, by URL or name; returns
    the URLs changed."""
    found = con.execute(
        "UPDATE feeds SET status = $status, consecutive_failures = 0, next_check_at = NULL "
        "WHERE url = $feed OR name = $feed RETURNING url",
        {"status": status, "feed": feed},
    ).fetchall()
    if not found:
        raise ConfigError(f"no such feed in the database: {feed} (see `newsflow feeds`)")
    return [url for (url,) in found]


class Claim(NamedTuple):
    feeds: list[FeedConfig]  # this run polls these
    states: dict[str, FeedState]
    busy: int  # due, but polled by another run that is still running


def claim_due_feeds(
    db: Database, run_id: str, feeds: Sequence[FeedConfig], *, force: bool
) -> Claim:
    """Claim the due feeds for this run, in one transaction under the writer lock.

    Overlapping runs (a scheduled one, a manual one) thus split the due feeds instead of each
    polling all of them: together they fetch and record every feed once. A claim lasts until
    the feed's check is recorded or the run finishes; the claim of a run that is no longer
    running (crashed: see start_run) is void.
    """
    with db.session() as con, transaction(con):
        states = read_feed_states(con)
        due = due_feeds(list(feeds), states, force=force)
        if due.ready:
            table = pa.table(
                {
                    "url": [f.url for f in due.ready],
                    "name": [f.name for f in due.ready],
                    "source": [f.source for f in due.ready],
                }
            )
            con.register("claimed_feeds", table)
            try:
                con.execute(
                    "INSERT INTO feeds (url, name, source, claimed_by) "
                    "SELECT url, name, source, $run FROM claimed_feeds "
                    "ON CONFLICT (url) DO UPDATE SET claimed_by = excluded.claimed_by",
                    {"run": run_id},
                )
            finally:
                con.unregister("claimed_feeds")
    return Claim(due.ready, states, len(due.busy))


def load_batch(
    db: Database,
    run_id: str,
    batch: FeedBatch,
    *,
    name: str | None = None,
    source: str | None = None,
    default_interval: float = 1800.0,
    tagger: Tagger | None = None,
    staged: StagedRef | None = None,
) -> RunCounts:
    """Write one feed's contribution in one transaction; returns what it added.

    New and updated articles are tagged for coverage analysis (default: the packaged lexicon
    and gazetteer); the tags are computed before the lock is taken and written with the
    articles, so a batch's articles never exist untagged. A `staged` batch is recorded as
    loaded in the same transaction, and one loaded before adds nothing (zero counts).
    """
    articles = unique_articles(batch.articles)
    tags = tag_articles(articles, tagger)
    prints = fingerprint_articles(articles)
    with db.session() as con, transaction(con):
        if staged is not None and not record_loaded_batch(con, staged, run_id, batch.feed_url):
            return RunCounts()
        counts = write_articles(
            con, run_id, batch.model_copy(update={"articles": articles}), tags, prints
        )
        batch.check.entries_new = counts.articles_new
        record_feed_check(
            con, batch.check, name=name, source=source, default_interval=default_interval
        )
    repeats = len(batch.articles) - len(articles)
    return counts + poll_counts(batch) + RunCounts(duplicates=repeats, dup_url=repeats)


def poll_counts(batch: FeedBatch) -> RunCounts:
    """What polling the feed itself counts for: checked, failed, unchanged, entries seen."""
    return RunCounts(
        feeds_checked=1,
        feeds_failed=0 if batch.check.ok else 1,
        feeds_not_modified=1 if batch.check.status_code == 304 else 0,
        entries_seen=batch.check.entries_seen,
    )


def record_loaded_batch(
    con: duckdb.DuckDBPyConnection, staged: StagedRef, run_id: str, feed_url: str
) -> bool:
    """Mark a staged batch loaded; False when it was already. Call inside the transaction that
    writes its rows, so a loader killed midway has loaded each batch wholly or not at all."""
    inserted = con.execute(
        "INSERT INTO loaded_batches (batch_id, run_id, feed_url, part, loaded_at, load_run_id) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING batch_id",
        [staged.batch_id, run_id, feed_url, staged.part, utcnow(), staged.load_run_id],
    ).fetchall()
    return bool(inserted)


def loaded_batch_ids(con: duckdb.DuckDBPyConnection, batch_ids: Sequence[str]) -> set[str]:
    """Those of the staged batch ids that are loaded already."""
    rows = con.execute(
        "SELECT batch_id FROM loaded_batches WHERE batch_id IN (SELECT unnest(?::VARCHAR[]))",
        [list(batch_ids)],
    ).fetchall()
    return {r[0] for r in rows}


def load_articles(
    db: Database, run_id: str, batch: ArticleBatch, tagger: Tagger | None = None
) -> RunCounts:
    """Write a batch that polled no feed (a backfill's) in one transaction, tagged as
    load_batch tags.

    Articles stored with the same values already are not written (or tagged) again and count
    as duplicates, as do repeats within the batch, so a second backfill of the same archive
    reports nothing new or updated.
    """
    articles = unique_articles(batch.articles)
    with db.session() as con:
        unchanged = stored_unchanged(con, articles)
    changed = [a for a in articles if a.article_id not in unchanged]
    again = [(a.article_id, a.guid) for a in articles if a.article_id in unchanged]
    tags = tag_articles(changed, tagger)
    prints = fingerprint_articles(changed)
    with db.session() as con, transaction(con):
        counts = write_articles(
            con,
            run_id,
            batch.model_copy(
                update={"articles": changed, "seen_again": [*batch.seen_again, *again]}
            ),
            tags,
            prints,
        )
    repeats = len(batch.articles) - len(articles)
    return counts + RunCounts(entries_seen=batch.entries_seen, duplicates=repeats, dup_url=repeats)


def write_articles(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    batch: ArticleBatch,
    tags: Sequence[ArticleTags],
    prints: Sequence[Fingerprint],
) -> RunCounts:
    """A batch's articles (each once) with their stories, their tags, feed refs and errors;
    call inside a transaction. `prints` are the articles' fingerprints, made before the lock
    was taken (pure CPU work: other writers wait less)."""
    layers = cluster_new_articles(con, batch.articles, list(prints))
    new, updated, unchanged = upsert_articles(con, batch.articles)
    write_tags(con, tags)
    if batch.feed_url:
        refs = [(a.article_id, a.guid) for a in batch.articles] + list(batch.seen_again)
        record_feed_refs(con, batch.feed_url, refs)
    record_errors(con, run_id, batch.errors)
    return RunCounts(
        pages_downloaded=batch.pages_downloaded,
        articles_new=new,
        articles_updated=updated,
        errors=len(batch.errors),
        **duplicate_counts(batch, unchanged, layers),
    )


def duplicate_counts(batch: ArticleBatch, unchanged: int, layers: LayerCounts) -> dict[str, int]:
    """The `dup_*` counters of a batch and their sum. URL duplicates are the entries seen again
    (but for those known by GUID alone) and the articles loaded again unchanged."""
    counts = {
        "dup_url": len(batch.seen_again) - batch.seen_again_by_guid + unchanged,
        "dup_guid": batch.seen_again_by_guid,
        "dup_title": layers.title,
        "dup_body": layers.body,
        "dup_near": layers.near,
    }
    return {"duplicates": sum(counts.values()), **counts}


def tag_articles(articles: Sequence[Article], tagger: Tagger | None) -> list[ArticleTags]:
    """Coverage tags of the articles (default tagger: the packaged lexicon and gazetteer)."""
    tagger = tagger or load_tagger()
    return [tagger.tag(a.article_id, a.title, a.body_text) for a in articles]


# --- coverage tags -------------------------------------------------------------------------


def write_tags(con: duckdb.DuckDBPyConnection, tags: Sequence[ArticleTags]) -> None:
    """Replace these articles' rows in the four tag tables. Call inside a transaction."""
    if not tags:
        return
    ids = pa.table({"article_id": [t.article_id for t in tags]})
    con.register("batch_tag_ids", ids)
    try:
        for table, rows in tag_tables(tags).items():
            con.execute(
                f"DELETE FROM {table} WHERE article_id IN (SELECT article_id FROM batch_tag_ids)"
            )
            if rows.num_rows:
                con.register("batch_tags", rows)
                try:
                    con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM batch_tags")
                finally:
                    con.unregister("batch_tags")
    finally:
        con.unregister("batch_tag_ids")


class RetagCounts(NamedTuple):
    articles: int
    topics: int
    regions: int
    docs: int
    orgs: int


def retag_all(
    db: Database,
    tagger: Tagger,
    chunk_size: int = 2000,
    progress: Callable[[int, int], None] | None = None,
) -> RetagCounts:
    """Tag every stored article again, e.g. after the lexicon changed; returns the row counts.

    Chunks in article_id order, each read, tagged and written in one short session, so a
    scheduled run can load between chunks and an interrupted retag leaves whole chunks.
    `progress(done, total)` is called after each chunk.
    """
    with db.session() as con:
        row = con.execute("SELECT count(*) FROM articles").fetchone()
        expected = int(row[0]) if row else 0
    last = ""
    total = 0
    while True:
        with db.session() as con, transaction(con):
            rows = con.execute(
                "SELECT article_id, title, body_text FROM articles WHERE article_id > ? "
                "ORDER BY article_id LIMIT ?",
                [last, chunk_size],
            ).fetchall()
            if not rows:
                break
            write_tags(con, [tagger.tag(*row) for row in rows])
        last = rows[-1][0]
        total += len(rows)
        if progress:
            progress(total, max(total, expected))
    with db.session() as con, transaction(con):
        counts = []
        for table in ("article_topics", "article_regions", "article_policy_docs", "article_orgs"):
            # Tags of articles that are gone (none are deleted today; a file edited by hand).
            con.execute(
                f"DELETE FROM {table} WHERE article_id NOT IN (SELECT article_id FROM articles)"
            )
            row = con.execute(f"SELECT count(*) FROM {table}").fetchone()
            counts.append(int(row[0]) if row else 0)
    return RetagCounts(total, *counts)


# --- runs -----------------------------------------------------------------------------------


def start_run(db: Database, flow: str, parameters: dict[str, Any]) -> str:
    """A `runs` row in state running; runs of dead processes on this host become crashed."""
    run_id = new_run_id()
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
    with db.session() as con, transaction(con):
        con.execute(
            f"UPDATE runs SET finished_at = ?, status = ?, {assignments} WHERE run_id = ?",
            [utcnow(), status, *(getattr(counts, f) for f in fields), run_id],
        )
        # Feeds claimed but never recorded (a task that raised): due again for the next run.
        con.execute("UPDATE feeds SET claimed_by = NULL WHERE claimed_by = ?", [run_id])
