"""Items that cannot become articles as they are: rejected or repaired one by one, each with a
recorded reason, and the rest of the batch goes on."""

from __future__ import annotations

import pytest

from newsflow.tasks.extraction.normalize import MAX_TITLE_CHARS
from tests.faults.harness import (
    FaultRun,
    HealthyFeed,
    Item,
    add_healthy_feed,
    article_html,
    run_beside_healthy,
    static,
)
from tests.loopback import LoopbackServer

BODY = "A body long enough to be an article on its own, about custody rules for stablecoins. " * 3
HUGE_TITLE = "Stablecoin " * 100_000  # 1.1 MB


@pytest.fixture(scope="module")
def feed(server: LoopbackServer) -> HealthyFeed:
    for name in ("huge-title", "year-3000"):
        html = article_html(f"The {name} page", [BODY, BODY])
        server.routes[f"/{name}.html"] = static(html.encode(), "text/html; charset=utf-8")
    extra = [
        Item("An item without a link", None, description=BODY),
        Item("A script link", "javascript:alert(document.cookie)", description=BODY),
        Item(HUGE_TITLE, server.url("/huge-title.html")),
        Item(
            "From the future",
            server.url("/year-3000.html"),
            pub_date="Wed, 01 Jan 3000 00:00:00 +0000",
        ),
    ]
    return add_healthy_feed(server, "records", extra=extra)


@pytest.fixture(scope="module")
def run(
    server: LoopbackServer,
    feed: HealthyFeed,
    tmp_path_factory: pytest.TempPathFactory,
    prefect_harness: None,
) -> FaultRun:
    run = run_beside_healthy(server, tmp_path_factory.mktemp("records"), [feed.url])
    run.assert_healthy_items_loaded(feed)
    assert run.feeds_with_errors() == {feed.url}
    return run


def kinds_for(run: FaultRun, feed: HealthyFeed, url: str | None) -> list[str]:
    return [kind for stage, u, kind in run.errors(feed.url) if u == url and stage == "normalize"]


def test_item_without_a_link_is_rejected(run: FaultRun, feed: HealthyFeed) -> None:
    assert "An item without a link" not in run.articles(feed.url)
    assert [k for _, _, k in run.errors(feed.url)].count("no_link") == 1


def test_javascript_link_is_rejected_once(run: FaultRun, feed: HealthyFeed) -> None:
    url = "javascript:alert(document.cookie)"
    assert [(s, k) for s, u, k in run.errors(feed.url) if u == url] == [("normalize", "bad_url")]
    assert "A script link" not in run.articles(feed.url)


def test_huge_title_is_truncated_and_recorded(
    run: FaultRun, feed: HealthyFeed, server: LoopbackServer
) -> None:
    assert kinds_for(run, feed, server.url("/huge-title.html")) == ["title_truncated"]
    (title,) = [t for t in run.articles(feed.url) if t.startswith("Stablecoin Stablecoin")]
    assert len(title) == MAX_TITLE_CHARS


def test_date_in_the_year_3000_is_dropped_and_recorded(
    run: FaultRun, feed: HealthyFeed, server: LoopbackServer
) -> None:
    assert kinds_for(run, feed, server.url("/year-3000.html")) == ["bad_date"]
    rows = run.query("SELECT published_at FROM articles WHERE title = 'From the future'")
    assert rows == [(None,)]


def test_nothing_else_is_recorded(run: FaultRun, feed: HealthyFeed) -> None:
    assert sorted(k for _, _, k in run.errors(feed.url)) == [
        "bad_date",
        "bad_url",
        "no_link",
        "title_truncated",
    ]
