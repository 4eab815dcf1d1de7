"""Per-feed schedule and health, end to end: ingest runs against a loopback site whose feeds
answer 200, 304, 410, 429 and 503 (with and without Retry-After), and per-host politeness as
the server sees it."""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path

import pytest

from newsflow.cli.main import main
from newsflow.demo.site import RequestRecord, SiteServer
from newsflow.flows.ingest import RunSummary, ingest
from newsflow.schemas.config import Settings
from newsflow.tasks.storage.store import Database
from tests.conftest import make_settings

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

DEMO_FEED = "/feeds/policy-en.xml"  # ETag and Last-Modified; <ttl>30</ttl>


def rss(guid: str, page: str, extra: str = "") -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>{guid}</title><link>{{base}}/</link>{extra}"
        f"<item><title>{guid}</title><link>{{base}}{page}</link><guid>{guid}</guid>"
        "<description>Stablecoin rules take effect.</description></item>"
        "</channel></rss>"
    ).encode()


RSS = {"Content-Type": "application/rss+xml; charset=utf-8"}


def routes() -> dict[str, tuple[int, dict[str, str], bytes]]:
    in_two_hours = formatdate(time.time() + 7200, usegmt=True)
    return {
        "/feeds/gone.xml": (410, {}, b"gone for good"),
        "/feeds/limited.xml": (429, {"Retry-After": "3600"}, b""),
        "/feeds/limited-bare.xml": (429, {}, b""),
        "/feeds/busy.xml": (503, {"Retry-After": in_two_hours}, b""),
        "/feeds/down.xml": (503, {}, b""),
        "/feeds/ttl.xml": (
            200,
            RSS,
            rss("ttl-1", "/articles/en/bridge-reopens.html", "<ttl>120</ttl>"),
        ),
        "/feeds/max-age.xml": (
            200,
            RSS | {"Cache-Control": "public, max-age=7200"},
            rss("max-age-1", "/articles/en/marathon-record.html"),
        ),
    }


FEEDS = [DEMO_FEED, *routes()]


def feeds_toml(site: SiteServer, paths: list[str], header: str = "") -> str:
    entries = [f'[[feeds]]\nurl = "{site.url(p)}"\nname = "{Path(p).stem}"\n' for p in paths]
    return header + "\n".join(entries)


@pytest.fixture
def site() -> Iterator[SiteServer]:
    with SiteServer(extra_routes=routes()) as server:
        yield server


@pytest.fixture
def settings(tmp_path: Path, site: SiteServer) -> Settings:
    settings = make_settings(tmp_path)
    settings.feeds_path.write_text(feeds_toml(site, FEEDS), encoding="utf-8")
    return settings


def feed_rows(settings: Settings) -> dict[str, tuple[str, int, float | None, str | None]]:
    """name → (status, failures, seconds from last check to next check, last error kind)."""
    with Database(settings.db_path).session() as con:
        rows = con.execute(
            "SELECT name, status, consecutive_failures, "
            "epoch(next_check_at) - epoch(last_checked_at), last_error_kind FROM feeds"
        ).fetchall()
    return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}


def polled(site: SiteServer, since: int = 0) -> Counter[str]:
    return Counter(Path(r.path).stem for r in site.requests[since:] if r.path.startswith("/feeds/"))


def run(settings: Settings, force: bool = False) -> RunSummary:
    return ingest(settings=settings, force=force)


def test_each_answer_sets_status_and_next_check(
    site: SiteServer, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    first = run(settings)
    assert first.counts.feeds_checked == len(FEEDS)
    assert first.counts.feeds_failed == 5
    rows = feed_rows(settings)
    assert rows["policy-en"] == ("active", 0, 1800.0, None)  # <ttl>30</ttl>
    assert rows["ttl"] == ("active", 0, 7200.0, None)  # <ttl>120</ttl>
    assert rows["max-age"] == ("active", 0, 7200.0, None)  # Cache-Control: max-age=7200
    assert rows["gone"][:2] == ("gone", 1) and rows["gone"][2] is None
    assert rows["limited"] == ("failing", 1, 3600.0, "http_429")  # Retry-After: 3600
    assert rows["limited-bare"] == ("failing", 1, 1800.0, "http_429")  # 4xx: the default
    status, failures, delay, kind = rows["busy"]  # Retry-After: an HTTP date, 2 h ahead
    assert (status, failures, kind) == ("failing", 1, "http_503")
    assert delay is not None and 7100 < delay <= 7200
    assert rows["down"] == ("failing", 1, 600.0, "http_503")  # 5xx: softer than 4xx

    # Straight away, nothing is due: not one request, least of all to the rate-limited feed.
    before = len(site.requests)
    second = run(settings)
    assert second.counts.feeds_checked == 0
    assert len(site.requests) == before

    assert main(["feeds", "--db", str(settings.db_path), "--feeds", str(settings.feeds_path)]) == 0
    shown = capsys.readouterr().out
    assert "never (gone)" in shown and "http_410" in shown
    assert "http_429" in shown and "newsflow feeds --enable" in shown


def test_due_feeds_are_polled_again_and_unchanged_ones_cost_no_pages(
    site: SiteServer, settings: Settings
) -> None:
    run(settings)
    with Database(settings.db_path).session() as con:  # 40 minutes pass
        con.execute("UPDATE feeds SET next_check_at = next_check_at - INTERVAL 40 MINUTE")
    before = len(site.requests)
    again = run(settings)
    assert polled(site, before) == Counter({"policy-en": 1, "down": 1, "limited-bare": 1})
    assert again.counts.feeds_not_modified == 1
    assert again.counts.pages_downloaded == 0
    assert not [r for r in site.requests[before:] if r.path.startswith("/articles/")]
    rows = feed_rows(settings)
    assert rows["policy-en"][:3] == ("active", 0, 2700.0)  # nothing new: half again as long
    assert rows["down"][:3] == ("failing", 2, 900.0)  # backing off
    assert rows["limited"][0] == "failing"  # Retry-After 3600 has 20 minutes to go

    # Even forced: a gone feed stays unpolled until re-enabled, and a Retry-After holds.
    before = len(site.requests)
    run(settings, force=True)
    assert "policy-en" in polled(site, before)
    assert "gone" not in polled(site, before) and "limited" not in polled(site, before)
    assert main(["feeds", "--db", str(settings.db_path), "--enable", "gone"]) == 0
    before = len(site.requests)
    run(settings)
    assert polled(site, before)["gone"] == 1
    assert feed_rows(settings)["gone"][0] == "gone"  # still 410


def most_at_once(requests: list[RequestRecord]) -> int:
    events = sorted([(r.started, 1) for r in requests] + [(r.answered, -1) for r in requests])
    current = peak = 0
    for _, step in events:
        current += step
        peak = max(peak, current)
    return peak


@pytest.mark.parametrize(
    ("header", "at_once", "gap"),
    [
        ('[hosts."127.0.0.1"]\nconcurrency = 1\nmin_interval = 0.05\n\n', 1, 0.05),
        ("[defaults]\nconcurrency = 3\n\n", 3, 0.0),
    ],
    ids=["host-policy", "defaults"],
)
def test_host_politeness_is_seen_at_the_server(
    tmp_path: Path, header: str, at_once: int, gap: float
) -> None:
    with SiteServer(latency=0.05) as site:
        settings = make_settings(tmp_path)
        paths = [DEMO_FEED, "/feeds/markets.atom"]
        settings.feeds_path.write_text(feeds_toml(site, paths, header), encoding="utf-8")
        summary = run(settings)
        requests = site.requests
    assert summary.counts.pages_downloaded >= 10
    assert most_at_once(requests) == at_once
    starts = sorted(r.started for r in requests)
    # The client spaces its starts; arrival at the server may jitter by a few milliseconds.
    assert min(b - a for a, b in itertools.pairwise(starts)) >= gap - 0.01
