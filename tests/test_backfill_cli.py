"""`newsflow backfill` and `newsflow export`: exit codes, one-line errors, the summary."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from newsflow.cli.main import main
from tests.test_backfill import POSTS

ONE_LINE_ERRORS = [
    ([], "error: nothing to backfill: give --feeds, --from-dir, --urls, --sitemap or --reextract"),
    (
        ["--reextract", "--since", "2024-02-30"],
        "error: --since: not a day (YYYY-MM-DD): '2024-02-30'",
    ),
    (["--reextract", "--until", "March"], "error: --until: not a day (YYYY-MM-DD): 'March'"),
    (
        ["--reextract", "--since", "2024-03-02", "--until", "2024-03-01"],
        "error: --since 2024-03-02 is after --until 2024-03-01",
    ),
    (["--from-dir", "no/such/dir"], "error: --from-dir: not a directory: no/such/dir"),
    (["--urls", "no/such/file.txt"], "error: --urls: no such file: no/such/file.txt"),
    (["--sitemap", "file:///etc/passwd"], "error: --sitemap: not an http(s) URL"),
    (["--reextract", "--timezone", "Mars/Olympus"], "error: --timezone: unknown timezone"),
    (["--feeds", "no/such/feeds.toml"], "error: feeds file not found: no/such/feeds.toml"),
]


@pytest.mark.parametrize(("args", "message"), ONE_LINE_ERRORS)
def test_bad_arguments_are_one_line_errors(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["backfill", *args, "--db", str(tmp_path / "x.duckdb")]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith(message)
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert captured.out == ""


def test_a_broken_site_configuration_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "_config.yml").write_text("url: [\n", encoding="utf-8")
    assert main(["backfill", "--from-dir", str(tmp_path), "--db", str(tmp_path / "x.db")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot read site configuration") and err.count("\n") == 1


def test_export_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["export", "--format", "csv", "--out", str(tmp_path)])
    assert exc.value.code == 2
    capsys.readouterr()
    db = str(tmp_path / "x.duckdb")
    args = ["export", "--format", "jsonl", "--out", str(tmp_path), "--db", db]
    assert main([*args, "--since", "2024-03-02", "--until", "2024-03-01"]) == 1
    assert capsys.readouterr().err.startswith("error: --since 2024-03-02 is after")


def test_help_names_both_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "backfill" in out and "export" in out
    for command in ("backfill", "export"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "--since" in capsys.readouterr().out


@pytest.mark.usefixtures("prefect_harness")
def test_backfill_export_and_back_through_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.settings import PREFECT_API_URL

    # The CLI attaches to the test harness's server instead of looking for one of its own.
    monkeypatch.setenv("PREFECT_API_URL", str(PREFECT_API_URL.value()))
    db, copy = str(tmp_path / "a.duckdb"), str(tmp_path / "b.duckdb")

    assert main(["backfill", "--from-dir", str(POSTS), "--db", db]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        "backfill: 10 items read, 0 pages downloaded, 0 outside the window · "
        "1 files without front matter"
    )
    assert out[1] == "articles: 5 new, 0 updated, 1 duplicates · refused: 3 posts · errors: 4"
    assert out[2].endswith("(see the ingest_errors table)")

    assert main(["backfill", "--from-dir", str(POSTS), "--db", db, "-q"]) == 0
    assert "articles: 0 new, 0 updated, 6 duplicates" in capsys.readouterr().out

    out_dir = tmp_path / "export"
    assert main(["export", "--format", "markdown", "--out", str(out_dir), "--db", db]) == 0
    assert capsys.readouterr().out.startswith(f"exported 5 articles as markdown to {out_dir}")
    assert main(["backfill", "--from-dir", str(out_dir), "--db", copy]) == 0
    assert "articles: 5 new" in capsys.readouterr().out

    columns = "* EXCLUDE (first_seen_at, last_seen_at)"
    with duckdb.connect(db, read_only=True) as a, duckdb.connect(copy, read_only=True) as b:
        sql = f"SELECT {columns} FROM articles ORDER BY article_id"
        assert a.execute(sql).fetchall() == b.execute(sql).fetchall()
