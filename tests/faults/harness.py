"""The fault suite's harness: a loopback site of healthy and hostile feeds, and real ingest runs
over it, measured (wall time, peak memory of the whole process tree) and read back from DuckDB.

A healthy feed knows what it must give: its titles (Chinese ones in GBK with GBK-only
characters, so a wrong decoding shows) and one sentence per article body.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import duckdb
import psutil

from newsflow.flows.ingest import RunSummary
from newsflow.schemas.models import RunCounts
from tests.conftest import make_settings
from tests.loopback import Handler, LoopbackServer, Request

GiB = 1024**3
RSS_CT = "application/rss+xml; charset=utf-8"
PUB_DATE = "Tue, 05 Mar 2024 09:30:00 +0800"
TABLES = ("articles", "article_feeds", "feeds", "runs", "ingest_errors")


@dataclass(frozen=True)
class Item:
    title: str | None
    link: str | None
    description: str | None = None
    pub_date: str | None = PUB_DATE
    guid: str | None = None


def rss(items: Iterable[Item], *, title: str = "A feed", encoding: str = "utf-8") -> str:
    """RSS 2.0 text; encode it yourself (the declaration names `encoding`)."""
    parts = [f'<?xml version="1.0" encoding="{encoding}"?>', '<rss version="2.0"><channel>']
    parts.append(f"<title>{escape(title)}</title><link>http://example.test/</link>")
    for item in items:
        parts.append("<item>")
        for tag, value in (
            ("title", item.title),
            ("link", item.link),
            ("guid", item.guid),
            ("pubDate", item.pub_date),
            ("description", item.description),
        ):
            if value is not None:
                parts.append(f"<{tag}>{escape(value)}</{tag}>")
        parts.append("</item>")
    parts.append("</channel></rss>")
    return "\n".join(parts)


def article_html(title: str, paragraphs: Sequence[str], *, charset: str = "utf-8") -> str:
    """A news page trafilatura reads: navigation and footer around one article."""
    body = "\n".join(f"<p>{escape(p)}</p>" for p in paragraphs)
    return (
        f'<!DOCTYPE html><html><head><meta charset="{charset}"><title>{escape(title)}</title>'
        '</head><body><div class="nav"><a href="/">Home</a> | <a href="/policy/">Policy</a></div>'
        f"<article><h1>{escape(title)}</h1>{body}</article>"
        '<div class="footer">Copyright Example Media. All rights reserved.</div></body></html>'
    )


def static(body: bytes, content_type: str, status: int = 200, **headers: str) -> Handler:
    """A fixed response with an ETag, answering a matching If-None-Match with 304."""
    etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'

    def handler(request: Request) -> None:
        if request.headers.get("If-None-Match") == etag:
            request.reply(304, headers={"ETag": etag})
        else:
            request.reply(status, body, {"Content-Type": content_type, "ETag": etag, **headers})

    return handler


@dataclass(frozen=True)
class HealthyFeed:
    url: str
    path: str
    items: tuple[Item, ...]  # as served, hostile extras included
    titles: tuple[str, ...]  # of the healthy items, as they must be stored
    sentences: tuple[str, ...]  # one per healthy article body, in feed order


_EN_TITLES = ("Regulators finalise stablecoin reserve rules", "Custody rule for crypto assets")
_ZH_TITLES = ("朱镕基旧文重读：数字人民币试点扩大", "张喆：稳定币监管沙盒迎来新成员")


def add_healthy_feed(
    server: LoopbackServer, prefix: str, language: str = "en", extra: Sequence[Item] = ()
) -> HealthyFeed:
    """Two items with pages under `/<prefix>/`; Chinese ones as GBK labelled gb2312 (the lie
    Chinese sites tell), English ones as UTF-8. `extra` items (hostile ones) come first."""
    zh = language == "zh"
    charset, label = ("gb18030", "gb2312") if zh else ("utf-8", "utf-8")
    titles, sentences, items = [], [], list(extra)
    for i, base in enumerate(_ZH_TITLES if zh else _EN_TITLES):
        title = f"{base}（{prefix}-{i}）" if zh else f"{base} ({prefix}-{i})"
        sentence = (
            f"这是{prefix}第{i}篇文章的独有句子，王喆与李镕参与了起草。"
            if zh
            else f"This is the unique sentence of article {i} in {prefix}, about reserve audits."
        )
        filler = (
            "监管部门表示，将继续完善数字资产相关制度，防范金融风险，保护投资者合法权益。"
            if zh
            else "Officials said the framework would be reviewed next year after consultation "
            "with banks, exchanges and consumer groups across the region."
        )
        page = f"/{prefix}/p{i}.html"
        html = article_html(title, [sentence, filler, filler], charset=label)
        server.routes[page] = static(html.encode(charset), f"text/html; charset={label}")
        items.append(Item(title, server.url(page), guid=f"{prefix}-{i}"))
        titles.append(title)
        sentences.append(sentence)
    feed = rss(items, title=f"Healthy {prefix}", encoding=label).encode(charset)
    path = f"/{prefix}/feed.xml"
    server.routes[path] = static(feed, f"application/rss+xml; charset={label}")
    return HealthyFeed(server.url(path), path, tuple(items), tuple(titles), tuple(sentences))


class MemoryWatch:
    """Peak memory of a process (this one by default) and all its descendants (extraction
    workers, a Prefect server), sampled every 50 ms while in the `with` block, as PSS: the
    pool's workers share the forkserver's pages (libraries, modules imported before the
    fork), which summed RSS counts once per process. `workers` keeps the largest pool
    worker's RSS at each sample."""

    def __init__(self, pid: int | None = None) -> None:
        self.pid = pid
        self.peak = 0
        self.workers: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="memory-watch", daemon=True)

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _sample(self) -> None:
        me = psutil.Process(self.pid)
        while True:
            total, workers = 0, [0]
            try:
                tree = [me, *me.children(recursive=True)]
            except psutil.Error:  # a process ended while psutil walked the tree: next sample
                tree = []
            for proc in tree:
                with contextlib.suppress(psutil.Error):  # it ended between listing and reading
                    memory = proc.memory_full_info()
                    rss = memory.rss
                    total += memory.pss
                    parent = proc.parent()  # pool workers are the forkserver's children
                    if parent is not None and _forkserver(parent):
                        workers.append(rss)
            self.peak = max(self.peak, total)
            self.workers.append(max(workers))
            if self._stop.wait(0.05):
                return


def _forkserver(proc: psutil.Process) -> bool:
    return "multiprocessing.forkserver" in " ".join(proc.cmdline())


@dataclass
class FaultRun:
    """One finished run and what it left in the database."""

    summary: RunSummary
    db_path: Path
    seconds: float
    peak_memory: int  # PSS of the whole process tree (MemoryWatch)
    worker_rss: list[int]  # of the largest pool worker, sample by sample

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(self.db_path), read_only=True) as con:
            return con.execute(sql, list(params)).fetchall()

    def errors(self, feed_url: str) -> list[tuple[str, str | None, str]]:
        """(stage, url, kind) of the feed's error rows from this run."""
        return [
            (r[0], r[1], r[2])
            for r in self.query(
                "SELECT stage, url, kind FROM ingest_errors WHERE feed_url = ? AND run_id = ? "
                "ORDER BY stage, kind, url",
                feed_url,
                self.summary.run_id,
            )
        ]

    def kinds(self, feed_url: str) -> list[str]:
        return sorted(kind for _, _, kind in self.errors(feed_url))

    def message(self, feed_url: str, kind: str) -> str:
        rows = self.query(
            "SELECT message FROM ingest_errors WHERE feed_url = ? AND kind = ? AND run_id = ?",
            feed_url,
            kind,
            self.summary.run_id,
        )
        assert len(rows) == 1, rows
        return str(rows[0][0])

    def articles(self, feed_url: str) -> dict[str, str]:
        """Title → body of the articles this feed carried."""
        rows = self.query(
            "SELECT a.title, a.body_text FROM articles a JOIN article_feeds f USING (article_id) "
            "WHERE f.feed_url = ?",
            feed_url,
        )
        return {r[0]: r[1] for r in rows}

    def feed(self, url: str) -> dict[str, Any]:
        with duckdb.connect(str(self.db_path), read_only=True) as con:
            cur = con.execute("SELECT * FROM feeds WHERE url = ?", [url])
            names = [d[0] for d in cur.description]
            row = cur.fetchone()
        assert row is not None, f"no feeds row for {url}"
        return dict(zip(names, row, strict=True))

    def stored_text(self) -> str:
        """Every value of every table, as text: to prove something was never stored."""
        return "\n".join(repr(self.query(f"SELECT * FROM {table}")) for table in TABLES)

    def feeds_with_errors(self) -> set[str]:
        rows = self.query(
            "SELECT DISTINCT feed_url FROM ingest_errors WHERE run_id = ?", self.summary.run_id
        )
        return {r[0] for r in rows}

    def assert_healthy_items_loaded(self, feed: HealthyFeed) -> None:
        """Every healthy item of the feed is stored, correctly decoded; the feed is active."""
        articles = self.articles(feed.url)
        for title, sentence in zip(feed.titles, feed.sentences, strict=True):
            assert sentence in articles[title]
        assert self.feed(feed.url)["status"] == "active"

    def assert_loaded_in_full(self, feed: HealthyFeed) -> None:
        """A healthy feed: all its articles, nothing else, no error rows."""
        self.assert_healthy_items_loaded(feed)
        assert sorted(self.articles(feed.url)) == sorted(feed.titles)
        assert self.errors(feed.url) == []


def last_run(db_path: Path, seconds: float, watch: MemoryWatch) -> FaultRun:
    """The latest run recorded in a database, for runs made by another process (the CLI)."""
    with duckdb.connect(str(db_path), read_only=True) as con:
        cur = con.execute("SELECT * FROM runs ORDER BY started_at DESC LIMIT 1")
        names = [d[0] for d in cur.description]
        row = dict(zip(names, cur.fetchone() or (), strict=True))
    counts = RunCounts(**{f: row[f] for f in RunCounts.model_fields})
    summary = RunSummary(row["run_id"], counts, row["started_at"], row["finished_at"], db_path)
    return FaultRun(summary, db_path, seconds, watch.peak, watch.workers)


def feeds_toml(urls: Iterable[str]) -> str:
    # A JSON string is a valid TOML basic string.
    return "".join(f"[[feeds]]\nurl = {json.dumps(url)}\n\n" for url in urls)


def run_ingest_over(
    tmp_path: Path, urls: Iterable[str], *, clean: bool = True, **overrides: Any
) -> FaultRun:
    """One real ingest flow run (under the session's Prefect harness) over `urls`, every feed
    forced due; `overrides` go to `make_settings`. The database must close cleanly, unless
    `clean` is False (something else holds it open)."""
    from newsflow.flows.ingest import ingest

    tmp_path.mkdir(parents=True, exist_ok=True)
    settings = make_settings(tmp_path, **overrides)
    settings.feeds_path.write_text(feeds_toml(urls), encoding="utf-8")
    started = time.monotonic()
    with MemoryWatch() as watch:
        summary = ingest(settings=settings, force=True)
    run = FaultRun(summary, settings.db_path, time.monotonic() - started, watch.peak, watch.workers)
    if clean:
        assert_database_clean(settings.db_path)
    return run


def run_beside_healthy(
    server: LoopbackServer, tmp_path: Path, urls: Iterable[str], **overrides: Any
) -> FaultRun:
    """`run_ingest_over` with a healthy feed added, which must load in full."""
    healthy = add_healthy_feed(server, "beside")
    run = run_ingest_over(tmp_path, [healthy.url, *urls], **overrides)
    run.assert_loaded_in_full(healthy)
    return run


# A child process running `newsflow run` that SIGKILLs itself at a chosen moment. A profile
# hook watches for a function of ours to return; nothing of ours is replaced.
_KILLED_AT = """
import os, signal, sys, threading
from {module} import {function} as target
code, seen = target.__code__, 0
def hook(frame, event, arg):
    global seen
    if event == "return" and frame.f_code is code:
        seen += 1
        if seen == {occurrence}:
            os.kill(os.getpid(), signal.SIGKILL)
threading.setprofile(hook)
sys.setprofile(hook)
from newsflow.cli.main import main
sys.exit(main({argv!r}))
"""


def run_cli_killed_at(
    tmp_path: Path, urls: Iterable[str], function: Callable[..., Any], occurrence: int = 1
) -> subprocess.CompletedProcess[str]:
    """`newsflow run --force` over `urls` in a child that is SIGKILLed the `occurrence`-th time
    `function` returns. It reports to the session's Prefect server (no server start-up)."""
    from prefect.settings import PREFECT_API_URL

    tmp_path.mkdir(parents=True, exist_ok=True)
    feeds = tmp_path / "feeds.toml"
    feeds.write_text(feeds_toml(urls), encoding="utf-8")
    argv = ["run", "--feeds", str(feeds), "--db", str(tmp_path / "news.duckdb"), "--force", "-q"]
    code = _KILLED_AT.format(
        module=function.__module__,
        function=function.__qualname__,
        occurrence=occurrence,
        argv=argv,
    )
    env = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "NEWSFLOW_ALLOW_PRIVATE_NETWORKS": "1",
    }
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=180
    )


def assert_database_clean(path: Path) -> None:
    """Closed cleanly (checkpointed, no WAL left), opens, every table reads, no duplicates."""
    assert not Path(f"{path}.wal").exists(), "the database was not closed cleanly"
    with duckdb.connect(str(path), read_only=True) as con:
        for table in TABLES:
            con.execute(f"SELECT count(*) FROM {table}").fetchone()
        total, distinct = con.execute(
            "SELECT count(*), count(DISTINCT canonical_url) FROM articles"
        ).fetchone() or (0, 0)
    assert total == distinct
