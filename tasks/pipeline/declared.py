"""The per-source pipeline of a declared source (json_api, html_list; schemas/sources.py): its
list pages walked, their items made FeedEntries, and from there the feed path
(tasks/pipeline/feed.py: drop-known, download, extraction, normalization).

An unchanged first list response (a 304 to its ETag/Last-Modified, or the same body hash)
costs no more requests. A list that answers but yields no items, or items lacking a field the
definition reads, is `selector_broken`: a failure in feed health, never a quiet "0 new".
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import jmespath
from parsel import Selector

from newsflow.schemas.errors import ItemError
from newsflow.schemas.models import (
    ExtractedPage,
    FeedBatch,
    FeedCheck,
    FeedEntry,
    IngestErrorRecord,
    ParsedFeed,
    Response,
)
from newsflow.schemas.sources import DetailSpec, SourceConfig
from newsflow.tasks.extraction.metadata.dates import parse_stamp
from newsflow.tasks.extraction.normalize import html_to_text
from newsflow.tasks.fetching.fetch import Fetcher
from newsflow.tasks.pipeline.feed import FeedContext, FreshEntries, PageReader, failed_batch
from newsflow.tasks.sources.archive import ArchiveWalk
from newsflow.tasks.sources.declared.listing import (
    Endpoint,
    ListPage,
    bootstrap,
    fetch_page,
    read_page,
)
from newsflow.tasks.sources.health import FeedState, poll_hint

LOGGER = logging.getLogger(__name__)
_DASHED_TIME_RE = re.compile(r"^(\d{4}-\d{2}-\d{2})-(\d{2}:\d{2})")
BODY_HASH = "sha256:"  # an `etag` kept for a list that sends none: the hash of its body
_NEXT_DATA_RE = re.compile(
    r'<script[^>]+id="__NEXT_DATA__"[^>]*>(.*?)</script>', re.DOTALL | re.IGNORECASE
)


@dataclass
class Walk:
    """A source's list pages as walked in one run."""

    pages: list[ListPage] = field(default_factory=list)
    errors: list[IngestErrorRecord] = field(default_factory=list)
    unchanged: bool = False

    @property
    def entries(self) -> list[FeedEntry]:
        return list({e.link: e for p in self.pages for e in p.entries}.values())


def collect_source(
    source: SourceConfig, state: FeedState | None, ctx: FeedContext, deadline: float
) -> FeedBatch:
    """One declared source's whole way to articles; failures are recorded, never raised."""
    tz = ZoneInfo(ctx.feeds_file.timezone_for(source))
    try:
        walk = walk_pages(source, ctx.fetcher, state, tz, source.paging.pages, deadline)
    except ItemError as exc:
        return failed_batch(source, "list", exc)
    first = walk.pages[0].response
    if walk.unchanged:
        kept_etag = state.etag if state else None
        check = FeedCheck(
            url=source.url,
            ok=True,
            status_code=304,  # a 304, or the same body again: counted as unchanged
            etag=first.etag or kept_etag,
            last_modified=first.last_modified or (state.last_modified if state else None),
            poll_hint=poll_hint(state.poll_hint_s if state else None, first.cache_max_age),
        )
        return FeedBatch(feed_url=source.url, check=check)
    broken = canary(source, walk.pages)
    entries = walk.entries
    fresh = FreshEntries.of(ctx, source, entries, None, deadline, detail_reader(source.detail))
    errors = [*walk.errors, *fresh.errors]
    if broken:
        errors.insert(0, _row(source, "parse", "selector_broken", broken))
    validator = first.etag or BODY_HASH + body_hash(first.body)
    check = FeedCheck(
        url=source.url,
        ok=not broken,
        status_code=first.status,
        etag=None if fresh.deferred or broken else validator,
        last_modified=None if fresh.deferred or broken else first.last_modified,
        error_kind="selector_broken" if broken else None,
        error=broken,
        poll_hint=poll_hint(None, first.cache_max_age),
        entries_seen=len(entries),
    )
    return fresh.batch(source, check, errors)


def walk_pages(
    source: SourceConfig,
    fetcher: Fetcher,
    state: FeedState | None,
    tz: ZoneInfo,
    pages: int,
    until: float | None = None,
    since: datetime | None = None,
) -> Walk:
    """Up to `pages` list pages (or back to `since`); raises ItemError when the first fails.

    A later page's failure ends the walk with a recorded row; so does a cursor that does not
    advance (the site would serve the same page again).
    """
    now = datetime.now(UTC)
    walk = Walk()
    endpoint = _endpoint(source, fetcher)
    cursor = source.paging.cursor_start
    etag = state.etag if state and state.etag and not state.etag.startswith(BODY_HASH) else None
    # A definition whose requests do not change from page to page has one page.
    pages = pages if _pages_vary(source) else 1
    seen: set[str | None] = set()
    for n in range(pages):
        number = source.paging.first + n
        try:
            response = fetch_page(
                source,
                fetcher,
                endpoint,
                number,
                cursor,
                etag=etag if n == 0 else None,
                last_modified=state.last_modified if state and n == 0 else None,
                until=until,
            )
            if response.not_modified or (n == 0 and _same_body(state, response)):
                walk.pages.append(ListPage(response, [], 0, None, {}))
                walk.unchanged = True
                return walk
            _check_browser(source, response)
            page = read_page(source, response, tz, now)
        except ItemError as exc:
            if n == 0:
                raise
            walk.errors.append(_row(source, "fetch", exc.kind, f"page {number}: {exc}"))
            break
        walk.pages.append(page)
        walk.errors.extend(
            IngestErrorRecord(
                stage="parse", url=e.url, kind=e.kind, message=str(e), feed_url=source.url
            )
            for e in page.errors
        )
        if not page.entries or _older_than(page, since) or n + 1 == pages:
            break
        stuck = _stuck(source, page, cursor, seen)
        if stuck:
            walk.errors.append(
                _row(source, "parse", "paging_stuck", f"after page {number}: {stuck}")
            )
            break
        seen.update(e.link for e in page.entries)
        cursor = page.cursor or cursor
    return walk


def _pages_vary(source: SourceConfig) -> bool:
    req = source.request
    text = " ".join(
        [req.url, *map(str, req.params.values()), str(req.form or ""), str(req.json_body or "")]
    )
    return ("{page}" if source.paging.mode == "page" else "{cursor}") in text


def _stuck(source: SourceConfig, page: ListPage, cursor: str, seen: set[str | None]) -> str:
    """Why paging cannot go on, or "": the cursor did not advance, or the page repeats."""
    if source.paging.mode == "cursor" and (not page.cursor or page.cursor == cursor):
        return f"the paging cursor did not advance ({cursor!r} → {page.cursor!r}); paging stopped"
    if all(e.link in seen for e in page.entries):
        return "the page repeats the items of the pages before it; paging stopped"
    return ""


def walk_source_back(
    fetcher: Fetcher, source: SourceConfig, since: datetime | None, tz: ZoneInfo, max_pages: int
) -> ArchiveWalk:
    """A backfill's walk over a source's list pages, back to `since` (or its page limit)."""
    pages = min(max_pages, source.paging.max_pages)
    try:
        walk = walk_pages(source, fetcher, None, tz, pages, since=since)
    except ItemError as exc:
        return ArchiveWalk(source.url, errors=[_row(source, "list", exc.kind, str(exc))])
    parsed = [ParsedFeed(feed_url=source.url, entries=p.entries) for p in walk.pages]
    return ArchiveWalk(source.url, parsed, walk.errors)


def _endpoint(source: SourceConfig, fetcher: Fetcher) -> Endpoint:
    if source.bootstrap is None:
        params = {k: str(v) for k, v in source.request.params.items()}
        return Endpoint(source.request.url, params)
    found = bootstrap(source, source.bootstrap, fetcher)
    return Endpoint(
        found.url, {**found.params, **{k: str(v) for k, v in source.request.params.items()}}
    )


def _same_body(state: FeedState | None, response: Response) -> bool:
    return bool(state and state.etag and state.etag == BODY_HASH + body_hash(response.body))


def body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _older_than(page: ListPage, since: datetime | None) -> bool:
    if since is None:
        return False
    dates = [datetime.fromisoformat(e.published) for e in page.entries if e.published]
    return bool(dates) and max(dates) < since


def _check_browser(source: SourceConfig, response: Response) -> None:
    spec = source.needs_browser
    if spec is None:
        return
    text = response.text if response.text is not None else response.body.decode("latin-1")
    if re.search(spec.marker, text):
        raise ItemError(
            "needs_browser",
            f"the site answered with a JavaScript challenge a browser must solve; use "
            f"{spec.alternative}",
            response.url,
            status=response.status,
        )


def canary(source: SourceConfig, pages: list[ListPage]) -> str | None:
    """What is missing, when the list yields no items or items lack a field it defines."""
    if not pages:
        return None
    first = pages[0]
    where = source.items.css or source.items.xpath or source.items.path
    if first.items_found == 0:
        return f"the list answered {first.response.status} but items {where!r} found no items"
    found = sum(p.items_found for p in pages)
    lacking = {
        name: sum(p.missing.get(name, 0) for p in pages)
        for name in ("link", "title", "date")
        if getattr(source.fields, name)
    }
    gaps = [f"{name} in {n} of {found} items" for name, n in lacking.items() if n]
    return "missing " + ", ".join(gaps) if gaps else None


def detail_reader(spec: DetailSpec | None) -> PageReader | None:
    """Reads an item page by the source's detail selectors; None leaves it to trafilatura."""
    if spec is None or not (spec.body or spec.next_data):
        return None

    def read(url: str, html: str) -> ExtractedPage | None:
        page = Selector(text=html)
        body_html, date = None, None
        if spec.next_data and (m := _NEXT_DATA_RE.search(html)):
            try:
                data = json.loads(m[1])
            except ValueError:
                data = None
            found = jmespath.search(spec.next_data, data) if data else None
            body_html = found if isinstance(found, str) else None
            if spec.next_data_date and data:
                date = jmespath.search(spec.next_data_date, data)
        if body_html is None and spec.body:
            body_html = "\n".join(page.css(spec.body).getall()) or None
        if not body_html:
            return None  # trafilatura tries the page
        if spec.date_meta:
            date = page.css(f'meta[name="{spec.date_meta}"]::attr(content)').get() or date
        if spec.date:
            date = page.css(spec.date).xpath("string()").get() or date
        if date:  # gov.cn's meta dates read 2024-09-07-10:30:00
            date = _DASHED_TIME_RE.sub(r"\1 \2", str(date).strip())
        title = page.css("title::text").get()
        # Read like any page's date: at the precision it is written with, never guessed.
        stamp = parse_stamp(str(date)) if date else None
        return ExtractedPage(
            url=url,
            title=title.strip() if title else None,
            date=stamp.to_text() if stamp else None,
            date_precision=stamp.precision if stamp else None,
            date_source="meta" if stamp else None,
            text=html_to_text(body_html),
        )

    return read


def _row(source: SourceConfig, stage: str, kind: str, message: str) -> IngestErrorRecord:
    return IngestErrorRecord(
        stage=stage, url=source.url, kind=kind, message=message, feed_url=source.url
    )
