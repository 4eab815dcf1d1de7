"""Backfill sources without Prefect: feed archives, sitemaps and URL files on loopback."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from newsflow.demo.site import SiteServer
from newsflow.schemas.config import Settings
from newsflow.schemas.errors import ConfigError, ItemError
from newsflow.schemas.models import DateWindow, FeedEntry, Response
from newsflow.tasks.fetching.decompress import gunzip
from newsflow.tasks.fetching.fetch import Fetcher
from newsflow.tasks.sources.archive import older_than_window, walk_archive, wordpress_page
from newsflow.tasks.sources.feeds import parse_feed
from newsflow.tasks.sources.sitemap import parse_sitemap, walk_sitemaps
from newsflow.tasks.sources.urllist import read_url_file
from tests.conftest import make_settings
from tests.loopback import LoopbackServer

SITE_DIR = Path(__file__).parent / "fixtures" / "backfill_site"
SHANGHAI = ZoneInfo("Asia/Shanghai")
MARCH = DateWindow.of_days(date(2024, 3, 1), date(2024, 3, 31), SHANGHAI)
OPEN = DateWindow()


def pages_sitemap(base: str) -> bytes:
    """The gzipped child of sitemap_index.xml: a4 modified in April, a1 before March."""
    xml = (
        '<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        f"<url><loc>{base}/articles/a4.html</loc><lastmod>2024-04-01</lastmod></url>"
        f"<url><loc>{base}/articles/a1.html</loc><lastmod>2024-02-29T23:30:00+08:00</lastmod>"
        "</url></urlset>"
    )
    return gzip.compress(xml.encode())


def wp_page_2() -> bytes:
    feed = (SITE_DIR / "wp" / "feed.xml").read_text(encoding="utf-8")
    return feed.replace("a4", "a2").replace("a3", "a1").encode()


def serve_site(server: SiteServer) -> SiteServer:
    """Routes that need the server's own URL, or that stand for WordPress's ?paged=N."""
    server.extra_routes["/pages-sitemap.xml.gz"] = (
        200,
        {"Content-Type": "application/x-gzip"},
        pages_sitemap(server.base_url),
    )
    server.extra_routes["/wp/feed.xml?paged=2"] = (
        200,
        {"Content-Type": "application/rss+xml"},
        wp_page_2(),
    )
    server.extra_routes["/wp/feed.xml?paged=3"] = (404, {}, b"not found")
    return server


@pytest.fixture
def site() -> Iterator[SiteServer]:
    with SiteServer(SITE_DIR) as server:
        yield serve_site(server)


@pytest.fixture
def fetcher(tmp_path: Path) -> Iterator[Fetcher]:
    settings: Settings = make_settings(tmp_path)
    with Fetcher(settings.fetch) as f:
        yield f


def links(entries: list[FeedEntry]) -> list[str]:
    return [(e.link or "").rsplit("/", 1)[-1] for e in entries]


def test_archive_walk_stops_at_the_first_page_older_than_the_window(
    site: SiteServer, fetcher: Fetcher
) -> None:
    walk = walk_archive(
        fetcher, site.url("feed.xml"), window=MARCH, tz=SHANGHAI, max_pages=10, max_items=100
    )
    assert links(walk.entries) == [f"a{n}.html" for n in (5, 4, 3, 2, 1, 0)]
    assert walk.errors == []
    assert site.hits["/archive/0.xml"] == 1
    assert site.hits["/archive/never.xml"] == 0


def test_archive_walk_without_a_window_ends_where_the_links_end(
    site: SiteServer, fetcher: Fetcher
) -> None:
    walk = walk_archive(
        fetcher, site.url("feed.xml"), window=OPEN, tz=SHANGHAI, max_pages=10, max_items=100
    )
    # archive/never.xml does not exist: the walk keeps what it read and records the 404.
    assert len(walk.pages) == 3
    assert [(e.kind, e.url) for e in walk.errors] == [("http_404", site.url("archive/never.xml"))]


def test_archive_walk_is_bounded(site: SiteServer, fetcher: Fetcher) -> None:
    walk = walk_archive(
        fetcher, site.url("feed.xml"), window=OPEN, tz=SHANGHAI, max_pages=2, max_items=100
    )
    assert len(walk.pages) == 2
    assert [e.kind for e in walk.errors] == ["too_many_pages"]


def test_wordpress_feeds_are_paged_until_404(site: SiteServer, fetcher: Fetcher) -> None:
    walk = walk_archive(
        fetcher, site.url("wp/feed.xml"), window=OPEN, tz=SHANGHAI, max_pages=10, max_items=100
    )
    assert links(walk.entries) == ["a4.html", "a3.html", "a2.html", "a1.html"]
    assert walk.errors == []  # the 404 past the last page is the end, not a failure
    assert [r.query for r in site.requests] == ["", "paged=2", "paged=3"]


def test_a_server_that_ignores_paged_ends_the_walk(fetcher: Fetcher) -> None:
    with SiteServer(SITE_DIR) as server:  # no ?paged= routes: page 1 again
        walk = walk_archive(
            fetcher, server.url("wp/feed.xml"), window=OPEN, tz=SHANGHAI, max_pages=10, max_items=9
        )
    assert len(walk.pages) == 2 and walk.errors == []


def test_atom_next_link_and_wordpress_page_urls() -> None:
    atom = (
        b'<feed xmlns="http://www.w3.org/2005/Atom"><title>T</title>'
        b'<link rel="next" href="/feed?page=2"/><entry><title>e</title>'
        b'<link href="http://x.example/e"/><id>1</id></entry></feed>'
    )
    response = Response(url="http://x.example/feed", final_url="http://x.example/feed", status=200)
    parsed = parse_feed(response.model_copy(update={"body": atom}), 10)
    assert parsed.archive_link == "http://x.example/feed?page=2"
    assert wordpress_page("https://w.example/feed/?paged=2&a=1", 3) == (
        "https://w.example/feed/?a=1&paged=3"
    )


def test_older_than_window_needs_a_date() -> None:
    old = FeedEntry(link="x", published="Tue, 27 Feb 2024 10:00:00 +0800")
    new = FeedEntry(link="y", published="2024-03-01 00:00")
    undated = FeedEntry(link="z")
    assert older_than_window([old, undated], MARCH, SHANGHAI)
    assert not older_than_window([old, new], MARCH, SHANGHAI)
    assert not older_than_window([undated], MARCH, SHANGHAI)
    assert not older_than_window([old], OPEN, SHANGHAI)


def test_sitemap_index_news_and_gzip_filtered_by_window(site: SiteServer, fetcher: Fetcher) -> None:
    walk = walk_sitemaps(
        fetcher, site.url("sitemap_index.xml"), window=MARCH, tz=SHANGHAI, max_documents=10
    )
    assert sorted(links(walk.entries)) == ["a2.html", "a3.html", "a4.html"]
    assert walk.outside_window == 2  # a5 by its news date, a1 by its lastmod
    assert walk.publication == "Example Ledger"
    assert site.hits["/old-sitemap.xml"] == 0
    news = {e.link: e for e in walk.entries}[site.url("articles/a3.html")]
    assert (news.title, news.published, news.language) == (
        "Central bank widens digital currency pilot",
        "2024-03-10T12:00:00+08:00",
        "en",
    )


def test_sitemap_errors_and_bounds(site: SiteServer, fetcher: Fetcher) -> None:
    walk = walk_sitemaps(
        fetcher, site.url("sitemap_index.xml"), window=OPEN, tz=SHANGHAI, max_documents=2
    )
    assert [e.kind for e in walk.errors] == ["too_many_pages"]
    missing = walk_sitemaps(
        fetcher, site.url("nope.xml"), window=OPEN, tz=SHANGHAI, max_documents=2
    )
    assert [e.kind for e in missing.errors] == ["http_404"]


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"<html><body>no</body></html>", "not_a_sitemap"),
        (b"<urlset><url><loc>x</url>", "parse_error"),
        (
            b'<?xml version="1.0"?><!DOCTYPE u [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
            b"<urlset><url><loc>&b;</loc></url></urlset>",
            "parse_error",
        ),
    ],
    ids=["html", "broken", "entities"],
)
def test_bad_sitemaps(data: bytes, kind: str) -> None:
    with pytest.raises(ItemError) as exc:
        parse_sitemap(data, "http://x.example/s.xml")
    assert exc.value.kind == kind


def test_gunzip_is_bounded() -> None:
    assert gunzip(b"plain", 10) == b"plain"
    assert gunzip(gzip.compress(b"x" * 100), 100) == b"x" * 100
    with pytest.raises(ItemError) as exc:
        gunzip(gzip.compress(b"x" * 10_000_000), 1_000_000)
    assert exc.value.kind == "too_large"


def test_url_file(tmp_path: Path) -> None:
    path = tmp_path / "urls.txt"
    path.write_text(
        "\ufeff# comment\nhttps://a.example/1\n\n  https://a.example/2#frag  # note\n"
        "https://a.example/1\nftp://nope\n",
        encoding="utf-8",
    )
    entries, errors = read_url_file(path, 1 << 20)
    assert [e.link for e in entries] == ["https://a.example/1", "https://a.example/2"]
    assert [(e.kind, e.url) for e in errors] == [("bad_url", "ftp://nope")]
    assert f"{path}:6" in errors[0].message
    with pytest.raises(ConfigError):
        read_url_file(tmp_path / "missing.txt", 1 << 20)
    with pytest.raises(ConfigError, match=r"over the cap of 10$"):
        read_url_file(path, 10)


def urlset(locs: list[str], lastmod: str = "2024-03-05") -> bytes:
    urls = "".join(f"<url><loc>{loc}</loc><lastmod>{lastmod}</lastmod></url>" for loc in locs)
    return f'<?xml version="1.0"?><urlset>{urls}</urlset>'.encode()


def index(locs: list[str], lastmod: str = "2024-03-05") -> bytes:
    children = "".join(
        f"<sitemap><loc>{loc}</loc><lastmod>{lastmod}</lastmod></sitemap>" for loc in locs
    )
    return f'<?xml version="1.0"?><sitemapindex>{children}</sitemapindex>'.encode()


@pytest.fixture
def loopback() -> Iterator[LoopbackServer]:
    with LoopbackServer() as server:
        yield server


def serve_xml(server: LoopbackServer, path: str, body: bytes) -> None:
    server.routes[path] = lambda r: r.reply(200, body, {"Content-Type": "application/xml"})


def test_sitemap_with_year_one_lastmods_is_walked(
    loopback: LoopbackServer, fetcher: Fetcher
) -> None:
    # `<lastmod>0001-01-01</lastmod>` raised OverflowError out of the walk (and the backfill).
    serve_xml(loopback, "/index.xml", index([loopback.url("/pages.xml")], "0001-01-01"))
    pages = [loopback.url(f"/a{n}.html") for n in range(3)]
    serve_xml(loopback, "/pages.xml", urlset(pages, "0001-01-01T00:00:00+08:00"))
    walk = walk_sitemaps(
        fetcher, loopback.url("/index.xml"), window=MARCH, tz=SHANGHAI, max_documents=10
    )
    # A lastmod that cannot be true says nothing: the pages may lie in the window.
    assert [e.link for e in walk.entries] == pages
    assert walk.errors == []


def test_sitemap_urls_are_taken_once_and_capped_per_walk(
    loopback: LoopbackServer, fetcher: Fetcher
) -> None:
    # One urlset listed 20 times under other URLs gave 20 copies of each of its entries.
    pages = [loopback.url(f"/a{n}.html") for n in range(50)]
    serve_xml(loopback, "/pages.xml", urlset(pages))
    serve_xml(loopback, "/index.xml", index([loopback.url(f"/pages.xml?n={n}") for n in range(20)]))
    walk = walk_sitemaps(
        fetcher, loopback.url("/index.xml"), window=OPEN, tz=SHANGHAI, max_documents=30
    )
    assert [e.link for e in walk.entries] == pages
    assert walk.errors == []

    capped = walk_sitemaps(
        fetcher,
        loopback.url("/index.xml"),
        window=OPEN,
        tz=SHANGHAI,
        max_documents=30,
        max_entries=20,
    )
    assert [e.link for e in capped.entries] == pages[:20]
    assert [(e.kind, e.url) for e in capped.errors] == [
        ("too_many_entries", loopback.url("/pages.xml?n=0"))
    ]
    assert capped.documents == 2  # the index and the first urlset: the walk stopped there
