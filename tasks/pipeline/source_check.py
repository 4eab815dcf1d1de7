"""`newsflow sources check`: each declared source's first list page and one item page fetched
live, and what was found — the canary a user with internet runs from cron."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from newsflow.schemas.config import FeedsFile, Settings
from newsflow.schemas.errors import ConfigError, ItemError
from newsflow.schemas.sources import SourceConfig, catalogue, resolve_entry
from newsflow.tasks.extraction.extract import InlineExtractor
from newsflow.tasks.fetching.fetch import Fetcher
from newsflow.tasks.pipeline.declared import canary, detail_reader, walk_pages
from newsflow.tasks.pipeline.feed import download_and_extract

LOGGER = logging.getLogger(__name__)


@dataclass
class SourceCheck:
    name: str
    url: str
    items: int = 0
    # Per field: items of the first page that had it.
    filled: dict[str, int] = field(default_factory=dict)
    detail: str = "-"  # the item page: its body's length in characters, or what went wrong
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def catalogue_sources() -> list[SourceConfig]:
    """The shipped adapters, as they are used without overrides."""
    found = []
    for name in catalogue():
        entry = resolve_entry({"adapter": name})
        assert isinstance(entry, SourceConfig)
        found.append(entry)
    return found


def select_sources(
    feeds_file: FeedsFile | None, names: list[str], every: bool
) -> list[SourceConfig]:
    """The sources to check: the named ones (or all) of the feeds file, else of the catalogue."""
    pool = (
        [f for f in feeds_file.feeds if isinstance(f, SourceConfig)]
        if feeds_file
        else catalogue_sources()
    )
    if every or not names:
        return pool
    chosen = [s for s in pool if s.name in names or s.adapter in names]
    unknown = set(names) - {s.name for s in chosen} - {s.adapter for s in chosen}
    if unknown:
        known = ", ".join(sorted(str(s.name) for s in pool))
        raise ConfigError(f"no such source: {', '.join(sorted(unknown))} (known: {known})")
    return chosen


def check_source(
    source: SourceConfig, fetcher: Fetcher, extractor: InlineExtractor, tz: ZoneInfo
) -> SourceCheck:
    result = SourceCheck(name=source.name or source.url, url=source.url)
    try:
        walk = walk_pages(source, fetcher, None, tz, 1)
    except ItemError as exc:
        result.problem = f"{exc.kind}: {exc}"
        return result
    page = walk.pages[0]
    result.items = page.items_found
    entries = page.entries
    for name in ("title", "link", "date", "summary", "author"):
        if getattr(source.fields, name):
            attr = "published" if name == "date" else name
            result.filled[name] = sum(1 for e in entries if getattr(e, attr))
    result.problem = canary(source, walk.pages)
    if entries and entries[0].link:
        link = entries[0].link
        pages, errors, _ = download_and_extract(
            fetcher, extractor, [link], read_page=detail_reader(source.detail)
        )
        if link in pages:
            result.detail = f"{len(pages[link].text)} chars"
        else:
            stage, failure = errors[link]
            result.detail = failure.kind
            result.problem = result.problem or f"item page ({stage}): {failure}"
    return result


def check_sources(
    sources: list[SourceConfig], settings: Settings, feeds_file: FeedsFile | None
) -> list[SourceCheck]:
    """Each source checked in turn, with the feeds file's politeness and timezone if given."""
    limits = feeds_file.fetch_limits(settings.fetch) if feeds_file else settings.fetch
    extractor = InlineExtractor(settings.extract_deadline, parse_deadline=settings.parse_deadline)
    with Fetcher(limits, feeds_file.hosts if feeds_file else None) as fetcher, extractor:
        return [
            check_source(
                s,
                fetcher,
                extractor,
                ZoneInfo(feeds_file.timezone_for(s)) if feeds_file else settings.tz,
            )
            for s in sources
        ]
