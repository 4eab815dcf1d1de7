"""Every catalogue adapter against its fixture in the real endpoint's shape, on loopback: the
items it must yield (tests/fixtures/sources/<name>/expected.json) and its item pages read."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from pytest_httpserver import HTTPServer

from newsflow.schemas.config import Settings
from newsflow.schemas.sources import SourceConfig, catalogue, resolve_entry
from newsflow.tasks.extraction.extract import InlineExtractor
from newsflow.tasks.fetching.fetch import Fetcher
from newsflow.tasks.pipeline.declared import walk_pages
from newsflow.tasks.pipeline.source_check import check_source
from tests.source_site import adapter_names, expected, serve_fixture

TZ = ZoneInfo("Asia/Shanghai")


def test_every_adapter_has_a_fixture() -> None:
    assert sorted(catalogue()) == adapter_names()


@pytest.fixture
def fetcher(settings: Settings) -> Iterator[Fetcher]:
    with Fetcher(settings.fetch) as client:
        yield client


def adapter(name: str, server: HTTPServer) -> SourceConfig:
    source = resolve_entry({"adapter": name, "base_url": server.url_for("/").rstrip("/")})
    assert isinstance(source, SourceConfig)
    return source


@pytest.mark.parametrize("name", adapter_names())
def test_adapter_yields_the_expected_items(
    name: str, httpserver: HTTPServer, fetcher: Fetcher
) -> None:
    serve_fixture(httpserver, name)
    source = adapter(name, httpserver)
    walk = walk_pages(source, fetcher, None, TZ, 1)
    # gov.cn's list carries a `javascript:` link: one row, the other items go on
    bad = ["bad_link"] if name == "gov-zhengce" else []
    assert [e.kind for e in walk.errors] == bad
    assert all(e.url == source.url and "javascript:" in e.message for e in walk.errors)
    entries = walk.entries
    want = expected(name)
    assert [e.title for e in entries] == [w["title"] for w in want]
    for entry, item in zip(entries, want, strict=True):
        link = urlsplit(entry.link)
        # every link the adapter builds or reads goes to base_url
        assert f"{link.scheme}://{link.netloc}" == httpserver.url_for("/").rstrip("/")
        assert link.path == item["path"]
        if source.fields.date:
            assert entry.published is not None
            assert datetime.fromisoformat(entry.published) == datetime.fromisoformat(
                str(item["published"])
            )


@pytest.mark.parametrize("name", adapter_names())
def test_adapter_passes_the_live_check(
    name: str, httpserver: HTTPServer, fetcher: Fetcher, settings: Settings
) -> None:
    serve_fixture(httpserver, name)
    with InlineExtractor(settings.extract_deadline) as extractor:
        result = check_source(adapter(name, httpserver), fetcher, extractor, TZ)
    assert result.ok, result.problem
    assert result.items >= len(expected(name))
    assert result.detail.endswith("chars") and int(result.detail.split()[0]) > 100


def test_a_signed_request_carries_the_cls_sign(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    serve_fixture(httpserver, "cls-telegraph")
    walk_pages(adapter("cls-telegraph", httpserver), fetcher, None, TZ, 1)
    request, _ = httpserver.log[0]
    args = dict(request.args)
    assert args["appName"] == "CailianpressWeb" and args["sv"] == "7.7.5"
    assert len(args["sign"]) == 32


def test_a_javascript_challenge_is_needs_browser(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    from tests.source_site import FIXTURES

    challenge = (FIXTURES / "pbc-notices" / "challenge.html").read_bytes()
    httpserver.expect_request("/goutongjiaoliu/113456/113469/index.html").respond_with_data(
        challenge, content_type="text/html"
    )
    with pytest.raises(Exception) as caught:
        walk_pages(adapter("pbc-notices", httpserver), fetcher, None, TZ, 1)
    assert getattr(caught.value, "kind", None) == "needs_browser"
    assert "/gov/pbc/goutongjiaoliu" in str(caught.value)
