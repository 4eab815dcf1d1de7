"""Feed health: which feeds are due, and when each is checked next after success or failure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb

from schemas.config import FeedConfig
from schemas.models import FeedCheck, utcnow

MIN_INTERVAL = 600.0  # 10 min
MAX_INTERVAL = 86400.0  # 24 h


@dataclass(frozen=True)
class FeedState:
    url: str
    status: str = "active"
    etag: str | None = None
    last_modified: str | None = None
    consecutive_failures: int = 0
    next_check_at: datetime | None = None
    poll_interval_s: float | None = None


def read_feed_states(con: duckdb.DuckDBPyConnection) -> dict[str, FeedState]:
    rows = con.execute(
        "SELECT url, status, etag, last_modified, consecutive_failures, next_check_at, "
        "poll_interval_s FROM feeds"
    ).fetchall()
    return {r[0]: FeedState(*r) for r in rows}


def due_feeds(
    feeds: list[FeedConfig],
    states: dict[str, FeedState],
    *,
    force: bool,
    now: datetime | None = None,
) -> list[FeedConfig]:
    """Enabled feeds whose next check has come (all enabled ones with force); gone feeds never."""
    now = now or utcnow()
    due = []
    for feed in feeds:
        state = states.get(feed.url)
        if not feed.enabled or (state and state.status in {"gone", "disabled"}):
            continue
        if force or state is None or state.next_check_at is None or state.next_check_at <= now:
            due.append(feed)
    return due


def clamp(seconds: float) -> float:
    return min(max(seconds, MIN_INTERVAL), MAX_INTERVAL)


def next_state(check: FeedCheck, previous: FeedState | None, default_interval: float) -> FeedState:
    """The feed's state after this check: its status, failure count and next check time."""
    failures = 0 if check.ok else (previous.consecutive_failures if previous else 0) + 1
    if check.ok:
        interval = clamp(
            check.poll_hint or (previous and previous.poll_interval_s) or default_interval
        )
        status = "active"
    elif check.error_kind == "http_410":
        interval, status = MAX_INTERVAL, "gone"
    else:
        interval, status = _backoff(check, failures, default_interval), "failing"
    return FeedState(
        url=check.url,
        status=status,
        etag=check.etag if check.ok else (previous.etag if previous else None),
        last_modified=check.last_modified
        if check.ok
        else (previous.last_modified if previous else None),
        consecutive_failures=failures,
        next_check_at=check.checked_at + timedelta(seconds=interval),
        poll_interval_s=interval if check.ok else (previous.poll_interval_s if previous else None),
    )


def _backoff(check: FeedCheck, failures: int, default_interval: float) -> float:
    """Retry-After when the server gave one; else exponential, softer for transient errors."""
    if check.retry_after is not None:
        return max(check.retry_after, 60.0)
    kind = check.error_kind or ""
    transient = kind in {"timeout", "connection_error"} or kind.startswith("http_5")
    base = default_interval / 4 if transient else default_interval
    return min(base * 2 ** (failures - 1), MAX_INTERVAL)


def feed_health_rows(con: duckdb.DuckDBPyConnection) -> list[tuple[object, ...]]:
    """One row per feed for `newsflow feeds`, the troubled ones first."""
    return con.execute(
        """
        SELECT coalesce(name, url) AS feed, status,
               strftime(last_success_at, '%Y-%m-%d %H:%M') AS last_success,
               CASE WHEN status IN ('gone', 'disabled') THEN 'never (' || status || ')'
                    ELSE strftime(next_check_at, '%Y-%m-%d %H:%M') END AS next_check,
               consecutive_failures AS failures,
               CASE WHEN last_error IS NOT NULL THEN last_error_kind || ': ' || last_error END
        FROM feeds
        ORDER BY status = 'active', consecutive_failures DESC, feed
        """
    ).fetchall()
