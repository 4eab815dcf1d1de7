"""The `newsflow` command: parse arguments, build settings once, call a flow, print a summary.

No business logic here. Our own errors become one line (`error: …`) and a non-zero exit; a
run that completed exits 0 even when some feeds or items failed (they are recorded).
"""

from __future__ import annotations

import argparse
import atexit
import gc
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress
from rich.table import Table

from newsflow.cli.text import shown, visible
from newsflow.runtime.prefect_env import prepare_prefect, silence_shutdown_noise
from newsflow.schemas.config import (
    EXPORT_FORMATS,
    BackfillRequest,
    ExportRequest,
    ScaleOptions,
    Settings,
    load_feeds_file,
)
from newsflow.schemas.errors import ConfigError, NewsflowError
from newsflow.tasks.progress import PROGRESS

if TYPE_CHECKING:
    from newsflow.flows.backfill import BackfillSummary
    from newsflow.flows.ingest import RunSummary
    from newsflow.flows.load import LoadSummary
    from newsflow.runtime.local_server import TemporaryServer
    from newsflow.tasks.sources.health import FeedHealth

# Piped output is not wrapped: a summary line stays one line for grep and logs.
out = Console(highlight=False, soft_wrap=not sys.stdout.isatty())
err = Console(stderr=True, highlight=False, soft_wrap=not sys.stderr.isatty())

DEMO_DB = Path("data/demo.duckdb")
DEMO_PORT = 8765


def _add_common(p: argparse.ArgumentParser, *, feeds: bool = False, quiet: bool = True) -> None:
    p.add_argument(
        "--db", type=Path, help="DuckDB file (default: $NEWSFLOW_DB or data/news.duckdb)"
    )
    if feeds:
        p.add_argument(
            "--feeds", type=Path, help="feeds file (default: $NEWSFLOW_FEEDS or feeds.toml)"
        )
    if quiet:
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, summary only")


def _add_days(p: argparse.ArgumentParser) -> None:
    p.add_argument("--since", metavar="DATE", help="first day, YYYY-MM-DD (included)")
    p.add_argument("--until", metavar="DATE", help="last day, YYYY-MM-DD (included)")
    p.add_argument(
        "--timezone",
        metavar="TZ",
        help="timezone of the days and of naive dates (default: $NEWSFLOW_TIMEZONE or "
        "Asia/Shanghai)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="newsflow",
        description="Scheduled news ingestion for blockchain-policy research: "
        "feeds → clean articles → DuckDB.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("run", help="one ingest run over the feeds that are due")
    _add_common(p, feeds=True)
    p.add_argument(
        "--force",
        action="store_true",
        help="poll every enabled feed, due or not (a server's Retry-After still holds)",
    )
    p.add_argument(
        "--runner",
        choices=("local", "dask"),
        help="where the per-feed work runs: threads and a process pool here (local, the "
        "default), or Dask workers",
    )
    p.add_argument(
        "--dask-address",
        metavar="A",
        help="a running Dask scheduler, tcp://HOST:PORT (default with --runner dask: a local "
        "cluster of one worker per core)",
    )
    p.add_argument(
        "--shard",
        metavar="I/N",
        help="only part I of N of the feeds, 0 <= I < N (by a hash of each feed's URL): N "
        "workers with the same feeds file split it",
    )
    p.add_argument(
        "--stage-dir",
        metavar="DIR",
        help="write the batches as Parquet to this folder (or fsspec URL) instead of the "
        "database; `newsflow load` merges them",
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("load", help="merge staged batches into the database, each exactly once")
    _add_common(p)
    p.add_argument(
        "--stage-dir",
        metavar="DIR",
        required=True,
        help="the folder (or fsspec URL) that runs staged their batches in",
    )
    p.set_defaults(func=cmd_load)

    p = sub.add_parser("demo", help="the whole pipeline offline, on a bundled sample site")
    _add_common(p)
    p.add_argument("--port", type=int, default=DEMO_PORT, help="loopback port of the sample site")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "backfill",
        help="load the past over a window of days: feed archives, sitemaps, URL lists, "
        "Markdown post archives; every source optional, at least one given",
    )
    _add_common(p)
    _add_days(p)
    p.add_argument(
        "--feeds", type=Path, metavar="F", help="follow the archive pages of this file's feeds"
    )
    p.add_argument(
        "--from-dir", type=Path, metavar="DIR", help="a folder (recursive) of front-matter posts"
    )
    p.add_argument(
        "--urls", type=Path, metavar="FILE", help="a file of page URLs, one a line (# comments)"
    )
    p.add_argument(
        "--sitemap",
        action="append",
        metavar="URL",
        help="a sitemap, sitemap index or news sitemap (repeatable)",
    )
    p.add_argument(
        "--reextract",
        action="store_true",
        help="download and extract again the stored articles of the window (those of the "
        "given web sources, or all), keeping first_seen_at",
    )
    p.add_argument(
        "--base-url", metavar="URL", help="base of site-relative permalinks and images in posts"
    )
    p.set_defaults(func=cmd_backfill)

    p = sub.add_parser("export", help="write articles out as Markdown posts, Parquet or JSON lines")
    _add_common(p)
    _add_days(p)
    p.add_argument("--format", required=True, choices=EXPORT_FORMATS, help="output format")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("feeds", help="feed health: status, last success, next check, errors")
    _add_common(p, feeds=True, quiet=False)
    p.add_argument(
        "--enable", metavar="FEED", help="re-enable a gone or disabled feed (URL or name)"
    )
    p.add_argument("--disable", metavar="FEED", help="stop polling a feed (URL or name)")
    p.set_defaults(func=cmd_feeds)

    p = sub.add_parser("sources", help="the catalogue of source adapters; `check` tries them live")
    p.set_defaults(func=cmd_sources)
    checks = p.add_subparsers(dest="sources_command", metavar="check")
    c = checks.add_parser(
        "check", help="fetch each source's first list page and one item page, print what it found"
    )
    c.add_argument("names", nargs="*", metavar="NAME", help="sources to check (default: all)")
    c.add_argument("--all", action="store_true", help="check every source")
    c.add_argument(
        "--feeds", type=Path, help="check the sources of this feeds file instead of the catalogue"
    )
    c.set_defaults(func=cmd_sources_check)

    p = sub.add_parser(
        "serve",
        help="run the cron schedule (and a local Prefect server when none is configured)",
    )
    _add_common(p, feeds=True, quiet=False)
    p.add_argument(
        "--port",
        type=int,
        help="port of the local Prefect server (default: $NEWSFLOW_PREFECT_PORT or 4200)",
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("retag", help="tag every stored article again (after a lexicon change)")
    _add_common(p)
    p.add_argument(
        "--lexicon", type=Path, help="topic lexicon (default: $NEWSFLOW_LEXICON or the shipped one)"
    )
    p.add_argument(
        "--gazetteer",
        type=Path,
        help="place-name gazetteer (default: $NEWSFLOW_GAZETTEER or the shipped one)",
    )
    p.set_defaults(func=cmd_retag)

    p = sub.add_parser("report", help="coverage report: one HTML file with charts, works offline")
    _add_common(p)
    p.add_argument("--out", type=Path, required=True, help="directory to write the report into")
    p.add_argument(
        "--lexicon", type=Path, help="lexicon whose topic labels to show (default: as retag)"
    )
    p.set_defaults(func=cmd_report)
    return parser


def settings_from_args(args: argparse.Namespace, **overrides: Any) -> Settings:
    """Settings from the environment, then the command's flags; `overrides` are defaults that
    flags still win over (the demo's own database, for one)."""
    flags: dict[str, Any] = {
        "db_path": getattr(args, "db", None),
        "feeds_path": getattr(args, "feeds", None),
        "timezone": getattr(args, "timezone", None),
        "lexicon_path": getattr(args, "lexicon", None),
        "gazetteer_path": getattr(args, "gazetteer", None),
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


def print_run_summary(summary: RunSummary, started: float) -> None:
    for line in summary.lines():
        out.print(line)
    c = summary.counts
    if summary.feeds_busy:
        out.print(f"{summary.feeds_busy} due feeds left to the run already polling them")
    elif not c.feeds_checked:
        out.print("no feed was due: `newsflow feeds` shows the next checks, --force polls all")
    total = time.monotonic() - started
    timing = f"run {summary.run_id} · {total:.1f} s ({total - summary.seconds:.1f} s start-up)"
    if summary.stage_dir:
        where = f"staged in {summary.stage_dir}; merge with: newsflow load --stage-dir "
        out.print(f"{timing} · {where}{summary.stage_dir}", soft_wrap=True)
        return
    hint = " (see the ingest_errors table)" if c.errors else ""
    out.print(f"{timing} · {summary.db_path}{hint}")


def print_load_summary(summary: LoadSummary) -> None:
    from newsflow.flows.ingest import articles_line

    c = summary.counts
    rate = summary.articles / summary.seconds if summary.seconds else 0.0
    out.print(
        f"loaded {summary.batches_loaded} batches of {summary.parts} parts "
        f"({summary.batches_skipped} loaded before) · {summary.articles} articles, "
        f"{rate:,.0f} rows/s",
        soft_wrap=True,
    )
    out.print(f"{articles_line(c)} · errors: {c.errors}")
    hint = " (see the ingest_errors table)" if c.errors else ""
    out.print(
        f"run {summary.run_id} · {summary.seconds:.1f} s · {summary.db_path}{hint}",
        soft_wrap=True,
    )


# --- commands -------------------------------------------------------------------------------


def _with_prefect() -> TemporaryServer | None:
    """Set Prefect up before it is imported; with no server to attach to, start the temporary
    one now, so that it boots while the command imports and checks its inputs."""
    server = None
    if prepare_prefect() == "temporary":
        from newsflow.runtime.local_server import TemporaryServer

        server = TemporaryServer(os.environ)
        atexit.register(server.stop)
        os.environ["PREFECT_API_URL"] = server.api_url
    silence_shutdown_noise()
    return server


@contextmanager
def flow_run(server: TemporaryServer | None, *, extracts: bool = True) -> Iterator[None]:
    """Around a CLI flow call: the temporary server up, and no flow-run heartbeats. Those
    exist for deployments' runs (Prefect's zombie detection); a CLI run's own `runs` row says
    whether it crashed, and the heartbeat thread's join costs up to a second a run. A flow
    that `extracts` in this machine's worker pool has the pool's forkserver started first, to
    boot while the server does."""
    from prefect.settings import temporary_settings

    if extracts:
        from newsflow.tasks.extraction.extract import start_forkserver

        start_forkserver()
    updates: dict[str, Any] = {"flows.heartbeat_frequency": None}
    if server is not None:
        # Its port may have changed while it booted; Dask's worker processes read the
        # environment.
        updates["api.url"] = os.environ["PREFECT_API_URL"] = server.wait()
    # The objects of all that is imported by now live as long as the process: keep the
    # collector from scanning them again and again during the run.
    gc.freeze()
    with temporary_settings(updates=updates):
        yield


def check_inputs(settings: Settings, *, feeds: bool = True, stage_dir: str | None = None) -> None:
    """Fail fast, before any flow starts, on a bad feeds file or lexicon, a database that
    won't open, or (for a staged run, which opens no database) a stage folder."""
    from newsflow.tasks.coverage.tag import load_tagger
    from newsflow.tasks.storage.stage import Stage
    from newsflow.tasks.storage.store import Database

    if feeds:
        load_feeds_file(settings.feeds_path)
    if stage_dir:
        Stage(stage_dir, create=True)
        return
    load_tagger(settings.lexicon_path, settings.gazetteer_path)
    with Database(settings.db_path, settings.lock_timeout).session():
        pass


def cmd_run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    settings = settings_from_args(args)
    scale = ScaleOptions.build(
        runner=args.runner,
        dask_address=args.dask_address,
        shard=args.shard,
        stage_dir=args.stage_dir,
    )
    load_feeds_file(settings.feeds_path)  # the commonest mistake, told before anything starts
    server = _with_prefect()  # before distributed is imported: it reads its log level then
    check_inputs(settings, feeds=False, stage_dir=scale.stage_dir)
    if scale.dask_address:
        from newsflow.runtime.runners import check_scheduler

        check_scheduler(scale.dask_address)
    from newsflow.flows.ingest import ingest

    extracts = scale.runner == "local"  # on Dask, the workers extract
    with flow_run(server, extracts=extracts), progress_bar(settings.show_progress):
        summary = ingest(settings=settings, scale=scale, force=args.force)
    print_run_summary(summary, started)
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    from newsflow.flows.load import run_load

    settings = settings_from_args(args)
    with progress_bar(settings.show_progress):
        summary = run_load(settings, args.stage_dir)
    print_load_summary(summary)
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    started = time.monotonic()
    settings = settings_from_args(args)
    request = BackfillRequest.build(
        since=args.since,
        until=args.until,
        feeds=args.feeds,
        from_dir=args.from_dir,
        urls=args.urls,
        sitemaps=tuple(args.sitemap or ()),
        reextract=args.reextract,
        base_url=args.base_url,
    )
    server = _with_prefect()
    from newsflow.flows.backfill import backfill, check_backfill_inputs

    check_backfill_inputs(settings, request)
    # Posts read from files are not extracted; web sources are.
    extracts = bool(request.feeds or request.urls or request.sitemaps or request.reextract)
    with flow_run(server, extracts=extracts), progress_bar(settings.show_progress):
        summary = backfill(settings=settings, request=request)
    print_backfill_summary(summary, started)
    return 0


def print_backfill_summary(summary: BackfillSummary, started: float) -> None:
    c = summary.counts
    not_posts = f" · {summary.not_posts} files without front matter" if summary.not_posts else ""
    out.print(
        f"backfill: {c.entries_seen} items read, {c.pages_downloaded} pages downloaded, "
        f"{summary.outside_window} outside the window{not_posts}",
        soft_wrap=True,
    )
    out.print(
        f"articles: {c.articles_new} new, {c.articles_updated} updated, "
        f"{c.duplicates} duplicates · refused: {summary.refused} posts · errors: {c.errors}",
        soft_wrap=True,
    )
    hint = " (see the ingest_errors table)" if c.errors else ""
    total = time.monotonic() - started
    out.print(
        f"run {summary.run_id} · {total:.1f} s ({total - summary.seconds:.1f} s start-up)"
        f" · {summary.db_path}{hint}",
        soft_wrap=True,
    )


def cmd_export(args: argparse.Namespace) -> int:
    from newsflow.tasks.storage.export import export_articles
    from newsflow.tasks.storage.store import Database

    settings = settings_from_args(args)
    request = ExportRequest.build(
        format=args.format, out=args.out, since=args.since, until=args.until
    )
    db = Database(settings.db_path, settings.lock_timeout, read_only=True)
    result = export_articles(db, request, settings.tz)
    out.print(
        f"exported {result.count} articles as {result.format} to {result.path}", soft_wrap=True
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from newsflow.demo.catalogue import demo_feeds_toml
    from newsflow.demo.site import SiteServer

    started = time.monotonic()
    settings = settings_from_args(
        args,
        db_path=DEMO_DB,
        fetch={"allow_private_networks": True, "retries": 0},
    )
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port}: not a port number (0 to 65535)")
    server = _with_prefect()
    from newsflow.flows.ingest import ingest

    with ExitStack() as stack:
        try:
            site = stack.enter_context(SiteServer(port=args.port))
        except OSError as exc:
            raise ConfigError(f"--port {args.port}: {exc.strerror or exc}") from exc
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="newsflow-demo-"))
        feeds_path = Path(tmp) / "feeds.toml"
        feeds_path.write_text(demo_feeds_toml(site.base_url), encoding="utf-8")
        out.print(f"demo site on {site.base_url} · database {settings.db_path}")
        run_settings = settings.model_copy(update={"feeds_path": feeds_path})
        with flow_run(server), progress_bar(settings.show_progress):
            summary = ingest(settings=run_settings, force=True)
    print_run_summary(summary, started)
    show_latest(settings, limit=8)
    return 0


def show_latest(settings: Settings, limit: int) -> None:
    from newsflow.tasks.storage.store import Database

    with Database(settings.db_path, settings.lock_timeout).session() as con:
        rows = con.execute(
            "SELECT strftime(published_at AT TIME ZONE 'Asia/Shanghai', '%Y-%m-%d %H:%M'), "
            "source, language, title FROM articles ORDER BY published_at DESC NULLS LAST LIMIT ?",
            [limit],
        ).fetchall()
    table = Table("published (Shanghai)", "source", "lang", "title", title="latest articles")
    for row in rows:
        table.add_row(*(shown(v or "") for v in row))
    out.print(table)


def cmd_feeds(args: argparse.Namespace) -> int:
    from newsflow.tasks.sources.health import feed_health
    from newsflow.tasks.storage.feed_health import set_feed_status
    from newsflow.tasks.storage.store import Database

    settings = settings_from_args(args)
    feeds_file = None
    if settings.feeds_path.exists() or args.feeds:
        feeds_file = load_feeds_file(settings.feeds_path)
    else:
        out.print(f"(no feeds file at {settings.feeds_path}: showing the database only)")
    if args.enable and args.enable == args.disable:
        raise ConfigError(f"--enable and --disable both name {args.enable}")
    changes = bool(args.enable or args.disable)
    db = Database(settings.db_path, settings.lock_timeout, read_only=not changes)
    for feed, status in ((args.enable, "active"), (args.disable, "disabled")):
        if feed:
            with db.session() as con:
                urls = set_feed_status(con, feed, status)
            for url in urls:
                out.print(f"{visible(url)}: {status}", markup=False)
    with db.session() as con:
        rows = feed_health(con, feeds_file)
    print_feed_health(rows, settings.tz)
    return 0


def print_feed_health(rows: Sequence[FeedHealth], tz: ZoneInfo) -> None:
    from collections import Counter

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
            shown(r.status),
            _stamp(r.last_success_at, now, tz) if r.last_success_at else "never",
            _next_check(r, now),
            str(r.consecutive_failures or ""),
            # The message names the feed's URL; the row already does.
            shown((r.last_error or "").replace(r.url, "the feed")),
        )
    out.print(table)
    counts = Counter(r.status for r in rows)
    out.print(" · ".join(f"{n} {status}" for status, n in counts.most_common()) or "no feeds")
    if counts["gone"] or counts["disabled"]:
        out.print(
            "gone and disabled feeds are not polled; re-enable one with: "
            "newsflow feeds --enable NAME_OR_URL",
            soft_wrap=True,
        )
    if counts["unlisted"]:
        out.print(
            "unlisted: in the database, no longer in the feeds file (kept, not polled)",
            soft_wrap=True,
        )


def _stamp(at: datetime, now: datetime, tz: ZoneInfo) -> str:
    local, today = at.astimezone(tz), now.astimezone(tz)
    if local.date() == today.date():
        return local.strftime("%H:%M")
    return local.strftime("%m-%d %H:%M" if local.year == today.year else "%Y-%m-%d")


def _next_check(r: FeedHealth, now: datetime) -> str:
    if r.status in {"gone", "disabled", "unlisted"}:
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


def cmd_sources(args: argparse.Namespace) -> int:
    from newsflow.schemas.sources import catalogue

    table = Table("name", "site", "yields", "provenance", "last verified", title="sources")
    for name, entry in catalogue().items():
        cells = (
            name,
            entry.get("site") or entry["request"]["url"],
            entry.get("yields", ""),
            entry.get("provenance", ""),
            entry.get("last_verified", "never"),
        )
        table.add_row(*(shown(c) for c in cells))  # selectors hold [brackets]
    out.print(table)
    return 0


def cmd_sources_check(args: argparse.Namespace) -> int:
    from newsflow.tasks.pipeline.source_check import check_sources, select_sources

    settings = settings_from_args(args)
    feeds_file = load_feeds_file(args.feeds) if args.feeds else None
    sources = select_sources(feeds_file, args.names, args.all)
    table = Table("source", "items", "fields filled", "item page", "status", title="sources check")
    results = check_sources(sources, settings, feeds_file)
    for r in results:
        filled = ", ".join(f"{k} {v}/{r.items}" for k, v in r.filled.items())
        status = "ok" if r.ok else f"BROKEN: {r.problem}"
        table.add_row(*(shown(c) for c in (r.name, str(r.items), filled, r.detail, status)))
    out.print(table)
    broken = [r.name for r in results if not r.ok]
    if broken:
        err.print(f"broken: {', '.join(broken)}", markup=False)
    return 1 if broken else 0


def cmd_serve(args: argparse.Namespace) -> int:
    from newsflow.runtime.prefect_env import local_port
    from newsflow.runtime.serve import run_serve

    settings = settings_from_args(args)
    check_inputs(settings)
    port = args.port or local_port(os.environ)
    run_serve(settings, port, report=lambda line: out.print(line, markup=False, soft_wrap=True))
    out.print("stopped")
    return 0


def cmd_retag(args: argparse.Namespace) -> int:
    from newsflow.tasks.coverage.tag import load_tagger
    from newsflow.tasks.progress import report_progress
    from newsflow.tasks.storage.store import Database
    from newsflow.tasks.storage.tags import retag_all

    settings = settings_from_args(args)
    tagger = load_tagger(settings.lexicon_path, settings.gazetteer_path)
    db = Database(settings.db_path, settings.lock_timeout)
    started = time.monotonic()
    with progress_bar(settings.show_progress):
        counts = retag_all(
            db, tagger, progress=lambda done, total: report_progress("retag", done, total)
        )
    out.print(
        f"retagged {counts.articles} articles in {time.monotonic() - started:.1f} s · "
        f"rows: {counts.topics} topics, {counts.regions} regions, {counts.docs} documents, "
        f"{counts.orgs} organizations · {settings.db_path}"
    )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from newsflow.schemas.lexicon import load_lexicon
    from newsflow.tasks.coverage.report import write_report
    from newsflow.tasks.storage.store import Database

    settings = settings_from_args(args)
    lexicon = load_lexicon(settings.lexicon_path)
    db = Database(settings.db_path, settings.lock_timeout, read_only=True)
    path = write_report(db, args.out, lexicon)
    out.print(f"report written: {path}")
    return 0


# --- entry point ----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except NewsflowError as exc:
        err.print(f"error: {visible(exc)}", markup=False, soft_wrap=True)
        return 1
    except KeyboardInterrupt:
        err.print("interrupted", markup=False)
        return 130


if __name__ == "__main__":
    sys.exit(main())
