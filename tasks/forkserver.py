"""The forkserver that worker processes fork from: extraction's pool and the bulk index's."""

from __future__ import annotations

import tempfile
from multiprocessing import forkserver

from newsflow.schemas.errors import ConfigError


def ensure_forkserver() -> None:
    """Start it unless it runs. Its socket lives in a new folder under TMPDIR, and a socket's
    path holds at most 107 bytes: a long TMPDIR is a one-line error, not a traceback."""
    try:
        forkserver.ensure_running()
    except OSError as exc:
        raise ConfigError(
            f"cannot start worker processes: {exc} (their socket goes under "
            f"{tempfile.gettempdir()}); set TMPDIR to a shorter folder"
        ) from exc
