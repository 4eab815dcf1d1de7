"""Orchestration faults: feed tasks that would block past any timeout, and a flow run killed
midway. Prefect cannot interrupt a thread blocked in a socket or waiting on a worker, so every
blocking step of a feed task has its own deadline; these runs prove they hold, and that what a
deadline or a kill left undone is completed by the next run, without duplicates."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from newsflow.tasks.storage.load import load_batches
from tests.faults.harness import (
    FaultRun,
    HealthyFeed,
    Item,
    add_healthy_feed,
    article_html,
    rss,
    run_cli_killed_at,
    run_ingest_over,
    static,
)
from tests.loopback import LoopbackServer, Request, trickle_body

FEED_DEADLINE = 3.0
TOTAL_DEADLINE = 2.0
BLOCKING_PAGES = 24
SLOW_PARSE_ITEMS = 20_000
MAX_ITEMS = 30


class Switch:
    """Hostile until turned off, then healthy: the second run meets a mended web."""

    def __init__(self) -> None:
        self.hostile = True


@pytest.fixture(scope="module")
def switch() -> Switch:
    return Switch()


@pytest.fixture(scope="module")
def slow_host() -> Iterator[LoopbackServer]:
    """Another host (the per-host limit is per host): its pages trickle while hostile."""
    with LoopbackServer("127.0.0.3") as srv:
        yield srv


def page(request: Request) -> None:
    n = request.path.rsplit("=", 1)[-1]
    html = article_html(f"Page {n}", [f"The body of page {n}, long enough for an article. " * 4])
    request.reply(200, html.encode())


@pytest.fixture(scope="module")
def blocking_feed(slow_host: LoopbackServer, switch: Switch) -> str:
    items = [Item(f"Page {n}", slow_host.url(f"/p?n={n}")) for n in range(BLOCKING_PAGES)]
    slow_host.routes["/feed.xml"] = static(rss(items).encode(), "application/rss+xml")
    slow_host.routes["/p"] = lambda r: trickle_body(r) if switch.hostile else page(r)
    return slow_host.url("/feed.xml")


@pytest.fixture(scope="module")
def slow_parse_feed(server: LoopbackServer) -> str:
    items = [
        Item(f"Item {n}", server.url(f"/big?n={n}"), pub_date=None) for n in range(SLOW_PARSE_ITEMS)
    ]
    server.routes["/slow-parse.xml"] = static(rss(items).encode(), "application/rss+xml")
    server.routes["/big"] = page
    return server.url("/slow-parse.xml")


@pytest.fixture(scope="module")
def flaky_feed(server: LoopbackServer, switch: Switch) -> HealthyFeed:
    """A healthy feed whose first page answers 503 while hostile."""
    feed = add_healthy_feed(server, "flaky")
    first = "/flaky/p0.html"
    ok = server.routes[first]
    busy = static(b"busy", "text/html", 503)
    server.routes[first] = lambda r: busy(r) if switch.hostile else ok(r)
    return feed


@pytest.fixture(scope="module")
def healthy(server: LoopbackServer) -> HealthyFeed:
    return add_healthy_feed(server, "ok", "zh")


@pytest.fixture(scope="module")
def runs(
    tmp_path_factory: pytest.TempPathFactory,
    prefect_harness: None,
    switch: Switch,
    blocking_feed: str,
    slow_parse_feed: str,
    flaky_feed: HealthyFeed,
    healthy: HealthyFeed,
) -> tuple[FaultRun, FaultRun]:
    """A run against the hostile web with short deadlines, then one against the mended web."""
    tmp = tmp_path_factory.mktemp("orchestration")
    urls = [blocking_feed, slow_parse_feed, flaky_feed.url, healthy.url]
    first = run_ingest_over(
        tmp,
        urls,
        feed_deadline=FEED_DEADLINE,
        parse_deadline=1.0,
        max_items_per_feed=MAX_ITEMS,
        fetch={"total_deadline": TOTAL_DEADLINE, "read_timeout": 1.0},
    )
    switch.hostile = False
    second = run_ingest_over(tmp, urls, max_items_per_feed=MAX_ITEMS)
    return first, second


def test_feed_deadline_ends_a_feed_whose_pages_block(
    runs: tuple[FaultRun, FaultRun], blocking_feed: str, healthy: HealthyFeed
) -> None:
    first, _ = runs
    kinds = first.kinds(blocking_feed)
    assert kinds.count("feed_timeout") == 1
    assert set(kinds) == {"timeout", "feed_timeout"}
    assert kinds.count("timeout") <= 12  # only what was in flight before the deadline
    # The single feed_timeout row shows the feed deadline ended the feed (without it: 24
    # trickling pages, 4 at a time, 2 s each, all recorded as timeouts); a bound on the run's
    # seconds would only add a way to fail on a loaded machine.
    first.assert_loaded_in_full(healthy)


def test_parse_is_killed_at_its_deadline(
    runs: tuple[FaultRun, FaultRun], slow_parse_feed: str
) -> None:
    first, _ = runs
    assert first.errors(slow_parse_feed) == [("parse", slow_parse_feed, "timeout")]
    assert first.summary.counts.feeds_failed == 1


def test_transient_page_failure_is_fetched_again_next_run(
    runs: tuple[FaultRun, FaultRun], flaky_feed: HealthyFeed, server: LoopbackServer
) -> None:
    first, second = runs
    assert first.errors(flaky_feed.url) == [("download", server.url("/flaky/p0.html"), "http_503")]
    # The feed itself did not change (same ETag); it is fetched again in full all the same.
    second.assert_loaded_in_full(flaky_feed)
    (first_seen,) = second.query(
        "SELECT first_seen_at FROM articles WHERE title = ?", flaky_feed.titles[0]
    )[0]
    assert first_seen >= second.summary.started_at


def test_next_run_completes_what_the_deadlines_left(
    runs: tuple[FaultRun, FaultRun], blocking_feed: str, slow_parse_feed: str, healthy: HealthyFeed
) -> None:
    _, second = runs
    assert second.feeds_with_errors() == {slow_parse_feed}  # capped to MAX_ITEMS: too_many_items
    assert len(second.articles(blocking_feed)) == BLOCKING_PAGES
    assert len(second.articles(slow_parse_feed)) == MAX_ITEMS
    second.assert_loaded_in_full(healthy)


def test_flow_run_killed_midway_and_restarted(
    tmp_path: Path, server: LoopbackServer, prefect_harness: None
) -> None:
    feeds = [
        add_healthy_feed(server, f"killed-{i}", lang) for i, lang in enumerate(["en", "zh", "en"])
    ]
    urls = [f.url for f in feeds]
    # Killed once the first write committed: the feeds it held (those finished by then) are
    # there whole, two articles each, and the others not at all.
    child = run_cli_killed_at(tmp_path, urls, load_batches, occurrence=1)
    assert child.returncode == -signal.SIGKILL, child.stderr
    with duckdb.connect(str(tmp_path / "news.duckdb"), read_only=True) as con:
        checked = "SELECT count(*) FROM feeds WHERE last_success_at IS NOT NULL"
        (written,) = con.execute(checked).fetchone()  # type: ignore[misc]
        assert written >= 1
        assert con.execute("SELECT count(*) FROM articles").fetchone() == (2 * written,)
    restarted = run_ingest_over(tmp_path, urls)
    for feed in feeds:
        restarted.assert_loaded_in_full(feed)
    runs = restarted.query("SELECT status FROM runs ORDER BY started_at")
    assert runs == [("crashed",), ("completed",)]
