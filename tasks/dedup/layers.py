"""Deduplicate in layers, cheapest first, and group copies into stories.

Before download: the canonical URL (the article_id) and the GUID per feed drop entries already
stored. Inside the load transaction, for articles not stored yet: the same title from the same
source within 7 days, then the same story text (its words, credits and punctuation aside) make
an exact copy (`duplicate_of` points at the first copy); then near-duplicates (MinHash LSH over
shingles, `newsflow.tasks.dedup.fingerprint`) join the story of the article they copy. Every
article gets a `story_id`: the article_id of its story's first article, the first published (the
first stored when dates tie or are missing): when a story gains an article published before its
first one, the story takes that article's id.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

import duckdb
import numpy as np
import pyarrow as pa

from newsflow.schemas.models import Article
from newsflow.tasks.dedup.fingerprint import (
    MIN_CONTAINMENT,
    MIN_JACCARD,
    SURE_JACCARD,
    UNLIKELY_JACCARD,
    Fingerprint,
    Shingles,
    Signature,
    body_shingles,
    estimated_jaccard,
    is_near_copy,
    similarity,
)
from newsflow.tasks.dedup.known import listed

LOGGER = logging.getLogger(__name__)

_TS = pa.timestamp("us", tz="UTC")


# --- layers inside the load transaction -----------------------------------------------------

# The title layer's window: an outlet reuses a title for a new story after a while ("早报").
TITLE_WINDOW = timedelta(days=7)
# LSH candidates considered per new article, most shared bands first: a story's copies share
# many bands, while a bucket shared by hundreds of articles (a template) adds candidates only.
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


@dataclass
class _Earlier:
    """An article a new one may copy: stored, or earlier in the batch."""

    article_id: str
    story_id: str
    first_copy: str  # what a copy of it points at: its own duplicate_of, or itself
    dated_at: datetime
    shingles: Shingles | None = None  # of a stored article, read only when a layer needs them


class _Match(NamedTuple):
    layer: str  # title, body or near
    earlier: _Earlier
    # The copy's LSH bands would find nothing its original's do not (same or nearly the same
    # text), so they are not stored.
    redundant: bool


@dataclass
class _Matches:
    """Earlier articles by title key and body key, and each new article's LSH candidates with
    their MinHash estimate (best first, the unlikely ones dropped)."""

    by_id: dict[str, _Earlier] = field(default_factory=dict)
    titles: dict[str, list[_Earlier]] = field(default_factory=dict)
    bodies: dict[str, _Earlier] = field(default_factory=dict)
    candidates: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    stories: _Stories = field(default_factory=lambda: _Stories())


@dataclass
class _Stories:
    """The stories a batch touches: when each was first published, and those whose first
    article is now an earlier one of the batch."""

    opened: dict[str, datetime] = field(default_factory=dict)  # story_id → its first article's
    renamed: dict[str, str] = field(default_factory=dict)  # old story_id → new

    def current(self, story_id: str) -> str:
        while story_id in self.renamed:
            story_id = self.renamed[story_id]
        return story_id

    def join(self, story_id: str, article: Article) -> str:
        """The story's id once `article` is in it: the article's own when it is the earlier."""
        story_id, dated_at = self.current(story_id), _dated_at(article)
        opened = self.opened.get(story_id)
        if opened is not None and dated_at < opened:
            self.renamed[story_id] = article.article_id
            story_id = article.article_id
        self.opened.setdefault(story_id, dated_at)
        return story_id


def cluster_new_articles(
    con: duckdb.DuckDBPyConnection,
    articles: list[Article],
    prints: list[Fingerprint],
    stored: set[str] | None = None,
) -> LayerCounts:
    """Set `story_id` (and `duplicate_of` for exact copies) on the articles not stored yet and
    store their keys, signatures and LSH bands; returns how many copies each layer found.

    Layers, cheapest first: the same title from the same source within 7 days (unless both
    bodies say they differ), the same story text, then near-duplicates (LSH candidates, triaged
    on their MinHash estimate and verified on shingle sets). Stored articles keep their story,
    which takes the id of a new article published before its first one. Inside the load
    transaction "earlier" is well defined across runs; within a batch, articles are taken in
    order of publication. An article that arrives naming its original (a re-imported
    export) keeps it, and is never taken as the original of others; one that arrives with a
    story of its own and matches nothing keeps that. `stored`: the ids of those stored already,
    when the caller looked them up.
    """
    if stored is None:
        stored = stored_article_ids(con, [a.article_id for a in articles])
    new = sorted(
        ((a, fp) for a, fp in zip(articles, prints, strict=True) if a.article_id not in stored),
        key=lambda pair: _dated_at(pair[0]),
    )
    if not new:
        return LayerCounts()
    matches = find_earlier(con, new)
    counts = LayerCounts()
    unbanded: set[str] = set()
    for article, fp in new:
        if article.duplicate_of:
            article.story_id = article.story_id or _story_of(article.duplicate_of, matches)
            _remember(matches, article, fp)
            continue
        match = first_match(article, fp, matches)
        article.story_id = matches.stories.join(
            match.earlier.story_id if match else article.story_id or article.article_id, article
        )
        if match:
            setattr(counts, match.layer, getattr(counts, match.layer) + 1)
            if match.layer != "near":
                article.duplicate_of = match.earlier.first_copy
            if match.redundant:
                unbanded.add(article.article_id)
        _remember(matches, article, fp)
    for article, _ in new:
        article.story_id = matches.stories.current(article.story_id or article.article_id)
    rename_stories(con, matches.stories)
    record_keys(con, new, unbanded)
    return counts


def rename_stories(con: duckdb.DuckDBPyConnection, stories: _Stories) -> None:
    """Give stored articles the new id of their story, in one statement."""
    if not stories.renamed:
        return
    table = pa.table(
        {
            "old": list(stories.renamed),
            "new": [stories.current(old) for old in stories.renamed],
        }
    )
    con.register("batch_renamed", table)
    try:
        con.execute(
            "UPDATE articles SET story_id = r.new FROM batch_renamed r "
            "WHERE articles.story_id = r.old"
        )
    finally:
        con.unregister("batch_renamed")


def stored_article_ids(con: duckdb.DuckDBPyConnection, ids: list[str]) -> set[str]:
    with listed(con, "batch_ids", ids):
        rows = con.execute(
            "SELECT article_id FROM articles WHERE article_id IN (SELECT value FROM batch_ids)"
        ).fetchall()
    return {r[0] for r in rows}


def _dated_at(article: Article) -> datetime:
    return article.published_at or article.first_seen_at


def first_match(article: Article, fp: Fingerprint, matches: _Matches) -> _Match | None:
    """The cheapest layer that finds an earlier article this one copies."""
    for earlier in matches.titles.get(fp.title_key or "", []):
        if abs(_dated_at(article) - earlier.dated_at) <= TITLE_WINDOW and _bodies_agree(
            fp.shingles, earlier.shingles
        ):
            return _Match("title", earlier, redundant=False)
    if fp.body_key in matches.bodies:
        return _Match("body", matches.bodies[fp.body_key], redundant=True)
    for candidate_id, estimate in matches.candidates.get(article.article_id, []):
        candidate = matches.by_id.get(candidate_id)
        if candidate is None:  # its bands outlived it: nothing to join
            continue
        if estimate >= SURE_JACCARD:
            return _Match("near", candidate, redundant=True)
        if _is_near(fp.shingles, candidate.shingles):
            return _Match("near", candidate, redundant=False)
    return None


def _is_near(a: Shingles | None, b: Shingles | None) -> bool:
    return a is not None and b is not None and is_near_copy(similarity(a, b))


def _bodies_agree(a: Shingles | None, b: Shingles | None) -> bool:
    """Same outlet, same title: the same article, unless both bodies are long enough to say
    otherwise (a daily roundup keeps its title and changes its text). One body may be a cut of
    the other (a feed's excerpt), however short: the title already vouches for it."""
    if a is None or b is None:
        return True
    found = similarity(a, b)
    return found.jaccard >= MIN_JACCARD or found.containment >= MIN_CONTAINMENT


def _story_of(article_id: str, matches: _Matches) -> str:
    known = matches.by_id.get(article_id)
    return matches.stories.current(known.story_id) if known else article_id


def _remember(matches: _Matches, article: Article, fp: Fingerprint) -> None:
    """Make a new article matchable by the rest of its batch; an exact copy only by the near
    layer (it is nobody's original)."""
    assert article.story_id is not None
    earlier = _Earlier(
        article.article_id,
        article.story_id,
        article.duplicate_of or article.article_id,
        _dated_at(article),
        fp.shingles,
    )
    matches.by_id[article.article_id] = earlier
    if article.duplicate_of:
        return
    if fp.title_key:
        matches.titles.setdefault(fp.title_key, []).append(earlier)
    if fp.body_key:
        matches.bodies.setdefault(fp.body_key, earlier)


def find_earlier(
    con: duckdb.DuckDBPyConnection, new: list[tuple[Article, Fingerprint]]
) -> _Matches:
    """The stored articles the new ones may copy, by title key, body key and LSH bucket.

    LSH candidates are triaged on stored signatures; bodies are read only for title matches
    and for candidates whose MinHash estimate leaves the verdict open.
    """
    new_ids = {a.article_id for a, _ in new}
    pairs = lsh_candidates(con, new)
    signatures = {a.article_id: fp.signature for a, fp in new}
    signatures.update(_stored_signatures(con, {old for _, old in pairs if old not in new_ids}))
    candidates = _ranked_candidates(pairs, signatures)
    titles = _stored_titles_in_window(con, new)
    with listed(con, "batch_body_keys", [fp.body_key for _, fp in new if fp.body_key]):
        bodies = con.execute(
            "SELECT body_key, arg_min(article_id, dated_at) FROM article_keys "
            "WHERE body_key IN (SELECT value FROM batch_body_keys) GROUP BY body_key"
        ).fetchall()
    considered = {old for ranked in candidates.values() for old, _ in ranked} - new_ids
    title_ids = {aid for _, aid in titles}
    named = {a.duplicate_of for a, _ in new if a.duplicate_of}
    stories = _Stories()
    wanted = considered | title_ids | named | {aid for _, aid in bodies}
    matches = _Matches(
        by_id=_stored_articles(con, wanted, stories), candidates=candidates, stories=stories
    )
    for key, article_id in titles:
        matches.titles.setdefault(key, []).append(matches.by_id[article_id])
    matches.bodies = {key: matches.by_id[aid] for key, aid in bodies}
    _read_shingles(con, matches, title_ids | _undecided(candidates, new_ids))
    return matches


def _ranked_candidates(
    pairs: list[tuple[str, str]], signatures: dict[str, Signature | None]
) -> dict[str, list[tuple[str, float]]]:
    """Each new article's candidates with their MinHash estimate, best first; the unlikely
    ones dropped unread."""
    ranked: dict[str, list[tuple[str, float]]] = {}
    for new_id, old_id in pairs:
        new_signature, old_signature = signatures[new_id], signatures.get(old_id)
        if new_signature is not None and old_signature is not None:
            estimate = estimated_jaccard(new_signature, old_signature)
            if estimate >= UNLIKELY_JACCARD:
                ranked.setdefault(new_id, []).append((old_id, estimate))
    for found in ranked.values():
        found.sort(key=lambda c: -c[1])
    return ranked


def _undecided(candidates: dict[str, list[tuple[str, float]]], new_ids: set[str]) -> set[str]:
    """Stored candidates whose estimate leaves the verdict open, for new articles without a
    sure candidate (which would end their search: candidates are ranked best first)."""
    return {
        old_id
        for ranked in candidates.values()
        if ranked[0][1] < SURE_JACCARD
        for old_id, _ in ranked
        if old_id not in new_ids
    }


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
            """
        ).fetchall()
    finally:
        con.unregister("batch_bands")
    return [(r[0], r[1]) for r in rows]


def _bands_table(new: list[tuple[Article, Fingerprint]]) -> pa.Table:
    """(bucket, article_id, position in the batch) for every band of every banded article."""
    rows = [(i, a.article_id, fp.buckets) for i, (a, fp) in enumerate(new)]
    banded = [(i, aid, b) for i, aid, b in rows if b is not None]
    if not banded:
        return pa.table({"bucket": pa.array([], pa.int64())})
    width = len(banded[0][2])
    return pa.table(
        {
            "bucket": np.concatenate([b for _, _, b in banded]),
            "article_id": np.repeat(np.array([aid for _, aid, _ in banded], dtype=object), width),
            "position": np.repeat(np.array([i for i, _, _ in banded], dtype=np.int64), width),
        }
    )


def _stored_signatures(
    con: duckdb.DuckDBPyConnection, ids: set[str]
) -> dict[str, Signature | None]:
    if not ids:
        return {}
    with listed(con, "wanted_ids", sorted(ids)):
        rows = con.execute(
            "SELECT article_id, minhash FROM article_keys "
            "WHERE article_id IN (SELECT value FROM wanted_ids)"
        ).fetchall()
    return {r[0]: np.frombuffer(r[1], dtype=np.uint32) if r[1] else None for r in rows}


def _stored_articles(
    con: duckdb.DuckDBPyConnection, ids: set[str], stories: _Stories
) -> dict[str, _Earlier]:
    """Stored articles by id; `stories` learns when their stories were first published."""
    if not ids:
        return {}
    with listed(con, "wanted_ids", sorted(ids)):
        rows = con.execute(
            "SELECT a.article_id, coalesce(a.story_id, a.article_id), "
            "coalesce(a.duplicate_of, a.article_id), coalesce(a.published_at, a.first_seen_at), "
            "coalesce(first.published_at, first.first_seen_at) "
            "FROM articles a LEFT JOIN articles first "
            "ON first.article_id = coalesce(a.story_id, a.article_id) "
            "WHERE a.article_id IN (SELECT value FROM wanted_ids)"
        ).fetchall()
    for _, story_id, _, _, opened in rows:
        if opened is not None:
            stories.opened[story_id] = opened
    return {r[0]: _Earlier(r[0], r[1], r[2], r[3]) for r in rows}


def _read_shingles(con: duckdb.DuckDBPyConnection, matches: _Matches, ids: set[str]) -> None:
    """Shingles of these stored articles, from their bodies: the only bodies read."""
    if not ids:
        return
    with listed(con, "wanted_ids", sorted(ids)):
        rows = con.execute(
            "SELECT article_id, title, body_text FROM articles "
            "WHERE article_id IN (SELECT value FROM wanted_ids)"
        ).fetchall()
    sets = body_shingles([(body or "", title) for _, title, body in rows])
    for (article_id, _, _), shingles in zip(rows, sets, strict=True):
        matches.by_id[article_id].shingles = shingles


def record_keys(
    con: duckdb.DuckDBPyConnection, new: list[tuple[Article, Fingerprint]], unbanded: set[str]
) -> None:
    """Store the new articles' keys and signatures, and the LSH bands of those whose text is
    not (nearly) their original's, for later batches."""
    keys = pa.table(
        {
            "article_id": [a.article_id for a, _ in new],
            "title_key": [fp.title_key for _, fp in new],
            # An exact copy is nobody's original: only originals are found by their text.
            "body_key": [None if a.duplicate_of else fp.body_key for a, fp in new],
            "dated_at": pa.array([_dated_at(a) for a, _ in new], _TS),
            "minhash": pa.array(
                [fp.signature.tobytes() if fp.signature is not None else None for _, fp in new],
                pa.binary(),
            ),
        }
    )
    bands = _bands_table([(a, fp) for a, fp in new if a.article_id not in unbanded])
    con.register("batch_keys", keys)
    con.register("batch_bands", bands)
    try:
        con.execute("INSERT INTO article_keys BY NAME SELECT * FROM batch_keys")
        if bands.num_rows:
            con.execute("INSERT INTO article_bands SELECT bucket, article_id FROM batch_bands")
    finally:
        con.unregister("batch_keys")
        con.unregister("batch_bands")
