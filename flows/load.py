"""`newsflow load`: merge a stage folder's batches into the database, each exactly once.

Parts load oldest first, each part's batches through load_batches — the dedup and tagging of
a direct run — in one transaction, which also records the batches in `loaded_batches`. A
loader killed midway has loaded whole parts; started again, it skips them and loads the
rest. Batches still being written are left for the next load. At the end the loader leaves
the stage a fresh snapshot of the database for the staged runs to read (tasks/storage/stage.py).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from prefect import flow

from newsflow.flows.ingest import articles_line
from newsflow.schemas.config import Settings
from newsflow.schemas.models import RunCounts, StagedRef
from newsflow.tasks.coverage.tag import Tagger, load_tagger
from newsflow.tasks.progress import report_progress
from newsflow.tasks.storage.load import FeedLoad, load_batches
from newsflow.tasks.storage.runs import finish_run, loaded_batch_ids, start_run
from newsflow.tasks.storage.stage import Stage, part_batch_ids, read_part, write_snapshot
from newsflow.tasks.storage.store import Database

LOGGER = logging.getLogger(__name__)


@dataclass
class LoadSummary:
    """What a load did; `counts` are also its row in `runs`."""

    run_id: str
    db_path: Path
    counts: RunCounts = field(default_factory=RunCounts)
    parts: int = 0
    batches_loaded: int = 0
    batches_skipped: int = 0  # loaded before
    articles: int = 0  # article rows in the batches loaded
    seconds: float = 0.0

    def lines(self) -> list[str]:
        """What the load did, in two lines (the CLI prints them, the log has them)."""
        c = self.counts
        rate = self.articles / self.seconds if self.seconds else 0.0
        return [
            f"loaded {self.batches_loaded} batches of {self.parts} parts "
            f"({self.batches_skipped} loaded before) · {self.articles} articles, "
            f"{rate:,.0f} rows/s",
            f"{articles_line(c)} · errors: {c.errors}",
        ]


def load_part(
    db: Database,
    stage: Stage,
    part: str,
    summary: LoadSummary,
    settings: Settings,
    tagger: Tagger,
) -> None:
    """The part's batches not loaded yet, in one transaction."""
    ids = part_batch_ids(stage, part)
    with db.session() as con:
        done = loaded_batch_ids(con, ids)
    if done.issuperset(ids):  # loaded before: its articles are not even read
        summary.batches_skipped += len(ids)
        return
    staged = [s for s in read_part(stage, part) if s.batch_id not in done]
    summary.batches_skipped += len(done)
    # A part is one run's (StageWriter); its errors and loaded_batches rows keep that run's id.
    for run_id in dict.fromkeys(s.run_id for s in staged):
        loads = [
            FeedLoad(
                s.batch,
                s.name,
                s.source,
                StagedRef(batch_id=s.batch_id, part=part, load_run_id=summary.run_id),
            )
            for s in staged
            if s.run_id == run_id
        ]
        counts, written = load_batches(
            db, run_id, loads, default_interval=settings.default_poll_interval, tagger=tagger
        )
        # Those not written were loaded by another loader since `done` was read.
        summary.batches_loaded += len(written)
        summary.batches_skipped += len(loads) - len(written)
        summary.articles += sum(len(w.batch.articles) for w in written)
        summary.counts += counts


def run_load(settings: Settings, stage_dir: str) -> LoadSummary:
    """Load every complete batch of the stage not loaded yet, then refresh its snapshot."""
    stage = Stage(stage_dir)
    db = Database(settings.db_path, settings.lock_timeout)
    tagger = load_tagger(settings.lexicon_path, settings.gazetteer_path)
    started = time.monotonic()
    summary = LoadSummary(start_run(db, "load", {"stage_dir": stage_dir}), db.path)
    status = "crashed"
    try:
        parts = stage.committed_parts()
        summary.parts = len(parts)
        for done, part in enumerate(parts, start=1):
            load_part(db, stage, part, summary, settings, tagger)
            report_progress("parts", done, len(parts), part)
        with db.session() as con:
            write_snapshot(stage, con)
        status = "completed"
    finally:
        finish_run(db, summary.run_id, summary.counts, status)
        summary.seconds = time.monotonic() - started
        LOGGER.info("load %s %s: %s", summary.run_id, status, " · ".join(summary.lines()))
    return summary


@flow(name="load", log_prints=False, validate_parameters=True)
def load_staged(
    stage_dir: str, db: str | None = None, settings: Settings | None = None
) -> LoadSummary:
    """Merge the staged batches of `stage_dir` into the database (a deployment's entry point;
    the CLI calls run_load without starting Prefect)."""
    if settings is None:
        settings = Settings.from_env(db_path=db)
    return run_load(settings, stage_dir)
