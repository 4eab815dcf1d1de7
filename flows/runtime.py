"""Prefect's environment for CLI runs, set before Prefect is imported.

Prefect reads its settings from the environment at import time, so the CLI calls
`prepare_prefect` first. A one-shot run attaches to a running local server when there is one
(the one `newsflow serve` starts); otherwise Prefect starts its temporary server, and we start
it lean: the services a one-shot run never uses (scheduler, late runs, triggers, event
persister, UI …) off, which saves seconds and keeps its shutdown quiet (DESIGN.md, start-up
cost).
"""

from __future__ import annotations

import logging
import os
import urllib.request
from collections.abc import MutableMapping
from pathlib import Path

LOCAL_SERVER_HOST = "127.0.0.1"
LOCAL_SERVER_PORT = 4200
LOCAL_API_URL = f"http://{LOCAL_SERVER_HOST}:{LOCAL_SERVER_PORT}/api"

# Services of Prefect's server that a single flow run does not need.
_LEAN_SERVER = {
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
}


def local_server_healthy(api_url: str = LOCAL_API_URL, timeout: float = 0.3) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=timeout) as resp:
            return resp.status == 200
    except OSError:
        return False


def prepare_prefect(env: MutableMapping[str, str] | None = None, *, quiet: bool = True) -> str:
    """Point Prefect at a server and quiet it; returns 'configured', 'local' or 'temporary'."""
    env = os.environ if env is None else env
    if quiet:
        for key, value in _QUIET.items():
            env.setdefault(key, value)
    if env.get("PREFECT_API_URL"):
        return "configured"
    if local_server_healthy():
        env["PREFECT_API_URL"] = LOCAL_API_URL
        return "local"
    for key, value in _LEAN_SERVER.items():
        env.setdefault(key, value)
    return "temporary"


def silence_shutdown_noise() -> None:
    """Loggers that report harmless errors while the temporary server stops."""
    for name in ("uvicorn", "uvicorn.error", "prefect.server", "prefect._internal", "docket"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def prefect_home(data_dir: Path) -> Path:
    return data_dir / "prefect"
