"""The evaluation set, clustered by the real code: page extraction, the URL and GUID layers,
load_batch into a temporary DuckDB file over two runs; scored pair by pair."""

from __future__ import annotations

from pathlib import Path

from schemas.models import RunCounts
from tasks.store import Database
from tests.dedup_set import load_items, read_items, score_pairs


def test_evaluation_set_precision_and_recall(tmp_path: Path) -> None:
    items = read_items()
    db = Database(tmp_path / "eval.duckdb")
    counts = sum(load_items(db, items), RunCounts())
    with db.session() as con:
        stored = dict(con.execute("SELECT article_id, story_id FROM articles").fetchall())
        rows, urls = con.execute(
            "SELECT count(*), count(DISTINCT canonical_url) FROM articles"
        ).fetchone()  # type: ignore[misc]

    # An entry whose GUID the feed carried in an earlier run is never downloaded: its new URL
    # gets no row. Every other item is a row, URL variants sharing their original's.
    first_run_guids = {(i.feed, i.guid) for i in items if i.run == 1 and i.guid}
    moved = {i.article_id for i in items if i.run > 1 and (i.feed, i.guid) in first_run_guids}
    truth = {i.article_id: i.story for i in items if i.article_id not in moved}
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
