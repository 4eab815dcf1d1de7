"""Deduplication before download: entries whose canonical URL (the article_id) or GUID is
stored already are dropped before their pages are fetched; one article per id in a batch. The
layers inside the load transaction are in `newsflow.tasks.dedup.layers`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple
from zoneinfo import ZoneInfo

import duckdb
import pyarrow as pa

from newsflow.schemas.errors import ItemError
from newsflow.schemas.models import Article, FeedEntry, article_id_for
from newsflow.tasks.extraction.normalize import canonical_url, parse_date


def entry_article_id(entry: FeedEntry) -> str | None:
    link = entry.link or (entry.guid if entry.guid and entry.guid.startswith("http") else None)
    if not link:
        return None
    try:
        return article_id_for(canonical_url(link))
    except ItemError:
        return None


@contextmanager
def listed(con: duckdb.DuckDBPyConnection, name: str, values: Iterable[str]) -> Iterator[None]:
    """`values` as table `name` (one column, `value`) while in use. Not a list parameter:
    without pandas installed, DuckDB's client tries `import pandas` twice for each element of
    one, ~0.1 ms apiece (measured), several times what the query costs."""
    con.register(name, pa.table({"value": pa.array(list(values), pa.string())}))
    try:
        yield
    finally:
        con.unregister(name)


@dataclass
class KnownIndex:
    """What the database already holds of one feed's entries."""

    updated_at: dict[str, datetime | None] = field(default_factory=dict)  # article_id → updated
    guids: dict[str, str] = field(default_factory=dict)  # guid (of this feed) → article_id

    def lacks(self, entries: Iterable[FeedEntry]) -> list[FeedEntry]:
        """The entries it holds nothing of: neither their link's article nor their GUID."""
        return [
            e
            for e in entries
            if (e.guid or "") not in self.guids and entry_article_id(e) not in self.updated_at
        ]

    def add(self, other: KnownIndex) -> None:
        self.updated_at.update(other.updated_at)
        self.guids.update(other.guids)


def lookup_known(
    con: duckdb.DuckDBPyConnection, feed_url: str | None, entries: Iterable[FeedEntry]
) -> KnownIndex:
    entries = list(entries)
    ids = [i for i in (entry_article_id(e) for e in entries) if i]
    guids = [e.guid for e in entries if e.guid] if feed_url else []
    known = KnownIndex()
    if ids:
        with listed(con, "known_ids", ids):
            rows = con.execute(
                "SELECT article_id, coalesce(updated_at, published_at) FROM articles "
                "WHERE article_id IN (SELECT value FROM known_ids)"
            ).fetchall()
        known.updated_at = {r[0]: r[1] for r in rows}
    if guids:
        with listed(con, "known_guids", guids):
            rows = con.execute(
                # Only GUIDs whose article was stored: a ref recorded for an article whose
                # page failed elsewhere must not hide it from the next run.
                "SELECT f.guid, f.article_id FROM article_feeds f JOIN articles a "
                "USING (article_id) WHERE f.feed_url = ? "
                "AND f.guid IN (SELECT value FROM known_guids)",
                [feed_url],
            ).fetchall()
        known.guids = {r[0]: r[1] for r in rows}
    return known


class KnownSplit(NamedTuple):
    fresh: list[FeedEntry]  # to download
    seen_again: list[tuple[str, str | None]]  # (article_id, guid) of entries already stored
    by_guid: int  # of seen_again, recognized by the feed's GUID alone (their link changed)


def split_known(entries: Iterable[FeedEntry], known: KnownIndex, tz: ZoneInfo) -> KnownSplit:
    """Entries to download, and those already stored.

    A stored entry is downloaded again only when the feed says it was updated after the stored
    version. Within one feed, a link listed twice is downloaded once.
    """
    fresh: list[FeedEntry] = []
    seen_again: list[tuple[str, str | None]] = []
    by_guid = 0
    claimed: set[str] = set()
    for entry in entries:
        link_id = entry_article_id(entry)
        aid = known.guids.get(entry.guid or "") or link_id
        if aid is None:
            fresh.append(entry)  # no usable link: normalize records why
            continue
        if aid in claimed:
            continue
        claimed.add(aid)
        stored = aid in known.updated_at or (entry.guid or "") in known.guids
        if stored and not _updated_since(entry, known.updated_at.get(aid), tz):
            seen_again.append((aid, entry.guid))
            by_guid += link_id not in known.updated_at
        else:
            fresh.append(entry)
    return KnownSplit(fresh, seen_again, by_guid)


def _updated_since(entry: FeedEntry, stored: datetime | None, tz: ZoneInfo) -> bool:
    if stored is None or not entry.updated:
        return False
    try:
        updated = parse_date(entry.updated, tz)
    except ItemError:
        return False
    return updated is not None and updated > stored


def unique_articles(articles: Iterable[Article]) -> list[Article]:
    """One article per article_id within a batch (the first wins)."""
    seen: dict[str, Article] = {}
    for a in articles:
        seen.setdefault(a.article_id, a)
    return list(seen.values())
