"""Opening the DuckDB file: one writer at a time across processes, migrations on open.

DuckDB lets one process hold a file read-write; a second gets "Could not set lock". So every
access here is short: take the cross-process lock (a lock file beside the database), connect,
do the work, close. Overlapping runs queue on the lock instead of failing. A process outside
newsflow that holds the file (an interactive `duckdb` shell) is waited for, up to the timeout.

Closing the last connection checkpoints the write-ahead log into the file. A process killed
before that leaves the log (`<db>.wal`), which DuckDB replays on the next open; when the log is
damaged, DuckDB refuses to open the file at all. Then the log is moved aside
(`<db>.wal.damaged-<UTC time>`, named in a warning) and the file opens as of its last
checkpoint: the runs in the lost window are gone from every table, the feeds' states included,
so their items count as new and are fetched again as the feeds come due.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import duckdb
from filelock import FileLock, Timeout

from newsflow.schemas.ddl import MIGRATIONS, SCHEMA_VERSION_DDL
from newsflow.schemas.errors import DatabaseError
from newsflow.tasks.progress import notify

LOGGER = logging.getLogger(__name__)

# DuckDB's messages for a write-ahead log it cannot replay, and for a file another process holds.
_WAL_DAMAGE = re.compile(r"replaying WAL|corrupt WAL", re.IGNORECASE)
_LOCKED = re.compile(r"could not set lock|conflicting lock", re.IGNORECASE)
_DUCKDB_HOLDER = re.compile(r"\(PID (\d+)\)")

# filelock is re-entrant per object but not across threads of one process: serialize those here.
_THREAD_LOCKS: dict[Path, threading.RLock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


def _thread_lock(path: Path) -> threading.RLock:
    with _THREAD_LOCKS_GUARD:
        return _THREAD_LOCKS.setdefault(path, threading.RLock())


# DuckDB threads of the sessions of a run that extracts (ingest, backfill): its extraction
# workers hold every core meanwhile, and parallel operators over a write of a few hundred
# articles only add CPU (a 2,000-page run's loads: 3.4-3.9 CPU-s on two threads, 2.5 on one,
# in the same wall time).
WRITER_THREADS = 1


class Reader(Protocol):
    """What entry lookups read from: a Database, or a stage's snapshot of one."""

    def session(self) -> AbstractContextManager[duckdb.DuckDBPyConnection]: ...


class Database:
    """A DuckDB file accessed in short, exclusive sessions."""

    def __init__(
        self,
        path: Path,
        lock_timeout: float = 900.0,
        *,
        read_only: bool = False,
        threads: int | None = None,
    ) -> None:
        self.path = Path(path).resolve()
        self.lock_timeout = lock_timeout
        # Read commands (export, feeds, report) never create or change a file: they open it
        # read-only, so a mistyped --db is an error and a read-only file can still be read.
        self.read_only = read_only
        # DuckDB's threads per connection (None: one per core).
        self.threads = threads
        self._file_lock = FileLock(str(self.path) + ".lock", thread_local=False)
        self._migrated = False

    def __repr__(self) -> str:
        return f"Database({str(self.path)!r})"

    @contextmanager
    def session(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Exclusive connection: waits for other writers (ours and foreign), migrates once.
        A read-only database gives a read-only connection to a newsflow file that exists."""
        if self.read_only:
            with self._read_session() as con:
                yield con
            return
        deadline = time.monotonic() + self.lock_timeout
        with _thread_lock(self.path):
            self._acquire_file_lock()
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

    def _acquire_file_lock(self) -> None:
        """Take the cross-process lock, saying at once whom we wait for when another process
        holds it; then leave our pid in the lock file for whoever waits next."""
        try:
            self._create_parent()
            # Read before trying: some filelock versions truncate the file when they open it.
            holder = _lock_holder(self._file_lock.lock_file)
            try:
                self._file_lock.acquire(blocking=False)
            except Timeout:
                notify(f"waiting for {self.path}, held by {holder}…")
                self._file_lock.acquire(timeout=self.lock_timeout)
        except Timeout as exc:
            raise DatabaseError(
                f"database {self.path} is busy: another newsflow process held it for "
                f"{self.lock_timeout:.0f} s"
            ) from exc
        except OSError as exc:
            raise DatabaseError(f"cannot open database {self.path}: {_reason(exc)}") from exc
        with suppress(OSError):  # only a waiter's message would lack the pid
            Path(self._file_lock.lock_file).write_text(str(os.getpid()), encoding="ascii")

    def _create_parent(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:
            blocking = next(p for p in (self.path, *self.path.parents) if p.exists())
            raise DatabaseError(
                f"cannot open database {self.path}: {blocking} is a file, not a folder"
            ) from exc

    @contextmanager
    def _read_session(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if not self.path.is_file():
            raise DatabaseError(f"no database at {self.path}")
        deadline = time.monotonic() + self.lock_timeout
        if not self._migrated:
            con = self._connect(deadline, read_only=True)
            try:
                lacking = self._lacking_migrations(con)
            finally:
                con.close()
            if lacking:  # an older newsflow file: upgraded once, the only change a read makes
                with Database(self.path, self.lock_timeout).session():
                    pass
            self._migrated = True
        con = self._connect(deadline, read_only=True)
        try:
            yield con
        finally:
            con.close()

    def _lacking_migrations(self, con: duckdb.DuckDBPyConnection) -> set[int]:
        found = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_version'"
        ).fetchone()
        if not found or not found[0]:
            raise DatabaseError(f"{self.path} is not a newsflow database (no schema_version)")
        done = {r[0] for r in con.execute("SELECT version FROM schema_version").fetchall()}
        return {v for v, _, _ in MIGRATIONS} - done

    def _connect(self, deadline: float, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        delay = 0.05
        wal_moved = False
        told = False
        while True:
            try:
                return connect(str(self.path), read_only=read_only, threads=self.threads)
            except duckdb.Error as exc:
                if not wal_moved and _WAL_DAMAGE.search(str(exc)):
                    self._move_wal_aside(exc)
                    wal_moved = True
                    continue
                # Another process (not newsflow) holds DuckDB's own lock: wait for it.
                if not isinstance(exc, duckdb.IOException) or not _LOCKED.search(str(exc)):
                    raise DatabaseError(f"cannot open database {self.path}: {exc}") from exc
                if time.monotonic() > deadline:
                    raise DatabaseError(
                        f"database {self.path} is locked by another process "
                        f"(gave up after {self.lock_timeout:.0f} s)"
                    ) from exc
                if not told:
                    pid = _DUCKDB_HOLDER.search(str(exc))
                    holder = f"pid {pid[1]}" if pid else "another process"
                    notify(f"waiting for {self.path}, held by {holder}…")
                    told = True
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _move_wal_aside(self, exc: duckdb.Error) -> None:
        wal = self.path.with_name(self.path.name + ".wal")
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        moved = wal.with_name(f"{wal.name}.damaged-{stamp}")
        try:
            wal.rename(moved)
        except OSError as err:
            raise DatabaseError(
                f"database {self.path} has a damaged write-ahead log that cannot be moved "
                f"aside ({err}); move {wal} away by hand to open the database from its last "
                f"checkpoint: {exc}"
            ) from exc
        LOGGER.warning(
            "database %s: its write-ahead log is damaged (%s); moved it aside to %s and opened "
            "the database from its last checkpoint. What was written since is fetched again "
            "as the feeds come due.",
            self.path,
            str(exc).splitlines()[0][:300],
            moved,
        )


def _lock_holder(lock_file: str) -> str:
    """Who holds the lock, from the pid its holder left in the file."""
    try:
        pid = Path(lock_file).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        pid = ""
    return f"pid {pid}" if pid.isdigit() else "another process"


def _reason(exc: OSError) -> str:
    return f"{exc.strerror} ({exc.filename})" if exc.strerror and exc.filename else str(exc)


def applied_migrations(con: duckdb.DuckDBPyConnection) -> set[int]:
    con.execute(SCHEMA_VERSION_DDL)
    return {row[0] for row in con.execute("SELECT version FROM schema_version").fetchall()}


def connect(
    database: str = ":memory:", *, read_only: bool = False, threads: int | None = None
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection without DuckDB's progress bar, which it prints on stdout for a query
    over two seconds: into a `--json` line or an export to stdout, beside the CLI's own bar."""
    con = duckdb.connect(database, read_only=read_only)
    con.execute("SET enable_progress_bar = false")
    if threads:
        con.execute("SET threads = ?", [threads])
    return con


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
