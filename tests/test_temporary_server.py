"""The temporary Prefect server a one-shot CLI run starts itself: up on a free port, a clear
error when it cannot start, and nothing left behind when the command ends, even killed."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from newsflow.runtime.local_server import TemporaryServer
from newsflow.runtime.prefect_env import local_server_healthy, prepare_prefect
from newsflow.schemas.errors import ServerError
from tests.conftest import NEWSFLOW, cli_env

pytestmark = pytest.mark.slow


def lean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {"PREFECT_HOME": str(tmp_path / "prefect-home"), "NEWSFLOW_PREFECT_PORT": "1"}
    assert prepare_prefect(env) == "temporary"
    return env


def test_it_finds_another_port_when_its_own_was_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = TemporaryServer(lean_env(tmp_path), port=port)
        try:
            api_url = server.wait(timeout=90)
            assert f":{port}/" not in api_url
            assert local_server_healthy(api_url)
        finally:
            server.stop()
    assert not local_server_healthy(api_url)


def test_a_server_that_cannot_start_says_why_in_one_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    env = lean_env(tmp_path) | {"PREFECT_LOGGING_LEVEL": "NOT-A-LEVEL"}
    server = TemporaryServer(env)
    with pytest.raises(ServerError) as raised:
        server.wait(timeout=90)
    server.stop()  # what the CLI does at exit
    message = str(raised.value)
    prefix = "the Prefect server stopped while starting (exit 1); its log: "
    assert message.startswith(prefix) and "\n" not in message, message
    log = Path(message.removeprefix(prefix))
    assert log.parent == tmp_path
    assert "NOT-A-LEVEL" in log.read_text(encoding="utf-8")


def _temporary_servers(prefect_home: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if "prefect.server.api.server:create_app" not in (proc.info["cmdline"] or []):
                continue
            if proc.environ().get("PREFECT_HOME") == str(prefect_home):
                found.append(proc)
        except psutil.Error:
            continue
    return found


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A TMPDIR for a child: a short path, as the worker processes' socket goes in a folder
    under it and holds at most 107 bytes (pytest-xdist's tmp_path would leave too few)."""
    folder = Path(tempfile.mkdtemp(prefix="nf-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def one_shot_env(tmp_path: Path, scratch: Path) -> dict[str, str]:
    """A `newsflow run` child's environment with no feed and no Prefect server to attach to,
    its temporary files kept in `scratch`."""
    (tmp_path / "feeds.toml").write_text("feeds = []\n", encoding="utf-8")
    env = cli_env(tmp_path, TMPDIR=str(scratch))
    return {k: v for k, v in env.items() if not k.startswith("PREFECT_") or k == "PREFECT_HOME"}


def test_a_temporary_folder_too_long_for_a_socket_is_one_line(tmp_path: Path) -> None:
    deep = tmp_path / ("t" * 110)
    deep.mkdir()
    result = subprocess.run(
        [*NEWSFLOW, "run", "--quiet"],
        capture_output=True, text=True, timeout=180, env=one_shot_env(tmp_path, deep),
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot start worker processes: AF_UNIX path too long")
    assert result.stderr.count("\n") == 1 and "set TMPDIR to a shorter folder" in result.stderr
    assert not _temporary_servers(tmp_path / "prefect-home")


def test_a_one_shot_run_leaves_no_server_and_no_files_behind(tmp_path: Path, scratch: Path) -> None:
    env = one_shot_env(tmp_path, scratch)
    result = subprocess.run(
        [*NEWSFLOW, "run", "--quiet"],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "feeds: 0 checked" in result.stdout
    assert not _temporary_servers(tmp_path / "prefect-home")
    assert not list(scratch.iterdir())


def test_a_killed_run_takes_its_server_along(tmp_path: Path, scratch: Path) -> None:
    env = one_shot_env(tmp_path, scratch)
    run = subprocess.Popen(
        [*NEWSFLOW, "run", "--quiet"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    home = tmp_path / "prefect-home"
    deadline = time.monotonic() + 60
    while not _temporary_servers(home):
        assert time.monotonic() < deadline and run.poll() is None, "no server started"
        time.sleep(0.05)
    run.kill()
    run.wait()
    deadline = time.monotonic() + 20
    while _temporary_servers(home):
        assert time.monotonic() < deadline, "the server outlived the killed run"
        time.sleep(0.1)
    assert not list(scratch.iterdir())
