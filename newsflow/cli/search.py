"""`newsflow search`, `newsflow trend` and `newsflow reindex`: parsers, commands, rendering.

The commands open the database read-only (a database from before the index is indexed once,
with progress shown, as an older file is migrated), call tasks/search, and print;
newsflow/cli/parser.py registers them.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

from newsflow.cli.commands import settings_from_args
from newsflow.cli.render import out, progress_bar
from newsflow.cli.text import visible

if TYPE_CHECKING:
    from newsflow.schemas.config import Settings
    from newsflow.tasks.search.query import SearchResult, Trend
    from newsflow.tasks.storage.store import Database

SPARKS = "▁▂▃▄▅▆▇█"


def add_search_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("search", help="ranked full-text search over titles and bodies")
    p.add_argument(
        "query",
        help='words and Chinese terms (all must match), "quoted phrases", -exclusions',
    )
    _add_db_and_days(p, until=True)
    p.add_argument("--source", metavar="S", help="only articles of this source")
    p.add_argument("--topic", metavar="T", help="only articles tagged with this topic")
    p.add_argument("--limit", type=int, default=20, metavar="N", help="rows shown (default 20)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("trend", help="matching articles and stories per day, week or month")
    p.add_argument("terms", nargs="+", metavar="TERM", help="one series per term (a query each)")
    p.add_argument("--by", choices=("day", "week", "month"), default="week")
    _add_db_and_days(p, until=False)
    p.add_argument("--source", metavar="S", help="only articles of this source")
    p.add_argument("--json", action="store_true", help="one JSON object per term and period")
    p.set_defaults(func=cmd_trend)

    p = sub.add_parser("reindex", help="rebuild the full-text index from the stored articles")
    p.add_argument(
        "--db", type=Path, help="DuckDB file (default: $NEWSFLOW_DB or data/news.duckdb)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, summary only")
    p.set_defaults(func=cmd_reindex)


def _add_db_and_days(p: argparse.ArgumentParser, *, until: bool) -> None:
    p.add_argument(
        "--db", type=Path, help="DuckDB file (default: $NEWSFLOW_DB or data/news.duckdb)"
    )
    p.add_argument("--since", metavar="DATE", help="first day, YYYY-MM-DD (included)")
    if until:
        p.add_argument("--until", metavar="DATE", help="last day, YYYY-MM-DD (included)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar while indexing")


def _open_indexed(settings: Settings) -> Database:
    """The database, read-only, with every stored article in the index."""
    from newsflow.tasks.progress import report_progress
    from newsflow.tasks.search.query import ensure_index
    from newsflow.tasks.storage.store import Database

    db = Database(settings.db_path, settings.lock_timeout, read_only=True)
    with progress_bar(settings.show_progress):
        ensure_index(db, progress=lambda done, total: report_progress("index", done, total))
    return db


def cmd_search(args: argparse.Namespace) -> int:
    from newsflow.schemas.config import SearchRequest
    from newsflow.schemas.models import DateWindow
    from newsflow.tasks.search.query import search

    settings = settings_from_args(args)
    request = SearchRequest.build(
        query=args.query, since=args.since, until=args.until, source=args.source,
        topic=args.topic, limit=args.limit,
    )  # fmt: skip
    db = _open_indexed(settings)
    with db.session() as con:
        result = search(con, request, DateWindow.of_days(request.since, request.until, settings.tz))
    if args.json:
        print_search_json(result)
    else:
        print_search(result)
    return 0


def print_search_json(result: SearchResult) -> None:

    for hit in result.hits:
        record = hit.model_dump(mode="json")
        record["snippet"] = record["snippet"].replace("«", "").replace("»", "")
        out.print(json.dumps(record, ensure_ascii=False), markup=False, soft_wrap=True)


def highlighted(snippet: str) -> Text:
    """The snippet with its «keyword» in bold, control characters made visible."""
    text = Text()
    before, mark, rest = visible(snippet).partition("«")
    text.append(before)
    if mark:
        keyword, _, after = rest.partition("»")
        text.append(keyword, style="bold yellow")
        text.append(after)
    return text


def print_search(result: SearchResult) -> None:

    if not result.hits:
        out.print("no matches")
        return
    table = Table(show_edge=False, pad_edge=False)
    for name in ("#", "score", "published", "source", "title / in context"):
        table.add_column(name, overflow="fold")
    for rank, hit in enumerate(result.hits, 1):
        when = hit.published_at.date().isoformat() if hit.published_at else "-"
        cell = Text(visible(hit.title), style="bold")
        cell.append("\n").append_text(highlighted(hit.snippet))
        table.add_row(str(rank), f"{hit.score:.2f}", when, visible(hit.source or "-"), cell)
    out.print(table)
    sources = ", ".join(f"{visible(s)} {n}" for s, n in result.per_source)
    out.print(
        f"{len(result.hits)} of {result.total} matches · per source: {sources}",
        markup=False, soft_wrap=True,
    )  # fmt: skip


def cmd_trend(args: argparse.Namespace) -> int:
    from newsflow.schemas.config import TrendRequest
    from newsflow.schemas.models import DateWindow
    from newsflow.tasks.search.query import trends

    settings = settings_from_args(args)
    request = TrendRequest.build(
        terms=tuple(args.terms), by=args.by, since=args.since, source=args.source
    )
    db = _open_indexed(settings)
    with db.session() as con:
        found = trends(con, request, DateWindow.of_days(request.since, None, settings.tz))
    if args.json:
        print_trend_json(found)
    else:
        print_trend(found)
    return 0


def sparkline(values: list[int]) -> str:
    top = max(values, default=0)
    if not top:
        return SPARKS[0] * len(values)
    return "".join(SPARKS[round(v / top * (len(SPARKS) - 1))] for v in values)


def print_trend_json(found: list[Trend]) -> None:

    for trend in found:
        for point in trend.points:
            record = {"term": trend.term, **point.model_dump(mode="json")}
            out.print(json.dumps(record, ensure_ascii=False), markup=False, soft_wrap=True)


def print_trend(found: list[Trend]) -> None:

    if not any(p.articles for t in found for p in t.points):
        out.print("no matches")
        return
    table = Table(show_edge=False, pad_edge=False)
    for name in ("term", "articles", "stories", "from", "to", "per period"):
        table.add_column(name)
    for trend in found:
        points = trend.points
        table.add_row(
            visible(trend.term),
            str(sum(p.articles for p in points)),
            str(sum(p.stories for p in points)),
            points[0].period.isoformat() if points else "-",
            points[-1].period.isoformat() if points else "-",
            sparkline([p.articles for p in points]),
        )
    out.print(table)
    periods = Table(show_edge=False, pad_edge=False, title="articles (stories) per period")
    periods.add_column("period")
    for trend in found:
        periods.add_column(visible(trend.term), justify="right")
    for row in zip(*(t.points for t in found), strict=True):
        cells = [f"{p.articles} ({p.stories})" if p.articles else "·" for p in row]
        periods.add_row(row[0].period.isoformat(), *cells)
    out.print(periods)


def cmd_reindex(args: argparse.Namespace) -> int:
    from newsflow.tasks.progress import report_progress
    from newsflow.tasks.search.bulk import rebuild_index
    from newsflow.tasks.storage.store import Database

    settings = settings_from_args(args)
    if not settings.db_path.is_file():
        from newsflow.schemas.errors import DatabaseError

        raise DatabaseError(f"no database at {settings.db_path.resolve()}")
    db = Database(settings.db_path, settings.lock_timeout)
    started = time.monotonic()
    with progress_bar(settings.show_progress):
        counts = rebuild_index(
            db,
            progress=lambda done, total: report_progress("reindex", done, total),
            workers=os.cpu_count() or 1,  # segmentation in processes, as extraction's
        )
    out.print(
        f"indexed {counts.articles} articles in {time.monotonic() - started:.1f} s · "
        f"{counts.terms} terms, {counts.postings} postings · {settings.db_path}",
        markup=False, soft_wrap=True,
    )  # fmt: skip
    return 0
