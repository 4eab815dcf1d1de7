"""Load: a feed's or a backfill's batch written in one short transaction, across the tables.

Every write to the database goes through tasks/storage, in bulk: the modules there hold one
table group each (articles.py, feed_health.py, runs.py, tags.py); this one puts a batch's
parts together. A batch is one transaction, so a killed run leaves whole batches or nothing of
them (docs/ARCHITECTURE.md, "data flow").
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb

from newsflow.schemas.models import ArticleBatch, FeedBatch, RunCounts, StagedRef
from newsflow.tasks.coverage.tag import ArticleTags, Tagger, load_tagger
from newsflow.tasks.dedup.fingerprint import Fingerprint
from newsflow.tasks.dedup.known import unique_articles
from newsflow.tasks.dedup.layers import LayerCounts, cluster_new_articles
from newsflow.tasks.extraction.derive import article_facts, article_terms
from newsflow.tasks.search.index import index_articles
from newsflow.tasks.storage.articles import (
    dates_differ,
    record_feed_refs,
    restate_dates,
    stored_unchanged,
    upsert_articles,
)
from newsflow.tasks.storage.feed_health import record_feed_check
from newsflow.tasks.storage.runs import record_errors, record_loaded_batch
from newsflow.tasks.storage.store import Database
from newsflow.tasks.storage.tags import write_tags
from newsflow.tasks.storage.transaction import transaction


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
    """Write one feed's contribution in one transaction; returns what it added.

    New and updated articles are tagged for coverage analysis (default: the packaged lexicon
    and gazetteer), fingerprinted for dedup and segmented for search: by the extraction
    workers as a rule (`batch.derived`), here before the lock is taken otherwise. The tags are
    written with the articles, so a batch's articles never exist untagged. A `staged` batch is
    recorded as loaded in the same transaction, and one loaded before adds nothing (zero
    counts).
    """
    articles = unique_articles(batch.articles)
    tags, prints = article_facts(articles, batch.derived, tagger or load_tagger())
    terms = article_terms(articles, batch.derived)
    with db.session() as con, transaction(con):
        if staged is not None and not record_loaded_batch(con, staged, run_id, batch.feed_url):
            return RunCounts()
        counts = write_articles(
            con, run_id, batch.model_copy(update={"articles": articles}), tags, prints, terms
        )
        batch.check.entries_new = counts.articles_new
        record_feed_check(
            con, batch.check, name=name, source=source, default_interval=default_interval
        )
    repeats = len(batch.articles) - len(articles)
    return counts + poll_counts(batch) + RunCounts(duplicates=repeats, dup_url=repeats)


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
    load_batch tags.

    Articles stored with the same values already are not written (or tagged) again and count
    as duplicates, as do repeats within the batch, so a second backfill of the same archive
    reports nothing new or updated.
    """
    articles = unique_articles(batch.articles)
    with db.session() as con:
        unchanged = stored_unchanged(con, articles)
        if batch.restated_dates:
            unchanged -= dates_differ(con, articles)
    changed = [a for a in articles if a.article_id not in unchanged]
    again = [(a.article_id, a.guid) for a in articles if a.article_id in unchanged]
    tags, prints = article_facts(changed, batch.derived, tagger or load_tagger())
    terms = article_terms(changed, batch.derived)
    with db.session() as con, transaction(con):
        counts = write_articles(
            con,
            run_id,
            batch.model_copy(
                update={"articles": changed, "seen_again": [*batch.seen_again, *again]}
            ),
            tags,
            prints,
            terms,
        )
    repeats = len(batch.articles) - len(articles)
    return counts + RunCounts(entries_seen=batch.entries_seen, duplicates=repeats, dup_url=repeats)


def write_articles(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    batch: ArticleBatch,
    tags: Sequence[ArticleTags],
    prints: Sequence[Fingerprint],
    terms: Sequence[str],
) -> RunCounts:
    """A batch's articles (each once) with their stories, their tags, feed refs and errors;
    call inside a transaction. `prints` are the articles' fingerprints and `terms` their
    bodies' index terms, made before the lock was taken (pure CPU work: other writers wait
    less)."""
    layers = cluster_new_articles(con, batch.articles, list(prints))
    new, updated, unchanged = upsert_articles(con, batch.articles)
    if batch.restated_dates:
        restate_dates(con, batch.articles)
    index_articles(con, batch.articles, terms)
    write_tags(con, tags, new=updated + unchanged == 0)
    if batch.feed_url:
        refs = [(a.article_id, a.guid) for a in batch.articles] + list(batch.seen_again)
        record_feed_refs(con, batch.feed_url, refs)
    record_errors(con, run_id, batch.errors)
    return RunCounts(
        pages_downloaded=batch.pages_downloaded,
        articles_new=new,
        articles_updated=updated,
        errors=len(batch.errors),
        **duplicate_counts(batch, unchanged, layers),
    )


def duplicate_counts(batch: ArticleBatch, unchanged: int, layers: LayerCounts) -> dict[str, int]:
    """The `dup_*` counters of a batch and their sum. URL duplicates are the entries seen again
    (but for those known by GUID alone) and the articles loaded again unchanged."""
    counts = {
        "dup_url": len(batch.seen_again) - batch.seen_again_by_guid + unchanged,
        "dup_guid": batch.seen_again_by_guid,
        "dup_title": layers.title,
        "dup_body": layers.body,
        "dup_near": layers.near,
    }
    return {"duplicates": sum(counts.values()), **counts}
