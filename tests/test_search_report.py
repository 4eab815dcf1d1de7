"""The coverage report's key-terms section: the lexicon's head terms over time, with the
stories that match them best, from the search index."""

from __future__ import annotations

from pathlib import Path

from newsflow.schemas.lexicon import load_lexicon
from newsflow.tasks.coverage.report import write_report
from newsflow.tasks.search.key_terms import key_terms
from newsflow.tasks.storage.store import Database
from tests.search_corpus import load_corpus


def test_the_report_charts_key_terms_and_their_top_stories(tmp_path: Path) -> None:
    db = Database(tmp_path / "news.duckdb")
    load_corpus(db)
    lexicon = load_lexicon()
    assert "数字人民币" in key_terms(lexicon)
    page = write_report(Database(db.path, read_only=True), tmp_path / "out", lexicon)
    html = page.read_text(encoding="utf-8")
    section = html.split("Key terms, by week")[1].split("<h2>")[0]
    assert 'aria-label="articles matching 数字人民币 per week"' in section
    # The best e-CNY story and the pilot-zone story are listed under their terms.
    assert "多地区块链先导区建设提速" in section
    assert section.count("<ol>") == len(key_terms(lexicon))
