"""Ingest tags what it loads, with the lexicon its settings name."""

from __future__ import annotations

import duckdb
import pytest

from newsflow.demo.catalogue import demo_feeds_toml
from newsflow.demo.site import SiteServer
from newsflow.flows.ingest import ingest
from newsflow.schemas.lexicon import DEFAULT_LEXICON
from tests.conftest import make_settings

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.slow]


def test_ingest_tags_articles_with_the_configured_lexicon(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    tmp = tmp_path_factory.mktemp("tagged")
    lexicon = tmp / "lexicon.toml"
    extra = '[topics.mine]\nlabel = "mine"\nterms = ["区块链"]\n\n'
    text = DEFAULT_LEXICON.read_text(encoding="utf-8")
    at = text.index("[topics.blockchain]")
    lexicon.write_text(text[:at] + extra + text[at:], encoding="utf-8")
    settings = make_settings(tmp, lexicon_path=lexicon)
    with SiteServer() as site:
        settings.feeds_path.write_text(demo_feeds_toml(site.base_url), encoding="utf-8")
        ingest(settings=settings)
    con = duckdb.connect(str(settings.db_path), read_only=True)
    try:
        topics = dict(
            con.execute("SELECT topic, count(*) FROM article_topics GROUP BY topic").fetchall()
        )
        untagged = con.execute(
            "SELECT count(*) FROM articles WHERE body_text LIKE '%区块链%' AND article_id NOT IN "
            "(SELECT article_id FROM article_topics WHERE topic = 'mine')"
        ).fetchone()
    finally:
        con.close()
    assert topics["mine"] > 0 and topics["blockchain"] >= topics["mine"]
    assert untagged == (0,)
