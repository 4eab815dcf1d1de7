"""Parse: every feed fixture gives what its expectation file says."""

from __future__ import annotations

import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from newsflow.schemas.errors import ItemError
from newsflow.schemas.models import Response
from newsflow.tasks.extraction.normalize import parse_date
from newsflow.tasks.sources.feeds import parse_feed

FEEDS = Path(__file__).parent / "fixtures" / "feeds"
CASES = sorted(
    p for p in FEEDS.iterdir() if p.suffix != ".json" and p.with_suffix(".json").exists()
)
# What a server says the bytes are; the GBK-declared-UTF-8 case is the server lying.
CONTENT_TYPES = {
    "gbk-declared-utf8": "application/rss+xml; charset=utf-8",
    "gbk": "application/rss+xml; charset=gbk",
}


def response_for(path: Path) -> Response:
    url = f"http://example.test/feeds/{path.name}"
    return Response(
        url=url,
        final_url=url,
        status=200,
        content_type=CONTENT_TYPES.get(path.stem, "application/xml"),
        body=path.read_bytes(),
    )


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_feed_fixture(path: Path) -> None:
    expected = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    if expected["kind"]:
        with pytest.raises(ItemError) as exc:
            parse_feed(response_for(path), max_items=100)
        assert exc.value.kind == expected["kind"]
        return
    parsed = parse_feed(response_for(path), max_items=100)
    assert len(parsed.entries) == expected["entries"]
    first = parsed.entries[0]
    assert first.title == expected["first_title"]
    assert first.link == expected["first_link"]
    raw_date = first.published or first.updated
    assert raw_date == expected["first_published"]
    published = parse_date(raw_date, ZoneInfo("Asia/Shanghai"))
    utc = published.isoformat().replace("+00:00", "Z") if published else None
    assert utc == expected["first_published_utc"]
    assert (parsed.warning is not None) == (expected["bozo"] and path.stem != "gbk-declared-utf8")


def test_items_are_capped_and_the_cap_reported() -> None:
    items = "".join(
        f"<item><title>t{i}</title><link>http://example.test/{i}</link></item>" for i in range(30)
    )
    body = (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>c</title>{items}</channel></rss>'
    )
    url = "http://example.test/big.xml"
    parsed = parse_feed(
        Response(url=url, final_url=url, status=200, body=body.encode()), max_items=10
    )
    assert len(parsed.entries) == 10
    assert parsed.truncated_from == 30


def test_ttl_and_sy_update_period_become_poll_hints() -> None:
    url = "http://example.test/f.xml"
    ttl = b'<rss version="2.0"><channel><title>c</title><ttl>15</ttl></channel></rss>'
    sy = (
        b'<rss version="2.0" xmlns:sy="http://purl.org/rss/1.0/modules/syndication/"><channel>'
        b"<title>c</title><sy:updatePeriod>hourly</sy:updatePeriod>"
        b"<sy:updateFrequency>2</sy:updateFrequency></channel></rss>"
    )
    assert parse_feed(Response(url=url, final_url=url, status=200, body=ttl), 10).poll_hint == 900
    assert parse_feed(Response(url=url, final_url=url, status=200, body=sy), 10).poll_hint == 1800
