"""Reads of the full-text index for the CLI: ranked search with filters, term trends.

The matching and ranking are the SQL macros of schemas/ddl.py (migration 9), so the CLI and a
plain `duckdb` session give the same answers; here they are only filtered, joined and counted.
The query travels as a parameter, never inside the SQL text.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

import duckdb
from pydantic import BaseModel

from newsflow.schemas.config import SearchRequest, TrendRequest
from newsflow.schemas.errors import ConfigError
from newsflow.schemas.models import DateWindow
from newsflow.tasks.search.bulk import index_unindexed, rebuild_index
from newsflow.tasks.search.index import hash_changed, unindexed_count
from newsflow.tasks.storage.store import Database

LOGGER = logging.getLogger(__name__)


class SearchHit(BaseModel):
    article_id: str
    title: str
    url: str
    published_at: datetime | None
    source: str | None
    score: float
    snippet: str


class SearchResult(BaseModel):
    hits: list[SearchHit]
    total: int  # matches within the filters, beyond the rows shown
    per_source: list[tuple[str, int]]


class TrendPoint(BaseModel):
    period: date
    articles: int
    stories: int  # distinct near-duplicate clusters: a syndicated story counts once


class Trend(BaseModel):
    term: str
    points: list[TrendPoint]


# The filtered matches of a query: every later statement reads this view of the parameters.
_FILTERED = """
SELECT m.article_id, m.score, a.title, a.url, a.published_at, a.source, a.body_text,
       a.published_date, coalesce(a.story_id, a.article_id) AS story_id
FROM search_matches($query) m JOIN articles a USING (article_id)
WHERE ($start IS NULL OR a.published_at >= $start)
  AND ($end IS NULL OR a.published_at < $end)
  AND ($source IS NULL OR a.source = $source)
  AND ($topic IS NULL OR EXISTS (SELECT 1 FROM article_topics t
                                 WHERE t.article_id = a.article_id AND t.topic = $topic))
"""
_HITS = f"""
WITH f AS ({_FILTERED})
SELECT article_id, title, url, published_at, source, score,
       search_snippet(body_text, (SELECT text FROM search_query_parts($query)
                                  WHERE NOT neg ORDER BY part LIMIT 1)) AS snippet
FROM (SELECT * FROM f ORDER BY score DESC, article_id LIMIT $limit)
ORDER BY score DESC, article_id
"""
_PER_SOURCE = f"""
WITH f AS ({_FILTERED})
SELECT coalesce(source, '(none)') AS source, count(*) AS n FROM f
GROUP BY ALL ORDER BY n DESC, source
"""
_TREND = f"""
WITH f AS ({_FILTERED})
SELECT CAST(date_trunc($by, coalesce(published_date,
                                     CAST(timezone('Asia/Shanghai', published_at) AS DATE)))
            AS DATE) AS period,
       count(*) AS articles, count(DISTINCT story_id) AS stories
FROM f WHERE published_at IS NOT NULL
GROUP BY ALL ORDER BY period
"""


def check_query(con: duckdb.DuckDBPyConnection, query: str) -> None:
    """A ConfigError (one line at the CLI) for a query with nothing to search for."""
    row = con.execute(
        "SELECT count(*) FROM search_query_parts(?) WHERE NOT neg", [query]
    ).fetchone()
    if not row or not row[0]:
        raise ConfigError(
            f"nothing to search for in {query[:60]!r}: give a word, a Chinese term or a "
            '"quoted phrase" (stopwords and punctuation alone are not searched)'
        )


def _params(
    query: str, window: DateWindow, source: str | None, topic: str | None
) -> dict[str, Any]:
    return {
        "query": query,
        "start": window.start,
        "end": window.end,
        "source": source,
        "topic": topic,
    }


def search(
    con: duckdb.DuckDBPyConnection, request: SearchRequest, window: DateWindow
) -> SearchResult:
    """The best `request.limit` matches, best first, and the matches per source."""
    check_query(con, request.query)
    params = _params(request.query, window, request.source, request.topic)
    rows = con.execute(_HITS, params | {"limit": request.limit}).fetchall()
    names = ("article_id", "title", "url", "published_at", "source", "score", "snippet")
    hits = [SearchHit(**dict(zip(names, r, strict=True))) for r in rows]
    per_source = [(r[0], int(r[1])) for r in con.execute(_PER_SOURCE, params).fetchall()]
    return SearchResult(hits=hits, total=sum(n for _, n in per_source), per_source=per_source)


def trends(
    con: duckdb.DuckDBPyConnection, request: TrendRequest, window: DateWindow
) -> list[Trend]:
    """Per term, matching articles and stories per period, with empty periods filled in."""
    for term in request.terms:
        check_query(con, term)
    found = []
    for term in request.terms:
        params = _params(term, window, request.source, None) | {"by": request.by}
        rows = con.execute(_TREND, params).fetchall()
        found.append({r[0]: (int(r[1]), int(r[2])) for r in rows})
    periods = sorted({p for counts in found for p in counts})
    axis = _axis(periods[0], periods[-1], request.by) if periods else []
    return [
        Trend(
            term=term,
            points=[
                TrendPoint(period=p, articles=c.get(p, (0, 0))[0], stories=c.get(p, (0, 0))[1])
                for p in axis
            ],
        )
        for term, c in zip(request.terms, found, strict=True)
    ]


def _axis(first: date, last: date, by: str) -> list[date]:
    """Every period from first to last: days, Mondays, or the firsts of months."""
    periods, current = [], first
    while current <= last:
        periods.append(current)
        if by == "month":
            current = date(current.year + current.month // 12, current.month % 12 + 1, 1)
        else:
            current += timedelta(days=7 if by == "week" else 1)
    return periods


def ensure_index(db: Database, progress: Callable[[int, int], None] | None = None) -> int:
    """Index the stored articles the index lacks (a database from before the index, or one
    whose articles a foreign writer added): a read command's one write, as for migrations.
    Returns how many articles were indexed."""
    with db.session() as con:
        stale = hash_changed(con)
        missing = unindexed_count(con)
    writer = Database(db.path, db.lock_timeout)
    workers = os.cpu_count() or 1  # segmentation in processes, as `newsflow reindex` does
    if stale:  # another DuckDB release hashes terms differently: the old ids are useless
        LOGGER.warning("DuckDB's hash() changed since the index was written; rebuilding it")
        return rebuild_index(writer, progress=progress, workers=workers).articles
    if not missing:
        return 0
    LOGGER.info("indexing %d articles for search (once)", missing)
    return index_unindexed(writer, progress=progress, workers=workers)


class StoryHit(BaseModel):
    title: str
    articles: int  # copies of the story that match
    first_published: datetime | None


_TOP_STORIES = """
SELECT arg_max(a.title, m.score) AS title, count(*) AS articles,
       min(a.published_at) AS first_published
FROM search_matches($query) m JOIN articles a USING (article_id)
GROUP BY coalesce(a.story_id, a.article_id)
ORDER BY max(m.score) DESC, title LIMIT $limit
"""


def top_stories(con: duckdb.DuckDBPyConnection, query: str, limit: int = 3) -> list[StoryHit]:
    """The best-matching stories (near-duplicate clusters), each once, best first."""
    rows = con.execute(_TOP_STORIES, {"query": query, "limit": limit}).fetchall()
    return [StoryHit(title=t, articles=int(n), first_published=f) for t, n, f in rows]
