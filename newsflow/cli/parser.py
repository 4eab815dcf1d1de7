"""The `newsflow` command line's arguments: one subparser per command, each bound to its
function in newsflow.cli.commands."""

from __future__ import annotations

import argparse
from pathlib import Path

from newsflow.cli.commands import (
    DEMO_DB,
    cmd_backfill,
    cmd_demo,
    cmd_export,
    cmd_feeds,
    cmd_load,
    cmd_report,
    cmd_retag,
    cmd_run,
    cmd_serve,
    cmd_sources,
    cmd_sources_check,
)
from newsflow.cli.search import add_search_parsers
from newsflow.schemas.config import EXPORT_FORMATS

DEMO_PORT = 8765


def _add_common(
    p: argparse.ArgumentParser,
    *,
    feeds: bool = False,
    quiet: bool = True,
    db_default: str = "$NEWSFLOW_DB or data/news.duckdb",
) -> None:
    p.add_argument("--db", type=Path, help=f"DuckDB file (default: {db_default})")
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
    _add_common(p, db_default=f"{DEMO_DB}, whatever $NEWSFLOW_DB says")
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
    add_search_parsers(sub)
    return parser
