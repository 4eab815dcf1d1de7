"""The `newsflow` command as a user meets it: exit codes, one-line errors, quiet output."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import duckdb
import pytest

from newsflow.cli.parser import build_parser
from tests.conftest import NEWSFLOW, free_port

ROOT = Path(__file__).resolve().parents[1]


def newsflow(
    *args: str, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*NEWSFLOW, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=(env or os.environ) | {"COLUMNS": "200"},
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )


def commands() -> list[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sorted(sub.choices)  # type: ignore[union-attr]


def test_every_command_has_help_and_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for command in commands():
        result = newsflow(command, "--help")
        assert result.returncode == 0, command
        assert "usage: newsflow " + command in result.stdout
        assert f"newsflow {command}" in readme, f"README does not show `newsflow {command}`"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["run", "--feeds", "no/such/feeds.toml"],
            "error: feeds file not found: no/such/feeds.toml",
        ),
        (["run", "--feeds", "{bad}"], "error: feeds file"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(tmp_path: Path, args: list[str], message: str) -> None:
    if "{bad}" in args:
        bad = tmp_path / "bad.toml"
        bad.write_text("[[feeds]\nurl = ", encoding="utf-8")
        args = [str(bad) if a == "{bad}" else a for a in args]
    result = newsflow(*args, "--db", str(tmp_path / "x.duckdb"))
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.stderr


def test_invalid_feed_entry_names_the_field(tmp_path: Path) -> None:
    feeds = tmp_path / "feeds.toml"
    feeds.write_text('[[feeds]]\nurl = "ftp://example.org/feed"\n', encoding="utf-8")
    result = newsflow("run", "--feeds", str(feeds), "--db", str(tmp_path / "x.duckdb"))
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: feeds file")
    assert "feeds.0.url" in result.stderr and "Traceback" not in result.stderr


def test_a_database_that_cannot_be_opened(tmp_path: Path) -> None:
    feeds = tmp_path / "feeds.toml"
    feeds.write_text("feeds = []\n", encoding="utf-8")
    not_a_db = tmp_path / "garbage.duckdb"
    not_a_db.write_bytes(b"this is not a duckdb file" * 100)
    result = newsflow("run", "--feeds", str(feeds), "--db", str(not_a_db))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot open database"), result.stderr


def test_unknown_command_is_a_usage_error() -> None:
    result = newsflow("frobnicate")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_demo_prints_a_summary_and_nothing_else(tmp_path: Path) -> None:
    db = tmp_path / "demo.duckdb"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect")
    result = newsflow("demo", "--db", str(db), "--port", str(free_port()), env=env)
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    # no orchestration noise: no Prefect log lines, no server shutdown chatter
    assert not re.search(r"\| (INFO|WARNING|ERROR) +\|", output), output
    assert "Stopping temporary server" not in output
    assert re.search(r"articles: \d+ new", result.stdout)
    assert "latest articles" in result.stdout
    con = duckdb.connect(str(db), read_only=True)
    (count,) = con.execute("SELECT count(*) FROM articles").fetchone()  # type: ignore[misc]
    con.close()
    assert count >= 30


def test_demo_port_in_use_is_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = newsflow("demo", "--port", str(port), "--db", str(tmp_path / "d.duckdb"))
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: --port {port}: Address already in use"
    assert "Traceback" not in result.stdout + result.stderr
