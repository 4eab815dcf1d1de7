"""Writes of the full-text index: `search_docs` and `search_postings`.

Called inside every article load (tasks/storage/load.py, `write_articles`) with the batch's
articles; bulk.py indexes what no load did (`newsflow reindex`) with the same SQL. The work is
set-based: each article's terms travel as one space-separated string (the extraction worker's
where it segmented this very body), and DuckDB splits, unnests, counts and inserts them in a
few statements — no Python loop per term.

A term's id is DuckDB's 64-bit `hash(term)`, which the query macros compute alike: no
dictionary to look up or grow under the writer's lock. (A collision would merge two terms'
postings; among five million distinct terms its odds are below one in a million.) An article
indexed with the same title and body already is skipped; one whose text changed loses its old
postings first.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import duckdb
import pyarrow as pa

from newsflow.schemas.models import Article
from newsflow.tasks.search.segment import index_terms

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


# A document's length, of a row with title_terms and body_terms: its terms, the title's counted
# TITLE_WEIGHT times.
DOC_LENGTH = (
    f"({TITLE_WEIGHT} * {_term_count('title_terms')} + {_term_count('body_terms')})::INTEGER"
)
_NEW_DOCS = f"""
INSERT INTO search_docs
SELECT b.doc_id, b.article_id, {DOC_LENGTH}, b.signature
FROM search_batch b JOIN search_batch_in USING (position)
"""


def _latin_pairs(terms: str, first: str, weight: str) -> str:
    """The pair terms of a list (the stored macro search_pairs, migration 11), each at its
    first term's place (`first` is the list's first place)."""
    return f"""
    SELECT doc_id, unnest(search_pairs({terms})),
           unnest(range({first}, {first} + len({terms}) - 1)), {weight}
    FROM split"""


def postings_of(source: str) -> str:
    """The query of the postings of `source`, a query of (doc_id, title_terms, body_terms), in
    search_postings' columns and types: the writer's, and a bulk index's workers' (bulk.py).

    One posting per (term, document) with its places: the title's terms from 0, the body's
    from one past the title's end, so that no phrase spans the two. Adjacent Latin terms also
    post as a pair (a space inside: no single term's id), so that a phrase of common English
    words is looked up, not joined from their many places; Chinese phrases' bigrams are rare
    enough to join. Pairs count in no document's length and no score, only in phrases. Terms
    are hashed before grouping: grouping by integers is cheaper than by strings."""
    return f"""
WITH split AS (
    SELECT doc_id, string_split(title_terms, ' ') AS title, string_split(body_terms, ' ') AS body
    FROM ({source})
)
SELECT term_id, doc_id::INTEGER AS doc_id, least(sum(weight), 65535)::USMALLINT AS tf,
       list(place)::INTEGER[] AS positions
FROM (
    SELECT hash(term) AS term_id, doc_id, weight, place
    FROM (
        SELECT doc_id, unnest(title) AS term, unnest(range(len(title))) AS place,
               {TITLE_WEIGHT} AS weight
        FROM split
        UNION ALL
        SELECT doc_id, unnest(body), unnest(range(len(title) + 1, len(title) + 1 + len(body))), 1
        FROM split
        UNION ALL{_latin_pairs("title", "0", str(TITLE_WEIGHT))}
        UNION ALL{_latin_pairs("body", "len(title) + 1", "1")}
    )
    WHERE term <> '' AND term IS NOT NULL
)
GROUP BY term_id, doc_id
"""


# In term order, so that a query's scan skips the row groups whose term range misses its terms.
_POSTINGS = (
    "INSERT INTO search_postings"
    + postings_of(
        "SELECT doc_id, title_terms, body_terms FROM search_batch JOIN search_batch_in "
        "USING (position)"
    )
    + "ORDER BY term_id, doc_id"
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


def write_terms(con: duckdb.DuckDBPyConnection, batch: pa.Table) -> int:
    """Index a table of (article_id, title_terms, body_terms) of stored articles."""
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
            con.execute(_POSTINGS)
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
