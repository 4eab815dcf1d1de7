"""The evaluation set, clustered by the real code: page extraction, the URL and GUID layers,
load_batch into a temporary DuckDB file over two runs; scored pair by pair."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from newsflow.flows.ingest import ingest
from newsflow.schemas.models import RunCounts
from newsflow.tasks.storage.store import Database
from tests.conftest import make_settings
from tests.dedup_set import LoopbackSite, load_items, read_items, score_pairs, truth_by_article


def test_evaluation_set_precision_and_recall(tmp_path: Path) -> None:
    items = read_items()
    db = Database(tmp_path / "eval.duckdb")
    counts = sum(load_items(db, items), RunCounts())
    with db.session() as con:
        stored = dict(con.execute("SELECT article_id, story_id FROM articles").fetchall())
        rows, urls = con.execute(
            "SELECT count(*), count(DISTINCT canonical_url) FROM articles"
        ).fetchone()  # type: ignore[misc]

    truth = truth_by_article(items)
    assert set(stored) == set(truth)
    assert rows == urls == len(truth)

    scores = score_pairs(truth, stored)
    print(
        f"\ndedup evaluation: {len(items)} items, {rows} articles, {scores.true_pairs} true "
        f"pairs, {scores.predicted_pairs} predicted, precision {scores.precision:.3f}, "
        f"recall {scores.recall:.3f}; by layer: url {counts.dup_url}, guid {counts.dup_guid}, "
        f"title {counts.dup_title}, body {counts.dup_body}, near {counts.dup_near}"
    )
    assert scores.precision >= 0.99, scores
    assert scores.recall >= 0.95, scores
    # Every layer had something to find in the set.
    assert (counts.dup_url, counts.dup_guid, counts.dup_title, counts.dup_body) >= (2, 1, 1, 1)
    assert counts.dup_near >= 10
    assert counts.duplicates == sum(
        (counts.dup_url, counts.dup_guid, counts.dup_title, counts.dup_body, counts.dup_near)
    )


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_evaluation_set_through_the_ingest_flow(httpserver: HTTPServer, tmp_path: Path) -> None:
    """Feeds over loopback, two scheduled runs: fetch, parse, extract, normalize, dedup, load."""
    items = read_items()
    site = LoopbackSite(httpserver.url_for("/"), items)
    httpserver.expect_request(re.compile(".*")).respond_with_handler(site.respond)
    settings = make_settings(tmp_path)
    settings.feeds_path.write_text(site.feeds_toml(), encoding="utf-8")
    first = ingest(settings=settings)
    site.run = 2
    second = ingest(settings=settings, force=True)
    with Database(settings.db_path).session() as con:
        stored = dict(con.execute("SELECT article_id, story_id FROM articles").fetchall())
        run_rows = con.execute("SELECT dup_url, dup_guid FROM runs ORDER BY started_at").fetchall()
    truth = truth_by_article(items, site.link_of)
    assert set(stored) == set(truth)
    scores = score_pairs(truth, stored)
    print(
        f"\ndedup evaluation through the ingest flow: {len(stored)} articles, precision "
        f"{scores.precision:.3f}, recall {scores.recall:.3f}"
    )
    assert scores.precision >= 0.99 and scores.recall >= 0.95, scores
    assert (first.counts.feeds_failed, first.counts.errors, second.counts.errors) == (0, 0, 0)
    # In one run, an article two feeds carry (the URL variants) is downloaded by the feed that
    # claims it first and is a URL duplicate for the other. The second run lists every
    # first-run entry again: known by URL, or by GUID alone when the outlet moved the page.
    listed = [i for i in items if i.run == 1]
    variants = len(listed) - len({i.article_id for i in listed})
    guids = {(i.feed, i.guid) for i in listed if i.guid}
    moved = sum(1 for i in items if i.run == 2 and (i.feed, i.guid) in guids)
    assert (second.counts.dup_url, second.counts.dup_guid) == (len(listed) - moved, moved)
    assert run_rows == [(variants, 0), (len(listed) - moved, moved)]
