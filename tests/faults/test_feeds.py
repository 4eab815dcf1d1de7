"""Hostile feeds through the real ingest flow: not feeds at all, lying charsets, XML bombs and
external entities, truncation, 50,000 items, control characters.

Every case is a feed of healthy items (pages that extract) served in one hostile way; one run
carries them all beside a healthy feed.
"""

from __future__ import annotations

import codecs
import resource
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from xml.parsers import expat

import pytest

from newsflow.schemas.errors import ConfigError
from newsflow.tasks.sources.feeds import check_xml_parser, unsafe_entity
from tests.faults.harness import (
    FaultRun,
    GiB,
    HealthyFeed,
    Item,
    add_healthy_feed,
    article_html,
    rss,
    run_beside_healthy,
    static,
)
from tests.faults.web import (
    CONTROL,
    LAUGHS,
    LOGIN_PAGE,
    cut_mid_item,
    with_control_characters,
    with_doctype,
)
from tests.loopback import LoopbackServer, Request

MAX_ITEMS = 100
BIG = 50_000
SECRET = f"NEWSFLOW-SECRET-{uuid.uuid4().hex}"


@dataclass(frozen=True)
class Ctx:
    server: LoopbackServer
    secret: Path


# Given the healthy feed and the context: the bytes and the Content-Type to serve instead.
Serve = Callable[[HealthyFeed, Ctx], tuple[bytes, str]]
RSS = "application/rss+xml"


def with_prolog(prolog: str, title_suffix: str = "") -> Serve:
    """The feed with a DOCTYPE after its declaration and raw markup (an entity reference)
    after every title."""

    def serve(feed: HealthyFeed, ctx: Ctx) -> tuple[bytes, str]:
        return with_doctype(feed.items, prolog.format(secret=ctx.secret), title_suffix), RSS

    return serve


def gbk_declared_utf8(feed: HealthyFeed, ctx: Ctx) -> tuple[bytes, str]:
    return rss(feed.items).encode("gb18030"), f"{RSS}; charset=utf-8"


def bom_against_declaration(feed: HealthyFeed, ctx: Ctx) -> tuple[bytes, str]:
    return codecs.BOM_UTF8 + rss(feed.items, encoding="gbk").encode(), f"{RSS}; charset=gbk"


def fifty_thousand_items(feed: HealthyFeed, ctx: Ctx) -> tuple[bytes, str]:
    more = (Item(f"Item {n}", ctx.server.url(f"/big/page?n={n}")) for n in range(BIG - 2))
    return rss([*feed.items, *more]).encode(), RSS


@dataclass(frozen=True)
class Case:
    language: str
    serve: Serve | None  # None: served as built (gb2312 labels over GBK bytes for "zh")
    kinds: list[str]  # the feed's error rows
    loads: bool  # whether its healthy items are stored


CASES = {
    "login": Case(
        "en", lambda f, c: (LOGIN_PAGE, "text/html; charset=utf-8"), ["not_a_feed"], False
    ),
    "empty": Case("en", lambda f, c: (b"", RSS), ["not_a_feed"], False),
    "gbk-as-utf8": Case("zh", gbk_declared_utf8, [], True),
    "gb2312": Case("zh", None, [], True),
    "bom": Case("zh", bom_against_declaration, [], True),
    "laughs-one-line": Case("en", with_prolog(LAUGHS, "&lol9;"), ["unsafe_xml"], False),
    "laughs-many-lines": Case(
        "en", with_prolog(LAUGHS.replace("<!", "\n<!"), "&lol9;"), ["unsafe_xml"], False
    ),
    "xxe": Case(
        "en",
        with_prolog('<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file://{secret}">]>', "&xxe;"),
        ["unsafe_xml"],
        False,
    ),
    "xxe-parameter": Case(
        "en",
        with_prolog('<!DOCTYPE rss [<!ENTITY % p SYSTEM "file://{secret}"> %p;]>'),
        ["unsafe_xml"],
        False,
    ),
    "external-dtd": Case("en", None, [], True),  # served in the fixture: it needs the port
    "cut-off": Case(
        "en", lambda f, c: (cut_mid_item(f.items, c.server), RSS), ["feed_recovered"], True
    ),
    "control-chars": Case(
        "en", lambda f, c: (with_control_characters(f.items), RSS), ["feed_recovered"], True
    ),
    "big": Case("en", fifty_thousand_items, ["too_many_items"], True),
}


def big_page(request: Request) -> None:
    n = request.path.rsplit("=", 1)[-1]
    html = article_html(f"Item {n}", [f"Body of item {n}, long enough to be an article. " * 4])
    request.reply(200, html.encode())


@pytest.fixture(scope="module")
def feeds(
    server: LoopbackServer, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, HealthyFeed]:
    secret = tmp_path_factory.mktemp("secret") / "secret.txt"
    secret.write_text(SECRET, encoding="utf-8")
    ctx = Ctx(server, secret)
    feeds = {name: add_healthy_feed(server, name, case.language) for name, case in CASES.items()}
    for name, case in CASES.items():
        if case.serve is not None:
            body, content_type = case.serve(feeds[name], ctx)
            server.routes[feeds[name].path] = static(body, content_type)
    dtd = f'<!DOCTYPE rss SYSTEM "{server.url("/evil.dtd")}">'
    body, content_type = with_prolog(dtd)(feeds["external-dtd"], ctx)
    server.routes[feeds["external-dtd"].path] = static(body, content_type)
    server.routes["/big/page"] = big_page
    return feeds


@pytest.fixture(scope="module")
def run(
    server: LoopbackServer,
    feeds: dict[str, HealthyFeed],
    tmp_path_factory: pytest.TempPathFactory,
    prefect_harness: None,
) -> FaultRun:
    return run_beside_healthy(
        server,
        tmp_path_factory.mktemp("feeds"),
        [f.url for f in feeds.values()],
        max_items_per_feed=MAX_ITEMS,
        fetch={"per_host_concurrency": 16},
    )


def check(run: FaultRun, feed: HealthyFeed, name: str) -> None:
    """The case's error kinds exactly; its healthy items stored, or nothing and a failing feed."""
    case = CASES[name]
    assert run.kinds(feed.url) == case.kinds
    if case.loads:
        run.assert_healthy_items_loaded(feed)
    else:
        assert run.articles(feed.url) == {}
        assert run.feed(feed.url)["status"] == "failing"


def test_only_the_faulty_feeds_have_errors(run: FaultRun, feeds: dict[str, HealthyFeed]) -> None:
    assert run.feeds_with_errors() == {feeds[n].url for n, c in CASES.items() if c.kinds}


def test_run_is_bounded_in_time_and_memory(run: FaultRun) -> None:
    print(f"feeds run: {run.seconds:.1f} s, PSS {run.peak_memory / 2**20:.0f} MiB")
    assert run.seconds < 60
    assert run.peak_memory < 1 * GiB


def test_login_page_is_not_a_feed(run: FaultRun, feeds: dict[str, HealthyFeed]) -> None:
    check(run, feeds["login"], "login")
    assert "HTML page" in run.message(feeds["login"].url, "not_a_feed")


def test_empty_200_is_not_a_feed(run: FaultRun, feeds: dict[str, HealthyFeed]) -> None:
    check(run, feeds["empty"], "empty")
    assert run.summary.counts.feeds_failed >= 2


def test_gbk_bytes_declared_utf8(run: FaultRun, feeds: dict[str, HealthyFeed]) -> None:
    check(run, feeds["gbk-as-utf8"], "gbk-as-utf8")


def test_gb2312_declared_over_gbk_only_characters(
    run: FaultRun, feeds: dict[str, HealthyFeed]
) -> None:
    check(run, feeds["gb2312"], "gb2312")
    assert any("镕" in t for t in run.articles(feeds["gb2312"].url))


def test_bom_outranks_the_declaration(run: FaultRun, feeds: dict[str, HealthyFeed]) -> None:
    check(run, feeds["bom"], "bom")


@pytest.mark.parametrize("name", ["laughs-one-line", "laughs-many-lines"])
def test_billion_laughs_is_refused(run: FaultRun, feeds: dict[str, HealthyFeed], name: str) -> None:
    check(run, feeds[name], name)
    assert "lollol" not in run.stored_text()  # nothing was ever expanded
    assert "entity bomb" in run.message(feeds[name].url, "unsafe_xml")


@pytest.mark.parametrize("name", ["xxe", "xxe-parameter"])
def test_external_entities_are_never_resolved(
    run: FaultRun, feeds: dict[str, HealthyFeed], name: str
) -> None:
    check(run, feeds[name], name)
    assert SECRET not in run.stored_text()


def test_external_dtd_is_never_fetched(
    run: FaultRun, feeds: dict[str, HealthyFeed], server: LoopbackServer
) -> None:
    check(run, feeds["external-dtd"], "external-dtd")
    assert "/evil.dtd" not in server.paths_hit()


def test_feed_cut_off_mid_item_keeps_the_complete_items(
    run: FaultRun, feeds: dict[str, HealthyFeed]
) -> None:
    check(run, feeds["cut-off"], "cut-off")
    assert sorted(run.articles(feeds["cut-off"].url)) == sorted(feeds["cut-off"].titles)


def test_50000_items_are_capped_and_the_cap_recorded(
    run: FaultRun, feeds: dict[str, HealthyFeed]
) -> None:
    feed = feeds["big"]
    check(run, feed, "big")
    assert len(run.articles(feed.url)) == MAX_ITEMS
    message = run.message(feed.url, "too_many_items")
    assert f"{BIG} items" in message and f"first {MAX_ITEMS}" in message


def test_control_characters_in_titles_are_removed(
    run: FaultRun, feeds: dict[str, HealthyFeed]
) -> None:
    check(run, feeds["control-chars"], "control-chars")
    assert sorted(run.articles(feeds["control-chars"].url)) == sorted(feeds["control-chars"].titles)
    assert not any(c in run.stored_text() for c in CONTROL)


def test_expat_without_amplification_limits_is_refused_at_startup() -> None:
    check_xml_parser()  # this runtime's expat; importing newsflow.tasks.sources.feeds ran the
    # same check
    with pytest.raises(ConfigError, match=r"expat 2\.2\.10, .* needs expat >= 2\.4\.1"):
        check_xml_parser((2, 2, 10))


def test_runtime_expat_stops_a_billion_laughs_quickly() -> None:
    """The second line of defence, should a bomb ever get past the DTD check."""
    parser = expat.ParserCreate()
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.process_time()  # CPU time, which other processes' load does not stretch
    with pytest.raises(expat.ExpatError, match="amplification"):
        parser.Parse(f'<?xml version="1.0"?>{LAUGHS}<r>&lol9;</r>'.encode(), True)
    assert time.process_time() - started < 5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 200 * 1024  # KiB


@pytest.mark.parametrize(
    "doctype",
    [
        '<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" '
        '"http://my.netscape.com/publish/formats/rss-0.91.dtd">',
        '<!DOCTYPE rss [<!ENTITY copy "&#169;"><!ENTITY nbsp "&#160;"><!ENTITY b "<b>x</b>">]>',
        '<!DOCTYPE rss [<!ENTITY % HTMLlat1 PUBLIC "-//W3C//ENTITIES Latin 1 for XHTML//EN" '
        '"http://www.w3.org/TR/xhtml1/DTD/xhtml-lat1.ent"> %HTMLlat1;]>',
        "",
    ],
    ids=["public-dtd", "plain-entities", "public-entity-set", "none"],
)
def test_ordinary_doctypes_are_not_unsafe(doctype: str) -> None:
    assert unsafe_entity(f'<?xml version="1.0"?>{doctype}<rss><i>&copy;</i></rss>'.encode()) is None
