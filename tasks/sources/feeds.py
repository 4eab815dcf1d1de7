"""Parse: feed bytes to entries with feedparser (RSS 0.9x/1.0/2.0, Atom, RDF).

XML entities are the way into two attacks: a "billion laughs" bomb (entities built from
entities, gigabytes from a few hundred bytes) and external entities (XXE: a feed that makes
the parser read a local file or fetch an internal URL). No real feed needs either, so a feed
whose DTD declares them is refused (`unsafe_xml`) before feedparser sees it. Behind that, expat
itself must limit entity amplification (expat >= 2.4.1); importing this module checks that the
runtime's expat does, and refuses to run on one that does not.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
from typing import Any
from xml.parsers import expat

import feedparser

from newsflow.schemas.errors import ConfigError, ItemError
from newsflow.schemas.kinds import Kind
from newsflow.schemas.models import FeedEntry, ParsedFeed, Response
from newsflow.tasks.fetching.charset import feed_bytes_as_utf8

LOGGER = logging.getLogger(__name__)

# The first release with billion-laughs protection that works (2.4.0 had a regression).
MIN_EXPAT = (2, 4, 1)
_ENTITY_REFERENCE = re.compile(r"&[^\s&;]+;")


def check_xml_parser(version: tuple[int, int, int] = expat.version_info) -> None:
    """Fail loudly on an expat without entity-amplification limits (CVE-2013-0340)."""
    if tuple(version) < MIN_EXPAT:
        raise ConfigError(
            f"this Python's XML parser is expat {'.'.join(map(str, version))}, which does not "
            f"limit entity expansion; newsflow needs expat >= {'.'.join(map(str, MIN_EXPAT))} "
            "(a current Python build)"
        )


check_xml_parser()

# sy:updatePeriod → seconds
_PERIODS = {
    "hourly": 3600,
    "daily": 86400,
    "weekly": 604800,
    "monthly": 2592000,
    "yearly": 31536000,
}


def parse_feed(response: Response, max_items: int) -> ParsedFeed:
    """Entries of a fetched feed.

    The bytes are re-encoded to UTF-8 first (our charset chain, which survives servers that lie
    about GBK), then handed to feedparser as bytes with a matching header. A recoverable error
    (bozo) with entries still yields them, with the problem in `warning`; an HTML page or an
    empty body is `not_a_feed`; broken XML with nothing usable is `parse_error`.
    """
    feed_url = response.url
    if not response.body.strip():
        raise ItemError(Kind.NOT_A_FEED, "empty response where a feed was expected", url=feed_url)
    data = feed_bytes_as_utf8(response.body, response.content_type)
    problem = unsafe_entity(data)
    if problem is not None:
        raise ItemError(
            Kind.UNSAFE_XML, f"refused: the feed's DTD declares {problem}", url=feed_url
        )
    result = feedparser.parse(
        io.BytesIO(data),
        response_headers={
            "content-type": "application/xml; charset=utf-8",
            "content-location": response.final_url,
        },
        sanitize_html=True,
        resolve_relative_uris=True,
    )
    entries = result.get("entries", [])
    bozo = result.get("bozo_exception") if result.get("bozo") else None
    if not entries:
        if not result.get("version"):
            what = "an HTML page" if _looks_like_html(data) else "not a feed"
            raise ItemError(Kind.NOT_A_FEED, f"{what} where a feed was expected", url=feed_url)
        if bozo is not None:
            raise ItemError(Kind.PARSE_ERROR, f"feed XML could not be parsed: {bozo}", url=feed_url)
    feed = result.get("feed", {})
    total = len(entries)
    return ParsedFeed(
        feed_url=feed_url,
        title=_text(feed.get("title")),
        link=feed.get("link"),
        language=_text(feed.get("language")),
        poll_hint=_poll_hint(feed),
        entries=[entry for e in entries[:max_items] if (entry := _entry(feed_url, e)) is not None],
        warning=f"recovered from: {bozo}" if bozo is not None else None,
        truncated_from=total if total > max_items else None,
        archive_link=_archive_link(feed),
        generator=_text(feed.get("generator")),
    )


class _PrologEnd(Exception):
    """Raised from an expat handler to stop parsing."""


def unsafe_entity(data: bytes) -> str | None:
    """What makes the DTD of this UTF-8 XML unsafe, or None: an external general entity
    (XXE), a parameter entity other than a public entity set, an entity built from entities (a
    bomb). Only the prolog is parsed, by expat, which expands and loads nothing meanwhile."""
    parser = expat.ParserCreate("utf-8")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    problem: str | None = None

    def on_entity(
        name: str,
        is_parameter: int,
        value: str | None,
        base: str | None,
        system_id: str | None,
        public_id: str | None,
        notation: str | None,
    ) -> None:
        nonlocal problem
        if is_parameter and public_id:
            pass  # a public entity set (XHTML's Latin-1 names): never loaded, harmless
        elif is_parameter:
            problem = f"a parameter entity %{name};"
        elif system_id or public_id:
            problem = f"an external entity &{name}; ({(system_id or public_id or '')[:200]})"
        elif value and _ENTITY_REFERENCE.search(value):
            problem = f"an entity &{name}; built from other entities (an entity bomb)"
        if problem:
            raise _PrologEnd

    def on_element(*args: object) -> None:
        raise _PrologEnd

    parser.EntityDeclHandler = on_entity
    parser.StartElementHandler = on_element
    # Malformed XML (ExpatError) is left to feedparser's recovery, which skips declarations.
    with contextlib.suppress(_PrologEnd, expat.ExpatError):
        parser.Parse(data, True)
    return problem


def _archive_link(feed: Any) -> str | None:
    """The page of older entries: RFC 5005's prev-archive, else a paged feed's next.

    feedparser reads atom:link in RSS too and resolves relative hrefs against the feed's URL.
    """
    links = {link.get("rel"): link.get("href") for link in feed.get("links", [])}
    return _text(links.get("prev-archive") or links.get("next"))


def _looks_like_html(data: bytes) -> bool:
    head = data[:2048].lower()
    return b"<html" in head or b"<!doctype html" in head


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _poll_hint(feed: Any) -> float | None:
    try:
        if feed.get("ttl"):
            return float(feed["ttl"]) * 60
        period = str(feed.get("sy_updateperiod", "")).strip().lower()
        if period in _PERIODS:
            frequency = float(feed.get("sy_updatefrequency") or 1)
            return _PERIODS[period] / max(frequency, 1.0)
    except (TypeError, ValueError):
        LOGGER.debug("ignoring unreadable polling hint in feed")
    return None


def _entry(feed_url: str, e: Any) -> FeedEntry | None:
    """The entry, or None for an empty shell (feedparser's leftover of a feed cut mid-item)."""
    if not any(e.get(k) for k in ("link", "id", "title", "summary", "content")):
        return None
    contents = [c.get("value", "") for c in e.get("content", []) if c.get("value")]
    authors = [a.get("name") for a in e.get("authors", []) if a.get("name")]
    return FeedEntry(
        feed_url=feed_url,
        guid=_text(e.get("id")),
        link=_text(e.get("link")),
        title=_text(e.get("title")),
        author=", ".join(authors) if authors else _text(e.get("author")),
        # dict.get: FeedParserDict.get maps a missing `published` to `updated` with a warning.
        published=_text(dict.get(e, "published")),
        updated=_text(dict.get(e, "updated")),
        summary=_text(e.get("summary")),
        content=max(contents, key=len) if contents else None,
        categories=[t["term"] for t in e.get("tags", []) if t.get("term")],
        image=_image(e),
        language=_text((e.get("title_detail") or {}).get("language")),
    )


def _image(e: Any) -> str | None:
    for key in ("media_content", "media_thumbnail"):
        for media in e.get(key, []) or []:
            if media.get("url") and media.get("medium", "image") == "image":
                return str(media["url"])
    for link in e.get("links", []):
        if link.get("rel") == "enclosure" and str(link.get("type", "")).startswith("image/"):
            return str(link.get("href"))
    return None
