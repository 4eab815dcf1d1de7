"""The `newsflow` command: parse arguments, build settings once, call a flow, print a summary.

No business logic here. Our own errors become one line (`error: …`) and a non-zero exit; a
run that completed exits 0 even when some feeds or items failed (they are recorded).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress
from rich.table import Table

from flows.progress import PROGRESS
from flows.runtime import prepare_prefect, silence_shutdown_noise
from schemas.config import Settings
from schemas.errors import NewsflowError
from schemas.models import RunCounts

if TYPE_CHECKING:
    from flows.ingest import RunSummary

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

DEMO_DB = Path("data/demo.duckdb")
DEMO_PORT = 8765


def _add_common(p: argparse.ArgumentParser, *, feeds: bool = False) -> None:
    p.add_argument(
        "--db", type=Path, help="DuckDB file (default: $NEWSFLOW_DB or data/news.duckdb)"
    )
    if feeds:
        p.add_argument(
            "--feeds", type=Path, help="feeds file (default: $NEWSFLOW_FEEDS or feeds.toml)"
        )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, summary only")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="newsflow",
        description="Scheduled news ingestion for blockchain-policy research: "
        "feeds → clean articles → DuckDB.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("run", help="one ingest run over the feeds that are due")
    _add_common(p, feeds=True)
    p.add_argument("--force", action="store_true", help="poll every enabled feed, due or not")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="the whole pipeline offline, on a bundled sample site")
    _add_common(p)
    p.add_argument("--port", type=int, default=DEMO_PORT, help="loopback port of the sample site")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("feeds", help="feed health: status, last success, next check, errors")
    _add_common(p)
    p.add_argument("--enable", metavar="URL", help="re-enable a gone or disabled feed")
    p.add_argument("--disable", metavar="URL", help="stop polling a feed")
    p.set_defaults(func=cmd_feeds)
    return parser


def settings_from_args(args: argparse.Namespace, **overrides: Any) -> Settings:
    """Settings from the environment, then the command's flags; `overrides` are defaults that
    flags still win over (the demo's own database, for one)."""
    flags: dict[str, Any] = {
        "db_path": getattr(args, "db", None),
        "feeds_path": getattr(args, "feeds", None),
        "show_progress": not getattr(args, "quiet", False) and err.is_terminal,
    }
    values = overrides | {k: v for k, v in flags.items() if v is not None}
    return Settings.from_env(**values)


# --- progress and summaries -----------------------------------------------------------------


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


def duplicate_layers(c: RunCounts) -> str:
    """ " (url 2, near 5)": the dedup layers that found something."""
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


def print_run_summary(summary: RunSummary) -> None:
    c = summary.counts
    out.print(
        f"feeds: {c.feeds_checked} checked, {c.feeds_failed} failed, "
        f"{c.feeds_not_modified} unchanged · pages downloaded: {c.pages_downloaded}"
    )
    out.print(
        f"articles: {c.articles_new} new, {c.articles_updated} updated, "
        f"{c.duplicates} duplicates{duplicate_layers(c)} · errors: {c.errors}"
    )
    hint = " (see the ingest_errors table)" if c.errors else ""
    out.print(f"run {summary.run_id} · {summary.seconds:.1f} s · {summary.db_path}{hint}")


# --- commands -------------------------------------------------------------------------------


def _with_prefect(quiet_server: bool = True) -> None:
    prepare_prefect()
    if quiet_server:
        silence_shutdown_noise()


def check_inputs(settings: Settings, *, feeds: bool = True) -> None:
    """Fail fast, before any flow starts, on a bad feeds file or a database that won't open."""
    from schemas.config import load_feeds_file
    from tasks.store import Database

    if feeds:
        load_feeds_file(settings.feeds_path)
    with Database(settings.db_path, settings.lock_timeout).session():
        pass


def cmd_run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    check_inputs(settings)
    _with_prefect()
    from flows.ingest import ingest

    with progress_bar(settings.show_progress):
        summary = ingest(settings=settings, force=args.force)
    print_run_summary(summary)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from flows.demo import SiteServer, demo_feeds_toml

    settings = settings_from_args(
        args,
        db_path=DEMO_DB,
        fetch={"allow_private_networks": True, "retries": 0},
    )
    _with_prefect()
    from flows.ingest import ingest

    with (
        SiteServer(port=args.port) as site,
        tempfile.TemporaryDirectory(prefix="newsflow-demo-") as tmp,
    ):
        feeds_path = Path(tmp) / "feeds.toml"
        feeds_path.write_text(demo_feeds_toml(site.base_url), encoding="utf-8")
        out.print(f"demo site on {site.base_url} · database {settings.db_path}")
        run_settings = settings.model_copy(update={"feeds_path": feeds_path})
        with progress_bar(settings.show_progress):
            summary = ingest(settings=run_settings, force=True)
    print_run_summary(summary)
    show_latest(settings, limit=8)
    return 0


def show_latest(settings: Settings, limit: int) -> None:
    from tasks.store import Database

    with Database(settings.db_path, settings.lock_timeout).session() as con:
        rows = con.execute(
            "SELECT strftime(published_at AT TIME ZONE 'Asia/Shanghai', '%Y-%m-%d %H:%M'), "
            "source, language, title FROM articles ORDER BY published_at DESC NULLS LAST LIMIT ?",
            [limit],
        ).fetchall()
    table = Table("published (Shanghai)", "source", "lang", "title", title="latest articles")
    for row in rows:
        table.add_row(*(str(v or "") for v in row))
    out.print(table)


def cmd_feeds(args: argparse.Namespace) -> int:
    from tasks.health import feed_health_rows
    from tasks.load import set_feed_status
    from tasks.store import Database

    settings = settings_from_args(args)
    db = Database(settings.db_path, settings.lock_timeout)
    for url, status in ((args.enable, "active"), (args.disable, "disabled")):
        if url:
            with db.session() as con:
                set_feed_status(con, url, status)
            out.print(f"{url}: {status}")
    with db.session() as con:
        rows = feed_health_rows(con)
    table = Table(
        "feed", "status", "last success", "next check", "failures", "last error", title="feeds"
    )
    for r in rows:
        table.add_row(*(str(v) if v is not None else "" for v in r))
    out.print(table)
    if any(r[1] in {"gone", "disabled"} for r in rows):
        out.print("re-enable a feed with: newsflow feeds --enable URL")
    return 0


# --- entry point ----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except NewsflowError as exc:
        err.print(f"error: {exc}", markup=False, soft_wrap=True)
        return 1
    except KeyboardInterrupt:
        err.print("interrupted", markup=False)
        return 130


if __name__ == "__main__":
    sys.exit(main())
