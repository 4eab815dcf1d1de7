"""The ingest flow: due feeds → fetch → parse → drop known → download → extract → normalize
→ dedup → load, with a Prefect task per chunk of feeds and the load in the flow's one writer
thread.

The tasks run in threads of the flow process, or on Dask workers, one feed a task or several
when there are many (newsflow/runtime/runners.py); their batches are loaded, or staged as
Parquet, by the flow process alone (tasks/storage/targets.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future
from concurrent.futures import wait as wait_futures
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, TypeVar

from prefect import flow, get_run_logger
from prefect.futures import PrefectFuture, PrefectWrappedFuture

from newsflow.runtime.runners import feeds_per_task, published, started_runner
from newsflow.schemas.config import FeedConfig, ScaleOptions, Settings, load_feeds_file
from newsflow.schemas.models import (
    FeedBatch,
    RunCounts,
)
from newsflow.tasks.pipeline.feed import (
    FeedJob,
    collect_feeds_task,
    failed_batches,
    hosted_context,
)
from newsflow.tasks.progress import report_progress
from newsflow.tasks.sources.health import FeedState
from newsflow.tasks.storage.targets import DatabaseTarget, StageTarget, Target

LOGGER = logging.getLogger(__name__)
T = TypeVar("T")

# When finished tasks' batches are written (HeldBatches).
WRITE_ARTICLES = 500
WRITE_AFTER_SECONDS = 10.0
# How often a wait for the first of several Dask futures looks again.
_POLL_SECONDS = 0.1


@dataclass
class RunSummary:
    run_id: str
    counts: RunCounts
    started_at: datetime
    finished_at: datetime
    db_path: Path
    # Due feeds left alone because an overlapping run was polling them.
    feeds_busy: int = 0
    # Set for a staged run: where its batches went, and how many articles they hold.
    stage_dir: str | None = None
    articles_collected: int = 0

    @property
    def seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()

    def lines(self) -> list[str]:
        """What the run did, in two lines (the CLI prints them; serve logs them). A staged
        run knows only how many articles it staged: `newsflow load` tells new from known."""
        c = self.counts
        articles = (
            f"articles: {self.articles_collected} staged" if self.stage_dir else articles_line(c)
        )
        return [
            f"feeds: {c.feeds_checked} checked, {c.feeds_failed} failed, "
            f"{c.feeds_not_modified} unchanged · pages downloaded: {c.pages_downloaded}",
            f"{articles} · errors: {c.errors}",
        ]


def articles_line(c: RunCounts) -> str:
    return (
        f"articles: {c.articles_new} new, {c.articles_updated} updated, "
        f"{c.duplicates} duplicates{duplicate_layers(c)}"
    )


def duplicate_layers(c: RunCounts) -> str:
    """The dedup layers that found something, for the summary: " (url 2, near 5)"."""
    found = [
        f"{layer} {n}"
        for layer, n in (
            ("url", c.dup_url),
            ("guid", c.dup_guid),
            ("title", c.dup_title),
            ("body", c.dup_body),
            ("near", c.dup_near),
        )
        if n
    ]
    return f" ({', '.join(found)})" if found else ""


def collect_and_write(
    due: list[FeedConfig],
    states: dict[str, FeedState],
    job: FeedJob,
    scale: ScaleOptions,
    target: Target,
) -> tuple[RunCounts, int]:
    """Run the due feeds' tasks on the chosen runner; write their batches as they come back,
    a few hundred articles a write (HeldBatches). Returns the counts and how many articles
    the batches held."""
    counts = RunCounts()
    collected = 0
    by_url = {f.url: f for f in due}
    with ExitStack() as stack:
        runner = stack.enter_context(started_runner(scale, job.settings.extract_workers))
        if scale.runner == "local":
            stack.enter_context(hosted_context(job, target.reader()))
        else:
            stack.enter_context(published(runner, job.known_dataset, target.known_index()))
        size = feeds_per_task(runner, scale, len(due))
        chunks: dict[int, tuple[PrefectFuture[list[FeedBatch]], list[FeedConfig]]] = {}
        for chunk in (due[i : i + size] for i in range(0, len(due), size)):
            future = runner.submit(
                collect_feeds_task,
                {"feeds": chunk, "states": [states.get(f.url) for f in chunk], "job": job},
            )
            chunks[id(future)] = future, chunk
        done = 0
        held = HeldBatches()

        def write_held() -> None:
            nonlocal counts, collected
            batches = held.take()
            counts += target.write(job.run_id, [by_url[b.feed_url] for b in batches], batches)
            collected += sum(len(b.articles) for b in batches)

        futures = [future for future, _ in chunks.values()]
        for group in completed_groups(futures, idle=WRITE_AFTER_SECONDS):
            for future in group:
                batches = task_batches(future, chunks[id(future)][1])
                held.add(batches)
                done += len(batches)
                if batches:
                    report_progress("feeds", done, len(due), batches[-1].feed_url)
            if held.due():
                write_held()
        if held.batches:  # what the last tasks gave
            write_held()
    return counts, collected


class HeldBatches:
    """Finished tasks' batches waiting for one write: a write is a session of the database,
    and closing a session checkpoints the file, which costs ~0.1 s of CPU however little it
    wrote (a 1,000-page run spent 2.1 s closing 15 sessions, one per group of tasks, and 0.3 s
    closing 3). So batches wait for WRITE_ARTICLES articles, or WRITE_AFTER_SECONDS after the
    first of them came back, or the end of the run's tasks."""

    def __init__(self) -> None:
        self.batches: list[FeedBatch] = []
        self.articles = 0
        self.since = 0.0

    def add(self, batches: list[FeedBatch]) -> None:
        if not self.batches:
            self.since = time.monotonic()
        self.batches += batches
        self.articles += sum(len(b.articles) for b in batches)

    def due(self) -> bool:
        return bool(self.batches) and (
            self.articles >= WRITE_ARTICLES or time.monotonic() - self.since >= WRITE_AFTER_SECONDS
        )

    def take(self) -> list[FeedBatch]:
        batches, self.batches, self.articles = self.batches, [], 0
        return batches


def task_batches(
    future: PrefectFuture[list[FeedBatch]], feeds: list[FeedConfig]
) -> list[FeedBatch]:
    """A task's batches; a task that raised (its worker died, its result was lost) gives a
    failed batch for each of its feeds, so they back off and the run goes on."""
    try:
        return future.result()
    except Exception as exc:
        return failed_batches(feeds, exc)


def completed_groups(
    futures: list[PrefectFuture[T]], idle: float | None = None
) -> Iterator[list[PrefectFuture[T]]]:
    """The futures as they complete, each with the others done by then, so that tasks that
    finish together (as an unchanged run's do) are handled together; an empty group each time
    `idle` seconds pass with none completing, so that what is held is written while a slow
    feed still runs."""
    remaining = {id(f): f for f in futures}
    quiet_since = time.monotonic()
    while remaining:
        group = [f for f in remaining.values() if _finished(f)]
        if group:
            for f in group:
                del remaining[id(f)]
            quiet_since = time.monotonic()
            yield group
        elif idle is not None and time.monotonic() - quiet_since >= idle:
            quiet_since = time.monotonic()
            yield []
        else:
            _wait_any(list(remaining.values()), _POLL_SECONDS)


def _finished(future: PrefectFuture[T]) -> bool:
    if isinstance(future, PrefectWrappedFuture):
        return bool(future.wrapped_future.done())
    return future.state.is_final()


def _wait_any(futures: list[PrefectFuture[T]], timeout: float) -> None:
    """Until one of the futures completes, or `timeout` passes. Threads' futures are waited
    on; a Dask future (the scale runner) is polled, as Prefect offers no wait for the first
    of several that does not use a signal in the main thread."""
    local = [
        f.wrapped_future
        for f in futures
        if isinstance(f, PrefectWrappedFuture) and isinstance(f.wrapped_future, Future)
    ]
    if local and len(local) == len(futures):
        wait_futures(local, timeout=timeout, return_when=FIRST_COMPLETED)
    else:
        time.sleep(timeout)


def run_ingest(
    settings: Settings, *, force: bool = False, scale: ScaleOptions | None = None
) -> RunSummary:
    """The ingest flow's body, for use inside a Prefect flow run."""
    scale = scale or ScaleOptions()
    started = datetime.now(UTC)
    feeds_file = load_feeds_file(settings.feeds_path)
    feeds = scale.shard.select(feeds_file.feeds) if scale.shard else feeds_file.feeds
    target: Target = StageTarget(scale.stage_dir) if scale.stage_dir else DatabaseTarget(settings)
    parameters = {"feeds": str(settings.feeds_path), "force": force, **scale.describe()}
    run_id = target.start(parameters)
    counts = RunCounts()
    collected = 0
    busy = 0
    status = "crashed"
    try:
        due, states, busy = target.claim_due(run_id, feeds, force=force)
        if due:
            job = FeedJob(run_id, settings, feeds_file)
            counts, collected = collect_and_write(due, states, job, scale, target)
        status = "completed"
    finally:
        target.finish(run_id, counts, status)
    return RunSummary(
        run_id,
        counts,
        started,
        datetime.now(UTC),
        settings.db_path,
        feeds_busy=busy,
        stage_dir=scale.stage_dir,
        articles_collected=collected,
    )


@flow(name="ingest", log_prints=False, validate_parameters=True)
def ingest(
    feeds: str | None = None,
    db: str | None = None,
    force: bool = False,
    runner: Literal["local", "dask"] | None = None,
    dask_address: str | None = None,
    shard: str | None = None,
    stage_dir: str | None = None,
    settings: Settings | None = None,
    scale: ScaleOptions | None = None,
) -> RunSummary:
    """Poll the feeds that are due and load (or stage) their new articles.

    A deployment passes the plain parameters (or relies on NEWSFLOW_FEEDS/NEWSFLOW_DB): the
    runner, a Dask scheduler's address, a shard "I/N", a stage folder. The CLI passes the
    `settings` and `scale` it built and checked.
    """
    if settings is None:
        settings = Settings.from_env(feeds_path=feeds, db_path=db)
    if scale is None:
        scale = ScaleOptions.build(
            runner=runner, dask_address=dask_address, shard=shard, stage_dir=stage_dir
        )
    summary = run_ingest(settings, force=force, scale=scale)
    # Under `newsflow serve` and in the Prefect UI; the CLI quiets it and prints its own.
    get_run_logger().info(" · ".join(summary.lines()))
    return summary
