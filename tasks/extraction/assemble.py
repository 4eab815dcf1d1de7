"""An entry's article assembled where its page is extracted.

Normalizing an entry and its page into an Article (cleaning the text, hashing it, reading the
dates, validating the record: `build_feed_article`) is per-article CPU, and on two cores the
flow process's CPU is taken straight from extraction (docs/ARCHITECTURE.md, "data flow"). So a
feed entry's page travels to the extraction worker with an `Assembly` of what normalize needs,
and comes back with its article built (`ExtractedPage.built`). The flow process uses it for
the entry it was built for; it builds the article itself for everything else (an entry without
a page, a second entry with the same link, a page a declared source read), with the same
function, and when the worker could not: so a failure is recorded in one place.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from newsflow.schemas.errors import ItemError
from newsflow.schemas.models import Article, Built, ExtractedPage, FeedEntry
from newsflow.tasks.extraction.normalize import build_feed_article

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class EntryOrigin:
    """Where entries come from, as normalize needs to know it: a polled feed, a feed's archive,
    a sitemap or a list of URLs (these last two have no feed_url)."""

    feed_url: str | None
    tz: ZoneInfo
    source: str | None = None
    title: str | None = None
    language: str | None = None
    categories: tuple[str, ...] = ()


def feed_article(
    entry: FeedEntry, page: ExtractedPage | None, origin: EntryOrigin
) -> tuple[Article, list[ItemError]]:
    """`build_feed_article` with the origin's fields."""
    return build_feed_article(
        entry,
        page,
        source=origin.source,
        feed_title=origin.title,
        language=origin.language,
        feed_categories=list(origin.categories),
        tz=origin.tz,
    )


@dataclass(frozen=True)
class Assembly:
    """What the worker needs to build an entry's article from its page: the entry, its origin
    and the page's URL after redirects. Picklable: it travels to the worker with the page."""

    entry: FeedEntry
    origin: EntryOrigin
    final_url: str

    def __call__(self, page: ExtractedPage) -> ExtractedPage:
        page = page.model_copy(update={"url": self.final_url})
        try:
            article, warnings = feed_article(self.entry, page, self.origin)
        except Exception:  # the flow process builds it again, and records why it fails
            LOGGER.debug("no article built for %s", page.url, exc_info=True)
            return page
        page.built = Built(article=article, warnings=warnings)
        return page
