"""The `articles` and `article_feeds` tables: bulk upserts of Article records through Arrow.

The Arrow schema is derived from the pydantic `Article` model, field by field, so the model
is the one definition of an article's columns in Python; `tests/test_columns.py` checks it
against the DDL after every migration. Articles go in as an Arrow table registered with DuckDB
and one `INSERT … ON CONFLICT`, never row by row (executemany is tens of times slower:
docs/ARCHITECTURE.md, "data flow").
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any

import duckdb
import pyarrow as pa
from pydantic import BaseModel

from newsflow.schemas.models import Article, utcnow

TIMESTAMP = pa.timestamp("us", tz="UTC")
_SCALARS: dict[Any, pa.DataType] = {
    str: pa.string(),
    bool: pa.bool_(),
    int: pa.int64(),
    float: pa.float64(),
    datetime: TIMESTAMP,
    date: pa.date32(),
}


def arrow_type(annotation: Any) -> pa.DataType:
    """The Arrow type of a model field's annotation; a dict is JSON text (see JSON_COLUMNS)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        present = [a for a in args if a is not type(None)]
        if len(present) == 1:
            return arrow_type(present[0])
    elif origin is list and len(args) == 1:
        return pa.list_(arrow_type(args[0]))
    elif origin is dict:
        return pa.string()
    elif annotation in _SCALARS:
        return _SCALARS[annotation]
    raise TypeError(f"no Arrow type for {annotation!r}: add one to tasks/storage/articles.py")


def arrow_schema(model: type[BaseModel]) -> pa.Schema:
    """The model's columns: its fields but those excluded from dumps (carried, not stored)."""
    return pa.schema(
        [
            (name, arrow_type(f.annotation))
            for name, f in model.model_fields.items()
            if not f.exclude
        ]
    )


ARTICLE_SCHEMA = arrow_schema(Article)
ARTICLE_COLUMNS = ARTICLE_SCHEMA.names
# Dicts travel as JSON text and are cast back to JSON in SQL.
JSON_COLUMNS = frozenset(
    name for name, f in Article.model_fields.items() if typing.get_origin(f.annotation) is dict
)
_JSON_CAST = {c: f"{c}::JSON" for c in JSON_COLUMNS}
# On conflict the stored row keeps its identity and first sighting; content is refreshed.
_KEEP_ON_CONFLICT = {"article_id", "canonical_url", "first_seen_at", "story_id", "duplicate_of"}
_UPSERT_ARTICLES = (
    f"INSERT INTO articles ({', '.join(ARTICLE_COLUMNS)}) "
    f"SELECT {', '.join(_JSON_CAST.get(c, c) for c in ARTICLE_COLUMNS)} "
    "FROM batch_articles ON CONFLICT (article_id) DO UPDATE SET "
    + ", ".join(
        f"{c} = coalesce(excluded.{c}, articles.{c})"
        for c in ARTICLE_COLUMNS
        if c not in _KEEP_ON_CONFLICT
    )
)
# Stored rows that the upsert would leave as they are, the time of the sighting aside.
_UNCHANGED_ARTICLES = (
    "SELECT b.article_id FROM batch_articles b JOIN articles a USING (article_id) WHERE "
    + " AND ".join(
        f"coalesce(b.{_JSON_CAST.get(c, c)}, a.{c}) IS NOT DISTINCT FROM a.{c}"
        for c in ARTICLE_COLUMNS
        if c not in _KEEP_ON_CONFLICT | {"last_seen_at"}
    )
)


def articles_table(articles: Sequence[Article]) -> pa.Table:
    """The articles as an Arrow table of ARTICLE_SCHEMA. A field the schema lacks (a subclass
    of Article with more fields) is a TypeError, never dropped."""
    rows: dict[str, list[Any]] = {c: [] for c in ARTICLE_COLUMNS}
    for a in articles:
        record = a.model_dump()
        if record.keys() != rows.keys():
            unknown = sorted(record.keys() - rows.keys())
            raise TypeError(f"{type(a).__name__} fields without a column: {unknown}")
        for c in JSON_COLUMNS:
            value = record[c]
            record[c] = json.dumps(value, ensure_ascii=False, default=str) if value else None
        for c in ARTICLE_COLUMNS:
            rows[c].append(record[c])
    return pa.table(rows, schema=ARTICLE_SCHEMA)


def upsert_articles(
    con: duckdb.DuckDBPyConnection, articles: Sequence[Article]
) -> tuple[int, int, int]:
    """Insert new articles and refresh known ones; returns (new, updated, unchanged).

    "Updated" means the title or text changed; the same article again (another feed carrying
    it in the same run) is unchanged. Call in a transaction.
    """
    if not articles:
        return 0, 0, 0
    table = articles_table(articles)
    con.register("batch_articles", table)
    try:
        changed, known = con.execute(
            "SELECT count(*) FILTER (WHERE a.content_hash IS DISTINCT FROM b.content_hash "
            "OR a.title IS DISTINCT FROM b.title), count(*) "
            "FROM batch_articles b JOIN articles a USING (article_id)"
        ).fetchone() or (0, 0)
        con.execute(_UPSERT_ARTICLES)
    finally:
        con.unregister("batch_articles")
    return len(articles) - known, changed, known - changed


# The publication date's columns, which re-extraction restates (ArticleBatch.restated_dates).
DATE_COLUMNS = ("published_at", "published_precision", "published_source", "published_date")


def dates_differ(con: duckdb.DuckDBPyConnection, articles: Sequence[Article]) -> set[str]:
    """Ids of the articles whose stored date columns differ from these, NULL against a value
    included (the upsert's comparison would call those unchanged)."""
    if not articles:
        return set()
    with _batch_dates(con, articles):
        rows = con.execute(
            "SELECT b.article_id FROM batch_dates b JOIN articles a USING (article_id) WHERE "
            + " OR ".join(f"b.{c} IS DISTINCT FROM a.{c}" for c in DATE_COLUMNS)
        ).fetchall()
    return {r[0] for r in rows}


def restate_dates(con: duckdb.DuckDBPyConnection, articles: Sequence[Article]) -> None:
    """Set the stored date columns to these articles' own, NULL included. Call in a
    transaction, after the upsert (which never overwrites a value with NULL)."""
    if not articles:
        return
    with _batch_dates(con, articles):
        con.execute(
            "UPDATE articles SET "
            + ", ".join(f"{c} = b.{c}" for c in DATE_COLUMNS)
            + " FROM batch_dates b WHERE articles.article_id = b.article_id"
        )


@contextmanager
def _batch_dates(con: duckdb.DuckDBPyConnection, articles: Sequence[Article]) -> Iterator[None]:
    """The articles' ids and date columns, registered as `batch_dates` while in use."""
    con.register("batch_dates", articles_table(articles).select(["article_id", *DATE_COLUMNS]))
    try:
        yield
    finally:
        con.unregister("batch_dates")


def stored_unchanged(con: duckdb.DuckDBPyConnection, articles: Sequence[Article]) -> set[str]:
    """Ids of the articles that are stored with these very values already."""
    if not articles:
        return set()
    con.register("batch_articles", articles_table(articles))
    try:
        return {row[0] for row in con.execute(_UNCHANGED_ARTICLES).fetchall()}
    finally:
        con.unregister("batch_articles")


def record_feed_refs(
    con: duckdb.DuckDBPyConnection, refs: Sequence[tuple[str, str, str | None]]
) -> None:
    """Remember which feed carried which article, and under which GUID: (feed_url,
    article_id, guid) rows, of one feed or several."""
    if not refs:
        return
    now = utcnow()
    table = pa.table(
        {
            "article_id": [r[1] for r in refs],
            "feed_url": [r[0] for r in refs],
            "guid": [r[2] for r in refs],
            "first_seen_at": pa.array([now] * len(refs), TIMESTAMP),
        }
    )
    con.register("batch_refs", table)
    try:
        con.execute(
            "INSERT INTO article_feeds SELECT DISTINCT ON (article_id, feed_url) * FROM batch_refs "
            "ON CONFLICT (article_id, feed_url) DO UPDATE SET guid = coalesce(excluded.guid, "
            "article_feeds.guid)"
        )
        con.execute(
            "UPDATE articles SET last_seen_at = ? WHERE article_id IN "
            "(SELECT article_id FROM batch_refs)",
            [now],
        )
    finally:
        con.unregister("batch_refs")
