"""One peer of newsflow over a list of feeds, as its users run it: sequentially, feed by feed,
link by link. Run by benchmarks/peers.py as a subprocess, with the Python of the venv that holds
the peer (newspaper4k and news-please live in a venv of their own, see
benchmarks/peers-requirements.txt), so it imports nothing of newsflow's.

    python peer_runner.py TOOL OUT.jsonl --limit N FEED_URL...

TOOL is `newspaper4k` (`newspaper.article(url)`), `news-please` (`NewsPlease.from_url(url)`)
or `naive` (httpx + feedparser + `trafilatura.extract` with its defaults). Writes one JSON line
per article (url, text) and prints {"seconds": …, "articles": …, "failed": …} on stdout; the
clock starts after the imports.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path


def newspaper4k() -> Callable[[str], str]:
    import newspaper

    return lambda url: newspaper.article(url).text


def news_please() -> Callable[[str], str]:
    from newsplease import NewsPlease

    def extract(url: str) -> str:
        article = NewsPlease.from_url(url)
        return (getattr(article, "maintext", None) or "") if article else ""

    return extract


def naive() -> Callable[[str], str]:
    import httpx
    import trafilatura

    client = httpx.Client(timeout=30)
    return lambda url: trafilatura.extract(client.get(url).text) or ""


TOOLS: dict[str, Callable[[], Callable[[str], str]]] = {
    "newspaper4k": newspaper4k,
    "news-please": news_please,
    "naive": naive,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("tool", choices=sorted(TOOLS))
    parser.add_argument("out")
    parser.add_argument("feeds", nargs="+")
    parser.add_argument("--limit", type=int, default=300)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    import feedparser

    extract = TOOLS[args.tool]()
    done = failed = 0
    start = time.perf_counter()
    with Path(args.out).open("w", encoding="utf-8") as out:
        for feed in args.feeds:
            for entry in feedparser.parse(feed).entries:
                if done + failed >= args.limit:
                    break
                try:
                    text = extract(entry.link)
                except Exception as exc:  # a peer's failure on one page is its result there
                    print(f"{entry.link}: {type(exc).__name__}: {exc}", file=sys.stderr)
                    failed += 1
                    continue
                out.write(json.dumps({"url": entry.link, "text": text}, ensure_ascii=False))
                out.write("\n")
                done += 1
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "articles": done, "failed": failed}))


if __name__ == "__main__":
    main()
