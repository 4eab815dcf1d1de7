"""Every SQL block of the README's cookbook runs and returns rows on a database built by loading
the labelled set, dated up to yesterday."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from newsflow.schemas.models import FeedBatch, FeedCheck, IngestErrorRecord, RunCounts
from newsflow.tasks.storage.load import load_batch
from newsflow.tasks.storage.runs import finish_run, start_run
from newsflow.tasks.storage.store import Database
from tests.labelled import FEED, load_labelled, read_labelled, shift_to_now

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SQL_BLOCK = re.compile(r"```sql\n(.*?)```", re.DOTALL)


def sql_blocks() -> Iterator[tuple[str, str]]:
    for n, block in enumerate(SQL_BLOCK.findall(README.read_text(encoding="utf-8")), 1):
        yield f"README#{n}", block


BLOCKS = dict(sql_blocks())


def test_the_cookbook_has_enough_queries() -> None:
    assert len(BLOCKS) >= 6


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Database:
    db = Database(tmp_path_factory.mktemp("cookbook") / "news.duckdb")
    items = read_labelled()
    load_labelled(db, items, shift_to_now(items))
    # A run with an error too, so that queries about runs and errors have rows.
    run = start_run(db, "ingest", {})
    error = IngestErrorRecord(stage="download", url="https://x.example/1", kind="http_404",
                              message="not found", feed_url=FEED)  # fmt: skip
    check = FeedCheck(url=FEED, ok=True, status_code=200)
    load_batch(db, run, FeedBatch(feed_url=FEED, check=check, errors=[error]))
    finish_run(db, run, RunCounts(feeds_checked=1, errors=1))
    return db


@pytest.mark.parametrize("name", list(BLOCKS))
def test_query_returns_rows(db: Database, name: str) -> None:
    with db.session() as con:
        rows = con.execute(BLOCKS[name]).fetchall()
    assert rows, f"{name} returned no rows"
