"""Every SQL block of the README's cookbook runs and returns rows on a database built by loading
the labelled set, dated up to yesterday, and on the demo's database (articles of 2024); the
`duckdb` shell installed with newsflow opens a database newsflow wrote."""

from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from newsflow.demo.catalogue import demo_feeds_toml
from newsflow.demo.site import SiteServer
from newsflow.flows.ingest import ingest
from newsflow.schemas.models import FeedBatch, FeedCheck, IngestErrorRecord, RunCounts
from newsflow.tasks.storage.load import load_batch
from newsflow.tasks.storage.runs import finish_run, start_run
from newsflow.tasks.storage.store import Database
from tests.conftest import make_settings
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


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> Path:
    """What `newsflow demo` builds: the bundled sample site, ingested."""
    settings = make_settings(tmp_path_factory.mktemp("demo"))
    with SiteServer() as site:
        settings.feeds_path.write_text(demo_feeds_toml(site.base_url), encoding="utf-8")
        ingest(settings=settings, force=True)
    return settings.db_path


@pytest.mark.parametrize("name", list(BLOCKS))
def test_query_returns_rows(db: Database, name: str) -> None:
    with db.session() as con:
        rows = con.execute(BLOCKS[name]).fetchall()
    assert rows, f"{name} returned no rows"


@pytest.mark.parametrize("name", list(BLOCKS))
def test_query_returns_rows_on_the_demo_database(demo_db: Path, name: str) -> None:
    with duckdb.connect(str(demo_db), read_only=True) as con:
        rows = con.execute(BLOCKS[name]).fetchall()
    assert rows, f"{name} returned no rows on the demo database"


def test_the_duckdb_shell_reads_what_newsflow_wrote(demo_db: Path) -> None:
    """The `duckdb` command of the venv newsflow is installed in (duckdb-cli) opens the file:
    its storage version is one the shell reads (DuckDB 2.x files are not)."""
    shell = shutil.which("duckdb", path=str(Path(sys.executable).parent))
    assert shell is not None, "no duckdb shell beside this Python: pip install -e ."
    with duckdb.connect(str(demo_db), read_only=True) as con:
        expected = con.execute(
            "SELECT article_id, title FROM articles ORDER BY article_id"
        ).fetchall()
    done = subprocess.run(
        [shell, "-readonly", "-csv", str(demo_db),
         "-c", "SELECT article_id, title FROM articles ORDER BY article_id"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [tuple(r) for r in csv.reader(io.StringIO(done.stdout))]
    assert rows[0] == ("article_id", "title")
    assert rows[1:] == expected and len(expected) > 10
