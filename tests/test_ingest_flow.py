"""The ingest flow end to end: the demo site over loopback, under the Prefect test harness."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import duckdb
import pytest
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import wait
from prefect.task_runners import ThreadPoolTaskRunner

from newsflow.demo.catalogue import MISSING_PAGE, demo_feeds_toml, load_manifest
from newsflow.demo.site import SiteServer
from newsflow.flows import ingest as ingest_module
from newsflow.flows.ingest import HeldBatches, completed_groups, ingest
from newsflow.schemas.config import Settings
from newsflow.schemas.models import FeedBatch
from newsflow.tasks.extraction.normalize import canonical_url
from tests.conftest import make_settings

pytestmark = pytest.mark.usefixtures("prefect_harness")

MANIFEST = load_manifest()


@pytest.fixture(scope="module")
def site() -> Iterator[SiteServer]:
    with SiteServer() as server:
        yield server


@pytest.fixture(scope="module")
def demo_run(site: SiteServer, tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, object]:
    tmp = tmp_path_factory.mktemp("demo")
    settings = make_settings(tmp)
    settings.feeds_path.write_text(demo_feeds_toml(site.base_url), encoding="utf-8")
    site.reset_counts()
    summary = ingest(settings=settings)
    return settings, summary


def rows(settings: Settings, sql: str, *params: object) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(settings.db_path), read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def test_every_page_lands_with_its_fields(
    demo_run: tuple[Settings, object], site: SiteServer
) -> None:
    settings, _ = demo_run
    stored = {
        r[0]: r[1:]
        for r in rows(
            settings,
            "SELECT canonical_url, title, published_at, language, length(body_text), source "
            "FROM articles",
        )
    }
    for page in MANIFEST:
        key = canonical_url(site.url("/" + page["path"]))
        assert key in stored, page["path"]
        title, published, language, body_len, _source = stored[key]
        assert title == page["title"], page["path"]
        assert isinstance(published, datetime)
        assert published.isoformat().replace("+00:00", "Z") == page["published"], page["path"]
        assert language == page["language"], page["path"]
        assert body_len > 200, page["path"]


def test_rows_are_unique_and_tracking_parameters_gone(demo_run: tuple[Settings, object]) -> None:
    settings, _ = demo_run
    assert rows(settings, "SELECT count(*) = count(DISTINCT canonical_url) FROM articles") == [
        (True,)
    ]
    leftovers = rows(
        settings,
        "SELECT url FROM articles WHERE regexp_matches(canonical_url, 'utm_|spm=|share_|from=')",
    )
    assert leftovers == []


def test_the_missing_page_is_recorded(demo_run: tuple[Settings, object], site: SiteServer) -> None:
    settings, summary = demo_run
    errors = rows(settings, "SELECT stage, kind, url FROM ingest_errors")
    assert ("download", "http_404", site.url(MISSING_PAGE)) in errors
    assert rows(settings, "SELECT status FROM runs") == [("completed",)]
    assert summary.counts.errors == len(errors)  # type: ignore[attr-defined]


def test_an_article_carried_by_two_feeds_is_stored_once(demo_run: tuple[Settings, object]) -> None:
    settings, _ = demo_run
    shared = [p for p in MANIFEST if len(p["feeds"]) > 1]
    assert shared, "the demo site has a page in two feeds"
    counts = rows(
        settings,
        "SELECT a.article_id, count(f.feed_url) FROM articles a JOIN article_feeds f USING "
        "(article_id) GROUP BY 1 HAVING count(*) > 1",
    )
    assert len(counts) >= len(shared)


def test_second_run_downloads_nothing_and_adds_nothing(
    demo_run: tuple[Settings, object], site: SiteServer
) -> None:
    settings, _ = demo_run
    before = rows(settings, "SELECT count(*), max(last_seen_at) FROM articles")
    site.reset_counts()
    summary = ingest(settings=settings, force=True)
    assert summary.counts.articles_new == 0
    assert summary.counts.pages_downloaded == 0
    assert summary.counts.feeds_not_modified == summary.counts.feeds_checked == 6
    assert all(path.startswith("/feeds/") for path in site.hits), site.hits
    assert rows(settings, "SELECT count(*) FROM articles")[0][0] == before[0][0]


def test_feeds_without_etag_still_download_no_known_page(tmp_path: Path) -> None:
    """A server that ignores conditional GETs: entries are known by URL, pages not fetched."""
    with SiteServer() as site:
        settings = make_settings(tmp_path)
        settings.feeds_path.write_text(demo_feeds_toml(site.base_url), encoding="utf-8")
        ingest(settings=settings)
        con = duckdb.connect(str(settings.db_path))
        con.execute("UPDATE feeds SET etag = NULL, last_modified = NULL")
        con.close()
        site.reset_counts()
        summary = ingest(settings=settings, force=True)
    assert summary.counts.pages_downloaded == 0
    assert summary.counts.articles_new == 0
    assert summary.counts.duplicates > 30  # every entry seen again
    assert all(path.startswith("/feeds/") for path in site.hits)


@task(cache_policy=NO_CACHE)
def _after(gate: threading.Event | None, value: int) -> int:
    if gate is not None:
        gate.wait(10)
    return value


def test_tasks_that_finish_together_are_written_together() -> None:
    """What an unchanged run's feeds do: finish at once, and share one write."""

    @flow
    def finish_together() -> tuple[list[list[int]], list[list[int]]]:
        gate = threading.Event()
        with ThreadPoolTaskRunner(max_workers=8) as runner:
            first = runner.submit(_after, {"gate": None, "value": 0})
            first.wait()
            later = [runner.submit(_after, {"gate": gate, "value": v}) for v in range(1, 6)]
            futures = [first, *later]
            groups = completed_groups(futures)
            alone = [[f.result() for f in next(groups)]]  # the others wait on the gate
            gate.set()
            wait(later)
            together = [[f.result() for f in group] for group in groups]
        return alone, together

    alone, together = finish_together()
    assert alone == [[0]]
    assert len(together) == 1 and sorted(together[0]) == [1, 2, 3, 4, 5]


def test_a_quiet_wait_yields_an_empty_group_so_held_batches_are_written() -> None:
    """A slow feed does not hold back the batches of the feeds that finished before it."""

    @flow
    def one_slow() -> list[list[int]]:
        gate = threading.Event()
        with ThreadPoolTaskRunner(max_workers=4) as runner:
            quick = runner.submit(_after, {"gate": None, "value": 0})
            slow = runner.submit(_after, {"gate": gate, "value": 1})
            groups = completed_groups([quick, slow], idle=0.2)
            seen = [[f.result() for f in next(groups)], [f.result() for f in next(groups)]]
            gate.set()
            seen += [[f.result() for f in group] for group in groups]
        return seen

    assert one_slow() == [[0], [], [1]]


def _batch(articles: int) -> FeedBatch:
    # Only the number of articles matters to HeldBatches.
    return FeedBatch.model_construct(articles=[object()] * articles, feed_url="f")


def test_held_batches_wait_for_enough_articles_or_time(monkeypatch: pytest.MonkeyPatch) -> None:
    held = HeldBatches()
    assert not held.due()  # nothing held, nothing to write
    held.add([_batch(3)])
    assert not held.due()
    held.add([_batch(ingest_module.WRITE_ARTICLES - 3)])
    assert held.due()
    assert [len(b.articles) for b in held.take()] == [3, ingest_module.WRITE_ARTICLES - 3]
    held.add([_batch(0)])  # a feed that gave nothing new still records its check
    monkeypatch.setattr(ingest_module, "WRITE_AFTER_SECONDS", 0.0)
    assert held.due()
