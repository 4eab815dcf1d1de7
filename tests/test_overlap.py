"""Overlapping and killed runs, as real `newsflow` processes on one database: two runs and a
backfill started together all finish, the runs split the due feeds, and together they leave
exactly one run's rows; a run killed with SIGKILL leaves whole batches, shows as crashed, and
the next run completes its work; a killed process's lock is recovered."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from newsflow.demo.catalogue import DEMO_FEEDS, demo_feeds_toml
from newsflow.demo.site import SiteServer
from newsflow.flows.ingest import ingest
from newsflow.schemas.errors import DatabaseError
from newsflow.tasks.storage.store import Database
from tests.conftest import NEWSFLOW, cli_env, make_settings, wait_for
from tests.loopback import LoopbackServer, Request

EMPTY_RSS = b'<?xml version="1.0"?><rss version="2.0"><channel><title>Held</title></channel></rss>'

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site() -> Iterator[SiteServer]:
    # One server for the module: article identity is the URL, so every database here must
    # have ingested the same base URL to be compared.
    with SiteServer() as server:
        yield server


def snapshot(db_path: Path) -> dict[str, Any]:
    """What a run leaves, independent of which run wrote which row."""
    with Database(db_path).session() as con:
        return {
            "articles": con.execute(
                "SELECT canonical_url, title, content_hash FROM articles ORDER BY ALL"
            ).fetchall(),
            "distinct": con.execute(
                "SELECT count(*) = count(DISTINCT canonical_url) FROM articles"
            ).fetchone(),
            "copies": con.execute("SELECT count(duplicate_of) FROM articles").fetchone(),
            "article_feeds": con.execute(
                "SELECT canonical_url, f.feed_url FROM article_feeds f JOIN articles USING "
                "(article_id) ORDER BY ALL"
            ).fetchall(),
            # Which run meets a problem first varies (a backfill records its own): compare
            # the problems, not who recorded them.
            "errors": con.execute(
                "SELECT DISTINCT stage, url, kind FROM ingest_errors ORDER BY ALL"
            ).fetchall(),
            "feeds": con.execute(
                "SELECT url, status, consecutive_failures, last_success_at IS NOT NULL "
                "FROM feeds ORDER BY url"
            ).fetchall(),
        }


@pytest.fixture(scope="module")
def reference(
    site: SiteServer, tmp_path_factory: pytest.TempPathFactory, prefect_harness: None
) -> dict[str, Any]:
    """The rows of one ordinary run over the site."""
    settings = make_settings(tmp_path_factory.mktemp("reference"))
    settings.feeds_path.write_text(demo_feeds_toml(site.base_url), encoding="utf-8")
    summary = ingest(settings=settings)
    assert summary.counts.feeds_checked == len(DEMO_FEEDS)
    assert summary.counts.articles_new > 20
    return snapshot(settings.db_path)


def test_two_runs_and_a_backfill_started_together_leave_one_runs_rows(
    tmp_path: Path, site: SiteServer, reference: dict[str, Any]
) -> None:
    env = cli_env(tmp_path)
    feeds = Path(env["NEWSFLOW_FEEDS"])
    feeds.write_text(demo_feeds_toml(site.base_url), encoding="utf-8")
    commands = [["run"], ["run"], ["backfill", "--feeds", str(feeds)]]
    processes = [
        subprocess.Popen(
            [*NEWSFLOW, *command],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for command in commands
    ]
    outputs = [process.communicate(timeout=300) for process in processes]
    for process, (stdout, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr
        assert "Traceback" not in stdout + stderr
    assert snapshot(Path(env["NEWSFLOW_DB"])) == reference
    with Database(Path(env["NEWSFLOW_DB"])).session() as con:
        runs = con.execute("SELECT flow, status FROM runs ORDER BY ALL").fetchall()
        (checked,) = con.execute(
            "SELECT sum(feeds_checked) FROM runs WHERE flow = 'ingest'"
        ).fetchone()  # type: ignore[misc]
    assert runs == [("backfill", "completed"), ("ingest", "completed"), ("ingest", "completed")]
    assert checked == len(DEMO_FEEDS)  # the runs split the feeds: each polled once


@pytest.fixture
def held() -> Iterator[tuple[LoopbackServer, threading.Event]]:
    """One more feed, answered only once the test releases it: however fast the demo feeds
    load on this machine, a kill lands while a feed is in flight. Then it is an empty feed."""
    release = threading.Event()

    def hold(request: Request) -> None:
        release.wait(240)
        request.reply(200, EMPTY_RSS, {"Content-Type": "application/rss+xml"})

    with LoopbackServer() as server:
        server.routes["/held.xml"] = hold
        try:
            yield server, release
        finally:
            release.set()


def recorded_feeds(db: Database) -> set[str]:
    with db.session() as con:
        rows = con.execute("SELECT url FROM feeds WHERE last_checked_at IS NOT NULL").fetchall()
    return {url for (url,) in rows}


def kill_tree(pid: int) -> None:
    """SIGKILL a process, as the OOM killer or `kill -9` would; then its orphans, to tidy up."""
    children = psutil.Process(pid).children(recursive=True)
    os.kill(pid, signal.SIGKILL)
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    psutil.wait_procs(children, timeout=10)


def test_run_killed_midway_leaves_whole_batches_and_the_next_run_completes_it(
    tmp_path: Path,
    site: SiteServer,
    reference: dict[str, Any],
    held: tuple[LoopbackServer, threading.Event],
) -> None:
    server, release = held
    held_url = server.url("/held.xml")
    env = cli_env(tmp_path)
    db_path = Path(env["NEWSFLOW_DB"])
    feeds = demo_feeds_toml(site.base_url) + f'\n[[feeds]]\nurl = "{held_url}"\n'
    Path(env["NEWSFLOW_FEEDS"]).write_text(feeds, encoding="utf-8")
    db = Database(db_path, lock_timeout=60)
    try:
        killed = subprocess.Popen([*NEWSFLOW, "run", "-q"], env=env, stderr=subprocess.PIPE)
        wait_for(lambda: db_path.exists() and recorded_feeds(db), 180, "a first feed loaded")
        kill_tree(killed.pid)
        assert killed.wait(timeout=10) == -signal.SIGKILL
    finally:
        release.set()

    recorded = recorded_feeds(db)
    assert 0 < len(recorded) <= len(DEMO_FEEDS)
    assert held_url not in recorded
    after_kill = snapshot(db_path)  # the file opens
    assert after_kill["distinct"] == (True,)
    # Whole batches only: exactly the articles the recorded feeds carry in a full run.
    expected = {url for url, feed in reference["article_feeds"] if feed in recorded}
    assert {row[0] for row in after_kill["articles"]} == expected
    with db.session() as con:
        assert con.execute("SELECT status FROM runs").fetchall() == [("running",)]

    rerun = subprocess.run(
        [*NEWSFLOW, "run", "-q"], env=env, capture_output=True, text=True, timeout=240
    )
    assert rerun.returncode == 0, rerun.stderr
    assert "Traceback" not in rerun.stdout + rerun.stderr
    after = snapshot(db_path)
    after["feeds"] = [row for row in after["feeds"] if row[0] != held_url]
    assert after == reference
    with db.session() as con:
        statuses = con.execute("SELECT status FROM runs ORDER BY started_at").fetchall()
        assert statuses == [("crashed",), ("completed",)]
        rechecked = con.execute(
            "SELECT feeds_checked FROM runs WHERE status = 'completed'"
        ).fetchone()
    # Only what the killed run left: the held feed and the demo feeds it had not recorded.
    assert rechecked == (len(DEMO_FEEDS) + 1 - len(recorded),)


def test_lock_of_a_killed_process_is_recovered(tmp_path: Path) -> None:
    path = tmp_path / "news.duckdb"
    code = (
        "import sys, time\n"
        "from newsflow.tasks.storage.store import Database\n"
        f"with Database({str(path)!r}).session() as con:\n"
        "    con.execute('CREATE TABLE kept AS SELECT 42 AS x')\n"
        "    print('held', flush=True)\n"
        "    time.sleep(600)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    with pytest.raises(DatabaseError, match="busy"), Database(path, lock_timeout=0.5).session():
        pass
    holder.kill()
    holder.wait()
    started = time.monotonic()
    with Database(path, lock_timeout=30).session() as con:
        assert con.execute("SELECT x FROM kept").fetchone() == (42,)
    # The kernel released it: well inside the 30 s a wait for the lock would take.
    assert time.monotonic() - started < 15
