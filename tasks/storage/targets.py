"""Where an ingest run's feed batches go: into the database, or into a stage folder.

Either way the flow process alone writes them, a task's batches at a time as the tasks
finish, wherever those ran: the database keeps its one writer (docs/ARCHITECTURE.md, "data
flow"), and a staged run (`--stage-dir`) touches no database at all — `newsflow load` merges
its batches later.
"""

from __future__ import annotations

from typing import Any, Protocol

import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE

from newsflow.schemas.config import FeedConfig, Settings
from newsflow.schemas.models import FeedBatch, RunCounts, new_run_id
from newsflow.tasks.coverage.tag import load_tagger
from newsflow.tasks.sources.health import due_feeds, read_feed_states
from newsflow.tasks.storage.feed_health import Claim, claim_due_feeds
from newsflow.tasks.storage.load import FeedLoad, load_batches, poll_counts
from newsflow.tasks.storage.runs import finish_run, start_run
from newsflow.tasks.storage.stage import (
    RunSnapshot,
    Snapshot,
    Stage,
    StagedBatch,
    StageWriter,
    batch_id_for,
    read_snapshot,
    snapshot_tables,
)
from newsflow.tasks.storage.store import WRITER_THREADS, Database, Reader


class Target(Protocol):
    def start(self, parameters: dict[str, Any]) -> str:
        """Begin the run; returns its id."""
        ...

    def claim_due(self, run_id: str, feeds: list[FeedConfig], *, force: bool) -> Claim:
        """The feeds this run polls, every feed's state, and how many due feeds it leaves to
        overlapping runs."""
        ...

    def reader(self) -> Reader:
        """Where a local run's tasks look up known entries."""
        ...

    def known_index(self) -> dict[str, pa.Table]:
        """The same as tables, for Dask workers, which open neither database nor stage."""
        ...

    def write(self, run_id: str, feeds: list[FeedConfig], batches: list[FeedBatch]) -> RunCounts:
        """One task's batches, each with its feed."""
        ...

    def finish(self, run_id: str, counts: RunCounts, status: str) -> None: ...


class Loadable:
    """A task's batches with their feeds, as one parameter Prefect does not walk (it would
    visit every field of every article looking for futures: a second of a 20 s run)."""

    __slots__ = ("batches", "feeds")

    def __init__(self, feeds: list[FeedConfig], batches: list[FeedBatch]) -> None:
        self.feeds = feeds
        self.batches = batches


@task(name="load-batches", cache_policy=NO_CACHE)
def load_batches_task(db: Database, settings: Settings, run_id: str, todo: Loadable) -> RunCounts:
    tagger = load_tagger(settings.lexicon_path, settings.gazetteer_path)
    loads = [FeedLoad(b, f.name, f.source) for f, b in zip(todo.feeds, todo.batches, strict=True)]
    counts, _ = load_batches(
        db, run_id, loads, default_interval=settings.default_poll_interval, tagger=tagger
    )
    return counts


class DatabaseTarget:
    """A direct run: a `runs` row, feed states from the database, each batch loaded."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings.db_path, settings.lock_timeout, threads=WRITER_THREADS)
        self.snapshot: RunSnapshot | None = None

    def start(self, parameters: dict[str, Any]) -> str:
        return start_run(self.db, "ingest", parameters)

    def claim_due(self, run_id: str, feeds: list[FeedConfig], *, force: bool) -> Claim:
        return claim_due_feeds(self.db, run_id, feeds, force=force)

    def reader(self) -> Reader:
        self.snapshot = RunSnapshot(self.db)
        return self.snapshot

    def known_index(self) -> dict[str, pa.Table]:
        with self.db.session() as con:
            return snapshot_tables(con)

    def write(self, run_id: str, feeds: list[FeedConfig], batches: list[FeedBatch]) -> RunCounts:
        return load_batches_task(self.db, self.settings, run_id, Loadable(feeds, batches))

    def finish(self, run_id: str, counts: RunCounts, status: str) -> None:
        if self.snapshot is not None:
            self.snapshot.close()
        finish_run(self.db, run_id, counts, status)


class StageTarget:
    """A staged run: feed states from the stage's snapshot, batches written there in parts.

    Counts are what the batches themselves tell (feeds, pages, errors); new, updated and
    duplicate articles are known only when `newsflow load` compares them with the database.
    """

    def __init__(self, stage_dir: str) -> None:
        self.stage = Stage(stage_dir, create=True)
        self.writer = StageWriter(self.stage, new_run_id())
        self.snapshot_tables = read_snapshot(self.stage)
        self.snapshot = Snapshot(self.snapshot_tables)

    def start(self, parameters: dict[str, Any]) -> str:
        return self.writer.run_id

    def claim_due(self, run_id: str, feeds: list[FeedConfig], *, force: bool) -> Claim:
        # Nothing to claim in: shards of one feeds file do not overlap, and a run is not
        # repeated before the loader has recorded its checks (SCALING.md).
        with self.snapshot.session() as con:
            states = read_feed_states(con)
        due = due_feeds(feeds, states, force=force)
        return Claim(due.ready, states, len(due.busy))

    def reader(self) -> Reader:
        return self.snapshot

    def known_index(self) -> dict[str, pa.Table]:
        return self.snapshot_tables

    def write(self, run_id: str, feeds: list[FeedConfig], batches: list[FeedBatch]) -> RunCounts:
        counts = RunCounts()
        for feed, batch in zip(feeds, batches, strict=True):
            batch_id = batch_id_for(run_id, feed.url)
            self.writer.add(StagedBatch(batch_id, run_id, feed.name, feed.source, batch))
            counts += poll_counts(batch) + RunCounts(
                pages_downloaded=batch.pages_downloaded, errors=len(batch.errors)
            )
        return counts

    def finish(self, run_id: str, counts: RunCounts, status: str) -> None:
        # Even a crashed run's collected batches are whole feeds: stage them.
        self.writer.flush()
        self.snapshot.close()
