"""Dedup layers and story clustering, through the real load path into temporary DuckDB files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import pytest
from datasketch import MinHash

from newsflow.flows.ingest import duplicate_layers
from newsflow.schemas.ddl import MIGRATIONS
from newsflow.schemas.models import (
    Article,
    FeedBatch,
    FeedCheck,
    FeedEntry,
    RunCounts,
    article_id_for,
)
from newsflow.tasks.dedup.fingerprint import (
    MINHASH_SEED,
    NUM_PERM,
    fingerprint_articles,
    is_near_copy,
    minhash_signatures,
    shingle_sets,
    similarity,
    story_text,
)
from newsflow.tasks.dedup.known import lookup_known, split_known
from newsflow.tasks.extraction.normalize import canonical_url, content_hash
from newsflow.tasks.storage.load import load_batch
from newsflow.tasks.storage.runs import finish_run, start_run
from newsflow.tasks.storage.store import Database
from tests.dedup_set import Item, read_items

ITEMS = {item.name: item for item in read_items()}
T0 = datetime(2024, 3, 19, 7, 0, tzinfo=UTC)
SHANGHAI = ZoneInfo("Asia/Shanghai")


def article(
    url: str,
    body: str,
    *,
    title: str = "标题",
    source: str = "财联社",
    feed: str = "https://feeds.example/rss",
    published: datetime = T0,
    guid: str | None = None,
    duplicate_of: str | None = None,
) -> Article:
    canon = canonical_url(url)
    return Article(
        duplicate_of=duplicate_of,
        article_id=article_id_for(canon),
        url=url,
        canonical_url=canon,
        guid=guid or canon,
        feed_url=feed,
        source=source,
        title=title,
        published_at=published,
        body_text=body,
        content_hash=content_hash(body),
    )


def from_item(name: str, **overrides: object) -> Article:
    item: Item = ITEMS[name]
    values: dict[str, object] = {
        "title": item.title,
        "source": item.source,
        "feed": item.feed,
        "published": datetime.fromisoformat(item.published).replace(tzinfo=SHANGHAI),
    }
    values.update(overrides)
    return article(item.link, "\n".join(item.paragraphs), **values)  # type: ignore[arg-type]


def batch(articles: list[Article], feed: str = "https://feeds.example/rss") -> FeedBatch:
    return FeedBatch(
        feed_url=feed,
        check=FeedCheck(url=feed, ok=True, status_code=200, entries_seen=len(articles)),
        articles=articles,
    )


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return Database(tmp_path / "news.duckdb", lock_timeout=10)


def stories(db: Database) -> dict[str, tuple[str, str | None]]:
    """article_id → (story_id, duplicate_of)."""
    with db.session() as con:
        rows = con.execute("SELECT article_id, story_id, duplicate_of FROM articles").fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


# --- story text and shingles -----------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "来源：财联社",
        "责任编辑：陈晓",
        "编辑: 刘洋",
        "文｜张三",
        "（记者 黄磊）",
        "本报记者 王五 报道",
        "风险提示：本文不构成任何投资建议。",
        "By Jane Doe, Example Wire",
        "Reporting by Jane Doe; Editing by Mark Potter",
        "© 2024 The Ledger. All rights reserved.",
        "新闻网 版权所有 © 1997-2024",
        "未经授权不得转载",
        "点击阅读全文",
        "Read more: what the rule means for issuers",
        "2024-03-12 17:30",
    ],
)
def test_story_text_drops_lines_that_are_not_the_story(line: str) -> None:
    assert (
        story_text(f"央行今日发布公告。\n{line}\n试点范围扩大。") == "央行今日发布公告 试点范围扩大"
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("By the end of the year, rules apply.", "by the end of the year rules apply"),
        ("记者从运营机构获悉，首周交易额破二十亿元。", "记者从运营机构获悉 首周交易额破二十亿元"),
        ("财联社3月5日电，央行发布公告。（完）", "央行发布公告"),
        ("新华社北京3月19日电（记者 王明）两高联合发布解释。", "两高联合发布解释"),
        ("HONG KONG, March 5 (Example Wire) - The SEC said so.", "the sec said so"),
        ("Ｗｅｂ３　监管　ＳＥＣ", "web3 监管 sec"),  # NFKC: full-width letters and spaces
    ],
)  # fmt: skip
def test_story_text_keeps_the_story_and_drops_datelines(body: str, expected: str) -> None:
    assert story_text(body) == expected


def test_story_text_drops_a_line_repeating_the_headline() -> None:
    body = "数字人民币试点再扩容！\n2024-03-05 09:30\n央行发布公告。"
    assert story_text(body, title="数字人民币试点再扩容") == "央行发布公告"


def test_chinese_is_shingled_by_characters_other_scripts_by_words() -> None:
    chinese, english, mixed = shingle_sets(
        [
            story_text("数字人民币试点范围扩大"),
            "the sec sued two exchanges today",
            "央行数字人民币 web3 试点",
        ]
    )
    assert len(chinese) == len("数字人民币试点范围扩大") - 4 + 1  # character 4-grams
    assert len(english) == 6 - 3 + 1  # word 3-grams
    assert len(mixed) == 10 - 4 + 1  # mostly Han: a Latin word counts as one token
    # Whitespace tokens would make a Chinese sentence one token, and two sentences unrelated.
    assert len(shingle_sets([story_text("数字人民币试点范围扩大到全国")])[0]) > 8


def test_fingerprints_shingle_the_story_text() -> None:
    articles = [from_item(name) for name in ("zh-aml-2-wire-copy", "en-mica-2-wire-copy")]
    prints = fingerprint_articles(articles)
    expected = shingle_sets([story_text(a.body_text, a.title) for a in articles])
    for fp, shingles in zip(prints, expected, strict=True):
        assert fp.shingles is not None and np.array_equal(fp.shingles, shingles)
    # the body key ignores spacing and punctuation, not a changed word
    (a, b, c) = fingerprint_articles(
        [
            article("https://a.example/1", articles[0].body_text),
            article("https://a.example/2", articles[0].body_text.replace("，", " , ")),
            article("https://a.example/3", articles[0].body_text.replace("洗钱", "洗白")),
        ]
    )
    assert a.body_key == b.body_key != c.body_key


def test_signatures_are_datasketch_minhash() -> None:
    (shingles,) = shingle_sets([story_text("\n".join(ITEMS["zh-aml-1-original"].paragraphs))])
    reference = MinHash(num_perm=NUM_PERM, seed=MINHASH_SEED, scheme="affine32", hashfunc=int)
    reference.update_batch(shingles.tolist())
    assert np.array_equal(minhash_signatures([shingles])[0], reference.hashvalues)


def test_verification_separates_a_reprint_a_cut_and_another_report() -> None:
    original, reprint, cut, other = (
        fingerprint_articles([from_item(name)])[0].shingles
        for name in (
            "zh-aml-1-original",
            "zh-aml-3-edited-copy",
            "zh-hk-3-truncated-copy",
            "zh-aml-cases",
        )
    )
    hk_original = fingerprint_articles([from_item("zh-hk-1-original")])[0].shingles
    assert original is not None and reprint is not None and other is not None
    assert cut is not None and hk_original is not None
    assert is_near_copy(similarity(original, reprint))
    assert is_near_copy(similarity(cut, hk_original))
    assert similarity(cut, hk_original).jaccard < 0.5  # found by containment
    assert not is_near_copy(similarity(original, other))


def test_too_short_bodies_are_not_compared() -> None:
    (fp,) = fingerprint_articles([article("https://a.example/1", "图片新闻")])
    assert fp.shingles is None and fp.body_key is None and fp.buckets is None
    assert fp.title_key is not None


# --- the layers, through load_batch ---------------------------------------------------------


def test_url_and_guid_layers_drop_known_entries_before_download(db: Database) -> None:
    feed = "https://www.wire.example/rss/top"
    first = article("https://www.wire.example/a/1", ITEMS["en-uk-1-original"].paragraphs[0] * 3)
    first.guid = "wire-1"
    run = start_run(db, "test", {})
    load_batch(db, run, batch([first], feed))
    entries = [
        FeedEntry(feed_url=feed, guid="x", link="HTTPS://WWW.WIRE.EXAMPLE:443/a/1?utm_source=x#c"),
        FeedEntry(feed_url=feed, guid="wire-1", link="https://www.wire.example/moved/1"),
        FeedEntry(feed_url=feed, guid="wire-2", link="https://www.wire.example/a/2"),
    ]
    with db.session() as con:
        known = lookup_known(con, feed, entries)
    split = split_known(entries, known, SHANGHAI)
    assert [e.guid for e in split.fresh] == ["wire-2"]
    assert len(split.seen_again) == 1 and split.by_guid == 0  # the two name one article
    split = split_known(entries[1:], known, SHANGHAI)
    assert (len(split.seen_again), split.by_guid) == (1, 1)
    again = batch([], feed)
    again.seen_again, again.seen_again_by_guid = split.seen_again, split.by_guid
    counts = load_batch(db, run, again)
    assert (counts.dup_url, counts.dup_guid, counts.duplicates) == (0, 1, 1)


def test_title_layer_same_source_within_seven_days(db: Database) -> None:
    body = "\n".join(ITEMS["zh-ecny-1-original"].paragraphs)
    title = "数字人民币试点再扩容"
    run = start_run(db, "test", {})
    load_batch(db, run, batch([article("https://www.cls.example/d/1", body, title=title)]))
    counts = load_batch(
        db,
        run,
        batch(
            [
                # the mobile page: same outlet and title, the body cut short by the feed
                article("https://m.cls.example/d/1", body[:60], title=f"{title}！"),
                # another outlet with the same headline is not this layer's business
                article("https://portal.example/1", "另一篇。" * 20, title=title, source="门户"),
                # the outlet reuses the title a month later (a body too short to compare)
                article(
                    "https://www.cls.example/d/2",
                    body[:20],
                    title=title,
                    published=T0 + timedelta(days=30),
                ),
            ]
        ),
    )
    assert counts.dup_title == 1
    first = article_id_for("https://www.cls.example/d/1")
    assert stories(db)[article_id_for("https://m.cls.example/d/1")] == (first, first)
    assert stories(db)[article_id_for("https://portal.example/1")][1] is None
    assert stories(db)[article_id_for("https://www.cls.example/d/2")][1] is None


def test_title_layer_ignores_a_daily_title_over_different_bodies(db: Database) -> None:
    run = start_run(db, "test", {})
    roundups = [from_item(f"zh-roundup-{i}") for i in (1, 2, 3)]
    counts = load_batch(db, run, batch(roundups))
    assert (counts.dup_title, counts.dup_near) == (0, 0)
    assert len({story for story, _ in stories(db).values()}) == 3


def test_identical_story_text_points_at_the_earliest_copy(db: Database) -> None:
    text = "\n".join(ITEMS["zh-pilots-1-original"].paragraphs)
    run = start_run(db, "test", {})
    later = article(
        "https://b.example/1",
        f"来源：工信部\n{text}",
        title="工信部公布试点名单",
        source="B",
        published=T0 + timedelta(hours=2),
    )
    earlier = article("https://a.example/1", f"{text}\n责任编辑：孙悦", source="A", published=T0)
    counts = load_batch(db, run, batch([later, earlier]))  # the batch's order does not matter
    copy = article("https://c.example/1", text, source="C", published=T0)
    copy_counts = load_batch(db, run, batch([copy]))
    assert (counts.dup_body, copy_counts.dup_body) == (1, 1)
    found = stories(db)
    assert found[later.article_id] == (earlier.article_id, earlier.article_id)
    assert found[copy.article_id] == (earlier.article_id, earlier.article_id)
    assert found[earlier.article_id] == (earlier.article_id, None)


def test_chinese_reprint_joins_across_runs_and_other_reports_do_not(db: Database) -> None:
    original = from_item("zh-aml-1-original")
    run = start_run(db, "test", {})
    load_batch(db, run, batch([original]))
    run2 = start_run(db, "test", {})
    counts = load_batch(
        db,
        run2,
        batch(
            [
                from_item("zh-aml-3-edited-copy"),  # new headline and lead-in, 5% reworded
                from_item("zh-aml-cases"),  # the same policy, a different report
                from_item("zh-hk-1-original"),
            ]
        ),
    )
    assert (counts.dup_near, counts.dup_body, counts.dup_title) == (1, 0, 0)
    found = stories(db)
    reprint = from_item("zh-aml-3-edited-copy")
    assert found[reprint.article_id] == (original.article_id, None)
    assert found[from_item("zh-aml-cases").article_id][0] == from_item("zh-aml-cases").article_id


def test_english_syndicated_copies_share_a_story(db: Database) -> None:
    run = start_run(db, "test", {})
    names = ["en-mica-1-original", "en-mica-2-wire-copy", "en-mica-3-edited-copy"]
    load_batch(db, run, batch([from_item(n) for n in names] + [from_item("en-mica-deadline")]))
    found = stories(db)
    root = from_item("en-mica-1-original").article_id
    assert {found[from_item(n).article_id][0] for n in names} == {root}
    assert found[from_item("en-mica-deadline").article_id][0] != root


def test_load_twice_counts_distinct_and_keeps_stories(db: Database) -> None:
    names = [
        "zh-ecny-1-original",
        "zh-ecny-4-wire-copy",
        "zh-ecny-5-edited-copy",
        "zh-ecny-analysis",
    ]
    run = start_run(db, "test", {})
    first = load_batch(db, run, batch([from_item(n) for n in names]))
    before = stories(db)
    second = load_batch(db, run, batch([from_item(n) for n in names]))
    assert (first.articles_new, first.dup_near) == (4, 2)
    # The same articles again: unchanged, so URL duplicates; no layer looks at them again.
    assert (second.articles_new, second.articles_updated, second.duplicates) == (0, 0, 4)
    assert (second.dup_url, second.dup_near) == (4, 0)
    assert stories(db) == before
    with db.session() as con:
        for table in ("articles", "article_keys"):
            total, distinct = con.execute(
                f"SELECT count(*), count(DISTINCT article_id) FROM {table}"
            ).fetchone()  # type: ignore[misc]
            assert total == distinct == 4
        bands = con.execute(
            "SELECT count(*), count(DISTINCT (bucket, article_id)) FROM article_bands"
        )
        assert len(set(bands.fetchone())) == 1  # type: ignore[arg-type]


def test_stories_view_and_run_counts(db: Database) -> None:
    run = start_run(db, "test", {})
    counts = load_batch(
        db,
        run,
        batch(
            [
                from_item("zh-hk-1-original"),
                from_item("zh-hk-2-edited-copy"),
                from_item("zh-hk-3-truncated-copy"),
                from_item("zh-hk-applications"),
            ]
        ),
    )
    finish_run(db, run, counts)
    root = from_item("zh-hk-1-original").article_id
    with db.session() as con:
        row = con.execute(
            "SELECT articles, sources, list_sort(source_names), title, first_published_at "
            "FROM stories WHERE story_id = ?",
            [root],
        ).fetchone()
        runs = con.execute("SELECT duplicates, dup_near, dup_title FROM runs").fetchone()
        assert con.execute("SELECT count(*) FROM stories").fetchone() == (2,)
    assert row is not None
    assert row[:4] == (
        3,
        3,
        ["财经门户", "财联社", "链闻"],
        "香港证监会向两家虚拟资产交易平台发出牌照",
    )
    assert row[4] == datetime(2024, 4, 11, 14, 5, tzinfo=UTC)
    assert runs == (2, 2, 0)


def test_version_1_database_gets_stories(tmp_path: Path) -> None:
    path = tmp_path / "v1.duckdb"
    con = duckdb.connect(str(path))
    version, name, sql = MIGRATIONS[0]
    con.execute(sql)
    con.execute(
        "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, "
        "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    )
    con.execute("INSERT INTO schema_version (version, name) VALUES (?, ?)", [version, name])
    con.execute(
        "INSERT INTO articles (article_id, url, canonical_url, title, first_seen_at, "
        "last_seen_at) VALUES ('a1', 'https://a/1', 'https://a/1', 't', now(), now())"
    )
    con.close()
    db = Database(path)
    with db.session() as con:
        assert con.execute("SELECT story_id, articles FROM stories").fetchall() == [("a1", 1)]
        assert con.execute("SELECT dup_near FROM runs").fetchall() == []
    counts = load_batch(db, start_run(db, "test", {}), batch([from_item("zh-aml-1-original")]))
    assert counts.articles_new == 1


def test_run_summary_names_the_layers_that_found_duplicates() -> None:
    assert duplicate_layers(RunCounts(duplicates=7, dup_url=2, dup_near=5)) == " (url 2, near 5)"
    assert duplicate_layers(RunCounts()) == ""


@pytest.mark.parametrize("copy_first", [True, False], ids=["copy-first", "original-first"])
@pytest.mark.parametrize("one_batch", [True, False], ids=["one-batch", "two-batches"])
def test_a_copy_that_names_its_original_keeps_it_and_its_story(
    db: Database, copy_first: bool, one_batch: bool
) -> None:
    """A re-imported export: the copy arrives with duplicate_of set and the original's text,
    dated before it when it comes first (a batch is taken in order of publication)."""
    original = from_item("zh-pilots-1-original")
    copy = from_item(
        "zh-pilots-2-exact-copy",
        duplicate_of=original.article_id,
        published=original.published_at - timedelta(hours=1 if copy_first else -1),  # type: ignore[operator]
    )
    order = [copy, original] if copy_first else [original, copy]
    run = start_run(db, "test", {})
    for articles in [order] if one_batch else [[a] for a in order]:
        load_batch(db, run, batch([a.model_copy() for a in articles]))
    found = stories(db)
    assert found[original.article_id] == (original.article_id, None)
    assert found[copy.article_id] == (original.article_id, original.article_id)


def test_an_earlier_original_loaded_later_becomes_the_story(db: Database) -> None:
    """An aggregator's reprint reaches the store first; the original, published before it,
    arrives in a later run: the story takes the original's id, for the reprint too."""
    original = from_item("zh-aml-1-original")
    reprint, other = from_item("zh-aml-3-edited-copy"), from_item("zh-aml-2-wire-copy")
    run = start_run(db, "test", {})
    load_batch(db, run, batch([reprint.model_copy()]))
    load_batch(db, run, batch([original.model_copy()]))
    load_batch(db, run, batch([other.model_copy()]))
    found = stories(db)
    assert {found[a.article_id][0] for a in (original, reprint, other)} == {original.article_id}
    with db.session() as con:
        assert con.execute("SELECT story_id, articles, title FROM stories").fetchall() == [
            (original.article_id, 3, original.title)
        ]
