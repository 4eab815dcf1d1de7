"""Writes of the full-text index: `search_docs` and `search_postings`.

Called inside every article load (tasks/storage/load.py, `write_articles`) with the batch's
articles, and by `newsflow reindex`. The work is set-based: each article's terms travel as one
space-separated string (the extraction worker's where it segmented this very body), and DuckDB
splits, unnests, counts and inserts them in a few statements — no Python loop per term.

A term's id is DuckDB's 64-bit `hash(term)`, which the query macros compute alike: no
dictionary to look up or grow under the writer's lock. (A collision would merge two terms'
postings; among five million distinct terms its odds are below one in a million.) An article
indexed with the same title and body already is skipped; one whose text changed loses its old
postings first.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from newsflow.schemas.models import Article
from newsflow.tasks.search.segment import index_terms
from newsflow.tasks.storage.store import Database
from newsflow.tasks.storage.transaction import transaction

LOGGER = logging.getLogger(__name__)

# A title's term counts this many times a body's, in the postings and in a document's length.
TITLE_WEIGHT = 3

_STAGE = """
CREATE OR REPLACE TEMP TABLE search_batch AS
SELECT (SELECT coalesce(max(doc_id), 0) FROM search_docs) + 1 + b.position AS doc_id,
       b.article_id, b.position, hash(a.title, a.content_hash) AS signature
FROM search_batch_in b JOIN articles a USING (article_id)
WHERE NOT EXISTS (
    SELECT 1 FROM search_docs d
    WHERE d.article_id = b.article_id AND d.signature = hash(a.title, a.content_hash)
)
"""
_DROP_OLD = """
CREATE OR REPLACE TEMP TABLE search_old AS
SELECT doc_id FROM search_docs WHERE article_id IN (SELECT article_id FROM search_batch)
"""


def _term_count(column: str) -> str:
    # index_terms joins non-empty terms with single spaces: '' holds none, else each is one.
    return f"(len(string_split({column}, ' ')) - ({column} = '')::INTEGER)"


# A document's length: its terms, the title's counted TITLE_WEIGHT times.
_NEW_DOCS = f"""
INSERT INTO search_docs
SELECT b.doc_id, b.article_id,
       ({TITLE_WEIGHT} * {_term_count("i.title_terms")} + {_term_count("i.body_terms")})::INTEGER,
       b.signature
FROM search_batch b JOIN search_batch_in i USING (position)
"""


def _latin_pairs(terms: str, first: str, weight: str) -> str:
    """The pair terms of a list (the stored macro search_pairs, migration 11), each at its
    first term's place (`first` is the list's first place)."""
    return f"""
    SELECT doc_id, unnest(search_pairs({terms})),
           unnest(range({first}, {first} + len({terms}) - 1)), {weight}
    FROM split"""


# One posting per (term, document) with its places: the title's terms from 0, the body's from
# one past the title's end, so that no phrase spans the two. Adjacent Latin terms also post as
# a pair (a space inside: no single term's id), so that a phrase of common English words is
# looked up, not joined from their many places; Chinese phrases' bigrams are rare enough to
# join. Pairs count in no document's length and no score, only in phrases.
_POSTINGS = f"""
INSERT INTO search_postings
WITH split AS (
    SELECT doc_id, string_split(title_terms, ' ') AS title, string_split(body_terms, ' ') AS body
    FROM search_batch JOIN search_batch_in USING (position)
)
SELECT hash(term) AS term_id, doc_id, least(sum(weight), 65535), list(place)
FROM (
    SELECT doc_id, unnest(title) AS term, unnest(range(len(title))) AS place,
           {TITLE_WEIGHT} AS weight
    FROM split
    UNION ALL
    SELECT doc_id, unnest(body) AS term, unnest(range(len(title) + 1, len(title) + 1 + len(body))),
           1
    FROM split
    UNION ALL{_latin_pairs("title", "0", str(TITLE_WEIGHT))}
    UNION ALL{_latin_pairs("body", "len(title) + 1", "1")}
)
WHERE term <> '' AND term IS NOT NULL
GROUP BY term, doc_id
"""
# In term order, so that a query's scan skips the row groups whose term range misses its terms.
_IN_TERM_ORDER = "ORDER BY term_id, doc_id"
# One table in term order prunes best: written anew (once, where a copy back would write it
# twice), put in the old one's place, with the columns' NOT NULL that a copy does not keep.
_SORT_POSTINGS = """
CREATE TABLE search_postings_sorted AS FROM search_postings ORDER BY term_id, doc_id;
DROP TABLE search_postings;
ALTER TABLE search_postings_sorted RENAME TO search_postings;
""" + "".join(
    f"ALTER TABLE search_postings ALTER COLUMN {c} SET NOT NULL;\n"
    for c in ("term_id", "doc_id", "tf", "positions")
)
_TEMP_TABLES = ("search_batch", "search_old")


def index_articles(
    con: duckdb.DuckDBPyConnection, articles: Sequence[Article], body_terms: Sequence[str]
) -> int:
    """Index these stored articles (call after their upsert, in its transaction) with their
    bodies' terms (tasks/extraction/derive.py, `article_terms`); returns how many were
    (re)indexed — those indexed with the same title and body already are not."""
    if not articles:
        return 0
    batch = pa.table(
        {
            "article_id": [a.article_id for a in articles],
            "title_terms": [index_terms(a.title) for a in articles],
            "body_terms": list(body_terms),
        }
    )
    return write_terms(con, batch)


def write_terms(con: duckdb.DuckDBPyConnection, batch: pa.Table, *, ordered: bool = True) -> int:
    """Index a table of (article_id, title_terms, body_terms) of stored articles; `ordered`
    False leaves the batch's postings out of term order (a bulk index sorts them all after)."""
    batch = batch.append_column("position", pa.array(range(batch.num_rows), pa.int32()))
    con.register("search_batch_in", batch)
    try:
        con.execute(_STAGE)
        row = con.execute("SELECT count(*) FROM search_batch").fetchone()
        indexed = int(row[0]) if row else 0
        if indexed:
            con.execute(_DROP_OLD)
            if con.execute("SELECT count(*) FROM search_old").fetchone() != (0,):
                con.execute("DELETE FROM search_postings WHERE doc_id IN (FROM search_old)")
                con.execute("DELETE FROM search_docs WHERE doc_id IN (FROM search_old)")
            con.execute(_NEW_DOCS)
            con.execute(_POSTINGS + (_IN_TERM_ORDER if ordered else ""))
    finally:
        con.unregister("search_batch_in")
        for table in _TEMP_TABLES:
            con.execute(f"DROP TABLE IF EXISTS {table}")
    return indexed


def hash_changed(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether this DuckDB's hash() differs from the one that wrote the postings."""
    row = con.execute(
        "SELECT count(*) FROM search_state WHERE hash_probe <> hash('newsflow')"
    ).fetchone()
    return bool(row and row[0])


def unindexed_count(con: duckdb.DuckDBPyConnection) -> int:
    """Stored articles without an entry in the index (all of them in a database from before
    the index existed)."""
    row = con.execute(
        "SELECT count(*) FROM articles a "
        "WHERE NOT EXISTS (SELECT 1 FROM search_docs d WHERE d.article_id = a.article_id)"
    ).fetchone()
    return int(row[0]) if row else 0


@dataclass(frozen=True)
class IndexCounts:
    articles: int
    terms: int
    postings: int


def segment_rows(rows: list[tuple[str, str | None, str | None]]) -> pa.Table:
    """(article_id, title, body) rows as the table `write_terms` takes; runs in a worker."""
    return pa.table(
        {
            "article_id": [r[0] for r in rows],
            "title_terms": [index_terms(r[1] or "") for r in rows],
            "body_terms": [index_terms(r[2] or "") for r in rows],
        }
    )


# By ranges of rowid, which DuckDB reads without scanning the rest of the table (a range of
# article_ids, in no storage order, read every remaining body once per chunk).
_UNINDEXED_CHUNK = """
SELECT article_id, title, body_text FROM articles a
WHERE rowid >= ? AND rowid < ?
  AND NOT EXISTS (SELECT 1 FROM search_docs d WHERE d.article_id = a.article_id)
"""


def index_unindexed(
    db: Database,
    chunk_size: int = 2000,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 1,
) -> int:
    """Index every stored article the index lacks, in chunks of one short session each (a
    scheduled run can load in between); returns how many. `progress(done, total)` after each.

    With `workers` > 1 and more than one chunk to do, chunks are segmented in that many
    processes (as extraction workers segment pages) while this process writes the ones done.
    More than one chunk is written out of term order and all postings are sorted once at the
    end (cheaper than sorting each chunk, and what queries need after many chunks).
    """
    with db.session() as con:
        total = unindexed_count(con)
        row = con.execute("SELECT coalesce(max(rowid), -1) FROM articles").fetchone()
        end = int(row[0]) + 1 if row else 0

    def chunks() -> Iterator[list[tuple[str, str | None, str | None]]]:
        for start in range(0, end, chunk_size):
            with db.session() as con:
                rows = con.execute(_UNINDEXED_CHUNK, [start, start + chunk_size]).fetchall()
            if rows:
                yield rows

    done = 0
    bulk = total > chunk_size
    with ExitStack() as stack:
        if workers > 1 and bulk:
            pool = stack.enter_context(
                ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver"))
            )
            tables = _segmented_ahead(pool, chunks(), workers)
        else:
            tables = map(segment_rows, chunks())
        for table in tables:
            with db.session() as con, transaction(con):
                write_terms(con, table, ordered=not bulk)
            done += table.num_rows
            if progress:
                progress(done, max(done, total))
    if bulk:
        with db.session() as con:
            sort_postings(con)
    return done


def _segmented_ahead(
    pool: ProcessPoolExecutor,
    chunks: Iterator[list[tuple[str, str | None, str | None]]],
    ahead: int,
) -> Iterator[pa.Table]:
    """The chunks segmented in the pool, in order, with at most `ahead` chunks in flight (the
    pool's own map would read every chunk into memory first)."""
    queued: deque[Future[pa.Table]] = deque()
    for rows in chunks:
        queued.append(pool.submit(segment_rows, rows))
        if len(queued) > ahead:
            yield queued.popleft().result()
    while queued:
        yield queued.popleft().result()


def sort_postings(con: duckdb.DuckDBPyConnection) -> None:
    """Rewrite the postings in term order, in one transaction."""
    with transaction(con):
        con.execute(_SORT_POSTINGS)


def rebuild_index(
    db: Database,
    chunk_size: int = 2000,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 1,
) -> IndexCounts:
    """Empty the index and index every article again (after the segmentation rules changed,
    or to compact it): the postings are then stored in term order, which queries read fastest."""
    with db.session() as con, transaction(con):
        for table in ("search_postings", "search_docs"):
            con.execute(f"DELETE FROM {table}")
        con.execute("UPDATE search_state SET hash_probe = hash('newsflow')")
    articles = index_unindexed(db, chunk_size, progress, workers)  # ends in term order
    with db.session() as con:
        terms = con.execute("SELECT count(DISTINCT term_id) FROM search_postings").fetchone()
        postings = con.execute("SELECT count(*) FROM search_postings").fetchone()
    return IndexCounts(articles, int(terms[0]) if terms else 0, int(postings[0]) if postings else 0)
