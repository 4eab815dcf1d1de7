"""Extract: trafilatura on every page fixture; the pool's deadline and error paths."""

from __future__ import annotations

import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from newsflow.schemas.errors import ItemError
from newsflow.tasks.extraction.extract import Extractor, extract_page
from newsflow.tasks.extraction.normalize import clean_title, guess_language, parse_date
from newsflow.tasks.fetching.charset import decode_html

PAGES = Path(__file__).parent / "fixtures" / "pages"
CASES = sorted(PAGES.glob("*.html"))


def page_text(path: Path) -> str:
    # As the fetcher would give it: the server sends no charset, the page declares its own.
    text, _ = decode_html(path.read_bytes(), "text/html")
    return text


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_page_fixture(path: Path) -> None:
    expected = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    page = extract_page(f"http://example.test/{path.name}", page_text(path))
    body = page.text
    for sentence in expected["must_contain"]:
        assert sentence in body
    for boilerplate in expected["must_not_contain"]:
        assert boilerplate not in body
    assert clean_title(page.title, [page.sitename]) == expected["title"]
    published = parse_date(page.date, ZoneInfo("Asia/Shanghai"))
    want = expected["published"]
    # trafilatura gives dates to the day; the time of day comes from the feed.
    assert (published is None) == (want is None)
    if published and want:
        assert published.astimezone(ZoneInfo("Asia/Shanghai")).date().isoformat() in {
            want[:10],
            parse_date(want, ZoneInfo("UTC"))
            .astimezone(ZoneInfo("Asia/Shanghai"))
            .date()
            .isoformat(),  # type: ignore[union-attr]
        }
    assert guess_language(body, page.language) == expected["language"]


def test_empty_page_is_extract_empty() -> None:
    with pytest.raises(ItemError) as exc:
        extract_page("http://example.test/empty", "<html><body><script>1</script></body></html>")
    assert exc.value.kind == "extract_empty"


def test_pool_extracts_in_order_and_reports_per_document() -> None:
    docs = [(f"http://example.test/{p.name}", page_text(p)) for p in CASES]
    docs.insert(2, ("http://example.test/empty", "<html><body></body></html>"))
    with Extractor(workers=2, deadline=30) as extractor:
        results = list(extractor.extract_many(docs))
    assert [url for url, _ in results] == [url for url, _ in docs]
    kinds = [r.kind if isinstance(r, ItemError) else "ok" for _, r in results]
    assert kinds.count("ok") == len(CASES)
    assert kinds[2] == "extract_empty"


@pytest.mark.slow
def test_a_document_past_its_deadline_is_killed_and_the_worker_replaced() -> None:
    # Deep nesting makes lxml and trafilatura crawl; the deadline must end it in its worker.
    hostile = "<html><body>" + "<div>" * 200_000 + "x" + "</div>" * 200_000 + "</body></html>"
    good = page_text(CASES[0])
    with Extractor(workers=1, deadline=1.0) as extractor:
        results = dict(extractor.extract_many([("slow", hostile), ("good", good)]))
    assert isinstance(results["slow"], ItemError)
    assert results["slow"].kind in {"timeout", "extract_empty", "extract_error"}
    assert not isinstance(results["good"], ItemError)
