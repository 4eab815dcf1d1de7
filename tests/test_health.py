"""Feed health rules: next check after success and failure, due feeds, the health listing."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from newsflow.schemas.config import FeedConfig, FeedsFile
from newsflow.schemas.models import FeedBatch, FeedCheck, RunCounts
from newsflow.tasks.sources.health import (
    MAX_INTERVAL,
    MIN_INTERVAL,
    FeedState,
    due_feeds,
    feed_health,
    next_state,
    poll_hint,
)
from newsflow.tasks.storage.feed_health import (
    CheckRow,
    claim_due_feeds,
    record_feed_checks,
    set_feed_status,
)
from newsflow.tasks.storage.load import load_batch
from newsflow.tasks.storage.runs import finish_run, start_run
from newsflow.tasks.storage.store import Database

URL = "https://feeds.example/rss"
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
DEFAULT = 1800.0


def ok(**kw: object) -> FeedCheck:
    values: dict[str, object] = {"url": URL, "ok": True, "status_code": 200, "checked_at": NOW}
    values.update(kw)
    return FeedCheck(**values)  # type: ignore[arg-type]


def failed(kind: str, status: int | None = None, **kw: object) -> FeedCheck:
    return FeedCheck(
        url=URL,
        ok=False,
        checked_at=NOW,
        status_code=status,
        error_kind=kind,
        error="boom",
        **kw,  # type: ignore[arg-type]
    )


def seconds_until(state: FeedState) -> float:
    assert state.next_check_at is not None
    return (state.next_check_at - NOW).total_seconds()


def polled(interval: float, failures: int = 0, hint: float | None = None) -> FeedState:
    return FeedState(URL, poll_interval_s=interval, consecutive_failures=failures, poll_hint_s=hint)


# --- after success ----------------------------------------------------------------------------


def test_first_success_uses_the_default_or_the_feeds_hint() -> None:
    assert seconds_until(next_state(ok(entries_seen=5, entries_new=5), None, DEFAULT)) == DEFAULT
    hinted = next_state(ok(poll_hint=7200.0, entries_seen=5, entries_new=5), None, DEFAULT)
    assert seconds_until(hinted) == 7200.0
    assert hinted.poll_hint_s == 7200.0


@pytest.mark.parametrize(
    ("seen", "new", "expected"),
    [
        (10, 10, DEFAULT / 2),  # everything new: items may have been missed, poll sooner
        (10, 3, DEFAULT),  # some new: the cadence fits
        (10, 0, DEFAULT * 1.5),  # nothing new: poll later
        (0, 0, DEFAULT * 1.5),  # a 304
    ],
)
def test_interval_adapts_to_how_often_items_are_new(seen: int, new: int, expected: float) -> None:
    state = next_state(ok(entries_seen=seen, entries_new=new), polled(DEFAULT), DEFAULT)
    assert seconds_until(state) == expected
    assert state.poll_interval_s == expected


def test_adapted_interval_stays_within_bounds_and_above_the_hint() -> None:
    busy = next_state(ok(entries_seen=5, entries_new=5), polled(MIN_INTERVAL), DEFAULT)
    quiet = next_state(ok(status_code=304), polled(MAX_INTERVAL), DEFAULT)
    hinted = next_state(
        ok(entries_seen=5, entries_new=5, poll_hint=3600.0), polled(3600.0), DEFAULT
    )
    huge_hint = next_state(ok(poll_hint=30 * 86400.0), None, DEFAULT)
    assert seconds_until(busy) == MIN_INTERVAL
    assert seconds_until(quiet) == MAX_INTERVAL
    assert seconds_until(hinted) == 3600.0  # never sooner than the feed asks
    assert seconds_until(huge_hint) == MAX_INTERVAL


def test_first_success_after_failures_keeps_the_cadence() -> None:
    state = next_state(ok(entries_seen=5, entries_new=5), polled(DEFAULT, failures=3), DEFAULT)
    assert seconds_until(state) == DEFAULT
    assert (state.status, state.consecutive_failures) == ("active", 0)


def test_poll_hint_takes_the_longest_and_ignores_zero() -> None:
    assert poll_hint(None, None) is None
    assert poll_hint(0, None) is None
    assert poll_hint(600.0, 7200) == 7200
    assert poll_hint(None, 300) == 300


# --- after failure ----------------------------------------------------------------------------


def test_transient_errors_back_off_softer_than_4xx() -> None:
    def delays(kind: str, status: int | None) -> list[float]:
        state: FeedState | None = None
        out = []
        for _ in range(4):
            state = next_state(failed(kind, status), state, DEFAULT)
            out.append(seconds_until(state))
        return out

    timeout = delays("timeout", None)
    server = delays("http_503", 503)
    client = delays("http_404", 404)
    assert timeout == server == [MIN_INTERVAL, 900.0, 1800.0, 3600.0]
    assert client == [1800.0, 3600.0, 7200.0, 14400.0]
    assert all(s < c for s, c in zip(server, client, strict=True))


def test_backoff_is_capped_at_a_day() -> None:
    state = next_state(failed("http_404", 404), polled(DEFAULT, failures=20), DEFAULT)
    assert seconds_until(state) == MAX_INTERVAL
    assert (state.status, state.consecutive_failures) == ("failing", 21)


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured(status: int) -> None:
    state = next_state(failed(f"http_{status}", status, retry_after=3600.0), None, DEFAULT)
    assert seconds_until(state) == 3600.0
    assert state.retry_after_until == state.next_check_at
    assert next_state(ok(), state, DEFAULT).retry_after_until is None
    assert next_state(failed("timeout"), state, DEFAULT).retry_after_until is None


def test_failure_keeps_validators_and_cadence() -> None:
    previous = FeedState(URL, etag='"v1"', last_modified="Wed, 01 May 2024", poll_interval_s=900.0)
    state = next_state(failed("timeout"), previous, DEFAULT)
    assert (state.etag, state.last_modified, state.poll_interval_s) == (
        '"v1"',
        "Wed, 01 May 2024",
        900.0,
    )


def test_410_marks_the_feed_gone_and_unscheduled() -> None:
    state = next_state(failed("http_410", 410), polled(DEFAULT), DEFAULT)
    assert (state.status, state.next_check_at) == ("gone", None)


# --- due feeds --------------------------------------------------------------------------------


def feed(n: int, **kw: object) -> FeedConfig:
    return FeedConfig(url=f"https://feeds.example/{n}", name=f"f{n}", **kw)  # type: ignore[arg-type]


def test_due_feeds() -> None:
    feeds = [feed(i) for i in range(8)] + [feed(8, enabled=False)]
    past, future = NOW - timedelta(minutes=1), NOW + timedelta(minutes=1)
    states = {
        feeds[1].url: FeedState(feeds[1].url, next_check_at=past),
        feeds[2].url: FeedState(feeds[2].url, next_check_at=future),
        feeds[3].url: FeedState(feeds[3].url, status="gone"),
        feeds[4].url: FeedState(feeds[4].url, status="disabled"),
        feeds[5].url: FeedState(feeds[5].url, next_check_at=past, busy=True),
        feeds[6].url: FeedState(feeds[6].url, status="failing", next_check_at=past),
        feeds[7].url: FeedState(
            feeds[7].url, status="failing", next_check_at=future, retry_after_until=future
        ),
    }
    due = due_feeds(feeds, states, force=False, now=NOW)
    assert [f.name for f in due.ready] == ["f0", "f1", "f6"]
    assert [f.name for f in due.busy] == ["f5"]
    forced = due_feeds(feeds, states, force=True, now=NOW)
    assert [f.name for f in forced.ready] == ["f0", "f1", "f2", "f6"]  # not f7: Retry-After
    later = due_feeds(feeds, states, force=False, now=future)
    assert "f7" in [f.name for f in later.ready]


# --- claims and the health listing, on a database ----------------------------------------------


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return Database(tmp_path / "news.duckdb", lock_timeout=10)


def test_overlapping_runs_split_the_due_feeds(db: Database) -> None:
    feeds = [feed(i) for i in range(3)]
    first, second = start_run(db, "ingest", {}), start_run(db, "ingest", {})
    claimed = claim_due_feeds(db, first, feeds, force=False)
    left = claim_due_feeds(db, second, feeds, force=True)
    assert len(claimed.feeds) == 3 and claimed.busy == 0
    assert left.feeds == [] and left.busy == 3
    # The first run records one feed and then ends without the others (it raised, say).
    check = FeedCheck(url=feeds[0].url, ok=True, status_code=200)
    load_batch(db, first, FeedBatch(feed_url=feeds[0].url, check=check))
    finish_run(db, first, RunCounts(), "crashed")
    third = start_run(db, "ingest", {})
    retaken = claim_due_feeds(db, third, feeds, force=False)
    assert [f.name for f in retaken.feeds] == ["f1", "f2"]


def test_claims_of_a_dead_run_are_void(db: Database) -> None:
    feeds = [feed(0)]
    dead = start_run(db, "ingest", {})
    claim_due_feeds(db, dead, feeds, force=False)
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    with db.session() as con:  # its process died without a word
        con.execute("UPDATE runs SET pid = ? WHERE run_id = ?", [int(finished.stdout), dead])
    rerun = start_run(db, "ingest", {})
    assert [f.name for f in claim_due_feeds(db, rerun, feeds, force=False).feeds] == ["f0"]
    with db.session() as con:
        assert con.execute("SELECT status FROM runs WHERE run_id = ?", [dead]).fetchone() == (
            "crashed",
        )


def test_health_listing_tells_the_whole_story(db: Database) -> None:
    run = start_run(db, "ingest", {})
    gone, fine, dropped = feed(0), feed(1), feed(2)
    for f, check in (
        (gone, failed("http_410", 410)),
        (fine, ok(entries_seen=1, entries_new=1)),
        (dropped, ok()),
    ):
        batch = FeedBatch(feed_url=f.url, check=check.model_copy(update={"url": f.url}))
        load_batch(db, run, batch, name=f.name)
    listed = FeedsFile(feeds=[gone, fine, feed(3), feed(4, enabled=False)])
    with db.session() as con:
        rows = {h.name: h for h in feed_health(con, listed)}
    assert {n: h.status for n, h in rows.items()} == {
        "f0": "gone",
        "f1": "active",
        "f2": "active",
        "f3": "new",
        "f4": "disabled",
    }
    assert rows["f0"].last_error == "http_410: boom"
    # Dropped from the file: its health kept, marked as not in the file.
    assert not rows["f2"].in_file and rows["f2"].last_success_at == NOW
    assert all(rows[n].in_file for n in ("f0", "f1", "f3", "f4"))
    assert rows["f1"].last_error is None and rows["f1"].last_success_at == NOW
    with db.session() as con:
        assert set_feed_status(con, "f0", "active") == [gone.url]
        again = {h.name: h for h in feed_health(con, listed)}
    assert (again["f0"].status, again["f0"].next_check_at) == ("active", None)


def test_checks_recorded_together_equal_checks_recorded_one_by_one(tmp_path: Path) -> None:
    """record_feed_checks writes a group's checks in one statement; the rows must be those of
    one statement per check, also for a feed checked twice in the group (two staged runs'
    batches), a failure after a success (the error kept until the next success) and a feed
    disabled by hand (it stays disabled)."""
    f0, f1, f2 = feed(0), feed(1), feed(2)
    later = NOW + timedelta(hours=1)

    def at(check: FeedCheck, f: FeedConfig, when: datetime = NOW) -> CheckRow:
        return CheckRow(check.model_copy(update={"url": f.url, "checked_at": when}), f.name, None)

    earlier = [at(ok(entries_seen=3, entries_new=3), f2)]
    rows = [
        at(failed("http_503", 503, retry_after=120.0), f0),
        at(ok(entries_seen=4, entries_new=1, etag='"v2"', title="One"), f1),
        at(ok(entries_seen=5, entries_new=2), f0, later),  # f0 again: from the failure's state
        at(failed("timeout"), f2),
        at(ok(entries_seen=5, entries_new=0), f1, later),
    ]
    tables = []
    for name, groups in (("together", [rows]), ("apart", [[r] for r in rows])):
        db = Database(tmp_path / f"{name}.duckdb", lock_timeout=10)
        with db.session() as con:
            record_feed_checks(con, earlier, default_interval=DEFAULT)
            set_feed_status(con, f2.url, "disabled")
            for group in groups:
                record_feed_checks(con, group, default_interval=DEFAULT)
            tables.append(con.execute("SELECT * FROM feeds ORDER BY url").fetchall())
    together, apart = tables
    assert together == apart
    with Database(tmp_path / "together.duckdb", lock_timeout=10).session() as con:
        got = con.execute(
            "SELECT url, status, consecutive_failures, articles_total, last_error_kind, "
            "last_success_at FROM feeds ORDER BY url"
        ).fetchall()
    assert got == [
        (f0.url, "active", 0, 2, "http_503", later),  # the error kept after the success
        (f1.url, "active", 0, 1, None, later),
        (f2.url, "disabled", 1, 3, "timeout", NOW),
    ]
