"""Deduplicate: entries already stored are not downloaded again; copies point at the first.

Exact layers, cheapest first: canonical URL (the article_id), GUID per feed, then the hash of
the normalized body inside the load transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import duckdb

from schemas.errors import ItemError
from schemas.models import Article, FeedEntry, article_id_for
from tasks.normalize import canonical_url, parse_date

LOGGER = logging.getLogger(__name__)


def entry_article_id(entry: FeedEntry) -> str | None:
    link = entry.link or (entry.guid if entry.guid and entry.guid.startswith("http") else None)
    if not link:
        return None
    try:
        return article_id_for(canonical_url(link))
    except ItemError:
        return None


@dataclass
class KnownIndex:
    """What the database already holds of one feed's entries."""

    updated_at: dict[str, datetime | None] = field(default_factory=dict)  # article_id → updated
    guids: dict[str, str] = field(default_factory=dict)  # guid (of this feed) → article_id


def lookup_known(
    con: duckdb.DuckDBPyConnection, feed_url: str | None, entries: Iterable[FeedEntry]
) -> KnownIndex:
    entries = list(entries)
    ids = [i for i in (entry_article_id(e) for e in entries) if i]
    guids = [e.guid for e in entries if e.guid] if feed_url else []
    known = KnownIndex()
    if ids:
        rows = con.execute(
            "SELECT article_id, coalesce(updated_at, published_at) FROM articles "
            "WHERE article_id IN (SELECT unnest(?::VARCHAR[]))",
            [ids],
        ).fetchall()
        known.updated_at = {r[0]: r[1] for r in rows}
    if guids:
        rows = con.execute(
            # Only GUIDs whose article was stored: a ref recorded for an article whose page
            # failed elsewhere must not hide it from the next run.
            "SELECT f.guid, f.article_id FROM article_feeds f JOIN articles a USING (article_id) "
            "WHERE f.feed_url = ? AND f.guid IN (SELECT unnest(?::VARCHAR[]))",
            [feed_url, guids],
        ).fetchall()
        known.guids = {r[0]: r[1] for r in rows}
    return known


def split_known(
    entries: Iterable[FeedEntry], known: KnownIndex, tz: ZoneInfo
) -> tuple[list[FeedEntry], list[tuple[str, str | None]]]:
    """Entries to download, and (article_id, guid) of those already stored.

    A stored entry is downloaded again only when the feed says it was updated after the stored
    version. Within one feed, a link listed twice is downloaded once.
    """
    fresh: list[FeedEntry] = []
    seen_again: list[tuple[str, str | None]] = []
    claimed: set[str] = set()
    for entry in entries:
        aid = known.guids.get(entry.guid or "") or entry_article_id(entry)
        if aid is None:
            fresh.append(entry)  # no usable link: normalize records why
            continue
        if aid in claimed:
            continue
        claimed.add(aid)
        stored = aid in known.updated_at or (entry.guid or "") in known.guids
        if stored and not _updated_since(entry, known.updated_at.get(aid), tz):
            seen_again.append((aid, entry.guid))
        else:
            fresh.append(entry)
    return fresh, seen_again


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


def mark_exact_copies(con: duckdb.DuckDBPyConnection, articles: list[Article]) -> int:
    """Point copies with an identical body at the first stored copy; returns how many.

    Runs inside the load transaction, so the first copy is well defined across runs. An
    article that arrives naming its original already (a re-imported export) is never taken
    as the original of others, whichever of the two is loaded first.
    """
    hashes = [a.content_hash for a in articles if a.content_hash]
    if not hashes:
        return 0
    rows = con.execute(
        "SELECT content_hash, arg_min(article_id, first_seen_at), "
        "arg_min(coalesce(story_id, article_id), first_seen_at) FROM articles "
        "WHERE content_hash IN (SELECT unnest(?::VARCHAR[])) AND duplicate_of IS NULL "
        "GROUP BY content_hash",
        [hashes],
    ).fetchall()
    first: dict[str, tuple[str, str]] = {r[0]: (r[1], r[2]) for r in rows}
    copies = 0
    for a in articles:
        if not a.content_hash:
            continue
        original = first.get(a.content_hash)
        if original is None:
            if a.duplicate_of is None:
                first[a.content_hash] = (a.article_id, a.story_id or a.article_id)
        elif original[0] != a.article_id:
            a.duplicate_of, a.story_id = original
            copies += 1
    return copies
