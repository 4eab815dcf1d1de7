"""Read commands never create or change a database, and data never drives the terminal.

In-process, through the CLI's `main`: no Prefect server is needed for these commands.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import duckdb
import pytest

from newsflow.cli.main import main
from newsflow.cli.text import visible
from newsflow.schemas.models import FeedBatch, FeedCheck, utcnow
from newsflow.tasks.storage.load import load_batch
from newsflow.tasks.storage.runs import start_run
from newsflow.tasks.storage.store import Database


@pytest.mark.parametrize(
    "args",
    [
        ["export", "--format", "jsonl", "--out", "OUT"],
        ["feeds", "--feeds", "FEEDS"],
        ["report", "--out", "OUT"],
    ],
)
def test_a_read_command_on_a_missing_file_says_so_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    db = tmp_path / "typo.duckdb"
    feeds = tmp_path / "feeds.toml"
    feeds.write_text('[[feeds]]\nurl = "https://example.org/feed.xml"\n', encoding="utf-8")
    argv = [a.replace("OUT", str(tmp_path / "out")).replace("FEEDS", str(feeds)) for a in args]
    assert main([*argv, "--db", str(db)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"error: no database at {db}"
    assert not db.exists() and not Path(f"{db}.lock").exists()


def test_a_duckdb_file_that_is_not_newsflow_is_left_as_it_was(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "other.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE mine (x INTEGER)")
    assert main(["export", "--format", "jsonl", "--out", str(tmp_path / "o"), "--db", str(db)]) == 1
    assert "is not a newsflow database" in capsys.readouterr().err
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("SELECT table_name FROM information_schema.tables").fetchall()
    tables = {r[0] for r in rows}
    assert tables == {"mine"}


def _database_with_a_failing_feed(path: Path, name: str, error: str) -> None:
    db = Database(path)
    run_id = start_run(db, "ingest", {})
    url = "https://example.org/feed.xml"
    check = FeedCheck(url=url, ok=False, error_kind="http_404", error=error, checked_at=utcnow())
    load_batch(db, run_id, FeedBatch(feed_url=url, check=check), name=name)


def test_feeds_shows_markup_and_escape_sequences_as_text_and_reads_a_read_only_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "news.duckdb"
    error = "404 Not Found [/bold] [link=https://evil.example]click[/link] [blink red]x"
    _database_with_a_failing_feed(db, "evil\x1b]8;;https://evil.example\x07name", error)
    feeds = tmp_path / "feeds.toml"
    feeds.write_text(
        '[[feeds]]\nurl = "https://example.org/feed.xml"\n'
        'name = "evil\\u001b]8;;https://evil.example\\u0007name"\n',
        encoding="utf-8",
    )
    db.chmod(stat.S_IRUSR)
    try:
        code = main(["feeds", "--db", str(db), "--feeds", str(feeds)])
    finally:
        db.chmod(stat.S_IRUSR | stat.S_IWUSR)
    printed = capsys.readouterr().out
    assert code == 0
    assert "\x1b" not in printed and "\\x1b" in printed
    # The table folds long cells: read its text without the frame and the spaces.
    compact = "".join(c for c in printed if c.isascii() and not c.isspace() and c != "|")
    assert "[/bold][link=https://evil.example]click[/link][blinkred]x" in compact


def test_enable_and_disable_of_one_feed_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "news.duckdb"
    args = ["feeds", "--db", str(db), "--enable", "x", "--disable", "x"]
    assert main(args) == 1
    assert capsys.readouterr().err.strip() == "error: --enable and --disable both name x"
    assert not db.exists()


def test_visible_writes_control_characters_out() -> None:
    assert visible("a\x1b[31mb\x07\tc\n") == "a\\x1b[31mb\\x07\tc\n"
    assert os.linesep not in visible("\x85")


@pytest.mark.parametrize("port", ["70000", "-1"])
def test_demo_port_out_of_range_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], port: str
) -> None:
    assert main(["demo", "--port", port, "--db", str(tmp_path / "d.duckdb")]) == 1
    assert (
        capsys.readouterr().err.strip() == f"error: --port {port}: not a port number (0 to 65535)"
    )
