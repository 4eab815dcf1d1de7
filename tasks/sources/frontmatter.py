"""Front-matter posts (Hexo, Jekyll, Hugo) to Articles (docs/ARCHITECTURE.md, "front matter").

A post is YAML between `---` lines (TOML between `+++`) followed by a body in Markdown or
HTML. Archives from the wild bring a BOM, CRLF line ends and blank lines before the front
matter; all are read. Keys map to columns as the table says, case-insensitively; keys it does
not name, and values that cannot become their column (a site-relative image without a base),
stay in `extra`. A post without an absolute URL is keyed by its content (source, title, date),
so the same post under another file name, or an archive read twice, adds nothing.

python-frontmatter is not used: it wants the fence on the first line and the `toml` package,
and splitting at the fences is a few lines; PyYAML and tomllib do the parsing.

Every file is read within bounds (tasks/sources/bounded.py): only regular files inside the
archive's folder, each under a cap, YAML without alias bombs. A date that cannot be true
(2024-02-30, year one, 9999 with a negative offset) leaves the post undated with a `bad_date`
row, as a feed item's does: the post is not lost for it. The body's text is postbody.py's.

Over 450 lines for a reason: the front-matter table's key rules read best in one place.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from newsflow.schemas.config import MAX_POST_BYTES, MAX_SITE_CONFIG_BYTES
from newsflow.schemas.errors import ConfigError, ItemError
from newsflow.schemas.models import Article, ArticleBatch, IngestErrorRecord, article_id_for, utcnow
from newsflow.tasks.containment import internal_error
from newsflow.tasks.extraction.metadata.dates import PRECISIONS, parse_stamp
from newsflow.tasks.extraction.normalize import (
    absolute_url,
    as_list,
    canonical_url,
    clean_title,
    content_hash,
    guess_language,
    parse_date,
)
from newsflow.tasks.fetching.charset import decode_text
from newsflow.tasks.sources.bounded import load_yaml, read_regular_file
from newsflow.tasks.sources.postbody import post_text

LOGGER = logging.getLogger(__name__)

POST_SUFFIXES = frozenset({".md", ".markdown", ".mdown", ".mkd", ".mkdn"})
CONTENT_KEY_PREFIX = "urn:newsflow:post:"
BODY_SOURCES = frozenset({"page", "feed", "post"})
# YAML aliases let a few lines describe an exponentially large value; no real post comes near.
MAX_FRONT_MATTER_VALUES = 10_000
MAX_FRONT_MATTER_DEPTH = 20
# Site configurations that name the base URL of relative permalinks (Hexo/Jekyll, Hugo).
SITE_CONFIGS = ("_config.yml", "_config.yaml", "hugo.toml", "config.toml", "hugo.yaml")

_FENCES = {"---": "yaml", "+++": "toml"}
_CLOSING = {"yaml": {"---", "..."}, "toml": {"+++"}}
# Jekyll takes a post's date from its file name when the front matter has none.
_FILENAME_DATE_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})-")


@dataclass(frozen=True)
class PostSite:
    """What a post cannot say itself: the timezone of naive dates, the base of site-relative
    URLs, the site's name."""

    tz: ZoneInfo
    base_url: str | None = None
    title: str | None = None
    # The archive's folder: no post is read from outside it (None: each post's own folder).
    root: Path | None = None
    max_bytes: int = MAX_POST_BYTES


# --- the site around the archive -------------------------------------------------------------


def find_site_config(directory: Path) -> Path | None:
    """The site configuration in the archive's directory or up to two levels above it
    (`source/_posts` in Hexo, `_posts` in Jekyll, `content/posts` in Hugo)."""
    for folder in [directory, *directory.resolve().parents][:3]:
        for name in SITE_CONFIGS:
            # A link is found too, to be refused when read, rather than skipped silently.
            if os.path.lexists(folder / name):
                return folder / name
    return None


def read_site(
    directory: Path,
    tz: ZoneInfo,
    base_url: str | None = None,
    *,
    max_post_bytes: int = MAX_POST_BYTES,
    max_config_bytes: int = MAX_SITE_CONFIG_BYTES,
) -> PostSite:
    """The archive's site: `base_url` if given, else the configuration's `url` (+ Jekyll's
    `baseurl`) or Hugo's `baseURL`; raises ConfigError for a configuration that cannot be read
    (a link out of its folder, not a regular file, over `max_config_bytes`, an alias bomb)."""
    site = PostSite(tz=tz, base_url=base_url, root=directory.resolve(), max_bytes=max_post_bytes)
    path = find_site_config(directory)
    if path is None:
        return site
    try:
        text = decode_text(read_regular_file(path, path.parent, max_config_bytes))
        config = tomllib.loads(text) if path.suffix == ".toml" else load_yaml(text)
        if isinstance(config, dict) and not _small(config, MAX_FRONT_MATTER_VALUES, 50):
            raise ItemError("too_large", "over 10,000 values or nested too deeply")
    except (ItemError, OSError, yaml.YAMLError, tomllib.TOMLDecodeError, RecursionError) as exc:
        raise ConfigError(f"cannot read site configuration {path}: {_problem(exc)}") from exc
    keys = {str(k).lower(): v for k, v in config.items()} if isinstance(config, dict) else {}
    url, sub = _text(keys.get("url")), _text(keys.get("baseurl"))
    if url and sub:
        url = url.rstrip("/") + "/" + sub.strip("/")
    site_base = base_url or absolute_url(url or sub, None)
    LOGGER.info("site configuration %s: base %s", path, site_base)
    return replace(site, base_url=site_base, title=_text(keys.get("title")))


def resolve_url(ref: str, site_base: str | None, page_url: str | None) -> str | None:
    """An absolute URL for a permalink or image: site-relative paths (`/2023/…`) below the
    site's base, other relative ones against the post's URL; None when there is no base."""
    ref = ref.strip()
    if ref.startswith("/") and not ref.startswith("//") and site_base:
        return absolute_url(site_base.rstrip("/") + ref, None)
    return absolute_url(ref, page_url or (site_base.rstrip("/") + "/" if site_base else None))


# --- files -----------------------------------------------------------------------------------


def find_posts(directory: Path) -> list[Path]:
    """Markdown files below `directory`, in a stable order; hidden files and folders skipped.

    os.walk does not follow links to folders, so a link loop cannot trap the walk.
    """
    found: list[Path] = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(
            Path(root) / name
            for name in sorted(files)
            if not name.startswith(".") and Path(name).suffix.lower() in POST_SUFFIXES
        )
    return found


def split_front_matter(text: str) -> tuple[str, str, str] | None:
    """(format, front matter, body) of a post, or None when the text has no front matter.

    Raises ItemError("invalid_front_matter") when the front matter is never closed.
    """
    lines = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    start = next((i for i, line in enumerate(lines) if line.strip()), None)
    if start is None or lines[start].rstrip() not in _FENCES:
        return None
    fmt = _FENCES[lines[start].rstrip()]
    for end in range(start + 1, len(lines)):
        if lines[end].rstrip() in _CLOSING[fmt]:
            return fmt, "\n".join(lines[start + 1 : end]), "\n".join(lines[end + 1 :])
    raise ItemError("invalid_front_matter", "the front matter is not closed")


def parse_front_matter(fmt: str, raw: str) -> dict[str, Any]:
    try:
        meta = tomllib.loads(raw) if fmt == "toml" else load_yaml(raw)
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        raise ItemError("invalid_front_matter", f"invalid {fmt.upper()}: {_problem(exc)}") from exc
    except RecursionError as exc:
        raise ItemError("invalid_front_matter", "the front matter is nested too deeply") from exc
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise ItemError("invalid_front_matter", f"the front matter is a {type(meta).__name__}")
    if not _small(meta, MAX_FRONT_MATTER_VALUES, MAX_FRONT_MATTER_DEPTH):
        raise ItemError("invalid_front_matter", "the front matter is too large or too deep")
    return meta


def read_post(
    path: Path,
    site: PostSite,
    now: datetime | None = None,
    warnings: list[ItemError] | None = None,
) -> Article | None:
    """The article of a post file; None when the file has no front matter (not a post).
    Problems repaired on the way (a bad date dropped) are added to `warnings`."""
    data = read_regular_file(path, site.root or path.parent, site.max_bytes)
    parts = split_front_matter(decode_text(data))
    if parts is None:
        return None
    fmt, raw, body = parts
    meta = parse_front_matter(fmt, raw)
    return post_article(meta, body, name=path.name, site=site, now=now, warnings=warnings)


def read_posts(paths: Iterable[Path], site: PostSite) -> ArticleBatch:
    """Articles of the posts; a post that cannot be read is an error row naming its file (an
    unexpected exception an internal_error row), a repaired problem a row beside its article."""
    batch = ArticleBatch()
    now = utcnow()
    for path in paths:
        batch.entries_seen += 1
        url = str(path.absolute())
        warnings: list[ItemError] = []
        try:
            article = read_post(path, site, now, warnings)
        except (ItemError, OSError) as exc:
            kind = exc.kind if isinstance(exc, ItemError) else "unreadable"
            batch.errors.append(
                IngestErrorRecord(stage="post", url=url, kind=kind, message=f"{path}: {exc}")
            )
            continue
        except Exception as exc:  # the per-post boundary: see tasks/containment.py
            batch.errors.append(internal_error("post", exc, url=url))
            continue
        batch.errors.extend(
            IngestErrorRecord(stage="normalize", url=url, kind=w.kind, message=f"{path}: {w}")
            for w in warnings
        )
        if article is None:
            LOGGER.info("%s has no front matter: not a post", path)
            batch.not_posts += 1
        else:
            batch.articles.append(article)
    return batch


# --- front matter to an article --------------------------------------------------------------


class _Keys:
    """Front-matter keys looked up case-insensitively; what is not taken ends up in `extra`."""

    def __init__(self, meta: dict[Any, Any]) -> None:
        self.rest: dict[str, Any] = {str(k): v for k, v in meta.items()}
        self._names: dict[str, str] = {}
        for key in self.rest:
            self._names.setdefault(key.lower(), key)

    def present(self, alias: str) -> bool:
        return self._names.get(alias, "") in self.rest

    def take_item(self, *aliases: str) -> tuple[str, Any] | None:
        """The first alias with a value, as (key, value); it leaves `rest`, and so do empty
        aliases before it, while later ones stay there (a post with both `image` and `cover`
        keeps `cover` in extra)."""
        for alias in aliases:
            key = self._names.get(alias)
            if key is None or key not in self.rest:
                continue
            value = self.rest.pop(key)
            if value is not None and value != "" and value != []:
                return key, value
        return None

    def take(self, *aliases: str) -> Any:
        item = self.take_item(*aliases)
        return item[1] if item else None


def post_article(
    meta: dict[Any, Any],
    body: str,
    *,
    name: str,
    site: PostSite,
    now: datetime | None = None,
    warnings: list[ItemError] | None = None,
) -> Article:
    """One Article from a post's front matter and body (docs/ARCHITECTURE.md, "front matter").

    Raises ItemError("no_title"). A date that cannot be read or be true is left out, with
    an ItemError("bad_date") added to `warnings`.
    """
    now = now or utcnow()
    warnings = [] if warnings is None else warnings
    keys = _Keys(meta)
    raw_title = _text(keys.take("title"))
    author = _author(keys.take("author", "authors"))
    if keys.present("source"):  # an export says so even when it is null
        source = _text(keys.take("source"))
    else:
        source = _text(keys.take("site")) or site.title or _first(author)
    title = clean_title(raw_title, [source, site.title]) if raw_title else ""
    if not title:
        raise ItemError("no_title", "the front matter has no title")

    raw_date, field = keys.take("date", "published", "pubdate", "publishdate"), "date"
    if raw_date is None and (m := _FILENAME_DATE_RE.match(name)):
        raw_date, field = "-".join(m.groups()), "file name date"  # bounded like any date
    published = _date(raw_date, field, site, now, warnings)
    # updated_at never stands in for the publication date (docs/ARCHITECTURE.md, front matter)
    updated = _date(keys.take("updated", "modified", "lastmod"), "updated", site, now, warnings)

    url, canonical, unresolved = _identity(keys, site, source, title, published)
    page = None if url.startswith(CONTENT_KEY_PREFIX) else url
    image_url = _resolved_image(keys, ("headimg", "image", "cover"), site, page)
    thumbnail_url = _resolved_image(keys, ("thumbnail",), site, page)
    text = post_text(body)
    body_source = _text(keys.take("body_source"))
    article = Article(
        article_id=article_id_for(canonical),
        url=url,
        canonical_url=canonical,
        guid=_text(keys.take("guid")),
        feed_url=_text(keys.take("feed_url")),
        source=source,
        title=title,
        author=author,
        published_at=published,
        **post_date_columns(published, raw_date, site.tz, _stated_dating(keys)),
        origin_source=_text(keys.take("origin_source")),
        updated_at=updated if updated != published else None,
        categories=as_list(list(_flatten(keys.take("categories", "category")))),
        tags=as_list(list(_flatten(keys.take("tags")))),
        image_url=image_url,
        thumbnail_url=thumbnail_url,
        comments=_flag(keys.take("comments")),
        language=guess_language(text, _text(keys.take("language", "lang"))),
        summary=_text(keys.take("summary", "description", "excerpt"), strip=False),
        body_text=text,
        body_source=body_source if body_source in BODY_SOURCES else "post",
        content_hash=content_hash(text) if text else "",
        story_id=_text(keys.take("story_id")),
        duplicate_of=_text(keys.take("duplicate_of")),
        first_seen_at=now,
        last_seen_at=now,
    )
    if unresolved:
        keys.rest[unresolved[0]] = unresolved[1]
    article.extra = _json_safe(keys.rest)
    return article


def canonical_url_or_none(url: str) -> str | None:
    try:
        return canonical_url(url)
    except ItemError:
        return None


def _identity(
    keys: _Keys,
    site: PostSite,
    source: str | None,
    title: str,
    published: datetime | None,
) -> tuple[str, str, tuple[str, Any] | None]:
    """(url, canonical_url, the permalink that could not be made absolute)."""
    permalink = keys.take_item("permalink", "url", "link")
    declared = _text(keys.take("canonical_url"))
    url = resolve_url(str(permalink[1]), site.base_url, None) if permalink else None
    if url:
        canonical = canonical_url_or_none(declared or "") or canonical_url_or_none(url)
        if canonical:
            return url, canonical, None
    key = content_key(source, title, published)
    return key, key, permalink


def content_key(source: str | None, title: str, published: datetime | None) -> str:
    """The identity of a post without a URL: the same post under any file name gets the same."""
    basis = "\x1f".join([source or "", title, published.isoformat() if published else ""])
    return CONTENT_KEY_PREFIX + hashlib.blake2b(basis.encode("utf-8"), digest_size=10).hexdigest()


def _resolved_image(
    keys: _Keys, aliases: tuple[str, ...], site: PostSite, page_url: str | None
) -> str | None:
    item = keys.take_item(*aliases)
    if item is None:
        return None
    value = item[1]
    # jekyll-seo-tag writes `image: {path: …}`, Hugo themes `cover: {image: …}`
    if isinstance(value, dict):
        value = next((value[k] for k in ("path", "image", "src", "url") if value.get(k)), "")
    resolved = resolve_url(str(value), site.base_url, page_url) if value else None
    if resolved is None:
        keys.rest[item[0]] = item[1]
    return resolved


def _date(
    value: Any, field: str, site: PostSite, now: datetime, warnings: list[ItemError]
) -> datetime | None:
    """YAML and TOML read most dates themselves (aware when they carry an offset); the rest
    are strings for normalize's parser. Naive ones are in the site's timezone. A date that
    cannot be read or be true is None, and a warning."""
    if value is None:
        return None
    if isinstance(value, datetime):
        raw: str | datetime = value
    elif isinstance(value, date):
        raw = datetime.combine(value, time())
    else:
        raw = str(value)
    try:
        return parse_date(raw, site.tz, now)
    except ItemError as exc:
        warnings.append(ItemError("bad_date", f"{field}: {exc}"))
        return None


def post_date_columns(
    published: datetime | None, raw: Any, tz: ZoneInfo, stated: dict[str, Any]
) -> dict[str, Any]:
    """Precision, source and local date of a post's date: as an export of ours wrote them
    (`stated`), else the post states it exactly (to the second) or as a bare date (a YAML date
    or the file name's) that stays a date."""
    if published is None:
        return {}
    if stated.get("published_precision") in PRECISIONS and stated.get("published_source"):
        day = stated.get("published_date")
        return {
            "published_precision": stated["published_precision"],
            "published_source": str(stated["published_source"]),
            "published_date": day if isinstance(day, date) else published.astimezone(tz).date(),
        }
    text = parse_stamp(raw) if isinstance(raw, str) else None
    bare = (isinstance(raw, date) and not isinstance(raw, datetime)) or (
        text is not None and text.precision == "day"
    )
    return {
        "published_precision": "day" if bare else "second",
        "published_source": "front_matter",
        "published_date": published.astimezone(tz).date(),
    }


def _stated_dating(keys: _Keys) -> dict[str, Any]:
    names = ("published_precision", "published_source", "published_date")
    return {name: keys.take(name) for name in names}


def _author(value: Any) -> str | None:
    names = [_text(v.get("name") if isinstance(v, dict) else v) for v in _flatten(value)]
    return ", ".join(n for n in names if n) or None


def _first(author: str | None) -> str | None:
    return author.split(", ")[0] if author else None


def _flag(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"true", "yes", "on", "1"}:
        return True
    if text in {"false", "no", "off", "0"}:
        return False
    return None


def _flatten(value: Any) -> Iterator[Any]:
    """Hexo allows nested category lists (`[[parent, child], other]`): their terms, in order."""
    if isinstance(value, list | tuple):
        for item in value:
            yield from _flatten(item)
    elif value is not None:
        yield value


def _text(value: Any, *, strip: bool = True) -> str | None:
    if value is None:
        return None
    text = str(value)
    return (text.strip() if strip else text) or None


def _json_safe(value: Any) -> Any:
    """YAML/TOML values as JSON can hold them: dates as ISO strings, no NaN (DuckDB's JSON
    refuses it), unknown types as text."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _small(meta: dict[str, Any], max_values: int, max_depth: int) -> bool:
    """Whether the front matter holds at most `max_values` values, nested at most `max_depth`
    deep; stops counting as soon as it is not (aliases make a value's size exponential)."""
    budget = max_values
    stack: list[tuple[Any, int]] = [(meta, 0)]
    while stack:
        value, depth = stack.pop()
        budget -= 1
        if budget < 0 or depth > max_depth:
            return False
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
    return True


def _problem(exc: Exception) -> str:
    """One line saying what is wrong and where (PyYAML's own message spans several)."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
        mark = exc.problem_mark
        where = f" (line {mark.line + 1} of the front matter)" if mark else ""
        return f"{exc.problem}{where}"
    return " ".join(str(exc).split("\n")[0].split())
