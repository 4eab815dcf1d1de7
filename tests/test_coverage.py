"""Coverage analysis end to end: measured quality, tags written by load_batch, retag, views,
migrations, the CLI commands, and the "done means" post."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from newsflow.cli.main import main
from newsflow.schemas.ddl import MIGRATIONS
from newsflow.schemas.lexicon import DEFAULT_LEXICON
from newsflow.schemas.models import Article, FeedBatch, FeedCheck, article_id_for
from newsflow.tasks.coverage.report import gather_report
from newsflow.tasks.coverage.tag import load_tagger
from newsflow.tasks.extraction.normalize import content_hash, html_to_text
from newsflow.tasks.storage.load import load_batch
from newsflow.tasks.storage.runs import start_run
from newsflow.tasks.storage.store import Database, migrate
from newsflow.tasks.storage.tags import retag_all
from tests.labelled import FEED, Labelled, load_labelled, read_labelled, split_front_matter

TAG_TABLES = ("article_topics", "article_regions", "article_policy_docs", "article_orgs")
HEXO_POST = Path(__file__).parent / "fixtures" / "coverage" / "hexo-pilot-zones.md"


@pytest.fixture(scope="module")
def labelled() -> list[Labelled]:
    return read_labelled()


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return Database(tmp_path / "news.duckdb", lock_timeout=10)


def precision_recall(pairs: list[tuple[set[str], set[str]]]) -> tuple[float, float]:
    """Micro-averaged over (article, label) pairs: (expected, found) per article."""
    tp = sum(len(e & f) for e, f in pairs)
    fp = sum(len(f - e) for e, f in pairs)
    fn = sum(len(e - f) for e, f in pairs)
    return tp / (tp + fp), tp / (tp + fn)


# --- quality on the labelled set -------------------------------------------------------------


def test_labelled_set_is_big_enough_and_has_negatives(labelled: list[Labelled]) -> None:
    assert len(labelled) >= 40
    assert {i.language for i in labelled} == {"zh", "en"}
    assert sum(not i.topics for i in labelled) >= 5
    assert sum(not i.regions for i in labelled) >= 5


def test_topic_and_region_precision_and_recall(labelled: list[Labelled]) -> None:
    tagger = load_tagger()
    tags = [tagger.tag(i.name, i.title, i.body) for i in labelled]
    topic_p, topic_r = precision_recall(
        [(i.topics, {t.topic for t in tag.topics}) for i, tag in zip(labelled, tags, strict=True)]
    )
    region_p, region_r = precision_recall(
        [
            (i.regions, {r.region for r in tag.regions})
            for i, tag in zip(labelled, tags, strict=True)
        ]
    )
    figures = f"topics P={topic_p:.3f} R={topic_r:.3f}; regions P={region_p:.3f} R={region_r:.3f}"
    assert min(topic_p, topic_r, region_p, region_r) >= 0.9, figures


def test_documents_and_orgs_where_labelled(labelled: list[Labelled]) -> None:
    tagger = load_tagger()
    for item in labelled:
        tags = tagger.tag(item.name, item.title, item.body)
        if item.docs is not None:
            assert [d.doc_title for d in tags.docs] == item.docs, item.name
        if item.orgs is not None:
            assert {o.org for o in tags.orgs} == item.orgs, item.name


# --- written by load_batch -------------------------------------------------------------------


def tag_rows(db: Database) -> dict[str, tuple[int, int]]:
    """(rows, distinct keys) per tag table."""
    keys = {
        "article_topics": "topic",
        "article_regions": "region",
        "article_policy_docs": "doc_title",
        "article_orgs": "org",
    }
    with db.session() as con:
        return {
            table: con.execute(
                f"SELECT count(*), count(DISTINCT (article_id, {key})) FROM {table}"
            ).fetchone()  # type: ignore[misc]
            for table, key in keys.items()
        }


def test_load_tags_new_articles_and_loading_twice_adds_nothing(
    db: Database, labelled: list[Labelled]
) -> None:
    load_labelled(db, labelled)
    first = tag_rows(db)
    load_labelled(db, labelled)
    assert tag_rows(db) == first
    for table, (rows, distinct) in first.items():
        assert rows == distinct > 0, table
    with db.session() as con:
        assert con.execute("SELECT count(DISTINCT article_id) FROM article_topics").fetchone() == (
            sum(bool(i.topics) for i in labelled),
        )


def test_updated_article_is_tagged_again(db: Database) -> None:
    url = "https://news.example/updated"
    run = start_run(db, "test", {})

    def batch(body: str) -> FeedBatch:
        article = Article(
            article_id=article_id_for(url),
            url=url,
            canonical_url=url,
            title="快讯",
            body_text=body,
            content_hash=content_hash(body),
        )
        check = FeedCheck(url=FEED, ok=True, status_code=200)
        return FeedBatch(feed_url=FEED, check=check, articles=[article])

    load_batch(db, run, batch("苏州发布区块链政策。"))
    load_batch(db, run, batch("杭州发布数字人民币政策。"))
    with db.session() as con:
        assert con.execute("SELECT topic FROM article_topics").fetchall() == [("digital_currency",)]
        assert con.execute("SELECT region FROM article_regions").fetchall() == [("杭州市",)]


def test_retag_applies_a_changed_lexicon(db: Database, tmp_path: Path) -> None:
    load_labelled(db, read_labelled())
    with db.session() as con:
        before = {r[0] for r in con.execute("SELECT topic FROM article_topics").fetchall()}
    assert "web3" in before
    lexicon = tmp_path / "lexicon.toml"
    text = DEFAULT_LEXICON.read_text(encoding="utf-8")
    # Drop the web3 topic, add one for government services.
    start = text.index("[topics.web3]")
    end = text.index("# Organizations:")
    egov = '[topics.egov]\nlabel = "政务"\nterms = ["政务服务", "government services"]\n\n'
    lexicon.write_text(text[:start] + egov + text[end:], encoding="utf-8")

    counts = retag_all(db, load_tagger(lexicon), chunk_size=7)
    assert counts.articles == len(read_labelled())
    with db.session() as con:
        after = {r[0] for r in con.execute("SELECT topic FROM article_topics").fetchall()}
        total = con.execute("SELECT count(*) FROM article_topics").fetchone()
    assert after == before - {"web3"} | {"egov"}
    assert total == (counts.topics,)


# --- views -----------------------------------------------------------------------------------


def test_views_count_stories_and_rank_documents(db: Database, labelled: list[Labelled]) -> None:
    load_labelled(db, labelled)
    with db.session() as con:
        syndicated = con.execute("SELECT count(*) FROM policy_articles WHERE syndicated").fetchone()
        daily = con.execute(
            "SELECT articles, stories FROM coverage_daily "
            "WHERE day = DATE '2024-05-02' AND topic = 'blockchain' ORDER BY source"
        ).fetchall()
        top = con.execute(
            "SELECT doc_title, articles, stories, sources, source_list "
            "FROM policy_docs_ranked WHERE rank = 1"
        ).fetchall()
        shanghai_day = con.execute(
            "SELECT day FROM policy_articles WHERE title LIKE '%Shenzhen and Suzhou%'"
        ).fetchone()
        by_source = con.execute(
            "SELECT policy_articles, articles FROM coverage_by_source WHERE source = '示例生活报'"
        ).fetchone()
    assert syndicated == (2,)  # the two copies of one story
    assert sum(a for a, _ in daily) == 2 and len(daily) == 2
    assert top == [
        (
            "合肥市区块链产业发展三年行动方案（2024—2026年）",
            2,
            1,
            2,
            ["示例财经", "示例通讯社"],
        )
    ]
    # Published 2024-04-02 07:30 +08:00, 2024-04-01 in UTC: the Shanghai day counts.
    assert shanghai_day == (datetime(2024, 4, 2).date(),)
    assert by_source == (0, 2)  # the sofa and the marble: no topic


def test_migration_3_lands_before_2_and_2_still_applies(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "gap.duckdb"))
    without_2 = [m for m in MIGRATIONS if m[0] != 2]
    assert migrate(con, without_2) == [m[0] for m in sorted(without_2)]
    later = [*without_2, (2, "a migration that landed later", "CREATE TABLE landed_later (x INT)")]
    assert migrate(con, later) == [2]
    assert con.execute("SELECT count(*) FROM landed_later").fetchone() == (0,)
    con.close()


def test_old_database_gains_the_coverage_tables(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    migrate(con, [m for m in MIGRATIONS if m[0] == 1])
    con.execute(
        "INSERT INTO articles (article_id, url, canonical_url, title, body_text, published_at, "
        "first_seen_at, last_seen_at) VALUES "
        "('a1', 'u', 'u', '区块链先导区落地苏州', '', TIMESTAMPTZ '2024-04-01 23:30:00+00', "
        "now(), now()), ('a2', 'v', 'v', '区块链先导区落地无锡', '', NULL, now(), now())"
    )
    con.close()
    db = Database(path)
    retag_all(db, load_tagger())
    with db.session() as con:
        assert con.execute("SELECT title FROM articles ORDER BY 1").fetchall() == [
            ("区块链先导区落地无锡",),
            ("区块链先导区落地苏州",),
        ]
        # The undated article is left out of the per-day series, and counted as such.
        assert con.execute(
            "SELECT day, region, province FROM coverage_by_region WHERE topic = 'blockchain'"
        ).fetchall() == [(date(2024, 4, 2), "苏州市", "江苏省")]
        assert con.execute("SELECT sum(articles) FROM coverage_undated").fetchone() == (1,)
        assert gather_report(con).undated == 1


# --- the CLI ---------------------------------------------------------------------------------


def test_cli_retag_and_report(
    db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    load_labelled(db, read_labelled()[:10])
    assert main(["retag", "--db", str(db.path), "-q"]) == 0
    assert "retagged 10 articles" in capsys.readouterr().out
    out_dir = tmp_path / "report"
    assert main(["report", "--db", str(db.path), "--out", str(out_dir)]) == 0
    assert (out_dir / "coverage-report.html").exists()
    assert str(out_dir / "coverage-report.html") in capsys.readouterr().out.replace("\n", "")


def test_cli_bad_lexicon_is_one_line_error(
    db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[topics", encoding="utf-8")
    assert main(["retag", "--db", str(db.path), "--lexicon", str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: lexicon") and "Traceback" not in err


# --- done means ------------------------------------------------------------------------------


def hexo_article(published: datetime) -> Article:
    meta, body = split_front_matter(HEXO_POST.read_text(encoding="utf-8").lstrip())
    url = "https://news.example/2024/05/13/pilot-zones"
    text = html_to_text(body)
    return Article(
        article_id=article_id_for(url),
        url=url,
        canonical_url=url,
        source=str(meta["author"]),
        title=str(meta["title"]),
        published_at=published,
        categories=list(meta["categories"]),  # type: ignore[call-overload]
        body_text=text,
        content_hash=content_hash(text),
    )


def test_pilot_zone_post_is_tagged_and_answers_last_month(db: Database) -> None:
    # Dated in the middle of last month (Asia/Shanghai), so "last month" finds it.
    first_of_month = datetime.now(UTC).replace(day=1, hour=12, minute=0, second=0, microsecond=0)
    article = hexo_article(first_of_month - timedelta(days=15))
    run = start_run(db, "test", {})
    check = FeedCheck(url=FEED, ok=True, status_code=200)
    load_batch(db, run, FeedBatch(feed_url=FEED, check=check, articles=[article]))

    with db.session() as con:
        topics = {r[0] for r in con.execute("SELECT topic FROM article_topics").fetchall()}
        regions = dict(con.execute("SELECT region, province FROM article_regions").fetchall())
        docs = {r[0]: r[1] for r in con.execute(
            "SELECT doc_title, doc_type FROM article_policy_docs").fetchall()}  # fmt: skip
        orgs = {r[0] for r in con.execute("SELECT org FROM article_orgs").fetchall()}
        cities = con.execute(
            """
            SELECT region, province, sum(articles) AS articles
            FROM coverage_by_region
            WHERE topic = 'blockchain' AND level IN ('prefecture', 'municipality')
              AND day >= date_trunc('month', current_date - INTERVAL 1 MONTH)
              AND day < date_trunc('month', current_date)
            GROUP BY region, province ORDER BY articles DESC, region
            """
        ).fetchall()
    assert {"blockchain", "pilot_zone"} <= topics
    assert {
        "杭州市": "浙江省",
        "成都市": "四川省",
        "合肥市": "安徽省",
        "青岛市": "山东省",
    }.items() <= regions.items()
    assert docs == {
        "杭州市区块链发展先导区建设实施方案（2024—2026年）": "方案",
        "成都市加快区块链产业发展若干措施": "措施",
        "关于印发〈合肥市区块链发展先导区建设方案〉的通知": "通知",
        "合肥市区块链发展先导区建设方案": "方案",
    }
    assert "工业和信息化部" in orgs
    assert {(r, p) for r, p, _ in cities} == {
        ("杭州市", "浙江省"),
        ("成都市", "四川省"),
        ("合肥市", "安徽省"),
        ("青岛市", "山东省"),
    }
