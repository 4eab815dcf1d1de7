"""A local Prefect server for `newsflow serve`: `prefect server start` as a child process.

Cron schedules fire only on a real server (Prefect's temporary one runs no scheduler), so when
no server is configured `newsflow serve` starts one: bound to 127.0.0.1, its SQLite database
and its log in a `prefect/` directory beside the DuckDB file, stopped when serve stops. The
child runs in its own session, so a Ctrl-C at the terminal reaches serve alone, which first
shuts its runner down (that needs the API) and then stops the server.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from flows.runtime import LEAN_SERVER, LOCAL_SERVER_HOST, local_api_url, local_server_healthy
from schemas.errors import ServerError

LOGGER = logging.getLogger(__name__)

START_TIMEOUT = 120.0
STOP_TIMEOUT = 20.0
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class LocalServer:
    process: subprocess.Popen[bytes]
    port: int
    home: Path

    @property
    def api_url(self) -> str:
        return local_api_url(self.port)

    @property
    def ui_url(self) -> str:
        return self.api_url.removesuffix("/api")

    @property
    def log_path(self) -> Path:
        return self.home / "server.log"


def server_environment(env: Mapping[str, str], home: Path) -> dict[str, str]:
    """The child's environment: ours, minus what would cripple a long-lived server.

    A CLI run's lean settings (scheduler and UI off) may be in our environment; the server
    needs them on. Its log goes to a file, so it may say what it has to say there.
    """
    child = {k: v for k, v in env.items() if k not in LEAN_SERVER and k != "PREFECT_API_URL"}
    child.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
            "PREFECT_LOGGING_LEVEL": "WARNING",
        }
    )
    return child


def _die_with_parent() -> None:
    # Linux: if serve itself is killed outright (SIGKILL), the kernel stops the server too.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def start_server(home: Path, port: int, env: Mapping[str, str]) -> LocalServer:
    """Start `prefect server start` on 127.0.0.1:port, logging to `home/server.log`."""
    home.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "prefect", "server", "start"]
    command += ["--host", LOCAL_SERVER_HOST, "--port", str(port)]
    with (home / "server.log").open("ab") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=server_environment(env, home),
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
    return LocalServer(process, port, home)


def wait_until_healthy(server: LocalServer, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not local_server_healthy(server.api_url, timeout=1.0):
        code = server.process.poll()
        if code is not None:
            raise ServerError(
                f"the Prefect server stopped while starting (exit {code}; is port "
                f"{server.port} taken? set NEWSFLOW_PREFECT_PORT or --port); "
                f"its log: {server.log_path}"
            )
        if time.monotonic() > deadline:
            stop_server(server)
            raise ServerError(
                f"the Prefect server did not answer within {timeout:.0f} s; "
                f"its log: {server.log_path}"
            )
        time.sleep(0.2)  # the server offers nothing to wait on but its health endpoint


def stop_server(server: LocalServer, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM to the server's process group, SIGKILL if it has not stopped in time."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if server.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.process.pid, sig)
        try:
            server.process.wait(timeout)
        except subprocess.TimeoutExpired:
            LOGGER.warning("the Prefect server did not stop in %.0f s; killing it", timeout)
    server.process.wait()


@contextlib.contextmanager
def local_server(home: Path, port: int, env: Mapping[str, str]) -> Iterator[LocalServer]:
    """A healthy local server for the duration of the block; stopped however the block ends."""
    server = start_server(home, port, env)
    try:
        wait_until_healthy(server)
        yield server
    finally:
        stop_server(server)
