"""The bundled demo site and its loopback server (newsflow/demo/site.py)."""

from __future__ import annotations

import html
import json
import tomllib
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import datetime
from email.message import Message
from pathlib import Path
from urllib.parse import urlsplit

import feedparser
import pytest

from newsflow.demo.catalogue import (
    DEMO_FEEDS,
    MISSING_PAGE,
    DemoFeed,
    demo_feeds_toml,
    load_manifest,
)
from newsflow.demo.site import SiteServer

MANIFEST = load_manifest()
# Loopback only: never let an http_proxy variable route these requests elsewhere.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fetch(url: str, headers: Mapping[str, str] | None = None) -> tuple[int, Message, bytes]:
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with _OPENER.open(request, timeout=10) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:  # 304 and 404 arrive as errors
        return err.code, err.headers, err.read()


@pytest.fixture(scope="module")
def site() -> Iterator[SiteServer]:
    with SiteServer() as server:
        yield server


def test_manifest_describes_the_site() -> None:
    langs = Counter(page["language"] for page in MANIFEST)
    assert len(MANIFEST) >= 32
    assert langs["zh"] >= 12
    assert langs["en"] >= 12
    paths = {page["path"] for page in MANIFEST}
    assert len(paths) == len(MANIFEST)
    originals = {page["syndicates"] for page in MANIFEST if page["syndicates"]}
    assert len(originals) >= 3
    assert originals <= paths
    assert {page["topic"] for page in MANIFEST} == {"blockchain-policy", "other"}
    assert sum(page["encoding"] == "gbk" for page in MANIFEST) >= 2
    for page in MANIFEST:
        assert page["published"].endswith("Z")
        assert datetime.fromisoformat(page["published"]).utcoffset() is not None
        assert page["feeds"], f"{page['path']} is in no feed"


@pytest.mark.parametrize("feed", DEMO_FEEDS, ids=lambda f: f.path.rsplit("/", 1)[-1])
def test_feed_is_served_and_parses(site: SiteServer, feed: DemoFeed) -> None:
    path = feed.path
    status, headers, body = fetch(site.url(path))
    assert status == 200
    assert b"{base}" not in body
    assert site.base_url.encode() in body
    parsed = feedparser.parse(body, response_headers={"content-type": headers["Content-Type"]})
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.entries
    for entry in parsed.entries:
        assert entry.link.startswith(site.base_url + "/")
        assert entry.title
    if path.endswith(".atom"):
        assert headers.get_content_type() == "application/atom+xml"
    elif path.endswith(".rdf"):
        assert headers.get_content_type() == "application/rdf+xml"
    else:
        assert headers.get_content_type() == "application/rss+xml"


def test_gbk_feed_is_gbk_on_the_wire(site: SiteServer) -> None:
    status, headers, body = fetch(site.url("/feeds/chain-cn.xml"))
    assert status == 200
    assert headers.get_content_charset() == "gbk"
    assert body.startswith(b'<?xml version="1.0" encoding="gbk"?>')
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")
    text = body.decode("gbk")
    assert "链闻财经" in text
    assert f"{site.base_url}/articles/zh/" in text
    parsed = feedparser.parse(body)
    assert parsed.encoding == "gbk"
    assert any("先导区" in entry.title for entry in parsed.entries)


def test_feed_links_point_at_manifest_pages(site: SiteServer) -> None:
    pages = {"/" + page["path"]: page for page in MANIFEST}
    linked: dict[str, set[str]] = {}
    tracked = []
    for feed in DEMO_FEEDS:
        parsed = feedparser.parse(fetch(site.url(feed.path))[2])
        for entry in parsed.entries:
            parts = urlsplit(entry.link)
            if parts.query:
                tracked.append(parts.query)
            linked.setdefault(parts.path, set()).add(feed.path.lstrip("/"))
    assert set(linked) - set(pages) == {MISSING_PAGE}
    assert set(pages) <= set(linked)
    for path, page in pages.items():
        assert linked[path] == set(page["feeds"]), path
    assert any(len(feeds) > 1 for feeds in linked.values())
    assert any("utm_source=rss" in q for q in tracked)
    assert any("spm=" in q for q in tracked)


def test_every_manifest_page_is_served(site: SiteServer) -> None:
    for page in MANIFEST:
        status, headers, body = fetch(site.url(page["path"]))
        assert status == 200, page["path"]
        assert headers.get_content_type() == "text/html"
        charset = headers.get_content_charset()
        if page["encoding"] == "gbk":
            assert charset == "gb2312", page["path"]
            text = body.decode("gb18030")
        else:
            assert charset == "utf-8", page["path"]
            text = body.decode("utf-8")
        assert "{base}" not in text
        assert html.escape(page["title"]) in text
    status, _, _ = fetch(site.url(MISSING_PAGE))
    assert status == 404


def test_conditional_get_and_hits(site: SiteServer) -> None:
    path = "/feeds/ministry.rdf"
    before = site.hits[path]
    status, headers, body = fetch(site.url(path))
    assert status == 200
    etag, last_modified = headers["ETag"], headers["Last-Modified"]
    assert etag and last_modified
    status, headers, body = fetch(site.url(path), {"If-None-Match": etag})
    assert (status, body) == (304, b"")
    assert headers["ETag"] == etag
    status, _, _ = fetch(site.url(path), {"If-Modified-Since": last_modified})
    assert status == 304
    status, _, body = fetch(site.url(path), {"If-None-Match": '"stale"'})
    assert status == 200
    assert body
    # the query string is not part of the counted path
    fetch(site.url(path) + "?utm_source=rss")
    assert site.hits[path] == before + 5
    assert [r.status for r in site.requests if r.path == path][-5:] == [200, 304, 304, 200, 200]


def test_extra_routes_latency_and_restart(tmp_path: Path) -> None:
    (tmp_path / "a.xml").write_bytes(b'<?xml version="1.0"?><rss><link>{base}/x</link></rss>')
    routes = {
        "/gone.xml": (410, {"Content-Type": "text/plain"}, b"gone"),
        "/login": (200, {"Content-Type": "text/html; charset=utf-8"}, b"<a href='{base}/'>"),
    }
    with SiteServer(tmp_path, latency=0.05, extra_routes=routes) as server:
        status, _, body = fetch(server.url("a.xml"))
        assert status == 200
        assert body == f'<?xml version="1.0"?><rss><link>{server.base_url}/x</link></rss>'.encode()
        assert fetch(server.url("gone.xml"))[:3:2] == (410, b"gone")
        assert fetch(server.url("login?next=/"))[2] == f"<a href='{server.base_url}/'>".encode()
        assert fetch(server.url("../etc/passwd"))[0] == 404
        expected = {"/a.xml": 1, "/gone.xml": 1, "/login": 1, "/../etc/passwd": 1}
        assert server.hits == Counter(expected)
    # restarted on a new port, cached bodies must not keep the old base URL
    with server:
        assert fetch(server.url("a.xml"))[2].count(server.base_url.encode()) == 1


def test_demo_feeds_toml(site: SiteServer, tmp_path: Path) -> None:
    text = demo_feeds_toml(site.base_url + "/")
    raw = tomllib.loads(text)
    assert raw["defaults"]["timezone"] == "Asia/Shanghai"
    urls = [feed["url"] for feed in raw["feeds"]]
    assert urls == [site.base_url + feed.path for feed in DEMO_FEEDS]
    for feed in raw["feeds"]:
        assert {"url", "name", "source", "language", "categories"} <= set(feed)
    try:
        from newsflow.schemas.config import load_feeds_file
    except ImportError:  # the schema module is someone else's; check it when it is there
        return
    path = tmp_path / "feeds.toml"
    path.write_text(text, encoding="utf-8")
    assert len(load_feeds_file(path).feeds) == len(DEMO_FEEDS)


FIXTURES = Path(__file__).parent / "fixtures"
FEED_KEYS = {"kind", "entries", "first_title", "first_link", "first_published", "bozo"}
PAGE_KEYS = {"title", "published", "language", "must_contain", "must_not_contain"}


@pytest.mark.parametrize(
    "expectation", sorted((FIXTURES / "feeds").glob("*.json")), ids=lambda p: p.stem
)
def test_feed_fixture_states_its_expectation(expectation: Path) -> None:
    expected = json.loads(expectation.read_text(encoding="utf-8"))
    assert set(expected) >= FEED_KEYS
    assert expected["kind"] in {None, "not_a_feed", "parse_error"}
    (feed,) = [p for p in expectation.parent.glob(expectation.stem + ".*") if p != expectation]
    # `bozo` is a fact about the bytes, as feedparser sees them
    assert bool(feedparser.parse(feed.read_bytes()).bozo) is expected["bozo"]


@pytest.mark.parametrize(
    "expectation", sorted((FIXTURES / "pages").glob("*.json")), ids=lambda p: p.stem
)
def test_page_fixture_states_its_expectation(expectation: Path) -> None:
    expected = json.loads(expectation.read_text(encoding="utf-8"))
    assert set(expected) >= PAGE_KEYS
    raw = expectation.with_suffix(".html").read_bytes()
    text = raw.decode("gb18030" if expected.get("encoding") == "gbk" else "utf-8")
    for sentence in expected["must_contain"]:
        assert sentence in text
