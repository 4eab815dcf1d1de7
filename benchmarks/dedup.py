"""Benchmark dedup and story clustering through the real load path
(`newsflow.tasks.storage.load.load_batch`).

Synthetic articles, 70 % Chinese and 30 % English, with Zipf-distributed vocabularies (so that
unrelated texts share common phrases, as real news does), arrive in feed-sized batches; a third
of the stories are syndicated: copies with a new lead-in, ~3 % of the words changed, some of
them cut to half, reach the store up to three batches after their original. Then 1,000 new
articles, a quarter of them copies of stored stories, are loaded against that store.

    .venv/bin/python benchmarks/dedup.py               # 100,000 articles, then 1,000 more
    .venv/bin/python benchmarks/dedup.py --articles 5000   # a quick check

Prints the figures of one run: the time spent clustering (fingerprints, made before the lock,
and the dedup layers inside the load transaction) and in the whole load path, wall and CPU;
peak memory (max RSS); pairwise precision/recall on the planted copies. Wall times depend on
what else the machine runs: the load average is printed with them.
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

import newsflow.tasks.extraction.derive
import newsflow.tasks.storage.load
from newsflow.schemas.models import Article, FeedBatch, FeedCheck, RunCounts, article_id_for
from newsflow.tasks.extraction.normalize import content_hash
from newsflow.tasks.storage.load import load_batch
from newsflow.tasks.storage.runs import start_run
from newsflow.tasks.storage.store import Database

CHINESE_SHARE = 0.7
SYNDICATED_SHARE = 0.33  # of stories
EDIT_SHARE = 0.03  # of words, in every copy
T0 = datetime(2024, 1, 1, tzinfo=UTC)


class Vocabulary:
    """Words with Zipf frequencies: common ones recur across unrelated articles."""

    def __init__(self, words: list[str], rng: np.random.Generator, joiner: str) -> None:
        self.words = np.array(words, dtype=object)
        weights = 1.0 / np.arange(1, len(words) + 1) ** 1.05
        self.cumulative = np.cumsum(weights / weights.sum())
        self.rng = rng
        self.joiner = joiner

    def sample(self, count: int) -> np.ndarray:
        return np.searchsorted(self.cumulative, self.rng.random(count))

    def text(self, ids: np.ndarray, sentence: int, stop: str) -> str:
        words = self.words[ids]
        sentences = [
            self.joiner.join(words[i : i + sentence]) + stop for i in range(0, len(words), sentence)
        ]
        return "\n".join("".join(sentences[i : i + 3]) for i in range(0, len(sentences), 3))


def chinese_vocabulary(rng: np.random.Generator) -> Vocabulary:
    hanzi = [chr(c) for c in rng.choice(np.arange(0x4E00, 0x9FA5), 2500, replace=False)]
    lengths = rng.choice([1, 2, 2, 2, 2, 3, 4], 8000)
    words = sorted({"".join(rng.choice(hanzi, n)) for n in lengths})
    return Vocabulary([words[i] for i in rng.permutation(len(words))], rng, "")


def english_vocabulary(rng: np.random.Generator) -> Vocabulary:
    letters = np.array(list("etaoinshrdlcumwfgypbvkjxqz"))
    common = ["the", "of", "and", "to", "in", "a", "is", "that", "for", "on", "with", "as"]
    lengths = rng.integers(2, 11, 12000)
    words = {"".join(rng.choice(letters, n, p=_letter_weights())) for n in lengths}
    rare = sorted(words - set(common))
    return Vocabulary(common + [rare[i] for i in rng.permutation(len(rare))], rng, " ")


def _letter_weights() -> np.ndarray:
    weights = 1.0 / np.arange(1, 27) ** 0.8
    return weights / weights.sum()


@dataclass
class Corpus:
    """Articles in arrival order, with the story each belongs to (the ground truth)."""

    rng: np.random.Generator
    chinese: Vocabulary
    english: Vocabulary
    story_of: dict[str, int] = field(default_factory=dict)
    serial: int = 0
    stories: int = 0
    # Originals that later articles may copy: (story, Chinese?, words, published).
    kept: list[tuple[int, bool, np.ndarray, datetime]] = field(default_factory=list)

    def stream(self, count: int, batch: int) -> Iterator[Article]:
        """`count` articles; copies arrive up to three batches after their original."""
        pending: list[tuple[int, Article]] = []
        emitted = 0
        while emitted < count:
            due = [p for p in pending if p[0] <= emitted]
            pending = [p for p in pending if p[0] > emitted]
            for _, article in due[: count - emitted]:
                emitted += 1
                yield article
            if emitted >= count:
                break
            original, copies = self.story()
            emitted += 1
            yield original
            for copy in copies:
                pending.append((emitted + int(self.rng.integers(0, 3 * batch)), copy))

    def story(self) -> tuple[Article, list[Article]]:
        self.stories += 1
        chinese = bool(self.rng.random() < CHINESE_SHARE)
        vocab = self.chinese if chinese else self.english
        low, high = (250, 700) if chinese else (150, 500)  # words: ~500–1,400 Han characters
        words = vocab.sample(int(self.rng.integers(low, high)))
        published = T0 + timedelta(minutes=int(self.rng.integers(0, 60 * 24 * 60)))
        if len(self.kept) < 5_000:
            self.kept.append((self.stories, chinese, words, published))
        original = self.article(self.text(chinese, words), published, self.stories)
        copies = []
        if self.rng.random() < SYNDICATED_SHARE:
            for _ in range(int(self.rng.integers(1, 5))):
                copies.append(self.copy(self.stories, chinese, words, published))
        return original, copies

    def copy(self, story: int, chinese: bool, words: np.ndarray, published: datetime) -> Article:
        """A syndicated copy: a new lead-in, ~3 % of the words changed, a quarter cut short."""
        vocab = self.chinese if chinese else self.english
        edited = words.copy()
        changed = self.rng.random(len(words)) < EDIT_SHARE
        edited[changed] = vocab.sample(int(changed.sum()))
        if self.rng.random() < 0.25:
            edited = edited[: int(len(edited) * self.rng.uniform(0.5, 0.8))]
        body = f"{self.text(chinese, vocab.sample(6))}\n{self.text(chinese, edited)}"
        return self.article(body, published, story)

    def copy_of_kept(self) -> Article:
        return self.copy(*self.kept[int(self.rng.integers(0, len(self.kept)))])

    def text(self, chinese: bool, words: np.ndarray) -> str:
        if chinese:
            return self.chinese.text(words, 12, "。")
        return self.english.text(words, 18, ". ")

    def article(self, body: str, published: datetime, story: int) -> Article:
        self.serial += 1
        url = f"https://site{self.serial % 50}.example/a/{self.serial}"
        article_id = article_id_for(url)
        self.story_of[article_id] = story
        hours = timedelta(hours=int(self.rng.integers(0, 12)))
        return Article(
            article_id=article_id,
            url=url,
            canonical_url=url,
            feed_url=f"https://site{self.serial % 50}.example/feed",
            source=f"Source {self.serial % 50}",
            title=f"headline {self.serial}",
            published_at=published + hours,
            body_text=body,
            content_hash=content_hash(body),
        )


@dataclass
class Timing:
    wall: float = 0.0
    cpu: float = 0.0  # of this process, all threads: what other load on the machine inflates less

    def __add__(self, other: Timing) -> Timing:
        return Timing(self.wall + other.wall, self.cpu + other.cpu)


class Stopwatch:
    """Time spent in functions, wrapped for the benchmark where the load calls them (a module
    and a name): the clustering."""

    def __init__(self, *targets: tuple[ModuleType, str]) -> None:
        self.spent: defaultdict[str, Timing] = defaultdict(Timing)
        for module, name in targets:
            setattr(module, name, self._timed(name, getattr(module, name)))

    def _timed(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.spent[name].wall += time.perf_counter() - wall
                self.spent[name].cpu += time.process_time() - cpu

        return timed

    def total(self) -> Timing:
        return sum(self.spent.values(), Timing())


def load(db: Database, articles: Iterator[Article], batch_size: int) -> tuple[Timing, RunCounts]:
    """Load in batches; times load_batch only (not making up the articles)."""
    run = start_run(db, "benchmark", {})
    counts = RunCounts()
    spent = Timing()
    while chunk := list(itertools.islice(articles, batch_size)):
        wall, cpu = time.perf_counter(), time.process_time()
        counts += load_batch(db, run, _batch(chunk))
        spent += Timing(time.perf_counter() - wall, time.process_time() - cpu)
    return spent, counts


def _batch(articles: list[Article]) -> FeedBatch:
    feed = "https://benchmark.example/feed"
    return FeedBatch(feed_url=feed, check=FeedCheck(url=feed, ok=True), articles=articles)


def pair_scores(truth: dict[str, int], predicted: dict[str, str]) -> tuple[float, float]:
    """Pairwise precision and recall from cluster sizes, without listing the pairs."""

    def pairs(sizes: Counter[Any]) -> int:
        return sum(n * (n - 1) // 2 for n in sizes.values())

    both = pairs(Counter((truth[a], predicted[a]) for a in truth))
    true_pairs = pairs(Counter(truth.values()))
    predicted_pairs = pairs(Counter(predicted[a] for a in truth))
    return both / max(predicted_pairs, 1), both / max(true_pairs, 1)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--articles", type=int, default=100_000, help="articles in the store")
    parser.add_argument("--new", type=int, default=1_000, help="articles loaded afterwards")
    parser.add_argument("--batch-size", type=int, default=1_000, help="articles per feed batch")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    corpus = Corpus(rng, chinese_vocabulary(rng), english_vocabulary(rng))
    # The fingerprint is made before the load's lock (derive.article_facts: shingles and MinHash
    # in body_prints, LSH bands in fingerprint_articles), the clustering inside it.
    watch = Stopwatch(
        (newsflow.tasks.extraction.derive, "body_prints"),
        (newsflow.tasks.extraction.derive, "fingerprint_articles"),
        (newsflow.tasks.storage.load, "cluster_new_articles"),
    )
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(Path(tmp) / "bench.duckdb")
        store, counts = load(db, corpus.stream(args.articles, args.batch_size), args.batch_size)
        store_parts = dict(watch.spent)
        watch.spent.clear()
        then, new_counts = load(db, new_articles(corpus, args.new), args.new)
        with db.session() as con:
            predicted = dict(con.execute("SELECT article_id, story_id FROM articles").fetchall())
            (bands,) = con.execute("SELECT count(*) FROM article_bands").fetchone()  # type: ignore[misc]
        size_mib = (Path(tmp) / "bench.duckdb").stat().st_size / 2**20
    # Copies still waiting to arrive when the stream ended were never loaded.
    truth = {a: story for a, story in corpus.story_of.items() if a in predicted}
    precision, recall = pair_scores(truth, predicted)
    clustering = sum(store_parts.values(), Timing())
    fingerprints = store_parts["body_prints"] + store_parts["fingerprint_articles"]
    layers = store_parts["cluster_new_articles"]

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"dedup benchmark · {cores} cores · Python {sys.version.split()[0]} · seed {args.seed} · "
        f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    )
    print(f"{args.articles:,} articles in batches of {args.batch_size:,}, through load_batch:")
    print(
        f"  clustered in {clustering.wall:.1f} s wall, {clustering.cpu:.1f} s CPU "
        f"({args.articles / clustering.wall:,.0f} articles/s): fingerprints "
        f"{fingerprints.wall:.1f} s, dedup layers in the transaction {layers.wall:.1f} s"
    )
    print(
        f"  the whole load path (with coverage tagging, upserts and commits): {store.wall:.1f} s "
        f"wall, {store.cpu:.1f} s CPU"
    )
    print(
        f"  copies found: near {counts.dup_near:,}, body {counts.dup_body:,}, "
        f"title {counts.dup_title:,}; {bands:,} band rows; database {size_mib:,.0f} MiB"
    )
    print(
        f"then {args.new:,} new articles against that store: clustered in "
        f"{watch.total().wall:.2f} s, the whole load_batch {then.wall:.2f} s wall "
        f"({new_counts.dup_near:,} joined stored stories)"
    )
    print(f"planted copies, pairwise: precision {precision:.4f}, recall {recall:.4f}")
    print(f"peak memory (max RSS): {peak_rss_mib():,.0f} MiB")
    return 0


def new_articles(corpus: Corpus, count: int) -> Iterator[Article]:
    """Fresh stories, and a quarter of copies of stories already stored."""
    copies = count // 4
    for i, article in enumerate(corpus.stream(count - copies, count)):
        yield article
        if i < copies:
            yield corpus.copy_of_kept()


if __name__ == "__main__":
    sys.exit(main())
