"""Tags and fingerprints made where pages are extracted (tasks/extraction/derive.py): the rows
stored are the ones the loader's own computation gives, on the demo site through the real
process pool and on the dedup evaluation set over its two runs; results that do not fit the
article's text or the loader's tagger are not used."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from newsflow.demo.catalogue import demo_feeds_toml
from newsflow.demo.site import SiteServer
from newsflow.schemas.config import Settings, load_feeds_file
from newsflow.schemas.lexicon import DEFAULT_LEXICON
from newsflow.schemas.models import FeedBatch
from newsflow.tasks.coverage.tag import load_tagger
from newsflow.tasks.dedup.fingerprint import fingerprint_articles
from newsflow.tasks.extraction.derive import (
    Derivation,
    article_facts,
    derive,
    page_texts,
    text_key,
)
from newsflow.tasks.extraction.extract import Extractor, extract_article
from newsflow.tasks.fetching.fetch import Fetcher
from newsflow.tasks.pipeline.feed import FeedContext, collect_feed
from newsflow.tasks.storage.load import load_batch
from newsflow.tasks.storage.runs import start_run
from newsflow.tasks.storage.store import Database
from tests.conftest import make_settings
from tests.dedup_set import load_items, read_items
from tests.test_load import article

PAGES = Path(__file__).parent / "fixtures" / "pages"
# Every stored row but the instants of this load (first/last seen, keys dated by them).
COMPARED = {
    "articles": "SELECT * EXCLUDE (first_seen_at, last_seen_at) FROM articles",
    "article_keys": "SELECT * EXCLUDE (dated_at) FROM article_keys",
    "article_bands": "SELECT * FROM article_bands",
    "article_topics": "SELECT * FROM article_topics",
    "article_regions": "SELECT * FROM article_regions",
    "article_policy_docs": "SELECT * FROM article_policy_docs",
    "article_orgs": "SELECT * FROM article_orgs",
}


def stored_rows(db: Path) -> dict[str, list[tuple[object, ...]]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {
            name: sorted(con.execute(sql).fetchall(), key=repr) for name, sql in COMPARED.items()
        }
    finally:
        con.close()


def collect_and_load(settings: Settings, derive: Derivation | None) -> list[FeedBatch]:
    """The demo feeds through the per-feed pipeline, pages in a pool of two workers, and
    loaded as the ingest flow loads them."""
    feeds_file = load_feeds_file(settings.feeds_path)
    db = Database(settings.db_path, settings.lock_timeout)
    with (
        Fetcher(feeds_file.fetch_limits(settings.fetch), feeds_file.hosts) as fetcher,
        Extractor(2, settings.extract_deadline, derive=derive) as extractor,
    ):
        ctx = FeedContext(settings, feeds_file, db, fetcher, extractor)
        batches = [collect_feed(feed, None, ctx) for feed in feeds_file.feeds]
    run_id = start_run(db, "test", {})
    for feed, batch in zip(feeds_file.feeds, batches, strict=True):
        load_batch(db, run_id, batch, name=feed.name, source=feed.source, tagger=load_tagger())
    return batches


@pytest.mark.slow
def test_the_workers_tags_and_fingerprints_store_the_rows_the_loader_would(
    tmp_path: Path,
) -> None:
    by_workers = make_settings(tmp_path / "workers")
    by_loader = make_settings(tmp_path / "loader")
    with SiteServer() as site:
        for settings in (by_workers, by_loader):
            settings.db_path.parent.mkdir(parents=True)
            settings.feeds_path.write_text(demo_feeds_toml(site.base_url), encoding="utf-8")
        batches = collect_and_load(by_workers, Derivation())
        collect_and_load(by_loader, None)
    from_pages = [a for b in batches for a in b.articles if a.body_source == "page"]
    fitting = [
        a
        for b in batches
        for a in b.articles
        if a.article_id in b.derived
        and b.derived[a.article_id].text_key == text_key(a.title, a.body_text)
    ]
    # The demo feeds' titles agree with their pages': every page's work was done in a worker.
    assert from_pages and len(fitting) == len(from_pages)
    rows = stored_rows(by_workers.db_path)
    assert rows["articles"] and rows["article_topics"] and rows["article_bands"]
    assert rows == stored_rows(by_loader.db_path)


def test_the_dedup_set_clusters_the_same_either_way(tmp_path: Path) -> None:
    """Stories, copies and LSH bands over the set's two runs: exact and near copies included."""
    items = read_items()
    by_workers, by_loader = tmp_path / "workers.duckdb", tmp_path / "loader.duckdb"
    counts_workers = load_items(Database(by_workers), items, Derivation())
    counts_loader = load_items(Database(by_loader), items)
    assert counts_workers == counts_loader
    assert sum(c.dup_near + c.dup_body + c.dup_title for c in counts_loader) > 0
    assert stored_rows(by_workers) == stored_rows(by_loader)


def test_results_for_another_text_or_tagger_are_not_used(tmp_path: Path) -> None:
    tagger = load_tagger()
    lexicon = tmp_path / "lexicon.toml"
    extra = '[topics.mine]\nlabel = "mine"\nterms = ["正文"]\n\n'
    text = DEFAULT_LEXICON.read_text(encoding="utf-8")
    at = text.index("[topics.blockchain]")
    lexicon.write_text(text[:at] + extra + text[at:], encoding="utf-8")
    other_tagger = load_tagger(lexicon)
    assert other_tagger.version != tagger.version

    kept, retitled, rewritten = article(1), article(2), article(3)
    made = {
        kept.article_id: derive(kept.title, kept.body_text, tagger),
        retitled.article_id: derive("另一个标题", retitled.body_text, tagger),
        rewritten.article_id: derive(rewritten.title, "另一段正文，上海。", tagger),
    }
    articles = [kept, retitled, rewritten]
    for used_tagger in (tagger, other_tagger):
        tags, prints = article_facts(articles, made, used_tagger)
        assert tags == [used_tagger.tag(a.article_id, a.title, a.body_text) for a in articles]
        expected = fingerprint_articles(articles)
        assert [(p.title_key, p.body_key) for p in prints] == [
            (p.title_key, p.body_key) for p in expected
        ]
    assert any(t.topic == "mine" for t in article_facts([kept], made, other_tagger)[0][0].topics)


def test_a_page_gets_no_results_when_its_tagger_cannot_be_built(tmp_path: Path) -> None:
    """The page is extracted all the same; the loader then tags it (and reports the bad file)."""
    html = (PAGES / "zh-ministry-notice.html").read_text(encoding="utf-8")
    broken = Derivation(lexicon=tmp_path / "missing.toml")
    page = extract_article("https://example.test/a", html, broken)
    assert page.text and page.derived is None
    fine = extract_article("https://example.test/a", html, Derivation())
    assert fine.derived is not None and fine.derived.text_key == text_key(*page_texts(page))
