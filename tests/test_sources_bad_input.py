"""Bad input to declared sources: one clear error each, the rest of the source goes on.

Lists are served on loopback and read through the real Fetcher; dates and links through the
functions the reader uses."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from newsflow.schemas.config import Settings
from newsflow.schemas.errors import ItemError
from newsflow.schemas.sources import SourceConfig, resolve_entry
from newsflow.tasks.fetching.fetch import Fetcher
from newsflow.tasks.pipeline.declared import walk_pages, walk_source_back
from newsflow.tasks.sources.declared.fields import item_date, item_link
from newsflow.tasks.sources.declared.signers import sign, sign_cls

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2025, 9, 7, 12, 0, tzinfo=UTC)  # 20:00 in Shanghai


@pytest.mark.parametrize(
    ("raw", "fmt", "local"),
    [
        ("1757237160", "epoch_s", "2025-09-07 17:26"),
        ("1757237160000", "epoch_s", "2025-09-07 17:26"),  # milliseconds told as seconds
        ("1757237160", "epoch_ms", "2025-09-07 17:26"),  # and the other way round
        ("3分钟前", "text", "2025-09-07 19:57"),
        ("2小时前", "text", "2025-09-07 18:00"),
        ("刚刚", "text", "2025-09-07 20:00"),
        ("昨天 17:26", "text", "2025-09-06 17:26"),
        ("前天 08:05", "text", "2025-09-05 08:05"),
        ("09-07 17:26", "text", "2025-09-07 17:26"),  # no year: this year's
        ("12-30 09:00", "text", "2024-12-30 09:00"),  # …unless that is still to come
        ("2025年9月7日 17:26", "text", "2025-09-07 17:26"),
        ("2025/09/07", "%Y/%m/%d", "2025-09-07 00:00"),
    ],
)
def test_dates_list_pages_write(raw: str, fmt: str, local: str) -> None:
    parsed = item_date(raw, fmt, TZ, NOW)
    assert parsed is not None
    assert parsed.astimezone(TZ).strftime("%Y-%m-%d %H:%M") == local


@pytest.mark.parametrize(("raw", "fmt"), [("下周", "text"), ("2025.13.40", "%Y.%m.%d")])
def test_an_unreadable_date_is_bad_date(raw: str, fmt: str) -> None:
    with pytest.raises(ItemError) as caught:
        item_date(raw, fmt, TZ, NOW)
    assert caught.value.kind == "bad_date"


@pytest.mark.parametrize(
    ("raw", "link"),
    [
        ("/a/1.htm", "https://site.example/a/1.htm"),
        ("../b/2.htm", "https://site.example/b/2.htm"),
        ("//cdn.example/c.htm", "https://cdn.example/c.htm"),
        ("https://x.example/d", "https://x.example/d"),
    ],
)
def test_relative_and_protocol_relative_links(raw: str, link: str) -> None:
    assert item_link(raw, "https://site.example/list/index.htm") == link


def test_a_javascript_link_is_bad_link() -> None:
    with pytest.raises(ItemError) as caught:
        item_link("javascript:void(0)", "https://site.example/")
    assert caught.value.kind == "bad_link"


def test_the_cls_signer_is_sha1_then_md5_of_the_sorted_query() -> None:
    import hashlib

    signed = sign_cls({"hasFirstVipArticle": "1", "category": ""})
    query = "appName=CailianpressWeb&category=&hasFirstVipArticle=1&os=web&sv=7.7.5"
    sha1 = hashlib.sha1(query.encode()).hexdigest()
    assert signed["sign"] == hashlib.md5(sha1.encode()).hexdigest()
    assert list(signed)[:-1] == sorted(list(signed)[:-1])


def test_a_signer_failure_is_signer_failed() -> None:
    with pytest.raises(ItemError) as caught:  # a lone surrogate, as a JSON cursor can carry
        sign("cls", {"last_time": "\ud800"}, "https://www.cls.cn/v3/depth/list/1000")
    assert caught.value.kind == "signer_failed"


@pytest.fixture
def fetcher(settings: Settings) -> Iterator[Fetcher]:
    with Fetcher(settings.fetch) as client:
        yield client


def api(server: HTTPServer, **over: Any) -> SourceConfig:
    entry = {
        "kind": "json_api",
        "name": "test-api",
        "request": {"url": server.url_for("/api"), "params": {"before": "{cursor}"}},
        "items": {"path": "data.list"},
        "fields": {"title": "title", "link": "url", "date": "time", "date_format": "epoch_s"},
        **over,
    }
    source = resolve_entry(entry)
    assert isinstance(source, SourceConfig)
    return source


def items(*times: int) -> list[dict[str, Any]]:
    return [{"title": f"第{t}条", "url": f"/n/{t}.html", "time": 1757237160 - t} for t in times]


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b'{"data": {"list": [', "parse_error"),
        (
            b"<!DOCTYPE html><html><body>\xe7\xb3\xbb\xe7\xbb\x9f\xe7\xbb\xb4\xe6\x8a\xa4</body>",
            "not_json",
        ),
    ],
)
def test_a_body_that_is_not_json(
    body: bytes, kind: str, httpserver: HTTPServer, fetcher: Fetcher
) -> None:
    httpserver.expect_request("/api").respond_with_data(body, content_type="application/json")
    with pytest.raises(ItemError) as caught:
        walk_pages(api(httpserver), fetcher, None, TZ, 1)
    assert caught.value.kind == kind


def test_a_path_hitting_a_list_where_a_string_was_expected(
    httpserver: HTTPServer, fetcher: Fetcher
) -> None:
    data = items(1, 2)
    data[0]["title"] = ["两个", "标题"]
    httpserver.expect_request("/api").respond_with_json({"data": {"list": data}})
    walk = walk_pages(api(httpserver), fetcher, None, TZ, 1)
    assert [e.kind for e in walk.errors] == ["field_type"]
    assert "fields.title" in walk.errors[0].message
    # the item goes on without a title (the canary counts it); the other is whole
    assert [e.title for e in walk.entries] == [None, "第2条"]


def test_epoch_values_in_the_wrong_unit_are_read_by_magnitude_and_said_once(
    httpserver: HTTPServer, fetcher: Fetcher
) -> None:
    listed = [{**item, "time": item["time"] * 1000} for item in items(1, 2)]
    httpserver.expect_request("/api").respond_with_json({"data": {"list": listed}})
    walk = walk_pages(api(httpserver), fetcher, None, TZ, 1)
    assert [e.kind for e in walk.errors] == ["date_unit"]
    assert [str(e.published)[:16] for e in walk.entries] == ["2025-09-07T17:25", "2025-09-07T17:25"]


def test_a_cursor_that_does_not_advance_stops_paging(
    httpserver: HTTPServer, fetcher: Fetcher
) -> None:
    httpserver.expect_request("/api").respond_with_json({"data": {"list": items(1, 2)}})
    source = api(httpserver, paging={"mode": "cursor", "cursor": "time", "pages": 5})
    walk = walk_pages(source, fetcher, None, TZ, 5)
    assert len(httpserver.log) == 2  # page one, and the same page again: then it stops
    assert [e.kind for e in walk.errors] == ["paging_stuck"]
    assert "cursor did not advance" in walk.errors[0].message
    assert len(walk.entries) == 2


def test_a_page_number_the_site_ignores_stops_paging(
    httpserver: HTTPServer, fetcher: Fetcher
) -> None:
    httpserver.expect_request("/api").respond_with_json({"data": {"list": items(1, 2)}})
    source = api(httpserver, request={"url": httpserver.url_for("/api"), "params": {"p": "{page}"}})
    walk = walk_pages(source, fetcher, None, TZ, 5)
    assert [r.args["p"] for r, _ in httpserver.log] == ["1", "2"]
    assert [e.kind for e in walk.errors] == ["paging_stuck"]
    assert "repeats" in walk.errors[0].message


def test_backfill_walks_the_cursor_back_to_since(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    day = 86400

    def pages(request: Request) -> Response:
        before = int(request.args.get("before") or 1757237160)
        listed = [
            {"title": f"第{i}条", "url": f"/n/{before - i * day}.html", "time": before - i * day}
            for i in (1, 2)
        ]
        return Response(json.dumps({"data": {"list": listed}}), content_type="application/json")

    httpserver.expect_request("/api").respond_with_handler(pages)
    source = api(httpserver, paging={"mode": "cursor", "cursor": "time", "max_pages": 50})
    since = datetime(2025, 8, 29, tzinfo=TZ)
    walk = walk_source_back(fetcher, source, since, TZ, 100)
    assert walk.errors == []
    dates = [datetime.fromisoformat(str(e.published)) for e in walk.entries]
    assert min(dates) < since <= max(dates)
    # two days a page from 09-06: the fifth reaches 08-28, the sixth is all before `since`
    assert len(httpserver.log) == 6


def test_a_bootstrap_page_without_the_element(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    httpserver.expect_request("/index.html").respond_with_data(
        "<html><body><div class='lmy_main_rb'></div></body></html>", content_type="text/html"
    )
    source = api(
        httpserver,
        bootstrap={"url": httpserver.url_for("/index.html"), "element": "div.lmy_main_rb > script"},
    )
    with pytest.raises(ItemError) as caught:
        walk_pages(source, fetcher, None, TZ, 1)
    assert caught.value.kind == "bootstrap_failed"
    assert "div.lmy_main_rb > script" in str(caught.value)


def test_a_gbk_list_page_declared_in_its_meta(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    html = (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=gb2312">'
        '</head><body><ul><li><a href="/a.htm">数字人民币试点扩容</a><span>2025-09-07</span>'
        "</li></ul></body></html>"
    ).encode("gbk")
    httpserver.expect_request("/list.htm").respond_with_data(html, content_type="text/html")
    source = resolve_entry(
        {
            "kind": "html_list",
            "request": {"url": httpserver.url_for("/list.htm")},
            "items": {"css": "ul > li"},
            "fields": {"title": "a::text", "link": "a::attr(href)", "date": "span::text"},
        }
    )
    assert isinstance(source, SourceConfig)
    walk = walk_pages(source, fetcher, None, TZ, 1)
    assert [e.title for e in walk.entries] == ["数字人民币试点扩容"]
