"""The backfill flow: the past of feeds, sites and post archives, over a window of days.

Sources, each optional and combinable: the archive pages behind the feeds of a feeds file,
sitemaps, a file of URLs, a directory of front-matter posts; and re-extraction of stored
articles. Web items go through the ingest pipeline's own stages (drop known, download and
extract, normalize); posts through the front-matter reader. Work goes in batches of a few
hundred items, each a Prefect task and a load transaction of its own, so a backfill killed
midway and started again skips what is stored (URLs before download, posts by identity) and
finishes without duplicates.

Deployment: `flows/backfill.py:backfill`, no schedule; its parameters are strings and bools.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from flows.ingest import (
    EntryOrigin,
    FeedContext,
    download_and_extract,
    feed_origin,
    normalize_entries,
)
from flows.progress import report_progress
from schemas.config import (
    BackfillRequest,
    FeedConfig,
    FeedDefaults,
    FeedsFile,
    Settings,
    load_feeds_file,
)
from schemas.errors import ItemError
from schemas.models import (
    ArticleBatch,
    DateWindow,
    FeedEntry,
    IngestErrorRecord,
    RunCounts,
)
from tasks.archive import ArchiveWalk, walk_archive
from tasks.dedup import lookup_known, split_known
from tasks.extract import Extractor
from tasks.fetch import Fetcher
from tasks.frontmatter import PostSite, find_posts, read_posts, read_site
from tasks.load import finish_run, load_articles, start_run
from tasks.normalize import parse_date_or_none, rebuild_body
from tasks.query import articles_by_id, reextract_targets
from tasks.sitemap import SitemapWalk, walk_sitemaps
from tasks.store import Database
from tasks.tag import load_tagger
from tasks.urllist import read_url_file

LOGGER = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class BackfillSummary:
    """What a backfill did, for the CLI; `counts` are also the run's row in `runs`."""

    run_id: str
    db_path: Path
    started_at: datetime
    finished_at: datetime | None = None
    counts: RunCounts = field(default_factory=RunCounts)
    outside_window: int = 0
    not_posts: int = 0
    refused: int = 0  # posts that could not be read (an ingest_errors row each)

    @property
    def seconds(self) -> float:
        return ((self.finished_at or datetime.now(UTC)) - self.started_at).total_seconds()

    def add(self, counts: RunCounts, batch: ArticleBatch) -> None:
        self.counts += counts
        self.outside_window += batch.outside_window
        self.not_posts += batch.not_posts
        self.refused += sum(e.stage == "post" for e in batch.errors)


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


def collect_pages(
    ctx: BackfillContext, origin: EntryOrigin, entries: Sequence[FeedEntry]
) -> tuple[ArticleBatch, list[str]]:
    """A batch of entries through the ingest stages; also the ids of those already stored,
    which are not downloaded again (re-extraction takes them when asked)."""
    with ctx.db.session() as con:
        known = lookup_known(con, origin.feed_url, entries)
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
    )
    return keep_window(batch, ctx.window), [article_id for article_id, _ in split.seen_again]


def reextract_batch(ctx: BackfillContext, ids: Sequence[str]) -> ArticleBatch:
    """Stored articles with their pages downloaded and extracted again: the text is new, the
    rest (first_seen_at among it) as stored. A page that fails leaves its article as it was."""
    with ctx.db.session() as con:
        articles = articles_by_id(con, ids)
    pages, page_errors, downloaded = download_and_extract(
        ctx.fetcher, ctx.extractor, (a.url for a in articles)
    )
    batch = ArticleBatch(entries_seen=len(articles), pages_downloaded=downloaded)
    for article in articles:
        stage, failure = page_errors.get(article.url, ("extract", None))
        page = pages.get(article.url)
        if failure is None and page is not None:
            try:
                batch.articles.append(rebuild_body(article, page))
            except ItemError as exc:
                failure = exc
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
    return walk_archive(
        ctx.fetcher,
        feed.url,
        window=ctx.window,
        tz=ZoneInfo(ctx.feeds_file.timezone_for(feed)),
        max_pages=ctx.request.max_pages,
        max_items=ctx.settings.max_items_per_feed,
    )


@task(name="walk-sitemap", cache_policy=NO_CACHE, task_run_name="sitemap {url}")
def walk_sitemap_task(ctx: BackfillContext, url: str) -> SitemapWalk:
    return walk_sitemaps(
        ctx.fetcher,
        url,
        window=ctx.window,
        tz=ctx.settings.tz,
        max_documents=ctx.request.max_pages,
    )


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


# --- the flow ----------------------------------------------------------------------------------


class _Run:
    """One backfill's loop: loads each batch as it comes and keeps the tally."""

    def __init__(self, ctx: BackfillContext, summary: BackfillSummary) -> None:
        self.ctx = ctx
        self.summary = summary
        self.pages_done = 0
        self.pages_total = 0

    def load(self, batch: ArticleBatch) -> None:
        self.summary.add(load_articles_task(self.ctx, self.summary.run_id, batch), batch)

    def entries(self, origin: EntryOrigin, entries: list[FeedEntry], outside: int) -> list[str]:
        """Web entries in batches; returns the ids of those already stored."""
        self.summary.outside_window += outside
        self.pages_total += len(entries)
        stored: list[str] = []
        for chunk in chunks(entries, self.ctx.request.batch_size):
            batch, known = collect_pages_task(self.ctx, origin, chunk)
            self.load(batch)
            stored += known
            self.pages_done += len(chunk)
            report_progress("pages", self.pages_done, self.pages_total)
        return stored

    def feeds(self) -> list[str]:
        feeds = [f for f in self.ctx.feeds_file.feeds if f.enabled]
        by_url = {f.url: f for f in feeds}
        stored: list[str] = []
        futures = [walk_archive_task.submit(self.ctx, f) for f in feeds]
        for done, future in enumerate(as_completed(futures), start=1):
            walk = future.result()
            feed = by_url[walk.feed_url]
            origin = feed_origin(
                self.ctx.feeds_file, feed, walk.pages[0].title if walk.pages else None
            )
            entries, outside = entries_in_window(walk.entries, self.ctx.window, origin.tz)
            self.load(ArticleBatch(errors=walk.errors))
            report_progress("feeds", done, len(feeds), feed.url)
            stored += self.entries(origin, entries, outside)
        return stored

    def sitemap(self, url: str) -> list[str]:
        walk = walk_sitemap_task(self.ctx, url)
        self.load(ArticleBatch(errors=walk.errors))
        origin = EntryOrigin(feed_url=None, tz=self.ctx.settings.tz, title=walk.publication)
        return self.entries(origin, walk.entries, walk.outside_window)

    def urls(self, path: Path) -> list[str]:
        entries, errors = read_url_file(path)
        self.load(ArticleBatch(errors=errors))
        return self.entries(EntryOrigin(feed_url=None, tz=self.ctx.settings.tz), entries, 0)

    def posts(self, directory: Path) -> None:
        site = read_site(directory, self.ctx.settings.tz, self.ctx.request.base_url)
        paths = find_posts(directory)
        done = 0
        for chunk in chunks(paths, self.ctx.request.batch_size):
            self.load(read_posts_task(self.ctx, site, chunk))
            done += len(chunk)
            report_progress("posts", done, len(paths))

    def reextract(self, ids: list[str] | None) -> None:
        with self.ctx.db.session() as con:
            targets = reextract_targets(con, self.ctx.window, ids)
        done = 0
        for chunk in chunks(targets, self.ctx.request.batch_size):
            self.load(reextract_task(self.ctx, chunk))
            done += len(chunk)
            report_progress("re-extract", done, len(targets))


def check_backfill_inputs(settings: Settings, request: BackfillRequest) -> None:
    """Fail fast, before any flow starts, on a feeds file, a site configuration or a
    database that cannot be read (each a one-line error at the CLI)."""
    if request.feeds:
        load_feeds_file(request.feeds)
    if request.from_dir:
        read_site(request.from_dir, settings.tz, request.base_url)
    with Database(settings.db_path, settings.lock_timeout).session():
        pass


def run_backfill(settings: Settings, request: BackfillRequest) -> BackfillSummary:
    """The backfill flow's body, for use inside a Prefect flow run."""
    feeds_file = (
        load_feeds_file(request.feeds)
        if request.feeds
        else FeedsFile(defaults=FeedDefaults(timezone=settings.timezone))
    )
    db = Database(settings.db_path, settings.lock_timeout)
    started = datetime.now(UTC)
    run_id = start_run(db, "backfill", request.model_dump(mode="json"))
    summary = BackfillSummary(run_id, settings.db_path, started)
    status = "crashed"
    try:
        with (
            Fetcher(feeds_file.fetch_limits(settings.fetch), feeds_file.hosts) as fetcher,
            Extractor(settings.extract_workers, settings.extract_deadline) as extractor,
        ):
            run = _Run(
                BackfillContext(settings, request, feeds_file, db, fetcher, extractor), summary
            )
            stored: list[str] = []
            if request.feeds:
                stored += run.feeds()
            for url in request.sitemaps:
                stored += run.sitemap(url)
            if request.urls:
                stored += run.urls(request.urls)
            if request.from_dir:
                run.posts(request.from_dir)
            if request.reextract:
                # With web sources, theirs only; alone (or with posts), the whole window.
                run.reextract(stored if request.web_sources else None)
        status = "completed"
    finally:
        finish_run(db, run_id, summary.counts, status)
        summary.finished_at = datetime.now(UTC)
        LOGGER.info("backfill %s %s: %s", run_id, status, summary)
    return summary


@flow(
    name="backfill",
    # Archive walks wait on the network; batches run in the flow thread, one at a time.
    task_runner=ThreadPoolTaskRunner(max_workers=4),  # type: ignore[arg-type]
    log_prints=False,
    validate_parameters=True,
)
def backfill(
    since: str | None = None,
    until: str | None = None,
    feeds: str | None = None,
    from_dir: str | None = None,
    urls: str | None = None,
    sitemap: list[str] | None = None,
    reextract: bool = False,
    timezone: str | None = None,
    base_url: str | None = None,
    db: str | None = None,
    settings: Settings | None = None,
    request: BackfillRequest | None = None,
) -> BackfillSummary:
    """Load the past of feeds, sitemaps, URL lists and post archives over [since, until].

    A deployment passes the plain parameters (dates as YYYY-MM-DD, paths, URLs); the CLI
    passes the `settings` and `request` it built and checked.
    """
    if settings is None:
        settings = Settings.from_env(db_path=db, timezone=timezone)
    if request is None:
        request = BackfillRequest.build(
            since=since,
            until=until,
            feeds=feeds,
            from_dir=from_dir,
            urls=urls,
            sitemaps=tuple(sitemap or ()),
            reextract=reextract,
            base_url=base_url,
        )
    return run_backfill(settings, request)
