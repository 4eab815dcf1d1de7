"""Bad input through the whole flow: each fault gets its ingest_errors row, the rest loads."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from newsflow.demo.site import SiteServer
from newsflow.flows.ingest import ingest
from tests.conftest import make_settings

pytestmark = pytest.mark.usefixtures("prefect_harness")

PARAGRAPHS = "".join(
    f"<p>第{i}段：监管部门表示，将稳妥推进数字人民币试点，完善区块链信息服务备案管理，"
    "推动产业链上下游协同发展。</p>"
    for i in range(6)
)


def page(title: str) -> bytes:
    return (
        f"<html><head><meta charset='utf-8'><title>{title}</title></head><body>"
        f"<nav><a href='/'>首页</a></nav><article><h1>{title}</h1>{PARAGRAPHS}</article>"
        "<footer>版权所有</footer></body></html>"
    ).encode()


def rss(items: list[tuple[str, str]], encoding: str = "utf-8") -> bytes:
    body = "".join(
        f"<item><title>{t}</title><link>{{base}}{link}</link><guid>{link}</guid>"
        f"<pubDate>2024-03-05 09:30</pubDate></item>"
        for t, link in items
    )
    xml = (
        f'<?xml version="1.0" encoding="{encoding}"?><rss version="2.0"><channel>'
        f"<title>测试源</title>{body}</channel></rss>"
    )
    return xml.encode("gbk" if encoding == "gbk" else "utf-8")


HTML = {"Content-Type": "text/html; charset=utf-8"}
RSS = {"Content-Type": "application/rss+xml"}


def routes() -> dict[str, tuple[int, dict[str, str], bytes]]:
    good_items = [
        ("好文章", "/p/ok.html"),
        ("不存在", "/p/missing.html"),
        ("服务器错误", "/p/boom.html"),
        ("PDF文件", "/p/doc.pdf"),
        ("超大页面", "/p/huge.html"),
    ]
    return {
        "/feeds/good.xml": (200, RSS, rss(good_items)),
        "/p/ok.html": (200, HTML, page("好文章")),
        "/p/boom.html": (500, HTML, b"oops"),
        "/p/doc.pdf": (200, {"Content-Type": "application/pdf"}, b"%PDF-1.4 ..."),
        "/p/huge.html": (200, HTML, page("超大页面") + b"<!--" + b"x" * 400_000 + b"-->"),
        # GBK bytes, but the server says UTF-8 (and so does the declaration)
        "/feeds/gbk-says-utf8.xml": (
            200,
            {"Content-Type": "application/rss+xml; charset=utf-8"},
            rss([("深圳前海发布数字人民币跨境应用十条措施", "/p/gbk-item.html")], "gbk").replace(
                b'encoding="gbk"', b'encoding="utf-8"'
            ),
        ),
        "/p/gbk-item.html": (200, HTML, page("深圳前海发布数字人民币跨境应用十条措施")),
        "/feeds/malformed.xml": (
            200,
            RSS,
            b'<?xml version="1.0"?><rss version="2.0"><channel><title>Broken</title><<<>>>',
        ),
        "/feeds/login.xml": (
            200,
            HTML,
            b"<!doctype html><html><body><form>login</form></body></html>",
        ),
        "/feeds/boom.xml": (500, RSS, b"server error"),
    }


def test_each_fault_is_recorded_and_the_rest_loads(tmp_path: Path) -> None:
    (tmp_path / "site").mkdir()
    with SiteServer(root=tmp_path / "site", extra_routes=routes()) as site:
        feeds = [
            "good.xml",
            "gbk-says-utf8.xml",
            "malformed.xml",
            "login.xml",
            "gone.xml",
            "boom.xml",
        ]
        settings = make_settings(tmp_path, fetch={"max_bytes": 300_000})
        settings.feeds_path.write_text(
            "".join(f'[[feeds]]\nurl = "{site.base_url}/feeds/{f}"\n\n' for f in feeds),
            encoding="utf-8",
        )
        summary = ingest(settings=settings)
        base = site.base_url

    def url(path: str) -> str:
        return base + path

    con = duckdb.connect(str(settings.db_path), read_only=True)
    errors = set(con.execute("SELECT stage, kind, url FROM ingest_errors").fetchall())
    titles = {r[0] for r in con.execute("SELECT title FROM articles").fetchall()}
    statuses = dict(con.execute("SELECT url, status FROM feeds").fetchall())
    con.close()

    assert errors == {
        ("download", "http_404", url("/p/missing.html")),
        ("download", "http_500", url("/p/boom.html")),
        ("download", "not_html", url("/p/doc.pdf")),
        ("download", "too_large", url("/p/huge.html")),
        ("parse", "parse_error", url("/feeds/malformed.xml")),
        ("parse", "not_a_feed", url("/feeds/login.xml")),
        ("fetch", "http_404", url("/feeds/gone.xml")),
        ("fetch", "http_500", url("/feeds/boom.xml")),
    }
    # the good page and the GBK feed's item (decoded right despite the lie) load
    assert titles == {"好文章", "深圳前海发布数字人民币跨境应用十条措施"}
    assert summary.counts.feeds_failed == 4
    assert summary.counts.articles_new == 2
    assert statuses[url("/feeds/good.xml")] == "active"
    assert statuses[url("/feeds/boom.xml")] == "failing"
