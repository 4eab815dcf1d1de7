"""The report's "key terms" section: each lexicon topic's head term searched as a phrase,
matching articles per week as a chart, and the best-matching stories under it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from html import escape

import duckdb

from newsflow.schemas.config import TrendRequest
from newsflow.schemas.lexicon import Lexicon
from newsflow.schemas.models import DateWindow
from newsflow.tasks.coverage.charts import PALETTE, column_chart, number
from newsflow.tasks.search.query import StoryHit, top_stories, trends

MAX_TERMS = 8
MAX_WEEKS = 52


@dataclass(frozen=True)
class KeyTerm:
    term: str
    weekly: list[tuple[date, int]]
    stories: list[StoryHit]


def key_terms(lexicon: Lexicon) -> list[str]:
    """Each topic's first term (its head word, as the lexicon lists them), at most MAX_TERMS."""
    return [config.terms[0] for config in lexicon.topics.values()][:MAX_TERMS]


def gather_key_terms(con: duckdb.DuckDBPyConnection, lexicon: Lexicon) -> list[KeyTerm]:
    terms = key_terms(lexicon)
    if not terms:
        return []
    # Each term as a phrase: "数字人民币" is the word, not its bigrams scattered.
    phrases = tuple(f'"{term}"' for term in terms)
    series = trends(con, TrendRequest(terms=phrases, by="week"), DateWindow())
    return [
        KeyTerm(
            term=term,
            weekly=[(p.period, p.articles) for p in trend.points][-MAX_WEEKS:],
            stories=top_stories(con, phrase),
        )
        for term, phrase, trend in zip(terms, phrases, series, strict=True)
    ]


def render_key_terms(found: list[KeyTerm]) -> str:
    """The section's figures: a weekly chart and the top stories per term."""
    if not any(k.stories for k in found):
        return '<p class="empty">No data yet.</p>'
    figures = []
    for i, k in enumerate(found):
        total = sum(n for _, n in k.weekly)
        stories = "".join(
            f"<li>{escape(s.title)} <span class=meta>"
            f"{s.first_published:%Y-%m-%d} · {s.articles}</span></li>"
            if s.first_published
            else f"<li>{escape(s.title)} <span class=meta>{s.articles}</span></li>"
            for s in k.stories
        )
        color = PALETTE[i % len(PALETTE)]
        chart = column_chart(
            [(f"{w:%Y-%m-%d}", n) for w, n in k.weekly],
            color=color,
            aria_label=f"articles matching {k.term} per week",
        )
        figures.append(
            f'<figure class="small"><figcaption style="color:{color}">{escape(k.term)} · '
            f"{number(total)}</figcaption>{chart}<ol>{stories}</ol></figure>"
        )
    return "".join(figures)
