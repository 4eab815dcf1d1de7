"""Stage: feed batches as Parquet files in a folder (any fsspec URL), merged by `newsflow load`.

A staged run (`newsflow run --stage-dir DIR`) opens no database: a worker on another machine
cannot open a DuckDB file that the loader writes. It writes its feed batches in parts:

    DIR/parts/<part>/articles.parquet   the batches' articles (the `articles` columns) + batch_id
                                        + derived (the workers' tags, fingerprint and
                                        search terms, JSON)
    DIR/parts/<part>/refs.parquet       (batch_id, article_id, guid) of entries seen again
    DIR/parts/<part>/errors.parquet     the batches' ingest_errors rows + batch_id
    DIR/parts/<part>/batches.parquet    one row per feed batch: ids, feed, the feed check,
                                        and the format its part is written in

A part holds up to PART_FEEDS feed batches (fewer files than one set per feed: most polls are
a bare 304). batches.parquet is written last, under a temporary name then renamed, so a part
without it is still being written and the loader leaves it for later. Part names start with
the UTC time of writing: in name order, older polls of a feed load before newer ones.

After each load the loader leaves DIR/snapshot/: the feeds' states (validators for conditional
GETs, next checks) and the articles seen in the last SNAPSHOT_DAYS days with their GUIDs per
feed. A staged run reads it for what a direct run asks the database — which feeds are due,
which entries are known — as an in-memory DuckDB with the same tables, so the same queries
answer. Before the first load there is none: every feed is due and every entry new, which the
loader's upsert keeps correct, only slower. The same tables, taken from the database or the
stage, are what a run hands its Dask workers (newsflow/runtime/runners.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import duckdb
import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from newsflow.schemas.errors import ConfigError
from newsflow.schemas.models import (
    Article,
    Derived,
    FeedBatch,
    FeedCheck,
    FeedEntry,
    IngestErrorRecord,
    utcnow,
)
from newsflow.tasks.dedup.known import KnownIndex, lookup_known
from newsflow.tasks.storage.articles import articles_table
from newsflow.tasks.storage.store import Database, connect, migrate

LOGGER = logging.getLogger(__name__)

# A part is written when it holds this many feed batches or articles, or is this old.
PART_FEEDS = 64
PART_ARTICLES = 2000
PART_SECONDS = 60.0
# Feeds list recent items: articles not seen for this long drop out of the snapshot, and an
# old item that comes back is downloaded once more (and upserted as unchanged).
SNAPSHOT_DAYS = 30

_MARKER = "batches.parquet"
# The parts' format, in every row of batches.parquet. 1 (no such column): articles without the
# `derived` column, whose batches the loader tags and fingerprints itself. 2: with it.
STAGE_FORMAT = 2
# What a staged run asks the database, as the snapshot keeps it (`?` is the window's start).
_SNAPSHOT_QUERIES = {
    "feeds": "SELECT * FROM feeds",
    "articles": "SELECT article_id, published_at, updated_at FROM articles WHERE last_seen_at >= ?",
    "article_feeds": "SELECT article_id, feed_url, guid FROM article_feeds WHERE guid IS NOT "
    "NULL AND article_id IN (SELECT article_id FROM articles WHERE last_seen_at >= ?)",
}


@dataclass(frozen=True)
class StagedBatch:
    """One feed's batch as staged: with its ids, and the feed's name and source from the
    feeds file (the loader has no feeds file)."""

    batch_id: str
    run_id: str
    name: str | None
    source: str | None
    batch: FeedBatch


def batch_id_for(run_id: str, feed_url: str) -> str:
    """A run polls a feed once: the pair names the batch."""
    return f"{run_id}-{hashlib.blake2b(feed_url.encode('utf-8'), digest_size=6).hexdigest()}"


class Stage:
    """A stage folder: parts written by staged runs, the snapshot written by the loader."""

    def __init__(self, url: str, *, create: bool = False) -> None:
        try:
            fs, root = fsspec.core.url_to_fs(url)
            if create:
                fs.makedirs(root, exist_ok=True)
            elif not fs.isdir(root):
                raise ConfigError(f"stage folder not found: {url}")
        except (ValueError, ImportError, OSError) as exc:
            raise ConfigError(f"stage folder {url}: {exc}") from exc
        self.url = url
        self.fs = fs
        self.root = root.rstrip("/")

    def __repr__(self) -> str:
        return f"Stage({self.url!r})"

    def _path(self, *names: str) -> str:
        return "/".join([self.root, *names])

    def write_table(self, table: pa.Table, *names: str, atomic: bool = False) -> None:
        """Write a Parquet file; `atomic`: under a temporary name, then renamed, so a reader
        sees the whole file or none (a rename is atomic on a disk, an object PUT on a store)."""
        path = self._path(*names)
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        target = f"{path}.tmp" if atomic else path
        with self.fs.open(target, "wb") as f:
            pq.write_table(table, f)
        if atomic:
            self.fs.mv(target, path)

    def read_table(self, *names: str) -> pa.Table | None:
        path = self._path(*names)
        if not self.fs.exists(path):
            return None
        with self.fs.open(path, "rb") as f:
            return pq.read_table(f)

    def committed_parts(self) -> list[str]:
        """Parts whose writing finished, oldest first."""
        found = self.fs.glob(self._path("parts", "*", _MARKER))
        return sorted(str(p).rstrip("/").split("/")[-2] for p in found)


# --- writing parts --------------------------------------------------------------------------


def part_name(run_id: str, seq: int) -> str:
    return f"{utcnow():%Y%m%dT%H%M%S%fZ}-{run_id}-{seq:04d}"


def write_part(stage: Stage, part: str, batches: Sequence[StagedBatch]) -> None:
    """The batches as one part; its batches.parquet last."""
    tables = {
        "articles.parquet": _articles(batches),
        "refs.parquet": _rows(
            {"batch_id": s.batch_id, "article_id": aid, "guid": guid}
            for s in batches
            for aid, guid in s.batch.seen_again
        ),
        "errors.parquet": _rows(
            e.model_dump() | {"batch_id": s.batch_id} for s in batches for e in s.batch.errors
        ),
    }
    for name, table in tables.items():
        if table is not None:
            stage.write_table(table, "parts", part, name)
    marker = pa.Table.from_pylist([_batch_row(s) for s in batches])
    stage.write_table(marker, "parts", part, _MARKER, atomic=True)


def _articles(batches: Sequence[StagedBatch]) -> pa.Table | None:
    articles = [a for s in batches for a in s.batch.articles]
    if not articles:
        return None
    ids = [s.batch_id for s in batches for _ in s.batch.articles]
    derived = [
        found.model_dump_json() if (found := s.batch.derived.get(a.article_id)) else None
        for s in batches
        for a in s.batch.articles
    ]
    return (
        articles_table(articles)
        .append_column("batch_id", pa.array(ids, pa.string()))
        .append_column("derived", pa.array(derived, pa.string()))
    )


def _rows(rows: Iterator[dict[str, Any]]) -> pa.Table | None:
    listed = list(rows)
    return pa.Table.from_pylist(listed) if listed else None


def _batch_row(staged: StagedBatch) -> dict[str, Any]:
    batch = staged.batch
    return {
        "batch_id": staged.batch_id,
        "run_id": staged.run_id,
        "feed_url": batch.feed_url,
        "name": staged.name,
        "source": staged.source,
        "checked_at": batch.check.checked_at,
        # The rest of the batch as pydantic writes it: new fields travel without a new column.
        "check": batch.check.model_dump_json(),
        "batch": batch.model_dump_json(
            exclude={"check", "articles", "seen_again", "errors", "derived"}
        ),
        "format": STAGE_FORMAT,
    }


class StageWriter:
    """Collects a run's feed batches and writes them in parts (see PART_FEEDS)."""

    def __init__(self, stage: Stage, run_id: str) -> None:
        self.stage = stage
        self.run_id = run_id
        self._pending: list[StagedBatch] = []
        self._parts = 0
        self._since = time.monotonic()

    def add(self, staged: StagedBatch) -> None:
        self._pending.append(staged)
        articles = sum(len(s.batch.articles) for s in self._pending)
        if (
            len(self._pending) >= PART_FEEDS
            or articles >= PART_ARTICLES
            or time.monotonic() - self._since >= PART_SECONDS
        ):
            self.flush()

    def flush(self) -> None:
        if self._pending:
            write_part(self.stage, part_name(self.run_id, self._parts), self._pending)
            self._parts += 1
        self._pending = []
        self._since = time.monotonic()


# --- reading parts --------------------------------------------------------------------------


def part_batch_ids(stage: Stage, part: str) -> list[str]:
    """The ids of a committed part's batches, from its last-written file alone."""
    return [str(i) for i in _marker(stage, part).column("batch_id").to_pylist()]


def _marker(stage: Stage, part: str) -> pa.Table:
    marker = stage.read_table("parts", part, _MARKER)
    if marker is None:
        raise ConfigError(f"{stage.url}: part {part} is not complete")
    return marker


def read_part(stage: Stage, part: str) -> list[StagedBatch]:
    """A committed part's batches, in the order they were written. ConfigError when a row is
    not a valid record (an article_id of another shape than article_id_for gives …)."""
    try:
        return _read_part(stage, part)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise ConfigError(
            f"{stage.url}: part {part} holds an invalid record ({where}: {first['msg']}: "
            f"{str(first.get('input'))[:80]!r}); nothing of it was loaded"
        ) from exc


def _read_part(stage: Stage, part: str) -> list[StagedBatch]:
    marker = _marker(stage, part)
    written = max(marker.column("format").to_pylist()) if "format" in marker.column_names else 1
    if written > STAGE_FORMAT:
        raise ConfigError(
            f"{stage.url}: part {part} is in format {written}, newer than this newsflow reads "
            f"({STAGE_FORMAT}); load it with the newsflow that staged it"
        )
    articles: dict[str, list[Article]] = {}
    derived: dict[str, dict[str, Derived]] = {}
    for row in _pylist(stage.read_table("parts", part, "articles.parquet")):
        extra, made, batch_id = row.pop("extra"), row.pop("derived", None), row.pop("batch_id")
        article = Article.model_validate(row | {"extra": json.loads(extra) if extra else {}})
        articles.setdefault(batch_id, []).append(article)
        if made:
            derived.setdefault(batch_id, {})[article.article_id] = Derived.model_validate_json(made)
    refs: dict[str, list[tuple[str, str | None]]] = {}
    for row in _pylist(stage.read_table("parts", part, "refs.parquet")):
        refs.setdefault(row["batch_id"], []).append((row["article_id"], row["guid"]))
    errors: dict[str, list[IngestErrorRecord]] = {}
    for row in _pylist(stage.read_table("parts", part, "errors.parquet")):
        errors.setdefault(row.pop("batch_id"), []).append(IngestErrorRecord.model_validate(row))
    staged = []
    for row in marker.to_pylist():
        bid = row["batch_id"]
        batch = FeedBatch.model_validate(
            json.loads(row["batch"])
            | {
                "check": FeedCheck.model_validate_json(row["check"]),
                "articles": articles.get(bid, []),
                "seen_again": refs.get(bid, []),
                "errors": errors.get(bid, []),
                "derived": derived.get(bid, {}),
            }
        )
        staged.append(StagedBatch(bid, row["run_id"], row["name"], row["source"], batch))
    return staged


def _pylist(table: pa.Table | None) -> list[dict[str, Any]]:
    return table.to_pylist() if table is not None else []


# --- the snapshot ---------------------------------------------------------------------------


def snapshot_tables(con: duckdb.DuckDBPyConnection) -> dict[str, pa.Table]:
    """What a run's entry lookups need of the database (see the module docstring)."""
    since = utcnow() - timedelta(days=SNAPSHOT_DAYS)
    return {
        name: con.sql(sql, params=[since] * sql.count("?")).to_arrow_table()
        for name, sql in _SNAPSHOT_QUERIES.items()
    }


def write_snapshot(stage: Stage, con: duckdb.DuckDBPyConnection) -> None:
    for name, table in snapshot_tables(con).items():
        stage.write_table(table, "snapshot", f"{name}.parquet", atomic=True)


def read_snapshot(stage: Stage) -> dict[str, pa.Table]:
    """The stage's snapshot; empty before the first load."""
    tables = {name: stage.read_table("snapshot", f"{name}.parquet") for name in _SNAPSHOT_QUERIES}
    return {name: table for name, table in tables.items() if table is not None}


class RunSnapshot:
    """A direct run's entry lookups, in a Snapshot of the database taken at the first lookup
    (a run whose feeds all answer 304 takes none): a feed's lookup then takes no session of
    the file, which cost ~7 ms of the flow process a feed and waited while a load held the
    writer's lock. Entries the snapshot holds nothing of are looked up in the database too,
    unless the snapshot held every stored article (it has those seen in the last
    SNAPSHOT_DAYS). What the run itself stores after the snapshot its claims cover: a second
    feed carrying an article does not download it (tasks/pipeline/feed.py, claim_entries);
    what an overlapping run stores meanwhile may be downloaded again, and the upsert keeps it
    once."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._snapshot: Snapshot | None = None
        self._complete = False
        self._lock = threading.Lock()

    def _taken(self) -> Snapshot:
        with self._lock:
            if self._snapshot is None:
                with self.db.session() as con:
                    tables = snapshot_tables(con)
                    (stored,) = con.execute("SELECT count(*) FROM articles").fetchone() or (0,)
                self._complete = tables["articles"].num_rows == stored
                self._snapshot = Snapshot(tables)
            return self._snapshot

    @contextmanager
    def session(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._taken().session() as con:
            yield con

    def lookup(self, feed_url: str | None, entries: Sequence[FeedEntry]) -> KnownIndex:
        with self.session() as con:
            known = lookup_known(con, feed_url, entries)
        missing = [] if self._complete else known.lacks(entries)
        if missing:
            with self.db.session() as con:
                known.add(lookup_known(con, feed_url, missing))
        return known

    def close(self) -> None:
        with self._lock:
            if self._snapshot is not None:
                self._snapshot.close()
                self._snapshot = None


class Snapshot:
    """Snapshot tables as an in-memory DuckDB with the database's schema (tables the snapshot
    lacks are there, empty); `session()` is Database.session's read-only stand-in."""

    def __init__(self, tables: Mapping[str, pa.Table]) -> None:
        self._con = connect()
        migrate(self._con)
        for name, table in tables.items():
            self._con.register("snapshot_table", table)
            self._con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM snapshot_table")
            self._con.unregister("snapshot_table")

    @contextmanager
    def session(self) -> Iterator[duckdb.DuckDBPyConnection]:
        # A cursor per session: tasks on several threads read at once.
        cursor = self._con.cursor()
        try:
            yield cursor
        finally:
            cursor.close()

    def close(self) -> None:
        self._con.close()
