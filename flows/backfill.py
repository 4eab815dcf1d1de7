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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TypeVar

from prefect import flow
from prefect.futures import PrefectFuture, as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from newsflow.schemas.config import (
    BackfillRequest,
    FeedConfig,
    FeedDefaults,
    FeedsFile,
    Settings,
    load_feeds_file,
)
from newsflow.schemas.errors import NewsflowError
from newsflow.schemas.models import (
    ArticleBatch,
    FeedEntry,
    RunCounts,
)
from newsflow.tasks.containment import internal_error
from newsflow.tasks.extraction.assemble import EntryOrigin
from newsflow.tasks.extraction.extract import Extractor
from newsflow.tasks.fetching.fetch import Fetcher
from newsflow.tasks.pipeline.backfill import (
    BackfillContext,
    chunks,
    collect_pages_task,
    entries_in_window,
    load_articles_task,
    read_posts_task,
    reextract_task,
    walk_archive_task,
    walk_sitemap_task,
)
from newsflow.tasks.pipeline.feed import derivation, feed_origin
from newsflow.tasks.progress import report_progress
from newsflow.tasks.sources.archive import ArchiveWalk
from newsflow.tasks.sources.frontmatter import PostSite, find_posts, read_site
from newsflow.tasks.sources.urllist import read_url_file
from newsflow.tasks.storage.query import reextract_targets
from newsflow.tasks.storage.runs import finish_run, start_run
from newsflow.tasks.storage.store import WRITER_THREADS, Database

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

    def lines(self) -> list[str]:
        """What the backfill did, in two lines (the CLI prints them, the log has them)."""
        c = self.counts
        not_posts = f" · {self.not_posts} files without front matter" if self.not_posts else ""
        return [
            f"backfill: {c.entries_seen} items read, {c.pages_downloaded} pages downloaded, "
            f"{self.outside_window} outside the window{not_posts}",
            f"articles: {c.articles_new} new, {c.articles_updated} updated, "
            f"{c.duplicates} duplicates · refused: {self.refused} posts · errors: {c.errors}",
        ]


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

    def contained(self, stage: str, url: str, source: Callable[[], list[str] | None]) -> list[str]:
        """A source's work; what it did not expect is one internal_error row, and the backfill
        goes on with the next source. Our own errors (a database that fails) end it."""
        try:
            return source() or []
        except NewsflowError:
            raise
        except Exception as exc:
            self.load(ArticleBatch(errors=[internal_error(stage, exc, url)]))
            return []

    def feeds(self) -> list[str]:
        feeds = [f for f in self.ctx.feeds_file.feeds if f.enabled]
        stored: list[str] = []
        futures: dict[int, tuple[PrefectFuture[ArchiveWalk], FeedConfig]] = {}
        for feed in feeds:
            future = walk_archive_task.submit(self.ctx, feed)
            futures[id(future)] = future, feed
        for done, future in enumerate(as_completed([f for f, _ in futures.values()]), start=1):
            feed = futures[id(future)][1]
            stored += self.contained("archive", feed.url, partial(self.archive, feed, future))
            report_progress("feeds", done, len(feeds), feed.url)
        return stored

    def archive(self, feed: FeedConfig, future: PrefectFuture[ArchiveWalk]) -> list[str]:
        walk = future.result()
        origin = feed_origin(self.ctx.feeds_file, feed, walk.pages[0].title if walk.pages else None)
        entries, outside = entries_in_window(walk.entries, self.ctx.window, origin.tz)
        self.load(ArticleBatch(errors=walk.errors))
        return self.entries(origin, entries, outside)

    def sitemap(self, url: str) -> list[str]:
        walk = walk_sitemap_task(self.ctx, url)
        self.load(ArticleBatch(errors=walk.errors))
        origin = EntryOrigin(feed_url=None, tz=self.ctx.settings.tz, title=walk.publication)
        return self.entries(origin, walk.entries, walk.outside_window)

    def urls(self, path: Path) -> list[str]:
        entries, errors = read_url_file(path, self.ctx.settings.max_url_file_bytes)
        self.load(ArticleBatch(errors=errors))
        return self.entries(EntryOrigin(feed_url=None, tz=self.ctx.settings.tz), entries, 0)

    def posts(self, directory: Path) -> None:
        site = site_of(directory, self.ctx.settings, self.ctx.request)
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


def site_of(directory: Path, settings: Settings, request: BackfillRequest) -> PostSite:
    return read_site(
        directory,
        settings.tz,
        request.base_url,
        max_post_bytes=settings.max_post_bytes,
        max_config_bytes=settings.max_site_config_bytes,
    )


def check_backfill_inputs(settings: Settings, request: BackfillRequest) -> None:
    """Fail fast, before any flow starts, on a feeds file, a site configuration, a URL file or
    a database that cannot be read (each a one-line error at the CLI)."""
    if request.feeds:
        load_feeds_file(request.feeds)
    if request.from_dir:
        site_of(request.from_dir, settings, request)
    if request.urls:
        read_url_file(request.urls, settings.max_url_file_bytes)
    with Database(settings.db_path, settings.lock_timeout).session():
        pass


def run_backfill(settings: Settings, request: BackfillRequest) -> BackfillSummary:
    """The backfill flow's body, for use inside a Prefect flow run."""
    feeds_file = (
        load_feeds_file(request.feeds)
        if request.feeds
        else FeedsFile(defaults=FeedDefaults(timezone=settings.timezone))
    )
    db = Database(settings.db_path, settings.lock_timeout, threads=WRITER_THREADS)
    started = datetime.now(UTC)
    run_id = start_run(db, "backfill", request.model_dump(mode="json"))
    summary = BackfillSummary(run_id, settings.db_path, started)
    status = "crashed"
    try:
        with (
            Fetcher(feeds_file.fetch_limits(settings.fetch), feeds_file.hosts) as fetcher,
            Extractor(
                settings.extract_workers, settings.extract_deadline, derive=derivation(settings)
            ) as extractor,
        ):
            run = _Run(
                BackfillContext(settings, request, feeds_file, db, fetcher, extractor), summary
            )
            stored: list[str] = []
            if request.feeds:
                stored += run.feeds()
            for url in request.sitemaps:
                stored += run.contained("sitemap", url, partial(run.sitemap, url))
            if request.urls:
                stored += run.contained("urls", str(request.urls), partial(run.urls, request.urls))
            if request.from_dir:
                run.contained("post", str(request.from_dir), partial(run.posts, request.from_dir))
            if request.reextract:
                # With web sources, theirs only; alone (or with posts), the whole window.
                ids = stored if request.web_sources else None
                run.contained("reextract", str(settings.db_path), partial(run.reextract, ids))
        status = "completed"
    finally:
        finish_run(db, run_id, summary.counts, status)
        summary.finished_at = datetime.now(UTC)
        LOGGER.info("backfill %s %s: %s", run_id, status, " · ".join(summary.lines()))
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
