"""The backfill's units of work: walk an archive or a sitemap, collect a batch of pages,
read a batch of posts, re-extract stored articles, load a batch; each a plain function and
the thin Prefect task around it. Each unit records what it did not expect as one
internal_error row and returns what it has (tasks/containment.py); the backfill goes on."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo

from prefect import task
from prefect.cache_policies import NO_CACHE

from newsflow.schemas.config import (
    BackfillRequest,
    FeedConfig,
    FeedsFile,
    Settings,
)
from newsflow.schemas.errors import ItemError
from newsflow.schemas.models import (
    ArticleBatch,
    DateWindow,
    FeedEntry,
    IngestErrorRecord,
    RunCounts,
)
from newsflow.schemas.sources import SourceConfig
from newsflow.tasks.containment import internal_error
from newsflow.tasks.coverage.tag import load_tagger
from newsflow.tasks.dedup.known import split_known
from newsflow.tasks.extraction.assemble import EntryOrigin
from newsflow.tasks.extraction.derive import derived_of
from newsflow.tasks.extraction.extract import Extractor
from newsflow.tasks.extraction.normalize import parse_date_or_none, rebuild_body
from newsflow.tasks.fetching.fetch import Fetcher
from newsflow.tasks.pipeline.declared import walk_source_back
from newsflow.tasks.pipeline.feed import (
    FeedContext,
    download_and_extract,
    known_entries,
    normalize_entries,
)
from newsflow.tasks.sources.archive import ArchiveWalk, walk_archive
from newsflow.tasks.sources.frontmatter import PostSite, read_posts
from newsflow.tasks.sources.sitemap import SitemapWalk, walk_sitemaps
from newsflow.tasks.storage.load import load_articles
from newsflow.tasks.storage.query import articles_by_id
from newsflow.tasks.storage.store import Database

LOGGER = logging.getLogger(__name__)
T = TypeVar("T")


class BackfillContext(FeedContext):
    """The run's shared resources and the backfill's request and window."""

    __slots__ = ("request", "window")
    # A backfill writes as it goes: its database, never a stage's snapshot.
    db: Database

    def __init__(
        self,
        settings: Settings,
        request: BackfillRequest,
        feeds_file: FeedsFile,
        db: Database,
        fetcher: Fetcher,
        extractor: Extractor,
    ) -> None:
        super().__init__(settings, feeds_file, db, fetcher, extractor)
        self.request = request
        self.window = DateWindow.of_days(request.since, request.until, settings.tz)


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def keep_window(batch: ArticleBatch, window: DateWindow) -> ArticleBatch:
    """The batch without its articles published outside the window (counted instead)."""
    kept = [a for a in batch.articles if window.contains(a.published_at)]
    dropped = len(batch.articles) - len(kept)
    return batch.model_copy(
        update={"articles": kept, "outside_window": batch.outside_window + dropped}
    )


def entries_in_window(
    entries: list[FeedEntry], window: DateWindow, tz: ZoneInfo
) -> tuple[list[FeedEntry], int]:
    """Entries whose own date may be in the window: not downloaded are those dated outside.
    Undated ones are kept: their page may carry the date, checked after normalize."""
    kept, outside = [], 0
    for entry in entries:
        when = parse_date_or_none(entry.published or entry.updated, tz)
        if when is not None and not window.contains(when):
            outside += 1
        else:
            kept.append(entry)
    return kept, outside


# --- plain functions: one batch or one source each ---------------------------------------------


def archive_walk(ctx: BackfillContext, feed: FeedConfig) -> ArchiveWalk:
    """The feed's archive pages in the window (what went wrong among its errors)."""
    tz = ZoneInfo(ctx.feeds_file.timezone_for(feed))
    try:
        if isinstance(feed, SourceConfig):  # its list pages, walked back to the window's start
            return walk_source_back(ctx.fetcher, feed, ctx.window.start, tz, ctx.request.max_pages)
        return walk_archive(
            ctx.fetcher,
            feed.url,
            window=ctx.window,
            tz=tz,
            max_pages=ctx.request.max_pages,
            max_items=ctx.settings.max_items_per_feed,
        )
    except Exception as exc:
        return ArchiveWalk(feed.url, errors=[internal_error("archive", exc, feed.url, feed.url)])


def sitemap_walk(ctx: BackfillContext, url: str) -> SitemapWalk:
    """The sitemap's page URLs in the window (what went wrong among its errors)."""
    try:
        return walk_sitemaps(
            ctx.fetcher,
            url,
            window=ctx.window,
            tz=ctx.settings.tz,
            max_documents=ctx.request.max_pages,
            max_entries=ctx.settings.max_sitemap_entries,
        )
    except Exception as exc:
        return SitemapWalk(url, errors=[internal_error("sitemap", exc, url)])


def collect_pages(
    ctx: BackfillContext, origin: EntryOrigin, entries: Sequence[FeedEntry]
) -> tuple[ArticleBatch, list[str]]:
    """A batch of entries through the ingest stages; also the ids of those already stored,
    which are not downloaded again (re-extraction takes them when asked)."""
    try:
        return _collect_pages(ctx, origin, entries)
    except Exception as exc:
        error = internal_error("pages", exc, origin.feed_url, origin.feed_url)
        return ArticleBatch(feed_url=origin.feed_url, errors=[error]), []


def _collect_pages(
    ctx: BackfillContext, origin: EntryOrigin, entries: Sequence[FeedEntry]
) -> tuple[ArticleBatch, list[str]]:
    known = known_entries(ctx.db, origin.feed_url, entries)
    split = split_known(entries, known, origin.tz)
    pages, page_errors, downloaded = download_and_extract(
        ctx.fetcher, ctx.extractor, (e.link for e in split.fresh if e.link)
    )
    errors: list[IngestErrorRecord] = []
    articles = normalize_entries(split.fresh, pages, page_errors, errors, origin)
    batch = ArticleBatch(
        feed_url=origin.feed_url,
        articles=articles,
        seen_again=split.seen_again,
        seen_again_by_guid=split.by_guid,
        errors=errors,
        entries_seen=len(entries),
        pages_downloaded=downloaded,
        derived=derived_of(articles, pages.values()),
    )
    return keep_window(batch, ctx.window), [article_id for article_id, _ in split.seen_again]


def reextract_batch(ctx: BackfillContext, ids: Sequence[str]) -> ArticleBatch:
    """Stored articles with their pages downloaded and extracted again: the text is new, the
    rest (first_seen_at among it) as stored. A page that fails leaves its article as it was."""
    try:
        return _reextract_batch(ctx, ids)
    except Exception as exc:
        return ArticleBatch(errors=[internal_error("reextract", exc)])


def _reextract_batch(ctx: BackfillContext, ids: Sequence[str]) -> ArticleBatch:
    with ctx.db.session() as con:
        articles = articles_by_id(con, ids)
    pages, page_errors, downloaded = download_and_extract(
        ctx.fetcher, ctx.extractor, (a.url for a in articles)
    )
    batch = ArticleBatch(
        entries_seen=len(articles), pages_downloaded=downloaded, restated_dates=True
    )
    for article in articles:
        stage, failure = page_errors.get(article.url, ("extract", None))
        page = pages.get(article.url)
        if failure is None and page is not None:
            try:
                batch.articles.append(rebuild_body(article, page, ctx.settings.tz))
            except ItemError as exc:
                failure = exc
            else:
                if page.derived is not None:  # taken where the stored title is the page's
                    batch.derived[article.article_id] = page.derived
        if failure is not None:
            batch.errors.append(
                IngestErrorRecord(
                    stage=stage, url=article.url, kind=failure.kind, message=str(failure)
                )
            )
    return batch


def read_posts_batch(ctx: BackfillContext, site: PostSite, paths: Sequence[Path]) -> ArticleBatch:
    return keep_window(read_posts(paths, site), ctx.window)


# --- tasks -------------------------------------------------------------------------------------


@task(name="walk-archive", cache_policy=NO_CACHE, task_run_name="archive {feed.url}")
def walk_archive_task(ctx: BackfillContext, feed: FeedConfig) -> ArchiveWalk:
    return archive_walk(ctx, feed)


@task(name="walk-sitemap", cache_policy=NO_CACHE, task_run_name="sitemap {url}")
def walk_sitemap_task(ctx: BackfillContext, url: str) -> SitemapWalk:
    return sitemap_walk(ctx, url)


@task(name="collect-pages", cache_policy=NO_CACHE)
def collect_pages_task(
    ctx: BackfillContext, origin: EntryOrigin, entries: Sequence[FeedEntry]
) -> tuple[ArticleBatch, list[str]]:
    return collect_pages(ctx, origin, entries)


@task(name="read-posts", cache_policy=NO_CACHE)
def read_posts_task(ctx: BackfillContext, site: PostSite, paths: Sequence[Path]) -> ArticleBatch:
    return read_posts_batch(ctx, site, paths)


@task(name="reextract", cache_policy=NO_CACHE)
def reextract_task(ctx: BackfillContext, ids: Sequence[str]) -> ArticleBatch:
    return reextract_batch(ctx, ids)


@task(name="load-articles", cache_policy=NO_CACHE)
def load_articles_task(ctx: BackfillContext, run_id: str, batch: ArticleBatch) -> RunCounts:
    tagger = load_tagger(ctx.settings.lexicon_path, ctx.settings.gazetteer_path)
    return load_articles(ctx.db, run_id, batch, tagger)
