"""The per-feed pipeline that the ingest and backfill flows share: fetch a feed, parse it,
drop entries already known, download and extract pages, normalize them to Articles; and the
Prefect task that runs it for a chunk of feeds, in a thread of the flow process or on a Dask
worker (newsflow/runtime/runners.py). Declared sources (tasks/pipeline/declared.py) share its
steps from their entries on (FreshEntries), so the one path stays in one module.

Over 450 lines for a reason: it is the one per-feed path both flows share, step by step; the
steps themselves are in the stage packages it calls.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE

from newsflow.schemas.config import FeedConfig, FeedsFile, Settings
from newsflow.schemas.errors import ItemError
from newsflow.schemas.models import (
    Article,
    Derived,
    ExtractedPage,
    FeedBatch,
    FeedCheck,
    FeedEntry,
    IngestErrorRecord,
    ParsedFeed,
)
from newsflow.schemas.sources import SourceConfig
from newsflow.tasks.containment import internal_error, unexpected
from newsflow.tasks.dedup.known import KnownIndex, entry_article_id, lookup_known, split_known
from newsflow.tasks.extraction.assemble import Assembly, EntryOrigin, feed_article
from newsflow.tasks.extraction.derive import Derivation, derived_of
from newsflow.tasks.extraction.extract import Extractor, InlineExtractor
from newsflow.tasks.fetching.fetch import FEED_ACCEPT, Fetcher, is_transient
from newsflow.tasks.sources.health import FeedState, poll_hint
from newsflow.tasks.storage.stage import RunSnapshot, Snapshot
from newsflow.tasks.storage.store import Reader

LOGGER = logging.getLogger(__name__)
T = TypeVar("T")
# Reads an item's page by a declared source's detail selectors: (url, html) to a page or None.
PageReader = Callable[[str, str], ExtractedPage | None]


class FeedContext:
    """The run's shared resources, handed to every per-feed task (not a collection to Prefect)."""

    __slots__ = ("_claim_lock", "_claimed", "db", "extractor", "feeds_file", "fetcher", "settings")

    def __init__(
        self,
        settings: Settings,
        feeds_file: FeedsFile,
        db: Reader,
        fetcher: Fetcher,
        extractor: Extractor | InlineExtractor,
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

    What no step expected is the feed's failure too (kind internal_error, tasks/containment.py):
    the feed backs off like any failing feed, and the run goes on.
    """
    try:
        return _collect_feed(feed, state, ctx)
    except Exception as exc:
        return failed_batch(feed, "feed", unexpected("feed", exc, feed.url))


def _collect_feed(feed: FeedConfig, state: FeedState | None, ctx: FeedContext) -> FeedBatch:
    """collect_feed's work. Every step that can block has its own bound: the fetch its
    deadline per response, parsing and each extraction theirs in a worker that is killed past
    it, and the feed's pages together the feed deadline. Prefect cannot interrupt a thread
    blocked in any of them.
    """
    deadline = time.monotonic() + ctx.settings.feed_deadline
    if isinstance(feed, SourceConfig):
        # Imported here: the declared-source pipeline builds on this module's pieces.
        from newsflow.tasks.pipeline.declared import collect_source

        return collect_source(feed, state, ctx, deadline)
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

    fresh = FreshEntries.of(ctx, feed, parsed.entries, parsed.title, deadline)
    errors = [*_feed_warnings(feed, parsed), *fresh.errors]
    check = FeedCheck(
        url=feed.url,
        ok=True,
        status_code=response.status,
        title=parsed.title,
        etag=None if fresh.deferred else response.etag,
        last_modified=None if fresh.deferred else response.last_modified,
        poll_hint=poll_hint(parsed.poll_hint, response.cache_max_age),
        entries_seen=len(parsed.entries),
    )
    return fresh.batch(feed, check, errors)


@dataclass
class FreshEntries:
    """A feed's (or a declared source's) entries taken through drop-known, download,
    extraction and normalization."""

    articles: list[Article]
    errors: list[IngestErrorRecord]
    seen_again: list[tuple[str, str | None]]
    seen_again_by_guid: int
    downloaded: int
    # Entries not stored that the next run may still get: keep no validators then.
    deferred: int
    # What the extraction workers derived from the articles' pages, by article_id.
    derived: dict[str, Derived]

    @classmethod
    def of(
        cls,
        ctx: FeedContext,
        feed: FeedConfig,
        entries: list[FeedEntry],
        title: str | None,
        deadline: float,
        read_page: PageReader | None = None,
    ) -> FreshEntries:
        errors: list[IngestErrorRecord] = []
        origin = feed_origin(ctx.feeds_file, feed, title)
        known = known_entries(ctx.db, feed.url, entries)
        split = split_known(entries, known, origin.tz)
        fresh, elsewhere = claim_entries(ctx, split.fresh)
        # Links that are not http(s) (javascript:, mailto:) are not fetched; normalize rejects
        # their items with bad_url, once.
        first: dict[str, FeedEntry] = {}  # by link, the entry its page is downloaded for
        for e in fresh:
            if e.link and _is_http(e.link):
                first.setdefault(e.link, e)
        pages, page_errors, downloaded = download_and_extract(
            ctx.fetcher,
            ctx.extractor,
            first,
            until=deadline,
            read_page=read_page,
            assemble=lambda link, url: Assembly(first[link], origin, url),
        )
        articles = normalize_entries(fresh, pages, page_errors, errors, origin)
        late = sum(exc.kind == "feed_timeout" for _, exc in page_errors.values())
        if late:
            errors.append(
                _feed_error(
                    feed,
                    "download",
                    "feed_timeout",
                    f"the feed's deadline of {ctx.settings.feed_deadline:.0f} s passed with "
                    f"{late} of {len(fresh)} pages not done; their items are tried on the next "
                    "run",
                )
            )
        # With the validators saved, the next run would get a 304 and never see again the
        # items left for it; without them it refetches the feed and downloads just those.
        deferred = left_for_next_run(fresh, pages, page_errors)
        return cls(
            articles,
            errors,
            split.seen_again + elsewhere,
            split.by_guid,
            downloaded,
            deferred,
            derived_of(articles, pages.values()),
        )

    def batch(
        self, feed: FeedConfig, check: FeedCheck, errors: list[IngestErrorRecord]
    ) -> FeedBatch:
        return FeedBatch(
            feed_url=feed.url,
            check=check,
            articles=self.articles,
            seen_again=self.seen_again,
            seen_again_by_guid=self.seen_again_by_guid,
            errors=errors,
            pages_downloaded=self.downloaded,
            derived=self.derived,
        )


def known_entries(reader: Reader, feed_url: str | None, entries: Sequence[FeedEntry]) -> KnownIndex:
    """What the reader knows of the feed's entries: a direct run's snapshot falls back on the
    database for entries it may lack (RunSnapshot)."""
    if isinstance(reader, RunSnapshot):
        return reader.lookup(feed_url, entries)
    with reader.session() as con:
        return lookup_known(con, feed_url, entries)


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
    fetcher: Fetcher,
    extractor: Extractor | InlineExtractor,
    links: Iterable[str],
    until: float | None = None,
    read_page: PageReader | None = None,
    assemble: Callable[[str, str], Assembly] | None = None,
) -> tuple[dict[str, ExtractedPage], dict[str, tuple[str, ItemError]], int]:
    """Pages at the links, extracted; each page goes to the pool as soon as it arrives.

    Returns pages and (stage, error) by link, and how many pages were downloaded. Pages not
    done by `until` (a `time.monotonic()` value) are errors of kind feed_timeout. A declared
    source's `read_page` (url, html) reads the pages it has selectors for, without the pool.
    `assemble` (link, final URL) gives what the worker needs to build the link's entry's
    article as well (tasks/extraction/assemble.py).
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
                page = read_page(result.final_url, result.text) if read_page else None
                if page is None:
                    yield link, result.text
                else:
                    pages[link] = page

    pages: dict[str, ExtractedPage] = {}
    with_entry = (lambda link: assemble(link, final_urls[link])) if assemble else None
    for link, extracted in extractor.extract_many(downloaded(), until, with_entry):
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
    cut off is skipped without a row of its own (the caller counts them in one). The article
    the worker built with the page is the first entry's with its link (FreshEntries.of)."""
    articles = []
    built_taken: set[str] = set()
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
        built = page.built if page is not None and link not in built_taken else None
        built_taken.add(link)
        try:
            article, warnings = (
                (built.article, built.warnings) if built else feed_article(entry, page, origin)
            )
        except ItemError as exc:
            errors.append(_error("normalize", exc, origin.feed_url, link))
            continue
        except Exception as exc:  # the per-item boundary: see tasks/containment.py
            errors.append(internal_error("normalize", exc, link or None, origin.feed_url))
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


class FeedJob:
    """What a per-feed task needs besides its feed, as it travels to a Dask worker: the run,
    its settings, and the feeds file's defaults and host policies (not its feed list, which
    every task would carry). Opaque to Prefect, which would otherwise walk it for futures in
    every task."""

    __slots__ = ("feeds_file", "run_id", "settings")

    def __init__(self, run_id: str, settings: Settings, feeds_file: FeedsFile) -> None:
        self.run_id = run_id
        self.settings = settings
        self.feeds_file = feeds_file.model_copy(update={"feeds": []})

    @property
    def known_dataset(self) -> str:
        """Name of the known-articles tables the run publishes to its Dask cluster."""
        return f"newsflow-known-{self.run_id}"


def derivation(settings: Settings) -> Derivation:
    """The extraction workers' per-article work, with the run's lexicon and gazetteer."""
    return Derivation(settings.lexicon_path, settings.gazetteer_path)


def open_feed_context(
    job: FeedJob, extractor: Extractor | InlineExtractor, known: Reader
) -> tuple[FeedContext, ExitStack]:
    """A FeedContext for the job, and the stack that closes its fetcher and extractor."""
    settings = job.settings
    resources = ExitStack()
    fetcher = resources.enter_context(
        Fetcher(job.feeds_file.fetch_limits(settings.fetch), job.feeds_file.hosts)
    )
    resources.enter_context(extractor)
    return FeedContext(settings, job.feeds_file, known, fetcher, extractor), resources


def from_cluster(name: str) -> dict[str, pa.Table]:
    """Tables the flow published to its Dask cluster (newsflow/runtime/runners.py), from
    inside a task running on one of its workers."""
    from distributed import get_client

    # Tables that crossed the network arrive in buffers Arrow's scanner finds unaligned; it
    # copies them as it should, and by default also prints a warning per batch to stderr.
    os.environ.setdefault("ACERO_ALIGNMENT_HANDLING", "reallocate")
    tables: dict[str, pa.Table] = get_client().get_dataset(name).result()
    return tables


# Per process: the contexts of the runs whose tasks it ran, by run id. A Dask worker outlives
# runs, so only the latest few are kept.
_CONTEXTS: OrderedDict[str, tuple[FeedContext, ExitStack]] = OrderedDict()
_CONTEXTS_LOCK = threading.Lock()
_KEEP_CONTEXTS = 4


def feed_context(job: FeedJob) -> FeedContext:
    """The run's context in this process: the one the flow opened (local runner), or, in a
    Dask worker, one opened by the run's first task there, with the known articles the flow
    published, and kept for the run's next tasks."""
    with _CONTEXTS_LOCK:
        if job.run_id not in _CONTEXTS:
            known = Snapshot(from_cluster(job.known_dataset))
            settings = job.settings
            extractor = InlineExtractor(
                settings.extract_deadline,
                parse_deadline=settings.parse_deadline,
                derive=derivation(settings),
            )
            ctx, resources = open_feed_context(job, extractor, known)
            resources.enter_context(closing(known))
            _CONTEXTS[job.run_id] = ctx, resources
            while len(_CONTEXTS) > _KEEP_CONTEXTS:
                _, (_, evicted) = _CONTEXTS.popitem(last=False)
                evicted.close()
        return _CONTEXTS[job.run_id][0]


@contextmanager
def hosted_context(job: FeedJob, known: Reader) -> Iterator[None]:
    """The flow process's context for a local run's tasks, extracting in its process pool."""
    settings = job.settings
    extractor = Extractor(
        settings.extract_workers,
        settings.extract_deadline,
        parse_deadline=settings.parse_deadline,
        memory_limit=settings.worker_memory_limit,
        derive=derivation(settings),
    )
    opened = open_feed_context(job, extractor, known)
    with _CONTEXTS_LOCK:
        _CONTEXTS[job.run_id] = opened
    try:
        yield
    finally:
        with _CONTEXTS_LOCK:
            _CONTEXTS.pop(job.run_id, None)
        opened[1].close()


def _collect_name(parameters: dict[str, Any]) -> str:
    feeds: list[FeedConfig] = parameters["feeds"]
    more = f" and {len(feeds) - 1} more" if len(feeds) > 1 else ""
    return f"collect {feeds[0].url}{more}"


# Prefect's protocol for a name callback also asks for a classmethod no function has.
@task(name="collect-feeds", cache_policy=NO_CACHE, task_run_name=_collect_name)  # type: ignore[arg-type]
def collect_feeds_task(
    feeds: list[FeedConfig], states: list[FeedState | None], job: FeedJob
) -> list[FeedBatch]:
    try:
        ctx = feed_context(job)
    except Exception as exc:  # no context for this chunk: each of its feeds failed
        return failed_batches(feeds, exc)
    return [collect_feed(feed, state, ctx) for feed, state in zip(feeds, states, strict=True)]


def failed_batches(feeds: list[FeedConfig], exc: BaseException) -> list[FeedBatch]:
    """A failed batch (internal_error) for each feed of a chunk whose task could not run."""
    error = unexpected("feed", exc, feeds[0].url if feeds else None)
    return [
        failed_batch(feed, "feed", ItemError(error.kind, str(error), url=feed.url))
        for feed in feeds
    ]
