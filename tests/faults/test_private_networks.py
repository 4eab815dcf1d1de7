"""Feeds and links that point at internal services: refused after DNS, at every hop.

127.0.0.1 stands in for the public web (`allowed_networks`); 127.0.0.2 is the internal service
that must never see a request. The last test runs with the default settings, where even the
feed server itself is refused before a single request reaches it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.harness import (
    FaultRun,
    HealthyFeed,
    Item,
    add_healthy_feed,
    run_beside_healthy,
    run_ingest_over,
)
from tests.loopback import LoopbackServer

PUBLIC_STAND_IN = {"allow_private_networks": False, "allowed_networks": ("127.0.0.1/32",)}


@pytest.fixture(scope="module")
def internal() -> Iterator[LoopbackServer]:
    with LoopbackServer("127.0.0.2") as srv:
        srv.routes["/admin"] = lambda r: r.reply(200, b"<rss/>")
        yield srv


@pytest.fixture(scope="module")
def links_feed(server: LoopbackServer, internal: LoopbackServer) -> HealthyFeed:
    """Healthy items, and items linking to loopback, link-local, private and IPv6 loopback."""
    bad = [
        internal.url("/admin"),
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/router",
        f"http://[::1]:{internal.port}/admin",
    ]
    return add_healthy_feed(server, "links", extra=[Item(f"bad {i}", u) for i, u in enumerate(bad)])


@pytest.fixture(scope="module")
def run(
    server: LoopbackServer,
    internal: LoopbackServer,
    links_feed: HealthyFeed,
    tmp_path_factory: pytest.TempPathFactory,
    prefect_harness: None,
) -> FaultRun:
    server.routes["/to-internal.xml"] = lambda r: r.reply(
        302, headers={"Location": internal.url("/admin")}
    )
    server.routes["/to-metadata.xml"] = lambda r: r.reply(
        302, headers={"Location": "http://169.254.169.254/latest/meta-data/"}
    )
    return run_beside_healthy(
        server,
        tmp_path_factory.mktemp("private"),
        [server.url("/to-internal.xml"), server.url("/to-metadata.xml"), links_feed.url],
        fetch=PUBLIC_STAND_IN,
    )


def test_redirect_to_an_internal_address_is_refused(
    run: FaultRun, server: LoopbackServer, internal: LoopbackServer
) -> None:
    url = server.url("/to-internal.xml")
    assert run.errors(url) == [("fetch", url, "blocked_address")]
    assert "127.0.0.2" in run.message(url, "blocked_address")
    assert internal.hits == []


def test_redirect_to_link_local_metadata_is_refused(run: FaultRun, server: LoopbackServer) -> None:
    url = server.url("/to-metadata.xml")
    assert run.errors(url) == [("fetch", url, "blocked_address")]
    assert run.feed(url)["status"] == "failing"


def test_links_to_internal_addresses_are_refused(
    run: FaultRun, links_feed: HealthyFeed, internal: LoopbackServer
) -> None:
    errors = run.errors(links_feed.url)
    assert [(stage, kind) for stage, _, kind in errors] == [("download", "blocked_address")] * 4
    run.assert_healthy_items_loaded(links_feed)
    assert sorted(run.articles(links_feed.url)) == sorted(links_feed.titles)
    assert internal.hits == []


def test_only_the_faulty_feeds_have_errors(
    run: FaultRun, server: LoopbackServer, links_feed: HealthyFeed
) -> None:
    faulty = {server.url("/to-internal.xml"), server.url("/to-metadata.xml"), links_feed.url}
    assert run.feeds_with_errors() == faulty


def test_default_settings_refuse_loopback_before_any_request(
    tmp_path_factory: pytest.TempPathFactory, prefect_harness: None
) -> None:
    with LoopbackServer() as srv:
        feed = add_healthy_feed(srv, "local")
        by_name = feed.url.replace("127.0.0.1", "localhost")  # refused after DNS resolution
        run = run_ingest_over(
            tmp_path_factory.mktemp("default"),
            [feed.url, by_name],
            fetch={"allow_private_networks": False},
        )
        assert srv.hits == []
    for url in (feed.url, by_name):
        assert run.errors(url) == [("fetch", url, "blocked_address")]
