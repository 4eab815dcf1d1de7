"""Feed health: which feeds are due, and when each is checked next after success or failure.

After a success the next check follows the feed's own hint (`<ttl>`, `sy:updatePeriod`,
Cache-Control max-age) or the default interval, then adapts to how often the feed really has
new items, within [10 min, 24 h]. After a failure it backs off, softly for transient trouble
(timeouts, 5xx), harder for 4xx, and exactly as long as a Retry-After asks; a 410 marks the
feed gone until someone re-enables it. Every state is visible in `newsflow feeds`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import NamedTuple

import duckdb

from newsflow.schemas.config import FeedConfig, FeedsFile
from newsflow.schemas.kinds import Kind, http_kind
from newsflow.schemas.models import FeedCheck, utcnow

MIN_INTERVAL = 600.0  # 10 min
MAX_INTERVAL = 86400.0  # 24 h
# A Retry-After further out than this is a server's mistake (a date years ahead), not a plan.
MAX_RETRY_AFTER = 7 * 86400.0
# A poll that finds only new items may have missed some that scrolled off the feed since the
# last one: poll twice as often. A poll that finds nothing new: half again as long.
SHORTEN = 0.5
LENGTHEN = 1.5
TRANSIENT_KINDS = frozenset({Kind.TIMEOUT, Kind.CONNECTION_ERROR})
STOPPED = frozenset({"gone", "disabled"})


@dataclass(frozen=True)
class FeedState:
    url: str
    status: str = "active"
    etag: str | None = None
    last_modified: str | None = None
    consecutive_failures: int = 0
    next_check_at: datetime | None = None
    poll_interval_s: float | None = None
    poll_hint_s: float | None = None
    # Until when the server asked us to stay away (Retry-After); not even --force overrides it.
    retry_after_until: datetime | None = None
    # Claimed by a run that is still running: that run polls it, no other should.
    busy: bool = False


def read_feed_states(
    con: duckdb.DuckDBPyConnection, urls: Sequence[str] | None = None
) -> dict[str, FeedState]:
    """Every feed's state, or only those of `urls` (one batch's feed, not the whole table)."""
    where = "" if urls is None else "WHERE f.url IN (SELECT unnest(?::VARCHAR[]))"
    rows = con.execute(
        f"""
        SELECT f.url, f.status, f.etag, f.last_modified, f.consecutive_failures,
               f.next_check_at, f.poll_interval_s, f.poll_hint_s, f.retry_after_until,
               coalesce(r.status = 'running', false)
        FROM feeds f LEFT JOIN runs r ON r.run_id = f.claimed_by
        {where}
        """,
        [] if urls is None else [list(urls)],
    ).fetchall()
    return {r[0]: FeedState(*r) for r in rows}


class Due(NamedTuple):
    ready: list[FeedConfig]  # due, and this run may poll them
    busy: list[FeedConfig]  # due, but another running run is polling them


def due_feeds(
    feeds: list[FeedConfig],
    states: dict[str, FeedState],
    *,
    force: bool,
    now: datetime | None = None,
) -> Due:
    """Enabled feeds whose next check has come (all enabled ones with force); never gone or
    disabled feeds (until re-enabled), nor, even with force, one whose server said when to
    come back (Retry-After) before that time."""
    now = now or utcnow()
    ready: list[FeedConfig] = []
    busy: list[FeedConfig] = []
    for feed in feeds:
        state = states.get(feed.url) or FeedState(feed.url)
        if not feed.enabled or state.status in STOPPED:
            continue
        if state.retry_after_until is not None and state.retry_after_until > now:
            continue
        if force or state.next_check_at is None or state.next_check_at <= now:
            (busy if state.busy else ready).append(feed)
    return Due(ready, busy)


def poll_hint(*hints: float | None) -> float | None:
    """The longest of the feed's own hints, in seconds; zero or absent hints say nothing."""
    given = [h for h in hints if h is not None and h > 0]
    return max(given) if given else None


def next_state(check: FeedCheck, previous: FeedState | None, default_interval: float) -> FeedState:
    """The feed's state after this check: its status, failure count and next check time."""
    failures = 0 if check.ok else (previous.consecutive_failures if previous else 0) + 1
    next_check: datetime | None
    retry_after_until = None
    if check.ok:
        status = "active"
        interval = success_interval(check, previous, default_interval)
        next_check = check.checked_at + timedelta(seconds=interval)
    elif check.error_kind == http_kind(410):
        status, next_check = "gone", None
    else:
        status = "failing"
        delay = failure_delay(check, failures, default_interval)
        next_check = check.checked_at + timedelta(seconds=delay)
        if check.retry_after is not None:
            retry_after_until = next_check
    kept = previous or FeedState(check.url)
    return FeedState(
        url=check.url,
        status=status,
        etag=check.etag if check.ok else kept.etag,
        last_modified=check.last_modified if check.ok else kept.last_modified,
        consecutive_failures=failures,
        next_check_at=next_check,
        poll_interval_s=interval if check.ok else kept.poll_interval_s,
        poll_hint_s=check.poll_hint if check.ok else kept.poll_hint_s,
        retry_after_until=retry_after_until,
    )


def success_interval(
    check: FeedCheck, previous: FeedState | None, default_interval: float
) -> float:
    """Seconds until the next check of a feed that answered: its hint or the default at first,
    then shorter while every poll brings only new items and longer while polls bring none.
    Never shorter than the feed's own hint."""
    hint = check.poll_hint
    floor = min(max(hint or 0.0, MIN_INTERVAL), MAX_INTERVAL)
    last = previous.poll_interval_s if previous else None
    if last is None:
        interval = hint or default_interval
    elif previous and previous.consecutive_failures:
        # The gap since the last success was a backoff, not our cadence: nothing to learn.
        interval = last
    elif check.entries_new and check.entries_new >= check.entries_seen:
        interval = last * SHORTEN
    elif check.entries_new == 0:  # also every 304
        interval = last * LENGTHEN
    else:
        interval = last
    return min(max(interval, floor), MAX_INTERVAL)


def failure_delay(check: FeedCheck, failures: int, default_interval: float) -> float:
    """Seconds until a failed feed is tried again: what Retry-After says when the server said
    it; else doubling per failure from a quarter of the default for transient errors (timeouts,
    5xx) and from the whole default for the rest (4xx, not a feed), within [10 min, 24 h]."""
    if check.retry_after is not None:
        return min(check.retry_after, MAX_RETRY_AFTER)
    kind = check.error_kind or ""
    transient = kind in TRANSIENT_KINDS or kind.startswith("http_5")
    base = default_interval / 4 if transient else default_interval
    return min(max(base * 2 ** (failures - 1), MIN_INTERVAL), MAX_INTERVAL)


@dataclass(frozen=True)
class FeedHealth:
    """One line of `newsflow feeds`."""

    url: str
    name: str | None
    status: str  # active, failing, gone, disabled; new (never checked)
    last_success_at: datetime | None = None
    next_check_at: datetime | None = None
    consecutive_failures: int = 0
    last_error: str | None = None  # "kind: message" while the feed is in trouble
    busy: bool = False
    retry_after_until: datetime | None = None
    # False for a feed the database knows and the feeds file no longer lists: kept with its
    # health as it was, not polled.
    in_file: bool = True


_ORDER = {"gone": 0, "failing": 1, "disabled": 2, "new": 3, "active": 4}


def feed_health(con: duckdb.DuckDBPyConnection, feeds_file: FeedsFile | None) -> list[FeedHealth]:
    """Every feed of the database and of the feeds file, the troubled ones first.

    The file says what will be polled: a feed disabled there is `disabled`, one it lists that
    was never checked is `new`, and one the database knows but the file no longer lists keeps
    its stored health and status, marked `in_file=False` (kept, not polled).
    """
    rows = con.execute(
        """
        SELECT f.url, f.name, f.status, f.last_success_at, f.next_check_at,
               f.consecutive_failures,
               CASE WHEN f.status <> 'active' AND f.last_error IS NOT NULL
                    THEN concat_ws(': ', f.last_error_kind, f.last_error) END,
               coalesce(r.status = 'running', false), f.retry_after_until
        FROM feeds f LEFT JOIN runs r ON r.run_id = f.claimed_by
        """
    ).fetchall()
    stored = {r[0]: FeedHealth(*r) for r in rows}
    listed = {f.url: f for f in feeds_file.feeds} if feeds_file else None
    health = []
    for url, row in stored.items():
        feed = listed.get(url) if listed is not None else None
        if listed is not None and feed is None:
            row = replace(row, in_file=False)
        elif feed is not None and not feed.enabled:
            row = FeedHealth(url, feed.name or row.name, "disabled", row.last_success_at)
        health.append(row)
    for url, feed in (listed or {}).items():
        if url not in stored:
            health.append(FeedHealth(url, feed.name, "new" if feed.enabled else "disabled"))
    health.sort(
        key=lambda h: (
            not h.in_file,
            _ORDER.get(h.status, 0),
            -h.consecutive_failures,
            h.name or h.url,
        )
    )
    return health
