"""`newsflow run` as a user runs it, over a site where a dozen and more feeds are hostile
beside healthy ones: exit 0, no traceback, bounded time and memory, every healthy article
stored and correctly decoded, every hostile feed its error rows and a sensible status. And,
without NEWSFLOW_ALLOW_PRIVATE_NETWORKS, not one request reaches the loopback site.

(`benchmarks/hostile_run.py` adds the cases that take a default run its full deadlines.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.faults.harness import FaultRun, GiB, MemoryWatch, feeds_toml, last_run
from tests.faults.web import HostileWeb, hostile_web
from tests.loopback import LoopbackServer

NEWSFLOW = str(Path(sys.executable).with_name("newsflow"))


def newsflow_run(tmp_path: Path, *, allow_private: bool) -> tuple[FaultRun, str]:
    """`newsflow run --force` in a child process, reporting to the session's Prefect server;
    returns the run read back from its database and everything it printed."""
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    env.pop("NEWSFLOW_ALLOW_PRIVATE_NETWORKS", None)
    if allow_private:
        env["NEWSFLOW_ALLOW_PRIVATE_NETWORKS"] = "1"
    db = tmp_path / f"{'allowed' if allow_private else 'default'}.duckdb"
    argv = [NEWSFLOW, "run", "--force", "--feeds", str(tmp_path / "feeds.toml"), "--db", str(db)]
    started = time.monotonic()
    child = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    with MemoryWatch(child.pid) as watch:
        out, err = child.communicate(timeout=300)
    assert child.returncode == 0, err
    return last_run(db, time.monotonic() - started, watch), out + err


@pytest.fixture(scope="module")
def web(server: LoopbackServer) -> HostileWeb:
    return hostile_web(server)


@pytest.mark.slow
def test_newsflow_run_over_a_hostile_web(
    tmp_path: Path, web: HostileWeb, prefect_harness: None
) -> None:
    (tmp_path / "feeds.toml").write_text(
        feeds_toml([*web.hostile, *(f.url for f in web.healthy)]), encoding="utf-8"
    )
    run, printed = newsflow_run(tmp_path, allow_private=True)
    print(f"newsflow run: {run.seconds:.1f} s, PSS {run.peak_memory / 2**20:.0f} MiB\n{printed}")
    assert "Traceback" not in printed
    assert f"feeds: {len(web.hostile) + len(web.healthy)} checked" in printed
    assert run.seconds < 120
    assert run.peak_memory < 1 * GiB
    for feed in web.healthy:
        run.assert_loaded_in_full(feed)
    for url, (kinds, status) in web.hostile.items():
        assert set(run.kinds(url)) == kinds, url
        assert run.feed(url)["status"] == status, url
    assert run.feeds_with_errors() == set(web.hostile)


@pytest.mark.slow
def test_loopback_refused_without_allow_private_networks(
    tmp_path: Path, web: HostileWeb, server: LoopbackServer, prefect_harness: None
) -> None:
    urls = [*web.hostile, *(f.url for f in web.healthy)]
    (tmp_path / "feeds.toml").write_text(feeds_toml(urls), encoding="utf-8")
    hits = len(server.hits)
    run, printed = newsflow_run(tmp_path, allow_private=False)
    assert len(server.hits) == hits  # not a single request
    assert "Traceback" not in printed
    for url in urls:
        assert run.kinds(url) == ["blocked_address"]
