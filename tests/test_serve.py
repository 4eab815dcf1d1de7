"""Deployments and `newsflow serve`: the yaml's entrypoints load with Prefect's own loader, and
serve, started as a user starts it, registers the cron deployment on a local server of its own,
runs a triggered flow run, and stops everything on SIGTERM."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from newsflow.demo.catalogue import demo_feeds_toml
from newsflow.demo.site import SiteServer
from newsflow.runtime.prefect_env import local_server_healthy
from newsflow.runtime.serve import DEPLOYMENTS_FILE, fill_parameters, read_deployments
from newsflow.tasks.storage.store import Database
from tests.conftest import NEWSFLOW, cli_env, free_port, wait_for

ROOT = Path(__file__).resolve().parents[1]
ENTRIES = yaml.safe_load(DEPLOYMENTS_FILE.read_text(encoding="utf-8"))["deployments"]


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["name"] for e in ENTRIES])
def test_entrypoint_loads_with_prefects_loader(
    entry: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.flows import load_flow_from_entrypoint

    path = entry["entrypoint"].partition(":")[0]
    if not (ROOT / path).exists():
        pytest.skip(f"{path} is not on this branch yet")
    monkeypatch.chdir(ROOT)  # `prefect deploy` runs from the project directory
    flow = load_flow_from_entrypoint(entry["entrypoint"])
    assert flow.name == entry["name"]
    # Every parameter the yaml sets is one the flow takes, with a value it accepts.
    flow.validate_parameters(entry["parameters"])


def test_serve_reads_the_same_deployments_as_prefect_deploy() -> None:
    specs = {s.name: s for s in read_deployments()}
    assert specs.keys() == {e["name"] for e in ENTRIES}
    [cron] = specs["ingest"].schedules
    assert (cron.cron, cron.timezone, cron.active) == ("*/30 * * * *", "Asia/Shanghai", True)
    assert specs["backfill"].schedules == []
    values = {"feeds": "/f.toml", "db": "/n.duckdb"}
    assert fill_parameters(specs["ingest"], values) == {
        "feeds": "/f.toml",
        "db": "/n.duckdb",
        "force": False,
        "runner": None,
        "dask_address": None,
        "shard": None,
        "stage_dir": None,
    }


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_serve_schedules_runs_and_stops_cleanly(tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    # A port of its own (not a user's 4200); the runner looks for work every second.
    env = cli_env(tmp_path, NEWSFLOW_PREFECT_PORT=str(port), PREFECT_RUNNER_POLL_FREQUENCY="1")
    db_path = Path(env["NEWSFLOW_DB"])
    lines: list[str] = []

    def printed(text: str) -> bool:
        return any(text in line for line in lines)

    with SiteServer() as site:
        Path(env["NEWSFLOW_FEEDS"]).write_text(demo_feeds_toml(site.base_url), encoding="utf-8")
        serve = subprocess.Popen(
            [*NEWSFLOW, "serve"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert serve.stdout is not None
        reader = threading.Thread(target=lambda: lines.extend(serve.stdout or []), daemon=True)
        reader.start()
        processes: list[psutil.Process] = []
        try:
            wait_for(lambda: printed("Ctrl-C stops") or serve.poll() is not None, 150, "serve")
            assert printed(f"Prefect UI: http://127.0.0.1:{port}"), lines
            assert printed("serving ingest/ingest: cron */30 * * * * (Asia/Shanghai)"), lines
            assert printed("serving backfill/backfill: by hand"), lines

            with (
                temporary_settings({PREFECT_API_URL: api_url}),
                get_client(sync_client=True) as client,
            ):
                deployment = client.read_deployment_by_name("ingest/ingest")
                [schedule] = deployment.schedules
                assert schedule.active
                assert getattr(schedule.schedule, "cron", None) == "*/30 * * * *"
                assert getattr(schedule.schedule, "timezone", None) == "Asia/Shanghai"
                assert deployment.parameters["db"] == str(db_path)
                manual = client.read_deployment_by_name("backfill/backfill")
                assert manual.schedules == []
                assert manual.parameters == {"db": str(db_path)}

                def upcoming() -> list[Any]:
                    ours = DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))
                    runs = client.read_flow_runs(deployment_filter=ours)
                    return [r for r in runs if r.state and r.state.is_scheduled()]

                # The server's scheduler runs: the next cron runs are on its calendar.
                wait_for(upcoming, 60, "scheduled runs")

                triggered = client.create_flow_run_from_deployment(deployment.id)

                def final_state() -> Any:
                    state = client.read_flow_run(triggered.id).state
                    return state if state and state.is_final() else None

                wait_for(final_state, 120, "the triggered run")
                assert final_state().is_completed(), final_state()

            processes = psutil.Process(serve.pid).children(recursive=True)
            assert processes, "serve should have a Prefect server child"
            serve.send_signal(signal.SIGTERM)
            assert serve.wait(timeout=60) == 0, lines
        finally:
            if serve.poll() is None:
                serve.kill()
                for process in processes:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        process.kill()
        reader.join(timeout=10)

    _, alive = psutil.wait_procs(processes, timeout=30)
    assert alive == [], "serve left processes behind"
    assert not local_server_healthy(api_url)
    output = "".join(lines)
    assert "stopped" in output and "Traceback" not in output, output
    assert (tmp_path / "prefect" / "server.log").exists()  # beside the DuckDB file
    with Database(db_path).session() as con:
        assert con.execute("SELECT count(*) > 20 FROM articles").fetchone() == (True,)
        assert ("completed",) in con.execute("SELECT status FROM runs").fetchall()
