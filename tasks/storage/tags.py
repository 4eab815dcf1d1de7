"""The coverage tag tables (`article_topics`, `article_regions`, `article_policy_docs`,
`article_orgs`): written with each batch's articles, and all again by `newsflow retag`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import duckdb
import pyarrow as pa

from newsflow.tasks.coverage.tag import ArticleTags, Tagger
from newsflow.tasks.storage.store import Database
from newsflow.tasks.storage.transaction import transaction

TAG_SCHEMAS: dict[str, pa.Schema] = {
    "article_topics": pa.schema(
        [
            ("article_id", pa.string()),
            ("topic", pa.string()),
            ("terms", pa.list_(pa.string())),
            ("hits", pa.int32()),
            ("title_hits", pa.int32()),
            ("score", pa.float64()),
        ]
    ),
    "article_regions": pa.schema(
        [
            ("article_id", pa.string()),
            ("region", pa.string()),
            ("province", pa.string()),
            ("level", pa.string()),
            ("hits", pa.int32()),
        ]
    ),
    "article_policy_docs": pa.schema(
        [
            ("article_id", pa.string()),
            ("doc_title", pa.string()),
            ("doc_type", pa.string()),
            ("hits", pa.int32()),
        ]
    ),
    "article_orgs": pa.schema(
        [
            ("article_id", pa.string()),
            ("org", pa.string()),
            ("country", pa.string()),
            ("hits", pa.int32()),
        ]
    ),
}
_FIELDS = {
    "article_topics": "topics",
    "article_regions": "regions",
    "article_policy_docs": "docs",
    "article_orgs": "orgs",
}


def tag_tables(tags: Sequence[ArticleTags]) -> dict[str, pa.Table]:
    """One Arrow table per tag table, rows of all the articles together."""
    tables = {}
    for table, attr in _FIELDS.items():
        schema = TAG_SCHEMAS[table]
        columns: list[list[object]] = [[] for _ in schema]
        for article in tags:
            for row in getattr(article, attr):
                columns[0].append(article.article_id)
                for i, value in enumerate(row, start=1):
                    columns[i].append(value)
        tables[table] = pa.table(columns, schema=schema)
    return tables


def write_tags(
    con: duckdb.DuckDBPyConnection, tags: Sequence[ArticleTags], *, new: bool = False
) -> None:
    """Replace these articles' rows in the four tag tables. Call inside a transaction. `new`:
    none of the articles was stored before this transaction, so there are no rows to delete
    (a delete reads the whole tag table: most of a first load's tag writing)."""
    if not tags:
        return
    ids = pa.table({"article_id": [t.article_id for t in tags]})
    con.register("batch_tag_ids", ids)
    try:
        for table, rows in tag_tables(tags).items():
            if not new:
                con.execute(
                    f"DELETE FROM {table} "
                    "WHERE article_id IN (SELECT article_id FROM batch_tag_ids)"
                )
            if rows.num_rows:
                con.register("batch_tags", rows)
                try:
                    con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM batch_tags")
                finally:
                    con.unregister("batch_tags")
    finally:
        con.unregister("batch_tag_ids")


class RetagCounts(NamedTuple):
    articles: int
    topics: int
    regions: int
    docs: int
    orgs: int


def retag_all(
    db: Database,
    tagger: Tagger,
    chunk_size: int = 2000,
    progress: Callable[[int, int], None] | None = None,
) -> RetagCounts:
    """Tag every stored article again, e.g. after the lexicon changed; returns the row counts.

    Chunks in article_id order, each read, tagged and written in one short session, so a
    scheduled run can load between chunks and an interrupted retag leaves whole chunks.
    `progress(done, total)` is called after each chunk.
    """
    with db.session() as con:
        row = con.execute("SELECT count(*) FROM articles").fetchone()
        expected = int(row[0]) if row else 0
    last = ""
    total = 0
    while True:
        with db.session() as con, transaction(con):
            rows = con.execute(
                "SELECT article_id, title, body_text FROM articles WHERE article_id > ? "
                "ORDER BY article_id LIMIT ?",
                [last, chunk_size],
            ).fetchall()
            if not rows:
                break
            write_tags(con, [tagger.tag(*row) for row in rows])
        last = rows[-1][0]
        total += len(rows)
        if progress:
            progress(total, max(total, expected))
    with db.session() as con, transaction(con):
        counts = []
        for table in ("article_topics", "article_regions", "article_policy_docs", "article_orgs"):
            # Tags of articles that are gone (none are deleted today; a file edited by hand).
            con.execute(
                f"DELETE FROM {table} WHERE article_id NOT IN (SELECT article_id FROM articles)"
            )
            row = con.execute(f"SELECT count(*) FROM {table}").fetchone()
            counts.append(int(row[0]) if row else 0)
    return RetagCounts(total, *counts)
