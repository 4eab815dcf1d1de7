"""The backfill flow end to end on loopback: posts, feed archives, sitemaps, URL lists, the
date window, re-extraction, and a backfill killed midway. Every path is loaded twice."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from newsflow.demo.site import SiteServer
from newsflow.flows.backfill import BackfillSummary, backfill
from newsflow.schemas.config import BackfillRequest, Settings
from newsflow.schemas.errors import ConfigError
from newsflow.tasks.progress import PROGRESS
from newsflow.tasks.storage.query import read_articles
from newsflow.tasks.storage.store import Database
from tests.conftest import make_settings
from tests.test_archive_sitemap import SITE_DIR, serve_site

POSTS = Path(__file__).parent / "fixtures" / "posts"
MARCH = {"since": "2024-03-01", "until": "2024-03-31"}
pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[SiteServer]:
    """The backfill site, copied so that a test may change a page."""
    root = tmp_path / "site"
    shutil.copytree(SITE_DIR, root)
    with SiteServer(root) as server:
        yield serve_site(server)


def run(settings: Settings, **request: Any) -> BackfillSummary:
    return backfill(settings=settings, request=BackfillRequest(**request))


def query(settings: Settings, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with Database(settings.db_path).session() as con:
        return con.execute(sql, params or []).fetchall()


def assert_unique(settings: Settings) -> int:
    ((total, distinct),) = query(
        settings, "SELECT count(*), count(DISTINCT article_id) FROM articles"
    )
    assert total == distinct
    return int(total)


def names(settings: Settings) -> list[str]:
    rows = query(settings, "SELECT url FROM articles ORDER BY url")
    return [r[0].rsplit("/", 1)[-1] for r in rows]


def feeds_file(tmp_path: Path, site: SiteServer, path: str = "feed.xml") -> Path:
    feeds = tmp_path / "feeds.toml"
    feeds.write_text(
        f'[[feeds]]\nurl = "{site.url(path)}"\nsource = "Example Ledger"\ncategories = ["wire"]\n',
        encoding="utf-8",
    )
    return feeds


def urls_file(tmp_path: Path, site: SiteServer) -> Path:
    path = tmp_path / "urls.txt"
    text = (SITE_DIR / "urls.txt").read_text(encoding="utf-8")
    path.write_text(text.replace("{base}", site.base_url), encoding="utf-8")
    return path


def article_hits(site: SiteServer) -> dict[str, int]:
    return {p.rsplit("/", 1)[-1]: n for p, n in site.hits.items() if p.startswith("/articles/")}


# --- posts ---------------------------------------------------------------------------------


def test_posts_land_in_their_columns_and_broken_ones_are_refused(settings: Settings) -> None:
    first = run(settings, from_dir=POSTS)
    second = run(settings, from_dir=POSTS)

    # The post whose date cannot be read is stored undated, with a bad_date row.
    assert (first.counts.articles_new, first.refused, first.not_posts) == (5, 3, 1)
    assert first.counts.duplicates == 1  # the copy under another name
    assert (second.counts.articles_new, second.counts.articles_updated) == (0, 0)
    assert second.counts.duplicates == 6
    assert assert_unique(settings) == 5
    with Database(settings.db_path).session() as con:
        stored = {a.canonical_url: a for a in read_articles(con, "TRUE", [])}
    for expectation in POSTS.glob("*.json"):
        expected = json.loads(expectation.read_text(encoding="utf-8"))
        expected.pop("warnings", None)
        if "article_id" in expected:
            # Stored, a post that copies no other is its own story.
            expected["story_id"] = expected["story_id"] or expected["article_id"]
            got = stored[expected["canonical_url"]].model_dump(
                mode="json", exclude={"first_seen_at", "last_seen_at"}
            )
            assert got == expected, expectation.name
    assert query(
        settings,
        "SELECT strftime(published_at AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%SZ') FROM articles "
        "WHERE title LIKE 'Example: regulators%'",
    ) == [("2023-03-02T01:30:00Z",)]
    errors = query(
        settings,
        "SELECT DISTINCT regexp_extract(url, '[^/]+$'), kind, stage FROM ingest_errors ORDER BY 1",
    )
    assert errors == [
        ("bad-date.md", "bad_date", "normalize"),
        ("invalid-yaml.md", "invalid_front_matter", "post"),
        ("missing-title.md", "no_title", "post"),
        ("unclosed.md", "invalid_front_matter", "post"),
    ]


def test_posts_outside_the_window_are_not_loaded(settings: Settings) -> None:
    # Hugo's post is dated 2023-05-04 10:00 in Shanghai: the window's last day, included.
    # The undated post (its date cannot be read) is outside any bounded window.
    summary = run(settings, from_dir=POSTS, since="2023-03-01", until="2023-05-04")
    assert summary.outside_window == 3
    titles = [r[0] for r in query(settings, "SELECT title FROM articles ORDER BY title")]
    assert titles == [
        "Example: regulators publish draft rules for digital-asset custody",
        "数字人民币跨境支付试点扩容",
    ]
    # Without a first day: everything up to the last one (Hugo's post is a day late).
    until = run(settings, from_dir=POSTS, until="2023-05-03")
    assert (until.counts.articles_new, until.outside_window) == (2, 2)
    assert assert_unique(settings) == 4


# --- web sources ---------------------------------------------------------------------------


def test_feed_archive_backfill_over_march(
    settings: Settings, site: SiteServer, tmp_path: Path
) -> None:
    feeds = feeds_file(tmp_path, site)
    first = run(settings, feeds=feeds, **MARCH)
    hits = article_hits(site)
    second = run(settings, feeds=feeds, **MARCH)

    assert names(settings) == ["a2.html", "a3.html", "a4.html"]
    assert hits == {"a2.html": 1, "a3.html": 1, "a4.html": 1}  # outside: never downloaded
    assert site.hits["/archive/never.xml"] == 0
    assert (first.counts.articles_new, first.outside_window, first.counts.errors) == (3, 3, 0)
    assert (second.counts.articles_new, second.counts.pages_downloaded) == (0, 0)
    assert article_hits(site) == hits
    assert assert_unique(settings) == 3
    rows = query(
        settings,
        "SELECT regexp_extract(url, '[^/]+$'), published_at, source, categories, guid, "
        "feed_url, body_source FROM articles ORDER BY published_at",
    )
    assert [r[1] for r in rows] == [
        datetime(2024, 2, 29, 16, 30, tzinfo=UTC),
        datetime(2024, 3, 10, 4, 0, tzinfo=UTC),
        datetime(2024, 3, 31, 15, 59, tzinfo=UTC),
    ]
    assert {(r[2], tuple(r[3]), r[5], r[6]) for r in rows} == {
        ("Example Ledger", ("wire",), site.url("feed.xml"), "page")
    }
    refs = query(
        settings, "SELECT count(*) FROM article_feeds WHERE feed_url = ?", [site.url("feed.xml")]
    )
    assert refs == [(3,)]
    assert query(settings, "SELECT count(*) FROM feeds") == [(0,)]  # polling state untouched


def test_wordpress_feed_backfill_pages_through(
    settings: Settings, site: SiteServer, tmp_path: Path
) -> None:
    run(settings, feeds=feeds_file(tmp_path, site, "wp/feed.xml"))
    assert names(settings) == ["a1.html", "a2.html", "a3.html", "a4.html"]


def test_sitemap_backfill_over_march(settings: Settings, site: SiteServer) -> None:
    first = run(settings, sitemaps=(site.url("sitemap_index.xml"),), **MARCH)
    second = run(settings, sitemaps=(site.url("sitemap_index.xml"),), **MARCH)
    assert names(settings) == ["a2.html", "a3.html", "a4.html"]
    assert article_hits(site) == {"a2.html": 1, "a3.html": 1, "a4.html": 1}
    assert (first.counts.articles_new, first.outside_window) == (3, 2)
    assert (second.counts.articles_new, second.counts.pages_downloaded) == (0, 0)
    assert query(settings, "SELECT DISTINCT source, feed_url FROM articles") == [
        ("Example Ledger", None)
    ]
    assert assert_unique(settings) == 3


def test_url_file_backfill_keeps_the_window_by_page_dates(
    settings: Settings, site: SiteServer, tmp_path: Path
) -> None:
    urls = urls_file(tmp_path, site)
    first = run(settings, urls=urls, **MARCH)
    second = run(settings, urls=urls, **MARCH)
    assert names(settings) == ["a2.html", "a3.html", "a4.html"]
    assert (first.counts.articles_new, first.outside_window, first.counts.errors) == (3, 3, 1)
    assert query(settings, "SELECT DISTINCT kind, url FROM ingest_errors") == [
        ("bad_url", "not a url")
    ]
    # Stored pages are not downloaded again; pages outside the window have to be, to be dated.
    assert second.counts.articles_new == 0
    assert article_hits(site) == {f"a{n}.html": 1 if n in (2, 3, 4) else 2 for n in range(6)}
    assert assert_unique(settings) == 3


class Killed(BaseException):
    """Stands for the process being killed between two batches."""


class _KillAfter(logging.Handler):
    def __init__(self, batches: int) -> None:
        super().__init__()
        self.left = batches

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "stage", None) == "pages":
            self.left -= 1
            if self.left == 0:
                raise Killed


def test_a_killed_backfill_started_again_finishes_without_duplicates(
    settings: Settings, site: SiteServer, tmp_path: Path
) -> None:
    request = BackfillRequest(urls=urls_file(tmp_path, site), batch_size=2)
    handler = _KillAfter(batches=2)
    PROGRESS.addHandler(handler)
    PROGRESS.setLevel(logging.INFO)
    try:
        with pytest.raises(Killed):
            backfill(settings=settings, request=request)
    finally:
        PROGRESS.removeHandler(handler)
        PROGRESS.setLevel(logging.NOTSET)
    assert assert_unique(settings) == 4  # two batches of two committed
    assert query(settings, "SELECT status FROM runs") == [("crashed",)]
    downloaded = article_hits(site)

    summary = backfill(settings=settings, request=request)
    assert summary.counts.articles_new == 2
    assert assert_unique(settings) == 6
    again = {k: v - downloaded.get(k, 0) for k, v in article_hits(site).items()}
    assert sorted(k for k, v in again.items() if v) == sorted(set(again) - set(downloaded))


# --- re-extraction -------------------------------------------------------------------------


def test_reextract_updates_the_text_and_keeps_first_seen(
    settings: Settings, site: SiteServer, tmp_path: Path
) -> None:
    run(settings, urls=urls_file(tmp_path, site))
    post = tmp_path / "posts" / "p.md"
    post.parent.mkdir()
    post.write_text(
        f"---\ntitle: A post\ndate: 2024-03-05\npermalink: {site.url('articles/post.html')}\n"
        "---\nThe post's own text.\n",
        encoding="utf-8",
    )
    run(settings, from_dir=post.parent)
    before = dict(
        query(settings, "SELECT regexp_extract(url, '[^/]+$'), first_seen_at FROM articles")
    )
    page = site.root / "articles" / "a3.html"
    page.write_text(
        page.read_text(encoding="utf-8").replace(
            "to six more cities on Sunday", "to nine more cities on Sunday, a correction said"
        ),
        encoding="utf-8",
    )
    site.reset_counts()

    first = run(settings, reextract=True, **MARCH)
    second = run(settings, reextract=True, **MARCH)

    assert article_hits(site) == {"a2.html": 2, "a3.html": 2, "a4.html": 2}
    assert (first.counts.articles_updated, first.counts.duplicates) == (1, 2)
    assert (second.counts.articles_updated, second.counts.duplicates) == (0, 3)
    rows = query(
        settings,
        "SELECT regexp_extract(url, '[^/]+$'), first_seen_at, body_text, body_source FROM articles",
    )
    after = {r[0]: r for r in rows}
    assert "to nine more cities on Sunday" in after["a3.html"][2]
    assert after["a3.html"][3] == "page"
    assert {k: r[1] for k, r in after.items()} == before
    assert after["post.html"][2:] == ("The post's own text.", "post")
    assert assert_unique(settings) == 7
    assert query(settings, "SELECT count(*) FROM ingest_errors WHERE kind <> 'bad_url'") == [(0,)]


def test_reextract_with_a_source_takes_its_stored_items_only(
    settings: Settings, site: SiteServer, tmp_path: Path
) -> None:
    run(settings, sitemaps=(site.url("news-sitemap.xml"),), **MARCH)  # a2, a3
    run(settings, urls=urls_file(tmp_path, site), since="2024-03-31", until="2024-03-31")  # a4
    site.reset_counts()
    summary = run(settings, sitemaps=(site.url("news-sitemap.xml"),), reextract=True, **MARCH)
    assert article_hits(site) == {"a2.html": 1, "a3.html": 1}
    assert summary.counts.articles_new == 0
    assert assert_unique(settings) == 3


def test_backfilled_posts_are_tagged_for_coverage(settings: Settings, tmp_path: Path) -> None:
    posts = tmp_path / "posts"
    posts.mkdir()
    shutil.copy(Path(__file__).parent / "fixtures" / "coverage" / "hexo-pilot-zones.md", posts)
    run(settings, from_dir=posts)
    topics = {r[0] for r in query(settings, "SELECT topic FROM article_topics")}
    assert "blockchain" in topics
    assert query(settings, "SELECT count(*) FROM article_regions")[0][0] > 0


def test_deployment_parameters_are_plain_strings(tmp_path: Path) -> None:
    """What prefect.yaml passes: dates and paths as strings, settings from the environment."""
    db = tmp_path / "deployed.duckdb"
    summary = backfill(from_dir=str(POSTS), since="2023-01-01", timezone="UTC", db=str(db))
    assert summary.db_path == db
    assert (summary.counts.articles_new, summary.outside_window) == (2, 3)
    with pytest.raises(ConfigError, match="nothing to backfill"):
        backfill(db=str(db))


def test_posts_with_impossible_dates_are_all_loaded(settings: Settings, tmp_path: Path) -> None:
    """Each of these crashed the whole backfill (0 of 6 posts loaded): PyYAML raised
    ValueError on the first three, the date arithmetic OverflowError on the last two."""
    posts = tmp_path / "posts"
    posts.mkdir()
    fronts = {
        "feb-30.md": "date: 2024-02-30",
        "month-13.md": "date: 2024-13-45",
        "hour-25.md": "date: 2024-02-03 25:61:61",
        "0001-01-01-x.md": "",
        "good.md": "date: 2024-03-05 09:30",
    }
    for name, front in fronts.items():
        (posts / name).write_text(f"---\ntitle: {name}\n{front}\n---\nBody.\n", encoding="utf-8")
    (posts / "toml.md").write_text(
        '+++\ntitle = "toml.md"\ndate = 9999-12-31T23:59:59-08:00\n+++\nBody.\n', encoding="utf-8"
    )
    summary = run(settings, from_dir=posts)
    assert query(settings, "SELECT status FROM runs") == [("completed",)]
    assert (summary.counts.articles_new, summary.refused) == (6, 0)
    rows = query(
        settings,
        "SELECT a.title, a.published_at IS NULL, e.kind, e.stage FROM articles a "
        "LEFT JOIN ingest_errors e ON e.url LIKE '%/' || a.title ORDER BY a.title",
    )
    assert rows == [
        ("0001-01-01-x.md", True, "bad_date", "normalize"),
        ("feb-30.md", True, "bad_date", "normalize"),
        ("good.md", False, None, None),
        ("hour-25.md", True, "bad_date", "normalize"),
        ("month-13.md", True, "bad_date", "normalize"),
        ("toml.md", True, "bad_date", "normalize"),
    ]
