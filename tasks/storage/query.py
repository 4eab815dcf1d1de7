"""Reading stored articles back, for export, re-extraction and the demo: a window's filter,
the ids of the articles to re-extract, rows as `Article` records, the newest articles."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import duckdb

from newsflow.schemas.models import Article, DateWindow
from newsflow.tasks.storage.articles import ARTICLE_COLUMNS


def window_filter(window: DateWindow) -> tuple[str, list[Any]]:
    """A WHERE condition (and its parameters) for articles published in the window."""
    clauses, params = [], []
    if window.start is not None:
        clauses.append("published_at >= ?")
        params.append(window.start)
    if window.end is not None:
        clauses.append("published_at < ?")
        params.append(window.end)
    return " AND ".join(clauses) or "TRUE", params


def reextract_targets(
    con: duckdb.DuckDBPyConnection, window: DateWindow, ids: Sequence[str] | None = None
) -> list[str]:
    """Ids of the window's stored articles that have a web page to extract again (posts read
    from files have none), limited to `ids` when given."""
    where, params = window_filter(window)
    where += " AND url LIKE 'http%' AND body_source IS DISTINCT FROM 'post'"
    if ids is not None:
        where += " AND article_id IN (SELECT unnest(?::VARCHAR[]))"
        params.append(list(ids))
    rows = con.execute(
        f"SELECT article_id FROM articles WHERE {where} ORDER BY published_at, article_id", params
    ).fetchall()
    return [r[0] for r in rows]


def read_articles(
    con: duckdb.DuckDBPyConnection, where: str, params: Sequence[Any], chunk: int = 500
) -> Iterator[Article]:
    """Stored rows matching `where` as Articles, oldest first, fetched `chunk` at a time."""
    cursor = con.execute(
        f"SELECT {', '.join(ARTICLE_COLUMNS)} FROM articles WHERE {where} "
        "ORDER BY published_at NULLS LAST, article_id",
        list(params),
    )
    while rows := cursor.fetchmany(chunk):
        for row in rows:
            record = dict(zip(ARTICLE_COLUMNS, row, strict=True))
            record["extra"] = json.loads(record["extra"]) if record["extra"] else {}
            record["categories"] = record["categories"] or []
            record["tags"] = record["tags"] or []
            yield Article(**record)


def articles_by_id(con: duckdb.DuckDBPyConnection, ids: Sequence[str]) -> list[Article]:
    return list(read_articles(con, "article_id IN (SELECT unnest(?::VARCHAR[]))", [list(ids)]))


def latest_articles(
    con: duckdb.DuckDBPyConnection, limit: int, tz: str
) -> list[tuple[str | None, str, str | None, str]]:
    """The newest articles as (published, in `tz` to the minute; source; language; title)."""
    rows = con.execute(
        "SELECT strftime(published_at AT TIME ZONE ?, '%Y-%m-%d %H:%M'), source, language, "
        "title FROM articles ORDER BY published_at DESC NULLS LAST LIMIT ?",
        [tz, limit],
    ).fetchall()
    return [tuple(r) for r in rows]  # type: ignore[misc]
