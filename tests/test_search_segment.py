"""Index terms: Python's segmenter (the index) and the SQL macros (queries) agree, term for
term, on every text of the search corpus; Latin names and numbers stay whole in Chinese."""

from __future__ import annotations

import duckdb
import pytest

from newsflow.tasks.search.segment import stem, tokens
from newsflow.tasks.storage.store import migrate
from tests.search_corpus import corpus


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    migrate(con)
    return con


def test_sql_and_python_segment_the_corpus_alike(con: duckdb.DuckDBPyConnection) -> None:
    texts = [t for a in corpus().values() for t in (a.title, a.body_text)]
    texts += ["Ｗｅｂ３ naïve façade MiCA's 2.5% e-CNY—USDT", "ＵＳＤＴ", "Straße ß", ""]
    for text in texts:
        row = con.execute("SELECT search_tokens(?)", [text]).fetchone()
        assert row is not None and row[0] == tokens(text), text[:80]


def test_latin_names_and_numbers_stay_whole_inside_chinese() -> None:
    assert tokens("欧盟MiCA规定USDT与e-CNY按3.5%计") == [
        "欧盟", "mica", "规定", "usdt", "与", "e-cny", "按", "3.5", "计",
    ]  # fmt: skip


def test_chinese_runs_become_bigrams() -> None:
    assert tokens("数字人民币，链") == ["数字", "字人", "人民", "民币", "链"]


@pytest.mark.parametrize(
    ("word", "stemmed"),
    [("policies", "policy"), ("exchanges", "exchange"), ("stablecoins", "stablecoin"),
     ("status", "status"), ("class", "class"), ("gas", "gas"), ("usdt", "usdt")],
)  # fmt: skip
def test_plurals_are_stemmed_lightly(word: str, stemmed: str) -> None:
    assert stem(word) == stemmed


def test_english_stopwords_are_dropped() -> None:
    assert tokens("The rules of the exchange") == ["rule", "exchange"]
