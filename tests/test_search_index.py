"""The index of an article does not depend on the path that wrote it: a load with the
extraction workers' terms, a load without them and `newsflow reindex` (a chunk at a time, or in
bulk, in this process or in worker processes) give the same postings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

from newsflow.schemas.ddl import _MATCHES_10
from newsflow.schemas.models import Article, Derived, FeedBatch, FeedCheck, FeedEntry
from newsflow.tasks.extraction.derive import Derivation, article_terms
from newsflow.tasks.extraction.extract import extract_article
from newsflow.tasks.extraction.normalize import build_feed_article
from newsflow.tasks.search.bulk import index_unindexed, rebuild_index
from newsflow.tasks.search.segment import index_terms
from newsflow.tasks.storage.load import load_batch
from newsflow.tasks.storage.runs import start_run
from newsflow.tasks.storage.store import Database
from tests.search_corpus import corpus_batch, load_corpus

FEED = "https://news.example/feed.xml"
URL = "https://news.example/2025/hk-stablecoin.html"
TITLE = "香港立法会通过稳定币条例草案"
PARAGRAPHS = [
    "香港立法会周三三读通过《稳定币条例草案》，发行以法定货币为锚的稳定币须向金管局申领牌照。",
    "条例将于今年八月生效，金管局表示首批牌照数量有限，申请人须证明储备资产足额且可随时赎回。",
    "业界认为，条例为数字资产在香港的发展提供了清晰框架，也为跨境支付带来新的选择。",
]
# The <h1> inside <article>: trafilatura keeps it as the text's first line, which the
# article's body (normalize.page_body) drops.
PAGE = (
    f"<html><head><title>{TITLE}</title></head><body><article><h1>{TITLE}</h1>"
    + "".join(f"<p>{p * 2}</p>" for p in PARAGRAPHS)
    + "</article></body></html>"
)


def titled_page_article() -> tuple[Article, Derived]:
    """The article a feed item makes of PAGE, and what the extraction worker derived."""
    page = extract_article(URL, PAGE, Derivation())
    entry = FeedEntry(feed_url=FEED, link=URL, guid=URL, title=TITLE)
    article, _ = build_feed_article(
        entry, page, source="news", feed_title=None, language=None, feed_categories=[],
        tz=ZoneInfo("Asia/Shanghai"),
    )  # fmt: skip
    assert page.text.startswith(TITLE + "\n") and not article.body_text.startswith(TITLE)
    assert page.derived is not None
    return article, page.derived


def postings(db: Database) -> list[tuple[str, int, int, int, list[int]]]:
    with db.session() as con:
        return con.execute(
            "SELECT d.article_id, d.terms, p.term_id, p.tf, list_sort(p.positions) "
            "FROM search_postings p JOIN search_docs d USING (doc_id) ORDER BY ALL"
        ).fetchall()


def in_term_order(db: Database) -> bool:
    with db.session() as con:
        stored = con.execute("SELECT term_id, doc_id FROM search_postings").fetchall()
    return stored == sorted(stored)


def test_the_worker_terms_are_taken_only_for_the_body_they_were_made_from() -> None:
    article, made = titled_page_article()
    assert article_terms([article], {article.article_id: made}) == [made.body_terms]
    assert made.body_terms == index_terms(article.body_text)
    edited = article.model_copy(update={"body_text": article.body_text + "\n更正：八月改为九月。"})
    assert article_terms([edited], {article.article_id: made}) == [index_terms(edited.body_text)]


def test_a_loaded_article_and_a_reindexed_one_have_the_same_postings(tmp_path: Path) -> None:
    named, derived = corpus_batch()
    article, made = titled_page_article()
    articles = [*named.values(), article]
    derived[article.article_id] = made
    by_path = {}
    for path, worker in (("workers", derived), ("writer", {})):
        db = Database(tmp_path / f"{path}.duckdb")
        check = FeedCheck(url=FEED, ok=True, status_code=200, entries_seen=len(articles))
        batch = FeedBatch(feed_url=FEED, check=check, articles=articles, derived=worker)
        load_batch(db, start_run(db, "test", {}), batch)
        loaded = postings(db)
        assert in_term_order(db)
        # One chunk as a load writes it; in bulk here; in bulk in two worker processes.
        rebuilds = ((2000, 1), (7, 1)) if path == "workers" else ((5, 2),)
        for chunk_size, workers in rebuilds:
            counts = rebuild_index(db, chunk_size, workers=workers)
            assert counts.articles == len(articles) and counts.postings == len(loaded)
            assert postings(db) == loaded, (path, chunk_size, workers)
            assert in_term_order(db), (path, chunk_size, workers)
        by_path[path] = loaded
    assert by_path["workers"] == by_path["writer"]
    assert {row[0] for row in by_path["workers"]} == {a.article_id for a in articles}


def load(db: Database, articles: list[Article]) -> None:
    check = FeedCheck(url=FEED, ok=True, status_code=200, entries_seen=len(articles))
    batch = FeedBatch(feed_url=FEED, check=check, articles=articles)
    load_batch(db, start_run(db, "test", {}), batch)


def article(n: int, title: str, body: str) -> Article:
    url = f"https://news.example/{n}"
    return Article(article_id=f"{n:016x}", url=url, canonical_url=url, title=title, body_text=body)


def test_a_phrase_matches_its_terms_in_consecutive_places_only(tmp_path: Path) -> None:
    db = Database(tmp_path / "news.duckdb")
    load(db, [
        article(1, "数字人民币试点扩大", "The central bank said so."),
        article(2, "报道", "数字人与人民币无关。The bank of the central district."),
        article(3, "Central bank notes", "数字人民币"),
        article(4, "报道", "The central banking rules."),
    ])  # fmt: skip
    with db.session() as con:

        def found(query: str) -> list[str]:
            rows = con.execute("SELECT article_id FROM search_matches(?) ORDER BY 1", [query])
            return [r[0][-1] for r in rows.fetchall()]

        assert found('"数字人民币"') == ["1", "3"]
        assert found("数字人民币") == ["1", "2", "3"]  # all four bigrams, in any places
        assert found('"central bank"') == ["1", "3"]  # the title's terms count, stemmed
        assert found('"bank central"') == ["2"]  # "of the" are stopwords: they take no place
        assert found('"central bank" -"数字人民币"') == []
        assert found('"人民币 central"') == []  # a title's end and a body's start are apart
        # Latin phrases are looked up by their adjacent pairs' postings (migration 11).
        assert found('"central bank notes"') == ["3"]
        assert found('"bank said"') == ["1"]
        assert found('"notes 数字人民币"') == []
        # A negative phrase excludes where it is a phrase (migration 12), a negative word where
        # its terms are, adjacent or not.
        assert found('bank -"central bank"') == ["2"]
        assert found('人民币 -"数字人民币"') == ["2"]
        assert found("人民币 -数字人民币") == []
        assert found("bank -central") == []
        assert found('"central bank" -"bank said"') == ["3"]
        pairs = "SELECT count(*) FROM search_postings WHERE term_id = hash('central bank')"
        assert con.execute(pairs).fetchone() == (2,)  # 1 and 3; 4 has 'central banking'


def test_latin_phrases_match_as_the_join_of_their_words_places_did(tmp_path: Path) -> None:
    """Migration 11's pair lookup against migration 10's join of places, on every two- and
    three-word run of the search corpus's English titles."""
    db = Database(tmp_path / "news.duckdb")
    articles = load_corpus(db)
    with db.session() as con:
        con.execute(_MATCHES_10.replace("MACRO search_matches(", "MACRO places_matches(", 1))
        titles = [r[0] for r in con.execute("SELECT title FROM articles").fetchall()]
        words = [t.split() for t in titles if t.isascii()]
        phrases = {
            '"' + " ".join(w[i : i + n]) + '"'
            for w in words
            for n in (2, 3)
            for i in range(len(w) - n + 1)
        }
        matched = 0
        for phrase in sorted(phrases):
            got = con.execute(
                "SELECT article_id, score FROM search_matches(?) ORDER BY 1", [phrase]
            )
            rows = got.fetchall()
            want = con.execute(
                "SELECT article_id, score FROM places_matches(?) ORDER BY 1", [phrase]
            )
            assert rows == want.fetchall(), phrase
            matched += bool(rows)
    assert len(phrases) > 100 and matched > 100, (len(phrases), matched, len(articles))


def test_articles_a_load_indexes_during_a_bulk_index_keep_the_loads_entry(tmp_path: Path) -> None:
    db = Database(tmp_path / "news.duckdb")
    first = [article(n, f"Stablecoin report {n}", f"区块链先导区 report {n}") for n in range(12)]
    load(db, first)
    # While the index is rebuilt a run loads: an article already read and staged, edited, and
    # a new one. Their loads index them; the rebuild's final load must not add its own.
    with db.session() as con:  # the first chunk is read by rowid
        row = con.execute("SELECT article_id FROM articles WHERE rowid = 0").fetchone()
    assert row is not None
    n = int(row[0], 16)
    edited = article(n, f"Stablecoin report {n}", "数字人民币 revised text")
    new = article(12, "New report", "central bank digital currency")

    def a_run_loads(done: int, total: int) -> None:
        if done == 5:  # the first chunk is staged
            load(db, [edited, new])

    counts = rebuild_index(db, chunk_size=5, progress=a_run_loads)
    assert counts.articles == 11  # all but the edited one, which its load indexed
    reference = Database(tmp_path / "reference.duckdb")
    load(reference, [a if a.article_id != edited.article_id else edited for a in first] + [new])
    assert postings(db) == postings(reference)
    assert in_term_order(db)
    assert not list(tmp_path.glob(".news.duckdb.index-*"))  # the staged postings are gone


def test_a_bulk_index_whose_articles_were_all_indexed_meanwhile_adds_none(tmp_path: Path) -> None:
    db = Database(tmp_path / "news.duckdb")
    load(db, [article(n, f"Report {n}", f"数字人民币 report {n}") for n in range(12)])
    loaded = postings(db)

    def another_indexes_them_all(done: int, total: int) -> None:
        if done == total:  # all staged, not yet loaded: another process indexes them first
            assert index_unindexed(db) == 12

    assert rebuild_index(db, chunk_size=5, progress=another_indexes_them_all).articles == 0
    assert postings(db) == loaded and in_term_order(db)


def test_a_bulk_index_removes_what_a_killed_one_left_and_only_that(tmp_path: Path) -> None:
    db = Database(tmp_path / "news.duckdb")
    load(db, [article(n, f"Report {n}", f"数字人民币 report {n}") for n in range(12)])
    finished = subprocess.Popen([sys.executable, "-c", ""])
    finished.wait()  # its process id runs nothing now, as a killed bulk index's
    killed = tmp_path / f".news.duckdb.index-{finished.pid}-abcd"
    running = tmp_path / f".news.duckdb.index-{os.getppid()}-abcd"  # another bulk index, live
    for folder in (killed, running):
        folder.mkdir()
        (folder / "000000000000.parquet").write_bytes(b"staged")
    rebuild_index(db, chunk_size=5)
    assert not killed.exists() and running.exists()
