"""Chinese segmenters for the search index side by side: speed, index size, relevance.

    pip install -r benchmarks/segmenters-requirements.txt   # jieba, rjieba: benchmark only
    python benchmarks/segmenters.py [--articles N]

Each candidate splits the runs of Chinese characters and nothing else: it is passed as
`split_han` to `segment.tokens`, so Latin words and numbers, case, stemming and stopwords
follow the shipped rules for all of them. The candidates: the shipped character bigrams;
jieba 0.42.1 in precise mode (`lcut`, HMM on) and in search mode (`lcut_for_search`, which adds
the shorter words inside long ones); rjieba (jieba-rs) in the same two modes. One that does not
import is skipped with a note.

- speed: title and body of the synthetic Chinese articles of benchmarks/search.py (its
  generator, imported) segmented in this one process (articles/s), and of the fixture corpus's
  Chinese articles (real news text, where a dictionary finds its words);
- size: distinct terms and postings (distinct terms per article, as `search_postings` holds)
  of both sets (the synthetic text is random words of random characters, which a dictionary
  does not know: its size and speed figures are jieba's worst case, the fixture's its usual);
- relevance: the judged queries of tests/fixtures/search/judged.toml over the search tests'
  corpus, ranked and scored as tests/test_search_relevance.py does (its `JUDGED`, `top_tens`
  and `precision_at_10`, imported): precision@10, recall@10 of the Chinese queries, and
  whether the seed article ranks first for "区块链先导区".

How the swap is done, in this process only: for each candidate a scratch database is loaded
through `tests/search_corpus.load_corpus` (the relevance test's path: real extraction, then
`load_batch`) with the `index_terms` that `tasks/extraction/derive.py` and
`tasks/search/index.py` imported replaced by the candidate's; then, on that connection only,
a temporary macro `search_tokens` shadows the stored one and segments the query with the same
candidate (a Python function). `search_query_parts`, `search_matches` (BM25, k1 1.2,
b 0.75, title × 3) and `search_articles` run unchanged, so every candidate is ranked by the
product's SQL, phrases and exclusions included. The bigram row uses the stored macros as shipped.

Timings on a shared 2-core machine are noisy; compare the rows of one run.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from search import make_articles  # benchmarks/search.py

from newsflow.schemas.models import Article
from newsflow.tasks.search.segment import bigrams, tokens
from newsflow.tasks.storage.store import Database
from tests.search_corpus import corpus, load_corpus
from tests.test_search_relevance import JUDGED, precision_at_10, top_tens

Splitter = Callable[[str], Iterable[str]]
SEED_QUERY = "区块链先导区"


def is_chinese(text: str) -> bool:
    return any("\u4e00" <= c <= "\u9fff" for c in text)  # as the relevance test counts them


ZH_QUERIES = [j["q"] for j in JUDGED if is_chinese(j["q"])]
SEED_FIRST: str = next(j["first"] for j in JUDGED if j["q"] == SEED_QUERY)


def candidates() -> tuple[dict[str, Splitter], list[str]]:
    """name → Han-run splitter, and a note per segmenter that would not import."""
    found: dict[str, Splitter] = {"bigrams (shipped)": bigrams}
    skipped = []
    for module, cut, search in (
        ("jieba", "lcut", "lcut_for_search"),
        ("rjieba", "cut", "cut_for_search"),
    ):
        try:
            lib = importlib.import_module(module)
        except ImportError as err:
            skipped.append(f"{module}: not measured ({err})")
            continue
        if module == "jieba":
            lib.setLogLevel(40)  # its dictionary loading notices go to stderr otherwise
            lib.initialize()  # the dictionary loads once per process, untimed
        found[f"{module} precise"] = getattr(lib, cut)
        found[f"{module} search"] = getattr(lib, search)
    for split in found.values():
        list(split(SEED_QUERY))  # a lazily loaded dictionary loads before the clock runs
    return found, skipped


@dataclass
class Row:
    synthetic_per_s: float = 0.0
    fixture_per_s: float = 0.0
    synthetic_size: tuple[int, int] = (0, 0)  # distinct terms, postings
    fixture_size: tuple[int, int] = (0, 0)
    p10_all: float = 0.0
    p10_zh: float = 0.0
    recall_zh: float = 0.0
    seed_first: bool = False


def speed(texts: list[tuple[str, str]], split: Splitter, rounds: int = 1) -> float:
    """(title, body) pairs segmented per second, as the workers make them (joined strings)."""
    started = time.perf_counter()
    for _ in range(rounds):
        for title, body in texts:
            " ".join(tokens(title, split))
            " ".join(tokens(body, split))
    return rounds * len(texts) / (time.perf_counter() - started)


def size(texts: list[tuple[str, str]], split: Splitter) -> tuple[int, int]:
    """Distinct terms, and postings: distinct terms per article."""
    vocabulary: set[str] = set()
    postings = 0
    for title, body in texts:
        terms = set(tokens(title, split)) | set(tokens(body, split))
        vocabulary |= terms
        postings += len(terms)
    return len(vocabulary), postings


def ranked(db_path: Path, split: Splitter) -> dict[str, list[str]]:
    """Each judged query's top ten names, from a scratch database indexed with `split`."""

    def index_terms(text: str) -> str:
        return " ".join(tokens(text, split))

    db = Database(db_path)
    with (
        mock.patch("newsflow.tasks.extraction.derive.index_terms", index_terms),
        mock.patch("newsflow.tasks.search.index.index_terms", index_terms),
    ):
        names = load_corpus(db)
    with db.session() as con:
        if split is not bigrams:
            con.create_function(
                "candidate_tokens",
                lambda text: tokens(text or "", split),
                ["VARCHAR"],
                "VARCHAR[]",
                null_handling="special",
            )
            con.execute(
                "CREATE OR REPLACE TEMP MACRO search_tokens(text) AS candidate_tokens(text)"
            )
        return top_tens(con, names)


def relevance(found: dict[str, list[str]], row: Row) -> dict[str, float]:
    """Fill the row's precision and seed figures; returns precision@10 per query."""
    scores = {j["q"]: precision_at_10(found[j["q"]], j["relevant"]) for j in JUDGED}
    zh = ZH_QUERIES
    row.p10_all = sum(scores.values()) / len(scores)
    row.p10_zh = sum(scores[q] for q in zh) / len(zh)
    # Of the relevant articles (up to ten), the share in the top ten: what a segmenter that
    # cuts a word apart in some texts loses.
    row.recall_zh = sum(
        len(set(found[j["q"]][:10]) & set(j["relevant"])) / min(10, len(j["relevant"]))
        for j in JUDGED
        if j["q"] in zh
    ) / len(zh)
    row.seed_first = found[SEED_QUERY][:1] == [SEED_FIRST]
    return scores


def print_tables(rows: dict[str, Row], n_synthetic: int, n_fixture: int) -> None:
    print(
        f"speed (articles/s, one process) and size (distinct terms, postings), on "
        f"{n_synthetic} synthetic and {n_fixture} fixture Chinese articles"
    )
    print(f"{'segmenter':18} {'synthetic/s':>11} {'fixture/s':>9}   synthetic size   fixture size")
    for name, r in rows.items():
        print(
            f"{name:18} {r.synthetic_per_s:11.0f} {r.fixture_per_s:9.0f}   "
            f"{r.synthetic_size[0]:6d} {r.synthetic_size[1]:8d}   "
            f"{r.fixture_size[0]:5d} {r.fixture_size[1]:6d}"
        )
    print(f"\nrelevance over the judged queries ({len(JUDGED)}, {len(ZH_QUERIES)} Chinese)")
    print(
        f"{'segmenter':18} {'p@10 all':>8} {'p@10 zh':>7} {'recall@10 zh':>12}  {SEED_QUERY} first"
    )
    for name, r in rows.items():
        print(
            f"{name:18} {r.p10_all:8.3f} {r.p10_zh:7.3f} {r.recall_zh:12.3f}  "
            f"{'yes' if r.seed_first else 'no'}"
        )


def print_differences(
    scores: dict[str, dict[str, float]], found: dict[str, dict[str, list[str]]]
) -> None:
    """The judged queries whose outcome (precision@10, matches, first result) differs, with
    the candidates that share an outcome on one line."""
    print("\njudged queries whose outcome differs: precision@10 / matches [first result]")
    for j in JUDGED:
        q = j["q"]
        outcomes: dict[str, list[str]] = {}
        for name in scores:
            top = found[name][q]
            outcome = f"{scores[name][q]:.2f}/{len(top)} [{top[0] if top else '-'}]"
            outcomes.setdefault(outcome, []).append(name.split(" (")[0])
        if len(outcomes) > 1:
            print(f"  {q}")
            for outcome, names in outcomes.items():
                print(f"    {outcome:38} {', '.join(names)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=1000, help="synthetic Chinese articles")
    args = parser.parse_args()
    splitters, skipped = candidates()
    synthetic = [
        (a.title, a.body_text) for a in make_articles(2 * args.articles) if a.language == "zh"
    ]
    named = corpus()
    corpus_titles = {name: a.title for name, a in named.items()}
    fixture_articles: list[Article] = [a for a in named.values() if a.language == "zh"]
    fixture = [(a.title, a.body_text) for a in fixture_articles]
    rows: dict[str, Row] = {}
    scores: dict[str, dict[str, float]] = {}
    found: dict[str, dict[str, list[str]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, split) in enumerate(splitters.items()):
            row = rows[name] = Row()
            row.synthetic_per_s = speed(synthetic, split)
            row.fixture_per_s = speed(fixture, split, rounds=5)
            row.synthetic_size = size(synthetic, split)
            row.fixture_size = size(fixture, split)
            found[name] = ranked(Path(tmp) / f"{i}.duckdb", split)
            scores[name] = relevance(found[name], row)
    print_tables(rows, len(synthetic), len(fixture))
    for note in skipped:
        print(note)
    print_differences(scores, found)
    seed_title = corpus_titles[SEED_FIRST]
    print(f"\nthe seed article's title, {seed_title!r}, as each cuts it:")
    for name, split in splitters.items():
        print(f"  {name:18} {' '.join(tokens(seed_title, split))}")


if __name__ == "__main__":
    main()
