"""Staged batches: Parquet parts that round-trip, shards that split the feeds, a loader that
loads each batch exactly once — also when it is killed midway — and the snapshot."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from filelock import FileLock

from newsflow.cli.main import main
from newsflow.flows.load import run_load
from newsflow.runtime.runners import chunk_size
from newsflow.schemas.config import FeedConfig, ScaleOptions, Settings, Shard
from newsflow.schemas.errors import ConfigError
from newsflow.schemas.models import (
    FeedBatch,
    FeedCheck,
    FeedEntry,
    IngestErrorRecord,
    Response,
    RunCounts,
    new_run_id,
)
from newsflow.tasks.coverage.tag import load_tagger
from newsflow.tasks.dedup.known import KnownIndex, entry_article_id, lookup_known
from newsflow.tasks.extraction.derive import derive
from newsflow.tasks.sources.feeds import parse_feed
from newsflow.tasks.sources.health import read_feed_states
from newsflow.tasks.storage.load import load_batch
from newsflow.tasks.storage.runs import start_run
from newsflow.tasks.storage.stage import (
    STAGE_FORMAT,
    RunSnapshot,
    Snapshot,
    Stage,
    StagedBatch,
    batch_id_for,
    part_name,
    read_part,
    read_snapshot,
    write_part,
)
from newsflow.tasks.storage.store import Database
from tests.conftest import NEWSFLOW, make_settings, wait_for
from tests.test_cli import ROOT
from tests.test_derive import stored_rows
from tests.test_load import article


def feed_batch(feed: int, first: int, count: int) -> FeedBatch:
    """Feed `feed` carrying articles first … first+count-1, one seen again, one error."""
    url = f"https://feeds.example/{feed}.xml"
    articles = [article(n, feed_url=url) for n in range(first, first + count)]
    tagger = load_tagger()
    return FeedBatch(
        feed_url=url,
        check=FeedCheck(url=url, ok=True, status_code=200, etag=f'"{feed}"', entries_seen=count),
        articles=articles,
        # What the extraction workers made of all but the last article.
        derived={a.article_id: derive(a.title, a.body_text, tagger) for a in articles[:-1]},
        seen_again=[(articles[0].article_id, "guid-again")] if articles else [],
        errors=[
            IngestErrorRecord(
                stage="download", url=f"{url}/gone", kind="http_404", message="gone", feed_url=url
            )
        ],
        pages_downloaded=count,
    )


def stage_batches(stage: Stage, feeds: int, per_feed: int, per_part: int = 64) -> list[StagedBatch]:
    """Stage `feeds` feed batches of one run, `per_part` to a part."""
    run_id = new_run_id()
    staged = []
    for f in range(feeds):
        batch = feed_batch(f, f * per_feed, per_feed)
        batch_id = batch_id_for(run_id, batch.feed_url)
        staged.append(StagedBatch(batch_id, run_id, f"f{f}", None, batch))
    for seq, start in enumerate(range(0, feeds, per_part)):
        write_part(stage, part_name(run_id, seq), staged[start : start + per_part])
    return staged


@pytest.mark.parametrize("where", ["folder", "memory://"])
def test_a_part_round_trips(tmp_path: Path, where: str) -> None:
    """In a folder, and in any fsspec filesystem (here fsspec's in-memory one)."""
    url = str(tmp_path / "stage") if where == "folder" else f"memory://{tmp_path.name}/stage"
    stage = Stage(url, create=True)
    run_id = new_run_id()
    not_modified = FeedBatch(
        feed_url="https://feeds.example/304.xml",
        check=FeedCheck(url="https://feeds.example/304.xml", ok=True, status_code=304),
    )
    batches = [feed_batch(1, 0, 3), not_modified, feed_batch(2, 10, 2)]
    staged = [
        StagedBatch(batch_id_for(run_id, b.feed_url), run_id, "name", "Source", b) for b in batches
    ]
    write_part(stage, "p1", staged)
    assert stage.committed_parts() == ["p1"]
    assert read_part(stage, "p1") == staged


def test_a_part_being_written_is_not_listed(tmp_path: Path) -> None:
    stage = Stage(str(tmp_path / "stage"), create=True)
    staged = stage_batches(stage, feeds=2, per_feed=2)
    (tmp_path / "stage" / "parts" / "half").mkdir()
    (tmp_path / "stage" / "parts" / "half" / "articles.parquet").write_bytes(b"PAR1")
    assert len(stage.committed_parts()) == 1
    assert [s.batch_id for s in read_part(stage, stage.committed_parts()[0])] == [
        s.batch_id for s in staged
    ]


def test_missing_stage_folder_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="stage folder not found"):
        Stage(str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match="stage folder"):
        Stage("nosuchprotocol://bucket/stage", create=True)


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_shards_split_the_feeds_without_overlap(count: int) -> None:
    feeds = [FeedConfig(url=f"https://site{i % 17}.example/feed/{i}.xml") for i in range(500)]
    parts = [Shard.model_validate(f"{i}/{count}").select(feeds) for i in range(count)]
    assert sorted(f.url for part in parts for f in part) == sorted(f.url for f in feeds)
    assert min(len(p) for p in parts) > 500 / count * 0.7  # roughly even


def test_shards_are_the_same_in_every_process() -> None:
    """The hash must not be Python's `hash`, salted per process."""
    code = (
        "from newsflow.schemas.config import FeedConfig, Shard; "
        "print(sum(Shard.model_validate('2/3').owns(f'https://x.example/{i}') for i in range(300)))"
    )
    answers = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
            env=os.environ | {"PYTHONHASHSEED": seed},
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert len(answers) == 1


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"shard": "3/3"}, "--shard: no shard 3/3"),
        ({"shard": "-1/3"}, "--shard: not I/N"),
        ({"shard": "two"}, "--shard: not I/N"),
        ({"runner": "local", "dask_address": "tcp://127.0.0.1:8786"}, "needs --runner dask"),
    ],
)
def test_bad_scale_options_are_config_errors(flags: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ScaleOptions.build(**flags)


@pytest.mark.parametrize(
    ("feeds", "threads", "size"),
    [(6, 2, 1), (40, 2, 5), (41, 2, 6), (100_000, 64, 50), (3, 0, 1), (0, 2, 1)],
)
def test_dask_tasks_carry_several_feeds(feeds: int, threads: int, size: int) -> None:
    assert chunk_size(feeds, threads) == size


def test_an_address_alone_means_the_dask_runner() -> None:
    assert ScaleOptions.build(dask_address="tcp://127.0.0.1:8786").runner == "dask"


def table_rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_loading_twice_adds_nothing(tmp_path: Path) -> None:
    stage = Stage(str(tmp_path / "stage"), create=True)
    stage_batches(stage, feeds=5, per_feed=4)
    settings = make_settings(tmp_path)
    first = run_load(settings, stage.url)
    second = run_load(settings, stage.url)
    assert (first.batches_loaded, first.counts.articles_new, first.articles) == (5, 20, 20)
    assert (second.batches_loaded, second.batches_skipped, second.counts) == (0, 5, RunCounts())
    db = settings.db_path
    assert table_rows(db, "SELECT count(*), count(DISTINCT article_id) FROM articles") == [(20, 20)]
    assert table_rows(db, "SELECT count(*) FROM ingest_errors") == [(5,)]
    assert table_rows(db, "SELECT count(*) FROM loaded_batches") == [(5,)]
    assert table_rows(db, "SELECT count(*) FROM feeds WHERE etag IS NOT NULL") == [(5,)]


def feed_entries(url: str, items: tuple[int, ...]) -> list[FeedEntry]:
    feed = (
        b'<rss version="2.0"><channel><title>t</title>'
        + b"".join(
            f"<item><link>https://news.example/a/{n}</link><guid>guid-{n}</guid></item>".encode()
            for n in items
        )
        + b"</channel></rss>"
    )
    return parse_feed(Response(url=url, final_url="", status=200, body=feed), 100).entries


def test_the_snapshot_answers_as_the_database_does(tmp_path: Path) -> None:
    stage = Stage(str(tmp_path / "stage"), create=True)
    before = Snapshot(read_snapshot(stage))  # no load yet: nothing known, no feed states
    with before.session() as con:
        assert read_feed_states(con) == {}
    before.close()
    stage_batches(stage, feeds=3, per_feed=4)
    settings = make_settings(tmp_path)
    run_load(settings, stage.url)
    entries = feed_entries("https://feeds.example/0.xml", (1, 2, 99))
    snapshot = Snapshot(read_snapshot(stage))
    with Database(settings.db_path).session() as con:
        expected = (
            read_feed_states(con),
            lookup_known(con, "https://feeds.example/0.xml", entries),
        )
    with snapshot.session() as con:
        got = (read_feed_states(con), lookup_known(con, "https://feeds.example/0.xml", entries))
    snapshot.close()
    assert got == expected
    assert len(got[1].updated_at) == 2 and len(got[1].guids) == 2


def test_a_run_snapshot_answers_as_the_database_does_and_asks_it_only_what_it_lacks(
    tmp_path: Path,
) -> None:
    """A direct run looks entries up in a snapshot taken at its first lookup, not in a
    session of the file per feed; the database is asked only about entries the snapshot
    holds nothing of, and only when it may lack stored articles (not seen for 30 days)."""
    db = Database(tmp_path / "news.duckdb", lock_timeout=10)
    load_batch(db, start_run(db, "ingest", {}), feed_batch(0, first=1, count=4))
    url = "https://feeds.example/0.xml"
    entries = feed_entries(url, (1, 2, 3, 99))

    def in_database() -> KnownIndex:
        with db.session() as con:
            return lookup_known(con, url, entries)

    expected = in_database()
    assert len(expected.updated_at) == 3 and len(expected.guids) == 3
    snapshot = RunSnapshot(db)
    assert snapshot.lookup(url, entries) == expected  # taken here
    # It holds every stored article: entry 99 is new, and no lookup waits for the database.
    with ThreadPoolExecutor(1) as pool, db.session():
        assert pool.submit(snapshot.lookup, url, entries).result(timeout=5) == expected
    snapshot.close()

    old = entry_article_id(entries[2])
    with db.session() as con:
        con.execute(
            "UPDATE articles SET last_seen_at = now() - INTERVAL 40 DAY WHERE article_id = ?",
            [old],
        )
    snapshot = RunSnapshot(db)
    got = snapshot.lookup(url, entries)
    assert got == in_database() and old in got.updated_at  # from the database
    with ThreadPoolExecutor(1) as pool:
        with db.session():  # a load writing: the lookup of what the snapshot lacks waits
            pending = pool.submit(snapshot.lookup, url, entries)
            with pytest.raises(TimeoutError):
                pending.result(timeout=0.5)
        assert pending.result(timeout=10) == got
    snapshot.close()


def loaded(db: Path) -> int:
    """Batches loaded so far. Polls the lock every 2 ms: the loader lets go of the database
    only between parts, for as long as it takes to read the next one."""
    with FileLock(f"{db}.lock").acquire(timeout=60, poll_interval=0.002):
        return len(table_rows(db, "SELECT batch_id FROM loaded_batches"))


@pytest.mark.slow
def test_a_loader_killed_midway_loads_nothing_twice(tmp_path: Path) -> None:
    stage = Stage(str(tmp_path / "stage"), create=True)
    # Parts of 8: the loader holds the database for a part, so the test sees it between
    # parts, and the kill lands in the next one, some of whose batches are loaded already.
    staged = stage_batches(stage, feeds=80, per_feed=25, per_part=8)
    reference = make_settings(tmp_path / "ref")
    run_load(reference, stage.url)

    db = tmp_path / "killed.duckdb"
    args = [*NEWSFLOW, "load", "--stage-dir", stage.url, "--db", str(db), "-q"]
    loader = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def progressed() -> bool:
        assert loader.poll() is None, loader.communicate()
        return db.exists() and loaded(db) >= 3

    wait_for(progressed, 120, "the loader's first part")
    time.sleep(0.15)  # into the next part: some of its batches loaded, the rest not
    loader.send_signal(signal.SIGKILL)
    loader.wait()
    at_kill = loaded(db)
    assert 3 <= at_kill < len(staged), "killed too late to test anything"

    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert f"({at_kill} loaded before)" in result.stdout
    assert loaded(db) == len(staged)
    every_table = (
        "SELECT * EXCLUDE (first_seen_at, last_seen_at) FROM articles ORDER BY article_id",
        "SELECT article_id, feed_url, guid FROM article_feeds ORDER BY ALL",
        "SELECT * FROM article_topics ORDER BY ALL",
        "SELECT stage, url, kind, feed_url FROM ingest_errors ORDER BY ALL",
        "SELECT * FROM feeds ORDER BY url",
    )
    for sql in every_table:
        assert table_rows(db, sql) == table_rows(reference.db_path, sql), sql
    assert table_rows(db, "SELECT status FROM runs ORDER BY started_at") == [
        ("crashed",),
        ("completed",),
    ]


def test_a_staged_run_needs_no_database(tmp_path: Path, settings: Settings) -> None:
    """The CLI checks a staged run's inputs without opening (or creating) the database."""
    from newsflow.cli.commands import check_inputs

    settings.feeds_path.write_text("feeds = []\n", encoding="utf-8")
    check_inputs(settings, stage_dir=str(tmp_path / "stage"))
    assert not settings.db_path.exists()
    assert (tmp_path / "stage").is_dir()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["load", "--stage-dir", "{tmp}/nowhere"], "error: stage folder not found: "),
        (["run", "--shard", "3/3"], "error: --shard: no shard 3/3"),
        (["run", "--runner", "local", "--dask-address", "tcp://127.0.0.1:1"], "error: --dask"),
    ],
)
def test_bad_scale_arguments_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    feeds = tmp_path / "feeds.toml"
    feeds.write_text("feeds = []\n", encoding="utf-8")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if args[0] == "run":
        args += ["--feeds", str(feeds)]
    assert main([*args, "--db", str(tmp_path / "x.duckdb")]) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), captured.err
    assert captured.out == ""
    assert not (tmp_path / "x.duckdb").exists()


def test_a_staged_article_id_shaped_like_a_path_is_refused(tmp_path: Path) -> None:
    stage = Stage(str(tmp_path / "stage"), create=True)
    stage_batches(stage, feeds=1, per_feed=2)
    (part,) = stage.committed_parts()
    table = stage.read_table("parts", part, "articles.parquet")
    assert table is not None
    ids = table.column("article_id").to_pylist()
    forged = table.set_column(
        table.schema.get_field_index("article_id"),
        "article_id",
        pa.array(["../../outside", *ids[1:]], pa.string()),
    )
    stage.write_table(forged, "parts", part, "articles.parquet")
    with pytest.raises(
        ConfigError, match=r"part .* invalid record \(article_id: .*'\.\./\.\./outside'"
    ):
        read_part(stage, part)


FORMAT_1 = Path(__file__).parent / "fixtures" / "stage" / "format1"


def test_a_part_of_the_first_format_loads(tmp_path: Path) -> None:
    """Staged before the workers' tags and fingerprints travelled with the articles: the loader
    makes them, and the rows are those of the same batches staged in the current format."""
    old = Stage(str(shutil.copytree(FORMAT_1, tmp_path / "old")))
    (part,) = old.committed_parts()
    staged = read_part(old, part)
    assert [len(s.batch.articles) for s in staged] == [3, 3]
    assert all(s.batch.derived == {} for s in staged)
    tagger = load_tagger()
    current = Stage(str(tmp_path / "current"), create=True)
    for s in staged:
        s.batch.derived = {
            a.article_id: derive(a.title, a.body_text, tagger) for a in s.batch.articles
        }
    write_part(current, part, staged)
    assert read_part(current, part) == staged

    loaded = []
    for name, stage in (("old", old), ("current", current)):
        settings = make_settings(tmp_path / name)
        summary = run_load(settings, stage.url)
        assert (summary.batches_loaded, summary.counts.articles_new) == (2, 6)
        loaded.append(stored_rows(settings.db_path))
    assert loaded[0]["article_topics"] and loaded[0]["article_bands"]
    assert loaded[0] == loaded[1]


def test_a_part_in_a_newer_format_is_refused(tmp_path: Path) -> None:
    stage = Stage(str(tmp_path / "stage"), create=True)
    stage_batches(stage, feeds=1, per_feed=2)
    (part,) = stage.committed_parts()
    marker = stage.read_table("parts", part, "batches.parquet")
    assert marker is not None
    newer = marker.set_column(
        marker.schema.get_field_index("format"),
        "format",
        pa.array([STAGE_FORMAT + 1] * marker.num_rows, pa.int64()),
    )
    stage.write_table(newer, "parts", part, "batches.parquet")
    with pytest.raises(ConfigError, match=rf"part {part} is in format {STAGE_FORMAT + 1}"):
        read_part(stage, part)
