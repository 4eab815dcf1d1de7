"""Load and store: bulk idempotent upserts, copies, feed refs, runs, migrations, the lock."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from newsflow.schemas.config import Settings
from newsflow.schemas.ddl import LATEST_VERSION
from newsflow.schemas.errors import DatabaseError
from newsflow.schemas.models import (
    Article,
    FeedBatch,
    FeedCheck,
    IngestErrorRecord,
    RunCounts,
    StagedRef,
    article_id_for,
)
from newsflow.tasks.extraction.normalize import canonical_url, content_hash
from newsflow.tasks.storage.load import FeedLoad, load_batch, load_batches
from newsflow.tasks.storage.runs import finish_run, start_run
from newsflow.tasks.storage.store import WRITER_THREADS, Database
from newsflow.tasks.storage.targets import DatabaseTarget

FEED = "https://feeds.example/rss"


def article(n: int, body: str | None = None, **kw: object) -> Article:
    url = canonical_url(f"https://news.example/a/{n}")
    text = body if body is not None else f"正文第{n}段。数字人民币试点扩大。"
    values: dict[str, object] = {
        "article_id": article_id_for(url),
        "url": url,
        "canonical_url": url,
        "guid": f"guid-{n}",
        "feed_url": FEED,
        "title": f"标题 {n}",
        "published_at": datetime(2024, 3, n % 28 + 1, tzinfo=UTC),
        "categories": ["金融"],
        "body_text": text,
        "content_hash": content_hash(text),
        "extra": {"k": n},
    }
    values.update(kw)
    return Article(**values)  # type: ignore[arg-type]


def batch(articles: list[Article], **kw: object) -> FeedBatch:
    return FeedBatch(
        feed_url=FEED,
        check=FeedCheck(url=FEED, ok=True, status_code=200, entries_seen=len(articles)),
        articles=articles,
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return Database(tmp_path / "news.duckdb", lock_timeout=10)


def test_load_twice_adds_nothing(db: Database) -> None:
    run = start_run(db, "test", {})
    arts = [article(i) for i in range(50)]
    first = load_batch(db, run, batch(arts))
    second = load_batch(db, run, batch([article(i) for i in range(50)]))
    assert (first.articles_new, first.articles_updated) == (50, 0)
    assert (second.articles_new, second.articles_updated, second.duplicates) == (0, 0, 50)
    with db.session() as con:
        total, distinct = con.execute(
            "SELECT count(*), count(DISTINCT article_id) FROM articles"
        ).fetchone()  # type: ignore[misc]
        refs = con.execute("SELECT count(*) FROM article_feeds").fetchone()
        cats, extra = con.execute(
            "SELECT categories, extra->>'k' FROM articles WHERE guid = 'guid-3'"
        ).fetchone()  # type: ignore[misc]
    assert total == distinct == 50
    assert refs == (50,)
    assert cats == ["金融"] and extra == "3"


def test_first_seen_kept_and_content_refreshed(db: Database) -> None:
    run = start_run(db, "test", {})
    load_batch(db, run, batch([article(1)]))
    with db.session() as con:
        (first_seen,) = con.execute("SELECT first_seen_at FROM articles").fetchone()  # type: ignore[misc]
    counts = load_batch(db, run, batch([article(1, body="新的正文。", title="新标题")]))
    assert (counts.articles_new, counts.articles_updated) == (0, 1)
    with db.session() as con:
        row = con.execute("SELECT first_seen_at, title, body_text FROM articles").fetchone()
    assert row == (first_seen, "新标题", "新的正文。")


def test_an_updated_article_loses_the_tags_its_old_text_had(db: Database) -> None:
    # The first load of new articles skips the tag tables' deletes; a load that updates one
    # (beside a new one) must still replace its rows.
    run = start_run(db, "test", {})
    load_batch(db, run, batch([article(1, body="香港金管局发布稳定币发行人发牌制度。")]))

    def tagged(n: int) -> int:
        with db.session() as con:
            row = con.execute(
                "SELECT count(*) FROM article_topics t JOIN articles a USING (article_id) "
                "WHERE a.guid = ?",
                [f"guid-{n}"],
            ).fetchone()
        return row[0] if row else 0

    assert tagged(1) > 0
    counts = load_batch(db, run, batch([article(1, body="今日天气晴朗。"), article(2)]))
    assert (counts.articles_new, counts.articles_updated) == (1, 1)
    assert tagged(1) == 0
    assert tagged(2) > 0


WIRE = "中国人民银行今日发布公告称，数字人民币试点范围将在现有基础上再增加十个城市。"
OTHER = "香港证监会周四晚间宣布，已向两家虚拟资产交易平台批出牌照，允许其服务零售投资者。"


def test_identical_bodies_point_at_the_first_copy(db: Database) -> None:
    run = start_run(db, "test", {})
    load_batch(db, run, batch([article(1, body=WIRE)]))
    counts = load_batch(
        db, run, batch([article(2, body=WIRE.replace("，", "， ")), article(3, body=OTHER)])
    )
    assert (counts.duplicates, counts.dup_body) == (1, 1)
    with db.session() as con:
        rows = dict(con.execute("SELECT guid, duplicate_of FROM articles ORDER BY guid").fetchall())
    assert rows["guid-2"] == article_id_for(canonical_url("https://news.example/a/1"))
    assert rows["guid-1"] is None and rows["guid-3"] is None


def test_batch_records_errors_refs_and_feed_health(db: Database) -> None:
    run = start_run(db, "test", {})
    err = IngestErrorRecord(stage="download", url="https://x/1", kind="http_404", message="gone")
    seen = (article(9).article_id, "guid-9")
    load_batch(db, run, batch([article(9)]))
    load_batch(db, run, batch([], errors=[err], seen_again=[seen]), name="n", source="S")
    finish_run(db, run, RunCounts(articles_new=1))
    with db.session() as con:
        assert con.execute("SELECT run_id, kind FROM ingest_errors").fetchall() == [
            (run, "http_404")
        ]
        assert con.execute("SELECT status, articles_new FROM runs").fetchall() == [("completed", 1)]
        assert con.execute("SELECT name, source, status FROM feeds").fetchall() == [
            ("n", "S", "active")
        ]
        assert con.execute("SELECT count(*) FROM article_feeds").fetchone() == (1,)


def feed_batch(feed: str, articles: list[Article], **kw: object) -> FeedBatch:
    return FeedBatch(
        feed_url=feed,
        check=FeedCheck(url=feed, ok=True, status_code=200, entries_seen=len(articles)),
        articles=[a.model_copy(update={"feed_url": feed}) for a in articles],
        **kw,  # type: ignore[arg-type]
    )


# What a load stores, less the clock's columns: the tables a grouped load must fill alike.
STORED = {
    "articles": "SELECT article_id, guid, title, story_id, duplicate_of, body_text FROM articles",
    "article_feeds": "SELECT article_id, feed_url, guid FROM article_feeds",
    "feeds": "SELECT url, name, source, status, articles_total, last_new_items_at IS NOT NULL "
    "FROM feeds",
    "ingest_errors": "SELECT feed_url, url, kind FROM ingest_errors",
    "article_topics": "SELECT * FROM article_topics",
    "search_docs": "SELECT * EXCLUDE (doc_id) FROM search_docs",
    # A posting's places are a set (the phrase macros unnest them), stored in any order.
    "search_postings": "SELECT d.article_id, p.term_id, p.tf, list_sort(p.positions) "
    "FROM search_postings p JOIN search_docs d USING (doc_id)",
}


def stored(db: Database) -> dict[str, list[tuple[object, ...]]]:
    with db.session() as con:
        return {name: sorted(con.execute(sql).fetchall(), key=repr) for name, sql in STORED.items()}


def three_feeds() -> list[FeedLoad]:
    err = IngestErrorRecord(
        stage="download", url="https://x/1", kind="http_404", message="gone", feed_url="f2"
    )
    return [
        FeedLoad(feed_batch("f1", [article(i) for i in range(1, 6)]), name="one", source="S"),
        # a repeat within the feed, an article seen again, an error, nothing new
        FeedLoad(
            feed_batch(
                "f2",
                [article(7), article(7)],
                seen_again=[(article(1).article_id, "g")],
                errors=[err],
            )
        ),
        FeedLoad(feed_batch("f3", [], seen_again=[(article(2).article_id, None)])),
        FeedLoad(feed_batch("f4", [article(8, body=OTHER), article(9, body=WIRE)])),
    ]


def test_feeds_loaded_in_one_transaction_store_what_they_store_one_by_one(
    tmp_path: Path,
) -> None:
    apart, together = (Database(tmp_path / f"{n}.duckdb", lock_timeout=10) for n in "ab")
    run_a, run_b = start_run(apart, "test", {}), start_run(together, "test", {})
    one_by_one = RunCounts()
    for load in three_feeds():
        one_by_one += load_batch(apart, run_a, load.batch, name=load.name, source=load.source)
    grouped, written = load_batches(together, run_b, three_feeds())
    assert len(written) == 4
    assert grouped == one_by_one
    assert (grouped.articles_new, grouped.duplicates, grouped.feeds_checked) == (8, 3, 4)
    assert stored(together) == stored(apart)
    # each feed is credited with the articles that were new in it
    assert [f.batch.check.entries_new for f in written] == [5, 1, 0, 2]


def test_a_group_takes_the_earlier_published_copy_as_the_original(db: Database) -> None:
    # The feed listed first carries the later copy: in one transaction, order of publication
    # decides, not the order of the feeds.
    late = article(1, body=WIRE, published_at=datetime(2024, 3, 9, tzinfo=UTC))
    early = article(2, body=WIRE, published_at=datetime(2024, 3, 2, tzinfo=UTC))
    counts, _ = load_batches(
        db,
        start_run(db, "test", {}),
        [FeedLoad(feed_batch("f1", [late])), FeedLoad(feed_batch("f2", [early]))],
    )
    assert (counts.articles_new, counts.dup_body) == (2, 1)
    with db.session() as con:
        rows = dict(con.execute("SELECT guid, duplicate_of FROM articles").fetchall())
    assert rows == {"guid-1": early.article_id, "guid-2": None}


def test_a_staged_batch_loaded_meanwhile_is_left_out_of_the_group(db: Database) -> None:
    run = start_run(db, "test", {})
    loads = [
        FeedLoad(
            feed_batch(f"f{n}", [article(n)]),
            staged=StagedRef(batch_id=f"b{n}", part="p", load_run_id=run),
        )
        for n in (1, 2, 3)
    ]
    load_batch(db, run, loads[1].batch, staged=loads[1].staged)  # another loader took b2
    counts, written = load_batches(db, run, loads)
    assert [w.staged.batch_id for w in written if w.staged] == ["b1", "b3"]
    assert (counts.articles_new, counts.feeds_checked, counts.duplicates) == (2, 2, 0)
    with db.session() as con:
        assert con.execute("SELECT count(*) FROM articles").fetchone() == (3,)
        assert con.execute("SELECT count(*) FROM loaded_batches").fetchone() == (3,)


def test_dead_running_run_becomes_crashed(db: Database) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(proc.stdout)
    run = start_run(db, "test", {})
    with db.session() as con:
        con.execute("UPDATE runs SET pid = ? WHERE run_id = ?", [dead_pid, run])
    start_run(db, "test", {})
    with db.session() as con:
        assert con.execute("SELECT status FROM runs WHERE run_id = ?", [run]).fetchone() == (
            "crashed",
        )


def test_old_file_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE keep_me (x INTEGER); INSERT INTO keep_me VALUES (42)")
    con.close()
    with Database(path).session() as con:
        assert con.execute("SELECT max(version) FROM schema_version").fetchone() == (
            LATEST_VERSION,
        )
        assert con.execute("SELECT x FROM keep_me").fetchone() == (42,)


def hold_file(path: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process (not newsflow) holding DuckDB's own lock on the file, like a duckdb shell."""
    code = (
        f"import duckdb, time; c = duckdb.connect({str(path)!r}); "
        f"print('held', flush=True); time.sleep({seconds})"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_waits_for_a_foreign_process_holding_the_file(tmp_path: Path) -> None:
    path = tmp_path / "held.duckdb"
    with Database(path).session():
        pass
    holder = hold_file(path, 1.5)
    with Database(path, lock_timeout=30).session() as con:
        assert con.execute("SELECT 1").fetchone() == (1,)
    holder.wait()


def test_gives_up_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "held.duckdb"
    with Database(path).session():
        pass
    holder = hold_file(path, 5)
    with (
        pytest.raises(DatabaseError, match="locked by another process"),
        Database(path, lock_timeout=0.5).session(),
    ):
        pass
    holder.kill()
    holder.wait()


def test_threads_share_one_writer(db: Database) -> None:
    run = start_run(db, "test", {})

    def work(k: int) -> None:
        load_batch(db, run, batch([article(k * 100 + i) for i in range(20)]))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with db.session() as con:
        assert con.execute(
            "SELECT count(*), count(DISTINCT article_id) FROM articles"
        ).fetchone() == (80, 80)


def test_sessions_never_draw_duckdbs_progress_bar(db: Database) -> None:
    # DuckDB draws it on stdout for a query over two seconds (into a --json line, an export);
    # it is on by default, except under pytest: hence a process of its own.
    script = """
import sys
import duckdb
from newsflow.tasks.storage.store import Database
setting = "SELECT current_setting('enable_progress_bar')"
print(duckdb.connect().execute(setting).fetchone()[0])
for read_only in (False, True):
    with Database(sys.argv[1], read_only=read_only).session() as con:
        print(con.execute(setting).fetchone()[0])
"""
    run = [sys.executable, "-c", script, str(db.path)]
    done = subprocess.run(run, capture_output=True, text=True, timeout=60, check=False)
    assert done.stdout.split() == ["True", "False", "False"], done.stderr


def test_a_runs_sessions_use_one_duckdb_thread(tmp_path: Path) -> None:
    # Its extraction workers hold the cores (WRITER_THREADS); other sessions keep DuckDB's.
    settings = Settings(db_path=tmp_path / "news.duckdb")
    with DatabaseTarget(settings).db.session() as con:
        assert con.execute("SELECT current_setting('threads')").fetchone() == (WRITER_THREADS,)
    with Database(settings.db_path).session() as con:
        row = con.execute("SELECT current_setting('threads')").fetchone()
    assert row == (duckdb.connect().execute("SELECT current_setting('threads')").fetchone()[0],)  # type: ignore[index]
