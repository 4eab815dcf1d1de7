"""Parse: feed bytes to entries with feedparser (RSS 0.9x/1.0/2.0, Atom, RDF)."""

from __future__ import annotations

import io
import logging
from typing import Any

import feedparser

from schemas.errors import ItemError
from schemas.models import FeedEntry, ParsedFeed, Response
from tasks.charset import feed_bytes_as_utf8

LOGGER = logging.getLogger(__name__)

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
        raise ItemError("not_a_feed", "empty response where a feed was expected", url=feed_url)
    data = feed_bytes_as_utf8(response.body, response.content_type)
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
            raise ItemError("not_a_feed", f"{what} where a feed was expected", url=feed_url)
        if bozo is not None:
            raise ItemError("parse_error", f"feed XML could not be parsed: {bozo}", url=feed_url)
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
