"""The dedup evaluation set (tests/fixtures/dedup) and the way it is loaded and scored.

Each item in `items/` is one feed entry: YAML front matter (its story — the ground truth —, what
kind of variant it is, the run that sees it, the site, feed, link, GUID, title, date) and the
article text, one paragraph per block. Its page is the text inside the site's wrapper from
`sites/`. Loading goes the way of the ingest flow without the network: per run and feed, known
entries are dropped by URL and GUID (`lookup_known`, `split_known`), pages are extracted with
trafilatura, normalized into Articles and written by `load_batch`.
"""

from __future__ import annotations

import html
import itertools
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from pathlib import Path
from string import Template
from urllib.parse import urlsplit
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

import yaml
from werkzeug import Request, Response

from newsflow.schemas.models import FeedBatch, FeedCheck, FeedEntry, RunCounts, article_id_for
from newsflow.tasks.dedup.known import lookup_known, split_known
from newsflow.tasks.extraction.derive import Derivation, derived_of
from newsflow.tasks.extraction.extract import extract_article
from newsflow.tasks.extraction.normalize import build_feed_article, canonical_url
from newsflow.tasks.storage.load import load_batch
from newsflow.tasks.storage.runs import finish_run, start_run
from newsflow.tasks.storage.store import Database

DEDUP_FIXTURES = Path(__file__).parent / "fixtures" / "dedup"
SHANGHAI = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class Item:
    name: str
    story: str
    variant: str
    run: int
    site: str
    source: str
    feed: str
    link: str
    guid: str | None
    title: str
    published: str
    paragraphs: list[str]

    @property
    def article_id(self) -> str:
        return article_id_for(canonical_url(self.link))

    def page(self) -> str:
        wrapper = Template((DEDUP_FIXTURES / "sites" / f"{self.site}.html").read_text())
        body = "\n".join(f"<p>{html.escape(p)}</p>" for p in self.paragraphs)
        return wrapper.substitute(
            title=html.escape(self.title), published=self.published, body=body
        )

    def entry(self) -> FeedEntry:
        return FeedEntry(
            feed_url=self.feed,
            guid=self.guid or self.link,
            link=self.link,
            title=self.title,
            published=self.published,
        )


def read_items(directory: Path = DEDUP_FIXTURES / "items") -> list[Item]:
    items = []
    for path in sorted(directory.glob("*.txt")):
        _, front, text = path.read_text(encoding="utf-8").split("---\n", 2)
        meta = yaml.safe_load(front)
        items.append(
            Item(
                name=path.stem,
                story=meta["story"],
                variant=meta["variant"],
                run=int(meta["run"]),
                site=meta["site"],
                source=meta["source"],
                feed=meta["feed"],
                link=meta["link"],
                guid=meta.get("guid"),
                title=meta["title"],
                published=str(meta["published"]),
                paragraphs=[p.strip() for p in text.split("\n\n") if p.strip()],
            )
        )
    return items


def load_items(
    db: Database, items: list[Item], derive: Derivation | None = None
) -> list[RunCounts]:
    """Every run of the set, feed by feed; returns each run's counts. With `derive`, pages get
    their tags and fingerprints as an extraction worker makes them; else the loader does."""
    totals = []
    for run in sorted({i.run for i in items}):
        run_id = start_run(db, "dedup-eval", {"run": run})
        counts = RunCounts()
        in_run = sorted((i for i in items if i.run == run), key=lambda i: (i.feed, i.name))
        for feed, feed_items in itertools.groupby(in_run, key=lambda i: i.feed):
            counts += load_batch(db, run_id, feed_batch(db, feed, list(feed_items), derive))
        finish_run(db, run_id, counts)
        totals.append(counts)
    return totals


def feed_batch(
    db: Database, feed: str, items: list[Item], derive: Derivation | None = None
) -> FeedBatch:
    entries = {i.link: i for i in items}
    with db.session() as con:
        known = lookup_known(con, feed, [i.entry() for i in items])
    split = split_known([i.entry() for i in items], known, SHANGHAI)
    articles, pages = [], []
    for entry in split.fresh:
        item = entries[entry.link or ""]
        page = extract_article(item.link, item.page(), derive)
        pages.append(page)
        article, _ = build_feed_article(
            entry,
            page,
            source=item.source,
            feed_title=None,
            language=None,
            feed_categories=[],
            tz=SHANGHAI,
        )
        articles.append(article)
    return FeedBatch(
        feed_url=feed,
        check=FeedCheck(url=feed, ok=True, status_code=200, entries_seen=len(items)),
        articles=articles,
        seen_again=split.seen_again,
        seen_again_by_guid=split.by_guid,
        derived=derived_of(articles, pages),
    )


@dataclass(frozen=True)
class PairScores:
    true_pairs: int
    predicted_pairs: int
    correct_pairs: int

    @property
    def precision(self) -> float:
        return self.correct_pairs / self.predicted_pairs if self.predicted_pairs else 1.0

    @property
    def recall(self) -> float:
        return self.correct_pairs / self.true_pairs if self.true_pairs else 1.0


def score_pairs(truth: dict[str, str], predicted: dict[str, str]) -> PairScores:
    """Pairwise precision and recall: a pair of articles is in one story or not."""
    ids = sorted(truth)
    true_pairs = predicted_pairs = correct = 0
    for a, b in itertools.combinations(ids, 2):
        same_truth = truth[a] == truth[b]
        same_predicted = predicted[a] == predicted[b]
        true_pairs += same_truth
        predicted_pairs += same_predicted
        correct += same_truth and same_predicted
    return PairScores(true_pairs, predicted_pairs, correct)


def truth_by_article(items: list[Item], link_of: dict[str, str] | None = None) -> dict[str, str]:
    """article_id → story of every item that becomes a row. An entry whose GUID its feed carried
    in an earlier run is not downloaded again, so its new URL gets no row; URL variants share
    their original's row. `link_of` maps item names to the links actually served."""
    links = link_of or {i.name: i.link for i in items}
    first_run_guids = {(i.feed, i.guid) for i in items if i.run == 1 and i.guid}
    truth: dict[str, str] = {}
    for item in items:
        if item.run > 1 and (item.feed, item.guid) in first_run_guids:
            continue
        truth.setdefault(article_id_for(canonical_url(links[item.name])), item.story)
    return truth


class LoopbackSite:
    """The set served over loopback: one RSS feed per feed URL and every page, under
    `base/<original host>/<original path>`; `run` selects what the feeds list."""

    def __init__(self, base: str, items: list[Item]) -> None:
        self.base = base.rstrip("/")
        self.items = items
        self.run = 1
        self.link_of = {i.name: self._loopback(i.link) for i in items}
        self.feed_of = {i.name: self._loopback(i.feed) for i in items}
        self.pages = {urlsplit(self.link_of[i.name]).path: i for i in reversed(items)}

    def _loopback(self, url: str) -> str:
        parts = urlsplit(url)
        query = f"?{parts.query}" if parts.query else ""
        fragment = f"#{parts.fragment}" if parts.fragment else ""
        return f"{self.base}/{(parts.hostname or '').lower()}{parts.path}{query}{fragment}"

    def feeds_toml(self) -> str:
        lines = ["[defaults]", 'timezone = "Asia/Shanghai"']
        for feed, source in sorted({(self.feed_of[i.name], i.source) for i in self.items}):
            lines += ["", "[[feeds]]", f'url = "{feed}"', f'source = "{source}"']
        return "\n".join(lines) + "\n"

    def respond(self, request: Request) -> Response:
        url = f"{self.base}{request.path}"
        if url in self.feed_of.values():
            listed = [i for i in self.items if self.feed_of[i.name] == url and i.run <= self.run]
            return Response(self._rss(url, listed), content_type="application/rss+xml")
        if request.path in self.pages:
            page = self.pages[request.path].page()
            return Response(page, content_type="text/html; charset=utf-8")
        return Response("not found", status=404)

    def _rss(self, url: str, items: list[Item]) -> str:
        latest = {i.guid or i.name: i for i in sorted(items, key=lambda i: i.run)}  # moved links
        entries = "".join(
            f"<item><title>{escape(i.title)}</title><link>{escape(self.link_of[i.name])}</link>"
            f'<guid isPermaLink="false">{escape(i.guid or self.link_of[i.name])}</guid>'
            f"<pubDate>{_rfc2822(i.published)}</pubDate></item>"
            for i in latest.values()
        )
        return (
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>{escape(url)}</title><link>{escape(url)}</link>{entries}</channel></rss>"
        )


def _rfc2822(published: str) -> str:
    return format_datetime(datetime.fromisoformat(published).replace(tzinfo=SHANGHAI))
