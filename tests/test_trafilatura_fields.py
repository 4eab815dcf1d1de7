"""trafilatura_fields gives what trafilatura's own metadata pass (`extract_metadata`) gives, on
every HTML page of the fixtures, so extraction stores the same rows without that pass's wasted
work; and the author and title searches it skips are skipped."""

from __future__ import annotations

from pathlib import Path

import pytest
from trafilatura.metadata import extract_metadata
from trafilatura.utils import load_html

from newsflow.tasks.extraction.metadata.trafilatura_fields import _listed, trafilatura_fields
from newsflow.tasks.fetching.charset import decode_html

FIXTURES = Path(__file__).parent / "fixtures"
PAGES = sorted(p for p in FIXTURES.rglob("*.htm*") if p.suffix in (".html", ".htm"))
URL = "https://news.example.com/2024/05/01/story.html"


def parsed(path: Path):  # type: ignore[no-untyped-def]
    html, _ = decode_html(path.read_bytes(), "text/html")
    tree = load_html(html)
    if tree is None:
        pytest.skip("not a page lxml parses")
    return tree


def test_there_are_pages_with_and_without_each_field() -> None:
    # The comparison below means something only if the fixtures exercise the fields.
    docs = [extract_metadata(parsed(p), URL).as_dict() for p in PAGES]
    for key in ("title", "author", "image", "description", "sitename", "categories", "tags"):
        assert any(d[key] for d in docs), key
    assert len(PAGES) > 100


@pytest.mark.parametrize("path", PAGES, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_same_fields_as_trafilaturas_metadata_pass(path: Path) -> None:
    theirs = extract_metadata(parsed(path), URL)
    ours = trafilatura_fields(parsed(path), URL)
    assert ours.title == theirs.title
    assert ours.author == theirs.author
    assert ours.image == theirs.image
    assert ours.description == theirs.description
    assert ours.sitename == theirs.sitename
    assert ours.categories == _listed(theirs.categories)
    assert ours.tags == _listed(theirs.tags)


def test_the_title_and_author_searches_are_skipped_when_not_needed() -> None:
    # A page whose author is found only by searching its body, and whose title only in <h1>.
    tree = load_html(
        "<html><body><h1>Central bank tightens rules</h1>"
        "<p class='byline'>By Jane Doe</p><div class='author'>Jane Doe</div>"
        "<p>The central bank said on Monday that it would tighten the rules.</p></body></html>"
    )
    full = trafilatura_fields(tree, URL)
    assert full.title and full.author
    lean = trafilatura_fields(tree, URL, need_title=False, need_author=False)
    assert (lean.title, lean.author) == (None, None)
    assert (lean.sitename, lean.categories) == (full.sitename, full.categories)


@pytest.mark.parametrize(
    ("value", "listed"),
    [(None, []), ("a, b,,c ", ["a", "b", "c"]), (["x ", "", "y"], ["x", "y"]), (3, ["3"])],
)
def test_listed(value: object, listed: list[str]) -> None:
    assert _listed(value) == listed
