"""Scale-out end to end over the demo site on loopback: two Dask workers, `--runner dask` from
the command line, three shard processes staging batches while a loader merges them — each
giving the rows of one direct run."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from distributed import Client, LocalCluster

from newsflow.demo.catalogue import demo_feeds_toml
from newsflow.demo.site import SiteServer
from newsflow.flows.ingest import ingest
from newsflow.flows.load import load_staged, run_load
from newsflow.runtime import runners
from newsflow.runtime.runners import local_cluster_kwargs
from newsflow.schemas.config import ScaleOptions, Settings, Shard, load_feeds_file
from newsflow.schemas.models import RunCounts
from tests.conftest import NEWSFLOW, cli_env, make_settings
from tests.test_cli import ROOT
from tests.test_stage import table_rows

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.slow]

# Columns an article takes from the feed that delivered it. An article that several feeds
# carry gets them from whichever reached it first — in a direct run as well (its feeds are
# polled concurrently) — so for those articles they are checked apart.
FEED_COLUMNS = ("guid", "feed_url", "source", "categories", "language")


@pytest.fixture(scope="module")
def site() -> Iterator[SiteServer]:
    with SiteServer() as server:
        yield server


def site_settings(site: SiteServer, tmp: Path) -> Settings:
    settings = make_settings(tmp)
    settings.feeds_path.write_text(demo_feeds_toml(site.base_url), encoding="utf-8")
    return settings


@pytest.fixture(scope="module")
def direct(site: SiteServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The database of one direct run over the site: what every scale-out must reproduce."""
    settings = site_settings(site, tmp_path_factory.mktemp("direct"))
    ingest(settings=settings)
    return settings.db_path


def stored(db: Path) -> dict[str, object]:
    """Every table a run writes, in comparable form: articles without their sighting times
    (and, for articles several feeds carry, the feed columns checked to name one of them),
    their feeds, tags and errors."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        cur = con.execute(
            "SELECT * EXCLUDE (first_seen_at, last_seen_at) FROM articles ORDER BY article_id"
        )
        columns = [d[0] for d in cur.description]
        articles = [dict(zip(columns, row, strict=True)) for row in cur.fetchall()]
        carriers: dict[str, set[object]] = {}
        for article_id, feed_url in con.execute(
            "SELECT article_id, feed_url FROM article_feeds"
        ).fetchall():
            carriers.setdefault(article_id, set()).add(feed_url)
        for a in articles:
            if len(carriers[a["article_id"]]) > 1:
                assert a["feed_url"] in carriers[a["article_id"]]
                a.update(dict.fromkeys(FEED_COLUMNS, "one of its feeds"))
        return {
            "articles": articles,
            "article_feeds": con.execute(
                "SELECT article_id, feed_url, guid FROM article_feeds ORDER BY ALL"
            ).fetchall(),
            "topics": con.execute("SELECT * FROM article_topics ORDER BY ALL").fetchall(),
            "errors": con.execute(
                "SELECT stage, url, kind, feed_url FROM ingest_errors ORDER BY ALL"
            ).fetchall(),
        }
    finally:
        con.close()


def assert_same_rows(db: Path, direct: Path) -> None:
    unique = "SELECT count(*) = count(DISTINCT canonical_url) FROM articles"
    assert table_rows(db, unique) == [(True,)]
    got, expected = stored(db), stored(direct)
    assert len(got["articles"]) == len(expected["articles"]) >= 30  # type: ignore[arg-type]
    for table in expected:
        assert got[table] == expected[table], table


def attached_env(tmp: Path) -> dict[str, str]:
    """Child processes attach to the test's Prefect server instead of starting their own."""
    from prefect.settings import PREFECT_API_URL

    return cli_env(tmp, PREFECT_API_URL=str(PREFECT_API_URL.value()), COLUMNS="200")


def assert_quiet(output: str) -> None:
    """No traceback, no log line of Prefect or Dask: the summary alone."""
    assert "Traceback" not in output, output
    assert not re.search(r"\| (INFO|WARNING|ERROR) +\|", output), output
    assert "distributed." not in output, output


def test_two_dask_workers_give_the_rows_of_a_direct_run(
    site: SiteServer, direct: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One task per worker thread: three feeds a task, as a large feeds file would have.
    monkeypatch.setattr(runners, "TASKS_PER_THREAD", 1)
    settings = site_settings(site, tmp_path)
    with (
        LocalCluster(**local_cluster_kwargs(2)) as cluster,
        Client(cluster) as client,
    ):
        scale = ScaleOptions(runner="dask", dask_address=cluster.scheduler_address)
        summary = ingest(settings=settings, scale=scale)
        # Each worker keeps the contexts of the runs it collected feeds for.
        held = client.run(lambda: list(sys.modules["newsflow.tasks.pipeline.feed"]._CONTEXTS))
    assert len(held) == 2 and all(summary.run_id in runs for runs in held.values()), held
    assert summary.counts.feeds_checked == 6
    assert_same_rows(settings.db_path, direct)


def test_local_runner_with_several_feeds_a_task_gives_the_rows_of_a_direct_run(
    site: SiteServer, direct: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many feeds share a task on the local runner's threads as on Dask (each task run costs
    Prefect's server ~30 ms): here 2 threads, one task a thread, three feeds a task."""
    from prefect.task_runners import ThreadPoolTaskRunner

    monkeypatch.setattr(runners, "LOCAL_THREADS", 2)
    monkeypatch.setattr(runners, "TASKS_PER_THREAD", 1)
    submitted: list[int] = []
    submit = ThreadPoolTaskRunner.submit

    def counted(
        self: ThreadPoolTaskRunner, task: Any, parameters: dict[str, Any], **kw: Any
    ) -> Any:
        submitted.append(len(parameters["feeds"]))
        return submit(self, task, parameters, **kw)

    monkeypatch.setattr(ThreadPoolTaskRunner, "submit", counted)
    settings = site_settings(site, tmp_path)
    summary = ingest(settings=settings)
    assert summary.counts.feeds_checked == 6
    assert submitted == [3, 3]
    assert_same_rows(settings.db_path, direct)


def test_runner_dask_from_the_command_line(site: SiteServer, direct: Path, tmp_path: Path) -> None:
    """The default cluster (one worker per core), started and stopped by the run, quietly."""
    settings = site_settings(site, tmp_path)
    files = ["--feeds", str(settings.feeds_path), "--db", str(settings.db_path)]
    result = subprocess.run(
        [*NEWSFLOW, "run", "--runner", "dask", "-q", *files],
        capture_output=True,
        text=True,
        timeout=240,
        env=attached_env(tmp_path),
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    assert_quiet(result.stdout + result.stderr)
    assert result.stderr == ""
    assert re.search(r"articles: 35 new", result.stdout), result.stdout
    assert_same_rows(settings.db_path, direct)


def test_three_shards_and_a_loader_give_the_rows_of_a_direct_run(
    site: SiteServer, direct: Path, tmp_path: Path
) -> None:
    settings = site_settings(site, tmp_path)
    stage = tmp_path / "stage"
    stage.mkdir()
    files = ["--feeds", str(settings.feeds_path), "--db", str(tmp_path / "unused.duckdb")]
    shards = [
        subprocess.Popen(
            [*NEWSFLOW, "run", "--shard", f"{i}/3", "--stage-dir", str(stage), "-q", *files],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=attached_env(tmp_path),
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
        )
        for i in (0, 1, 2)
    ]
    loads = []
    while any(p.poll() is None for p in shards):  # the loader merges while shards write
        loads.append(run_load(settings, str(stage)))
        time.sleep(0.2)
    outputs = [p.communicate(timeout=60) for p in shards]
    for p, (out, err) in zip(shards, outputs, strict=True):
        assert p.returncode == 0, err
        assert_quiet(out + err)
    loads.append(run_load(settings, str(stage)))

    checked = sum(int(re.search(r"feeds: (\d+) checked", out)[1]) for out, _ in outputs)  # type: ignore[index]
    assert checked == 6
    assert sum(s.batches_loaded for s in loads) == 6
    assert not (tmp_path / "unused.duckdb").exists()  # staged runs open no database
    assert_same_rows(settings.db_path, direct)

    again = run_load(settings, str(stage))
    assert (again.batches_loaded, again.batches_skipped, again.counts) == (0, 6, RunCounts())
    assert_same_rows(settings.db_path, direct)


def test_a_deployment_passes_shard_and_stage_as_plain_parameters(
    site: SiteServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSFLOW_ALLOW_PRIVATE_NETWORKS", "1")
    settings = site_settings(site, tmp_path)
    stage = tmp_path / "stage"
    # Feeds go to shards by a hash of their URL, and the site's port is random: take a shard
    # that owns some (with 6 feeds, one shard in 3 is empty about one time in 11).
    feeds = load_feeds_file(settings.feeds_path).feeds
    index = next(i for i in (1, 2, 3) if Shard(index=i, count=3).select(feeds))
    summary = ingest(
        feeds=str(settings.feeds_path),
        db=str(settings.db_path),
        runner="local",
        shard=f"{index}/3",
        stage_dir=str(stage),
    )
    mine = Shard(index=index, count=3).select(feeds)
    assert summary.counts.feeds_checked == len(mine) > 0
    assert not settings.db_path.exists()
    loaded = load_staged(stage_dir=str(stage), db=str(settings.db_path))
    assert loaded.batches_loaded == len(mine)
    loaded_feeds = "SELECT DISTINCT feed_url FROM loaded_batches ORDER BY 1"
    assert table_rows(settings.db_path, loaded_feeds) == sorted((f.url,) for f in mine)
