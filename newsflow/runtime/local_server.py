"""Prefect servers as child processes: the local server `newsflow serve` keeps running, and the
temporary one a one-shot CLI run uses.

Cron schedules fire only on a real server (Prefect's temporary one runs no scheduler), so when
no server is configured `newsflow serve` starts one (`prefect server start`): bound to
127.0.0.1, its SQLite database and its log in a `prefect/` directory beside the DuckDB file,
stopped when serve stops.

A one-shot run with no server to attach to needs Prefect's temporary server. Prefect's client
starts that itself at the first API call, after newsflow has imported its modules, and imports
Prefect's server modules (~1 s) to launch it. The CLI starts it instead as its first act, with
the same command and settings Prefect uses (uvicorn, ephemeral mode, lean services), so that
its ~3 s of booting overlap our imports and input checks (docs/SCALING.md).

Either child runs in its own session, so a Ctrl-C at the terminal reaches newsflow alone, which
stops it after its own shutdown (serve's runner needs the API for that).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from newsflow.runtime.prefect_env import (
    LEAN_SERVER,
    LOCAL_SERVER_HOST,
    local_api_url,
    local_server_healthy,
)
from newsflow.schemas.errors import ServerError

LOGGER = logging.getLogger(__name__)

START_TIMEOUT = 120.0
STOP_TIMEOUT = 20.0
_PR_SET_PDEATHSIG = 1
# uvicorn's exit status when its port is taken: another process took the free port we found.
_PORT_IN_USE = 3
# What Prefect's client sets for the temporary server it starts (SubprocessASGIServer).
_EPHEMERAL = {
    "PREFECT_UI_ENABLED": "0",
    "PREFECT__SERVER_EPHEMERAL": "1",
    "PREFECT__SERVER_FINAL": "1",
}


@dataclass(frozen=True)
class LocalServer:
    process: subprocess.Popen[bytes]
    port: int
    # Where its log is; None for a TemporaryServer, whose log is a file without a name.
    home: Path | None

    @property
    def api_url(self) -> str:
        return local_api_url(self.port)

    @property
    def ui_url(self) -> str:
        return self.api_url.removesuffix("/api")

    @property
    def log_path(self) -> Path | None:
        return None if self.home is None else self.home / "server.log"


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
    # Linux: if newsflow itself is killed outright (SIGKILL), the kernel stops the server too.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _spawn(command: list[str], env: Mapping[str, str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=dict(env),
        start_new_session=True,
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
    )


def start_server(home: Path, port: int, env: Mapping[str, str]) -> LocalServer:
    """Start `prefect server start` on 127.0.0.1:port, logging to `home/server.log`."""
    home.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "prefect", "server", "start"]
    command += ["--host", LOCAL_SERVER_HOST, "--port", str(port)]
    with (home / "server.log").open("ab") as log:
        process = _spawn(command, server_environment(env, home), log)
    return LocalServer(process, port, home)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOCAL_SERVER_HOST, 0))
        return int(sock.getsockname()[1])


class TemporaryServer:
    """Prefect's temporary server for one CLI command: started at once, waited for only when
    the first flow is about to run, stopped at exit. `env` is what `prepare_prefect` set up.

    Its log is a file without a name, so that nothing is left behind however the command
    ends (a SIGKILL included: the kernel then stops the server); it gets a name only when the
    server fails to start, for the error to point at."""

    def __init__(self, env: Mapping[str, str], port: int | None = None) -> None:
        self._env = {k: v for k, v in env.items() if k != "PREFECT_API_URL"} | _EPHEMERAL
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed by stop())
        self.server = self._start(port or free_port())

    def _start(self, port: int) -> LocalServer:
        command = [sys.executable, "-m", "uvicorn", "--factory"]
        command += ["prefect.server.api.server:create_app", "--host", LOCAL_SERVER_HOST]
        command += ["--port", str(port), "--log-level", "error", "--lifespan", "on"]
        process = _spawn(command, self._env, self._log)
        return LocalServer(process, port, None)

    @property
    def api_url(self) -> str:
        return self.server.api_url

    def wait(self, timeout: float = START_TIMEOUT) -> str:
        """Block until the server answers; returns its API URL, which changes when its port
        was taken meanwhile and another was found."""
        ports_left = 2
        while True:
            try:
                wait_until_healthy(self.server, timeout)
                return self.server.api_url
            except ServerError as exc:
                if self.server.process.returncode == _PORT_IN_USE and ports_left:
                    ports_left -= 1
                    self.server = self._start(free_port())
                    continue
                raise ServerError(f"{exc}; its log: {self._save_log()}") from None

    def _save_log(self) -> Path:
        fd, name = tempfile.mkstemp(prefix="newsflow-prefect-", suffix=".log")
        self._log.seek(0)
        with os.fdopen(fd, "wb") as saved:
            shutil.copyfileobj(self._log, saved)
        return Path(name)

    def stop(self) -> None:
        stop_server(self.server)
        self._log.close()


def wait_until_healthy(server: LocalServer, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not local_server_healthy(server.api_url, timeout=1.0):
        code = server.process.poll()
        if code is not None:
            # The temporary server's port is not the user's to choose; serve's is.
            hint = (
                f"; is port {server.port} taken? set NEWSFLOW_PREFECT_PORT or --port"
                if server.home is not None
                else ""
            )
            raise _failed(server, f"stopped while starting (exit {code}{hint})")
        if time.monotonic() > deadline:
            raise _failed(server, f"did not answer within {timeout:.0f} s")
        time.sleep(0.05)  # the server offers nothing to wait on but its health endpoint


def _failed(server: LocalServer, what: str) -> ServerError:
    stop_server(server)
    log = f"; its log: {server.log_path}" if server.log_path else ""
    return ServerError(f"the Prefect server {what}{log}")


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
