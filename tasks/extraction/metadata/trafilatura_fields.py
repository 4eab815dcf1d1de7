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
    if need_author and not doc.author:
        doc.author = extract_author(tree)
    _sitename(tree, url, doc)
    if not doc.categories:
        doc.categories = extract_catstags("category", tree)
    if not doc.tags:
        doc.tags = extract_catstags("tag", tree)
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
