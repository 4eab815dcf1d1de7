"""Opening the DuckDB file: one writer at a time across processes, migrations on open.

DuckDB lets one process hold a file read-write; a second gets "Could not set lock". So every
access here is short: take the cross-process lock (a lock file beside the database), connect,
do the work, close. Overlapping runs queue on the lock instead of failing. A process outside
newsflow that holds the file (an interactive `duckdb` shell) is waited for, up to the timeout.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import duckdb
from filelock import FileLock, Timeout

from schemas.ddl import MIGRATIONS, SCHEMA_VERSION_DDL
from schemas.errors import DatabaseError

LOGGER = logging.getLogger(__name__)

# filelock is re-entrant per object but not across threads of one process: serialize those here.
_THREAD_LOCKS: dict[Path, threading.RLock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


def _thread_lock(path: Path) -> threading.RLock:
    with _THREAD_LOCKS_GUARD:
        return _THREAD_LOCKS.setdefault(path, threading.RLock())


class Database:
    """A DuckDB file accessed in short, exclusive sessions."""

    def __init__(self, path: Path, lock_timeout: float = 900.0) -> None:
        self.path = Path(path).resolve()
        self.lock_timeout = lock_timeout
        self._file_lock = FileLock(str(self.path) + ".lock", thread_local=False)
        self._migrated = False

    def __repr__(self) -> str:
        return f"Database({str(self.path)!r})"

    @contextmanager
    def session(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Exclusive connection: waits for other writers (ours and foreign), migrates once."""
        deadline = time.monotonic() + self.lock_timeout
        with _thread_lock(self.path):
            try:
                self._file_lock.acquire(timeout=self.lock_timeout)
            except Timeout as exc:
                raise DatabaseError(
                    f"database {self.path} is busy: another newsflow process held it for "
                    f"{self.lock_timeout:.0f} s"
                ) from exc
            try:
                con = self._connect(deadline)
                try:
                    if not self._migrated:
                        migrate(con)
                        self._migrated = True
                    yield con
                finally:
                    con.close()
            finally:
                self._file_lock.release()

    def _connect(self, deadline: float) -> duckdb.DuckDBPyConnection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        delay = 0.05
        while True:
            try:
                return duckdb.connect(str(self.path))
            except duckdb.IOException as exc:
                # Another process (not newsflow) holds DuckDB's own lock: wait for it.
                if "lock" not in str(exc).lower():
                    raise DatabaseError(f"cannot open database {self.path}: {exc}") from exc
                if time.monotonic() > deadline:
                    raise DatabaseError(
                        f"database {self.path} is locked by another process "
                        f"(gave up after {self.lock_timeout:.0f} s)"
                    ) from exc
                LOGGER.info("database %s is locked by another process; waiting", self.path)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
            except duckdb.Error as exc:
                raise DatabaseError(f"cannot open database {self.path}: {exc}") from exc


def applied_migrations(con: duckdb.DuckDBPyConnection) -> set[int]:
    con.execute(SCHEMA_VERSION_DDL)
    return {row[0] for row in con.execute("SELECT version FROM schema_version").fetchall()}


def migrate(
    con: duckdb.DuckDBPyConnection, migrations: Sequence[tuple[int, str, str]] = MIGRATIONS
) -> list[int]:
    """Apply the migrations this file lacks, in order, each in its own transaction.

    Lacking means "not recorded", not "above the highest recorded": numbers can land out of
    order (see schemas/ddl.py).
    """
    done = applied_migrations(con)
    applied = []
    for version, name, sql in sorted(migrations):
        if version in done:
            continue
        con.execute("BEGIN")
        try:
            con.execute(sql)
            con.execute("INSERT INTO schema_version (version, name) VALUES (?, ?)", [version, name])
            con.execute("COMMIT")
        except duckdb.Error as exc:
            con.execute("ROLLBACK")
            raise DatabaseError(f"migration {version} ({name}) failed: {exc}") from exc
        LOGGER.info("database migrated to version %d (%s)", version, name)
        applied.append(version)
    return applied
