"""The metadata stage: every source on the page read once, then weighed in the order of trust.

Order of trust for the publication date (the feed item's own date, when it carries a time,
comes before all of these; normalize applies it, since only the feed knows it):

1. JSON-LD (`jsonld`) — written by the CMS from its database for search engines; typed, and
   kept apart from `dateModified`.
2. OpenGraph `article:published_time`, then the CMS meta names (`meta`) — also machine-written
   from the database, but untyped and sometimes left at a template's default.
3. `<time datetime>` in the article (`time`) — machine-readable, but themes put it on related
   links too; those in asides, footers and lists are skipped.
4. Page state in scripts (`script`) — the app's own record, but its shape differs per site.
5. The visible line just after the title (`visible`) — what the reader sees, written for people:
   the most varied spelling and the nearest to sidebars and comments.
6. The URL (`url`) — to the day at best, and sometimes the filing rather than the publication.

The first source with a plausible date wins. A source whose published date is later than its own
modified date contradicts itself and is passed over. When a later source states the same calendar
day with a time and the winner had only the day, the time is taken from it (the source recorded
is the one the time came from). Nothing else is guessed: no copyright years, no "today", no HTTP
Last-Modified, no dates from comments, sidebars or related lists — a page that states no date has
none.

Authors: JSON-LD, then the visible byline, then meta tags, then page state, then trafilatura's;
cleaned to names (`authors.py`). Origin (来源): the visible line, then `ContentSource`/`source`
metas. Title: see `titles.py`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TypedDict

from lxml.html import HtmlElement

from newsflow.tasks.extraction.metadata.authors import clean_authors, clean_origin
from newsflow.tasks.extraction.metadata.dates import Stamp, finer
from newsflow.tasks.extraction.metadata.jsonld import read_jsonld
from newsflow.tasks.extraction.metadata.meta_tags import (
    meta_values,
    read_cms_metas,
    read_opengraph,
    read_time_elements,
)
from newsflow.tasks.extraction.metadata.script_state import read_script_state
from newsflow.tasks.extraction.metadata.sources import Found
from newsflow.tasks.extraction.metadata.titles import choose_title
from newsflow.tasks.extraction.metadata.url_date import read_url_date
from newsflow.tasks.extraction.metadata.visible import read_visible

LOGGER = logging.getLogger(__name__)


@dataclass
class PageMetadata:
    """What the stage found; `published`/`updated` carry their precision and source."""

    title: str | None = None
    authors: list[str] = field(default_factory=list)
    origin: str | None = None
    published: Stamp | None = None
    updated: Stamp | None = None
    sitename: str | None = None


def read_metadata(root: HtmlElement, url: str) -> PageMetadata:
    """All sources of `root` (the parsed page, before trafilatura cleans it) weighed. No page
    fails for its metadata: a reader that breaks on hostile markup leaves the fields empty."""
    try:
        return _read_metadata(root, url)
    except Exception:  # lxml/chompjs on hostile markup: the page keeps its text
        LOGGER.warning("metadata of %s could not be read", url, exc_info=True)
        return PageMetadata()


def _read_metadata(root: HtmlElement, url: str) -> PageMetadata:
    metas = meta_values(root)
    jsonld = read_jsonld(root)
    opengraph = read_opengraph(metas)
    script = read_script_state(root)
    title = choose_title(root, metas, jsonld.title or script.title)
    visible = read_visible(root, title)
    ordered = [
        ("jsonld", jsonld),
        ("meta", opengraph),
        ("meta", read_cms_metas(metas)),
        ("time", read_time_elements(root)),
        ("script", script),
        ("visible", visible),
        ("url", read_url_date(url)),
    ]
    cms = ordered[2][1]
    authors = clean_authors(
        [jsonld.authors, visible.authors, cms.authors, script.authors],
        set(visible.editors),
    )
    return PageMetadata(
        title=title,
        authors=authors,
        origin=clean_origin(visible.origin or cms.origin),
        published=choose_published(ordered),
        updated=next((f.updated for _, f in ordered if f.updated), None),
        sitename=metas.get("og:site_name") or jsonld.publisher,
    )


def choose_published(ordered: list[tuple[str, Found]]) -> Stamp | None:
    """The first consistent date in the order of trust, refined by a later source's time."""
    best: Stamp | None = None
    for source, found in ordered:
        stamp = found.published
        if stamp is None or _contradicts(stamp, found.updated):
            continue
        if best is None:
            best = stamp.with_source(source)
        elif stamp.value.date() == best.value.date() and finer(stamp.precision, best.precision):
            return stamp.with_source(source)
        if best.precision in ("minute", "second"):
            return best
    return best


def _contradicts(published: Stamp, updated: Stamp | None) -> bool:
    if updated is None:
        return False
    # Compare calendar days: zones may differ between the two fields of one source.
    return published.value.date() > updated.value.date()


class DateFields(TypedDict):
    date: str | None
    date_precision: str | None
    date_source: str | None
    updated: str | None
    updated_precision: str | None
    origin_source: str | None


def date_fields(found: PageMetadata) -> DateFields:
    """ExtractedPage's date fields: text to the stated precision (crosses to the flow process)."""
    published, updated = found.published, found.updated
    return {
        "date": published.to_text() if published else None,
        "date_precision": published.precision if published else None,
        "date_source": published.source if published else None,
        "updated": updated.to_text() if updated else None,
        "updated_precision": updated.precision if updated else None,
        "origin_source": found.origin,
    }
