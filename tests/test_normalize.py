"""Normalize: URLs, dates, titles and text (docs/ARCHITECTURE.md, "front matter")."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from newsflow.schemas.errors import ItemError
from newsflow.schemas.models import ExtractedPage, FeedEntry
from newsflow.tasks.extraction.normalize import (
    as_list,
    build_feed_article,
    canonical_url,
    clean_title,
    content_hash,
    guess_language,
    html_to_text,
    keyword_list,
    parse_date,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 26, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Wed, 07 Sep 2022 09:26:48 GMT", "2022-09-07T09:26:48+00:00"),
        ("Tue, 15 Nov 2022 02:05:00 GMT", "2022-11-15T02:05:00+00:00"),
        ("Wed, 07 Sep 2022 17:26:48 +0800", "2022-09-07T09:26:48+00:00"),
        ("2023-03-02 09:30:00 +0800", "2023-03-02T01:30:00+00:00"),
        ("2023-03-02T09:30:00+08:00", "2023-03-02T01:30:00+00:00"),
        ("2023-03-02T01:30:00Z", "2023-03-02T01:30:00+00:00"),
        # naive times are in the feed's timezone
        ("2022-09-07 17:26", "2022-09-07T09:26:00+00:00"),
        ("2022-09-07 17:26:30", "2022-09-07T09:26:30+00:00"),
        ("2022年9月7日 17:26", "2022-09-07T09:26:00+00:00"),
        ("2022年09月07日", "2022-09-06T16:00:00+00:00"),
        ("September 7, 2022 5:26 PM", "2022-09-07T09:26:00+00:00"),
        # relative dates count back from the run's clock (NOW, 08:00 in Shanghai), not the wall's
        ("3分钟前", "2026-11-25T23:57:00+00:00"),
        ("昨天 17:26", "2026-11-25T09:26:00+00:00"),
    ],
)
def test_parse_date_spellings(raw: str, expected: str) -> None:
    assert parse_date(raw, SHANGHAI, NOW) == datetime.fromisoformat(expected)


@pytest.mark.parametrize(
    "raw",
    [
        "not a date at all",
        "Sat, 01 Jan 3000 00:00:00 GMT",
        "1970-01-01",  # midnight in Shanghai is 1969 in UTC
        # These raised OverflowError out of the feed's task and crashed the run.
        "0001-01-01T00:00:00",
        "0001-01-01",
        "9999-12-31T23:59:59-08:00",
        "9999-12-31T23:59:59",
        "2026-11-27T00:00:01Z",  # a day and a second ahead of NOW
        "99999999999999999999",
        # Numbers a YAML front matter gives as floats: dateparser read the first two as "now"
        # (an invented date) and the third as 2016-12-01 (found by test_hostile_inputs).
        "1.0000000000000002e+16",
        "1.5e+3",
        "1e16",
    ],
)
def test_parse_date_refuses_unreadable_and_out_of_range(raw: str) -> None:
    with pytest.raises(ItemError) as exc:
        parse_date(raw, SHANGHAI, NOW)
    assert exc.value.kind == "bad_date"


def test_parse_date_range_is_1970_to_a_day_ahead() -> None:
    assert parse_date("1970-01-01T00:00:00Z", SHANGHAI, NOW) == datetime(1970, 1, 1, tzinfo=UTC)
    assert parse_date("2026-11-27T00:00:00Z", SHANGHAI, NOW) == datetime(2026, 11, 27, tzinfo=UTC)
    with pytest.raises(ItemError, match="date out of range"):
        parse_date(datetime(1, 1, 1), SHANGHAI, NOW)


def test_parse_date_empty_is_none() -> None:
    assert parse_date("  ", SHANGHAI) is None
    assert parse_date(None, SHANGHAI) is None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://www.cls.cn/detail/123?spm=a2c4g.11186623&from=timeline&share_token=xyz#top",
            "https://www.cls.cn/detail/123",
        ),
        ("HTTP://Example.COM:80/a/b?b=2&a=1&utm_source=rss", "http://example.com/a/b?a=1&b=2"),
        (
            "https://mp.example.com/s?articleid=7&isappinstalled=0&scene=1&chksm=ab",
            "https://mp.example.com/s?articleid=7",
        ),
        ("https://example.com", "https://example.com/"),
        # default ports, host case, empty query and fragment, a trailing root dot
        ("HTTPS://WWW.CLS.EXAMPLE:443/detail/1001?#", "https://www.cls.example/detail/1001"),
        ("https://www.cls.example./detail/1001", "https://www.cls.example/detail/1001"),
        ("https://www.cls.example:8443/detail/1001", "https://www.cls.example:8443/detail/1001"),
        # dot segments, doubled slashes, credentials, session ids in the path and the query
        ("https://a.example/x/../detail/./1001", "https://a.example/detail/1001"),
        ("https://a.example//detail//1001", "https://a.example/detail/1001"),
        ("https://user:pw@a.example/detail/1001", "https://a.example/detail/1001"),
        (
            "https://a.example/detail/1001;jsessionid=AB12?id=5",
            "https://a.example/detail/1001?id=5",
        ),
        ("https://a.example/d?PHPSESSID=ab&id=5", "https://a.example/d?id=5"),
        # trackers of ad and video platforms; real parameters stay
        (
            "https://a.example/v/7?fbclid=a&gclid=b&_ga=c&msclkid=d&spm_id_from=333.1&p=2",
            "https://a.example/v/7?p=2",
        ),
        ("http://[2001:db8::1]:8080/a", "http://[2001:db8::1]:8080/a"),
    ],
)
def test_canonical_url(url: str, expected: str) -> None:
    assert canonical_url(url) == expected


def test_canonical_url_keeps_real_parameters_and_resolves_relative() -> None:
    assert canonical_url("/news?aid=5&page=2", base="https://a.example/x/") == (
        "https://a.example/news?aid=5&page=2"
    )


@pytest.mark.parametrize("url", ["javascript:alert(1)", "ftp://example.com/x", "", "mailto:a@b"])
def test_canonical_url_refuses_non_http(url: str) -> None:
    with pytest.raises(ItemError) as exc:
        canonical_url(url)
    assert exc.value.kind == "bad_url"


@pytest.mark.parametrize(
    ("title", "names", "expected"),
    [
        ("央行发布数字人民币试点新规 - 财联社", ["财联社"], "央行发布数字人民币试点新规"),
        ("区块链先导区建设提速_新浪财经", ["新浪财经"], "区块链先导区建设提速"),
        ("区块链先导区建设提速_新浪财经_新浪网", ["新浪财经", "新浪网"], "区块链先导区建设提速"),
        ("区块链先导区建设提速_新浪网", ["新浪财经"], "区块链先导区建设提速_新浪网"),
        ("数字藏品监管｜链闻", ["链闻财经"], "数字藏品监管"),
        ("SEC sues exchange | Example Wire", ["Example Wire"], "SEC sues exchange"),
        # a dash that is part of the headline stays
        ("Hong Kong - the new crypto hub?", ["Example Wire"], "Hong Kong - the new crypto hub?"),
        ("  spaced\n title \x00 ", [], "spaced title"),
    ],
)
def test_clean_title(title: str, names: list[str], expected: str) -> None:
    assert clean_title(title, names) == expected


def test_html_to_text_keeps_paragraphs_drops_markup() -> None:
    html = (
        "<div><p><strong>财联社11月15日电</strong> 第一段。</p><p>第二段<br>换行</p>"
        "<script>var x=1;</script><ul><li>one</li><li>two</li></ul></div>"
    )
    assert html_to_text(html) == "财联社11月15日电 第一段。\n第二段\n换行\none\ntwo"
    assert html_to_text("plain text") == "plain text"
    assert html_to_text("") == ""


def test_as_list_keeps_each_term_once() -> None:
    assert as_list("policy") == ["policy"]
    assert as_list(["a", "", None, "a", "b"]) == ["a", "b"]
    assert as_list(None) == []
    # Case duplicates are one term; the first spelling stays.
    assert as_list(["policy", "Policy", "POLICY", "监管", "Crypto", "crypto"]) == [
        "policy",
        "监管",
        "Crypto",
    ]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["区块链,行动计划,通知"], ["区块链", "行动计划", "通知"]),
        (["区块链，行动计划、通知；监管"], ["区块链", "行动计划", "通知", "监管"]),
        (["DeFi; stablecoins, CBDC", "defi", " "], ["DeFi", "stablecoins", "CBDC"]),
        (["数字人民币"], ["数字人民币"]),
        (None, []),
    ],
)
def test_keyword_lists_are_split(values: list[str] | None, expected: list[str]) -> None:
    assert keyword_list(values) == expected


def test_language_and_hash() -> None:
    assert guess_language("数字人民币试点范围扩大到更多城市") == "zh"
    assert guess_language("The SEC published draft rules") == "en"
    assert guess_language("x", declared="zh-CN") == "zh"
    assert content_hash("Ａ b\nc") == content_hash("a  B c")


def test_the_hash_folds_every_whitespace_character_a_regex_space_matches() -> None:
    spaces = [chr(c) for c in range(0x3100) if re.fullmatch(r"\s", chr(c))]
    assert len(spaces) > 20  # Unicode's, not only ASCII's
    assert {content_hash(f"数字{s}人民币") for s in spaces} == {content_hash("数字人民币")}
    assert content_hash("数字\u200b人民币") != content_hash("数字人民币")  # not a space


def _entry(**kw: object) -> FeedEntry:
    base = {
        "feed_url": "https://feeds.example/rss",
        "link": "https://news.example/a?utm_source=rss",
    }
    base.update(kw)
    return FeedEntry(**base)  # type: ignore[arg-type]


def test_build_article_feed_fields_win_and_page_fills_gaps() -> None:
    page = ExtractedPage(
        url="https://news.example/a",
        title="Page title - Example Wire",
        author="Page Author",
        date="2024-03-05",
        image="/img/a.png",
        text="First paragraph.\nSecond paragraph.",
        sitename="Example Wire",
        categories=["金融", "Policy"],
        tags=["区块链,行动计划,通知"],  # trafilatura's reading of <meta name="keywords">
    )
    article, warnings = build_feed_article(
        _entry(
            title="Feed title - Example Wire",
            published="2024-03-05 09:30",
            categories=["政策", "policy"],
        ),
        page,
        source="Example Wire",
        feed_title="Example Wire feed",
        language=None,
        feed_categories=["金融"],
        tz=SHANGHAI,
        now=NOW,
    )
    assert warnings == []
    assert article.title == "Feed title"
    assert article.canonical_url == "https://news.example/a"
    assert article.published_at == datetime(2024, 3, 5, 1, 30, tzinfo=UTC)
    assert article.author == "Page Author"
    assert article.image_url == "https://news.example/img/a.png"
    assert article.categories == ["政策", "policy", "金融"]
    assert article.tags == ["区块链", "行动计划", "通知"]
    assert article.body_text == "First paragraph.\nSecond paragraph."
    assert article.language == "en"


def test_build_article_without_page_uses_feed_text_and_reports_bad_date() -> None:
    article, warnings = build_feed_article(
        _entry(title="T", summary="<p>Summary para</p>", published="Sat, 01 Jan 3000 00:00:00 GMT"),
        None,
        source=None,
        feed_title="Feed",
        language="zh",
        feed_categories=[],
        tz=SHANGHAI,
        now=NOW,
    )
    assert article.body_text == "Summary para"
    assert article.published_at is None
    assert [w.kind for w in warnings] == ["bad_date"]
    assert article.source == "Feed"


def test_build_article_without_link_is_refused() -> None:
    with pytest.raises(ItemError) as exc:
        build_feed_article(
            _entry(link=None, title="x"), None, source=None, feed_title=None, language=None,
            feed_categories=[], tz=SHANGHAI,
        )  # fmt: skip
    assert exc.value.kind == "no_link"
