"""Declared sources through the real ingest flow (Prefect test harness, DuckDB file, loopback
fixtures): a json_api and an html_list adapter end to end, loaded twice, unchanged lists cost
no item pages, and a list whose selectors find nothing is selector_broken and failing."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from pytest_httpserver import HTTPServer

from newsflow.flows.ingest import ingest
from newsflow.schemas.config import Settings
from tests.conftest import make_settings
from tests.source_site import adapter_toml, expected, serve_fixture

pytestmark = pytest.mark.usefixtures("prefect_harness")


def rows(settings: Settings, sql: str) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(settings.db_path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def item_pages_hit(server: HTTPServer, name: str) -> int:
    listed = {"cls-telegraph": "/nodeapi/", "gov-zhengce": "/zhengce/zuixin/"}[name]
    return sum(1 for request, _ in server.log if not request.path.startswith(listed))


@pytest.mark.parametrize("name", ["cls-telegraph", "gov-zhengce"])
def test_a_source_ingests_loads_once_and_an_unchanged_list_costs_nothing(
    name: str, httpserver: HTTPServer, tmp_path: Path
) -> None:
    serve_fixture(httpserver, name)
    settings = make_settings(tmp_path)
    base = httpserver.url_for("/").rstrip("/")
    settings.feeds_path.write_text(adapter_toml(name, base), encoding="utf-8")

    first = ingest(settings=settings)
    want = expected(name)
    stored = dict(rows(settings, "SELECT url, title FROM articles"))
    assert sorted(stored.values()) == sorted(str(w["title"]) for w in want)
    assert {u.removeprefix(base) for u in stored} == {w["path"] for w in want}
    dated = rows(
        settings,
        "SELECT url, strftime(published_at AT TIME ZONE 'Asia/Shanghai', '%Y-%m-%dT%H:%M')"
        " FROM articles",
    )
    for url, day in dated:
        item = next(w for w in want if base + str(w["path"]) == url)
        assert day == str(item["published"])[:16]
    assert first.counts.feeds_failed == 0
    assert item_pages_hit(httpserver, name) == len(want)
    bodies = rows(settings, "SELECT min(length(body_text)) FROM articles")[0][0]
    assert isinstance(bodies, int) and bodies > 100

    again = ingest(settings=settings, force=True)
    assert again.counts.feeds_failed == 0 and again.counts.feeds_not_modified == 1
    assert item_pages_hit(httpserver, name) == len(want)  # the same list: no item page again
    assert rows(settings, "SELECT count(*) = count(DISTINCT article_id) FROM articles") == [(True,)]
    assert rows(settings, "SELECT count(*) FROM articles") == [(len(want),)]
    status = rows(settings, "SELECT status, etag FROM feeds")
    assert status[0][0] == "active" and str(status[0][1]).startswith("sha256:")


def ingest_failing(server: HTTPServer, tmp_path: Path, adapter: str) -> Settings:
    """One ingest run over the adapter on `server`, which must fail as a source."""
    settings = make_settings(tmp_path)
    base = server.url_for("/").rstrip("/")
    settings.feeds_path.write_text(adapter_toml(adapter, base), encoding="utf-8")
    assert ingest(settings=settings).counts.feeds_failed == 1
    return settings


def test_a_list_whose_selector_finds_nothing_is_selector_broken(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    # The site changed its markup: the list answers 200 with no `font.newslist_style`.
    httpserver.expect_request("/goutongjiaoliu/113456/113469/index.html").respond_with_data(
        "<html><body><ul class='news'><li><a href='/a.html'>新版</a></li></ul></body></html>",
        content_type="text/html; charset=utf-8",
    )
    settings = ingest_failing(httpserver, tmp_path, "pbc-notices")
    errors = rows(settings, "SELECT kind, message FROM ingest_errors")
    assert [e[0] for e in errors] == ["selector_broken"]
    assert "font.newslist_style" in str(errors[0][1]) and "no items" in str(errors[0][1])
    assert rows(settings, "SELECT status, last_error FROM feeds")[0][0] == "failing"


def test_items_missing_a_defined_field_are_selector_broken(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    # The dates moved out of `.times`: items still come, their dates do not.
    httpserver.expect_request("/wxzw/A0937index_1.htm").respond_with_data(
        '<div id="loadingInfoPage"><ul><li><a href="/2025-08/29/c_1.htm">第十四批境内区块链信息'
        "服务备案编号的公告</a><em>2025-08-29</em></li></ul></div>",
        content_type="text/html; charset=utf-8",
    )
    httpserver.expect_request("/2025-08/29/c_1.htm").respond_with_data(
        "<html><head><title>公告</title></head><body><article><p>"
        + "国家互联网信息办公室发布第十四批境内区块链信息服务名称及备案编号。" * 8
        + "</p></article></body></html>",
        content_type="text/html; charset=utf-8",
    )
    settings = ingest_failing(httpserver, tmp_path, "cac-blockchain-filings")
    kinds = rows(settings, "SELECT kind, message FROM ingest_errors")
    assert ("selector_broken", "missing date in 1 of 1 items") in kinds
    assert rows(settings, "SELECT count(*) FROM articles") == [(1,)]  # nothing else lost
