"""Network faults through the real ingest flow: each faulty feed or page beside healthy feeds.

One run carries every case of this module (they are independent feeds); each test checks its
own feed's rows, and that nothing else got any.
"""

from __future__ import annotations

import gzip
from datetime import timedelta

import pytest

from tests.faults.harness import (
    RSS_CT,
    FaultRun,
    GiB,
    HealthyFeed,
    Item,
    add_healthy_feed,
    rss,
    run_ingest_over,
    static,
)
from tests.loopback import (
    LoopbackServer,
    endless_chunks,
    gzip_bomb,
    http_date,
    never_answers,
    short_body,
    trickle_body,
)

TOTAL_DEADLINE = 2.0
# Hostile feed paths → the error kinds their feed must get, and nothing else.
FEED_KINDS = {
    "/trickle.xml": ["timeout"],
    "/silent.xml": ["timeout"],
    "/bomb.xml": ["too_large"],
    "/endless.xml": ["too_large"],
    "/short.xml": ["connection_error"],
    "/loop.xml": ["too_many_redirects"],
    "/429-seconds.xml": ["http_429"],
    "/503-date.xml": ["http_503"],
    "/429-garbage.xml": ["http_429"],
    "/404.xml": ["http_404"],
    "/410.xml": ["http_410"],
    "/500.xml": ["http_500"],
}


@pytest.fixture(scope="module")
def healthy(server: LoopbackServer) -> list[HealthyFeed]:
    return [add_healthy_feed(server, "en-ok", "en"), add_healthy_feed(server, "zh-ok", "zh")]


@pytest.fixture(scope="module")
def bomb_page_feed(server: LoopbackServer) -> HealthyFeed:
    """A feed whose first item links to a gzip bomb; its other items are fine."""
    return add_healthy_feed(
        server, "bomb-page", extra=[Item("Bomb", server.url("/bomb-page.html"))]
    )


@pytest.fixture(scope="module")
def run(
    server: LoopbackServer,
    healthy: list[HealthyFeed],
    bomb_page_feed: HealthyFeed,
    tmp_path_factory: pytest.TempPathFactory,
    prefect_harness: None,
) -> FaultRun:
    bomb = gzip_bomb()
    routes = server.routes
    routes["/trickle.xml"] = trickle_body
    routes["/silent.xml"] = never_answers
    routes["/bomb.xml"] = static(bomb, RSS_CT, **{"Content-Encoding": "gzip"})
    routes["/endless.xml"] = endless_chunks
    routes["/short.xml"] = short_body
    routes["/loop.xml"] = lambda r: r.reply(302, headers={"Location": "/loop.xml"})
    routes["/429-seconds.xml"] = static(b"slow down", "text/plain", 429, **{"Retry-After": "3600"})
    retry_date = http_date(timedelta(hours=2))
    routes["/503-date.xml"] = static(b"busy", "text/plain", 503, **{"Retry-After": retry_date})
    routes["/429-garbage.xml"] = static(b"later", "text/plain", 429, **{"Retry-After": "soon"})
    for status in (404, 410, 500):
        routes[f"/{status}.xml"] = static(b"nope", "text/html", status)
    routes["/bomb-page.html"] = static(bomb, "text/html", **{"Content-Encoding": "gzip"})
    return run_ingest_over(
        tmp_path_factory.mktemp("network"),
        [server.url(p) for p in FEED_KINDS] + [h.url for h in [*healthy, bomb_page_feed]],
        fetch={
            "total_deadline": TOTAL_DEADLINE,
            "read_timeout": 1.0,
            "connect_timeout": 1.0,
            "per_host_concurrency": 16,
        },
    )


def test_only_the_faulty_feeds_have_errors(
    run: FaultRun, server: LoopbackServer, bomb_page_feed: HealthyFeed
) -> None:
    faulty = {server.url(p) for p in FEED_KINDS} | {bomb_page_feed.url}
    assert run.feeds_with_errors() == faulty
    for path, kinds in FEED_KINDS.items():
        assert run.kinds(server.url(path)) == kinds, path
        assert run.feed(server.url(path))["status"] in {"failing", "gone"}
        assert run.articles(server.url(path)) == {}


def test_healthy_feeds_load_in_full(run: FaultRun, healthy: list[HealthyFeed]) -> None:
    for feed in healthy:
        run.assert_loaded_in_full(feed)


def test_run_is_bounded_in_time_and_memory(run: FaultRun) -> None:
    print(f"network run: {run.seconds:.1f} s, PSS {run.peak_memory / 2**20:.0f} MiB")
    # The slowest case is the trickle, cut at the total deadline (its own end is 50 s away):
    # the run ends well before any hostile server would have let it go.
    assert run.seconds < 40
    assert run.peak_memory < 1 * GiB
    assert run.summary.counts.feeds_checked == len(FEED_KINDS) + 3


def test_trickle_is_cut_by_the_total_deadline(run: FaultRun, server: LoopbackServer) -> None:
    assert "total deadline passed" in run.message(server.url("/trickle.xml"), "timeout")


def test_server_that_never_answers_times_out(run: FaultRun, server: LoopbackServer) -> None:
    assert run.kinds(server.url("/silent.xml")) == ["timeout"]


def test_gzip_bomb_feed_stops_at_the_size_cap(run: FaultRun, server: LoopbackServer) -> None:
    assert "body over" in run.message(server.url("/bomb.xml"), "too_large")


def test_gzip_bomb_page_is_one_page_error(
    run: FaultRun, server: LoopbackServer, bomb_page_feed: HealthyFeed
) -> None:
    bomb = server.url("/bomb-page.html")
    assert run.errors(bomb_page_feed.url) == [("download", bomb, "too_large")]
    run.assert_healthy_items_loaded(bomb_page_feed)
    assert sorted(run.articles(bomb_page_feed.url)) == sorted(bomb_page_feed.titles)


def test_endless_chunked_body_stops_at_the_size_cap(run: FaultRun, server: LoopbackServer) -> None:
    assert run.kinds(server.url("/endless.xml")) == ["too_large"]


def test_short_content_length(run: FaultRun, server: LoopbackServer) -> None:
    assert run.kinds(server.url("/short.xml")) == ["connection_error"]


def test_redirect_loop_stops_after_five_hops(run: FaultRun, server: LoopbackServer) -> None:
    assert run.kinds(server.url("/loop.xml")) == ["too_many_redirects"]
    assert server.paths_hit().count("/loop.xml") == 6


def _next_check_in(run: FaultRun, url: str) -> float:
    feed = run.feed(url)
    return (feed["next_check_at"] - feed["last_checked_at"]).total_seconds()


def test_retry_after_in_seconds_defers_the_feed(run: FaultRun, server: LoopbackServer) -> None:
    url = server.url("/429-seconds.xml")
    assert run.kinds(url) == ["http_429"]
    assert _next_check_in(run, url) == pytest.approx(3600, abs=5)
    assert server.paths_hit().count("/429-seconds.xml") == 1


def test_retry_after_as_http_date_defers_the_feed(run: FaultRun, server: LoopbackServer) -> None:
    url = server.url("/503-date.xml")
    assert run.kinds(url) == ["http_503"]
    assert _next_check_in(run, url) == pytest.approx(7200, abs=30)


def test_garbage_retry_after_falls_back_to_backoff(run: FaultRun, server: LoopbackServer) -> None:
    url = server.url("/429-garbage.xml")
    assert run.kinds(url) == ["http_429"]
    assert run.feed(url)["status"] == "failing"
    assert 0 < _next_check_in(run, url) != pytest.approx(3600, abs=5)


@pytest.mark.parametrize(
    ("status", "feed_status"), [(404, "failing"), (410, "gone"), (500, "failing")]
)
def test_http_errors(run: FaultRun, server: LoopbackServer, status: int, feed_status: str) -> None:
    url = server.url(f"/{status}.xml")
    assert run.errors(url) == [("fetch", url, f"http_{status}")]
    assert run.feed(url)["status"] == feed_status
    assert run.feed(url)["last_status_code"] == status


def test_not_modified_is_neither_an_error_nor_new_items(
    tmp_path_factory: pytest.TempPathFactory, prefect_harness: None
) -> None:
    tmp = tmp_path_factory.mktemp("not-modified")
    with LoopbackServer() as srv:
        feed = add_healthy_feed(srv, "cond")
        run_ingest_over(tmp, [feed.url])
        srv.hits.clear()
        again = run_ingest_over(tmp, [feed.url])
        assert [h["If-None-Match"] for _, h in srv.hits] != []
        assert srv.paths_hit() == ["/cond/feed.xml"]  # no page fetched again
    counts = again.summary.counts
    assert (counts.feeds_not_modified, counts.errors, counts.articles_new) == (1, 0, 0)
    again.assert_loaded_in_full(feed)
    assert again.feed(feed.url)["last_status_code"] == 304


def test_hostile_headers_leave_runs_completed_twice_in_a_row(
    tmp_path_factory: pytest.TempPathFactory, prefect_harness: None
) -> None:
    """A 5,000-digit Cache-Control max-age on a good feed, and Content-Encoding "gzip" 2,000
    times on a feed and on a page: every run completes with the good items loaded."""
    tmp = tmp_path_factory.mktemp("hostile-headers")
    chain = ", ".join(["gzip"] * 2000)
    packed = gzip.compress(gzip.compress(b"<rss/>"))
    with LoopbackServer() as srv:
        healthy = add_healthy_feed(srv, "max-age")
        feed = rss(
            [
                Item(t, srv.url(f"/max-age/p{i}.html"), guid=f"max-age-{i}")
                for i, t in enumerate(healthy.titles)
            ],
            title="Healthy max-age",
        ).encode()
        srv.routes[healthy.path] = static(
            feed, RSS_CT, **{"Cache-Control": "max-age=" + "9" * 5000}
        )
        srv.routes["/chain.xml"] = static(packed, RSS_CT, **{"Content-Encoding": chain})
        page_feed = add_healthy_feed(
            srv, "chain-page", extra=[Item("Chain", srv.url("/chain-page.html"))]
        )
        srv.routes["/chain-page.html"] = static(packed, "text/html", **{"Content-Encoding": chain})
        urls = [healthy.url, srv.url("/chain.xml"), page_feed.url]
        for attempt in (1, 2):  # the failing feeds stay due: the second run meets them again
            run = run_ingest_over(tmp, urls)
            assert run.query("SELECT status FROM runs") == [("completed",)] * attempt
            run.assert_loaded_in_full(healthy)
            run.assert_healthy_items_loaded(page_feed)
            assert run.feed(healthy.url)["poll_hint_s"] >= 24 * 3600
            assert run.kinds(srv.url("/chain.xml")) == ["bad_encoding"]
            # The second time the page's feed answers 304: its items are not fetched again.
            page_errors = [("download", srv.url("/chain-page.html"), "bad_encoding")]
            assert run.errors(page_feed.url) == (page_errors if attempt == 1 else [])
