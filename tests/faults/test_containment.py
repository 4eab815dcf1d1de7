"""Failures contained at their unit (tasks/containment.py), through the real ingest flow: one
bad input in one feed costs that feed, never the run.

Before: a feed item dated `0001-01-01T00:00:00` raised OverflowError in parse_date, and a
`Cache-Control: max-age=` of 5,000 digits ValueError in the fetcher; either escaped the feed's
task, the run ended `crashed` with every other feed's articles lost, and the feed stayed due,
so the next run crashed the same way.
"""

from __future__ import annotations

from pathlib import Path

from tests.faults.harness import Item, add_healthy_feed, rss, run_ingest_over, static
from tests.loopback import LoopbackServer

RSS = "application/rss+xml; charset=utf-8"


def test_a_year_one_date_and_a_5000_digit_max_age_beside_a_good_feed_complete_twice(
    tmp_path: Path, server: LoopbackServer, prefect_harness: None
) -> None:
    good = add_healthy_feed(server, "contained-good")
    page = add_healthy_feed(server, "contained-page")  # a page for the year-one item
    year_one_item = Item(page.titles[0], page.items[0].link, pub_date="0001-01-01T00:00:00")
    server.routes["/contained/year-one.xml"] = static(rss([year_one_item]).encode(), RSS)
    year_one = server.url("/contained/year-one.xml")
    server.routes["/contained/max-age.xml"] = static(
        rss([Item("Max age", server.url("/contained/none.html"))]).encode(),
        RSS,
        **{"Cache-Control": "max-age=" + "9" * 5000},
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
    # The year-one item is stored undated, with one bad_date row; its feed is healthy.
    assert first.errors(year_one) == [("normalize", page.items[0].link, "bad_date")]
    assert "date out of range" in first.message(year_one, "bad_date")
    assert first.query("SELECT published_at FROM articles WHERE title = ?", page.titles[0]) == [
        (None,)
    ]
    assert first.feed(year_one)["status"] == "active"
    # The server the fetcher cannot read is the feed's failure: one row, and it backs off.
    assert first.errors(max_age) == [("feed", max_age, "internal_error")]
    assert first.message(max_age, "internal_error").startswith("ValueError: ")
    health = second.feed(max_age)
    assert (health["status"], health["consecutive_failures"]) == ("failing", 2)
    assert health["next_check_at"] > health["last_checked_at"]
    assert second.errors(max_age) == [("feed", max_age, "internal_error")]
    assert second.query(
        "SELECT count(*) FROM ingest_errors WHERE run_id = ?", first.summary.run_id
    ) == [(2,)]
