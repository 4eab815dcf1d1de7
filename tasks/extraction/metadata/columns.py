"""An article's date columns from the feed's and the page's stamps (DESIGN: published_at,
published_precision, published_source, published_date; updated_at kept apart), for new articles
and for re-extracted ones."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from newsflow.schemas.models import Article, ExtractedPage
from newsflow.tasks.extraction.metadata.dates import Stamp, parse_stamp, resolve_stamp

# An RFC 2822 date with seconds, as most feeds write pubDate: parse_stamp would say "second"
# (or, failing to read it, nothing), after ~3 ms in dateparser per item of the flow process.
_RFC2822_SECONDS_RE = re.compile(
    r"^\s*(?:[A-Za-z]{3},?\s+)?\d{1,2}\s+[A-Za-z]{3}\s+\d{2,4}\s+\d{1,2}:\d{2}:\d{2}(?!\d)"
)


def feed_precision(raw: str) -> str:
    # RFC 2822 and ISO feed dates always carry a time; a bare "2022-09-07" does not.
    if _RFC2822_SECONDS_RE.match(raw):
        return "second"
    stamp = parse_stamp(raw)
    return stamp.precision if stamp else "second"


def page_date(text: str | None, precision: str | None, source: str | None = "") -> Stamp | None:
    """An ExtractedPage's date text back into a Stamp (None when absent or unreadable)."""
    if not text or not precision:
        return None
    try:
        return Stamp.from_text(text, precision, source or "")
    except ValueError:
        return None


def stamp_columns(published: Stamp | None, updated: Stamp | None, tz: ZoneInfo) -> dict[str, Any]:
    """published_at/precision/source/date and updated_at from two stamps (`resolve_stamp`)."""
    published_at, published_date = resolve_stamp(published, tz) if published else (None, None)
    updated_at = resolve_stamp(updated, tz)[0] if updated else None
    return {
        "published_at": published_at,
        "published_precision": published.precision if published else None,
        "published_source": published.source if published else None,
        "published_date": published_date,
        "updated_at": updated_at if updated_at != published_at else None,
    }


def refreshed_metadata(article: Article, page: ExtractedPage, tz: ZoneInfo) -> dict[str, Any]:
    """Date and origin columns for a re-extracted article. A date the feed or a post gave
    (published_source feed/front_matter) stays. A stored date with a time of day and no source,
    from before the metadata stage, came from the feed (pages were read to the day): it stays,
    marked as the feed's. Otherwise the page's own date replaces it, and where the page states none
    the date is cleared: the batch restates its dates (ArticleBatch.restated_dates), so a
    midnight an older version guessed does not stay."""
    update: dict[str, Any] = {"origin_source": article.origin_source or page.origin_source}
    if article.published_source in ("feed", "front_matter"):
        return update
    stored = article.published_at
    if stored is not None and article.published_source is None and _has_time(stored, tz):
        return {
            **update,
            "published_source": "feed",
            "published_precision": "second",
            "published_date": stored.astimezone(tz).date(),
        }
    published = page_date(page.date, page.date_precision, page.date_source)
    updated = page_date(page.updated, page.updated_precision)
    columns = stamp_columns(published, updated, tz)
    if article.updated_at is not None:
        columns["updated_at"] = article.updated_at
    return {**update, **columns}


def _has_time(value: datetime, tz: ZoneInfo) -> bool:
    local = value.astimezone(tz)
    return (local.hour, local.minute, local.second) != (0, 0, 0)
