"""Feed archives: the pages of older entries behind a feed, walked back to a date.

A feed shows its latest items only. Older ones are on archive pages that the feed links to:
RFC 5005's `prev-archive` (archived feeds) or `next` (paged feeds), as `<link>` in Atom or
`<atom:link>` in RSS. WordPress links none, but serves page N of any feed at `?paged=N`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

from newsflow.schemas.errors import ItemError
from newsflow.schemas.kinds import Kind, Stage, http_kind
from newsflow.schemas.models import DateWindow, FeedEntry, IngestErrorRecord, ParsedFeed
from newsflow.tasks.extraction.normalize import parse_date_or_none
from newsflow.tasks.fetching.fetch import FEED_ACCEPT, Fetcher
from newsflow.tasks.sources.feeds import parse_feed

LOGGER = logging.getLogger(__name__)


@dataclass
class ArchiveWalk:
    """The pages read from one feed, newest first, and what went wrong on the way."""

    feed_url: str
    pages: list[ParsedFeed] = field(default_factory=list)
    errors: list[IngestErrorRecord] = field(default_factory=list)

    @property
    def entries(self) -> list[FeedEntry]:
        """Entries of every page, each link once (pages of a paged feed can overlap), as
        entries of the feed itself rather than of the archive page they were found on."""
        seen: set[str] = set()
        out = []
        for page in self.pages:
            for entry in page.entries:
                key = entry.link or entry.guid or ""
                if key and key in seen:
                    continue
                seen.add(key)
                out.append(entry.model_copy(update={"feed_url": self.feed_url}))
        return out


def is_wordpress(parsed: ParsedFeed) -> bool:
    return "wordpress" in (parsed.generator or "").lower()


def wordpress_page(feed_url: str, page: int) -> str:
    """The feed's page `page` the WordPress way: `?paged=N`, other parameters kept."""
    parts = urlsplit(feed_url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "paged"]
    query.append(("paged", str(page)))
    return urlunsplit(parts._replace(query=urlencode(query)))


def older_than_window(entries: list[FeedEntry], window: DateWindow, tz: ZoneInfo) -> bool:
    """True when every dated entry lies before the window: pages further back are older still.

    A page without a single readable date says nothing, and the walk goes on.
    """
    dates = [parse_date_or_none(e.published or e.updated, tz) for e in entries]
    known = [d for d in dates if d is not None]
    return bool(known) and all(window.before(d) for d in known)


def walk_archive(
    fetcher: Fetcher,
    feed_url: str,
    *,
    window: DateWindow,
    tz: ZoneInfo,
    max_pages: int,
    max_items: int,
) -> ArchiveWalk:
    """Read the feed and its archive pages, newest first, until a page holds only entries
    older than the window or none not seen before, there is no older page, or `max_pages`
    were read (an error row says so, since older entries were left)."""
    walk = ArchiveWalk(feed_url)
    url: str | None = feed_url
    visited: set[str] = set()
    paged = False
    while url is not None:
        if len(walk.pages) >= max_pages:
            walk.errors.append(
                _error(
                    url, feed_url, Kind.TOO_MANY_PAGES, f"stopped after {max_pages} archive pages"
                )
            )
            break
        visited.add(url)
        try:
            parsed = parse_feed(fetcher.get(url, accept=FEED_ACCEPT), max_items)
        except ItemError as exc:
            # WordPress answers 404 past its last page: that is the end, not a failure.
            if not (paged and exc.kind == http_kind(404)):
                walk.errors.append(_error(url, feed_url, exc.kind, str(exc)))
            break
        known = len(walk.entries)
        walk.pages.append(parsed)
        # A page with nothing new is the end too: a server that ignores ?paged= sends page 1.
        if len(walk.entries) == known or older_than_window(parsed.entries, window, tz):
            break
        url = parsed.archive_link
        if url is None and is_wordpress(parsed):
            paged, url = True, wordpress_page(feed_url, len(walk.pages) + 1)
        if url in visited:
            url = None
    LOGGER.info("%s: %d archive page(s) read", feed_url, len(walk.pages))
    return walk


def _error(url: str, feed_url: str, kind: str, message: str) -> IngestErrorRecord:
    return IngestErrorRecord(
        stage=Stage.ARCHIVE, url=url, kind=kind, message=message, feed_url=feed_url
    )
