"""The metadata stage's rules one at a time: dates with their precision, the order of trust,
bad input falling back to the next source, the feed's date, the new columns stored."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pytest

from newsflow.schemas.ddl import LATEST_VERSION, MIGRATIONS, SCHEMA_VERSION_DDL
from newsflow.schemas.models import Article, ArticleBatch, ExtractedPage, FeedEntry
from newsflow.tasks.extraction.extract import extract_page
from newsflow.tasks.extraction.metadata.columns import feed_precision
from newsflow.tasks.extraction.metadata.dates import parse_stamp
from newsflow.tasks.extraction.normalize import rebuild_body
from newsflow.tasks.storage.load import load_articles
from newsflow.tasks.storage.runs import start_run
from newsflow.tasks.storage.store import Database
from tests.test_metadata_pages import normalized

SHANGHAI = ZoneInfo("Asia/Shanghai")
BODY = "".join(
    f"<p>第{n}段：中国人民银行有关负责人表示，将在现有试点地区基础上有序扩大试点范围，稳妥推进研发。</p>"
    for n in range(3)
)


def page(head: str = "", line: str = "", url: str = "https://news.example.cn/a/1.html") -> str:
    return (
        f"<html><head><meta charset='utf-8'><title>试点扩容_示例网</title>{head}</head>"
        f"<body><h1>试点扩容</h1><div class='info'>{line}</div><div class='txt'>{BODY}</div>"
        "<div class='footer'>Copyright © 2003-2022 示例网</div></body></html>"
    )


def article_of(
    html: str, entry: FeedEntry | None = None, url: str = "https://news.example.cn/a/1.html"
) -> Article:
    return normalized(url, extract_page(url, html), entry)


@pytest.mark.parametrize(
    ("text", "value", "precision"),
    [
        ("发布时间：2022-09-07 17:26", datetime(2022, 9, 7, 17, 26), "minute"),
        ("2022年09月07日 17:26", datetime(2022, 9, 7, 17, 26), "minute"),
        ("2005-5-7 21:23:57", datetime(2005, 5, 7, 21, 23, 57), "second"),
        ("发表于 2005-5-7", datetime(2005, 5, 7), "day"),
        ("2022年9月", datetime(2022, 9, 1), "month"),
        ("Dec. 5, 2025", datetime(2025, 12, 5), "day"),
    ],
)
def test_dates_are_read_at_the_precision_they_are_written(
    text: str, value: datetime, precision: str
) -> None:
    stamp = parse_stamp(text)
    assert stamp is not None
    assert (stamp.value, stamp.precision) == (value, precision)


@pytest.mark.parametrize(
    "raw",
    [
        "Wed, 01 May 2024 08:00:00 +0800",
        "1 May 2024 08:00:00 GMT",
        "Wed, 01 May 24 08:00:00 +0800",
        "Mon, 01 Jan 1985 01:02:03 GMT",
        "Wed, 01 Mai 2024 08:00:00 +0200",
        "Wed, 01 May 2024 08:00 +0800",
        "2024-05-01T08:00:00+08:00",
        "2024-05-01",
    ],
)
def test_a_feed_dates_precision_is_read_without_dateparser_as_with_it(raw: str) -> None:
    """RFC 2822 dates with seconds skip parse_stamp (dateparser: milliseconds an item)."""
    stamp = parse_stamp(raw)
    assert feed_precision(raw) == (stamp.precision if stamp else "second")


@pytest.mark.parametrize("text", ["2022-13-45", "0000-00-00 00:00:00", "2099-01-01", "1970-01-01"])
def test_impossible_dates_are_no_dates(text: str) -> None:
    assert parse_stamp(text) is None


@pytest.mark.parametrize(
    "head",
    [
        '<script type="application/ld+json">{"@type": "NewsArticle", "datePublished": </script>',
        '<script type="application/ld+json">{"@type": "NewsArticle", "datePublished": '
        '"2022-09-09T10:00:00+08:00", "dateModified": "2021-01-01T10:00:00+08:00"}</script>',
        '<meta name="PubDate" content="2022-13-45 10:00">',
        '<meta name="publishdate" content="0000-00-00 00:00:00">',
        '<meta property="article:published_time" content="2099-01-01T00:00:00+08:00">',
        "<script>window.__INITIAL_STATE__ = {article: {title: , ctime: }};</script>",
        '<script id="__NEXT_DATA__" type="application/json">not json at all</script>',
    ],
)
def test_bad_metadata_falls_back_to_the_next_source(head: str) -> None:
    article = article_of(page(head, "发布时间：2022-09-07 17:26　来源：新华社"))
    assert article.published_at == datetime(2022, 9, 7, 9, 26, tzinfo=UTC)
    assert (article.published_precision, article.published_source) == ("minute", "visible")
    assert article.origin_source == "新华社"
    assert "第2段" in article.body_text  # nothing else about the page is lost


def test_json_ld_comes_before_the_visible_line() -> None:
    head = (
        '<script type="application/ld+json">{"@context": "https://schema.org", "@type": '
        '"NewsArticle", "datePublished": "2022-09-07T17:26:31+08:00", "author": '
        '{"@type": "Person", "name": "王芳"}}</script>'
    )
    article = article_of(page(head, "2022-09-08 来源：新华社 作者：李娜"))
    assert article.published_at == datetime(2022, 9, 7, 9, 26, 31, tzinfo=UTC)
    assert (article.published_source, article.author) == ("jsonld", "王芳")


def test_a_later_source_gives_the_time_of_the_same_day() -> None:
    article = article_of(page('<meta name="PubDate" content="2022-09-07">', "2022年09月07日 17:26"))
    assert (article.published_precision, article.published_source) == ("minute", "visible")


def test_a_page_that_states_no_date_has_none() -> None:
    related = (
        "<ul><li>2022-09-01 另一条新闻</li></ul>"
        "<div class='comment'>2022-09-03 12:00 网友：好</div>"
    )
    article = article_of(page(line="") + related)
    assert article.published_at is None
    assert article.published_date is None and article.published_source is None


def test_editors_and_placeholders_are_not_authors() -> None:
    article = article_of(page(line="本报讯 记者 张伟 李娜 北京报道 责任编辑：王芳"))
    assert article.author == "张伟, 李娜"


def test_the_feed_date_wins_when_it_carries_a_time() -> None:
    html = page(line="发布时间：2022-09-07 17:26")
    entry = FeedEntry(
        link="https://news.example.cn/a/1.html", published="Wed, 07 Sep 2022 17:30:00 +0800"
    )
    article = article_of(html, entry)
    assert (article.published_source, article.published_precision) == ("feed", "second")
    assert article.published_at == datetime(2022, 9, 7, 9, 30, tzinfo=UTC)


def test_a_feed_date_without_a_time_gives_way_to_the_page() -> None:
    entry = FeedEntry(link="https://news.example.cn/a/1.html", published="2022-09-07")
    article = article_of(page(line="发布时间：2022-09-07 17:26"), entry)
    assert (article.published_source, article.published_precision) == ("visible", "minute")


def test_updated_never_stands_in_for_the_publication_date() -> None:
    entry = FeedEntry(
        link="https://news.example.cn/a/1.html", updated="Wed, 07 Sep 2022 17:30:00 +0800"
    )
    article = article_of(page(), entry)
    assert article.published_at is None
    assert article.updated_at == datetime(2022, 9, 7, 9, 30, tzinfo=UTC)


def test_the_url_date_is_the_last_source() -> None:
    url = "http://www.example.gov.cn/zwgk/202209/t20220907_123.html"
    article = article_of(page(url=url), url=url)
    assert (article.published_date, article.published_precision) == (date(2022, 9, 7), "day")
    assert article.published_source == "url"


def test_hostile_markup_never_fails_the_page_for_its_metadata() -> None:
    html = page('<meta name="PubDate" content="' + "9" * 5000 + '">') + "<time datetime='x'>"
    assert "第1段" in article_of(html).body_text


def test_new_columns_load_and_migrate_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute(SCHEMA_VERSION_DDL)
    for version, name, sql in MIGRATIONS[:-1]:
        con.execute(sql)
        con.execute("INSERT INTO schema_version (version, name) VALUES (?, ?)", [version, name])
    con.close()
    db = Database(path, lock_timeout=10)
    article = article_of(page(line="日期：2022年09月07日 来源：新华社"))
    run_id = start_run(db, "test", {})
    for _ in range(2):  # loaded twice, stored once
        load_articles(db, run_id, ArticleBatch(articles=[article]))
    with db.session() as session:
        assert session.execute("SELECT max(version) FROM schema_version").fetchone() == (
            LATEST_VERSION,
        )
        rows = session.execute(
            "SELECT published_date, published_precision, published_source, origin_source, "
            "timezone('Asia/Shanghai', published_at) FROM articles"
        ).fetchall()
    assert rows == [(date(2022, 9, 7), "day", "visible", "新华社", datetime(2022, 9, 7))]


def test_reextraction_fills_the_new_columns_of_an_old_row() -> None:
    url = "https://news.example.cn/a/1.html"
    old = article_of(page(line="发布时间：2022-09-07 17:26 来源：新华社")).model_copy(
        update={
            "published_at": datetime(2022, 9, 6, 16, 0, tzinfo=UTC),  # trafilatura's midnight
            "published_precision": None,
            "published_source": None,
            "published_date": None,
            "origin_source": None,
        }
    )
    extracted = extract_page(url, page(line="发布时间：2022-09-07 17:26 来源：新华社"))
    again = rebuild_body(old, extracted, SHANGHAI)
    assert again.published_at == datetime(2022, 9, 7, 9, 26, tzinfo=UTC)
    assert (again.published_source, again.origin_source) == ("visible", "新华社")
    kept = rebuild_body(
        old.model_copy(update={"published_at": datetime(2022, 9, 7, 9, 30, tzinfo=UTC)}),
        ExtractedPage(url=url, text=extracted.text),
        SHANGHAI,
    )
    assert (kept.published_source, kept.published_precision) == ("feed", "second")


def test_reextraction_clears_a_date_an_older_version_invented(tmp_path: Path) -> None:
    url = "https://news.example.cn/a/1.html"
    guessed = datetime(2022, 1, 1, 16, 0, tzinfo=UTC)  # a copyright year read as 1 January
    old = article_of(page(line="来源：新华社")).model_copy(
        update={
            "published_at": guessed,
            "published_precision": None,
            "published_source": None,
            "published_date": None,
        }
    )
    db = Database(tmp_path / "news.duckdb")
    run_id = start_run(db, "backfill", {})
    load_articles(db, run_id, ArticleBatch(articles=[old]))
    again = rebuild_body(old, extract_page(url, page(line="来源：新华社")), SHANGHAI)
    assert again.published_at is None  # the page states no date

    def stored() -> tuple[object, ...]:
        with db.session() as con:
            row = con.execute(
                "SELECT published_at, published_source, published_date FROM articles"
            ).fetchone()
        assert row is not None
        return tuple(row)

    # A plain load keeps a stored value over NULL (a feed that drops a field loses nothing)...
    load_articles(db, run_id, ArticleBatch(articles=[again]))
    assert stored()[0] == guessed
    # ...a re-extraction restates the dates: the invented one is gone.
    load_articles(db, run_id, ArticleBatch(articles=[again], restated_dates=True))
    assert stored() == (None, None, None)
