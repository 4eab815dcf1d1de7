"""Sitemaps: a site's page URLs, from sitemap indexes, urlsets and Google News sitemaps.

The XML is parsed with defusedxml (no entity expansion, no external resources); its size is
bounded by the fetcher's limits, and a gzipped sitemap (`.xml.gz`, served without
Content-Encoding) is inflated within the same cap. Only the dates a sitemap gives filter here:
a news sitemap's `publication_date` must fall in the window; a `lastmod` before the window
means the page (or every page of a child sitemap) was published before it too.

A walk takes each page URL once, however many sitemaps (or copies of one under other URLs)
list it, and stops at `max_entries` distinct URLs with a `too_many_entries` row: a small index
naming one large urlset many times must not become millions of entries.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from xml.etree.ElementTree import Element, ParseError
from zoneinfo import ZoneInfo

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from newsflow.schemas.config import MAX_SITEMAP_ENTRIES
from newsflow.schemas.errors import ItemError
from newsflow.schemas.models import DateWindow, FeedEntry, IngestErrorRecord
from newsflow.tasks.extraction.normalize import parse_date_or_none
from newsflow.tasks.fetching.decompress import gunzip
from newsflow.tasks.fetching.fetch import Fetcher

LOGGER = logging.getLogger(__name__)

SITEMAP_ACCEPT = "application/xml, text/xml;q=0.9, application/x-gzip;q=0.8, */*;q=0.5"


@dataclass(frozen=True)
class SitemapUrl:
    """One `<url>` of a urlset; the news fields from `<news:news>` when present."""

    loc: str
    lastmod: str | None = None
    published: str | None = None
    title: str | None = None
    publication: str | None = None
    language: str | None = None


@dataclass
class Sitemap:
    urls: list[SitemapUrl] = field(default_factory=list)
    # (loc, lastmod) of the child sitemaps of a sitemap index
    children: list[tuple[str, str | None]] = field(default_factory=list)


@dataclass
class SitemapWalk:
    """Entries (links with what the sitemap says of them) from one sitemap and its children."""

    url: str
    entries: list[FeedEntry] = field(default_factory=list)
    errors: list[IngestErrorRecord] = field(default_factory=list)
    outside_window: int = 0
    documents: int = 0
    # The news publication's name, when every news entry gives the same one.
    publication: str | None = None


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _child_text(el: Element, name: str) -> str | None:
    for child in el:
        if _local(child.tag) == name:
            text = (child.text or "").strip()
            return text or None
    return None


def _child(el: Element, name: str) -> Element | None:
    return next((c for c in el if _local(c.tag) == name), None)


def parse_sitemap(data: bytes, url: str) -> Sitemap:
    """A sitemap index or urlset, namespaces ignored; raises ItemError when it is neither."""
    try:
        root = SafeET.fromstring(data)
    except (ParseError, DefusedXmlException) as exc:
        raise ItemError("parse_error", f"sitemap XML could not be parsed: {exc}", url=url) from exc
    kind = _local(root.tag)
    sitemap = Sitemap()
    if kind == "sitemapindex":
        for el in root:
            loc = _child_text(el, "loc") if _local(el.tag) == "sitemap" else None
            if loc:
                sitemap.children.append((loc, _child_text(el, "lastmod")))
    elif kind == "urlset":
        for el in root:
            loc = _child_text(el, "loc") if _local(el.tag) == "url" else None
            if loc:
                sitemap.urls.append(_url(el, loc))
    else:
        raise ItemError("not_a_sitemap", f"<{kind}> where a sitemap was expected", url=url)
    return sitemap


def _url(el: Element, loc: str) -> SitemapUrl:
    news = _child(el, "news")
    publication = _child(news, "publication") if news is not None else None
    return SitemapUrl(
        loc=loc,
        lastmod=_child_text(el, "lastmod"),
        published=_child_text(news, "publication_date") if news is not None else None,
        title=_child_text(news, "title") if news is not None else None,
        publication=_child_text(publication, "name") if publication is not None else None,
        language=_child_text(publication, "language") if publication is not None else None,
    )


def in_window(item: SitemapUrl, window: DateWindow, tz: ZoneInfo) -> bool:
    """Whether the page may belong to the window, as far as the sitemap's dates tell."""
    published = parse_date_or_none(item.published, tz)
    if published is not None:
        return window.contains(published)
    modified = parse_date_or_none(item.lastmod, tz)
    return modified is None or not window.before(modified)


def walk_sitemaps(
    fetcher: Fetcher,
    url: str,
    *,
    window: DateWindow,
    tz: ZoneInfo,
    max_documents: int,
    max_entries: int = MAX_SITEMAP_ENTRIES,
) -> SitemapWalk:
    """Every page URL of a sitemap (following indexes) that may lie in the window, each once,
    at most `max_entries` of them."""
    walk = SitemapWalk(url)
    queue: deque[str] = deque([url])
    visited: set[str] = set()
    seen: set[str] = set()
    publications: set[str] = set()
    while queue:
        current = queue.popleft()
        if current in visited:
            continue
        if walk.documents >= max_documents:
            walk.errors.append(
                _error(current, "too_many_pages", f"stopped after {max_documents} sitemaps")
            )
            break
        visited.add(current)
        walk.documents += 1
        try:
            response = fetcher.get(current, accept=SITEMAP_ACCEPT)
            sitemap = parse_sitemap(gunzip(response.body, fetcher.limits.max_bytes), current)
        except ItemError as exc:
            walk.errors.append(_error(current, exc.kind, str(exc)))
            continue
        for child, lastmod in sitemap.children:
            modified = parse_date_or_none(lastmod, tz)
            if modified is not None and window.before(modified):
                LOGGER.info("skipping %s: last modified %s, before the window", child, lastmod)
                continue
            queue.append(child)
        for item in sitemap.urls:
            if item.loc in seen:
                continue
            if len(seen) >= max_entries:
                break
            seen.add(item.loc)
            if not in_window(item, window, tz):
                walk.outside_window += 1
                continue
            if item.publication:
                publications.add(item.publication)
            walk.entries.append(
                FeedEntry(
                    link=item.loc,
                    title=item.title,
                    published=item.published,
                    language=item.language,
                )
            )
        if len(seen) >= max_entries:
            message = f"stopped at {max_entries} page URLs; the rest of the sitemaps is left"
            walk.errors.append(_error(current, "too_many_entries", message))
            break
    walk.publication = publications.pop() if len(publications) == 1 else None
    return walk


def _error(url: str, kind: str, message: str) -> IngestErrorRecord:
    return IngestErrorRecord(stage="sitemap", url=url, kind=kind, message=message)
