"""Loading backfill batches: unchanged rows are left alone, copies named by their source."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from newsflow.schemas.ddl import LATEST_VERSION
from newsflow.schemas.models import Article, ArticleBatch, article_id_for
from newsflow.tasks.extraction.normalize import content_hash
from newsflow.tasks.storage.load import load_articles
from newsflow.tasks.storage.runs import start_run
from newsflow.tasks.storage.store import Database


def post(n: int, body: str = "", **kw: object) -> Article:
    url = f"https://blog.example/p/{n}"
    text = body or f"第{n}篇。"
    values: dict[str, object] = {
        "article_id": article_id_for(url),
        "url": url,
        "canonical_url": url,
        "title": f"Post {n}",
        "published_at": datetime(2023, 3, n, tzinfo=UTC),
        "tags": ["a", "b"],
        "body_text": text,
        "body_source": "post",
        "content_hash": content_hash(text),
        "extra": {"layout": "post", "n": n},
    }
    values.update(kw)
    return Article(**values)  # type: ignore[arg-type]


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return Database(tmp_path / "news.duckdb", lock_timeout=10)


def test_second_load_counts_duplicates_and_writes_nothing(db: Database) -> None:
    run = start_run(db, "test", {})
    first = load_articles(db, run, ArticleBatch(articles=[post(1), post(2)]))
    last_seen = "SELECT last_seen_at FROM articles WHERE article_id = ?"
    with db.session() as con:
        before = con.execute(last_seen, [post(2).article_id]).fetchall()
    again = load_articles(db, run, ArticleBatch(articles=[post(1), post(2), post(3)]))
    with db.session() as con:
        after = con.execute(last_seen, [post(2).article_id]).fetchall()
    retitled = load_articles(db, run, ArticleBatch(articles=[post(1, title="Post 1, corrected")]))
    retagged = load_articles(db, run, ArticleBatch(articles=[post(2, tags=["a"])]))

    assert (first.articles_new, first.articles_updated, first.duplicates) == (2, 0, 0)
    assert (again.articles_new, again.articles_updated, again.duplicates) == (1, 0, 2)
    assert after == before  # not written again
    assert (retitled.articles_new, retitled.articles_updated, retitled.duplicates) == (0, 1, 0)
    # As in ingest, only a new title or text counts as an update; the new tags are written.
    assert (retagged.articles_new, retagged.articles_updated, retagged.duplicates) == (0, 0, 1)
    with db.session() as con:
        total, distinct = con.execute(
            "SELECT count(*), count(DISTINCT article_id) FROM articles"
        ).fetchone()  # type: ignore[misc]
        tags = con.execute("SELECT tags FROM articles WHERE article_id = ?", [post(2).article_id])
        assert tags.fetchone() == (["a"],)
        assert con.execute("SELECT count(*) FROM article_feeds").fetchone() == (0,)
    assert total == distinct == 3


@pytest.mark.parametrize("copy_first", [True, False], ids=["copy-first", "original-first"])
@pytest.mark.parametrize("one_batch", [True, False], ids=["one-batch", "two-batches"])
def test_a_copy_that_names_its_original_keeps_it(
    db: Database, copy_first: bool, one_batch: bool
) -> None:
    original = post(1, body="同一篇通稿。")
    copy = post(2, body="同一篇通稿。", duplicate_of=original.article_id)
    order = [copy, original] if copy_first else [original, copy]
    run = start_run(db, "test", {})
    batches = [order] if one_batch else [[a] for a in order]
    for articles in batches:
        load_articles(db, run, ArticleBatch(articles=articles))
    with db.session() as con:
        rows = dict(con.execute("SELECT article_id, duplicate_of FROM articles").fetchall())
    assert rows == {original.article_id: None, copy.article_id: original.article_id}


def test_migration_4_adds_body_source_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    from newsflow.schemas.ddl import MIGRATIONS, SCHEMA_VERSION_DDL

    con = duckdb.connect(str(path))
    con.execute(SCHEMA_VERSION_DDL)
    con.execute(MIGRATIONS[0][2])
    con.execute("INSERT INTO schema_version (version, name) VALUES (1, 'core tables')")
    con.execute(
        "INSERT INTO articles (article_id, url, canonical_url, title, first_seen_at, "
        "last_seen_at) VALUES ('x', 'https://a/', 'https://a/', 't', now(), now())"
    )
    con.close()
    db = Database(path, lock_timeout=10)
    with db.session() as con:
        assert con.execute("SELECT max(version) FROM schema_version").fetchone() == (
            LATEST_VERSION,
        )
        assert con.execute("SELECT title, body_source FROM articles").fetchall() == [("t", None)]
