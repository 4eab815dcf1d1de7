"""Every error path a user meets is one `error: …` line on stderr and a non-zero exit, never a
traceback; and what the CLI says while it works (the lock it waits for, the feeds it lists).

In-process through the CLI's `main` (capsys), except where a second process is the point:
holding the database lock, and Ctrl-C during a run.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from newsflow.cli.main import main
from newsflow.schemas.config import load_feeds_file
from newsflow.schemas.models import ArticleBatch
from newsflow.tasks.progress import NOTICES
from newsflow.tasks.storage.load import load_articles
from newsflow.tasks.storage.runs import start_run
from newsflow.tasks.storage.store import Database
from tests.conftest import free_port
from tests.test_archive_sitemap import SITE_DIR, serve_site
from tests.test_cli_read_commands import _database_with_a_failing_feed
from tests.test_load import article

ROOT = Path(__file__).resolve().parents[1]


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert "Traceback" not in err
    return err.strip()


def _refuses_writes(folder: Path) -> bool:
    try:
        (folder / ".probe").mkdir()
    except OSError:
        return True
    (folder / ".probe").rmdir()
    return False


@pytest.fixture
def unwritable(tmp_path: Path) -> Iterator[Path]:
    """A folder nothing can be created in: a read-only one, or, where the tests run as root
    (who may write anywhere the modes forbid), sysfs, which takes no new files."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if _refuses_writes(folder):
            yield folder
        elif _refuses_writes(Path("/sys")):
            yield Path("/sys")
        else:
            pytest.skip("no folder here refuses writes")
    finally:
        folder.chmod(0o755)


def runs(db: Path) -> list[tuple[str, str]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("SELECT run_id, status FROM runs").fetchall()


# --- the database file ---------------------------------------------------------------------


def test_db_in_a_folder_that_cannot_be_written(
    unwritable: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = unwritable / "news.duckdb"
    assert main(["retag", "--db", str(db)]) == 1
    assert one_error_line(capsys).startswith(f"error: cannot open database {db}: ")


@pytest.mark.parametrize("under", ["file/news.duckdb", "file/deeper/news.duckdb"])
def test_db_under_a_path_whose_parent_is_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], under: str
) -> None:
    (tmp_path / "file").write_text("not a folder", encoding="utf-8")
    db = tmp_path / under
    assert main(["retag", "--db", str(db)]) == 1
    assert one_error_line(capsys) == (
        f"error: cannot open database {db}: {tmp_path / 'file'} is a file, not a folder"
    )


HOLD_THE_LOCK = """
import sys
from pathlib import Path
from newsflow.tasks.storage.store import Database
with Database(Path(sys.argv[1])).session():
    print("held", flush=True)
    sys.stdin.read()
"""


def test_waiting_for_the_lock_says_whom_for_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "news.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_LOCK, str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdin is not None
    assert holder.stdout.readline() == "held\n"
    stdin = holder.stdin

    class Release(logging.Handler):
        """Lets the holder go once the waiting was told: the command then goes on."""

        def emit(self, record: logging.LogRecord) -> None:
            stdin.close()

    release = Release()
    NOTICES.addHandler(release)
    try:
        assert main(["retag", "--db", str(db)]) == 0
    finally:
        NOTICES.removeHandler(release)
        if not stdin.closed:
            stdin.close()
        holder.wait(timeout=60)
    err = capsys.readouterr().err
    assert err == f"waiting for {db}, held by pid {holder.pid}…\n"


# --- export --------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["markdown", "parquet", "jsonl"])
def test_export_into_a_folder_that_cannot_be_written(
    tmp_path: Path, unwritable: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    db = Database(tmp_path / "news.duckdb")
    load_articles(db, start_run(db, "backfill", {}), ArticleBatch(articles=[article(1)]))
    args = ["export", "--format", fmt, "--out", str(unwritable), "--db", str(db.path)]
    assert main(args) == 1
    assert one_error_line(capsys).startswith(f"error: cannot write in {unwritable}: ")


# --- demo ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("harness_api")
def test_demo_from_a_folder_that_cannot_be_written(
    unwritable: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(unwritable)
    assert main(["demo", "-q", "--port", str(free_port())]) == 1
    db = unwritable / "data" / "demo.duckdb"
    assert one_error_line(capsys).startswith(f"error: cannot open database {db}: ")


def test_demo_help_names_its_own_database(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "default: data/demo.duckdb, whatever $NEWSFLOW_DB says" in help_text


# --- Prefect and Dask ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "flags", [["--runner", "dask"], ["--dask-address", "tcp://127.0.0.1:8786"]]
)
def test_dask_without_the_scale_extra_is_told_before_any_run(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    flags: list[str],
) -> None:
    # What an environment without prefect-dask looks like to an import.
    monkeypatch.setitem(sys.modules, "prefect_dask", None)
    feeds = tmp_path / "feeds.toml"
    feeds.write_text("feeds = []\n", encoding="utf-8")
    db = tmp_path / "news.duckdb"
    assert main(["run", *flags, "--feeds", str(feeds), "--db", str(db)]) == 1
    assert one_error_line(capsys) == (
        "error: --runner dask needs the scale extra (prefect_dask not installed): "
        "pip install 'newsflow[scale]'"
    )
    assert not db.exists()  # no run was started, let alone recorded as crashed


def test_run_against_an_unreachable_prefect_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    api = f"http://127.0.0.1:{free_port()}/api"
    monkeypatch.setenv("PREFECT_API_URL", api)
    feeds = tmp_path / "feeds.toml"
    feeds.write_text("feeds = []\n", encoding="utf-8")
    db = tmp_path / "news.duckdb"
    assert main(["run", "--feeds", str(feeds), "--db", str(db)]) == 1
    assert one_error_line(capsys).startswith(
        f"error: the Prefect server at {api} (PREFECT_API_URL) does not answer: "
    )
    assert runs(db) == []


@pytest.mark.slow
def test_ctrl_c_during_a_run_is_one_line(tmp_path: Path, prefect_harness: None) -> None:
    from prefect.settings import PREFECT_API_URL

    with socket.socket() as server:  # a feed server that accepts and never answers
        server.bind(("127.0.0.1", 0))
        server.listen()
        feeds = tmp_path / "feeds.toml"
        url = f"http://127.0.0.1:{server.getsockname()[1]}/feed.xml"
        feeds.write_text(f'[[feeds]]\nurl = "{url}"\n', encoding="utf-8")
        env = os.environ | {
            "PREFECT_API_URL": str(PREFECT_API_URL.value()),
            "NEWSFLOW_ALLOW_PRIVATE_NETWORKS": "1",
        }
        argv = ["run", "--feeds", str(feeds), "--db", str(tmp_path / "news.duckdb")]
        child = subprocess.Popen(
            [sys.executable, "-m", "newsflow.cli.main", *argv],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        server.settimeout(120)
        connection, _ = server.accept()  # the run is polling the feed
        with connection:
            child.send_signal(signal.SIGINT)
            out, err = child.communicate(timeout=120)
    assert child.returncode == 130
    assert (out, err) == ("", "interrupted\n")


# --- feeds ---------------------------------------------------------------------------------


def test_feeds_dropped_from_the_file_keep_their_health(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "news.duckdb"
    _database_with_a_failing_feed(db, "dropped", "HTTP 404 Not Found")
    feeds = tmp_path / "feeds.toml"
    feeds.write_text('[[feeds]]\nurl = "https://example.org/other.xml"\n', encoding="utf-8")
    assert main(["feeds", "--db", str(db), "--feeds", str(feeds)]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "dropped" in line)
    assert "failing, not in file" in row and "never (not in file)" in row
    # The table folds long cells: read its text without the frame and the spaces.
    compact = "".join(c for c in out if c.isascii() and not c.isspace())
    assert "http_404:HTTP404NotFound" in compact
    assert "1 in the database, no longer in the feeds file (kept, not polled)" in out


def test_two_feeds_of_one_name_are_refused_when_the_file_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    feeds = tmp_path / "feeds.toml"
    feeds.write_text(
        '[[feeds]]\nurl = "https://a.example/feed"\nname = "twin"\n'
        '[[feeds]]\nurl = "https://b.example/feed"\nname = "twin"\n',
        encoding="utf-8",
    )
    db = tmp_path / "news.duckdb"
    assert main(["feeds", "--feeds", str(feeds), "--db", str(db)]) == 1
    assert one_error_line(capsys) == f"error: feeds file {feeds}: two feeds named 'twin'"


def test_the_shipped_feeds_file_has_no_twins() -> None:
    shipped = load_feeds_file(ROOT / "feeds.toml")  # refuses a URL or a name twice
    text = (ROOT / "feeds.toml").read_text(encoding="utf-8")
    assert text.count('"cls-telegraph"') == 1
    assert len({f.url for f in shipped.feeds}) == len(shipped.feeds)


def test_an_empty_feeds_file_says_there_are_no_feeds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = Database(tmp_path / "news.duckdb")
    with db.session():
        pass
    feeds = tmp_path / "feeds.toml"
    feeds.write_text("", encoding="utf-8")
    assert main(["feeds", "--feeds", str(feeds), "--db", str(db.path)]) == 0
    assert capsys.readouterr().out == f"no feeds: none in {feeds} nor in the database\n"


@pytest.mark.usefixtures("harness_api")
def test_a_run_over_an_empty_feeds_file_says_there_are_no_feeds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    feeds = tmp_path / "feeds.toml"
    feeds.write_text("", encoding="utf-8")
    assert main(["run", "--feeds", str(feeds), "--db", str(tmp_path / "news.duckdb")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[2] == f"no feeds in {feeds}" and "no feed was due" not in "".join(out)


# --- flags ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["export", "--format", "jsonl", "--out", "OUT", "--since", "May"], "--since: not a day"),
        (["export", "--format", "jsonl", "--out", "OUT", "--until", "x"], "--until: not a day"),
        (["backfill", "--base-url", "ftp://x", "--reextract"], "--base-url: not an http(s)"),
        (["run", "--shard", "2"], "--shard: not I/N"),
        (
            ["export", "--format", "jsonl", "--out", "OUT", "--timezone", "Mars/Olympus"],
            "--timezone: unknown",
        ),
    ],
)
def test_errors_name_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    argv = [a.replace("OUT", str(tmp_path / "out")) for a in args]
    assert main([*argv, "--db", str(tmp_path / "news.duckdb")]) == 1
    assert one_error_line(capsys).startswith(f"error: {message}")


# --- backfill ------------------------------------------------------------------------------


@pytest.mark.usefixtures("harness_api")
def test_a_url_file_over_the_cap_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    urls = tmp_path / "urls.txt"
    with urls.open("wb") as f:  # sparse: 17 MiB that take no room
        f.truncate(17 * 1024 * 1024)
    db = tmp_path / "news.duckdb"
    assert main(["backfill", "--urls", str(urls), "--db", str(db)]) == 1
    assert one_error_line(capsys) == (
        f"error: cannot read URL file {urls}: {17 * 1024 * 1024} bytes, "
        f"over the cap of {16 * 1024 * 1024}"
    )


@pytest.mark.usefixtures("harness_api")
def test_reextract_reports_updated_rows_as_updated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from newsflow.demo.site import SiteServer

    monkeypatch.setenv("NEWSFLOW_ALLOW_PRIVATE_NETWORKS", "1")
    root = tmp_path / "site"
    shutil.copytree(SITE_DIR, root)
    db = str(tmp_path / "news.duckdb")
    with SiteServer(root) as site:
        serve_site(site)
        urls = tmp_path / "urls.txt"
        text = (SITE_DIR / "urls.txt").read_text(encoding="utf-8")
        urls.write_text(text.replace("{base}", site.base_url), encoding="utf-8")
        assert main(["backfill", "-q", "--urls", str(urls), "--db", db]) == 0
        capsys.readouterr()
        page = root / "articles" / "a3.html"
        page.write_text(
            page.read_text(encoding="utf-8").replace(
                "to six more cities on Sunday", "to nine more cities on Sunday"
            ),
            encoding="utf-8",
        )
        window = ["--since", "2024-03-01", "--until", "2024-03-31"]
        assert main(["backfill", "-q", "--reextract", *window, "--db", db]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("articles: 0 new, 1 updated, 2 duplicates"), out
