"""The ingest flow: due feeds → fetch → parse → drop known → download → extract → normalize
→ dedup → load, with a Prefect task per feed and the load in the flow's one writer thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from flows.progress import report_progress
from schemas.config import FeedConfig, FeedsFile, Settings, load_feeds_file
from schemas.errors import ItemError
from schemas.models import (
    Article,
    ExtractedPage,
    FeedBatch,
    FeedCheck,
    FeedEntry,
    IngestErrorRecord,
    ParsedFeed,
    RunCounts,
)
from tasks.dedup import entry_article_id, lookup_known, split_known
from tasks.extract import Extractor
from tasks.fetch import FEED_ACCEPT, Fetcher, is_transient
from tasks.health import FeedState, poll_hint
from tasks.load import claim_due_feeds, finish_run, load_batch, start_run
from tasks.normalize import build_feed_article
from tasks.store import Database
from tasks.tag import load_tagger

LOGGER = logging.getLogger(__name__)


@dataclass
class RunSummary:
    run_id: str
    counts: RunCounts
    started_at: datetime
    finished_at: datetime
    db_path: Path
    # Due feeds left alone because an overlapping run was polling them.
    feeds_busy: int = 0

    @property
    def seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()

    def lines(self) -> list[str]:
        """What the run did, in two lines (the CLI prints them; serve logs them)."""
        c = self.counts
        return [
            f"feeds: {c.feeds_checked} checked, {c.feeds_failed} failed, "
            f"{c.feeds_not_modified} unchanged · pages downloaded: {c.pages_downloaded}",
            f"articles: {c.articles_new} new, {c.articles_updated} updated, "
            f"{c.duplicates} duplicates{duplicate_layers(c)} · errors: {c.errors}",
        ]


def duplicate_layers(c: RunCounts) -> str:
    """The dedup layers that found something, for the summary: " (url 2, near 5)"."""
    found = [
        f"{layer} {n}"
        for layer, n in (
            ("url", c.dup_url),
            ("guid", c.dup_guid),
            ("title", c.dup_title),
            ("body", c.dup_body),
            ("near", c.dup_near),
        )
        if n
    ]
    return f" ({', '.join(found)})" if found else ""


class FeedContext:
    """The run's shared resources, handed to every per-feed task (not a collection to Prefect)."""

    __slots__ = ("_claim_lock", "_claimed", "db", "extractor", "feeds_file", "fetcher", "settings")

    def __init__(
        self,
        settings: Settings,
        feeds_file: FeedsFile,
        db: Database,
        fetcher: Fetcher,
        extractor: Extractor,
    ) -> None:
        self.settings = settings
        self.feeds_file = feeds_file
        self.db = db
        self.fetcher = fetcher
        self.extractor = extractor
        self._claimed: set[str] = set()
        self._claim_lock = threading.Lock()

    def claim(self, article_id: str) -> bool:
        """True for the first feed of this run to carry the article: it downloads the page."""
        with self._claim_lock:
            if article_id in self._claimed:
                return False
            self._claimed.add(article_id)
            return True


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


def feed_origin(feeds_file: FeedsFile, feed: FeedConfig, title: str | None) -> EntryOrigin:
    return EntryOrigin(
        feed_url=feed.url,
        tz=ZoneInfo(feeds_file.timezone_for(feed)),
        source=feed.source,
        title=title,
        language=feeds_file.language_for(feed),
        categories=tuple(feeds_file.categories_for(feed)),
    )


def _error(
    stage: str, exc: ItemError, feed_url: str | None, url: str | None = None
) -> IngestErrorRecord:
    return IngestErrorRecord(
        stage=stage, url=exc.url or url, kind=exc.kind, message=str(exc), feed_url=feed_url
    )


def failed_batch(feed: FeedConfig, stage: str, exc: ItemError) -> FeedBatch:
    check = FeedCheck(
        url=feed.url,
        ok=False,
        status_code=exc.status,
        error_kind=exc.kind,
        error=str(exc),
        retry_after=exc.retry_after,
    )
    return FeedBatch(feed_url=feed.url, check=check, errors=[_error(stage, exc, feed.url)])


def collect_feed(feed: FeedConfig, state: FeedState | None, ctx: FeedContext) -> FeedBatch:
    """One feed's whole way to articles; every failure becomes a recorded error, never a raise.

    Every step that can block has its own bound: the fetch its deadline per response, parsing
    and each extraction theirs in a worker that is killed past it, and the feed's pages
    together the feed deadline. Prefect cannot interrupt a thread blocked in any of them.
    """
    deadline = time.monotonic() + ctx.settings.feed_deadline
    try:
        response = ctx.fetcher.get(
            feed.url,
            etag=state.etag if state else None,
            last_modified=state.last_modified if state else None,
            accept=FEED_ACCEPT,
        )
    except ItemError as exc:
        return failed_batch(feed, "fetch", exc)
    if response.not_modified:
        check = FeedCheck(
            url=feed.url,
            ok=True,
            status_code=304,
            etag=response.etag or (state.etag if state else None),
            last_modified=response.last_modified or (state.last_modified if state else None),
            # A 304 has no body to read <ttl> from: the hint seen last time still holds.
            poll_hint=poll_hint(state.poll_hint_s if state else None, response.cache_max_age),
        )
        return FeedBatch(feed_url=feed.url, check=check)
    try:
        parsed = ctx.extractor.parse_feed(response, ctx.settings.max_items_per_feed)
    except ItemError as exc:
        return failed_batch(feed, "parse", exc)

    errors = _feed_warnings(feed, parsed)
    origin = feed_origin(ctx.feeds_file, feed, parsed.title)
    with ctx.db.session() as con:
        known = lookup_known(con, feed.url, parsed.entries)
    split = split_known(parsed.entries, known, origin.tz)
    fresh, elsewhere = claim_entries(ctx, split.fresh)
    # Links that are not http(s) (javascript:, mailto:) are not fetched; normalize rejects their
    # items with bad_url, once.
    links = (e.link for e in fresh if e.link and _is_http(e.link))
    pages, page_errors, downloaded = download_and_extract(
        ctx.fetcher, ctx.extractor, links, until=deadline
    )
    articles = normalize_entries(fresh, pages, page_errors, errors, origin)
    late = sum(exc.kind == "feed_timeout" for _, exc in page_errors.values())
    if late:
        errors.append(
            _feed_error(
                feed,
                "download",
                "feed_timeout",
                f"the feed's deadline of {ctx.settings.feed_deadline:.0f} s passed with {late} "
                f"of {len(fresh)} pages not done; their items are tried on the next run",
            )
        )
    # With the validators saved, the next run would get a 304 and never see again the items
    # left for it; without them it refetches the feed and downloads just those.
    deferred = left_for_next_run(fresh, pages, page_errors)
    check = FeedCheck(
        url=feed.url,
        ok=True,
        status_code=response.status,
        title=parsed.title,
        etag=None if deferred else response.etag,
        last_modified=None if deferred else response.last_modified,
        poll_hint=poll_hint(parsed.poll_hint, response.cache_max_age),
        entries_seen=len(parsed.entries),
    )
    return FeedBatch(
        feed_url=feed.url,
        check=check,
        articles=articles,
        seen_again=split.seen_again + elsewhere,
        seen_again_by_guid=split.by_guid,
        errors=errors,
        pages_downloaded=downloaded,
    )


def claim_entries(
    ctx: FeedContext, entries: list[FeedEntry]
) -> tuple[list[FeedEntry], list[tuple[str, str | None]]]:
    """Entries this feed downloads, and those another feed of this run already carries."""
    mine, elsewhere = [], []
    for entry in entries:
        aid = entry_article_id(entry)
        if aid is None or ctx.claim(aid):
            mine.append(entry)
        else:
            elsewhere.append((aid, entry.guid))
    return mine, elsewhere


def _feed_warnings(feed: FeedConfig, parsed: ParsedFeed) -> list[IngestErrorRecord]:
    warnings = []
    if parsed.warning:
        warnings.append(_feed_error(feed, "parse", "feed_recovered", parsed.warning))
    if parsed.truncated_from:
        message = f"feed has {parsed.truncated_from} items; kept the first {len(parsed.entries)}"
        warnings.append(_feed_error(feed, "parse", "too_many_items", message))
    return warnings


def _feed_error(feed: FeedConfig, stage: str, kind: str, message: str) -> IngestErrorRecord:
    """A row about the feed as a whole."""
    return IngestErrorRecord(
        stage=stage, url=feed.url, kind=kind, message=message, feed_url=feed.url
    )


def _is_http(link: str) -> bool:
    return link.strip().lower().startswith(("http://", "https://"))


def download_and_extract(
    fetcher: Fetcher, extractor: Extractor, links: Iterable[str], until: float | None = None
) -> tuple[dict[str, ExtractedPage], dict[str, tuple[str, ItemError]], int]:
    """Pages at the links, extracted; each page goes to the pool as soon as it arrives.

    Returns pages and (stage, error) by link, and how many pages were downloaded. Pages not
    done by `until` (a `time.monotonic()` value) are errors of kind feed_timeout.
    """
    links = list(dict.fromkeys(links))
    errors: dict[str, tuple[str, ItemError]] = {}
    final_urls: dict[str, str] = {}

    def downloaded() -> Iterator[tuple[str, str]]:
        for link, result in fetcher.get_many(links, decode_html=True, until=until):
            if isinstance(result, ItemError):
                errors[link] = ("download", result)
            elif result.text is not None:
                final_urls[link] = result.final_url
                yield link, result.text

    pages: dict[str, ExtractedPage] = {}
    for link, extracted in extractor.extract_many(downloaded(), until):
        if isinstance(extracted, ItemError):
            errors[link] = ("extract", extracted)
        else:
            pages[link] = extracted.model_copy(update={"url": final_urls[link]})
    return pages, errors, len(final_urls)


def normalize_entries(
    entries: list[FeedEntry],
    pages: dict[str, ExtractedPage],
    page_errors: dict[str, tuple[str, ItemError]],
    errors: list[IngestErrorRecord],
    origin: EntryOrigin,
) -> list[Article]:
    """One Article per entry. Without a page, the feed's own content stands in; with neither,
    the entry is skipped and its page error recorded. An entry whose page the feed's deadline
    cut off is skipped without a row of its own (the caller counts them in one)."""
    articles = []
    for entry in entries:
        link = entry.link or ""
        page = pages.get(link)
        has_feed_text = bool(entry.content or entry.summary)
        if link in page_errors:
            stage, exc = page_errors[link]
            if exc.kind == "feed_timeout":
                continue
            # An extraction that found nothing is no loss when the feed carries the text.
            if not (stage == "extract" and exc.kind == "extract_empty" and has_feed_text):
                errors.append(_error(stage, exc, origin.feed_url, link))
        if page is None and not has_feed_text:
            continue
        try:
            article, warnings = build_feed_article(
                entry,
                page,
                source=origin.source,
                feed_title=origin.title,
                language=origin.language,
                feed_categories=list(origin.categories),
                tz=origin.tz,
            )
        except ItemError as exc:
            errors.append(_error("normalize", exc, origin.feed_url, link))
            continue
        errors.extend(_error("normalize", w, origin.feed_url, link) for w in warnings)
        articles.append(article)
    return articles


def left_for_next_run(
    entries: list[FeedEntry],
    pages: dict[str, ExtractedPage],
    page_errors: dict[str, tuple[str, ItemError]],
) -> int:
    """Entries not stored that the next run may still get: their page was cut off by the
    feed's deadline, or failed in a way that may pass (a timeout, a 503) with no feed text to
    stand in for it."""
    left = 0
    for entry in entries:
        stage, exc = page_errors.get(entry.link or "", ("", None))
        if exc is None or entry.link in pages:
            continue
        if exc.kind == "feed_timeout" or (
            stage == "download" and is_transient(exc) and not (entry.content or entry.summary)
        ):
            left += 1
    return left


@task(name="collect-feed", cache_policy=NO_CACHE, task_run_name="collect {feed.url}")
def collect_feed_task(feed: FeedConfig, state: FeedState | None, ctx: FeedContext) -> FeedBatch:
    return collect_feed(feed, state, ctx)


@task(name="load-batch", cache_policy=NO_CACHE)
def load_batch_task(ctx: FeedContext, run_id: str, feed: FeedConfig, batch: FeedBatch) -> RunCounts:
    return load_batch(
        ctx.db,
        run_id,
        batch,
        name=feed.name,
        source=feed.source,
        default_interval=ctx.settings.default_poll_interval,
        tagger=load_tagger(ctx.settings.lexicon_path, ctx.settings.gazetteer_path),
    )


def run_ingest(settings: Settings, *, force: bool = False) -> RunSummary:
    """The ingest flow's body, for use inside a Prefect flow run."""
    started = datetime.now(UTC)
    feeds_file = load_feeds_file(settings.feeds_path)
    db = Database(settings.db_path, settings.lock_timeout)
    run_id = start_run(db, "ingest", {"feeds": str(settings.feeds_path), "force": force})
    counts = RunCounts()
    status = "crashed"
    try:
        due, states, busy = claim_due_feeds(db, run_id, feeds_file.feeds, force=force)
        by_url = {f.url: f for f in due}
        with (
            Fetcher(feeds_file.fetch_limits(settings.fetch), feeds_file.hosts) as fetcher,
            Extractor(
                settings.extract_workers,
                settings.extract_deadline,
                parse_deadline=settings.parse_deadline,
                memory_limit=settings.worker_memory_limit,
            ) as extractor,
        ):
            ctx = FeedContext(settings, feeds_file, db, fetcher, extractor)
            futures = [collect_feed_task.submit(f, states.get(f.url), ctx) for f in due]
            for done, future in enumerate(as_completed(futures), start=1):
                batch = future.result()
                counts += load_batch_task(ctx, run_id, by_url[batch.feed_url], batch)
                report_progress("feeds", done, len(due), batch.feed_url)
        status = "completed"
    finally:
        finish_run(db, run_id, counts, status)
    return RunSummary(run_id, counts, started, datetime.now(UTC), settings.db_path, busy)


@flow(
    name="ingest",
    # Per-feed tasks mostly wait on the network and the extraction pool: more threads than cores.
    task_runner=ThreadPoolTaskRunner(max_workers=8),  # type: ignore[arg-type]
    log_prints=False,
    validate_parameters=True,
)
def ingest(
    feeds: str | None = None,
    db: str | None = None,
    force: bool = False,
    settings: Settings | None = None,
) -> RunSummary:
    """Poll the feeds that are due and load their new articles.

    A deployment passes `feeds`/`db` (or relies on NEWSFLOW_FEEDS/NEWSFLOW_DB); the CLI passes
    the `settings` it built.
    """
    if settings is None:
        settings = Settings.from_env(feeds_path=feeds, db_path=db)
    summary = run_ingest(settings, force=force)
    # Under `newsflow serve` and in the Prefect UI; the CLI quiets it and prints its own.
    get_run_logger().info(" · ".join(summary.lines()))
    return summary
