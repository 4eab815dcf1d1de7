"""Page metadata accuracy and the metadata stage's cost, on tests/fixtures/meta_pages.

Each page is decoded as the fetcher would (raw bytes, no charset header), extracted with
`extract_page` and normalized with `build_feed_article` behind a feed item that gives only the
link (no title, date or author), then compared with its expected record:

- Chinese: dates right at the precision the page states (the local value cut to that precision),
  dates given to pages that state none, titles exact, authors exact, body F1 on characters;
- English: dates within a day, titles, authors, body F1 on words;
- cost: the metadata stage's time (`read_metadata` on the parsed tree) as a share of
  `extract_page`'s, in one process (the pool runs the same code per worker).

    .venv/bin/python benchmarks/metadata.py                  # this tree
    .venv/bin/python benchmarks/metadata.py --against 5c6ffa6  # and a git commit, side by side

`--against` checks the commit out in a temporary worktree and runs this script there through a
folder of symlinks laid out as the installed namespace (as `make typecheck` does), with this
tree's fixtures: the same pages measured by both codes in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
PAGES = ROOT / "tests" / "fixtures" / "meta_pages"
TZ = ZoneInfo("Asia/Shanghai")  # the feeds file's default zone
_PRECISION_CHARS = {"year": 4, "month": 7, "day": 10, "minute": 16, "second": 19}


def tokens(text: str, language: str) -> list[str]:
    return [c for c in text if not c.isspace()] if language == "zh" else text.lower().split()


def f1(got: str, want: str, language: str) -> float:
    g, w = Counter(tokens(got, language)), Counter(tokens(want, language))
    common = sum((g & w).values())
    if not common:
        return 0.0
    precision, recall = common / sum(g.values()), common / sum(w.values())
    return 2 * precision * recall / (precision + recall)


def date_right(article: Any, want: dict[str, Any]) -> bool:
    """At the page's precision: the day (`published_date` where stored, else the local date of
    published_at), or the instant cut to the minute or second."""
    got: datetime | None = article.published_at
    if want["published_at"] is None or got is None:
        return want["published_at"] is None and got is None
    precision = want["published_precision"]
    if precision in ("year", "month", "day"):
        day = getattr(article, "published_date", None) or got.astimezone(TZ).date()
        return (
            day.isoformat()[: _PRECISION_CHARS[precision]]
            == want["published_date"][: _PRECISION_CHARS[precision]]
        )
    expected = datetime.fromisoformat(want["published_at"].replace("Z", "+00:00"))
    cut = _PRECISION_CHARS[precision]
    return got.astimezone(UTC).isoformat()[:cut] == expected.astimezone(UTC).isoformat()[:cut]


def within_a_day(article: Any, want: dict[str, Any]) -> bool:
    got: datetime | None = article.published_at
    if want["published_at"] is None or got is None:
        return want["published_at"] is None and got is None
    expected = datetime.fromisoformat(want["published_at"].replace("Z", "+00:00"))
    return abs(got - expected) <= timedelta(days=1)


def stage_seconds(url: str, html: str) -> float:
    """The metadata stage alone on the parsed page (0 where the code has no such stage)."""
    try:
        from newsflow.tasks.extraction.metadata.choose import read_metadata
    except ImportError:
        return 0.0
    from trafilatura.utils import load_html

    tree = load_html(html)
    start = time.perf_counter()
    read_metadata(tree, url)
    return time.perf_counter() - start


def measure() -> dict[str, Any]:
    from newsflow.schemas.models import FeedEntry
    from newsflow.tasks.extraction.extract import extract_page
    from newsflow.tasks.extraction.normalize import build_feed_article
    from newsflow.tasks.fetching.charset import decode_html

    rows: list[dict[str, Any]] = []
    extract_time = stage_time = 0.0
    for expectation in sorted(PAGES.glob("*.json")):
        want = json.loads(expectation.read_text(encoding="utf-8"))
        html, _ = decode_html(expectation.with_suffix(".html").read_bytes(), "text/html")
        url = want["url"]
        start = time.perf_counter()
        page = extract_page(url, html)
        extract_time += time.perf_counter() - start
        stage_time += stage_seconds(url, html)
        article, _ = build_feed_article(
            FeedEntry(link=url),
            page,
            source=None,
            feed_title=None,
            language=None,
            feed_categories=[],
            tz=TZ,
        )
        language = want["language"]
        rows.append(
            {
                "page": expectation.stem,
                "language": language,
                "dated": want["published_at"] is not None,
                "date_right": date_right(article, want),
                "within_day": within_a_day(article, want),
                "title": article.title == want["title"],
                "author": article.author == want["author"],
                "origin": getattr(article, "origin_source", None) == want["origin_source"],
                "f1": f1(article.body_text, want["body"], language),
            }
        )
    return {"rows": rows, "extract_s": extract_time, "stage_s": stage_time}


def summary(result: dict[str, Any]) -> dict[str, str]:
    rows = result["rows"]
    out: dict[str, str] = {}
    for language, date_key in (("zh", "date_right"), ("en", "within_day")):
        mine = [r for r in rows if r["language"] == language]
        dated = [r for r in mine if r["dated"]]
        undated = [r for r in mine if not r["dated"]]
        n = len(mine)
        label = "right at precision" if language == "zh" else "within a day"
        out[f"{language} dates {label}"] = _ratio(sum(r[date_key] for r in dated), len(dated))
        out[f"{language} undated given a date"] = _ratio(
            sum(not r[date_key] for r in undated), len(undated)
        )
        for field in ("title", "author", "origin"):
            out[f"{language} {field}s exact"] = _ratio(sum(r[field] for r in mine), n)
        out[f"{language} body F1"] = f"{sum(r['f1'] for r in mine) / max(n, 1):.3f}"
    share = result["stage_s"] / result["extract_s"] if result["extract_s"] else 0.0
    out["stage share of extraction"] = f"{share:.1%}" if result["stage_s"] else "n/a"
    out["extraction ms/page"] = f"{1000 * result['extract_s'] / max(len(rows), 1):.1f}"
    return out


def _ratio(k: int, n: int) -> str:
    return f"{k}/{n} ({k / n:.0%})" if n else "-"


def measure_commit(commit: str) -> dict[str, Any]:
    """This script run against `commit`'s code (see the module docstring)."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(tree), commit],
            check=True,
        )
        try:
            namespace = Path(tmp) / "ns" / "newsflow"
            namespace.mkdir(parents=True)
            for name in ("flows", "tasks", "schemas", "deployments"):
                (namespace / name).symlink_to(tree / name)
            for name in ("__init__.py", "cli", "runtime", "demo"):
                (namespace / name).symlink_to(tree / "newsflow" / name)
            env = {**os.environ, "PYTHONPATH": str(namespace.parent)}
            done = subprocess.run(
                [sys.executable, __file__, "--json"],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            )
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=True
            )
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--against", help="a git commit to measure too, side by side")
    parser.add_argument("--json", action="store_true", help="print the raw result as JSON")
    args = parser.parse_args()
    import logging

    logging.disable(logging.WARNING)
    here = measure()
    if args.json:
        print(json.dumps(here))
        return
    columns = {"this tree": summary(here)}
    if args.against:
        columns = {args.against: summary(measure_commit(args.against)), **columns}
    counts = Counter(r["language"] for r in here["rows"])
    print(f"pages: {counts['zh']} Chinese, {counts['en']} English ({PAGES.relative_to(ROOT)})")
    print(f"{'':38}" + "".join(f"{name:>22}" for name in columns))
    for key in columns["this tree"]:
        print(f"{key:38}" + "".join(f"{col.get(key, '-'):>22}" for col in columns.values()))


if __name__ == "__main__":
    main()
