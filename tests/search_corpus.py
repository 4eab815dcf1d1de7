"""The search tests' corpus: the labelled coverage set (tests/fixtures/coverage/labelled/) and
the demo site's article pages, extracted by the real extraction with the workers' per-article
work (so their index terms are the worker's where its text is the article's), loaded through
`load_batch`. Each article is named by its file's stem."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from newsflow.demo.catalogue import PLACEHOLDER
from newsflow.schemas.models import Article, Derived, FeedBatch, FeedCheck, article_id_for
from newsflow.tasks.extraction.derive import Derivation
from newsflow.tasks.extraction.extract import extract_article
from newsflow.tasks.extraction.normalize import page_body
from newsflow.tasks.storage.load import load_batch
from newsflow.tasks.storage.runs import start_run
from newsflow.tasks.storage.store import Database
from tests.labelled import read_labelled

SITE = Path(__file__).resolve().parent.parent / "newsflow" / "demo" / "sample_site"
BASE = "https://demo.example"
FEED = "https://demo.example/feeds/search.xml"


def demo_articles() -> list[tuple[str, Article, Derived | None]]:
    """(stem, article, what the extraction worker derived from its page) for every page of
    the demo site's MANIFEST."""
    found = []
    for entry in json.loads((SITE / "MANIFEST.json").read_text(encoding="utf-8")):
        raw = (SITE / entry["path"]).read_bytes().replace(PLACEHOLDER, BASE.encode())
        html = raw.decode("gb18030" if entry["encoding"] == "gbk" else "utf-8")
        url = f"{BASE}/{entry['path']}"
        page = extract_article(url, html, Derivation())
        article = Article(
            article_id=article_id_for(url), url=url, canonical_url=url, title=entry["title"],
            body_text=page_body(page, [entry["title"]]),
            published_at=datetime.fromisoformat(entry["published"]), source=entry["source"],
            language=entry["language"], body_source="page",
        )  # fmt: skip
        found.append((Path(entry["path"]).stem, article, page.derived))
    return found


def corpus_batch() -> tuple[dict[str, Article], dict[str, Derived]]:
    """Every article of the corpus by its name, and the workers' derivations by article_id."""
    named = {item.name: item.article() for item in read_labelled()}
    derived = {}
    for name, article, made in demo_articles():
        named[name] = article
        if made is not None:
            derived[article.article_id] = made
    return named, derived


def corpus() -> dict[str, Article]:
    """Every article of the corpus by its name."""
    return corpus_batch()[0]


def load_corpus(db: Database) -> dict[str, str]:
    """Load the corpus; returns article_id → name."""
    named, derived = corpus_batch()
    check = FeedCheck(url=FEED, ok=True, status_code=200, entries_seen=len(named))
    batch = FeedBatch(feed_url=FEED, check=check, articles=list(named.values()), derived=derived)
    load_batch(db, start_run(db, "test", {}), batch)
    return {a.article_id: name for name, a in named.items()}
