"""Database faults: another process holding the file, a SIGKILL inside a load transaction, a
damaged write-ahead log. Nothing committed is lost, nothing is loaded twice, and the next run
completes what was lost."""

from __future__ import annotations

import logging
import shutil
import signal
import time
from pathlib import Path

import duckdb
import pytest

from newsflow.tasks.storage.articles import upsert_articles
from newsflow.tasks.storage.store import Database
from tests.faults.harness import add_healthy_feed, run_cli_killed_at, run_ingest_over
from tests.loopback import LoopbackServer
from tests.test_load import hold_file

HOLD = 3.0


def test_another_process_holding_the_database(
    tmp_path: Path, server: LoopbackServer, prefect_harness: None
) -> None:
    feeds = [add_healthy_feed(server, "held", "zh"), add_healthy_feed(server, "held-en")]
    with Database(tmp_path / "news.duckdb").session():
        pass
    holder = hold_file(tmp_path / "news.duckdb", HOLD)  # like a `duckdb` shell left open
    started = time.monotonic()
    try:
        run = run_ingest_over(tmp_path, [f.url for f in feeds])
    finally:
        holder.kill()
        holder.wait()
    assert time.monotonic() - started > HOLD - 1  # it waited for the holder, then loaded
    for feed in feeds:
        run.assert_loaded_in_full(feed)


def test_sigkill_inside_a_load_transaction(
    tmp_path: Path, server: LoopbackServer, prefect_harness: None
) -> None:
    feeds = [add_healthy_feed(server, f"sigkill-{i}") for i in range(3)]
    urls = [f.url for f in feeds]
    # Killed as the first write's articles are written, before its transaction commits: a
    # write holds every feed finished by then (one transaction), and none of its rows stay.
    # (tests/faults/test_orchestration.py kills a run after a write committed.)
    child = run_cli_killed_at(tmp_path, urls, upsert_articles, occurrence=1)
    assert child.returncode == -signal.SIGKILL, child.stderr
    with duckdb.connect(str(tmp_path / "news.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM articles").fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM article_feeds").fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM search_postings").fetchone() == (0,)
        checked = "SELECT count(*) FROM feeds WHERE last_success_at IS NOT NULL"
        assert con.execute(checked).fetchone() == (0,)
        assert con.execute("SELECT status FROM runs").fetchall() == [("running",)]
    restarted = run_ingest_over(tmp_path, urls)
    for feed in feeds:
        restarted.assert_loaded_in_full(feed)
    assert restarted.query("SELECT count(*), count(DISTINCT article_id) FROM articles") == [(6, 6)]
    assert restarted.query("SELECT status FROM runs ORDER BY started_at") == [
        ("crashed",),
        ("completed",),
    ]


def damage(wal: Path) -> None:
    data = bytearray(wal.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(range(64))
    wal.write_bytes(bytes(data))


def test_damaged_write_ahead_log(
    tmp_path: Path,
    server: LoopbackServer,
    prefect_harness: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    before, window = (
        add_healthy_feed(server, "wal-before"),
        add_healthy_feed(server, "wal-lost", "zh"),
    )
    live, crashed = tmp_path / "live", tmp_path / "crashed"
    run_ingest_over(live, [before.url])  # checkpointed into the file
    db = live / "news.duckdb"
    # A connection held open keeps the database from checkpointing when the run closes its own:
    # the second run's rows stay in the write-ahead log, as when a process dies before closing.
    holder = duckdb.connect(str(db))
    try:
        run_ingest_over(live, [before.url, window.url], clean=False)
        wal = Path(f"{db}.wal")
        assert wal.stat().st_size > 0
        crashed.mkdir()
        shutil.copy(db, crashed / db.name)
        shutil.copy(wal, crashed / wal.name)
    finally:
        holder.close()
    damage(crashed / wal.name)

    with caplog.at_level(logging.WARNING, logger="newsflow.tasks.storage.store"):
        run = run_ingest_over(crashed, [before.url, window.url])
    (moved,) = crashed.glob("news.duckdb.wal.damaged-*")
    assert str(moved) in caplog.text and "last checkpoint" in caplog.text
    # The lost window (the second run) was fetched again; nothing before it was loaded twice.
    run.assert_loaded_in_full(before)
    run.assert_loaded_in_full(window)
    assert run.summary.counts.articles_new == len(window.titles)
