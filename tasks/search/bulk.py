"""Indexing the stored articles a load did not index: `newsflow reindex`, and the first read
command after a migration emptied the index or a foreign writer added articles.

A few articles (one chunk) are indexed as a load indexes them (index.py, `write_terms`). Many
are indexed in bulk:

1. Chunks of articles are read by ranges of rowid, in short sessions.
2. Worker processes segment each chunk and make its postings with the writer's own SQL
   (`postings_of`), in an in-memory DuckDB migrated to the same schema (same macros, same
   `hash()`), and write them beside the database as Parquet. Each article is keyed by its
   rowid until it has a document id.
3. One session loads them all: the documents get their ids, and the postings table is written
   anew in term order (which queries need), the postings already there included.

So the postings are written once, not once per chunk and again by a sort at the end; their
grouping runs in the workers, beside the segmentation; and the database is held for the
final load only, so a scheduled run can load between the chunks' reads. An article that a load
indexes meanwhile keeps the load's entry. At 100,000 articles (benchmarks/search.py) this
built the index in 46 s where writing each chunk's postings and sorting them after took 72 s.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from newsflow.tasks.forkserver import ensure_forkserver
from newsflow.tasks.search.index import DOC_LENGTH, postings_of, unindexed_count, write_terms
from newsflow.tasks.search.segment import index_terms
from newsflow.tasks.storage.runs import pid_alive
from newsflow.tasks.storage.store import Database, connect, migrate
from newsflow.tasks.storage.transaction import transaction

# By ranges of rowid, which DuckDB reads without scanning the rest of the table (a range of
# article_ids, in no storage order, read every remaining body once per chunk). The signature
# is of the text read: the one segmented.
_UNINDEXED_CHUNK = """
SELECT rowid AS seq, article_id, title, body_text, hash(title, content_hash) AS signature
FROM articles a
WHERE rowid >= ? AND rowid < ?
  AND NOT EXISTS (SELECT 1 FROM search_docs d WHERE d.article_id = a.article_id)
"""

# Document ids after the highest, in rowid order, for the staged articles that no load has
# indexed since their chunk was read.
_STAGED_DOCS = """
CREATE OR REPLACE TEMP TABLE search_staged AS
SELECT ((SELECT coalesce(max(doc_id), 0) FROM search_docs) + row_number() OVER (ORDER BY seq))
           ::INTEGER AS doc_id,
       seq, article_id, terms, signature
FROM search_staged_in s
WHERE NOT EXISTS (SELECT 1 FROM search_docs d WHERE d.article_id = s.article_id)
"""
# The table rewritten in term order, with its columns' types (the empty copy), in the old
# one's place, with the NOT NULL that a copy does not keep.
_LOAD_POSTINGS = [
    "CREATE TABLE search_postings_sorted AS FROM search_postings LIMIT 0",
    """
    INSERT INTO search_postings_sorted
    FROM (
        FROM search_postings
        UNION ALL
        SELECT p.term_id, s.doc_id, p.tf, p.positions
        FROM read_parquet($files) p JOIN search_staged s ON p.doc_id = s.seq
    )
    ORDER BY term_id, doc_id
    """,
    "DROP TABLE search_postings",
    "ALTER TABLE search_postings_sorted RENAME TO search_postings",
    *(
        f"ALTER TABLE search_postings ALTER COLUMN {c} SET NOT NULL"
        for c in ("term_id", "doc_id", "tf", "positions")
    ),
]


@dataclass(frozen=True)
class IndexCounts:
    articles: int
    terms: int
    postings: int


def segmented(chunk: pa.Table) -> pa.Table:
    """A chunk of articles (seq, article_id, title, body_text, signature) with their titles'
    and bodies' index terms in place of the texts."""
    bare = chunk.drop_columns(["title", "body_text"])
    for name, column in (("title_terms", "title"), ("body_terms", "body_text")):
        terms = [index_terms(text or "") for text in chunk[column].to_pylist()]
        bare = bare.append_column(name, pa.array(terms, pa.string()))
    return bare


@functools.cache
def _worker_db() -> duckdb.DuckDBPyConnection:
    """A worker's in-memory database of the file's schema, made once per process; one thread,
    as the processes are the parallelism."""
    con = connect(threads=1)
    migrate(con)
    return con


def stage_chunk(chunk: pa.Table, folder: Path) -> pa.Table:
    """Segment a chunk of articles and write its postings to a Parquet file in `folder`, each
    article's keyed by its rowid; return its documents (seq, article_id, terms, signature).
    Runs in a worker process."""
    con = _worker_db()
    con.register("search_chunk", segmented(chunk))
    try:
        target = folder / f"{chunk['seq'][0].as_py():012d}.parquet"
        query = postings_of("SELECT seq AS doc_id, title_terms, body_terms FROM search_chunk")
        # COPY takes no parameter for its target: the path as a quoted SQL string.
        quoted = str(target).replace("'", "''")
        con.execute(f"COPY ({query}) TO '{quoted}' (FORMAT parquet)")
        return (
            con.execute(
                f"SELECT seq, article_id, {DOC_LENGTH} AS terms, signature FROM search_chunk"
            )
            .arrow()
            .read_all()
        )
    finally:
        con.unregister("search_chunk")


def load_staged(con: duckdb.DuckDBPyConnection, folder: Path, docs: pa.Table) -> int:
    """Load the staged documents and their postings (call in a transaction); returns how many
    documents were added."""
    con.register("search_staged_in", docs)
    try:
        con.execute(_STAGED_DOCS)
        row = con.execute("SELECT count(*) FROM search_staged").fetchone()
        added = int(row[0]) if row else 0
        if added:  # none when loads (or another bulk index) indexed them all meanwhile
            con.execute(
                "INSERT INTO search_docs "
                "SELECT doc_id, article_id, terms, signature FROM search_staged"
            )
            files = sorted(str(path) for path in folder.glob("*.parquet"))
            for statement in _LOAD_POSTINGS if files else ():
                con.execute(statement, {"files": files} if "$files" in statement else None)
    finally:
        con.unregister("search_staged_in")
        con.execute("DROP TABLE IF EXISTS search_staged")
    return added


def index_unindexed(
    db: Database,
    chunk_size: int = 2000,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 1,
) -> int:
    """Index every stored article the index lacks; returns how many. `progress(done, total)`
    after each chunk. More than one chunk is indexed in bulk, segmented in `workers`
    processes when more than one."""
    with db.session() as con:
        total = unindexed_count(con)
        row = con.execute("SELECT coalesce(max(rowid), -1) FROM articles").fetchone()
        end = int(row[0]) + 1 if row else 0

    def chunks() -> Iterator[pa.Table]:
        for start in range(0, end, chunk_size):
            with db.session() as con:
                chunk = con.execute(_UNINDEXED_CHUNK, [start, start + chunk_size]).arrow()
                table = chunk.read_all()
            if table.num_rows:
                yield table

    def report(done: int) -> None:
        if progress:
            progress(done, max(done, total))

    if total <= chunk_size:
        done = 0
        for chunk in chunks():
            with db.session() as con, transaction(con):
                write_terms(con, segmented(chunk))
            done += chunk.num_rows
            report(done)
        return done
    return _index_in_bulk(db, chunks(), workers, report)


def _index_in_bulk(
    db: Database, chunks: Iterable[pa.Table], workers: int, report: Callable[[int], None]
) -> int:
    with ExitStack() as stack:
        folder = Path(stack.enter_context(_staging_folder(db)))
        if workers > 1:
            ensure_forkserver()
            pool = stack.enter_context(
                ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver"))
            )
            staged = _staged_ahead(pool, chunks, folder, workers)
        else:
            staged = (stage_chunk(chunk, folder) for chunk in chunks)
        docs, done = [], 0
        for table in staged:
            docs.append(table)
            done += table.num_rows
            report(done)
        if not docs:
            return 0
        with db.session() as con, transaction(con):
            return load_staged(con, folder, pa.concat_tables(docs))


def _staging_folder(db: Database) -> tempfile.TemporaryDirectory[str]:
    """A folder for this process's staged postings, beside the database: room for its index is
    there, where a RAM-backed /tmp may lack it. Those that a killed bulk index left behind
    (named for its process, now gone) are removed first."""
    prefix = f".{db.path.name}.index-"
    for left in db.path.parent.glob(f"{prefix}*-*"):
        pid = left.name.removeprefix(prefix).split("-", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(left, ignore_errors=True)
    return tempfile.TemporaryDirectory(prefix=f"{prefix}{os.getpid()}-", dir=db.path.parent)


def _staged_ahead(
    pool: ProcessPoolExecutor, chunks: Iterable[pa.Table], folder: Path, ahead: int
) -> Iterator[pa.Table]:
    """The chunks staged in the pool, in order, with at most `ahead` chunks waiting beyond the
    ones in work (the pool's own map would read every chunk into memory first)."""
    queued: deque[Future[pa.Table]] = deque()
    for chunk in chunks:
        queued.append(pool.submit(stage_chunk, chunk, folder))
        if len(queued) > ahead:
            yield queued.popleft().result()
    while queued:
        yield queued.popleft().result()


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
    articles = index_unindexed(db, chunk_size, progress, workers)
    with db.session() as con:
        terms = con.execute("SELECT count(DISTINCT term_id) FROM search_postings").fetchone()
        postings = con.execute("SELECT count(*) FROM search_postings").fetchone()
    return IndexCounts(articles, int(terms[0]) if terms else 0, int(postings[0]) if postings else 0)
