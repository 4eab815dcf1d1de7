"""`newsflow search`, `trend` and `reindex` in-process on real DuckDB files: output, bad input,
the index kept by loads (twice, and with changed text), a database from before the index, and
the stored macros from the `duckdb` shell."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from newsflow.cli.main import main
from newsflow.schemas.ddl import MIGRATIONS
from newsflow.schemas.models import ArticleBatch
from newsflow.tasks.search.bulk import rebuild_index
from newsflow.tasks.storage.articles import upsert_articles
from newsflow.tasks.storage.load import load_articles
from newsflow.tasks.storage.runs import start_run
from newsflow.tasks.storage.store import Database, migrate
from tests.search_corpus import corpus, load_corpus


@pytest.fixture(scope="module")
def db_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("search") / "news.duckdb"
    load_corpus(Database(path))
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_search_prints_ranked_rows_snippets_and_counts_per_source(
    db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "search", "稳定币 香港", "--db", str(db_path), "--limit", "2")
    assert code == 0
    assert "香港" in out and "稳定币" in out
    assert "2 of 3 matches · per source:" in out


def test_search_json_is_one_object_per_line_best_first(
    db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "search", "stablecoin", "--json", "--db", str(db_path))
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) >= 5
    assert set(rows[0]) == {"article_id", "title", "url", "published_at", "source", "score",
                            "snippet"}  # fmt: skip
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    assert all("stablecoin" in (r["title"] + r["snippet"]).lower() for r in rows)


def test_search_filters_by_source_and_days(
    db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, everything, _ = run(capsys, "search", "数字人民币", "--json", "--db", str(db_path))
    all_rows = [json.loads(line) for line in everything.splitlines()]
    source = all_rows[0]["source"]
    window = ["--since", "2024-04-01", "--until", "2024-04-30"]
    _, some, _ = run(capsys, "search", "数字人民币", "--json", "--source", source, *window,
                     "--db", str(db_path))  # fmt: skip
    rows = [json.loads(line) for line in some.splitlines()]
    assert rows and len(rows) < len(all_rows)
    assert {r["source"] for r in rows} == {source}
    assert all("2024-03-31T16" <= r["published_at"] < "2024-04-30T16" for r in rows)


@pytest.mark.parametrize(
    "query",
    [
        "",
        "   ",
        "the of and",
        "，。！？",
        '"unbalanced',
        "x" * 10_000,
        "中" * 10_000,
        "'; DROP TABLE articles; --",
        "%' OR ''='",
        '-"',
        "--",
        "\\x00\x1b[31m",
    ],
)
def test_bad_queries_give_one_line_or_nothing(
    db_path: Path, capsys: pytest.CaptureFixture[str], query: str
) -> None:
    code, out, err = run(capsys, "search", "--db", str(db_path), "--", query)
    assert "Traceback" not in out + err
    if code:
        assert err.startswith("error: ") and err.count("\n") == 1
    else:
        assert out.strip() == "no matches"
    with duckdb.connect(str(db_path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM articles").fetchone() == (93,)


def test_a_missing_database_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "typo.duckdb"
    for args in (["search", "x"], ["trend", "x"], ["reindex"]):
        code, _, err = run(capsys, *args, "--db", str(db))
        assert code == 1 and err.strip() == f"error: no database at {db}"
    assert not db.exists()


def test_trend_counts_articles_and_stories_per_period(
    db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "trend", "数字人民币", "stablecoin", "--by", "month", "--json",
                       "--db", str(db_path))  # fmt: skip
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    ecny = [r for r in rows if r["term"] == "数字人民币"]
    assert sum(r["articles"] for r in ecny) >= 10
    # The salary story is syndicated (dfcx-ecny-salary copies cls-ecny-salary) only when dedup
    # joins them; stories never exceed articles.
    assert all(r["stories"] <= r["articles"] for r in rows)
    assert all(r["period"].endswith("-01") for r in rows)
    code, out, _ = run(capsys, "trend", "数字人民币", "--by", "week", "--db", str(db_path))
    assert code == 0 and "per period" in out and any(c in out for c in "▁▂▃▄▅▆▇█")


def test_loads_keep_the_index_once_per_article_and_current(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = Database(tmp_path / "news.duckdb")
    load_corpus(db)
    load_corpus(db)  # loaded twice: still one index entry per article
    named = corpus()
    changed = named["typhoon-warning"].model_copy(
        update={"title": "Kangaroo sighting closes harbour"}
    )
    load_articles(db, start_run(db, "test", {}), ArticleBatch(articles=[changed]))
    with db.session() as con:
        docs = con.execute(
            "SELECT count(*), count(DISTINCT article_id) FROM search_docs"
        ).fetchone()
        assert docs == (93, 93)
        found = con.execute("SELECT title FROM search_articles('kangaroo')").fetchall()
        assert found == [("Kangaroo sighting closes harbour",)]
        orphans = con.execute(
            "SELECT count(*) FROM search_postings "
            "WHERE doc_id NOT IN (SELECT doc_id FROM search_docs)"
        ).fetchone()
        assert orphans == (0,)
    code, out, _ = run(capsys, "reindex", "--db", str(db.path))
    assert code == 0 and out.startswith("indexed 93 articles")


def test_a_database_from_before_the_index_indexes_on_first_search(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as con:
        migrate(con, [m for m in MIGRATIONS if m[0] < 9])
        upsert_articles(con, list(corpus().values()))
    code, out, _ = run(capsys, "search", "区块链先导区", "--json", "--db", str(path))
    assert code == 0
    assert json.loads(out.splitlines()[0])["title"].startswith("多地区块链先导区建设提速")
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM search_docs").fetchone() == (93,)


def test_an_index_without_positions_is_rebuilt_on_first_search(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "v9.duckdb"
    with duckdb.connect(str(path)) as con:  # migration 9's index: postings without positions
        migrate(con, [m for m in MIGRATIONS if m[0] < 10])
        upsert_articles(con, list(corpus().values()))
        con.execute(
            "INSERT INTO search_docs SELECT row_number() OVER (), article_id, 1, 0 FROM articles"
        )
        con.execute("INSERT INTO search_postings SELECT 1, doc_id, 1 FROM search_docs")
    code, out, _ = run(capsys, "search", '"区块链先导区"', "--json", "--db", str(path))
    assert code == 0
    assert json.loads(out.splitlines()[0])["title"].startswith("多地区块链先导区建设提速")
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM search_docs").fetchone() == (93,)
        assert con.execute("SELECT min(len(positions)) FROM search_postings").fetchone() == (1,)


def test_the_duckdb_shell_searches_with_the_stored_macro(db_path: Path) -> None:
    shell = shutil.which("duckdb", path=str(Path(sys.executable).parent))
    assert shell is not None, "no duckdb shell beside this Python: pip install -e ."
    done = subprocess.run(
        [shell, "-readonly", "-json", str(db_path), "-c",
         "SELECT title, snippet FROM search_articles('\"数字人民币\" 工资') LIMIT 3"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert len(rows) == 3 and all("数字人民币" in r["title"] + r["snippet"] for r in rows)
    assert "«数字人民币»" in rows[0]["snippet"]


def test_an_index_written_under_another_hash_is_rebuilt_on_first_search(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = Database(tmp_path / "news.duckdb")
    load_corpus(db)
    with db.session() as con:  # as a DuckDB whose hash() differs would have left it
        con.execute("UPDATE search_postings SET term_id = term_id + 1")
        con.execute("UPDATE search_state SET hash_probe = hash_probe + 1")
    code, out, _ = run(capsys, "search", "区块链先导区", "--json", "--db", str(db.path))
    assert code == 0
    assert json.loads(out)["title"].startswith("多地区块链先导区建设提速")


def test_a_rebuild_segments_in_worker_processes_and_gives_the_same_index(tmp_path: Path) -> None:
    db = Database(tmp_path / "news.duckdb")
    load_corpus(db)
    query = "SELECT article_id, round(score, 6) FROM search_matches('数字人民币 -长沙')"
    with db.session() as con:
        before = sorted(con.execute(query).fetchall())
    counts = rebuild_index(db, chunk_size=20, workers=2)  # 93 articles: five chunks, a pool
    assert counts.articles == 93
    with db.session() as con:
        assert sorted(con.execute(query).fetchall()) == before and before
