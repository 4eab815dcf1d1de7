"""The commands of `newsflow`: each builds settings once, opens what it needs, calls one
flow or library function, and hands the result to newsflow.cli.render.

No business logic and no SQL here (that is in flows/ and tasks/); our own errors are raised
as NewsflowError and become one line in newsflow.cli.main.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from newsflow.cli.render import (
    err,
    print_catalogue,
    print_feed_health,
    print_latest,
    print_run_summary,
    print_source_checks,
    print_summary,
    progress_bar,
    say,
)
from newsflow.cli.text import visible
from newsflow.runtime.prefect_env import (
    check_api_reachable,
    check_scale_extra,
    prepare_prefect,
    silence_shutdown_noise,
)
from newsflow.schemas.config import (
    BackfillRequest,
    ExportRequest,
    ScaleOptions,
    Settings,
    load_feeds_file,
)
from newsflow.schemas.errors import ConfigError

if TYPE_CHECKING:
    from newsflow.runtime.local_server import TemporaryServer

DEMO_DB = Path("data/demo.duckdb")


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
    """Around a CLI flow call: the server up (the temporary one, or the one the environment
    names, checked), and no flow-run heartbeats. Those exist for deployments' runs (Prefect's
    zombie detection); a CLI run's own `runs` row says whether it crashed, and the heartbeat
    thread's join costs up to a second a run. A flow that `extracts` in this machine's worker
    pool has the pool's forkserver started first, to boot while the server does."""
    from prefect.settings import temporary_settings

    if server is None:  # a server that should be running: one line if it is not
        check_api_reachable(os.environ["PREFECT_API_URL"])
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
    if scale.runner == "dask":
        check_scale_extra()
    feeds_file = load_feeds_file(settings.feeds_path)  # the commonest mistake, told first
    server = _with_prefect()  # before distributed is imported: it reads its log level then
    check_inputs(settings, feeds=False, stage_dir=scale.stage_dir)
    if scale.dask_address:
        from newsflow.runtime.runners import check_scheduler

        check_scheduler(scale.dask_address)
    from newsflow.flows.ingest import ingest

    extracts = scale.runner == "local"  # on Dask, the workers extract
    with flow_run(server, extracts=extracts), progress_bar(settings.show_progress):
        summary = ingest(settings=settings, scale=scale, force=args.force)
    print_run_summary(summary, started, None if feeds_file.feeds else settings.feeds_path)
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    from newsflow.flows.load import run_load

    started = time.monotonic()
    settings = settings_from_args(args)
    with progress_bar(settings.show_progress):
        summary = run_load(settings, args.stage_dir)
    print_summary(summary, started)
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
    print_summary(summary, started)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from newsflow.tasks.storage.export import export_articles
    from newsflow.tasks.storage.store import Database

    settings = settings_from_args(args)
    request = ExportRequest.build(
        format=args.format, out=args.out, since=args.since, until=args.until
    )
    db = Database(settings.db_path, settings.lock_timeout, read_only=True)
    result = export_articles(db, request, settings.tz)
    say(f"exported {result.count} articles as {result.format} to {result.path}")
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
    check_inputs(settings, feeds=False)  # the database: demo's default is under the cwd
    from newsflow.flows.ingest import ingest

    with ExitStack() as stack:
        try:
            site = stack.enter_context(SiteServer(port=args.port))
        except OSError as exc:
            raise ConfigError(f"--port {args.port}: {exc.strerror or exc}") from exc
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="newsflow-demo-"))
        feeds_path = Path(tmp) / "feeds.toml"
        feeds_path.write_text(demo_feeds_toml(site.base_url), encoding="utf-8")
        say(f"demo site on {site.base_url} · database {settings.db_path}")
        run_settings = settings.model_copy(update={"feeds_path": feeds_path})
        with flow_run(server), progress_bar(settings.show_progress):
            summary = ingest(settings=run_settings, force=True)
    print_run_summary(summary, started)
    from newsflow.tasks.storage.query import latest_articles
    from newsflow.tasks.storage.store import Database

    db = Database(settings.db_path, settings.lock_timeout, read_only=True)
    with db.session() as con:
        print_latest(latest_articles(con, 8, settings.tz.key), settings.tz)
    return 0


def cmd_feeds(args: argparse.Namespace) -> int:
    from newsflow.tasks.sources.health import feed_health
    from newsflow.tasks.storage.feed_health import set_feed_status
    from newsflow.tasks.storage.store import Database

    settings = settings_from_args(args)
    feeds_file = None
    if settings.feeds_path.exists() or args.feeds:
        feeds_file = load_feeds_file(settings.feeds_path)
    else:
        say(f"(no feeds file at {settings.feeds_path}: showing the database only)")
    if args.enable and args.enable == args.disable:
        raise ConfigError(f"--enable and --disable both name {args.enable}")
    changes = bool(args.enable or args.disable)
    db = Database(settings.db_path, settings.lock_timeout, read_only=not changes)
    for feed, status in ((args.enable, "active"), (args.disable, "disabled")):
        if feed:
            with db.session() as con:
                urls = set_feed_status(con, feed, status)
            for url in urls:
                say(f"{visible(url)}: {status}")
    with db.session() as con:
        rows = feed_health(con, feeds_file)
    if not rows:
        say(f"no feeds: none in {settings.feeds_path} nor in the database")
        return 0
    print_feed_health(rows, settings.tz)
    return 0


def cmd_sources(args: argparse.Namespace) -> int:
    from newsflow.schemas.sources import catalogue

    print_catalogue(catalogue())
    return 0


def cmd_sources_check(args: argparse.Namespace) -> int:
    from newsflow.tasks.pipeline.source_check import check_sources, select_sources

    settings = settings_from_args(args)
    feeds_file = load_feeds_file(args.feeds) if args.feeds else None
    sources = select_sources(feeds_file, args.names, args.all)
    results = check_sources(sources, settings, feeds_file)
    print_source_checks(results)
    return 0 if all(r.ok for r in results) else 1


def cmd_serve(args: argparse.Namespace) -> int:
    from newsflow.runtime.prefect_env import local_port
    from newsflow.runtime.serve import run_serve

    settings = settings_from_args(args)
    check_inputs(settings)
    port = args.port or local_port(os.environ)
    run_serve(settings, port, report=say)
    say("stopped")
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
    say(
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
    say(f"report written: {path}")
    return 0
