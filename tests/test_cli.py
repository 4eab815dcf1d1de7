"""The `newsflow` command as a user meets it: exit codes, one-line errors, quiet output.

In-process through the CLI's `main`, but for the demo's whole run, which checks what a user's
terminal shows of a real process (no Prefect log lines, no server chatter).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
from pathlib import Path

import duckdb
import pytest

from newsflow.cli.main import main
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


def test_every_command_has_help_and_is_in_the_readme(capsys: pytest.CaptureFixture[str]) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for command in commands():
        with pytest.raises(SystemExit) as exited:
            main([command, "--help"])
        assert exited.value.code == 0, command
        assert "usage: newsflow " + command in capsys.readouterr().out
        assert f"newsflow {command}" in readme, f"README does not show `newsflow {command}`"


def one_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    return lines[0]


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
def test_bad_input_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    if "{bad}" in args:
        bad = tmp_path / "bad.toml"
        bad.write_text("[[feeds]\nurl = ", encoding="utf-8")
        args = [str(bad) if a == "{bad}" else a for a in args]
    assert main([*args, "--db", str(tmp_path / "x.duckdb")]) == 1
    assert one_line(capsys).startswith(message)


def test_invalid_feed_entry_names_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    feeds = tmp_path / "feeds.toml"
    feeds.write_text('[[feeds]]\nurl = "ftp://example.org/feed"\n', encoding="utf-8")
    assert main(["run", "--feeds", str(feeds), "--db", str(tmp_path / "x.duckdb")]) == 1
    line = one_line(capsys)
    assert line.startswith("error: feeds file") and "feeds.0.url" in line


@pytest.mark.usefixtures("harness_api")
def test_a_database_that_cannot_be_opened(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    feeds = tmp_path / "feeds.toml"
    feeds.write_text("feeds = []\n", encoding="utf-8")
    not_a_db = tmp_path / "garbage.duckdb"
    not_a_db.write_bytes(b"this is not a duckdb file" * 100)
    assert main(["run", "--feeds", str(feeds), "--db", str(not_a_db)]) == 1
    assert one_line(capsys).startswith("error: cannot open database")


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["frobnicate"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice" in err and "Traceback" not in err


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


@pytest.mark.usefixtures("harness_api")
def test_demo_port_in_use_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["demo", "--port", str(port), "--db", str(tmp_path / "d.duckdb")]) == 1
    assert one_line(capsys) == f"error: --port {port}: Address already in use"
