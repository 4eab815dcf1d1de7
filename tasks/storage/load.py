"""Load: feeds' batches, or a backfill's, written in one short transaction across the tables.

Every write to the database goes through tasks/storage, in bulk: the modules there hold one
table group each (articles.py, feed_health.py, runs.py, tags.py); this one puts batches'
parts together. A write is one transaction, of one batch or of several feeds' together, so a
killed run leaves whole batches or nothing of them (docs/ARCHITECTURE.md, "data flow").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import duckdb

from newsflow.schemas.models import Article, ArticleBatch, FeedBatch, RunCounts, StagedRef
from newsflow.tasks.coverage.tag import ArticleTags, Tagger, load_tagger
from newsflow.tasks.dedup.fingerprint import Fingerprint
from newsflow.tasks.dedup.known import unique_articles
from newsflow.tasks.dedup.layers import LayerCounts, cluster_new_articles, stored_article_ids
from newsflow.tasks.extraction.derive import article_facts, article_terms
from newsflow.tasks.search.index import index_articles
from newsflow.tasks.storage.articles import (
    dates_differ,
    record_feed_refs,
    restate_dates,
    stored_unchanged,
    upsert_articles,
)
from newsflow.tasks.storage.feed_health import CheckRow, record_feed_checks
from newsflow.tasks.storage.runs import record_errors, record_loaded_batches
from newsflow.tasks.storage.store import Database
from newsflow.tasks.storage.tags import write_tags
from newsflow.tasks.storage.transaction import transaction


@dataclass(frozen=True)
class FeedLoad:
    """One feed's batch as a load writes it: with the feed's name and source for its `feeds`
    row and, for a staged batch, what `loaded_batches` records of it."""

    batch: FeedBatch
    name: str | None = None
    source: str | None = None
    staged: StagedRef | None = None


class _Facts(NamedTuple):
    """What a load computes of its articles before it takes the lock (pure CPU work: other
    writers wait less): each article once, its tags, fingerprint and index terms."""

    articles: list[Article]
    tags: list[ArticleTags]
    prints: list[Fingerprint]
    terms: list[str]

    @classmethod
    def of(cls, batches: Sequence[ArticleBatch], tagger: Tagger) -> _Facts:
        articles = unique_articles(a for b in batches for a in b.articles)
        derived = {k: v for b in batches for k, v in b.derived.items()}
        tags, prints = article_facts(articles, derived, tagger)
        return cls(articles, tags, prints, article_terms(articles, derived))


def load_batch(
    db: Database,
    run_id: str,
    batch: FeedBatch,
    *,
    name: str | None = None,
    source: str | None = None,
    default_interval: float = 1800.0,
    tagger: Tagger | None = None,
    staged: StagedRef | None = None,
) -> RunCounts:
    """Write one feed's contribution in a transaction of its own (load_batches)."""
    counts, _ = load_batches(
        db,
        run_id,
        [FeedLoad(batch, name, source, staged)],
        default_interval=default_interval,
        tagger=tagger,
    )
    return counts


def load_batches(
    db: Database,
    run_id: str,
    loads: Sequence[FeedLoad],
    *,
    default_interval: float = 1800.0,
    tagger: Tagger | None = None,
) -> tuple[RunCounts, list[FeedLoad]]:
    """Write feeds' batches in one transaction; returns what they added, and the loads
    written (a staged batch loaded before is not: it adds nothing).

    Several feeds a transaction, because each statement's fixed cost and each scan of the
    stored tables (dedup's lookups, the index's) is then paid once for all of them: a
    2,000-page run's load took 2.3 times less CPU in groups of ~6 feeds than feed by feed
    (docs/ARCHITECTURE.md, "data flow"). A killed load still leaves whole batches or none.

    New and updated articles are tagged for coverage analysis (default: the packaged lexicon
    and gazetteer), fingerprinted for dedup and segmented for search: by the extraction
    workers as a rule (`batch.derived`), here before the lock is taken otherwise. The tags are
    written with the articles, so a batch's articles never exist untagged. Within the group,
    dedup takes the articles in order of publication, whichever feed carried them.
    """
    tagger = tagger or load_tagger()
    facts = _Facts.of([f.batch for f in loads], tagger)
    with db.session() as con, transaction(con):
        staged = [(f.staged, f.batch.feed_url) for f in loads if f.staged is not None]
        fresh = record_loaded_batches(con, staged, run_id)
        written = [f for f in loads if f.staged is None or f.staged.batch_id in fresh]
        if not written:
            return RunCounts(), []
        if len(written) < len(loads):  # another loader took some of them meanwhile
            facts = _Facts.of([f.batch for f in written], tagger)
        counts, new = write_articles(con, run_id, [f.batch for f in written], facts)
        carried = _first_carriers(written)
        new_in = Counter(carried[a] for a in new)
        for i, f in enumerate(written):
            f.batch.check.entries_new = new_in[i]
        record_feed_checks(
            con,
            [CheckRow(f.batch.check, f.name, f.source) for f in written],
            default_interval=default_interval,
        )
    repeats = sum(len(f.batch.articles) for f in written) - len(facts.articles)
    for f in written:
        counts += poll_counts(f.batch)
    return counts + RunCounts(duplicates=repeats, dup_url=repeats), written


def _first_carriers(loads: Sequence[FeedLoad]) -> dict[str, int]:
    """Which of the loads (its index) carries each article first: the one it is new for."""
    first: dict[str, int] = {}
    for i, f in enumerate(loads):
        for a in f.batch.articles:
            first.setdefault(a.article_id, i)
    return first


def poll_counts(batch: FeedBatch) -> RunCounts:
    """What polling the feed itself counts for: checked, failed, unchanged, entries seen."""
    return RunCounts(
        feeds_checked=1,
        feeds_failed=0 if batch.check.ok else 1,
        feeds_not_modified=1 if batch.check.status_code == 304 else 0,
        entries_seen=batch.check.entries_seen,
    )


def load_articles(
    db: Database, run_id: str, batch: ArticleBatch, tagger: Tagger | None = None
) -> RunCounts:
    """Write a batch that polled no feed (a backfill's) in one transaction, tagged as
    load_batches tags.

    Articles stored with the same values already are not written (or tagged) again and count
    as duplicates, as do repeats within the batch, so a second backfill of the same archive
    reports nothing new or updated.
    """
    articles = unique_articles(batch.articles)
    with db.session() as con:
        unchanged = stored_unchanged(con, articles)
        if batch.restated_dates:
            unchanged -= dates_differ(con, articles)
    changed = batch.model_copy(
        update={
            "articles": [a for a in articles if a.article_id not in unchanged],
            "seen_again": [
                *batch.seen_again,
                *((a.article_id, a.guid) for a in articles if a.article_id in unchanged),
            ],
        }
    )
    facts = _Facts.of([changed], tagger or load_tagger())
    with db.session() as con, transaction(con):
        counts, _ = write_articles(con, run_id, [changed], facts)
    repeats = len(batch.articles) - len(articles)
    return counts + RunCounts(entries_seen=batch.entries_seen, duplicates=repeats, dup_url=repeats)


def write_articles(
    con: duckdb.DuckDBPyConnection, run_id: str, batches: Sequence[ArticleBatch], facts: _Facts
) -> tuple[RunCounts, set[str]]:
    """The batches' articles (`facts.articles`: each once) with their stories, their tags,
    feed refs and errors; call inside a transaction. Returns the counts and the ids of the
    articles that were new."""
    ids = [a.article_id for a in facts.articles]
    stored = stored_article_ids(con, ids)
    layers = cluster_new_articles(con, facts.articles, facts.prints, stored)
    new, updated, unchanged = upsert_articles(con, facts.articles)
    restated = {a.article_id for b in batches if b.restated_dates for a in b.articles}
    if restated:
        restate_dates(con, [a for a in facts.articles if a.article_id in restated])
    index_articles(con, facts.articles, facts.terms)
    write_tags(con, facts.tags, new=updated + unchanged == 0)
    record_feed_refs(
        con,
        [
            (b.feed_url, article_id, guid)
            for b in batches
            if b.feed_url
            for article_id, guid in [*((a.article_id, a.guid) for a in b.articles), *b.seen_again]
        ],
    )
    record_errors(con, run_id, [e for b in batches for e in b.errors])
    counts = RunCounts(
        pages_downloaded=sum(b.pages_downloaded for b in batches),
        articles_new=new,
        articles_updated=updated,
        errors=sum(len(b.errors) for b in batches),
        **duplicate_counts(batches, unchanged, layers),
    )
    return counts, set(ids) - stored


def duplicate_counts(
    batches: Sequence[ArticleBatch], unchanged: int, layers: LayerCounts
) -> dict[str, int]:
    """The `dup_*` counters of batches and their sum. URL duplicates are the entries seen
    again (but for those known by GUID alone) and the articles loaded again unchanged."""
    by_guid = sum(b.seen_again_by_guid for b in batches)
    counts = {
        "dup_url": sum(len(b.seen_again) for b in batches) - by_guid + unchanged,
        "dup_guid": by_guid,
        "dup_title": layers.title,
        "dup_body": layers.body,
        "dup_near": layers.near,
    }
    return {"duplicates": sum(counts.values()), **counts}
