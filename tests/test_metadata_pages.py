"""The metadata stage on every page of tests/fixtures/meta_pages, through the real extraction
(extract_page, and the worker pool for a sample) and normalization, against the expected record
beside each page."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from newsflow.schemas.models import Article, ExtractedPage, FeedEntry
from newsflow.tasks.extraction.extract import Extractor, extract_page
from newsflow.tasks.extraction.normalize import build_feed_article
from newsflow.tasks.fetching.charset import decode_html

PAGES = Path(__file__).parent / "fixtures" / "meta_pages"
CASES = sorted(PAGES.rglob("*.json"))
SHANGHAI = ZoneInfo("Asia/Shanghai")


def load(expectation: Path) -> tuple[dict[str, Any], str]:
    want = json.loads(expectation.read_text(encoding="utf-8"))
    # As the fetcher gives it: raw bytes, no charset in the (absent) header.
    html, _ = decode_html(expectation.with_suffix(".html").read_bytes(), "text/html")
    return want, html


def normalized(url: str, page: ExtractedPage, entry: FeedEntry | None = None) -> Article:
    # By default a feed item that gives only the link: everything else comes from the page.
    article, _ = build_feed_article(
        entry or FeedEntry(link=url),
        page,
        source=None,
        feed_title=None,
        language=None,
        feed_categories=[],
        tz=SHANGHAI,
    )
    return article


def body_f1(got: str, want: str, language: str) -> float:
    def tokens(text: str) -> Counter[str]:
        return (
            Counter(c for c in text if not c.isspace())
            if language == "zh"
            else Counter(text.lower().split())
        )

    g, w = tokens(got), tokens(want)
    common = sum((g & w).values())
    return 0.0 if not common else 2 * common / (sum(g.values()) + sum(w.values()))


def test_the_fixture_set_is_as_large_and_varied_as_the_issue_asks() -> None:
    languages = Counter(json.loads(p.read_text(encoding="utf-8"))["language"] for p in CASES)
    shapes = {json.loads(p.read_text(encoding="utf-8"))["shape"] for p in CASES}
    assert languages["zh"] >= 40 and languages["en"] >= 20
    assert len(shapes) >= 12


@pytest.mark.parametrize("expectation", CASES, ids=[p.stem for p in CASES])
def test_page_gives_its_expected_record(expectation: Path) -> None:
    want, html = load(expectation)
    article = normalized(want["url"], extract_page(want["url"], html))
    assert article.title == want["title"]
    assert article.author == want["author"]
    assert article.origin_source == want["origin_source"]
    assert article.published_precision == want["published_precision"]
    assert article.published_source == want["published_source"]
    if want["published_at"] is None:
        assert article.published_at is None and article.published_date is None
    else:
        expected = datetime.fromisoformat(want["published_at"].replace("Z", "+00:00"))
        assert article.published_date is not None
        assert article.published_date.isoformat() == want["published_date"]
        if want["published_precision"] in ("minute", "second"):
            assert article.published_at == expected
    assert body_f1(article.body_text, want["body"], want["language"]) >= 0.85


def test_a_date_without_a_time_keeps_its_day() -> None:
    """An English page dated 5 December is not moved to 4 December by a UTC midnight."""
    day_only = [
        p
        for p in CASES
        if json.loads(p.read_text(encoding="utf-8"))["published_precision"] == "day"
    ]
    assert day_only
    for expectation in day_only:
        want, html = load(expectation)
        article = normalized(want["url"], extract_page(want["url"], html))
        assert article.published_date is not None
        assert article.published_date.isoformat() == want["published_date"]
        assert article.published_at is not None
        local = article.published_at.astimezone(SHANGHAI)
        assert (local.date().isoformat(), local.hour, local.minute) == (
            want["published_date"],
            0,
            0,
        )


def test_the_metadata_stage_runs_in_the_extraction_workers() -> None:
    sample = CASES[:: max(1, len(CASES) // 8)]
    docs = []
    for expectation in sample:
        want, html = load(expectation)
        docs.append((want["url"], html, want))
    with Extractor(workers=2, deadline=30) as extractor:
        results = list(extractor.extract_many((url, html) for url, html, _ in docs))
    for (url, page), (_, _, want) in zip(results, docs, strict=True):
        assert isinstance(page, ExtractedPage), page
        article = normalized(url, page)
        assert article.published_source == want["published_source"]
        assert article.origin_source == want["origin_source"]
