"""`newsflow serve`: the deployments of deployments/prefect.yaml, on their schedules, served from
this process.

The yaml is the one description of the deployments: `prefect deploy` reads it for a team's
work pool, and serve reads the same entries (name, entrypoint, parameters, schedules) and
hands them to Prefect's Runner, so the two cannot drift. Flows are imported by module
(`flows/ingest.py:ingest` → `newsflow.flows.ingest`), from the installed distribution.

Cron fires only on a real Prefect server, so without PREFECT_API_URL serve attaches to a
healthy local server on the port, or starts one (newsflow.runtime.local_server) and stops it on
exit."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.resources
import os
import signal
from collections.abc import Callable, Mapping, MutableMapping
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from newsflow.runtime.local_server import local_server
from newsflow.runtime.prefect_env import local_api_url, local_server_healthy, quiet_prefect
from newsflow.schemas.config import Settings
from newsflow.schemas.errors import ConfigError, ServerError

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment

# Shipped as package data (newsflow.deployments), so a wheel install serves the same file that
# `prefect deploy --prefect-file deployments/prefect.yaml` reads in a source checkout.
DEPLOYMENTS_FILE = Path(str(importlib.resources.files("newsflow.deployments") / "prefect.yaml"))
# Flow runs' own INFO lines (start, summary, final state) on serve's terminal and in the UI;
# task runs and Prefect's internals stay at the quiet default.
_SERVE_LOGGING = {"PREFECT_LOGGING_LOGGERS_PREFECT_FLOW_RUNS_LEVEL": "INFO"}


class ScheduleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cron: str
    timezone: str | None = None
    day_or: bool = True
    active: bool = True

    def describe(self) -> str:
        zone = f" ({self.timezone})" if self.timezone else ""
        return f"cron {self.cron}{zone}" + ("" if self.active else ", inactive")


class DeploymentSpec(BaseModel):
    """One entry of `deployments:`; work_pool and the like concern `prefect deploy` only."""

    model_config = ConfigDict(extra="ignore")

    name: str
    entrypoint: str
    description: str | None = None
    tags: list[str] = []
    parameters: dict[str, Any] = {}
    schedules: list[ScheduleSpec] = []

    @property
    def module_and_function(self) -> tuple[str, str]:
        path, _, function = self.entrypoint.partition(":")
        # flows/ingest.py installs as newsflow.flows.ingest (pyproject's package-dir).
        module = "newsflow." + path.removesuffix(".py").replace("/", ".")
        return module, function

    def describe(self) -> str:
        return ", ".join(s.describe() for s in self.schedules) or "by hand"


def read_deployments(path: Path = DEPLOYMENTS_FILE) -> list[DeploymentSpec]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"deployments file not found: {path}") from exc
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read deployments file {path}: {exc}") from exc
    try:
        return [DeploymentSpec(**entry) for entry in raw["deployments"]]
    except (KeyError, TypeError, ValidationError) as exc:
        raise ConfigError(f"deployments file {path}: no valid `deployments:` list ({exc})") from exc


def fill_parameters(spec: DeploymentSpec, values: Mapping[str, Any]) -> dict[str, Any]:
    """The spec's parameters, each null one given the value serve has for it."""
    return {k: values.get(k) if v is None else v for k, v in spec.parameters.items()}


def runner_deployment(spec: DeploymentSpec, values: Mapping[str, Any]) -> RunnerDeployment | None:
    """The deployment, or None when its flow's module is not part of this installation."""
    from prefect.deployments.runner import EntrypointType
    from prefect.schedules import Schedule

    module, function = spec.module_and_function
    try:
        flow = getattr(importlib.import_module(module), function)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise ConfigError(
                f"deployment {spec.name}: cannot load {spec.entrypoint}: {exc}"
            ) from exc
        return None
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"deployment {spec.name}: cannot load {spec.entrypoint}: {exc}") from exc
    deployment: RunnerDeployment = flow.to_deployment(
        name=spec.name,
        description=spec.description,
        tags=spec.tags,
        parameters=fill_parameters(spec, values),
        schedules=[Schedule(**s.model_dump()) for s in spec.schedules],
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    return deployment


def serve_deployments(deployments: list[RunnerDeployment], on_ready: Callable[[], None]) -> None:
    """Register the deployments, call `on_ready`, and run their flow runs until SIGTERM or
    Ctrl-C."""
    from prefect.runner import Runner

    async def serve() -> None:
        runner = Runner(name="newsflow")
        for deployment in deployments:
            await runner.aadd_deployment(deployment)
        on_ready()
        # On SIGTERM the runner cancels its flow runs and pauses the schedules, then returns.
        await runner.start()

    import httpx

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:  # Ctrl-C is how one stops serve
        pass
    except httpx.HTTPError as exc:  # unreachable, refusing, or not a Prefect API
        raise ServerError(f"the Prefect server does not answer: {exc}") from exc


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_serve(
    settings: Settings,
    port: int,
    report: Callable[[str], None],
    env: MutableMapping[str, str] | None = None,
) -> None:
    """Serve the deployments against the configured, a running local, or a new local server."""
    env = os.environ if env is None else env
    specs = read_deployments()
    values = {"feeds": str(settings.feeds_path.resolve()), "db": str(settings.db_path.resolve())}
    # Until the runner installs its own handler, SIGTERM stops serve the way Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    with contextlib.ExitStack() as stack:
        if env.get("PREFECT_API_URL"):
            report(f"Prefect server: {env['PREFECT_API_URL']} (from PREFECT_API_URL)")
        elif local_server_healthy(local_api_url(port)):
            env["PREFECT_API_URL"] = local_api_url(port)
            report(f"Prefect UI: http://127.0.0.1:{port} (a server already running there)")
        else:
            home = settings.db_path.resolve().parent / "prefect"
            report(f"starting a local Prefect server (its database and log in {home}) …")
            server = stack.enter_context(local_server(home, port, env))
            env["PREFECT_API_URL"] = server.api_url
            report(f"Prefect UI: {server.ui_url}")
        quiet_prefect(env)
        for key, value in _SERVE_LOGGING.items():
            env.setdefault(key, value)
        served = []
        for spec in specs:
            deployment = runner_deployment(spec, values)
            if deployment is None:
                report(f"not serving {spec.name}: {spec.entrypoint} is not installed")
            else:
                served.append((deployment, spec))

        def ready() -> None:
            for deployment, spec in served:
                report(f"serving {deployment.flow_name}/{deployment.name}: {spec.describe()}")
            report(f"feeds {values['feeds']} · database {values['db']} · Ctrl-C stops")

        serve_deployments([deployment for deployment, _ in served], ready)
        report("stopping …")
