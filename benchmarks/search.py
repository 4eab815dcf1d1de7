"""Full-text search: index build, query latency, index size and upkeep on synthetic articles.

    python benchmarks/search.py [--articles N] [--queries N] [--workers N]

Articles are made up, half Chinese (~1,200 characters from a Zipf-weighted pool of 3,000
ideographs, with policy terms and Latin names mixed in) and half English (~450 words), and
stored in `articles` untimed. Then, in one run:

- segmentation: index terms made in a pool of `--workers` processes, as the extraction
  workers make them (articles/s);
- the build: `rebuild_index` end to end, what `newsflow reindex` and the first read command on
  an unindexed database run (articles/s), and its two phases: chunks read, segmented and their
  postings staged as Parquet by `--workers` processes; then all postings loaded in term order;
- queries: p50/p95 of one-, two- and three-term queries and phrases through `search_matches`
  and `search_articles` (top 10 with snippets);
- size: the database file's growth from the index, over the bytes of body text;
- upkeep: 1,000 more articles written to the indexed database in one transaction, the upsert
  and the index write timed apart.

Timings on a shared 2-core machine are noisy; compare figures from the same run.

What changed with migration 10, and why (docs/ARCHITECTURE.md, "search"): phrases were checked
by reading each candidate's title and body (p95 164–256 ms at 20,000 articles, up to 3 s at
100,000); postings now hold their terms' places and a phrase is matched from them (93 ms p95
at 20,000 on a loaded machine, the index 0.41× → 0.80× the body text). The build's chunks were
read by a range of article_ids (every remaining body scanned per chunk), each sorted, then the
table sorted again and copied back; now rowid ranges, unsorted chunks, one sort into a new
table (rebuild_index end to end 1,038 → 1,625 articles/s at 20,000 in runs minutes apart).
Migration 11 posts adjacent Latin words as pairs too, so an English phrase is a lookup: at
100,000, phrase p95 206 → 62 ms, the index 0.74× → 0.86×, the build ~1,450 → ~1,400/s. Then
the bulk build's workers made the postings too and staged them as Parquet, loaded in term
order in one write (tasks/search/bulk.py): at 100,000, 71.5 s → 46.3–52.1 s.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from newsflow.schemas.models import Article, article_id_for
from newsflow.tasks.search.bulk import rebuild_index
from newsflow.tasks.search.index import index_articles
from newsflow.tasks.search.segment import index_terms
from newsflow.tasks.storage.articles import upsert_articles
from newsflow.tasks.storage.store import Database
from newsflow.tasks.storage.transaction import transaction

ZH_TERMS = ["数字人民币", "稳定币", "区块链", "先导区", "跨境支付", "央行", "监管", "香港", "试点"]
LATIN = ["MiCA", "USDT", "e-CNY", "Web3", "2025", "3.5%", "HKMA", "BIS"]
EN_WORDS = [
    "central",
    "bank",
    "digital",
    "currency",
    "stablecoin",
    "stablecoins",
    "regulation",
    "regulator",
    "licence",
    "issuer",
    "issuers",
    "reserve",
    "payment",
    "payments",
    "cross-border",
    "settlement",
    "blockchain",
    "ledger",
    "token",
    "tokens",
    "exchange",
    "exchanges",
    "market",
    "markets",
    "investor",
    "investors",
    "policy",
    "policies",
    "pilot",
    "zone",
    "zones",
    "hong",
    "kong",
    "singapore",
    "europe",
    "china",
    "yuan",
    "dollar",
    "said",
    "would",
    "could",
    "report",
    "reports",
    "officials",
    "government",
    "framework",
    "rules",
    "rule",
    "compliance",
    "risk",
    "risks",
    "consumer",
    "protection",
    "custody",
    "wallet",
    "trading",
    "volume",
    "price",
    "prices",
    "growth",
    "year",
    "week",
    "month",
    "quarter",
    "new",
    "first",
    "last",
    "major",
]
EN_WEIGHTS = [1 / (rank + 1) for rank in range(len(EN_WORDS))]
FILLER = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "a",
    "for",
    "on",
    "that",
    "with",
    "as",
    "by",
    "is",
    "at",
    "from",
    "this",
    "it",
    "was",
]
CHUNK = 2000


def zh_pool(rng: random.Random) -> tuple[list[str], list[float]]:
    """A Zipf-weighted vocabulary of 20,000 words of one to four characters out of 3,000
    ideographs: text made of words repeats its bigrams as real text does."""
    chars = [chr(c) for c in rng.sample(range(0x4E00, 0x9FA5), 3000)]
    char_weights = [1 / (rank + 1) for rank in range(len(chars))]
    words = {
        "".join(rng.choices(chars, char_weights, k=rng.choice((1, 2, 2, 2, 3, 4))))
        for _ in range(20_000)
    }
    return sorted(words), [1 / (rank + 1) for rank in range(len(words))]


def zh_body(rng: random.Random, pool: tuple[list[str], list[float]]) -> str:
    paragraphs = []
    for _ in range(8):
        words = rng.choices(pool[0], pool[1], k=rng.randint(40, 80))
        if rng.random() < 0.15:  # a policy term or a Latin name in one paragraph of seven
            words.insert(rng.randrange(len(words)), rng.choice(ZH_TERMS + LATIN))
        paragraphs.append("".join(words) + "。")
    return "\n".join(paragraphs)


def en_body(rng: random.Random) -> str:
    words = []
    for _ in range(450):
        r = rng.random()
        words.append(rng.choice(FILLER) if r < 0.45 else rng.choices(EN_WORDS, EN_WEIGHTS)[0])
        if r > 0.995:
            words.append(rng.choice(LATIN))
    return " ".join(words)


def make_articles(n: int, seed: int = 7) -> Iterator[Article]:
    rng = random.Random(seed)
    pool = zh_pool(rng)
    for i in range(n):
        zh = i % 2 == 0
        body = zh_body(rng, pool) if zh else en_body(rng)
        title = (
            rng.choice(ZH_TERMS) + "".join(rng.choices(pool[0], pool[1], k=14))
            if zh
            else " ".join(rng.choices(EN_WORDS, k=9))
        )
        url = f"https://bench.example/{seed}/{i}"
        yield Article(
            article_id=article_id_for(url), url=url, canonical_url=url, title=title,
            body_text=body, language="zh" if zh else "en", source=f"source {i % 12}",
        )  # fmt: skip


def chunks(articles: Iterator[Article], size: int) -> Iterator[list[Article]]:
    chunk: list[Article] = []
    for a in articles:
        chunk.append(a)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def segment_chunk(rows: list[tuple[str, str, str]]) -> pa.Table:
    """What the extraction workers hand over: each article's terms, for a chunk."""
    return pa.table(
        {
            "article_id": [r[0] for r in rows],
            "title_terms": [index_terms(r[1]) for r in rows],
            "body_terms": [index_terms(r[2]) for r in rows],
        }
    )


def store(db: Database, n: int) -> tuple[list[list[tuple[str, str, str]]], int]:
    """Store n articles without indexing them; their (id, title, body) chunks, body bytes."""
    batches, body_bytes = [], 0
    for chunk in chunks(make_articles(n), CHUNK):
        with db.session() as con, transaction(con):
            upsert_articles(con, chunk)
        batches.append([(a.article_id, a.title, a.body_text) for a in chunk])
        body_bytes += sum(len(a.body_text.encode()) for a in chunk)
    return batches, body_bytes


def index_size(db: Database, copy: Path) -> int:
    """Bytes of the three index tables, copied alone into a new file (the database file's own
    growth hides in blocks it had reserved)."""
    with db.session() as con:
        con.execute(f"ATTACH '{copy}' AS copy")  # our own temporary path: ATTACH takes no parameter
        for table in ("search_docs", "search_postings"):
            con.execute(f"CREATE TABLE copy.{table} AS FROM {table}")
        con.execute("DETACH copy")
    return copy.stat().st_size


def build(db: Database, batches: list[list[tuple[str, str, str]]], workers: int) -> None:
    n = sum(len(b) for b in batches)
    started = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(segment_chunk, batches))
    segmented = time.perf_counter() - started
    print(f"segmentation, {workers} processes: {n / segmented:8.0f} articles/s ({segmented:.1f} s)")
    staged: list[float] = []

    def progress(done: int, total: int) -> None:
        if done == total:
            staged.append(time.perf_counter())

    started = time.perf_counter()
    rebuild_index(db, CHUNK, progress, workers=workers)
    ended = time.perf_counter()
    print(f"  chunks read, segmented, their postings staged: {staged[0] - started:5.1f} s")
    print(f"  postings loaded in term order:                 {ended - staged[0]:5.1f} s")
    print(f"rebuild_index, end to end:    {n / (ended - started):8.0f} articles/s "
          f"({ended - started:.1f} s)")  # fmt: skip


QUERIES = {
    "1 term": ["稳定币", "stablecoin", "监管", "ledger", "MiCA"],
    "2 terms": ["数字人民币 跨境支付", "hong kong", "央行 试点", "custody wallet", "USDT 香港"],
    "3 terms": [
        "稳定币 香港 监管",
        "central bank digital",
        "区块链 先导区 试点",
        "issuer reserve risk",
    ],
    "phrase": ['"数字人民币"', '"central bank"', '"跨境支付"', '"consumer protection"'],
}


def latency(db: Database, repeats: int) -> None:
    with db.session() as con:
        for sql in (
            "SELECT count(*), max(score) FROM search_matches(?)",
            "SELECT * FROM search_articles(?, max_results := 10)",
        ):
            for kind, queries in QUERIES.items():
                times, found = [], 0
                for _ in range(repeats):
                    for q in queries:
                        t = time.perf_counter()
                        rows = con.execute(sql, [q]).fetchall()
                        times.append((time.perf_counter() - t) * 1000)
                        found += rows[0][0] if "count" in sql else len(rows)
                times.sort()
                p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
                name = sql.split("FROM ")[1].split("(")[0]
                print(
                    f"{name:16} {kind:8} p50 {statistics.median(times):6.1f} ms  "
                    f"p95 {p95:6.1f} ms  ({found // repeats} rows per round)"
                )


def upkeep(db: Database) -> None:
    extra = list(make_articles(1000, seed=8))
    terms = [index_terms(a.body_text) for a in extra]  # made by the extraction workers
    with db.session() as con, transaction(con):
        started = time.perf_counter()
        upsert_articles(con, extra)
        stored = time.perf_counter() - started
        started = time.perf_counter()
        index_articles(con, extra, terms)
        indexed = time.perf_counter() - started
    print(
        f"+1,000 articles in one load transaction: {stored:.2f} s storing them, "
        f"{indexed:.2f} s indexing them"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=5, help="rounds of the query set")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(Path(tmp) / "bench.duckdb")
        batches, body_bytes = store(db, args.articles)
        print(f"{args.articles} articles, {body_bytes / 1e6:.1f} MB of body text")
        build(db, batches, args.workers)
        index_bytes = index_size(db, Path(tmp) / "index-only.duckdb")
        with db.session() as con:
            row = con.execute(
                "SELECT count(DISTINCT term_id), count(*) FROM search_postings"
            ).fetchone()
        print(f"index: {row}  (terms, postings)")
        print(f"index size {index_bytes / 1e6:.1f} MB = {index_bytes / body_bytes:.2f} × body text")
        latency(db, args.queries)
        upkeep(db)


if __name__ == "__main__":
    main()
