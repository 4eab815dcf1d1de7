"""Coverage tagging: quality on the labelled set, and speed of tagging, loading and retagging.

    python benchmarks/tagging.py [--articles N]

Quality is micro-averaged precision and recall per topic and for regions on
tests/fixtures/coverage/labelled/ (the tests assert ≥ 0.9 overall). Speed: the tagger alone,
then `load_batch` (which tags inside the load transaction) and `retag_all`, on copies of the
labelled articles made about 2,000 characters long. Figures are from one run on this machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from newsflow.schemas.models import FeedBatch, FeedCheck, article_id_for
from newsflow.tasks.coverage.tag import load_tagger
from newsflow.tasks.storage.load import load_batch
from newsflow.tasks.storage.runs import start_run
from newsflow.tasks.storage.store import Database
from newsflow.tasks.storage.tags import retag_all
from tests.labelled import FEED, read_labelled


def quality() -> None:
    tagger = load_tagger()
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # tp, fp, fn
    for item in read_labelled():
        tags = tagger.tag(item.name, item.title, item.body)
        found = {"topic:" + t.topic for t in tags.topics}
        expected = {"topic:" + t for t in item.topics}
        for label in found | expected:
            counts[label][0] += label in found and label in expected
            counts[label][1] += label in found and label not in expected
            counts[label][2] += label not in found and label in expected
        regions = {r.region for r in tags.regions}
        counts["regions"][0] += len(regions & item.regions)
        counts["regions"][1] += len(regions - item.regions)
        counts["regions"][2] += len(item.regions - regions)
    total = [0, 0, 0]
    print(f"{'label':28} {'precision':>9} {'recall':>7}  (tp fp fn)")
    for kind in sorted(counts):
        tp, fp, fn = counts[kind]
        if kind.startswith("topic:"):
            total = [a + b for a, b in zip(total, counts[kind], strict=True)]
        print(f"{kind:28} {_ratio(tp, tp + fp):>9} {_ratio(tp, tp + fn):>7}  ({tp} {fp} {fn})")
    tp, fp, fn = total
    print(
        f"{'topics (all)':28} {_ratio(tp, tp + fp):>9} {_ratio(tp, tp + fn):>7}  ({tp} {fp} {fn})"
    )


def _ratio(a: int, b: int) -> str:
    return f"{a / b:.3f}" if b else "-"


def speed(n: int) -> None:
    items = read_labelled()
    tagger = load_tagger()
    rows = []
    for i in range(n):
        item = items[i % len(items)]
        rows.append((item, f"https://bench.example/{i}", (item.body + "\n") * 6))
    chars = sum(len(body) + len(item.title) for item, _, body in rows)

    started = time.perf_counter()
    for item, url, body in rows:
        tagger.tag(url, item.title, body)
    tag_s = time.perf_counter() - started
    print(f"tagger:    {n / tag_s:8.0f} articles/s  {chars / tag_s / 1e6:5.2f} M chars/s "
          f"({chars / n:.0f} chars per article)")  # fmt: skip

    with tempfile.TemporaryDirectory() as tmp:
        db = Database(Path(tmp) / "bench.duckdb")
        run = start_run(db, "bench", {})
        articles = []
        for item, url, body in rows:
            article = item.article().model_copy(
                update={
                    "article_id": article_id_for(url),
                    "url": url,
                    "canonical_url": url,
                    "body_text": body,
                    "content_hash": url,
                }
            )
            articles.append(article)
        started = time.perf_counter()
        for k in range(0, n, 500):
            check = FeedCheck(url=FEED, ok=True, status_code=200)
            load_batch(
                db, run, FeedBatch(feed_url=FEED, check=check, articles=articles[k : k + 500])
            )
        load_s = time.perf_counter() - started
        started = time.perf_counter()
        retag_all(db, tagger)
        retag_s = time.perf_counter() - started
    print(f"load_batch: {n / load_s:7.0f} articles/s, tagging included "
          f"(tagging is {tag_s / load_s:.0%} of it)")  # fmt: skip
    print(f"retag_all:  {n / retag_s:7.0f} articles/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=5000)
    args = parser.parse_args()
    quality()
    print()
    speed(args.articles)


if __name__ == "__main__":
    main()
