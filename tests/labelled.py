"""The labelled coverage set: invented articles whose front matter states what tagging must find.

Each `tests/fixtures/coverage/labelled/*.md` file has the usual front-matter keys (title, date,
source, language, url) and an `expect` block: `topics` and `regions` always (an empty list is a
negative), `docs` and `orgs` where the file checks them. `load_labelled` loads the set through
`load_batch`, the path ingest and backfill take, optionally shifting every date so the newest
article falls just before now (the cookbook's "last month" queries need recent data).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from newsflow.schemas.models import Article, FeedBatch, FeedCheck, article_id_for
from newsflow.tasks.extraction.normalize import content_hash
from newsflow.tasks.storage.load import load_batch
from newsflow.tasks.storage.runs import start_run
from newsflow.tasks.storage.store import Database

LABELLED_DIR = Path(__file__).parent / "fixtures" / "coverage" / "labelled"
FEED = "https://feeds.example/coverage.xml"


@dataclass
class Labelled:
    name: str
    title: str
    body: str
    published_at: datetime
    source: str
    language: str
    url: str
    topics: set[str]
    regions: set[str]
    docs: list[str] | None = None
    orgs: set[str] | None = None
    extra: dict[str, object] = field(default_factory=dict)

    def article(self, shift: timedelta = timedelta(0)) -> Article:
        return Article(
            article_id=article_id_for(self.url),
            url=self.url,
            canonical_url=self.url,
            feed_url=FEED,
            source=self.source,
            title=self.title,
            published_at=self.published_at + shift,
            language=self.language,
            body_text=self.body,
            content_hash=content_hash(self.body),
        )


def split_front_matter(text: str) -> tuple[dict[str, object], str]:
    _, head, body = text.split("---\n", 2)
    return yaml.safe_load(head), body.strip()


def read_labelled(directory: Path = LABELLED_DIR) -> list[Labelled]:
    items = []
    for path in sorted(directory.glob("*.md")):
        meta, body = split_front_matter(path.read_text(encoding="utf-8"))
        expect: dict[str, list[str]] = meta["expect"]  # type: ignore[assignment]
        items.append(
            Labelled(
                name=path.stem,
                title=str(meta["title"]),
                body=body,
                published_at=datetime.strptime(str(meta["date"]), "%Y-%m-%d %H:%M:%S %z"),
                source=str(meta["source"]),
                language=str(meta["language"]),
                url=str(meta["url"]),
                topics=set(expect["topics"]),
                regions=set(expect["regions"]),
                docs=expect.get("docs"),
                orgs=set(expect["orgs"]) if "orgs" in expect else None,
            )
        )
    return items


def shift_to_now(items: list[Labelled]) -> timedelta:
    """The shift that puts the newest article one day before now, in whole weeks (so
    weekdays stay as written)."""
    newest = max(i.published_at for i in items)
    days = (datetime.now(UTC) - timedelta(days=1) - newest).days
    return timedelta(weeks=days // 7)


def load_labelled(db: Database, items: list[Labelled], shift: timedelta = timedelta(0)) -> None:
    run_id = start_run(db, "test", {})
    articles = [i.article(shift) for i in items]
    check = FeedCheck(url=FEED, ok=True, status_code=200, entries_seen=len(articles))
    load_batch(db, run_id, FeedBatch(feed_url=FEED, check=check, articles=articles))
