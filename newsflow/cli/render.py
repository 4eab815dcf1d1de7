"""What the CLI prints: the consoles, the progress bar, run summaries and tables.

Every cell and message built from data goes through `shown`/`visible` (newsflow.cli.text).
"""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress
from rich.table import Table

from newsflow.cli.text import shown, visible
from newsflow.tasks.progress import NOTICES, PROGRESS

if TYPE_CHECKING:
    from pathlib import Path

    from newsflow.flows.backfill import BackfillSummary
    from newsflow.flows.ingest import RunSummary
    from newsflow.flows.load import LoadSummary
    from newsflow.tasks.pipeline.source_check import SourceCheck
    from newsflow.tasks.sources.health import FeedHealth

# Piped output is not wrapped: a summary line stays one line for grep and logs.
out = Console(highlight=False, soft_wrap=not sys.stdout.isatty())
err = Console(stderr=True, highlight=False, soft_wrap=not sys.stderr.isatty())


def say(line: str) -> None:
    """One line of our own text on stdout, never read as markup and never wrapped."""
    out.print(line, markup=False, soft_wrap=True)


def error_line(message: object) -> None:
    err.print(f"error: {visible(message)}", markup=False, soft_wrap=True)


class _NoticeHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        err.print(visible(record.getMessage()), markup=False, soft_wrap=True)


_NOTICES_SHOWN = _NoticeHandler()


def show_notices() -> None:
    """Print the library's notices (waiting for the database lock) on stderr as they come."""
    if _NOTICES_SHOWN not in NOTICES.handlers:
        NOTICES.addHandler(_NOTICES_SHOWN)


# --- progress -------------------------------------------------------------------------------


class _ProgressHandler(logging.Handler):
    def __init__(self, progress: RichProgress) -> None:
        super().__init__()
        self.progress = progress
        self.tasks: dict[str, Any] = {}

    def emit(self, record: logging.LogRecord) -> None:
        stage, done, total = (getattr(record, k, None) for k in ("stage", "done", "total"))
        if not isinstance(stage, str):
            return
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(stage, total=total)
        self.progress.update(self.tasks[stage], completed=done, total=total)


@contextmanager
def progress_bar(enabled: bool) -> Iterator[None]:
    if not enabled:
        yield
        return
    progress = RichProgress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )
    handler = _ProgressHandler(progress)
    PROGRESS.addHandler(handler)
    PROGRESS.setLevel(logging.INFO)
    try:
        with progress:
            yield
    finally:
        PROGRESS.removeHandler(handler)


# --- summaries ------------------------------------------------------------------------------


def _footer(run_id: str, seconds: float, started: float, where: str) -> str:
    """The last line of a summary: the run, the time the command took (and how much of it was
    start-up before the flow), and where its data went."""
    total = time.monotonic() - started
    return f"run {run_id} · {total:.1f} s ({total - seconds:.1f} s start-up) · {where}"


def _in_database(db_path: Path, errors: int) -> str:
    return f"{db_path} (see the ingest_errors table)" if errors else str(db_path)


def print_run_summary(summary: RunSummary, started: float, empty_file: Path | None = None) -> None:
    """The run's lines, a hint when no feed was polled, and the footer; `empty_file` is the
    feeds file when it lists no feed."""
    lines = summary.lines()
    if empty_file is not None:
        lines.append(f"no feeds in {empty_file}")
    elif summary.feeds_busy:
        lines.append(f"{summary.feeds_busy} due feeds left to the run already polling them")
    elif not summary.counts.feeds_checked:
        lines.append("no feed was due: `newsflow feeds` shows the next checks, --force polls all")
    if summary.stage_dir:
        where = f"staged in {summary.stage_dir}; merge with: newsflow load --stage-dir "
        where += summary.stage_dir
    else:
        where = _in_database(summary.db_path, summary.counts.errors)
    for line in [*lines, _footer(summary.run_id, summary.seconds, started, where)]:
        say(line)


def print_summary(summary: LoadSummary | BackfillSummary, started: float) -> None:
    """A load's or a backfill's lines, then the footer."""
    where = _in_database(summary.db_path, summary.counts.errors)
    for line in [*summary.lines(), _footer(summary.run_id, summary.seconds, started, where)]:
        say(line)


# --- tables ---------------------------------------------------------------------------------


def print_latest(rows: Sequence[Sequence[object]], tz: ZoneInfo) -> None:
    table = Table(f"published ({tz.key})", "source", "lang", "title", title="latest articles")
    for row in rows:
        table.add_row(*(shown(v or "") for v in row))
    out.print(table)


def print_feed_health(rows: Sequence[FeedHealth], tz: ZoneInfo) -> None:
    now = datetime.now(UTC)
    table = Table(title=f"feeds (times in {tz.key})")
    table.add_column("feed", overflow="fold", min_width=12)
    table.add_column("status", no_wrap=True)
    table.add_column("last ok", no_wrap=True)
    table.add_column("next check", no_wrap=True)
    table.add_column("fails", justify="right", no_wrap=True)
    table.add_column("last error", overflow="fold")
    for r in rows:
        table.add_row(
            shown(r.name or r.url),
            shown(r.status if r.in_file else f"{r.status}, not in file"),
            _stamp(r.last_success_at, now, tz) if r.last_success_at else "never",
            _next_check(r, now),
            str(r.consecutive_failures or ""),
            # The message names the feed's URL; the row already does.
            shown((r.last_error or "").replace(r.url, "the feed")),
        )
    out.print(table)
    counts = Counter(r.status for r in rows)
    say(" · ".join(f"{n} {status}" for status, n in counts.most_common()))
    if counts["gone"] or counts["disabled"]:
        say(
            "gone and disabled feeds are not polled; re-enable one with: "
            "newsflow feeds --enable NAME_OR_URL"
        )
    if unlisted := sum(not r.in_file for r in rows):
        say(f"{unlisted} in the database, no longer in the feeds file (kept, not polled)")


def _stamp(at: datetime, now: datetime, tz: ZoneInfo) -> str:
    local, today = at.astimezone(tz), now.astimezone(tz)
    if local.date() == today.date():
        return local.strftime("%H:%M")
    return local.strftime("%m-%d %H:%M" if local.year == today.year else "%Y-%m-%d")


def _next_check(r: FeedHealth, now: datetime) -> str:
    if not r.in_file:
        return "never (not in file)"
    if r.status in {"gone", "disabled"}:
        return f"never ({r.status})"
    if r.busy:
        return "now (a run polls it)"
    if r.next_check_at is None or r.next_check_at <= now:
        return "next run"
    minutes = (r.next_check_at - now).total_seconds() / 60
    if minutes < 59.5:
        when = f"in {max(round(minutes), 1)} min"
    elif minutes < 48 * 60:
        when = f"in {minutes / 60:.1f}".removesuffix(".0") + " h"
    else:
        when = f"in {minutes / 1440:.0f} d"
    asked = r.retry_after_until is not None and r.retry_after_until > now
    return f"{when} (Retry-After)" if asked else when


def print_catalogue(entries: dict[str, dict[str, Any]]) -> None:
    table = Table("name", "site", "yields", "provenance", "last verified", title="sources")
    for name, entry in entries.items():
        cells = (
            name,
            entry.get("site") or entry["request"]["url"],
            entry.get("yields", ""),
            entry.get("provenance", ""),
            entry.get("last_verified", "never"),
        )
        table.add_row(*(shown(c) for c in cells))  # selectors hold [brackets]
    out.print(table)


def print_source_checks(results: Sequence[SourceCheck]) -> None:
    table = Table("source", "items", "fields filled", "item page", "status", title="sources check")
    for r in results:
        filled = ", ".join(f"{k} {v}/{r.items}" for k, v in r.filled.items())
        status = "ok" if r.ok else f"BROKEN: {r.problem}"
        table.add_row(*(shown(c) for c in (r.name, str(r.items), filled, r.detail, status)))
    out.print(table)
    broken = [r.name for r in results if not r.ok]
    if broken:
        err.print(f"broken: {', '.join(broken)}", markup=False)
