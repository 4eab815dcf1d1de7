"""trafilatura's fast mode against its default, and newsflow's per-page choice, in one run.

Every HTML page the project ships (tests/fixtures/**, the demo site), and --generated pages of
benchmarks/peers.py's corpus (ingest.py's 73 KiB pages with real sites' weight of boilerplate,
three in five in shapes where the text is not in <p>; their expected body is their article's
paragraphs), is decoded as the fetcher would and extracted with
`extract_page` three ways: fast=False (trafilatura's fallbacks on), fast=True, and the per-page
choice the workers make (tasks/extraction/mode.py). Pages are
grouped by the script of their text (English/Latin, Chinese, other), and each group gets its
time per page for each setting (best of --repeat runs, the settings interleaved so that load on
a shared machine falls on all three alike) and, on pages with an expected body in the `.json`
beside them, body F1 (characters for Chinese, words otherwise, as benchmarks/metadata.py).

    .venv/bin/python benchmarks/fast_mode.py [--repeat 3] [--generated 40]
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import re
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

# benchmarks/ is a folder of scripts, not a package: its siblings are imported by path.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from metadata import f1
from peers import Corpus
from trafilatura.utils import load_html

from newsflow.schemas.errors import ItemError
from newsflow.tasks.extraction.extract import extract_page
from newsflow.tasks.extraction.mode import is_latin_script, prose_runs, use_fast_mode
from newsflow.tasks.fetching.charset import decode_html

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = (ROOT / "tests" / "fixtures", ROOT / "newsflow" / "demo")
SETTINGS: dict[str, bool | None] = {"default": False, "fast": True, "per page": None}
_HAN_RE = re.compile(r"[\u3400-\u9fff]")
_KANA_HANGUL_RE = re.compile(r"[\u3040-\u30ff\uac00-\ud7af]")


def script_group(html: str) -> str:
    tree = load_html(html)
    if tree is None:
        return "other"
    # pages without prose (lists, script shells) by whatever text they have
    text = " ".join(run for run, _ in prose_runs(tree)) or tree.text_content()
    if is_latin_script(text):
        return "English"
    letters = sum(1 for c in text if c.isalpha())
    han = len(_HAN_RE.findall(text))
    if letters and han > 0.3 * letters and not _KANA_HANGUL_RE.search(text):
        return "Chinese"
    return "other"


def load_pages() -> list[dict[str, Any]]:
    pages = []
    for folder in FOLDERS:
        for path in sorted(folder.rglob("*.html")):
            html, _ = decode_html(path.read_bytes(), "text/html")
            meta = path.with_suffix(".json")
            want = json.loads(meta.read_text(encoding="utf-8")) if meta.exists() else {}
            if not isinstance(want, dict):
                want = {}
            pages.append(
                {
                    "name": str(path.relative_to(ROOT)),
                    "url": want.get("url") or f"http://example.com/{path.name}",
                    "html": html,
                    "body": want.get("body"),
                    "group": script_group(html),
                }
            )
    return pages


def generated_pages(count: int) -> list[dict[str, Any]]:
    rng = random.Random(7)
    corpus = Corpus()
    pages = []
    for i in range(count):
        _, html = corpus.page(rng, i)
        body = corpus.bodies[i]
        pages.append(
            {
                "name": f"benchmarks/ingest.py page {i}",
                "url": f"http://bench.example.com/p/{i}.html",
                "html": html,
                "body": body,
                "group": script_group(html),
            }
        )
    return pages


def extract_text(page: dict[str, Any], fast: bool | None) -> tuple[str, float]:
    start = time.perf_counter()
    try:
        text = extract_page(page["url"], page["html"], fast=fast).text
    except ItemError:
        text = ""
    return text, time.perf_counter() - start


def measure(pages: list[dict[str, Any]], repeat: int) -> None:
    for page in pages:
        page["s"] = dict.fromkeys(SETTINGS, float("inf"))
        page["text"] = {}
        for _ in range(repeat):
            for name, fast in SETTINGS.items():
                text, seconds = extract_text(page, fast)
                page["s"][name] = min(page["s"][name], seconds)
                page["text"][name] = text
        tree = load_html(page["html"])
        start = time.perf_counter()
        page["fast_chosen"] = use_fast_mode(tree)
        page["decide_s"] = time.perf_counter() - start


def report(pages: list[dict[str, Any]]) -> None:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for page in pages:
        groups[page["group"]].append(page)
    print(f"{'group':10}{'pages':>6}{'bodies':>7}  " + "".join(f"{s:>22}" for s in SETTINGS))
    for group in ("English", "Chinese", "other"):
        mine = groups.get(group, [])
        if not mine:
            print(f"{group:10}{0:>6}")
            continue
        scored = [p for p in mine if p["body"]]
        cells = []
        for name in SETTINGS:
            ms = 1000 * sum(p["s"][name] for p in mine) / len(mine)
            language = "zh" if group == "Chinese" else "en"
            score = (
                sum(f1(p["text"][name], p["body"], language) for p in scored) / len(scored)
                if scored
                else float("nan")
            )
            cells.append(f"{ms:6.1f} ms  F1 {score:.4f}")
        print(f"{group:10}{len(mine):>6}{len(scored):>7}  " + "".join(f"{c:>22}" for c in cells))
        base = sum(p["s"]["default"] for p in mine)
        chosen = sum(p["fast_chosen"] for p in mine)
        decide_ms = 1000 * sum(p["decide_s"] for p in mine) / len(mine)
        print(f"{'':10}per page: fast for {chosen}/{len(mine)}, the choice {decide_ms:.2f} ms/page")
        for name in ("fast", "per page"):
            share = sum(p["s"][name] for p in mine) / base
            same = sum(p["text"][name] == p["text"]["default"] for p in mine)
            print(
                f"{'':10}{name}: {share:.0%} of default's time, "
                f"same text as default on {same}/{len(mine)}"
            )
    print("\npages whose fast text differs from the default's (F1 default -> fast):")
    for page in pages:
        if page["text"]["fast"] != page["text"]["default"]:
            language = "zh" if page["group"] == "Chinese" else "en"
            scores = (
                " -> ".join(
                    f"{f1(page['text'][s], page['body'], language):.3f}"
                    for s in ("default", "fast")
                )
                if page["body"]
                else "no expected body"
            )
            print(f"  {page['group']:8} {page['name']}: {scores}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per page and setting")
    parser.add_argument(
        "--generated", type=int, default=40, help="pages of benchmarks/ingest.py's corpus"
    )
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    pages = load_pages()
    print(
        f"{len(pages)} pages from " + ", ".join(str(f.relative_to(ROOT)) for f in FOLDERS), end=""
    )
    pages += generated_pages(args.generated)
    print(f", {args.generated} of benchmarks/ingest.py's corpus")
    measure(pages, args.repeat)
    report(pages)


if __name__ == "__main__":
    main()
