"""Articles built where their pages are extracted (tasks/extraction/assemble.py): the record a
worker builds is the one the flow process builds from the same entry and page, on every page
fixture and through the real process pool; the entry a page was not built for gets its own."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from newsflow.schemas.errors import ItemError
from newsflow.schemas.models import Article, ExtractedPage, FeedEntry, IngestErrorRecord
from newsflow.tasks.extraction.assemble import Assembly, EntryOrigin, feed_article
from newsflow.tasks.extraction.extract import Extractor, extract_article
from newsflow.tasks.pipeline.feed import normalize_entries

FIXTURES = Path(__file__).parent / "fixtures"
PAGES = sorted(
    p
    for d in ("pages", "meta_pages", "fallback_pages", "sources")
    for p in (FIXTURES / d).rglob("*.html")
)
ORIGIN = EntryOrigin(
    feed_url="https://feeds.example/rss",
    tz=ZoneInfo("Asia/Shanghai"),
    source="Example",
    title="Example feed",
    categories=("金融",),
)


def entry(n: int, link: str, **kw: object) -> FeedEntry:
    values: dict[str, object] = {
        "feed_url": ORIGIN.feed_url,
        "guid": f"g{n}",
        "link": link,
        "title": f"Feed title {n}",
        # An unparseable date: a repaired field, whose warning travels back too.
        "published": "not a date" if n % 3 == 0 else "Wed, 01 May 2024 08:00:00 +0800",
    }
    values.update(kw)
    return FeedEntry(**values)  # type: ignore[arg-type]


def record(article: Article) -> dict[str, object]:
    return article.model_dump(exclude={"first_seen_at", "last_seen_at"})


def warnings(found: list[ItemError]) -> list[tuple[str, str]]:
    return [(w.kind, str(w)) for w in found]


def read(path: Path) -> str:
    return path.read_bytes().decode("utf-8", "replace")


def test_a_worker_builds_the_record_the_flow_process_builds_on_every_page_fixture() -> None:
    built = repaired = 0
    for n, path in enumerate(PAGES):
        url = f"https://news.example/{path.parent.name}/{path.name}"
        final = url + "?from=redirect"
        try:
            page = extract_article(url, read(path), None, Assembly(entry(n, url), ORIGIN, final))
        except ItemError:  # a page with no text: no article either way
            continue
        assert page.built is not None and page.url == final, path
        bare = page.model_copy(update={"built": None})
        article, found = feed_article(entry(n, url), bare, ORIGIN)
        assert record(page.built.article) == record(article), path
        assert warnings(page.built.warnings) == warnings(found), path
        built += 1
        repaired += bool(found)
    assert built >= 100 and repaired >= 30


def test_an_entry_the_page_was_not_built_for_gets_its_own_article() -> None:
    path = FIXTURES / "pages" / "en-wire.html"
    url = "https://news.example/wire"
    first, second = entry(1, url), entry(2, url, title="Another title")
    page = extract_article(url, read(path), None, Assembly(first, ORIGIN, url))
    errors: list[IngestErrorRecord] = []
    articles = normalize_entries([first, second], {url: page}, {}, errors, ORIGIN)
    assert [a.guid for a in articles] == ["g1", "g2"]
    assert articles[0].title == "Feed title 1" and articles[1].title == "Another title"
    assert record(articles[0]) == record(page.built.article)  # type: ignore[union-attr]


@pytest.mark.slow
def test_the_pool_returns_pages_with_their_articles_built() -> None:
    docs = [(f"https://news.example/a/{n}", read(p)) for n, p in enumerate(PAGES[:12])]
    entries = {u: entry(n, u) for n, (u, _) in enumerate(docs)}
    with Extractor(2, deadline=60) as extractor:
        results = dict(
            extractor.extract_many(docs, assemble=lambda u: Assembly(entries[u], ORIGIN, u))
        )
    pages = {u: r for u, r in results.items() if isinstance(r, ExtractedPage)}
    assert len(pages) >= 10 and all(p.built is not None for p in pages.values())
    errors: list[IngestErrorRecord] = []
    by_workers = normalize_entries(list(entries.values()), pages, {}, errors, ORIGIN)
    bare = {u: p.model_copy(update={"built": None}) for u, p in pages.items()}
    by_flow = normalize_entries(list(entries.values()), bare, {}, [], ORIGIN)
    assert [record(a) for a in by_workers] == [record(a) for a in by_flow]
