"""newsflow beside its peers on one loopback corpus, in one run: articles/s and body F1.

Runs benchmarks/ingest.py's measurements (the extraction-only limit, its naive baseline,
`newsflow run` one-shot and attached) on the corpus below, then, over the same served corpus,
newspaper4k and news-please as their users run them (sequentially over the feeds' links) and a
naive script (feedparser + httpx + trafilatura with its defaults), each in a subprocess
(benchmarks/peer_runner.py). The peers run in a venv of their own so that their dependencies
never enter newsflow's:

    python3 -m venv /tmp/newsflow-peers-venv
    /tmp/newsflow-peers-venv/bin/pip install -r benchmarks/peers-requirements.txt
    .venv/bin/python benchmarks/peers.py --pages 2000 --feeds 25 --peer-pages 300

The corpus is ingest.py's — 73 KiB pages, half Chinese, with menus, related-link blocks, reader
comments and scripts around each article — with three pages in five rebuilt in shapes that tell
extractors apart (see `Corpus`). A page's expected body is its article's paragraphs;
body F1 is on characters for Chinese pages and on words for English ones (as
benchmarks/metadata.py), averaged over the pages each tool processed. newsflow's F1 is given on
all its pages and on the peers' pages (the first --peer-pages links, feed by feed). The peers'
clocks start after their imports; newsflow's includes its start-up, as a user sees it.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb

# benchmarks/ is a folder of scripts, not a package: its siblings are imported by path.
sys.path.insert(0, str(Path(__file__).resolve().parent))

import ingest
from metadata import f1

from newsflow.demo.site import SiteServer

HERE = Path(__file__).resolve().parent
RUNNER = HERE / "peer_runner.py"
PEERS_PYTHON = "/tmp/newsflow-peers-venv/bin/python"
_OPEN = '<div class="article-content">'
_PARAGRAPH_RE = re.compile(r"<p>(.*?)</p>")


class Corpus:
    """benchmarks/ingest.py's pages, three in five of them rebuilt in shapes that extractors
    handle differently, with each page's expected body (its article's paragraphs) kept.

    Each page's shape is drawn from its number, 0 to 4: 0, 1 as ingest.py makes them
    (paragraphs in <p>); 2 paragraphs as bare <div>s (older Chinese portals); 3 a layout table,
    a cell of links beside a cell whose paragraphs are separated by <br><br> (government sites,
    old forums); 4 a related-links list, reader comments and an editor's line inside the
    article's own container (many CMS templates). Pages alternate Chinese and English, so
    every shape comes in both.
    """

    def __init__(self) -> None:
        self.bodies: dict[int, str] = {}

    def page(self, rng: random.Random, i: int) -> tuple[str, str]:
        title, html = ingest.make_page(rng, i)
        start = html.index(_OPEN) + len(_OPEN)
        end = html.index("</div>", start)
        paragraphs = _PARAGRAPH_RE.findall(html[start:end])
        self.bodies[i] = "\n".join(paragraphs)
        zh = i % 2 == 0
        shape = random.Random(i).randrange(5)  # not i % 5: a feed holds every fifth page or so
        if shape == 2:
            inner = "".join(f"<div>{p}</div>" for p in paragraphs)
        elif shape == 3:
            inner = (
                f"<table><tr><td class='side'>{ingest.boilerplate(rng, 30)}</td>"
                f"<td class='text'>{'<br><br>'.join(paragraphs)}</td></tr></table>"
            )
        elif shape == 4:
            sentences = ingest.ZH if zh else ingest.EN
            related = "".join(
                f"<li><a href='/p/{rng.randint(0, 9999)}.html'>{rng.choice(sentences)}</a></li>"
                for _ in range(8)
            )
            comments = "".join(
                f"<div class='reply'><span>{'网友' if zh else 'reader'}{k}</span>"
                f"<p>{rng.choice(sentences)}</p></div>"
                for k in range(6)
            )
            inner = (
                "".join(f"<p>{p}</p>" for p in paragraphs)
                + f"<p class='editor'>{'责任编辑：王五' if zh else 'Edited by Jane Roe'}</p>"
                + f"<h3>{'相关阅读' if zh else 'Related'}</h3><ul>{related}</ul>"
                + f"<div class='replies'>{comments}</div>"
            )
        else:
            return title, html
        return title, html[:start] + inner + html[end:]


def body_f1(texts: dict[str, str], bodies: dict[int, str]) -> dict[str, float]:
    """Mean body F1 of {url: text} against the expected bodies: Chinese, English, all."""
    scores: dict[str, list[float]] = {"zh": [], "en": []}
    for url, text in texts.items():
        number = int(url.rsplit("/", 1)[1].removesuffix(".html"))
        language = "zh" if number % 2 == 0 else "en"
        scores[language].append(f1(text, bodies[number], language))
    every = scores["zh"] + scores["en"]
    return {
        "zh": sum(scores["zh"]) / max(len(scores["zh"]), 1),
        "en": sum(scores["en"]) / max(len(scores["en"]), 1),
        "all": sum(every) / max(len(every), 1),
    }


def run_peer(tool: str, python: str, feeds: list[str], limit: int, out: Path) -> dict[str, Any]:
    done = subprocess.run(
        [python, str(RUNNER), tool, str(out), "--limit", str(limit), *feeds],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{tool} failed:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    lines = out.read_text(encoding="utf-8").splitlines()
    result["texts"] = {r["url"]: r["text"] for r in map(json.loads, lines)}
    return result


def newsflow_bodies(db: Path) -> dict[str, str]:
    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute("SELECT url, body_text FROM articles").fetchall()
    con.close()
    return {url: text or "" for url, text in rows}


def compare(
    corpus: Corpus, peers_python: str, peer_pages: int
) -> ingest.After:  # the peers' part, run by ingest.main while the site is served
    def after(
        site: SiteServer,
        tmp: Path,
        args: argparse.Namespace,
        db: Path,
        rates: tuple[float, float],
    ) -> None:
        rate, attached = rates
        feeds = [f"{site.base_url}/feeds/f{f}.xml" for f in range(args.feeds)]
        ours = newsflow_bodies(db)
        rows: list[tuple[str, int, float, float, dict[str, float]]] = []
        subset: list[str] = []
        for tool, python in (
            ("naive", sys.executable),
            ("newspaper4k", peers_python),
            ("news-please", peers_python),
        ):
            result = run_peer(tool, python, feeds, peer_pages, tmp / f"{tool}.jsonl")
            subset = subset or list(result["texts"])
            seconds, n = result["seconds"], result["articles"]
            rows.append((tool, n, seconds, n / seconds, body_f1(result["texts"], corpus.bodies)))
            if result["failed"]:
                print(f"{tool}: {result['failed']} pages failed")
        on_subset = body_f1({u: ours.get(u, "") for u in subset}, corpus.bodies)
        overall = body_f1(ours, corpus.bodies)
        print("== peers (same corpus and server; sequential over the feeds' links)")
        print(
            f"{'':44}{'pages':>6}{'articles/s':>12}{'newsflow is':>15}  body F1 zh / en / all"
            "   (newsflow is: one-shot / attached)"
        )
        print(
            f"{'newsflow run (one-shot, all pages)':44}{len(ours):>6}{rate:>12.1f}{'':>15}  "
            f"{overall['zh']:.3f} / {overall['en']:.3f} / {overall['all']:.3f}"
        )
        print(f"{'newsflow run (attached, same pages)':44}{len(ours):>6}{attached:>12.1f}")
        print(
            f"{'newsflow, on the peers pages':44}{len(subset):>6}{'':>12}{'':>15}  "
            f"{on_subset['zh']:.3f} / {on_subset['en']:.3f} / {on_subset['all']:.3f}"
        )
        for tool, n, _, tool_rate, score in rows:
            label = {"naive": "naive script (feedparser+httpx+trafilatura)"}.get(tool, tool)
            print(
                f"{label:44}{n:>6}{tool_rate:>12.1f}"
                f"{f'{rate / tool_rate:.1f}x / {attached / tool_rate:.1f}x':>15}  "
                f"{score['zh']:.3f} / {score['en']:.3f} / {score['all']:.3f}"
            )

    return after


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], epilog="Other options go to benchmarks/ingest.py."
    )
    parser.add_argument("--peer-pages", type=int, default=300, help="pages each peer extracts")
    parser.add_argument("--peers-python", default=PEERS_PYTHON, help="the peers' venv's Python")
    args, rest = parser.parse_known_args()
    if not Path(args.peers_python).exists():
        raise SystemExit(
            f"no {args.peers_python}: install the peers first (see benchmarks/peers.py's docstring)"
        )
    corpus = Corpus()
    ingest.main(rest, after=compare(corpus, args.peers_python, args.peer_pages), page=corpus.page)


if __name__ == "__main__":
    main()
