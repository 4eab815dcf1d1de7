"""Ingest benchmark: `newsflow run` against its limits, measured in one run.

Generates a loopback corpus (pages with the weight and boilerplate of real news pages: long
navigation, sidebars, related links, comments, scripts) spread over many feeds, serves it with a
fixed latency per response, and reports:

- end to end: articles per second of `newsflow run` as a user runs it (a subprocess, Prefect
  start-up included), and its peak memory (the process and its workers; PSS, and RSS summed);
- the extraction-only limit: trafilatura over the same pages, already in memory, in a process
  pool of the same size; measured at the start and again right before each set-up's first
  run, whose ratios are to the latter (the machine's speed drifts);
- a naive baseline: sequential feedparser + fetch + extract + one INSERT per row;
- the second, unchanged run's time; start-up alone (a run with no feed due);
- CPU seconds of the first run by process; attached, the running server's too, counted until
  it is idle again (it records the run's task-run events after the run).

Two set-ups, each measured from scratch on a fresh database: a one-shot run that starts Prefect's
temporary server (nothing else running), and a run attached to a local Prefect server (what
`newsflow serve` keeps running for scheduled use).

Usage: python benchmarks/ingest.py [--pages 3000] [--feeds 30] [--latency 0.02]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import duckdb
import feedparser
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from newsflow.demo.site import SiteServer
from newsflow.runtime.local_server import LocalServer, local_server
from newsflow.tasks.extraction.extract import Extractor, extract_page

ZH = (
    "中国人民银行表示，将稳妥推进数字人民币研发试点，扩大试点范围，完善相关制度安排。",
    "多地区块链先导区建设提速，政务服务、供应链金融和产品溯源等场景加快落地。",
    "业内人士认为，稳定币监管框架的出台将为香港虚拟资产市场带来更多确定性。",
    "国家互联网信息办公室发布第十批境内区块链信息服务名称及备案编号。",
    "数字藏品平台加强实名认证与二级市场交易管理，防范炒作风险。",
)
EN = (
    "Regulators published draft rules for the custody of digital assets, opening a consultation.",
    "The central bank said the pilot of its digital currency would expand to more cities.",
    "Lawmakers are expected to debate the stablecoin bill early next year, officials said.",
    "Exchanges serving customers in the bloc must delist tokens that fail the new standard.",
    "The agency brought a record number of enforcement actions involving crypto assets.",
)


def boilerplate(rng: random.Random, n: int) -> str:
    links = "".join(
        f"<li><a href='/c/{rng.randint(1, 999)}'>栏目 {i} Section</a></li>" for i in range(n)
    )
    return f"<ul class='menu'>{links}</ul>"


# Common characters and words for each article's own sentences: without them every article
# would be a shuffle of the few sentences above, and dedup would find them all near-duplicates
# of one another, which no real feed is.
ZH_CHARS = (
    "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能"
    "下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量"
    "都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各"
    "重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代"
)
_EN_TEXT = (
    "market bank policy rules firms said would new year since data trade funds report "
    "local state public price costs growth risk board plan law court users banks chain "
    "token asset digital system global region city sector share value loans rate issue "
    "firms buyers after before while more less than also under over into about across this "
    "that their which officials analysts investors lenders traders platforms services "
    "payments networks committee ministry agency council review rising falling steady "
    "higher lower stronger"
)
EN_WORDS = _EN_TEXT.split()


def own_sentence(rng: random.Random, zh: bool) -> str:
    if zh:
        text = "".join(rng.choice(ZH_CHARS) for _ in range(rng.randint(14, 36)))
        cut = rng.randint(5, len(text) - 5)
        return f"{text[:cut]}，{text[cut:]}。"
    words = [rng.choice(EN_WORDS) for _ in range(rng.randint(9, 22))]
    return " ".join(words).capitalize() + "."


def make_page(rng: random.Random, i: int) -> tuple[str, str]:
    zh = i % 2 == 0
    sentences = ZH if zh else EN
    title = f"{'政策动态' if zh else 'Policy update'} {i}: {rng.choice(sentences)[:30]}"
    paragraphs = "".join(
        "<p>"
        + " ".join(
            rng.choice(sentences) if rng.random() < 0.25 else own_sentence(rng, zh)
            for _ in range(rng.randint(3, 6))
        )
        + f" ({i}-{k})</p>"
        for k in range(rng.randint(8, 16))
    )
    comments = "".join(
        f"<div class='comment'><b>reader{k}</b><p>{rng.choice(sentences)}</p></div>"
        for k in range(rng.randint(10, 40))
    )
    # Real news pages weigh 60-150 KiB: inline config, analytics, menus, sidebars.
    script = "var cfg = " + json.dumps({"k": [rng.random() for _ in range(1500)]}) + ";"
    html = f"""<!doctype html><html lang="{"zh-CN" if zh else "en"}"><head><meta charset="utf-8">
<title>{title} - Bench Daily</title><meta property="og:title" content="{title}">
<meta property="article:published_time" content="2024-05-{i % 28 + 1:02d}T08:00:00+08:00">
<script>{script}</script><style>{"." * 2000}</style></head><body>
<header><nav>{boilerplate(rng, 400)}</nav>
<div class="breadcrumb">首页 &gt; 财经 &gt; 正文</div></header>
<div class="main"><article><h1>{title}</h1><div class="meta">Bench Daily · 2024-05-01</div>
<div class="article-content">{paragraphs}</div><div class="editor">责任编辑：王五</div></article>
<aside><h3>Related</h3>{boilerplate(rng, 80)}</aside>
<aside class="hot">{boilerplate(rng, 80)}</aside>
<section class="comments"><h3>Comments</h3>{comments}</section></div>
<footer>{boilerplate(rng, 120)}<p>Copyright © Bench Daily. All rights reserved.</p></footer>
</body></html>"""
    return title, html


MakePage = Callable[[random.Random, int], tuple[str, str]]


def make_corpus(
    root: Path, pages: int, feeds: int, seed: int = 7, page: MakePage = make_page
) -> list[Path]:
    rng = random.Random(seed)
    (root / "p").mkdir(parents=True)
    (root / "feeds").mkdir()
    items: list[list[str]] = [[] for _ in range(feeds)]
    files = []
    for i in range(pages):
        title, html = page(rng, i)
        path = root / "p" / f"{i}.html"
        path.write_text(html, encoding="utf-8")
        files.append(path)
        items[i % feeds].append(
            f"<item><title>{title}</title><link>{{base}}/p/{i}.html</link><guid>p{i}</guid>"
            f"<pubDate>Wed, 01 May 2024 08:{i % 60:02d}:00 +0800</pubDate></item>"
        )
    for f, entries in enumerate(items):
        xml = (
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>Bench feed {f}</title>{''.join(entries)}</channel></rss>"
        )
        (root / "feeds" / f"f{f}.xml").write_text(xml, encoding="utf-8")
    return files


def describe_corpus(files: list[Path], feeds: int, latency: float) -> str:
    size = sum(f.stat().st_size for f in files) / len(files) / 1024
    return (
        f"corpus: {len(files)} pages ({size:.0f} KiB each on average) in {feeds} feeds, "
        f"{latency * 1000:.0f} ms per response, {os.cpu_count() or 1} cores"
    )


def _role(proc: psutil.Process) -> str:
    cmd = " ".join(proc.cmdline())
    if "uvicorn" in cmd or "prefect.server" in cmd:
        return "prefect server"
    if "multiprocessing" in cmd or "forkserver" in cmd:
        return "extraction workers"
    return "newsflow process"


POLL_INTERVAL = 0.25


class Memory(NamedTuple):
    """Peaks over a run's processes, in bytes. RSS summed counts the pages the workers share
    with the forkserver and each other (libraries, imported modules) once per process; PSS
    divides each shared page among its sharers, so its sum is what the run takes from the
    machine."""

    rss: int
    pss: int


def run_cli(args: list[str], env: dict[str, str]) -> tuple[float, Memory, str, dict[str, float]]:
    """Run the CLI; return (seconds, peak memory of our processes, stdout, CPU seconds by role)."""
    me = psutil.Process()
    my_cpu = sum(me.cpu_times()[:2])
    start = time.perf_counter()
    proc = psutil.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = Memory(0, 0)
    cpu: dict[int, tuple[str, float]] = {}
    while True:
        rss = pss = 0
        try:
            for p in [proc, *proc.children(recursive=True)]:
                role = cpu[p.pid][0] if p.pid in cpu else _role(p)
                cpu[p.pid] = (role, sum(p.cpu_times()[:2]))
                # The Prefect server a one-shot run starts is orchestration, not our pipeline.
                if role != "prefect server":
                    memory = p.memory_full_info()
                    rss += memory.rss
                    pss += memory.pss
        except psutil.Error:
            pass
        peak = Memory(max(peak.rss, rss), max(peak.pss, pss))
        # Each look at the processes costs a few ms of CPU, taken from the run it measures:
        # four a second (not twenty) keep that under 1 % of a core. The wait ends the
        # moment the run does, so the clock stops then.
        try:
            proc.wait(timeout=POLL_INTERVAL)
            break
        except psutil.TimeoutExpired:
            continue
    seconds = time.perf_counter() - start
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{out}\n{err}")
    by_role: dict[str, float] = {"site server (this process)": sum(me.cpu_times()[:2]) - my_cpu}
    for role, used in cpu.values():
        by_role[role] = by_role.get(role, 0.0) + used
    return seconds, peak, out, by_role


def server_cpu(server: LocalServer | None) -> float:
    """CPU seconds of a running Prefect server's processes so far."""
    if server is None:
        return 0.0
    top = psutil.Process(server.process.pid)
    return sum(sum(p.cpu_times()[:2]) for p in [top, *top.children(recursive=True)])


def settle(server: LocalServer, limit: float = 60.0) -> float:
    """Wait until the server is idle (under 5 % of a core for half a second); returns how long
    it stayed busy. A full server records a run's task-run events after the run: its CPU is
    the run's cost as much as the run's own, and the next run's API calls wait behind it."""
    start = time.perf_counter()
    while time.perf_counter() - start < limit:
        before = server_cpu(server)
        time.sleep(0.5)
        if server_cpu(server) - before < 0.025:
            break
    return max(0.0, time.perf_counter() - start - 0.5)


def extraction_only(files: list[Path], workers: int) -> float:
    pages = [(f.as_uri(), f.read_text(encoding="utf-8")) for f in files]
    with Extractor(workers, deadline=60) as extractor:
        list(extractor.extract_many(pages[: workers * 2]))  # start the pool outside the clock
        start = time.perf_counter()
        results = list(extractor.extract_many(pages))
        seconds = time.perf_counter() - start
    assert all(not isinstance(r, Exception) for _, r in results)
    return seconds


def print_limit(files: list[Path], workers: int, label: str) -> float:
    """Measure and print the extraction-only limit; returns it in articles/s."""
    extract_s = extraction_only(files, workers)
    rate = len(files) / extract_s
    print(
        f"{label:26} {extract_s:6.1f} s  {rate:7.1f} articles/s  "
        f"({workers} workers, pages in memory)"
    )
    return rate


def naive(base_url: str, feeds: int, limit: int, db: Path) -> tuple[float, int]:
    """What one writes first: everything in sequence, one INSERT per article."""
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE articles (url VARCHAR PRIMARY KEY, title VARCHAR, body VARCHAR)")
    done = 0
    start = time.perf_counter()
    for f in range(feeds):
        with urllib.request.urlopen(f"{base_url}/feeds/f{f}.xml") as resp:
            feed = feedparser.parse(resp.read())
        for entry in feed.entries:
            if done >= limit:
                break
            with urllib.request.urlopen(entry.link) as resp:
                html = resp.read().decode("utf-8")
            page = extract_page(entry.link, html)  # the same extraction newsflow does
            con.execute(
                "INSERT INTO articles VALUES (?, ?, ?)", [entry.link, entry.title, page.text]
            )
            done += 1
    seconds = time.perf_counter() - start
    con.close()
    return seconds, done


# Run after the newsflow set-ups, with the site still served (benchmarks/peers.py): the site,
# the corpus folder, the arguments, the one-shot run's database, and articles/s one-shot and
# attached.
After = Callable[[SiteServer, Path, argparse.Namespace, Path, tuple[float, float]], None]


def main(
    argv: list[str] | None = None, after: After | None = None, page: MakePage = make_page
) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=3000)
    parser.add_argument("--feeds", type=int, default=30)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--naive-pages", type=int, default=300, help="pages for the naive baseline")
    args = parser.parse_args(argv)
    workers = os.cpu_count() or 1
    newsflow = str(Path(sys.executable).with_name("newsflow"))

    with tempfile.TemporaryDirectory(prefix="newsflow-bench-") as tmp_dir:
        tmp = Path(tmp_dir)
        files = make_corpus(tmp / "site", args.pages, args.feeds, page=page)
        print(describe_corpus(files, args.feeds, args.latency))

        print_limit(files, workers, "extraction-only, at the start:")
        with SiteServer(root=tmp / "site", latency=args.latency, max_threads=32) as site:
            feeds_toml = tmp / "feeds.toml"
            feeds_toml.write_text(
                "".join(
                    f'[[feeds]]\nurl = "{site.base_url}/feeds/f{f}.xml"\n\n'
                    for f in range(args.feeds)
                ),
                encoding="utf-8",
            )
            (tmp / "none.toml").write_text("feeds = []\n", encoding="utf-8")
            env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
            env |= {"NEWSFLOW_ALLOW_PRIVATE_NETWORKS": "1", "NEWSFLOW_PREFECT_PORT": "4299"}
            naive_s, naive_n = naive(
                site.base_url, args.feeds, args.naive_pages, tmp / "naive.duckdb"
            )
            naive_rate = naive_n / naive_s
            print(
                f"naive baseline:            {naive_s:6.1f} s  {naive_rate:7.1f} articles/s  "
                f"({naive_n} pages, sequential, one INSERT per row)"
            )
            print()
            one_shot_db, one_shot_rate = measure(
                site,
                tmp,
                "one-shot (temporary Prefect server)",
                env,
                args,
                files,
                naive_rate,
                newsflow,
            )
            with local_server(tmp / "prefect", 4299, env) as server:
                attached = env | {"PREFECT_API_URL": server.api_url}
                _, attached_rate = measure(
                    site,
                    tmp,
                    "attached to a running local server",
                    attached,
                    args,
                    files,
                    naive_rate,
                    newsflow,
                    server,
                )
            if after is not None:
                after(site, tmp, args, one_shot_db, (one_shot_rate, attached_rate))


def measure(
    site: SiteServer,
    tmp: Path,
    label: str,
    env: dict[str, str],
    args: argparse.Namespace,
    files: list[Path],
    naive_rate: float,
    newsflow: str,
    server: LocalServer | None = None,
) -> tuple[Path, float]:
    """Prints the set-up's figures; returns its database and its end-to-end articles/s.

    The extraction-only limit is measured again right before the set-up's first run, and its
    ratios are to that: this machine's speed drifts by up to ~2x within minutes, and a limit
    measured at the start once gave 0.79x for a run that, against a limit measured next to
    it, was nearer 0.6x."""
    db = tmp / f"{label.split()[0]}.duckdb"
    feeds_toml = tmp / "feeds.toml"
    cli = [newsflow, "run", "--quiet", "--db", str(db)]
    startup_s, _, _, _ = run_cli([*cli, "--feeds", str(tmp / "none.toml")], env)
    print(f"== {label}")
    extract_rate = print_limit(files, os.cpu_count() or 1, "extraction-only, just before:")
    site.reset_counts()
    server_before = server_cpu(server)
    first_s, peak, out, cpu = run_cli([*cli, "--feeds", str(feeds_toml)], env)
    hits_first = sum(site.hits.values())
    if server is not None:
        busy_s = settle(server)
        cpu["prefect server"] = server_cpu(server) - server_before
        print(f"(the running server kept busy {busy_s:.1f} s after the first run)")
    second_s, _, out2, _ = run_cli([*cli, "--feeds", str(feeds_toml), "--force"], env)
    pages_second = sum(n for p, n in site.hits.items() if p.startswith("/p/")) - args.pages
    con = duckdb.connect(str(db), read_only=True)
    (stored,) = con.execute("SELECT count(*) FROM articles").fetchone()  # type: ignore[misc]
    con.close()
    e2e_rate = stored / first_s
    work_s = first_s - startup_s
    print(
        f"newsflow run (first):      {first_s:6.1f} s  {e2e_rate:7.1f} articles/s  "
        f"({stored} stored, {hits_first} requests)"
    )
    print(f"  of which start-up:       {startup_s:6.1f} s  (a run with no feed due)")
    print(f"  work alone:              {work_s:6.1f} s  {stored / work_s:7.1f} articles/s")
    print(f"second, unchanged run:     {second_s:6.1f} s  ({pages_second} pages downloaded)")
    print(
        f"peak memory (run + workers): {peak.pss / 2**20:.0f} MiB PSS, "
        f"{peak.rss / 2**20:.0f} MiB RSS summed (shared pages counted in every process)"
    )
    print("CPU seconds of the first run: " + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items()))
    flow_cpu = cpu.get("newsflow process", 0.0) * 2000 / max(stored, 1)
    print(f"newsflow process per 2,000 articles: {flow_cpu:.1f} CPU-s   (target <= 5)")
    print(
        f"end to end / extraction-only: {e2e_rate / extract_rate:.2f}x   (target >= 0.85), "
        f"work alone: {stored / work_s / extract_rate:.2f}x"
    )
    print(f"end to end / naive:           {e2e_rate / naive_rate:.1f}x   (target >= 4)")
    print(
        f"unchanged / first run:        {second_s / first_s:.1%}   (target <= 5% attached), "
        f"start-up apart: {max(second_s - startup_s, 0) / work_s:.1%}"
    )
    print(f"peak memory:                  {peak.pss / 2**20:.0f} MiB PSS (target <= 700 MiB)")
    if "errors: 0" not in out or "articles: 0 new" not in out2:
        print("warning: unexpected summaries:\n" + out + out2)
    print()
    return db, e2e_rate


if __name__ == "__main__":
    main()
