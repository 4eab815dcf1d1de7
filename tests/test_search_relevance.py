"""Ranked search over the judged corpus (tests/fixtures/search/judged.toml): precision@10 and
the first result where one is named, through the stored `search_articles` macro."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import duckdb
import pytest

from newsflow.tasks.storage.store import Database
from tests.search_corpus import load_corpus

JUDGED: list[dict[str, Any]] = tomllib.loads(
    (Path(__file__).parent / "fixtures" / "search" / "judged.toml").read_text(encoding="utf-8")
)["query"]


def top_tens(con: duckdb.DuckDBPyConnection, names: dict[str, str]) -> dict[str, list[str]]:
    """Each judged query's top ten by `search_articles`, as article names (benchmarks/
    segmenters.py ranks its candidates with this too)."""
    return {
        j["q"]: [
            names[r[0]]
            for r in con.execute(
                "SELECT article_id FROM search_articles(?, max_results := 10)", [j["q"]]
            ).fetchall()
        ]
        for j in JUDGED
    }


@pytest.fixture(scope="module")
def ranked(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """Each judged query's top ten, as article names."""
    db = Database(tmp_path_factory.mktemp("judged") / "news.duckdb")
    names = load_corpus(db)
    with db.session() as con:
        return top_tens(con, names)


def precision_at_10(found: list[str], relevant: list[str]) -> float:
    top = found[:10]
    return sum(name in relevant for name in top) / len(top) if top else 0.0


def test_the_judged_set_is_about_thirty_queries_half_chinese() -> None:
    chinese = [j for j in JUDGED if any("\u4e00" <= c <= "\u9fff" for c in j["q"])]
    assert len(JUDGED) >= 30 and len(chinese) >= len(JUDGED) // 2


def test_mean_precision_at_10_is_at_least_0_8(ranked: dict[str, list[str]]) -> None:
    scores = {j["q"]: precision_at_10(ranked[j["q"]], j["relevant"]) for j in JUDGED}
    mean = sum(scores.values()) / len(scores)
    worst = sorted(scores.items(), key=lambda kv: kv[1])[:5]
    assert mean >= 0.8, f"mean precision@10 {mean:.2f}; lowest: {worst}"


def test_every_query_finds_a_relevant_article(ranked: dict[str, list[str]]) -> None:
    missed = [j["q"] for j in JUDGED if not set(ranked[j["q"]]) & set(j["relevant"])]
    assert not missed


@pytest.mark.parametrize("judged", [j for j in JUDGED if "first" in j], ids=lambda j: j["q"])
def test_the_seed_article_ranks_first(ranked: dict[str, list[str]], judged: dict[str, Any]) -> None:
    assert ranked[judged["q"]][:1] == [judged["first"]]


def test_exclusions_and_phrases_narrow_the_results(ranked: dict[str, list[str]]) -> None:
    assert "ledger-mica-stablecoins" in ranked["stablecoin"]
    assert "ledger-mica-stablecoins" not in ranked["stablecoin -MiCA"]
    assert not {"zh-02-changsha-ecny", "zh-37-xiongan-ecny"} & set(ranked["试点 -数字人民币"])
