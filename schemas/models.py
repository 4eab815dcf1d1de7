"""The records that cross stage boundaries: fetched responses, feed entries, pages, articles."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from newsflow.schemas.errors import ItemError


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_run_id() -> str:
    """Id of a run: a `runs` row, or a staged run's mark on its batches."""
    return uuid.uuid4().hex[:16]


def article_id_for(canonical_url: str) -> str:
    """Stable primary key of an article: a short hash of its canonical URL."""
    return hashlib.blake2b(canonical_url.encode("utf-8"), digest_size=8).hexdigest()


# What article_id_for gives: 16 lowercase hex digits. Export names files after it, so an id of
# any other shape (a stored or staged row edited into "../x") is refused wherever one is read.
ARTICLE_ID_PATTERN = r"^[0-9a-f]{16}$"
ArticleId = Annotated[str, StringConstraints(pattern=ARTICLE_ID_PATTERN)]


class Response(BaseModel):
    """One HTTP response, read within the limits. `text` is set for HTML (decoded)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    url: str  # as requested
    final_url: str  # after redirects
    status: int
    content_type: str = ""
    etag: str | None = None
    last_modified: str | None = None
    cache_max_age: int | None = None
    body: bytes = b""
    # Decoded text and the charset used (BOM → header → declaration → detection).
    text: str | None = None
    encoding: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.status == 304


class FeedEntry(BaseModel):
    """One item of a feed, as feedparser gives it (or of a sitemap or a list of URLs, which have
    no feed_url); dates stay raw until normalize."""

    feed_url: str | None = None
    guid: str | None = None
    link: str | None = None
    title: str | None = None
    author: str | None = None
    published: str | None = None
    updated: str | None = None
    summary: str | None = None  # HTML
    content: str | None = None  # HTML, the longest content element
    categories: list[str] = []
    image: str | None = None
    language: str | None = None


class ParsedFeed(BaseModel):
    feed_url: str
    title: str | None = None
    link: str | None = None
    language: str | None = None
    # Polling hints from the feed itself, in seconds (<ttl>, sy:updatePeriod/Frequency).
    poll_hint: float | None = None
    entries: list[FeedEntry] = []
    # A recoverable problem (feedparser's bozo) when entries were still usable.
    warning: str | None = None
    truncated_from: int | None = None  # the item count before the per-feed cap
    # The page of older entries (RFC 5005 prev-archive, else a paged feed's next link).
    archive_link: str | None = None
    generator: str | None = None


class Derived(BaseModel):
    """Coverage tags, the body's dedup fingerprint and its search terms of one article, made
    from its title and body where its page was extracted (newsflow.tasks.extraction.derive).
    The loader takes them only while they are what it would compute: the same title and body
    (`text_key`), tagger (`tagger`) and fingerprint scheme (`version`); otherwise it computes
    them itself."""

    # Bytes travel as base64 in JSON (a staged batch's `derived` column).
    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    version: str
    text_key: str
    tagger: str
    # Rows of the tag tables without their article_id (newsflow.tasks.coverage.tag).
    topics: list[tuple[str, list[str], int, int, float]] = []
    regions: list[tuple[str, str, str, int]] = []
    docs: list[tuple[str, str, int]] = []
    orgs: list[tuple[str, str, int]] = []
    # None for a body too short to compare (newsflow.tasks.dedup.fingerprint.BodyPrint).
    body_key: str | None = None
    shingles: bytes | None = None  # sorted unique uint32 shingle hashes
    signature: bytes | None = None  # uint32 MinHash values
    # The body's index terms, space-separated (newsflow.tasks.search.segment.index_terms); None
    # in a staged part written before they were made here.
    body_terms: str | None = None


class ExtractedPage(BaseModel):
    """What trafilatura and the metadata stage found on a page."""

    url: str
    title: str | None = None
    author: str | None = None
    # The publication date as the page states it (ISO, naive when the page gave no zone), to
    # `date_precision`, from `date_source` (newsflow.tasks.extraction.metadata.choose).
    date: str | None = None
    date_precision: str | None = None
    date_source: str | None = None
    updated: str | None = None
    updated_precision: str | None = None
    origin_source: str | None = None
    image: str | None = None
    language: str | None = None
    sitename: str | None = None
    description: str | None = None
    categories: list[str] = []
    tags: list[str] = []
    text: str = ""
    # Tags and fingerprint of the article the page most likely makes, made in the worker.
    derived: Derived | None = None
    # The article of the feed entry the page was downloaded for, built in the worker
    # (tasks/extraction/assemble.py).
    built: Built | None = None


class Article(BaseModel):
    """The normalized record: one row of `articles` (docs/ARCHITECTURE.md, "front matter").

    The fields are the table's columns, in the order of the DDL after every migration; the
    bulk load's Arrow schema is derived from them (tasks/storage/articles.py).
    """

    article_id: ArticleId
    url: str
    canonical_url: str
    guid: str | None = None
    feed_url: str | None = None
    source: str | None = None
    title: str
    author: str | None = None
    published_at: datetime | None = None
    updated_at: datetime | None = None
    categories: list[str] = []
    tags: list[str] = []
    image_url: str | None = None
    thumbnail_url: str | None = None
    comments: bool | None = None
    language: str | None = None
    summary: str | None = None
    body_text: str = ""
    content_hash: str = ""
    story_id: str | None = None
    duplicate_of: str | None = None
    # Unknown front-matter keys and other source-specific extras, kept as JSON.
    extra: dict[str, Any] = {}
    first_seen_at: datetime = Field(default_factory=utcnow)
    last_seen_at: datetime = Field(default_factory=utcnow)
    # Where body_text came from: "page" (extracted from the downloaded page), "feed" (the
    # feed's own content), "post" (a front-matter post's body). Re-extraction skips posts.
    body_source: str | None = None
    # second, minute, day, month or year: how much of published_at the source stated; for a
    # date without a time published_at is the local midnight and published_date the date.
    published_precision: str | None = None
    # feed, jsonld, meta, time, script, visible, url or front_matter
    published_source: str | None = None
    published_date: date | None = None  # the calendar date in the source's zone
    # The outlet the story was taken from (来源), apart from the author and the carrying site.
    origin_source: str | None = None


class Built(BaseModel):
    """An entry's article built where its page was extracted, with the per-field problems
    repaired on the way (tasks/extraction/assemble.py)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    article: Article
    warnings: list[ItemError] = []


class IngestErrorRecord(BaseModel):
    """One row of `ingest_errors`."""

    stage: str
    url: str | None
    kind: str
    message: str
    feed_url: str | None = None
    occurred_at: datetime = Field(default_factory=utcnow)


class FeedCheck(BaseModel):
    """The outcome of polling one feed, for the `feeds` table."""

    url: str
    checked_at: datetime = Field(default_factory=utcnow)
    ok: bool
    status_code: int | None = None
    title: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    error_kind: str | None = None
    error: str | None = None
    retry_after: float | None = None
    poll_hint: float | None = None
    entries_seen: int = 0
    entries_new: int = 0


class ArticleBatch(BaseModel):
    """Articles and errors that `load` writes in one transaction (a backfill batch)."""

    feed_url: str | None = None
    articles: list[Article] = []
    # (article_id, guid) pairs of entries already stored that this feed carried again.
    seen_again: list[tuple[str, str | None]] = []
    # How many of seen_again were recognized by their GUID alone; the rest by their URL.
    seen_again_by_guid: int = 0
    errors: list[IngestErrorRecord] = []
    # By article_id: what the extraction workers derived from the articles' pages.
    derived: dict[str, Derived] = {}
    entries_seen: int = 0
    pages_downloaded: int = 0
    # Not written, only reported: items dated outside the backfill's window, and files of an
    # archive that are not posts (no front matter).
    outside_window: int = 0
    not_posts: int = 0
    # Re-extraction: the date columns are what the pages state now, NULL included, and replace
    # the stored ones (an older version may have invented a date the page does not state).
    restated_dates: bool = False


class FeedBatch(ArticleBatch):
    """Everything one feed contributed to an ingest run, with the outcome of polling it."""

    feed_url: str
    check: FeedCheck


class StagedRef(BaseModel):
    """A staged feed batch being loaded: what `loaded_batches` records of it."""

    batch_id: str
    part: str  # its folder under <stage>/parts/
    load_run_id: str


class RunCounts(BaseModel):
    """What a run did; the counter columns of `runs` and the CLI summary."""

    feeds_checked: int = 0
    feeds_failed: int = 0
    feeds_not_modified: int = 0
    entries_seen: int = 0
    pages_downloaded: int = 0
    articles_new: int = 0
    articles_updated: int = 0
    duplicates: int = 0  # the sum of the layers below
    dup_url: int = 0  # entries or items whose canonical URL was known
    dup_guid: int = 0  # entries whose GUID (in the same feed) was known
    dup_title: int = 0  # same source and title within 7 days
    dup_body: int = 0  # identical body text
    dup_near: int = 0  # near-duplicates, joined to an earlier article's story
    errors: int = 0

    def __add__(self, other: RunCounts) -> RunCounts:
        return RunCounts(
            **{f: getattr(self, f) + getattr(other, f) for f in type(self).model_fields}
        )


class DateWindow(BaseModel):
    """The instants [start, end) of a backfill's or an export's days; open where None."""

    model_config = ConfigDict(frozen=True)

    start: datetime | None = None
    end: datetime | None = None

    @classmethod
    def of_days(cls, since: date | None, until: date | None, tz: ZoneInfo) -> DateWindow:
        """Days `since` to `until`, both included, as calendar days in `tz`."""
        return cls(
            start=datetime.combine(since, time(), tz).astimezone(UTC) if since else None,
            end=datetime.combine(until + timedelta(days=1), time(), tz).astimezone(UTC)
            if until
            else None,
        )

    @property
    def bounded(self) -> bool:
        return self.start is not None or self.end is not None

    def contains(self, when: datetime | None) -> bool:
        """Whether an item dated `when` belongs; an undated one only when nothing is bounded."""
        if when is None:
            return not self.bounded
        return (self.start is None or when >= self.start) and (self.end is None or when < self.end)

    def before(self, when: datetime) -> bool:
        """Whether `when` lies before the window (an archive walk can stop there)."""
        return self.start is not None and when < self.start
