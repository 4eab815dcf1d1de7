"""The search tests' corpus: the labelled coverage set (tests/fixtures/coverage/labelled/) and
the demo site's article pages, extracted by the real extraction (so their index terms are the
worker's), loaded through `load_batch`. Each article is named by its file's stem."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from newsflow.demo.catalogue import PLACEHOLDER
from newsflow.schemas.models import Article, FeedBatch, FeedCheck, article_id_for
from newsflow.tasks.extraction.extract import extract_page
from newsflow.tasks.extraction.normalize import page_body
from newsflow.tasks.storage.load import load_batch
from newsflow.tasks.storage.runs import start_run
from newsflow.tasks.storage.store import Database
from tests.labelled import read_labelled

SITE = Path(__file__).resolve().parent.parent / "newsflow" / "demo" / "sample_site"
BASE = "https://demo.example"
FEED = "https://demo.example/feeds/search.xml"


def demo_articles() -> list[tuple[str, Article]]:
    """(stem, article) for every page of the demo site's MANIFEST."""
    found = []
    for entry in json.loads((SITE / "MANIFEST.json").read_text(encoding="utf-8")):
        raw = (SITE / entry["path"]).read_bytes().replace(PLACEHOLDER, BASE.encode())
        html = raw.decode("gb18030" if entry["encoding"] == "gbk" else "utf-8")
        url = f"{BASE}/{entry['path']}"
        page = extract_page(url, html)
        article = Article(
            article_id=article_id_for(url), url=url, canonical_url=url, title=entry["title"],
            body_text=page_body(page, [entry["title"]]), search_terms=page.search_terms,
            published_at=datetime.fromisoformat(entry["published"]), source=entry["source"],
            language=entry["language"], body_source="page",
        )  # fmt: skip
        found.append((Path(entry["path"]).stem, article))
    return found


def corpus() -> dict[str, Article]:
    """Every article of the corpus by its name."""
    named = {item.name: item.article() for item in read_labelled()}
    named.update(demo_articles())
    return named


def load_corpus(db: Database) -> dict[str, str]:
    """Load the corpus; returns article_id → name."""
    named = corpus()
    check = FeedCheck(url=FEED, ok=True, status_code=200, entries_seen=len(named))
    batch = FeedBatch(feed_url=FEED, check=check, articles=list(named.values()))
    load_batch(db, start_run(db, "test", {}), batch)
    return {a.article_id: name for name, a in named.items()}
