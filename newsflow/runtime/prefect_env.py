"""Prefect's environment for CLI runs, set before Prefect is imported.

Prefect reads its settings from the environment at import time, so the CLI calls
`prepare_prefect` first. A one-shot run attaches to a running local server when there is one
(the one `newsflow serve` starts, on 127.0.0.1 at $NEWSFLOW_PREFECT_PORT or 4200); otherwise
it needs a temporary server (the CLI starts it: newsflow.runtime.local_server.TemporaryServer),
lean: the services a one-shot run never uses (scheduler, late runs, triggers, event persister, UI
…) off, which saves seconds and keeps its shutdown quiet (docs/SCALING.md).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Mapping, MutableMapping

from newsflow.schemas.errors import ConfigError, ServerError

LOCAL_SERVER_HOST = "127.0.0.1"
LOCAL_SERVER_PORT = 4200
# The port of the local server `newsflow serve` starts and CLI runs look for.
PORT_VARIABLE = "NEWSFLOW_PREFECT_PORT"

# Services of Prefect's server that a single flow run does not need.
LEAN_SERVER = {
    f"PREFECT_SERVER_SERVICES_{name}_ENABLED": "false"
    for name in (
        "SCHEDULER",
        "LATE_RUNS",
        "FOREMAN",
        "TRIGGERS",
        "EVENT_PERSISTER",
        "TASK_RUN_RECORDER",
        "PAUSE_EXPIRATIONS",
        "REPOSSESSOR",
        "CANCELLATION_CLEANUP",
        "CLEANUP_RECONCILER",
        "DB_VACUUM",
    )
} | {
    "PREFECT_UI_ENABLED": "false",
    "PREFECT_SERVER_UI_ENABLED": "false",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
}

# Quiet by default: our own summary is the output; warnings and errors still show.
_QUIET = {
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_LOGGING_LOG_PRINTS": "false",
    # The temporary server's own log (uvicorn, SQLite lock retries, shutdown cancellations).
    "PREFECT_SERVER_LOGGING_LEVEL": "CRITICAL",
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
    # Prefect's client prints a telemetry notice on first use; a CLI for researchers opts out.
    "DO_NOT_TRACK": "1",
    # dask.distributed logs every scheduler, nanny and worker start and stop at INFO, and
    # routine shutdown races as warnings; read when distributed is imported, here and in the
    # worker processes, which inherit the environment.
    "DASK_LOGGING__DISTRIBUTED": "error",
}


def local_port(env: Mapping[str, str]) -> int:
    value = env.get(PORT_VARIABLE, "")
    if not value:
        return LOCAL_SERVER_PORT
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ConfigError(f"{PORT_VARIABLE} must be a port number, not {value!r}")
    return int(value)


def local_api_url(port: int) -> str:
    return f"http://{LOCAL_SERVER_HOST}:{port}/api"


def local_server_healthy(api_url: str, timeout: float = 0.3) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=timeout) as resp:
            return resp.status == 200
    except OSError:
        return False


def check_api_reachable(api_url: str, timeout: float = 10.0) -> None:
    """A configured server that cannot be reached is one line before any flow starts (Prefect
    would retry, then print a traceback a hundred lines long). Any HTTP answer will do: Prefect
    Cloud's workspace URL has no /health of its own."""
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=timeout):
            pass
    except urllib.error.HTTPError:
        pass
    except (OSError, ValueError) as exc:  # URLError is an OSError; ValueError: not a URL
        reason = getattr(exc, "reason", exc)
        raise ServerError(
            f"the Prefect server at {api_url} (PREFECT_API_URL) does not answer: {reason}"
        ) from exc


# What `newsflow run --runner dask` imports: the `scale` extra.
SCALE_MODULES = ("distributed", "prefect_dask")


def missing_modules(names: tuple[str, ...] = SCALE_MODULES) -> list[str]:
    """Those of `names` that cannot be imported here, found without importing them
    (distributed reads its log level from the environment when it is imported)."""
    missing = []
    for name in names:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # ValueError: None in sys.modules, a blocked import
            found = False
        if not found:
            missing.append(name)
    return missing


def check_scale_extra() -> None:
    if missing := missing_modules():
        raise ConfigError(
            f"--runner dask needs the scale extra ({', '.join(missing)} not installed): "
            "pip install 'newsflow[scale]'"
        )


def quiet_prefect(env: MutableMapping[str, str]) -> None:
    for key, value in _QUIET.items():
        env.setdefault(key, value)


def prepare_prefect(env: MutableMapping[str, str] | None = None, *, quiet: bool = True) -> str:
    """Point Prefect at a server and quiet it; returns 'configured', 'local' or 'temporary'."""
    env = os.environ if env is None else env
    if quiet:
        quiet_prefect(env)
    if env.get("PREFECT_API_URL"):
        return "configured"
    api_url = local_api_url(local_port(env))
    if local_server_healthy(api_url):
        env["PREFECT_API_URL"] = api_url
        return "local"
    for key, value in LEAN_SERVER.items():
        env.setdefault(key, value)
    return "temporary"


def silence_shutdown_noise() -> None:
    """Loggers that report harmless errors while the temporary server stops."""
    for name in ("uvicorn", "uvicorn.error", "prefect.server", "prefect._internal", "docket"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
