"""The fields of trafilatura's metadata pass that the metadata stage does not give: image,
description, site name, categories, tags, and the title and author when the stage found none.

trafilatura's own pass (`bare_extraction(with_metadata=True)`, i.e. `extract_metadata`) was 45%
of extraction's CPU on the ingest benchmark's pages (benchmarks/ingest.py), most of it work whose
result newsflow throws away: a date search (the metadata stage dates the page), a licence search,
and a search of the whole page for an author — a deep copy of the tree and some forty XPaths,
31% on its own — that runs even when the metadata stage has found the authors. This runs the
same steps in the same order, skipping those. tests/test_trafilatura_fields.py holds it to
`extract_metadata` on every fixture page, so a trafilatura release that changes the steps fails
there, not in the stored rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from lxml.etree import XPath
from lxml.html import HtmlElement
from trafilatura.metadata import (
    META_URL,
    examine_meta,
    extract_author,
    extract_catstags,
    extract_meta_json,
    extract_sitename,
    extract_title,
    extract_url,
)
from trafilatura.settings import Document

LOGGER = logging.getLogger(__name__)

# Every condition of trafilatura's AUTHOR_XPATHS needs one of these in a class, id, rel, itemprop,
# data-component or data-testid value (its comparisons are case-sensitive, so lower-casing only
# widens the test), or an <author> or <rel> element.
_AUTHOR_HINTS = (
    *("author", "byl", "bbl", "username", "screenname", "writer", "channel-name"),
    *("zuozhe", "bianji", "xiaobian", "submitted-by", "posted-by", "journalist-name"),
)
_AUTHOR_ATTRIBUTES = XPath("//@class|//@id|//@rel|//@itemprop|//@data-component|//@data-testid")
_AUTHOR_ELEMENTS = XPath("boolean(//author|//rel)")
# extract_catstags keeps only links whose href matches /categor(y|ies|s)?/ or /tag(s)?/; for
# categories it falls back on these metas.
_TERM_LINKS = {
    "category": XPath("boolean(//a[contains(@href, '/categor')])"),
    "tag": XPath("boolean(//a[contains(@href, '/tag')])"),
}
_SECTION_METAS = XPath(
    "boolean(.//head//meta[@property='article:section' or contains(@name, 'subject')][@content])"
)


@dataclass
class TrafilaturaFields:
    title: str | None = None
    author: str | None = None
    image: str | None = None
    description: str | None = None
    sitename: str | None = None
    categories: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)


def trafilatura_fields(
    tree: HtmlElement, url: str, *, need_title: bool = True, need_author: bool = True
) -> TrafilaturaFields:
    """`extract_metadata(tree, url)`'s fields, as it finds them; the title and author searches
    of the page run only when asked for (the metadata stage found none)."""
    doc = examine_meta(tree)
    if doc.author and " " not in doc.author:
        doc.author = None  # as extract_metadata: a one-word "author" is mostly a handle
    try:
        doc = extract_meta_json(tree, doc)
    except Exception as err:  # as extract_metadata: trafilatura's JSON-LD reader has bugs
        LOGGER.warning("error in JSON metadata extraction: %s", err)
    if need_title and not doc.title:
        doc.title = extract_title(tree)
    if need_author and not doc.author and _may_name_an_author(tree):
        doc.author = extract_author(tree)
    _sitename(tree, url, doc)
    if not doc.categories:
        doc.categories = _page_terms("category", tree)
    if not doc.tags:
        doc.tags = _page_terms("tag", tree)
    doc.clean_and_trim()
    return TrafilaturaFields(
        title=doc.title if need_title else None,
        author=doc.author if need_author else None,
        image=doc.image,
        description=doc.description,
        sitename=doc.sitename,
        categories=_listed(doc.categories),
        tags=_listed(doc.tags),
    )


def _listed(value: object) -> list[str]:
    """Categories and tags come as a list, or from some JSON-LD as one comma-separated text."""
    if not value:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list | tuple):
        return [str(v).strip() for v in value if str(v).strip()]
    return [str(value).strip()]


def _may_name_an_author(tree: HtmlElement) -> bool:
    values = " ".join(_AUTHOR_ATTRIBUTES(tree)).lower()
    return any(hint in values for hint in _AUTHOR_HINTS) or bool(_AUTHOR_ELEMENTS(tree))


def _page_terms(kind: str, tree: HtmlElement) -> list[str]:
    if _TERM_LINKS[kind](tree) or (kind == "category" and _SECTION_METAS(tree)):
        return extract_catstags(kind, tree)
    return []


def _sitename(tree: HtmlElement, url: str, doc: Document) -> None:
    if not doc.sitename:
        doc.sitename = extract_sitename(tree)
    if doc.sitename:
        doc.sitename = doc.sitename.lstrip("@")  # a Twitter handle
        if doc.sitename and "." not in doc.sitename and not doc.sitename[0].isupper():
            doc.sitename = doc.sitename.title()
    else:
        # The page's canonical URL, looked up only here: nothing else of it is used.
        page_url = doc.url or extract_url(tree, url)
        matched = META_URL.match(page_url) if page_url else None
        if matched:
            doc.sitename = matched[1]
