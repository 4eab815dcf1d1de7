"""The `feeds` table: each poll's outcome and the feed's health, hand-set statuses, and the
claims that let overlapping runs split the due feeds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import duckdb
import pyarrow as pa

from newsflow.schemas.config import FeedConfig
from newsflow.schemas.errors import ConfigError
from newsflow.schemas.models import FeedCheck
from newsflow.tasks.sources.health import FeedState, due_feeds, next_state, read_feed_states
from newsflow.tasks.storage.store import Database
from newsflow.tasks.storage.transaction import transaction


class CheckRow(NamedTuple):
    """One poll's outcome to record, with the feeds file's name and source for the feed."""

    check: FeedCheck
    name: str | None
    source: str | None


# The feeds row a check writes. last_success_at is set exactly when the check succeeded, so
# the update tells a success from a failure by it (ON CONFLICT sees only table columns).
_UPSERT_CHECKS = """
    INSERT INTO feeds (url, name, source, title, etag, last_modified, status,
        consecutive_failures, last_checked_at, last_success_at, next_check_at, last_error,
        last_error_kind, last_status_code, poll_interval_s, poll_hint_s, retry_after_until,
        last_new_items_at, articles_total, claimed_by)
    SELECT url, name, source, title, etag, last_modified, status, consecutive_failures,
        checked_at, CASE WHEN ok THEN checked_at END, next_check_at, error, error_kind,
        status_code, poll_interval_s, poll_hint_s, retry_after_until,
        CASE WHEN new > 0 THEN checked_at END, new, NULL
    FROM checked_feeds
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
        last_error = CASE WHEN excluded.last_success_at IS NOT NULL THEN feeds.last_error
                          ELSE excluded.last_error END,
        last_error_kind = CASE WHEN excluded.last_success_at IS NOT NULL
                               THEN feeds.last_error_kind ELSE excluded.last_error_kind END,
        last_status_code = excluded.last_status_code,
        poll_interval_s = excluded.poll_interval_s,
        poll_hint_s = excluded.poll_hint_s,
        retry_after_until = excluded.retry_after_until,
        claimed_by = NULL,
        last_new_items_at = coalesce(excluded.last_new_items_at, feeds.last_new_items_at),
        articles_total = feeds.articles_total + excluded.articles_total
"""

_CHECK_COLUMNS = pa.schema(
    [
        ("url", pa.string()),
        ("name", pa.string()),
        ("source", pa.string()),
        ("title", pa.string()),
        ("etag", pa.string()),
        ("last_modified", pa.string()),
        ("status", pa.string()),
        ("consecutive_failures", pa.int32()),
        ("checked_at", pa.timestamp("us", tz="UTC")),
        ("ok", pa.bool_()),
        ("next_check_at", pa.timestamp("us", tz="UTC")),
        ("error", pa.string()),
        ("error_kind", pa.string()),
        ("status_code", pa.int32()),
        ("poll_interval_s", pa.float64()),
        ("poll_hint_s", pa.float64()),
        ("retry_after_until", pa.timestamp("us", tz="UTC")),
        ("new", pa.int64()),
    ]
)


def record_feed_checks(
    con: duckdb.DuckDBPyConnection, rows: Sequence[CheckRow], *, default_interval: float
) -> None:
    """Record polls' outcomes and each feed's next state.

    One read and one upsert for all of them: a statement costs ~4 ms however few rows it
    touches, and an unchanged run of many feeds is mostly these rows. A feed checked twice
    (two staged runs' batches loaded together) is recorded in order, the second check
    starting from the first one's state, as two calls would."""
    for part in _rounds(rows):
        previous = read_feed_states(con, [r.check.url for r in part])
        written = [next_state(r.check, previous.get(r.check.url), default_interval) for r in part]
        table = pa.Table.from_pylist(
            [_check_values(r, s) for r, s in zip(part, written, strict=True)],
            schema=_CHECK_COLUMNS,
        )
        con.register("checked_feeds", table)
        try:
            con.execute(_UPSERT_CHECKS)
        finally:
            con.unregister("checked_feeds")


def _rounds(rows: Sequence[CheckRow]) -> list[list[CheckRow]]:
    """The rows in rounds where each feed appears once (an upsert may not touch a row twice),
    a feed's checks in order across them. Almost always one round."""
    rounds: list[list[CheckRow]] = []
    seen: dict[str, int] = {}
    for row in rows:
        k = seen.get(row.check.url, 0)
        seen[row.check.url] = k + 1
        if k == len(rounds):
            rounds.append([])
        rounds[k].append(row)
    return rounds


def _check_values(row: CheckRow, state: FeedState) -> dict[str, object]:
    check = row.check
    return {
        "url": check.url,
        "name": row.name,
        "source": row.source,
        "title": check.title,
        "etag": state.etag,
        "last_modified": state.last_modified,
        "status": state.status,
        "consecutive_failures": state.consecutive_failures,
        "checked_at": check.checked_at,
        "ok": check.ok,
        "next_check_at": state.next_check_at,
        "error": check.error,
        "error_kind": check.error_kind,
        "status_code": check.status_code,
        "poll_interval_s": state.poll_interval_s,
        "poll_hint_s": state.poll_hint_s,
        "retry_after_until": state.retry_after_until,
        "new": check.entries_new,
    }


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
