"""Deduplicate in layers, cheapest first, and group copies into stories.

Before download: the canonical URL (the article_id) and the GUID per feed drop entries already
stored. Inside the load transaction, for articles not stored yet: the same title from the same
source within 7 days, then the same body (hash) make an exact copy (`duplicate_of` points at the
first copy); then near-duplicates (MinHash LSH over shingles, `tasks.fingerprint`) join the
story of the article they copy. Every article gets a `story_id`: the article_id of its story's
first stored article, or its own.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import pyarrow as pa

from schemas.errors import ItemError
from schemas.models import Article, FeedEntry, article_id_for
from tasks.fingerprint import (
    MIN_CONTAINMENT,
    MIN_JACCARD,
    Fingerprint,
    Shingles,
    is_near_copy,
    similarity,
    story_shingles,
    story_text,
)
from tasks.normalize import canonical_url, parse_date

LOGGER = logging.getLogger(__name__)

_TS = pa.timestamp("us", tz="UTC")


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
    con: duckdb.DuckDBPyConnection, feed_url: str, entries: Iterable[FeedEntry]
) -> KnownIndex:
    entries = list(entries)
    ids = [i for i in (entry_article_id(e) for e in entries) if i]
    guids = [e.guid for e in entries if e.guid]
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
            "SELECT guid, article_id FROM article_feeds WHERE feed_url = ? "
            "AND guid IN (SELECT unnest(?::VARCHAR[]))",
            [feed_url, guids],
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


# --- layers inside the load transaction -----------------------------------------------------

# The title layer's window: an outlet reuses a title for a new story after a while ("早报").
TITLE_WINDOW = timedelta(days=7)
# LSH candidates verified per new article, most shared bands first: a story's copies share many
# bands, while a bucket shared by hundreds of articles (a template) adds candidates, not recall.
MAX_CANDIDATES = 12
# Within one batch an article is paired only with the first members of each bucket, so that a
# template shared by a whole backfill does not make the candidate join quadratic.
MAX_BATCH_BUCKET_MATES = 8


@dataclass
class LayerCounts:
    """New articles found to be copies, by the layer that found them."""

    title: int = 0
    body: int = 0
    near: int = 0


@dataclass(frozen=True)
class _Earlier:
    """An article a new one may copy: stored, or earlier in the batch."""

    article_id: str
    story_id: str
    first_copy: str  # what a copy of it points at: its own duplicate_of, or itself
    dated_at: datetime
    shingles: Shingles | None


@dataclass
class _Matches:
    """Earlier articles by title key, body key and (for each new article) LSH candidates."""

    titles: dict[str, list[_Earlier]] = field(default_factory=dict)
    bodies: dict[str, _Earlier] = field(default_factory=dict)
    candidates: dict[str, list[str]] = field(default_factory=dict)  # new id → earlier ids
    by_id: dict[str, _Earlier] = field(default_factory=dict)


def cluster_new_articles(
    con: duckdb.DuckDBPyConnection, articles: list[Article], prints: list[Fingerprint]
) -> LayerCounts:
    """Set `story_id` (and `duplicate_of` for exact copies) on the articles not stored yet and
    store their keys and LSH bands; returns how many copies each layer found.

    Layers, cheapest first: the same title from the same source within 7 days (unless both
    bodies say they differ), the same story text, then near-duplicates (LSH candidates verified
    on shingle sets). Stored articles keep their story. Inside the load transaction "earlier" is
    well defined across runs; within a batch, earlier means published earlier.
    """
    stored = stored_article_ids(con, [a.article_id for a in articles])
    new = sorted(
        ((a, fp) for a, fp in zip(articles, prints, strict=True) if a.article_id not in stored),
        key=lambda pair: _dated_at(pair[0]),
    )
    if not new:
        return LayerCounts()
    matches = find_earlier(con, new)
    counts = LayerCounts()
    layers: dict[str, str] = {}
    for article, fp in new:
        layer, earlier = first_match(article, fp, matches)
        article.story_id = earlier.story_id if earlier else article.article_id
        if earlier:
            layers[article.article_id] = layer
            setattr(counts, layer, getattr(counts, layer) + 1)
            if layer != "near":
                article.duplicate_of = earlier.first_copy
        _remember(matches, article, fp)
    record_keys(con, new, layers)
    return counts


def stored_article_ids(con: duckdb.DuckDBPyConnection, ids: list[str]) -> set[str]:
    rows = con.execute(
        "SELECT article_id FROM articles WHERE article_id IN (SELECT unnest(?::VARCHAR[]))", [ids]
    ).fetchall()
    return {r[0] for r in rows}


def _dated_at(article: Article) -> datetime:
    return article.published_at or article.first_seen_at


def first_match(
    article: Article, fp: Fingerprint, matches: _Matches
) -> tuple[str, _Earlier | None]:
    """The cheapest layer that finds an earlier article this one copies, and that article."""
    for earlier in matches.titles.get(fp.title_key or "", []):
        if abs(_dated_at(article) - earlier.dated_at) <= TITLE_WINDOW and _bodies_agree(
            fp.shingles, earlier.shingles
        ):
            return "title", earlier
    if fp.body_key in matches.bodies:
        return "body", matches.bodies[fp.body_key]
    if fp.shingles is not None:
        for candidate_id in matches.candidates.get(article.article_id, []):
            candidate = matches.by_id.get(candidate_id)
            if candidate and _is_near(fp.shingles, candidate.shingles):
                return "near", candidate
    return "", None


def _is_near(a: Shingles, b: Shingles | None) -> bool:
    return b is not None and is_near_copy(similarity(a, b))


def _bodies_agree(a: Shingles | None, b: Shingles | None) -> bool:
    """Same outlet, same title: the same article, unless both bodies are long enough to say
    otherwise (a daily roundup keeps its title and changes its text). One body may be a cut of
    the other (a feed's excerpt), however short: the title already vouches for it."""
    if a is None or b is None:
        return True
    found = similarity(a, b)
    return found.jaccard >= MIN_JACCARD or found.containment >= MIN_CONTAINMENT


def _remember(matches: _Matches, article: Article, fp: Fingerprint) -> None:
    """Make a new article matchable by the rest of its batch."""
    assert article.story_id is not None
    earlier = _Earlier(
        article.article_id,
        article.story_id,
        article.duplicate_of or article.article_id,
        _dated_at(article),
        fp.shingles,
    )
    matches.by_id[article.article_id] = earlier
    if fp.title_key:
        matches.titles.setdefault(fp.title_key, []).append(earlier)
    if fp.body_key:
        matches.bodies.setdefault(fp.body_key, earlier)


def find_earlier(
    con: duckdb.DuckDBPyConnection, new: list[tuple[Article, Fingerprint]]
) -> _Matches:
    """The stored articles the new ones may copy, by title key, body key and LSH bucket; only
    their bodies are read."""
    candidates = lsh_candidates(con, new)
    titles = _stored_titles_in_window(con, new)
    body_keys = [fp.body_key for _, fp in new if fp.body_key]
    bodies = con.execute(
        "SELECT DISTINCT ON (k.body_key) k.body_key, k.article_id "
        "FROM article_keys k JOIN articles a USING (article_id) "
        "WHERE k.body_key IN (SELECT unnest(?::VARCHAR[])) "
        "ORDER BY k.body_key, a.duplicate_of IS NOT NULL, a.first_seen_at, a.article_id",
        [body_keys],
    ).fetchall()
    wanted = {old for _, old in candidates} | {aid for _, aid in titles} | {r[1] for r in bodies}
    by_id = _stored_articles(con, wanted)
    matches = _Matches(by_id=by_id)
    for key, article_id in titles:
        matches.titles.setdefault(key, []).append(by_id[article_id])
    matches.bodies = {key: by_id[aid] for key, aid in bodies}
    for new_id, old_id in candidates:
        matches.candidates.setdefault(new_id, []).append(old_id)
    return matches


def _stored_titles_in_window(
    con: duckdb.DuckDBPyConnection, new: list[tuple[Article, Fingerprint]]
) -> list[tuple[str, str]]:
    """(title key, article_id) of stored articles sharing a new article's key within the
    window, earliest first: a title an outlet reuses every day matches only its recent uses."""
    keyed = [(fp.title_key, _dated_at(a)) for a, fp in new if fp.title_key]
    if not keyed:
        return []
    table = pa.table(
        {"title_key": [k for k, _ in keyed], "dated_at": pa.array([d for _, d in keyed], _TS)}
    )
    con.register("batch_titles", table)
    try:
        rows = con.execute(
            f"""
            SELECT k.title_key, k.article_id
            FROM article_keys k JOIN batch_titles b
              ON k.title_key = b.title_key
             AND k.dated_at BETWEEN b.dated_at - INTERVAL {TITLE_WINDOW.days} DAY
                                AND b.dated_at + INTERVAL {TITLE_WINDOW.days} DAY
            GROUP BY k.title_key, k.article_id, k.dated_at
            ORDER BY k.dated_at, k.article_id
            """
        ).fetchall()
    finally:
        con.unregister("batch_titles")
    return [(r[0], r[1]) for r in rows]


def lsh_candidates(
    con: duckdb.DuckDBPyConnection, new: list[tuple[Article, Fingerprint]]
) -> list[tuple[str, str]]:
    """(new article, earlier article) pairs sharing an LSH bucket, most shared buckets first.

    Earlier means stored, or before it in the batch's order. One query over the band table:
    the new articles' band hashes go in as an Arrow table, never row by row.
    """
    table = _bands_table(new)
    if not table.num_rows:
        return []
    con.register("batch_bands", table)
    try:
        rows = con.execute(
            f"""
            WITH ranked AS (
                SELECT *, row_number() OVER (PARTITION BY bucket ORDER BY position) AS mate
                FROM batch_bands
            ), pairs AS (
                SELECT n.article_id AS new_id, s.article_id AS old_id
                FROM batch_bands n JOIN article_bands s USING (bucket)
                UNION ALL
                SELECT n.article_id, e.article_id
                FROM ranked n JOIN ranked e
                  ON n.bucket = e.bucket AND e.position < n.position
                 AND e.mate <= {MAX_BATCH_BUCKET_MATES}
            )
            SELECT new_id, old_id FROM pairs GROUP BY new_id, old_id
            QUALIFY row_number() OVER (PARTITION BY new_id ORDER BY count(*) DESC, old_id)
                    <= {MAX_CANDIDATES}
            ORDER BY new_id, count(*) DESC, old_id
            """
        ).fetchall()
    finally:
        con.unregister("batch_bands")
    return [(r[0], r[1]) for r in rows]


def _bands_table(new: list[tuple[Article, Fingerprint]]) -> pa.Table:
    """(bucket, article_id, position in the batch) for every band of every banded article."""
    banded = [(i, a.article_id, fp.buckets) for i, (a, fp) in enumerate(new)]
    rows = [(i, aid, b) for i, aid, b in banded if b is not None]
    if not rows:
        return pa.table({"bucket": pa.array([], pa.int64())})
    width = len(rows[0][2])
    return pa.table(
        {
            "bucket": np.concatenate([b for _, _, b in rows]),
            "article_id": np.repeat(np.array([aid for _, aid, _ in rows], dtype=object), width),
            "position": np.repeat(np.array([i for i, _, _ in rows], dtype=np.int64), width),
        }
    )


def _stored_articles(con: duckdb.DuckDBPyConnection, ids: set[str]) -> dict[str, _Earlier]:
    if not ids:
        return {}
    rows = con.execute(
        "SELECT article_id, coalesce(story_id, article_id), coalesce(duplicate_of, article_id), "
        "coalesce(published_at, first_seen_at), title, body_text FROM articles "
        "WHERE article_id IN (SELECT unnest(?::VARCHAR[]))",
        [sorted(ids)],
    ).fetchall()
    sets = story_shingles([story_text(r[5] or "", r[4]) for r in rows])
    return {r[0]: _Earlier(r[0], r[1], r[2], r[3], s) for r, s in zip(rows, sets, strict=True)}


def record_keys(
    con: duckdb.DuckDBPyConnection,
    new: list[tuple[Article, Fingerprint]],
    layers: dict[str, str],
) -> None:
    """Store the new articles' keys and LSH bands for later batches; an identical story text
    adds no bands."""
    keys = pa.table(
        {
            "article_id": [a.article_id for a, _ in new],
            "title_key": [fp.title_key for _, fp in new],
            "body_key": [fp.body_key for _, fp in new],
            "dated_at": pa.array([_dated_at(a) for a, _ in new], _TS),
        }
    )
    bands = _bands_table([(a, fp) for a, fp in new if layers.get(a.article_id) != "body"])
    con.register("batch_keys", keys)
    con.register("batch_bands", bands)
    try:
        con.execute("INSERT INTO article_keys BY NAME SELECT * FROM batch_keys")
        if bands.num_rows:
            con.execute("INSERT INTO article_bands SELECT bucket, article_id FROM batch_bands")
    finally:
        con.unregister("batch_keys")
        con.unregister("batch_bands")
