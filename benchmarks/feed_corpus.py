"""newsflow over feedparser's own test corpus: ~2,200 malformed, oddly encoded, entity-laden
feeds that other people wrote to break a feed reader.

The corpus is third-party and not committed. Fetch it with

    pip download --no-binary :all: --no-deps feedparser==6.0.11 -d /tmp/fp
    tar xzf /tmp/fp/feedparser-6.0.11.tar.gz -C /tmp/fp

then run `.venv/bin/python benchmarks/feed_corpus.py /tmp/fp/feedparser-6.0.11/tests`.

Every *.xml under the directory is served on loopback with the headers it declares in its
`Header:` comments (as feedparser's own test server does), and one `newsflow run`, as a user
runs it, goes over all of them. It runs offline: in the newsflow process no host name resolves
but 127.0.0.1, so the article links (example.org and the like) fail at once instead of leaving
the machine. Then every feed is accounted for: articles loaded, a valid feed with no items, or
its error rows; a feed that is none of these is reported and fails the script.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.faults.harness import MemoryWatch, feeds_toml  # noqa: E402
from tests.loopback import Handler, LoopbackServer, Request  # noqa: E402

HEADER = re.compile(rb"^Header:\s+([^:]+):(.+)$", re.MULTILINE)
# The port feedparser's test server listens on, named in Location headers.
THEIR_BASE = "http://localhost:8097"

# `newsflow run` with a resolver that knows 127.0.0.1 only: nothing leaves the machine.
OFFLINE_CLI = """
import socket, sys
real = socket.getaddrinfo
def offline(host, *args, **kwargs):
    if host != "127.0.0.1":
        raise socket.gaierror(socket.EAI_NONAME, f"offline run: {host} is not resolved")
    return real(host, *args, **kwargs)
socket.getaddrinfo = offline
from newsflow.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def serve_file(body: bytes, base: str) -> Handler:
    headers = {
        k.decode().strip(): v.decode().strip().replace(THEIR_BASE, base)
        for k, v in HEADER.findall(body)
    }
    status = int(headers.pop("Status", 200))
    headers.setdefault("Content-type", "application/xml")

    def handler(request: Request) -> None:
        request.reply(status, body, headers)

    return handler


def account(db: Path) -> tuple[Counter[str], Counter[str], Counter[str], list[str]]:
    """Feeds by outcome, feed-level error kinds, item-level error kinds, unaccounted feeds."""
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute(
            """
            SELECT f.url, f.status,
                   (SELECT count(*) FROM article_feeds a WHERE a.feed_url = f.url),
                   (SELECT list(e.kind) FROM ingest_errors e
                     WHERE e.feed_url = f.url AND e.stage IN ('fetch', 'parse')),
                   (SELECT list(e.kind) FROM ingest_errors e
                     WHERE e.feed_url = f.url AND e.stage NOT IN ('fetch', 'parse'))
            FROM feeds f
            """
        ).fetchall()
    outcomes: Counter[str] = Counter()
    feed_kinds: Counter[str] = Counter()
    item_kinds: Counter[str] = Counter()
    unaccounted = []
    for url, status, articles, feed_errors, item_errors in rows:
        feed_kinds.update(feed_errors or [])
        item_kinds.update(item_errors or [])
        if articles:
            outcomes["articles loaded"] += 1
        elif status != "active" and feed_errors:
            outcomes[f"refused ({status})"] += 1
        elif status == "active" and item_errors:
            outcomes["every item rejected, each with its row"] += 1
        elif status == "active":  # fetched and parsed; its rows, if any, are warnings
            outcomes["valid feed without items"] += 1
        else:
            unaccounted.append(f"{url} {status} {feed_errors} {item_errors}")
    return outcomes, feed_kinds, item_kinds, unaccounted


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tests", type=Path, help="feedparser's tests/ directory")
    args = parser.parse_args()
    files = sorted(args.tests.rglob("*.xml"))
    if not files:
        parser.error(f"no *.xml under {args.tests}")
    with LoopbackServer(max_threads=32) as server, tempfile.TemporaryDirectory() as tmp:
        urls = []
        for file in files:
            path = "/" + file.relative_to(args.tests).as_posix()
            server.routes[path] = serve_file(file.read_bytes(), server.url(""))
            urls.append(server.url(path))
        feeds, db = Path(tmp) / "feeds.toml", Path(tmp) / "corpus.duckdb"
        feeds.write_text(feeds_toml(urls), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "NEWSFLOW_"))}
        env["NEWSFLOW_ALLOW_PRIVATE_NETWORKS"] = "1"
        argv = ["run", "--feeds", str(feeds), "--db", str(db), "-q"]
        started = time.monotonic()
        child = subprocess.Popen(
            [sys.executable, "-c", OFFLINE_CLI, *argv],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        with MemoryWatch(child.pid) as watch:
            out, err = child.communicate(timeout=3600)
        seconds = time.monotonic() - started
        print(out.rstrip())
        if child.returncode != 0 or "Traceback" in out + err:
            print(err.rstrip())
        outcomes, feed_kinds, item_kinds, unaccounted = account(db)
    print(
        f"{len(files)} feeds · exit {child.returncode} · traceback: {'Traceback' in out + err} · "
        f"{seconds:.0f} s · PSS {watch.peak / 2**20:.0f} MiB (newsflow, workers, Prefect)"
    )
    for name, counts in (
        ("outcome", outcomes),
        ("feed error", feed_kinds),
        ("item error", item_kinds),
    ):
        print(f"{name}s:", ", ".join(f"{k} {n}" for k, n in counts.most_common()))
    missing = len(files) - sum(outcomes.values()) - len(unaccounted)
    for line in unaccounted:
        print("UNACCOUNTED:", line)
    if missing:
        print(f"UNACCOUNTED: {missing} feeds have no feeds row")
    return 1 if child.returncode or unaccounted or missing else 0


if __name__ == "__main__":
    sys.exit(main())
