"""Export: Markdown posts that read back into the same rows, Parquet and JSON lines."""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pytest

from newsflow.demo.site import SiteServer
from newsflow.flows.backfill import backfill
from newsflow.schemas.config import BackfillRequest, ExportRequest, Settings
from newsflow.schemas.errors import ConfigError
from newsflow.schemas.models import Article, ArticleBatch, article_id_for
from newsflow.tasks.extraction.normalize import content_hash
from newsflow.tasks.sources.frontmatter import PostSite, post_text, read_post
from newsflow.tasks.storage.export import (
    escape_markdown,
    export_articles,
    post_filename,
    post_front_matter,
)
from newsflow.tasks.storage.load import load_articles
from newsflow.tasks.storage.query import read_articles
from newsflow.tasks.storage.runs import start_run
from newsflow.tasks.storage.store import Database
from tests.conftest import make_settings
from tests.test_archive_sitemap import SITE_DIR, serve_site
from tests.test_backfill import POSTS

NASTY = [
    "# not a heading",
    "- not a list; + nor this; * nor this",
    "1. not a list, 2023) neither",
    "*stars* and _under_ and `code` and ~~strike~~",
    "<b>tag</b> & &amp; &copy; entities",
    "[link](http://x.example) ![img](y.png) [ref]: /url",
    "back\\slash at the end \\",
    "{{ liquid }} {% tag %} {{< shortcode >}}",
    "> quote",
    "---",
    "***",
    "= equals",
    "~~~",
    "| a | b |",
    "http://example.com/a_b_c?x=1&y=2",
    "中文，**粗体**，《书名》。",
]


def test_escaped_text_renders_back_to_itself() -> None:
    text = "\n".join(NASTY)
    assert post_text(escape_markdown(text)) == text
    for line in NASTY:
        assert post_text(escape_markdown(line)) == line, line


def crafted(n: int, **kw: Any) -> Article:
    url = kw.pop("url", f"https://wire.example.com/story/{n}?utm_source=rss")
    body = kw.pop("body_text", f"Paragraph {n}.\n" + "\n".join(NASTY))
    values: dict[str, Any] = {
        "article_id": article_id_for(
            kw.get("canonical_url", f"https://wire.example.com/story/{n}")
        ),
        "url": url,
        "canonical_url": f"https://wire.example.com/story/{n}",
        "guid": f"tag:wire.example.com,2024:{n}",
        "feed_url": "https://wire.example.com/rss",
        "source": "Example Wire",
        "title": f"yes: a title that YAML would misread {n}",
        "author": "A. Writer, B. Writer",
        "published_at": datetime(2024, 3, n, 1, 2, 3, 456789, tzinfo=UTC),
        # As the metadata stage records a feed's date; the export carries these back.
        "published_precision": "second",
        "published_source": "feed",
        "published_date": date(2024, 3, n),
        "origin_source": "新华社",
        "updated_at": datetime(2024, 3, n, 5, 0, tzinfo=UTC),
        "categories": ["policy", "监管"],
        "tags": ["2024", "true"],
        "image_url": "https://cdn.example.com/i.png",
        "thumbnail_url": "https://cdn.example.com/t.png",
        "comments": True,
        "language": "en",
        "summary": "  A summary\nover two lines  ",
        "body_text": body,
        "body_source": "page",
        "content_hash": content_hash(body),
        "story_id": f"story-{n}",
        "extra": {"layout": "post", "nested": {"a": [1, "2"], "when": "2024-03-01"}},
    }
    values.update(kw)
    return Article(**values)


def load(settings: Settings, articles: list[Article]) -> None:
    db = Database(settings.db_path)
    load_articles(db, start_run(db, "test", {}), ArticleBatch(articles=articles))


def rows(settings: Settings) -> dict[str, dict[str, Any]]:
    with Database(settings.db_path).session() as con:
        return {
            a.article_id: a.model_dump(mode="json", exclude={"first_seen_at", "last_seen_at"})
            for a in read_articles(con, "TRUE", [])
        }


@pytest.mark.usefixtures("prefect_harness")
def test_markdown_export_reads_back_into_the_same_rows(tmp_path: Path) -> None:
    source = make_settings(tmp_path / "a")
    with SiteServer(SITE_DIR) as site:
        serve_site(site)
        feeds = tmp_path / "feeds.toml"
        feeds.write_text(f'[[feeds]]\nurl = "{site.url("feed.xml")}"\n', encoding="utf-8")
        backfill(settings=source, request=BackfillRequest(feeds=feeds, from_dir=POSTS))
    original = crafted(1)
    copy = crafted(
        2,
        body_text=original.body_text,
        # canonical_url is not the canonical form of url (a redirect): it is exported
        url="https://mirror.example.org/copy/2",
        canonical_url="https://wire.example.com/story/2",
        article_id=article_id_for("https://wire.example.com/story/2"),
    )
    bare = crafted(
        3,
        source=None,
        summary=None,
        comments=False,
        categories=[],
        tags=[],
        extra={},
        story_id=None,
        body_text="",
        content_hash="",
    )
    load(source, [original, copy, bare])
    before = rows(source)
    assert before[copy.article_id]["duplicate_of"] == original.article_id
    assert len(before) == 4 + 7 + 3  # the feed, the posts (bad-date.md undated), crafted

    out = tmp_path / "export"
    result = export_articles(
        Database(source.db_path), ExportRequest(format="markdown", out=out), source.tz
    )
    assert result.count == len(before) == len(list(out.glob("*.md")))

    target = make_settings(tmp_path / "b")
    summary = backfill(settings=target, request=BackfillRequest(from_dir=out))
    assert (summary.counts.articles_new, summary.refused) == (len(before), 0)
    assert rows(target) == before
    again = backfill(settings=target, request=BackfillRequest(from_dir=out))
    assert (again.counts.articles_new, again.counts.articles_updated) == (0, 0)


def test_front_matter_of_an_article(tmp_path: Path) -> None:
    from zoneinfo import ZoneInfo

    front = post_front_matter(crafted(4), ZoneInfo("Asia/Shanghai"))
    assert list(front)[:12] == [
        "title",
        "date",
        "updated",
        "author",
        "source",
        "categories",
        "tags",
        "image",
        "thumbnail",
        "comments",
        "permalink",
        "guid",
    ]
    assert front["date"] == "2024-03-04T09:02:03.456789+08:00"
    assert front["permalink"] == "https://wire.example.com/story/4?utm_source=rss"
    assert "canonical_url" not in front  # it follows from the permalink
    assert front["layout"] == "post"


def test_export_window_and_file_names(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    load(settings, [crafted(n) for n in (1, 2, 3)])
    request = ExportRequest(format="markdown", out=tmp_path / "out", since=date(2024, 3, 2))
    export_articles(Database(settings.db_path), request, settings.tz)
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    ids = [crafted(n).article_id for n in (2, 3)]
    assert files == [f"2024-03-0{n}-{i}.md" for n, i in zip((2, 3), ids, strict=True)]
    post = read_post(tmp_path / "out" / files[0], PostSite(settings.tz))
    assert post is not None and post.title == crafted(2).title


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_parquet_and_jsonl(tmp_path: Path, fmt: str) -> None:
    settings = make_settings(tmp_path)
    load(settings, [crafted(n) for n in (1, 2, 3)])
    request = ExportRequest(
        format=fmt, out=tmp_path / "out", since=date(2024, 3, 2), until=date(2024, 3, 2)
    )
    result = export_articles(Database(settings.db_path), request, settings.tz)
    assert result.count == 1
    assert result.path == tmp_path / "out" / f"articles.{fmt}"
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    reader = "read_parquet" if fmt == "parquet" else "read_json_auto"
    ((title, published, categories),) = con.execute(
        f"SELECT title, published_at, categories FROM {reader}(?)", [str(result.path)]
    ).fetchall()
    assert title == crafted(2).title
    assert categories == ["policy", "监管"]
    if fmt == "jsonl":
        line = json.loads(result.path.read_text(encoding="utf-8").splitlines()[0])
        assert line["published_at"].startswith("2024-03-02 01:02:03.456789+00")
        assert line["extra"]["nested"] == {"a": [1, "2"], "when": "2024-03-01"}
    else:
        assert published == datetime(2024, 3, 2, 1, 2, 3, 456789, tzinfo=UTC)


@pytest.mark.parametrize("fmt", ["markdown", "parquet", "jsonl"])
def test_export_replaces_a_symlink_instead_of_writing_through_it(tmp_path: Path, fmt: str) -> None:
    settings = make_settings(tmp_path)
    article = crafted(1)
    load(settings, [article])
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me", encoding="utf-8")
    name = post_filename(article, settings.tz) if fmt == "markdown" else f"articles.{fmt}"
    (out / name).symlink_to(victim)
    result = export_articles(
        Database(settings.db_path), ExportRequest(format=fmt, out=out), settings.tz
    )
    assert result.count == 1
    assert victim.read_text(encoding="utf-8") == "keep me"
    assert not (out / name).is_symlink() and (out / name).stat().st_size > 0
    assert sorted(p.name for p in out.iterdir()) == [name]  # no temporary file left
    assert (out / name).stat().st_mode & 0o777 == 0o666 & ~current_umask()


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_a_stored_article_id_shaped_like_a_path_is_refused(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    load(settings, [crafted(1), crafted(2)])
    with duckdb.connect(str(settings.db_path)) as con:
        con.execute(
            "UPDATE articles SET article_id = '../../escaped' WHERE article_id = ?",
            [crafted(2).article_id],
        )
    out = tmp_path / "deep" / "out"
    with pytest.raises(ConfigError, match=r"not 16 hex digits.*escaped"):
        export_articles(
            Database(settings.db_path), ExportRequest(format="markdown", out=out), settings.tz
        )
    assert list(out.iterdir()) == []
    assert not (tmp_path / "escaped.md").exists() and list(tmp_path.rglob("*escaped*")) == []


def test_post_filename_refuses_an_id_of_another_shape() -> None:
    article = crafted(1).model_copy(update={"article_id": "../x"})
    with pytest.raises(ConfigError, match="not an article id"):
        post_filename(article, ZoneInfo("UTC"))
