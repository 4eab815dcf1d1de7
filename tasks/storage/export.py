"""Export: articles as Markdown posts with front matter, as Parquet, or as JSON lines.

A Markdown post carries the front matter of docs/ARCHITECTURE.md ("front matter": dates in ISO
8601 with the offset of the export's timezone, categories and tags as lists, the URL as
`permalink`, the other columns and the `extra` keys under their own names) and the body escaped
so that it renders back to the same text: `newsflow backfill --from-dir` reads an export into
the same rows. Parquet and JSON lines are DuckDB's own `COPY`.

Export writes only where it means to: every file is written under a temporary name made with
O_EXCL in the output folder and renamed over its final name, so a symlink planted at a
predictable name is replaced, never followed; and a post is named after its article id, which
must be 16 hex digits (a row edited into "../x" is refused before anything is written).
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import yaml

from newsflow.schemas.config import ExportRequest
from newsflow.schemas.errors import ConfigError
from newsflow.schemas.models import ARTICLE_ID_PATTERN, Article, DateWindow
from newsflow.tasks.sources.frontmatter import CONTENT_KEY_PREFIX, canonical_url_or_none
from newsflow.tasks.storage.articles import ARTICLE_COLUMNS
from newsflow.tasks.storage.query import read_articles, window_filter
from newsflow.tasks.storage.store import Database

LOGGER = logging.getLogger(__name__)

_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read without changing it: os.umask sets and returns the old mask

# Characters that mean something to CommonMark anywhere in a line, and at its start.
_MD_INLINE_RE = re.compile(r"([\\`*_\[\]<>&{}])")
_MD_LINE_START_RE = re.compile(r"^(?:(\d+)([.)])|([#>+\-=~|]))")


@dataclass(frozen=True)
class ExportResult:
    format: str
    count: int
    path: Path


def export_articles(db: Database, request: ExportRequest, tz: ZoneInfo) -> ExportResult:
    """Write the articles published on the request's days (all without days) to its folder."""
    where, params = window_filter(DateWindow.of_days(request.since, request.until, tz))
    try:
        request.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {request.out}: {exc}") from exc
    with db.session() as con:
        if request.format == "markdown":
            check_article_ids(con, where, params)
            count = write_posts(read_articles(con, where, params), request.out, tz)
            return ExportResult(request.format, count, request.out)
        target = request.out / f"articles.{request.format}"
        copy_format = "parquet" if request.format == "parquet" else "json"
        # JSON lines get timestamps as text in the session's timezone: make it UTC.
        con.execute("SET TimeZone = 'UTC'")
        with replacing(target) as temporary:
            row = con.execute(
                f"COPY (SELECT {', '.join(ARTICLE_COLUMNS)} FROM articles WHERE {where} "
                "ORDER BY published_at NULLS LAST, article_id) "
                f"TO '{_sql_string(str(temporary))}' (FORMAT {copy_format})",
                params,
            ).fetchone()
    return ExportResult(request.format, int(row[0]) if row else 0, target)


def check_article_ids(con: duckdb.DuckDBPyConnection, where: str, params: list[Any]) -> None:
    """ConfigError when a row to export has an article_id of another shape than
    article_id_for gives (the file was edited): post file names are made of it."""
    bad = con.execute(
        f"SELECT article_id FROM articles WHERE ({where}) "
        "AND NOT regexp_full_match(article_id, ?) LIMIT 1",
        [*params, ARTICLE_ID_PATTERN.strip("^$")],
    ).fetchone()
    if bad is not None:
        raise ConfigError(
            f"the database holds an article_id that is not 16 hex digits ({bad[0]!r}); "
            "nothing was exported"
        )


@contextmanager
def replacing(target: Path) -> Iterator[Path]:
    """A new file in target's folder, created exclusively under a name of its own, renamed
    over `target` when the block ends (and removed when it fails). A symlink or any file at
    `target` is replaced, not written through."""
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:  # a read-only folder or file system, a full disk
        raise ConfigError(f"cannot write in {target.parent}: {exc.strerror or exc}") from exc
    os.close(fd)
    temporary = Path(name)
    temporary.chmod(0o666 & ~_UMASK)  # as a plainly created file; mkstemp makes it 0600
    try:
        yield temporary
        temporary.replace(target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_posts(articles: Iterable[Article], out: Path, tz: ZoneInfo) -> int:
    count = 0
    for article in articles:
        with replacing(out / post_filename(article, tz)) as temporary:
            temporary.write_text(article_post(article, tz), encoding="utf-8")
        count += 1
    LOGGER.info("wrote %d posts to %s", count, out)
    return count


def post_filename(article: Article, tz: ZoneInfo) -> str:
    """Jekyll's `YYYY-MM-DD-name.md`, the article id as the name (titles need not be ASCII).
    The id's shape is checked again here: a file name never leads out of the folder."""
    if not re.fullmatch(ARTICLE_ID_PATTERN.strip("^$"), article.article_id):
        raise ConfigError(f"not an article id: {article.article_id!r}")
    day = article.published_at.astimezone(tz).date().isoformat() if article.published_at else None
    return f"{day or 'undated'}-{article.article_id}.md"


def article_post(article: Article, tz: ZoneInfo) -> str:
    front = yaml.safe_dump(
        post_front_matter(article, tz),
        allow_unicode=True,
        sort_keys=False,
        default_flow_style=False,
        width=1_000_000,  # a long title stays one line
    )
    return f"---\n{front}---\n\n{escape_markdown(article.body_text)}\n"


def post_front_matter(article: Article, tz: ZoneInfo) -> dict[str, Any]:
    """The front matter of an article: the documented keys (docs/ARCHITECTURE.md, "front
    matter"), then our other columns, then extra."""
    a = article
    front: dict[str, Any] = {"title": a.title}
    if a.published_at:
        front["date"] = a.published_at.astimezone(tz).isoformat()
    if a.updated_at:
        front["updated"] = a.updated_at.astimezone(tz).isoformat()
    optional = {
        "author": a.author,
        # Written when null too: the reader takes an explicit source as it is, and would
        # otherwise fall back to the author.
        "source": a.source,
        "categories": a.categories or None,
        "tags": a.tags or None,
        "image": a.image_url,
        "thumbnail": a.thumbnail_url,
        "comments": a.comments,
    }
    front |= {k: v for k, v in optional.items() if v is not None or k == "source"}
    if not a.url.startswith(CONTENT_KEY_PREFIX):
        front["permalink"] = a.url
        if a.canonical_url != canonical_url_or_none(a.url):
            front["canonical_url"] = a.canonical_url
    columns = {
        "guid": a.guid,
        "feed_url": a.feed_url,
        "language": a.language,
        "summary": a.summary,
        "body_source": a.body_source,
        "published_precision": a.published_precision,
        "published_source": a.published_source,
        "published_date": a.published_date,
        "origin_source": a.origin_source,
        "story_id": a.story_id,
        "duplicate_of": a.duplicate_of,
    }
    front |= {k: v for k, v in columns.items() if v is not None}
    for key, value in a.extra.items():
        front.setdefault(key, value)  # a column's key wins over an extra key of the same name
    return front


def escape_markdown(text: str) -> str:
    """Plain text (one paragraph a line) as Markdown that renders to the same text: every
    character CommonMark could read as markup backslash-escaped, paragraphs apart."""
    lines = []
    for line in text.split("\n"):
        line = _MD_INLINE_RE.sub(r"\\\1", line)
        line = _MD_LINE_START_RE.sub(
            lambda m: f"{m[1]}\\{m[2]}" if m[1] else f"\\{m[3]}", line, count=1
        )
        lines.append(line)
    return "\n\n".join(lines)


def _sql_string(value: str) -> str:
    return value.replace("'", "''")
