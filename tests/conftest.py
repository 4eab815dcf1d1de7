"""Shared fixtures: one Prefect test harness per session, temporary databases, settings."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from newsflow.runtime.prefect_env import prepare_prefect

# Before Prefect is imported anywhere: the harness's temporary server starts lean and quiet.
prepare_prefect(os.environ)
os.environ.pop("PREFECT_API_URL", None)

from newsflow.runtime.local_server import free_port  # noqa: E402
from newsflow.schemas.config import FetchLimits, Settings  # noqa: E402


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that run flows on the Prefect engine (they need the harness's server) are marked
    `engine`: `make test-fast` leaves them out, with the `slow` ones (subprocesses, servers)."""
    for item in items:
        if "prefect_harness" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.engine)


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    from newsflow.runtime.prefect_env import silence_shutdown_noise

    with prefect_test_harness(server_startup_timeout=120):
        silence_shutdown_noise()
        yield


@pytest.fixture
def harness_api(monkeypatch: pytest.MonkeyPatch, prefect_harness: None) -> None:
    """The CLI in-process attaches to the test harness's server instead of starting its own."""
    from prefect.settings import PREFECT_API_URL

    monkeypatch.setenv("PREFECT_API_URL", str(PREFECT_API_URL.value()))


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    """Settings for tests: loopback allowed, no retries or politeness waits, a temp database."""
    fetch = {
        "allow_private_networks": True,
        "retries": 0,
        "retry_backoff": 0.0,
        "max_retry_wait": 0.0,
        "connect_timeout": 5.0,
        "read_timeout": 5.0,
        "total_deadline": 15.0,
    }
    fetch.update(overrides.pop("fetch", {}))  # type: ignore[arg-type]
    values: dict[str, object] = {
        "db_path": tmp_path / "news.duckdb",
        "feeds_path": tmp_path / "feeds.toml",
        "fetch": FetchLimits(**fetch),  # type: ignore[arg-type]
        "extract_workers": 2,
        "extract_deadline": 20.0,
        "show_progress": False,
        "lock_timeout": 60.0,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


# The CLI as a user runs it, in a child process.
NEWSFLOW = [sys.executable, "-m", "newsflow.cli.main"]


@pytest.fixture(autouse=True)
def _fast_lane_runs_no_cli_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """`make test-fast` (NEWSFLOW_TEST_LANE=fast) holds no test that starts the CLI as a
    process: such a test fails there, asking to be marked slow or to call `main` in-process."""
    if os.environ.get("NEWSFLOW_TEST_LANE") != "fast":
        return
    popen = subprocess.Popen.__init__

    def refuse_cli(self: subprocess.Popen[Any], args: Any, *rest: Any, **kw: Any) -> None:
        if isinstance(args, list | tuple) and list(args[: len(NEWSFLOW)]) == NEWSFLOW:
            pytest.fail("starts the newsflow CLI as a process: mark it slow, or call main()")
        popen(self, args, *rest, **kw)

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse_cli)


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Environment of a `newsflow` child process: its database, feeds file and Prefect home in
    tmp_path, loopback allowed, and no attaching to a Prefect server someone runs on 4200."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(
        {
            "NEWSFLOW_DB": str(tmp_path / "news.duckdb"),
            "NEWSFLOW_FEEDS": str(tmp_path / "feeds.toml"),
            "NEWSFLOW_ALLOW_PRIVATE_NETWORKS": "1",
            "NEWSFLOW_PREFECT_PORT": str(free_port()),
            "PREFECT_HOME": str(tmp_path / "prefect-home"),
        }
    )
    env.update(extra)
    return env


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    """Poll a condition that offers nothing to block on (another process's progress)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
