"""Failures contained at their unit (tasks/containment.py): one bad input in one feed or
source costs that feed or source, never the run.

Before: a feed item dated `0001-01-01T00:00:00` raised OverflowError in parse_date, and a
`Cache-Control: max-age=` of 5,000 digits ValueError in the fetcher; either escaped the feed's
task, the run ended `crashed` with every other feed's articles lost, and the feed stayed due,
so the next run crashed the same way. Both are fixed where they arose (the date bounded, the
header capped), so the rule itself is shown with a real part that fails in a way no unit
expects: a fetcher already closed (httpx raises RuntimeError).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from newsflow.schemas.config import BackfillRequest, FeedConfig, FeedsFile
from newsflow.tasks.extraction.extract import InlineExtractor
from newsflow.tasks.fetching.fetch import Fetcher
from newsflow.tasks.pipeline.backfill import BackfillContext, archive_walk, sitemap_walk
from newsflow.tasks.pipeline.feed import FeedContext, collect_feed
from newsflow.tasks.sources.health import next_state
from newsflow.tasks.storage.store import Database
from tests.conftest import make_settings
from tests.faults.harness import Item, add_healthy_feed, rss, run_ingest_over, static
from tests.loopback import LoopbackServer

RSS = "application/rss+xml; charset=utf-8"


def closed_fetcher(tmp_path: Path) -> Fetcher:
    fetcher = Fetcher(make_settings(tmp_path).fetch)
    with fetcher:
        pass
    return fetcher


def test_a_feed_unit_records_what_it_did_not_expect_and_the_feed_backs_off(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path)
    extractor = InlineExtractor(settings.extract_deadline)
    ctx = FeedContext(
        settings, FeedsFile(), Database(settings.db_path), closed_fetcher(tmp_path), extractor
    )
    feed = FeedConfig(url="http://127.0.0.1:9/feed.xml")
    batch = collect_feed(feed, None, ctx)
    assert [(e.stage, e.url, e.kind, e.feed_url) for e in batch.errors] == [
        ("feed", feed.url, "internal_error", feed.url)
    ]
    assert batch.errors[0].message.startswith("RuntimeError: Cannot send a request")
    assert not batch.check.ok and batch.check.error_kind == "internal_error"
    state = next_state(batch.check, None, settings.default_poll_interval)
    again = next_state(batch.check, state, settings.default_poll_interval)
    assert (again.status, again.consecutive_failures) == ("failing", 2)
    assert state.next_check_at is not None and again.next_check_at is not None
    assert (again.next_check_at - batch.check.checked_at) > (
        state.next_check_at - batch.check.checked_at
    )


def test_backfill_sources_record_what_they_did_not_expect(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    request = BackfillRequest(sitemaps=("http://127.0.0.1:9/sitemap.xml",), since=date(2024, 1, 1))
    ctx = BackfillContext(
        settings,
        request,
        FeedsFile(),
        Database(settings.db_path),
        closed_fetcher(tmp_path),
        InlineExtractor(settings.extract_deadline),  # type: ignore[arg-type]
    )
    feed = FeedConfig(url="http://127.0.0.1:9/feed.xml")
    archive = archive_walk(ctx, feed)
    sitemap = sitemap_walk(ctx, request.sitemaps[0])
    assert [(e.stage, e.url, e.kind) for e in archive.errors + sitemap.errors] == [
        ("archive", feed.url, "internal_error"),
        ("sitemap", request.sitemaps[0], "internal_error"),
    ]
    assert (archive.entries, sitemap.entries) == ([], [])


def test_a_year_one_date_and_a_5000_digit_max_age_beside_a_good_feed_complete_twice(
    tmp_path: Path, server: LoopbackServer, prefect_harness: None
) -> None:
    good = add_healthy_feed(server, "contained-good")
    page = add_healthy_feed(server, "contained-page")  # pages for the two other feeds' items
    year_one_item = Item(page.titles[0], page.items[0].link, pub_date="0001-01-01T00:00:00")
    server.routes["/contained/year-one.xml"] = static(rss([year_one_item]).encode(), RSS)
    year_one = server.url("/contained/year-one.xml")
    server.routes["/contained/max-age.xml"] = static(
        rss([page.items[1]]).encode(), RSS, **{"Cache-Control": "max-age=" + "9" * 5000}
    )
    max_age = server.url("/contained/max-age.xml")
    urls = [good.url, year_one, max_age]

    first = run_ingest_over(tmp_path, urls)
    second = run_ingest_over(tmp_path, urls)

    for run in (first, second):
        assert run.query("SELECT status FROM runs WHERE run_id = ?", run.summary.run_id) == [
            ("completed",)
        ]
        run.assert_healthy_items_loaded(good)
        assert run.errors(good.url) == []
        assert run.feed(max_age)["status"] == "active"
    # The year-one item is stored undated, with one bad_date row; its feed is healthy.
    assert first.errors(year_one) == [("normalize", page.items[0].link, "bad_date")]
    assert "date out of range" in first.message(year_one, "bad_date")
    assert first.query("SELECT published_at FROM articles WHERE title = ?", page.titles[0]) == [
        (None,)
    ]
    assert first.feed(year_one)["status"] == "active"
    # The max-age is capped (tasks/fetching), not an error: the feed's article is stored and
    # its next check is within the day that bounds every interval.
    assert first.errors(max_age) == []
    assert sorted(first.articles(max_age)) == [page.titles[1]]
    health = first.feed(max_age)
    assert (health["next_check_at"] - health["last_checked_at"]).total_seconds() <= 86400
    # The second run finds both feeds unchanged (304): nothing new, no rows.
    assert second.query(
        "SELECT count(*) FROM ingest_errors WHERE run_id = ?", second.summary.run_id
    ) == [(0,)]
