"""Scale-out benchmark: one corpus through the local runner, 1 and 2 Dask workers, and 2 shard
processes staging to a folder plus the loader, measured in one run.

The corpus is benchmarks/ingest.py's (pages with the weight of real news pages), served on
loopback with a small latency so that extraction, not the network, bounds the run. Start-up is
reported apart from work, as DESIGN.md asks: a Prefect server is started once and every run
attaches to it; each Dask cluster is started and warmed (a small run) before its timed run,
as a long-lived cluster would be; each shard process's own start-up is measured by a run with
no feed due and taken off.

Reports articles per second of each way, the speed-up from 1 to 2 Dask workers (target ≥ 1.6
on 2 cores), the loader's rows per second, and whether every way stored the same rows.

Usage: python benchmarks/scale.py [--pages 1200] [--feeds 40] [--latency 0.005]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.ingest import describe_corpus, make_corpus, run_cli
from flows.demo import SiteServer
from flows.local_server import local_server
from flows.runtime import prepare_prefect
from schemas.config import ScaleOptions, Settings

BIN = Path(sys.executable).parent
# A Prefect server of the benchmark's own, not one a user runs on 4200.
PREFECT_PORT = 4298


def feeds_toml(path: Path, base_url: str, feeds: range) -> Path:
    path.write_text(
        "".join(f'[[feeds]]\nurl = "{base_url}/feeds/f{f}.xml"\n\n' for f in feeds),
        encoding="utf-8",
    )
    return path


def stored(db: Path) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(
            "SELECT article_id, title, content_hash FROM articles ORDER BY article_id"
        ).fetchall()
    finally:
        con.close()


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=1200)
    parser.add_argument("--feeds", type=int, default=40)
    parser.add_argument("--latency", type=float, default=0.005)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="newsflow-scale-") as tmp_dir:
        tmp = Path(tmp_dir)
        files = make_corpus(tmp / "site", args.pages, args.feeds)
        corpus = describe_corpus(files, args.feeds, args.latency)
        print(f"{corpus}; load average at start {load_average()}", flush=True)
        started = time.perf_counter()
        with (
            local_server(tmp / "prefect", PREFECT_PORT, os.environ) as server,
            SiteServer(root=tmp / "site", latency=args.latency, max_threads=32) as site,
        ):
            print(f"prefect server start-up: {time.perf_counter() - started:.1f} s", flush=True)
            os.environ["PREFECT_API_URL"] = server.api_url
            os.environ["NEWSFLOW_ALLOW_PRIVATE_NETWORKS"] = "1"
            prepare_prefect()
            all_feeds = feeds_toml(tmp / "feeds.toml", site.base_url, range(args.feeds))
            warm_feeds = feeds_toml(tmp / "warm.toml", site.base_url, range(2))
            results = measure(tmp, all_feeds, warm_feeds)

        print(f"load average at end {load_average()}")
        report(results, args.pages)


def settings_for(db: Path, feeds: Path) -> Settings:
    return Settings.from_env(db_path=db, feeds_path=feeds, show_progress=False)


def measure(tmp: Path, all_feeds: Path, warm_feeds: Path) -> dict[str, object]:
    from distributed import LocalCluster

    from flows.ingest import ingest
    from flows.load import run_load
    from flows.runners import local_cluster_kwargs

    results: dict[str, object] = {}
    # Warm this process (imports, the tagger) so the first timed run does not pay for it.
    ingest(settings=settings_for(tmp / "warm-local.duckdb", warm_feeds))
    summary = ingest(settings=settings_for(tmp / "local.duckdb", all_feeds))
    results["local"] = (summary.seconds, tmp / "local.duckdb")
    print(f"local runner: {summary.seconds:.1f} s", flush=True)

    for workers in (1, 2):
        started = time.perf_counter()
        with LocalCluster(**local_cluster_kwargs(workers)) as cluster:
            scale = ScaleOptions(runner="dask", dask_address=cluster.scheduler_address)
            ingest(settings=settings_for(tmp / f"warm-{workers}.duckdb", warm_feeds), scale=scale)
            startup = time.perf_counter() - started
            db = tmp / f"dask-{workers}.duckdb"
            summary = ingest(settings=settings_for(db, all_feeds), scale=scale)
        results[f"dask-{workers}"] = (summary.seconds, db, startup)
        print(
            f"dask, {workers} worker(s): {summary.seconds:.1f} s "
            f"(cluster start-up and warm-up {startup:.1f} s)",
            flush=True,
        )

    env = os.environ.copy()
    stage = tmp / "stage"
    cli = [str(BIN / "newsflow"), "run", "--quiet", "--db", str(tmp / "unused.duckdb")]
    (tmp / "none.toml").write_text("feeds = []\n", encoding="utf-8")
    startup, _, _, _ = run_cli(
        [*cli, "--feeds", str(tmp / "none.toml"), "--stage-dir", str(tmp / "empty")], env
    )
    shard_cli = [*cli, "--feeds", str(all_feeds), "--stage-dir", str(stage)]
    started = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        outs = list(
            pool.map(
                lambda i: run_cli([*shard_cli, "--shard", f"{i}/2"], env)[2],
                (1, 2),
            )
        )
    shards_s = time.perf_counter() - started - startup
    db = tmp / "staged.duckdb"
    loaded = run_load(settings_for(db, all_feeds), str(stage))
    results["shards"] = (shards_s, startup, outs)
    results["load"] = (loaded.seconds, loaded.articles, loaded.batches_loaded, db)
    print(f"2 shards: {shards_s:.1f} s of work; loader: {loaded.seconds:.1f} s", flush=True)
    return results


def report(results: dict[str, object], pages: int) -> None:
    local_s, local_db = results["local"]  # type: ignore[misc]
    one_s, one_db, one_up = results["dask-1"]  # type: ignore[misc]
    two_s, two_db, two_up = results["dask-2"]  # type: ignore[misc]
    shards_s, shard_up, _ = results["shards"]  # type: ignore[misc]
    load_s, load_rows, load_batches, staged_db = results["load"]  # type: ignore[misc]
    reference = stored(local_db)
    n = len(reference)

    def line(label: str, seconds: float, note: str = "") -> None:
        print(f"{label:<34}{seconds:6.1f} s  {n / seconds:7.1f} articles/s  {note}")

    print()
    line("local runner (threads + pool)", local_s, "(pool start-up included)")
    line("dask, 1 worker", one_s, f"(cluster start-up {one_up:.1f} s apart)")
    line("dask, 2 workers", two_s, f"(cluster start-up {two_up:.1f} s apart)")
    line("2 shards staging, in parallel", shards_s, f"(process start-up {shard_up:.1f} s apart)")
    print(
        f"{'loader':<34}{load_s:6.1f} s  {load_rows / load_s:7.1f} rows/s       "
        f"({load_batches} batches, {load_rows} articles)"
    )
    line("2 shards + loader", shards_s + load_s)
    print()
    print(f"articles stored: {n} of {pages} pages")
    print(f"speed-up, 1 → 2 Dask workers: {one_s / two_s:.2f}x   (target >= 1.6)")
    same = all(stored(db) == reference for db in (one_db, two_db, staged_db))
    print(f"same rows in every database: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
