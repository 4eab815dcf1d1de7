"""Declared-sources benchmark: a 50-item HTML list page and a JSON API with 50 items, their
item pages on loopback with the ingest benchmark's pages and latency, against the same pages
reached through two RSS feeds — measured in one run.

Prints articles per second of `newsflow run` both ways (work alone: the start-up of a run with
nothing to do is measured and taken off), their ratio (target >= 0.8), and what a second run
over the unchanged sources downloads (target: no item page).

Both runs attach to one local Prefect server, so Prefect's start-up is not in the comparison.

Usage: python benchmarks/sources.py [--items 50] [--latency 0.02]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.ingest import make_page, run_cli
from newsflow.demo.site import SiteServer
from newsflow.runtime.local_server import local_server


def make_site(root: Path, items: int, seed: int = 11) -> None:
    """Pages p/0…p/2n-1; the first n listed on list.html and in feeds/list.xml, the others in
    api.json and feeds/api.xml."""
    rng = random.Random(seed)
    (root / "p").mkdir(parents=True)
    (root / "feeds").mkdir()
    titles = []
    for i in range(2 * items):
        title, html = make_page(rng, i)
        (root / "p" / f"{i}.html").write_text(html, encoding="utf-8")
        titles.append(title)
    listed = range(items)
    served = range(items, 2 * items)
    lis = "".join(
        f'<li><a href="/p/{i}.html">{titles[i]}</a><span class="date">2024-05-{i % 28 + 1:02d}'
        f" 08:{i % 60:02d}</span></li>"
        for i in listed
    )
    (root / "list.html").write_text(
        f'<!doctype html><html><head><meta charset="utf-8"><title>列表</title></head><body>'
        f'<div class="list"><ul>{lis}</ul></div></body></html>',
        encoding="utf-8",
    )
    data = [
        {"id": i, "title": titles[i], "url": f"/p/{i}.html", "ctime": 1714521600 + i * 60}
        for i in served
    ]
    (root / "api.json").write_text(json.dumps({"data": {"list": data}}), encoding="utf-8")
    for name, part in (("list", listed), ("api", served)):
        entries = "".join(
            f"<item><title>{titles[i]}</title><link>{{base}}/p/{i}.html</link><guid>p{i}</guid>"
            f"<pubDate>Wed, 01 May 2024 08:{i % 60:02d}:00 +0800</pubDate></item>"
            for i in part
        )
        (root / "feeds" / f"{name}.xml").write_text(
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>{name}</title>{entries}</channel></rss>",
            encoding="utf-8",
        )


def sources_toml(base: str) -> str:
    return f"""
[[feeds]]
kind = "html_list"
name = "bench-list"
request = {{ url = "{base}/list.html" }}
items = {{ css = "div.list li" }}
fields = {{ title = "a::text", link = "a::attr(href)", date = "span.date::text" }}

[[feeds]]
kind = "json_api"
name = "bench-api"
request = {{ url = "{base}/api.json" }}
items = {{ path = "data.list" }}
fields = {{ title = "title", link = "url", date = "ctime", date_format = "epoch_s" }}
"""


def feeds_toml(base: str) -> str:
    return "".join(f'[[feeds]]\nurl = "{base}/feeds/{n}.xml"\n\n' for n in ("list", "api"))


def stored(db: Path) -> int:
    with duckdb.connect(str(db), read_only=True) as con:
        row = con.execute("SELECT count(*) FROM articles").fetchone()
    return int(row[0]) if row else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--port", type=int, default=4298, help="the local Prefect server's port")
    args = parser.parse_args()
    newsflow = str(Path(sys.executable).with_name("newsflow"))
    with tempfile.TemporaryDirectory(prefix="newsflow-bench-sources-") as tmp_dir:
        tmp = Path(tmp_dir)
        make_site(tmp / "site", args.items)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env |= {"NEWSFLOW_ALLOW_PRIVATE_NETWORKS": "1", "NEWSFLOW_PREFECT_PORT": str(args.port)}
        with (
            SiteServer(root=tmp / "site", latency=args.latency, max_threads=32) as site,
            local_server(tmp / "prefect", args.port, env) as server,
        ):
            env |= {"PREFECT_API_URL": server.api_url}
            (tmp / "none.toml").write_text("feeds = []\n", encoding="utf-8")
            (tmp / "sources.toml").write_text(sources_toml(site.base_url), encoding="utf-8")
            (tmp / "feeds.toml").write_text(feeds_toml(site.base_url), encoding="utf-8")
            print(
                f"corpus: {2 * args.items} pages, a {args.items}-item list page and a "
                f"{args.items}-item API (or two RSS feeds of the same pages), "
                f"{args.latency * 1000:.0f} ms per response, {os.cpu_count() or 1} cores"
            )

            def run(name: str, feeds: str, *extra: str) -> tuple[float, int]:
                cli = [newsflow, "run", "--quiet", "--db", str(tmp / f"{name}.duckdb")]
                seconds, _, out, _ = run_cli([*cli, "--feeds", str(tmp / feeds), *extra], env)
                if "failed" in out and "0 failed" not in out:
                    raise SystemExit(f"{name}: a source failed:\n{out}")
                return seconds, stored(tmp / f"{name}.duckdb")

            startup_s, _ = run("startup", "none.toml")
            feed_s, feed_n = run("feeds", "feeds.toml")
            site.reset_counts()
            source_s, source_n = run("sources", "sources.toml")
            pages_first = sum(n for p, n in site.hits.items() if p.startswith("/p/"))
            site.reset_counts()
            again_s, _ = run("sources", "sources.toml", "--force")
            pages_again = sum(n for p, n in site.hits.items() if p.startswith("/p/"))
            list_again = sum(n for p, n in site.hits.items() if not p.startswith("/p/"))

    feed_rate = feed_n / (feed_s - startup_s)
    source_rate = source_n / (source_s - startup_s)
    print(f"start-up (nothing to do):    {startup_s:5.2f} s")
    print(
        f"through feeds:               {feed_s:5.2f} s  {feed_n} articles  "
        f"{feed_rate:6.1f} articles/s (work alone)"
    )
    print(
        f"through declared sources:    {source_s:5.2f} s  {source_n} articles  "
        f"{source_rate:6.1f} articles/s (work alone), {pages_first} item pages"
    )
    print(f"sources / feeds:             {source_rate / feed_rate:.2f}x   (target >= 0.8)")
    print(
        f"second run, unchanged:       {again_s:5.2f} s  {list_again} list requests, "
        f"{pages_again} item pages downloaded   (target: 0)"
    )


if __name__ == "__main__":
    main()
