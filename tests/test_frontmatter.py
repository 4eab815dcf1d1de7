"""Front-matter posts: fixtures with their expected rows, every date spelling, odd files."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from newsflow.schemas.errors import ConfigError, ItemError
from newsflow.schemas.models import Article
from newsflow.tasks.sources.frontmatter import (
    CONTENT_KEY_PREFIX,
    PostSite,
    find_posts,
    parse_front_matter,
    read_post,
    read_posts,
    read_site,
    split_front_matter,
)
from newsflow.tasks.sources.postbody import markdown_html, post_text

POSTS = Path(__file__).parent / "fixtures" / "posts"
SHANGHAI = ZoneInfo("Asia/Shanghai")
SITE = PostSite(tz=SHANGHAI)
EXPECTATIONS = sorted(POSTS.glob("*.json"))


def write(tmp_path: Path, text: str, name: str = "post.md") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def article_of(tmp_path: Path, front: str, tz: ZoneInfo = SHANGHAI) -> Article:
    post = read_post(write(tmp_path, f"---\n{front}\n---\nBody.\n"), PostSite(tz))
    assert post is not None
    return post


@pytest.mark.parametrize("expectation", EXPECTATIONS, ids=lambda p: p.stem)
def test_post_fixture_gives_its_expected_row(expectation: Path) -> None:
    expected = json.loads(expectation.read_text(encoding="utf-8"))
    post = expectation.with_suffix(".md")
    if "kind" in expected:
        with pytest.raises(ItemError) as exc:
            read_post(post, SITE)
        assert exc.value.kind == expected["kind"]
        return
    warnings: list[ItemError] = []
    article = read_post(post, SITE, warnings=warnings)
    if expected == {"post": False}:
        assert article is None
        return
    assert article is not None
    assert [w.kind for w in warnings] == expected.pop("warnings", [])
    got = article.model_dump(mode="json", exclude={"first_seen_at", "last_seen_at"})
    assert got == expected


def test_sample_dates_are_utc_to_the_second() -> None:
    hexo, jekyll = (read_post(POSTS / f"{n}-post.md", SITE) for n in ("hexo", "jekyll"))
    assert hexo is not None and jekyll is not None
    assert hexo.published_at == datetime(2022, 11, 15, 2, 5, tzinfo=UTC)
    assert jekyll.published_at == datetime(2023, 3, 2, 1, 30, tzinfo=UTC)


def test_crlf_bom_and_blank_lines_read_like_the_plain_file(tmp_path: Path) -> None:
    text = (POSTS / "jekyll-post.md").read_text(encoding="utf-8")
    path = tmp_path / "crlf.md"
    path.write_bytes(b"\xef\xbb\xbf" + ("\n\n  \n" + text).replace("\n", "\r\n").encode())
    plain, crlf = read_post(POSTS / "jekyll-post.md", SITE), read_post(path, SITE)
    assert plain is not None and crlf is not None
    assert crlf.model_dump(exclude={"first_seen_at", "last_seen_at"}) == plain.model_dump(
        exclude={"first_seen_at", "last_seen_at"}
    )


@pytest.mark.parametrize(
    ("front", "expected"),
    [
        ("date: Wed, 07 Sep 2022 09:26:48 GMT", "2022-09-07T09:26:48+00:00"),
        ("date: 'Wed, 07 Sep 2022 17:26:48 +0800'", "2022-09-07T09:26:48+00:00"),
        ("date: 2022-09-07T17:26:48+08:00", "2022-09-07T09:26:48+00:00"),
        ("date: 2022-09-07 17:26:48 +0800", "2022-09-07T09:26:48+00:00"),
        ("date: 2022-09-07 17:26:48 -05:00", "2022-09-07T22:26:48+00:00"),
        ("date: 2022-09-07T09:26:48Z", "2022-09-07T09:26:48+00:00"),
        ("date: 2022-09-07 17:26:48", "2022-09-07T09:26:48+00:00"),
        ("date: 2022-09-07 17:26", "2022-09-07T09:26:00+00:00"),
        ("date: 2022年9月7日 17:26", "2022-09-07T09:26:00+00:00"),
        ("date: 2022-09-07", "2022-09-06T16:00:00+00:00"),
        ("published: 2022-09-07 17:26:48", "2022-09-07T09:26:48+00:00"),
        ("pubDate: Wed, 07 Sep 2022 09:26:48 GMT", "2022-09-07T09:26:48+00:00"),
    ],
)
def test_date_spellings(tmp_path: Path, front: str, expected: str) -> None:
    article = article_of(tmp_path, f"title: T\n{front}")
    assert article.published_at == datetime.fromisoformat(expected)


def test_naive_dates_follow_the_timezone(tmp_path: Path) -> None:
    front = "title: T\ndate: 2022-09-07 17:26:48\nupdated: 2022-09-08 08:00"
    article = article_of(tmp_path, front, tz=ZoneInfo("UTC"))
    assert article.published_at == datetime(2022, 9, 7, 17, 26, 48, tzinfo=UTC)
    assert article.updated_at == datetime(2022, 9, 8, 8, 0, tzinfo=UTC)


def test_toml_dates_and_the_jekyll_file_name_date(tmp_path: Path) -> None:
    naive = read_post(write(tmp_path, '+++\ntitle = "T"\ndate = 2022-09-07T17:26:00\n+++\n'), SITE)
    assert naive is not None and naive.published_at == datetime(2022, 9, 7, 9, 26, tzinfo=UTC)
    named = read_post(write(tmp_path, "---\ntitle: T\n---\nB\n", "2021-05-06-t.md"), SITE)
    assert named is not None and named.published_at == datetime(2021, 5, 5, 16, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("front", "categories"),
    [
        ("categories: policy", ["policy"]),
        ("categories: [policy, 金融]", ["policy", "金融"]),
        ("categories:\n  - policy\n  - 金融\n  - policy", ["policy", "金融"]),
        ("categories: [[parent, child], other]", ["parent", "child", "other"]),
        ("category: policy", ["policy"]),
        ("tags: [x]", []),
    ],
)
def test_categories_string_or_list(tmp_path: Path, front: str, categories: list[str]) -> None:
    assert article_of(tmp_path, f"title: T\n{front}").categories == categories


@pytest.mark.parametrize(
    ("front", "author", "source"),
    [
        ("title: T", None, None),
        ("title: T\nauthor: 示例通讯社", "示例通讯社", "示例通讯社"),
        ("title: T\nauthor: [A, B]", "A, B", "A"),
        ("title: T\nauthors:\n  - name: A\n  - B", "A, B", "A"),
        ("title: T\nauthor: A\nsite: Example Wire", "A", "Example Wire"),
        ("title: T\nauthor: A\nsource: null", "A", None),
    ],
)
def test_author_and_source(tmp_path: Path, front: str, author: str, source: str) -> None:
    article = article_of(tmp_path, front)
    assert (article.author, article.source) == (author, source)


def test_title_loses_the_site_suffix(tmp_path: Path) -> None:
    article = article_of(tmp_path, "title: 数字人民币试点扩容 - 财联社\nsite: 财联社")
    assert article.title == "数字人民币试点扩容"


@pytest.mark.parametrize(
    ("front", "kind"),
    [
        ("date: 2023-01-01", "no_title"),
        ("title: ''", "no_title"),
        ("title:   ", "no_title"),
    ],
)
def test_posts_without_a_title_are_refused(tmp_path: Path, front: str, kind: str) -> None:
    with pytest.raises(ItemError) as exc:
        article_of(tmp_path, front)
    assert exc.value.kind == kind


@pytest.mark.parametrize(
    ("front", "name", "problem"),
    [
        ("date: not a date", "post.md", "date: unreadable date"),
        ("date: 3000-01-01", "post.md", "date: implausible date"),
        ("updated: gibberish", "post.md", "updated: unreadable date"),
        # PyYAML raised ValueError on these, which crashed the whole backfill.
        ("date: 2024-02-30", "post.md", "date: unreadable date '2024-02-30'"),
        ("date: 2024-13-45", "post.md", "date: unreadable date '2024-13-45'"),
        ("date: 2024-02-03 25:61:61", "post.md", "date: unreadable date"),
        ("date: 25:61:61", "post.md", "date: unreadable date"),
        ("date: 0001-01-01", "post.md", "date: date out of range"),
        ("date: 1969-12-31T00:00:00Z", "post.md", "date: implausible date"),
        ("", "0001-01-01-x.md", "file name date: date out of range"),
        ("", "2024-13-45-x.md", "file name date: unreadable date"),
    ],
)
def test_posts_with_dates_that_cannot_be_true_are_kept_undated(
    tmp_path: Path, front: str, name: str, problem: str
) -> None:
    path = write(tmp_path, f"---\ntitle: T\n{front}\n---\nBody.\n", name)
    warnings: list[ItemError] = []
    article = read_post(path, SITE, warnings=warnings)
    assert article is not None and article.title == "T" and article.published_at is None
    assert [w.kind for w in warnings] == ["bad_date"]
    assert str(warnings[0]).startswith(problem)


def test_toml_dates_past_the_range_are_kept_undated(tmp_path: Path) -> None:
    text = '+++\ntitle = "T"\ndate = 9999-12-31T23:59:59-08:00\n+++\nBody.\n'
    warnings: list[ItemError] = []
    article = read_post(write(tmp_path, text), SITE, warnings=warnings)
    assert article is not None and article.published_at is None
    assert [str(w) for w in warnings] == ["date: date out of range '9999-12-31 23:59:59-08:00'"]


@pytest.mark.parametrize(
    "text",
    [
        "---\ntitle: [unclosed\n---\nB",
        "---\n- a list\n- not a mapping\n---\nB",
        "+++\ntitle = \n+++\nB",
        "---\ntitle: T\n",
        # aliases: 9**6 values from a few lines
        "---\na: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
        "e: [*d, *d, *d, *d, *d, *d, *d, *d, *d]\ntitle: T\n---\nB",
        "---\ntitle: T\ndeep: " + "[" * 200 + "]" * 200 + "\n---\nB",
    ],
    ids=["yaml", "list", "toml", "unclosed", "alias-bomb", "deep"],
)
def test_invalid_front_matter_is_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(ItemError) as exc:
        read_post(write(tmp_path, text), SITE)
    assert exc.value.kind == "invalid_front_matter"
    assert "\n" not in str(exc.value)


def test_yaml_errors_say_where() -> None:
    message = r"^invalid YAML: mapping values are not allowed here \(line 2 of the front matter\)$"
    with pytest.raises(ItemError, match=message):
        parse_front_matter("yaml", "title: T\n  bad: indent\nlayout: post\n")


def test_no_front_matter_is_not_a_post(tmp_path: Path) -> None:
    assert split_front_matter("# Title\n---\nnot front matter") is None
    assert read_post(write(tmp_path, "Just text.\n"), SITE) is None


def test_urls_images_and_identity(tmp_path: Path) -> None:
    front = (
        "title: T\ndate: 2023-03-02 09:30\n"
        "permalink: https://Blog.Example.com/p/1/?utm_source=x&id=7\n"
        "image: /img/a.png\nthumbnail: b.png\ncover: https://cdn.example.com/c.png"
    )
    article = article_of(tmp_path, front)
    assert article.url == "https://Blog.Example.com/p/1/?utm_source=x&id=7"
    assert article.canonical_url == "https://blog.example.com/p/1/?id=7"
    assert article.image_url == "https://Blog.Example.com/img/a.png"
    assert article.thumbnail_url == "https://Blog.Example.com/p/1/b.png"
    assert article.extra == {"cover": "https://cdn.example.com/c.png"}


def test_relative_permalink_takes_the_site_base(tmp_path: Path) -> None:
    (tmp_path / "_config.yml").write_text(
        "title: Example Wire\nurl: https://wire.example.com\nbaseurl: /news\n", encoding="utf-8"
    )
    posts = tmp_path / "_posts"
    posts.mkdir()
    site = read_site(posts, SHANGHAI)
    assert site == PostSite(
        SHANGHAI, "https://wire.example.com/news", "Example Wire", root=posts.resolve()
    )
    post = posts / "jekyll-post.md"
    post.write_bytes((POSTS / "jekyll-post.md").read_bytes())
    article = read_post(post, site)
    assert article is not None
    assert article.url == "https://wire.example.com/news/2023/03/02/custody-draft-rules/"
    assert article.image_url == "https://wire.example.com/news/assets/img/custody.png"
    assert article.extra == {"layout": "post"}
    given = read_site(posts, SHANGHAI, "https://mirror.example.org/")
    assert given.base_url == "https://mirror.example.org/" and given.title == "Example Wire"


def test_hugo_config_and_a_broken_one(tmp_path: Path) -> None:
    (tmp_path / "hugo.toml").write_text('baseURL = "https://h.example.com/"\n', encoding="utf-8")
    assert read_site(tmp_path, SHANGHAI).base_url == "https://h.example.com/"
    (tmp_path / "_config.yml").write_text("url: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"_config\.yml"):
        read_site(tmp_path, SHANGHAI)


def test_the_same_post_under_another_name_has_the_same_identity(tmp_path: Path) -> None:
    one = read_post(POSTS / "jekyll-post.md", SITE)
    other = read_post(POSTS / "copies" / "2023-03-02-custody-draft-rules-copy.md", SITE)
    assert one is not None and other is not None
    assert one.url.startswith(CONTENT_KEY_PREFIX)
    assert one.article_id == other.article_id
    retitled = read_post(write(tmp_path, "---\ntitle: Other\ndate: 2023-03-02\n---\nB"), SITE)
    assert retitled is not None and retitled.article_id != one.article_id


def test_extra_keeps_unknown_keys_as_json_values(tmp_path: Path) -> None:
    front = "title: T\nlayout: post\nweight: .nan\nwhen: 2023-01-02\nnested: {a: [1, 2023-01-03]}"
    assert article_of(tmp_path, front).extra == {
        "layout": "post",
        "weight": "nan",
        "when": "2023-01-02",
        "nested": {"a": [1, "2023-01-03"]},
    }


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ("Para one\nwraps here.\n\nPara *two* with [a link](https://x.example).", None),
        ("# Heading\n\n- item one\n- item two\n\n> quoted", "Heading\nitem one\nitem two\nquoted"),
        ("中文段落\n继续。\n\nEnglish\nwraps.", "中文段落继续。\nEnglish wraps."),
        ("Text {% include x.html %} and {{< shortcode >}} gone.", "Text and gone."),
        ("<div>\n  <p>One\n  line.</p>\n\n    <p>Two</p>\n</div>", "One line.\nTwo"),
        ("<p>a</p><script>x()</script><pre>keep\n  lines</pre>", "a\nkeep\nlines"),
        ("Text with <!-- more --> a Hexo marker.", "Text with a Hexo marker."),
        ('<img src="a.png">\n\n**Bold** start.\n\n- a list', "Bold start.\na list"),
    ],
)
def test_body_is_plain_text_with_paragraphs(body: str, text: str | None) -> None:
    expected = text or "Para one wraps here.\nPara two with a link."
    assert post_text(body) == expected


def test_markdown_soft_breaks_between_cjk_join_without_space() -> None:
    assert markdown_html("数字\n人民币\nand\nmore") == "<p>数字人民币 and more</p>\n"


def test_read_posts_records_errors_by_file(tmp_path: Path) -> None:
    good = write(tmp_path, "---\ntitle: T\n---\nB", "good.md")
    bad = write(tmp_path, "---\ntitle: T\ndate: nope\n---\nB", "bad.md")
    plain = write(tmp_path, "no front matter", "plain.md")
    batch = read_posts([good, bad, plain, tmp_path / "gone.md"], SITE)
    assert [a.title for a in batch.articles] == ["T", "T"]
    assert [(e.kind, e.url, e.stage) for e in batch.errors] == [
        ("bad_date", str(bad.resolve()), "normalize"),
        ("unreadable", str((tmp_path / "gone.md").resolve()), "post"),
    ]
    assert "bad.md" in batch.errors[0].message
    assert (batch.entries_seen, batch.not_posts) == (4, 1)


def test_find_posts_recursive_sorted_without_hidden(tmp_path: Path) -> None:
    for name in ["b.md", "a/c.markdown", "a/.d.md", ".git/e.md", "f.txt", "a/b/g.MD"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x", encoding="utf-8")
    found = [p.relative_to(tmp_path).as_posix() for p in find_posts(tmp_path)]
    assert found == ["b.md", "a/c.markdown", "a/b/g.MD"]
