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
