"""Shared fixtures: one Prefect test harness per session, temporary databases, settings."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.runtime import prepare_prefect

# Before Prefect is imported anywhere: the harness's temporary server starts lean and quiet.
prepare_prefect(os.environ)
os.environ.pop("PREFECT_API_URL", None)

from schemas.config import FetchLimits, Settings  # noqa: E402


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    from flows.runtime import silence_shutdown_noise

    with prefect_test_harness(server_startup_timeout=120):
        silence_shutdown_noise()
        yield


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
