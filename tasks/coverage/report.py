"""The coverage report: one self-contained HTML page (inline CSS and SVG, no script, no network).

`gather_report` reads the coverage views into a `ReportData`; `render_report` turns that into
HTML; `write_report` does both for a database file. Chinese labels need a CJK font on the
reader's machine: the font stack names the common ones (Noto Sans CJK SC first).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from html import escape
from pathlib import Path

import duckdb

from newsflow.schemas.errors import ConfigError
from newsflow.schemas.lexicon import Lexicon
from newsflow.tasks.coverage.charts import PALETTE, column_chart, hbar_chart, number, share_bar
from newsflow.tasks.search.key_terms import KeyTerm, gather_key_terms, render_key_terms
from newsflow.tasks.search.query import ensure_index
from newsflow.tasks.storage.store import Database

LOGGER = logging.getLogger(__name__)

REPORT_FILE = "coverage-report.html"
# Weeks of the time series shown; older coverage stays in the views.
MAX_WEEKS = 52
CITY_LEVELS = ("prefecture", "municipality")
FONT_STACK = (
    '"Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "PingFang SC", '
    '"Hiragino Sans GB", "Microsoft YaHei", "WenQuanYi Micro Hei", sans-serif'
)


@dataclass
class ReportData:
    generated_at: datetime
    database: str
    articles: int = 0
    policy_articles: int = 0
    policy_stories: int = 0
    sources: int = 0
    first_day: date | None = None
    last_day: date | None = None
    syndicated: int = 0
    # Policy articles without a publication date: left out of the weekly series.
    undated: int = 0
    topic_labels: dict[str, str] = field(default_factory=dict)
    # topic → [(week start, articles)], every week of the range, zeros included
    weekly: dict[str, list[tuple[date, int]]] = field(default_factory=dict)
    topic_totals: list[tuple[str, int, int]] = field(default_factory=list)  # topic, art., stories
    by_source: list[tuple[str, int, int]] = field(default_factory=list)  # source, policy, all
    cities: list[tuple[str, str, int]] = field(default_factory=list)  # region, province, articles
    provinces: list[tuple[str, int]] = field(default_factory=list)
    docs: list[tuple[int, str, str, date | None, int, int]] = field(default_factory=list)
    orgs: list[tuple[str, str, int]] = field(default_factory=list)  # org, country, articles
    key_terms: list[KeyTerm] = field(default_factory=list)  # the lexicon's head terms


def gather_report(
    con: duckdb.DuckDBPyConnection,
    *,
    database: str = "",
    lexicon: Lexicon | None = None,
    top: int = 15,
) -> ReportData:
    """Everything the page shows, read from the coverage views and tag tables."""
    data = ReportData(generated_at=datetime.now(UTC), database=database)
    if lexicon:
        data.topic_labels = {t: c.label for t, c in lexicon.topics.items()}
        data.key_terms = gather_key_terms(con, lexicon)

    row = con.execute(
        "SELECT (SELECT count(*) FROM articles), count(*), count(DISTINCT story_id), "
        "count(DISTINCT source), min(day), max(day), count(*) FILTER (WHERE syndicated) "
        "FROM policy_articles"
    ).fetchone()
    if row:
        (
            data.articles,
            data.policy_articles,
            data.policy_stories,
            data.sources,
            data.first_day,
            data.last_day,
            data.syndicated,
        ) = row

    data.topic_totals = [
        (t, int(a), int(s))
        for t, a, s in con.execute(
            "SELECT t.topic, count(*), count(DISTINCT coalesce(a.story_id, a.article_id)) "
            "FROM article_topics t JOIN articles a USING (article_id) "
            "GROUP BY t.topic ORDER BY 2 DESC, 1"
        ).fetchall()
    ]
    data.weekly = _weekly(con, [t for t, _, _ in data.topic_totals])
    undated = con.execute("SELECT sum(articles) FROM coverage_undated").fetchone()
    data.undated = int(undated[0] or 0) if undated else 0
    data.by_source = [
        (s, int(p), int(a))
        for s, p, a in con.execute(
            "SELECT coalesce(source, '(unknown)'), policy_articles, articles "
            "FROM coverage_by_source WHERE policy_articles > 0 "
            "ORDER BY policy_articles DESC, source LIMIT ?",
            [top],
        ).fetchall()
    ]
    data.cities = [
        (r, p, int(n))
        for r, p, n in con.execute(
            "SELECT region, province, count(*) FROM article_regions "
            "WHERE level IN (SELECT unnest(?::VARCHAR[])) "
            "AND article_id IN (SELECT article_id FROM article_topics) "
            "GROUP BY ALL ORDER BY 3 DESC, 1 LIMIT ?",
            [list(CITY_LEVELS), top],
        ).fetchall()
    ]
    data.provinces = [
        (p, int(n))
        for p, n in con.execute(
            "SELECT province, count(DISTINCT article_id) FROM article_regions "
            "WHERE article_id IN (SELECT article_id FROM article_topics) "
            "GROUP BY ALL ORDER BY 2 DESC, 1 LIMIT ?",
            [top],
        ).fetchall()
    ]
    data.docs = [
        (int(rank), title, kind, first, int(n), int(s))
        for rank, title, kind, first, n, s in con.execute(
            "SELECT rank, doc_title, doc_type, "
            "CAST(timezone('Asia/Shanghai', first_mentioned) AS DATE), articles, sources "
            "FROM policy_docs_ranked LIMIT ?",
            [top],
        ).fetchall()
    ]
    data.orgs = [
        (o, c, int(n))
        for o, c, n in con.execute(
            "SELECT org, country, count(*) FROM article_orgs "
            "WHERE article_id IN (SELECT article_id FROM article_topics) "
            "GROUP BY ALL ORDER BY 3 DESC, 1 LIMIT ?",
            [top],
        ).fetchall()
    ]
    return data


def _weekly(con: duckdb.DuckDBPyConnection, topics: list[str]) -> dict[str, list[tuple[date, int]]]:
    rows = con.execute(
        "SELECT topic, CAST(date_trunc('week', day) AS DATE), sum(articles) "
        "FROM coverage_daily GROUP BY ALL"
    ).fetchall()
    if not rows:
        return {}
    counts = {(t, w): int(n) for t, w, n in rows}
    last = max(w for _, w, _ in rows)
    first = max(min(w for _, w, _ in rows), last - timedelta(weeks=MAX_WEEKS - 1))
    weeks = [first + timedelta(weeks=i) for i in range((last - first).days // 7 + 1)]
    return {t: [(w, counts.get((t, w), 0)) for w in weeks] for t in topics}


def render_report(data: ReportData) -> str:
    """The whole page as one HTML string."""
    label = data.topic_labels.get
    share = data.syndicated / data.policy_articles if data.policy_articles else 0.0
    span = (
        f"{data.first_day:%Y-%m-%d} – {data.last_day:%Y-%m-%d}"
        if data.first_day and data.last_day
        else "—"
    )
    tiles = [
        ("政策相关报道 Policy articles", number(data.policy_articles)),
        ("事件 Stories", number(data.policy_stories)),
        ("来源 Sources", number(data.sources)),
        ("全部文章 All articles", number(data.articles)),
        ("转载占比 Syndicated", f"{share:.0%}"),
        ("时间范围 Period (Asia/Shanghai)", span),
        ("未标日期（未计入周序列）Undated, left out of the weekly series", number(data.undated)),
    ]
    colors = {t: PALETTE[i % len(PALETTE)] for i, (t, _, _) in enumerate(data.topic_totals)}

    trend = "".join(
        f'<figure class="small"><figcaption style="color:{colors[t]}">'
        f"{escape(label(t, t))} · {number(sum(n for _, n in points))}</figcaption>"
        + column_chart(
            [(f"{w:%Y-%m-%d}", n) for w, n in points],
            color=colors[t],
            aria_label=f"{label(t, t)} per week",
        )
        + "</figure>"
        for t, points in data.weekly.items()
    )
    topics_chart = hbar_chart(
        [(label(t, t), a, f"{s} stories") for t, a, s in data.topic_totals],
        color=PALETTE[0],
        label_width=380,
        aria_label="articles per topic",
    )
    sources_chart = hbar_chart(
        [(s, p, f"{p / a:.0%} of {a}") for s, p, a in data.by_source],
        color=PALETTE[2],
        aria_label="policy articles per source",
    )
    cities_chart = hbar_chart(
        [(f"{r}（{p}）" if r != p else r, n, "") for r, p, n in data.cities],
        color=PALETTE[1],
        width=540,
        label_width=210,
        aria_label="policy articles per city",
    )
    provinces_chart = hbar_chart(
        [(p, n, "") for p, n in data.provinces],
        color=PALETTE[3],
        width=540,
        label_width=170,
        aria_label="policy articles per province",
    )
    orgs_chart = hbar_chart(
        [(o, n, c) for o, c, n in data.orgs],
        color=PALETTE[4],
        aria_label="policy articles per organization",
    )
    syndication_chart = share_bar(
        [
            ("转载 Syndicated copies", data.syndicated, PALETTE[6]),
            ("单独报道 Single copies", data.policy_articles - data.syndicated, PALETTE[7]),
        ],
        aria_label="share of syndicated copies",
    )
    top_doc = max((n for *_, n, _ in data.docs), default=1)
    doc_rows = "".join(
        f"<tr><td class=num>{rank}</td><td>《{escape(title)}》</td><td>{escape(kind)}</td>"
        f"<td>{first or ''}</td><td class=num>{n}"
        f'<span class="inline-bar" style="width:{80 * n / top_doc:.0f}px"></span></td>'
        f"<td class=num>{s}</td></tr>"
        for rank, title, kind, first, n, s in data.docs
    )
    docs_table = (
        "<table><thead><tr><th>#</th><th>文件 Document</th><th>类型 Type</th>"
        "<th>首次提及 First mentioned</th><th>文章 Articles</th><th>来源 Sources</th></tr>"
        f"</thead><tbody>{doc_rows}</tbody></table>"
        if data.docs
        else '<p class="empty">No data yet.</p>'
    )
    tiles_html = "".join(
        f'<div class="tile"><div class="tile-value">{escape(v)}</div>'
        f'<div class="tile-label">{escape(k)}</div></div>'
        for k, v in tiles
    )
    return _PAGE.format(
        font=FONT_STACK,
        generated=f"{data.generated_at:%Y-%m-%d %H:%M} UTC",
        database=escape(data.database),
        tiles=tiles_html,
        trend=trend or '<p class="empty">No data yet.</p>',
        key_terms=render_key_terms(data.key_terms),
        topics=topics_chart,
        sources=sources_chart,
        cities=cities_chart,
        provinces=provinces_chart,
        docs=docs_table,
        orgs=orgs_chart,
        syndication=syndication_chart,
        syndicated=number(data.syndicated),
        policy=number(data.policy_articles),
    )


def write_report(db: Database, out_dir: Path, lexicon: Lexicon | None = None) -> Path:
    """Write the report for the database into out_dir; returns the file written."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create report directory {out_dir}: {exc}") from exc
    ensure_index(db)  # a database from before the index: indexed once, as on first search
    with db.session() as con:
        data = gather_report(con, database=str(db.path), lexicon=lexicon)
    path = out_dir / REPORT_FILE
    try:
        path.write_text(render_report(data), encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write report {path}: {exc}") from exc
    return path


_PAGE = """<!DOCTYPE html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>区块链政策报道分析 · Blockchain-policy coverage</title>
<style>
  body {{ font-family: {font}; margin: 0 auto; max-width: 1180px; padding: 24px 32px;
         color: #111827; background: #fff; line-height: 1.5; }}
  h1 {{ font-size: 26px; margin: 0 0 4px; }}
  h2 {{ font-size: 19px; margin: 36px 0 4px; border-bottom: 1px solid #e5e7eb;
        padding-bottom: 4px; }}
  p.note, .meta {{ color: #6b7280; font-size: 13px; margin: 2px 0 12px; }}
  .tiles {{ display: flex; flex-wrap: wrap; gap: 12px; margin: 20px 0; }}
  .tile {{ border: 1px solid #e5e7eb; border-radius: 8px; padding: 10px 16px;
           min-width: 150px; }}
  .tile-value {{ font-size: 22px; font-weight: 700; }}
  .tile-label {{ font-size: 12px; color: #6b7280; }}
  .grid {{ display: flex; flex-wrap: wrap; gap: 8px 24px; }}
  figure.small {{ margin: 0; }}
  figcaption {{ font-size: 14px; font-weight: 600; }}
  .columns {{ display: flex; flex-wrap: wrap; gap: 24px; }}
  svg.chart {{ font-family: {font}; display: block; }}
  svg .label {{ font-size: 13px; fill: #111827; }}
  svg .value {{ font-size: 12px; fill: #4b5563; }}
  svg .tick {{ font-size: 11px; fill: #6b7280; }}
  svg .axis {{ stroke: #9ca3af; stroke-width: 1; }}
  table {{ border-collapse: collapse; font-size: 13px; width: 100%; }}
  th, td {{ text-align: left; padding: 5px 8px; border-bottom: 1px solid #f3f4f6; }}
  td.num {{ text-align: right; white-space: nowrap; }}
  .inline-bar {{ display: inline-block; height: 10px; background: #7c3aed;
                 margin-left: 6px; vertical-align: middle; border-radius: 2px; }}
  .empty {{ color: #9ca3af; }}
</style>
</head>
<body>
<h1>区块链政策报道分析 <span style="font-weight:400">Blockchain-policy coverage</span></h1>
<div class="meta">生成于 Generated {generated} · 数据库 Database {database}</div>
<div class="tiles">{tiles}</div>

<h2>各主题每周报道 Coverage per topic, by week</h2>
<p class="note">Articles tagged with each topic per week (weeks start on Monday, Asia/Shanghai).
An article can carry several topics.</p>
<div class="grid">{trend}</div>

<h2>关键词 Key terms, by week</h2>
<p class="note">Each topic's head term, searched as a phrase in titles and bodies: articles
per week, and the stories that match it best (first published · matching copies).</p>
<div class="grid">{key_terms}</div>

<h2>主题 Topics</h2>
{topics}

<h2>来源 Sources</h2>
<p class="note">Policy articles per source, and their share of everything the source published.</p>
{sources}

<h2>地区 Regions</h2>
<p class="note">Policy articles that name a place: cities (prefecture-level and municipalities),
and provinces, where a city counts for its province.</p>
<div class="columns"><div><h3>城市 Cities</h3>{cities}</div>
<div><h3>省级 Provinces</h3>{provinces}</div></div>

<h2>政策文件 Policy documents</h2>
<p class="note">Titles named in 《…》, most widely covered first; newspapers left out.</p>
{docs}

<h2>机构 Organizations</h2>
{orgs}

<h2>转载 Syndication</h2>
<p class="note">{syndicated} of {policy} policy articles are syndicated copies: exact copies of
another article, or members of a story (near-duplicate cluster) with more than one article.</p>
{syndication}
</body>
</html>
"""
