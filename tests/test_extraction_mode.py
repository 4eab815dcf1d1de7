"""The per-page choice of trafilatura's fast mode (tasks/extraction/mode.py), through the real
extraction: pages that need trafilatura's fallbacks keep them and get their full text; English
pages with their prose in <p> take the fast path and lose nothing by it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from trafilatura.utils import load_html

from newsflow.tasks.extraction.extract import extract_page
from newsflow.tasks.extraction.mode import is_latin_script, use_fast_mode
from newsflow.tasks.fetching.charset import decode_html
from tests.test_metadata_pages import body_f1

FIXTURES = Path(__file__).parent / "fixtures"
FALLBACK = sorted((FIXTURES / "fallback_pages").glob("*.json"))
ENGLISH = sorted((FIXTURES / "meta_pages").glob("en-*.html")) + sorted(
    (FIXTURES / "pages").glob("en-*.html")
)
# Pages whose body trafilatura's fast mode gets wrong (its fallbacks are what finds the article).
NEEDS_FALLBACKS = ("en-standfirst-div-body", "zh-endtext-summary")


def _page(expectation: Path) -> tuple[dict[str, Any], str]:
    want = json.loads(expectation.read_text(encoding="utf-8"))
    html, _ = decode_html(expectation.with_suffix(".html").read_bytes(), "text/html")
    return want, html


@pytest.mark.parametrize("expectation", FALLBACK, ids=lambda p: p.stem)
def test_page_that_needs_fallbacks_gets_its_full_text(expectation: Path) -> None:
    want, html = _page(expectation)
    text = extract_page(want["url"], html).text
    assert text == extract_page(want["url"], html, fast=False).text
    for paragraph in want["body"].split("\n"):
        assert paragraph in text


@pytest.mark.parametrize("name", NEEDS_FALLBACKS)
def test_fast_mode_would_lose_these_bodies(name: str) -> None:
    # Keeps the fixtures honest: were fast mode as good here, the test above would prove nothing.
    want, html = _page(FIXTURES / "fallback_pages" / f"{name}.json")
    fast = extract_page(want["url"], html, fast=True).text
    chosen = extract_page(want["url"], html).text
    language = want["language"]
    assert body_f1(fast, want["body"], language) < body_f1(chosen, want["body"], language) - 0.1


@pytest.mark.parametrize("page", ENGLISH, ids=lambda p: p.stem)
def test_english_page_takes_the_fast_path_and_loses_nothing(page: Path) -> None:
    html, _ = decode_html(page.read_bytes(), "text/html")
    url = f"http://example.com/{page.name}"
    assert use_fast_mode(load_html(html))
    assert extract_page(url, html).text == extract_page(url, html, fast=False).text


def test_chinese_pages_keep_the_fallbacks() -> None:
    pages = sorted((FIXTURES / "meta_pages").glob("zh-*.html"))
    assert pages
    for page in pages:
        html, _ = decode_html(page.read_bytes(), "text/html")
        assert not use_fast_mode(load_html(html)), page.name


def test_script_and_structure_decide() -> None:
    assert is_latin_script("Regulators published draft rules, said Zoë Müller.")
    assert not is_latin_script("监管部门提醒投资者 Bitcoin ETF 风险")
    assert not is_latin_script("12345 — …")
    prose = "The exchange said it would stop trading three tokens at the end of the month."
    in_p = f"<html><body><h1>A headline of some length here</h1><p>{prose}</p></body></html>"
    in_div = f"<html><body><p>A standfirst of some length.</p><div>{prose}</div></body></html>"
    assert use_fast_mode(load_html(in_p))
    assert not use_fast_mode(load_html(in_div))
    assert not use_fast_mode(load_html("<html><body><a href='/'>Only a link</a></body></html>"))
    assert not use_fast_mode(None)
