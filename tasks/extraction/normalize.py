"""Normalize: feed entries, extracted pages and front-matter fields become one `Article`.

The rules (docs/ARCHITECTURE.md, "front matter"): canonical URLs, dates to UTC (naive
times in the feed's timezone), site suffixes off titles, categories merged, image URLs
absolute, bodies as plain text with one paragraph per line.

Over 450 lines for a reason: the column rules users rely on (README, "What lands in DuckDB")
read best in one place, each beside the helper that applies it.
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import SplitResult, parse_qsl, urlencode, urljoin, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import courlan
import dateparser
import lxml.html
from courlan.clean import TRACKERS_RE
from lxml import etree

from newsflow.schemas.errors import ItemError
from newsflow.schemas.models import Article, ExtractedPage, FeedEntry, article_id_for, utcnow
from newsflow.tasks.extraction.metadata.columns import (
    feed_precision,
    page_date,
    refreshed_metadata,
    stamp_columns,
)
from newsflow.tasks.extraction.metadata.dates import Stamp

LOGGER = logging.getLogger(__name__)

# --- URLs -----------------------------------------------------------------------------------

# Share and tracking parameters of Chinese platforms (WeChat, Alibaba spm/scm, Toutiao, Weibo …)
# that courlan's list does not know; they never select different content.
_CN_TRACKERS_RE = re.compile(
    r"^(?:spm|scm|from|share_.*|shareid|sharer?|isappinstalled|scene|clicktime|enterid|"
    r"wxshare_count|wxfrom|timestamp|tt_from|tt_medium|app|appid|srcid|chksm|mpshare|"
    r"sessionid|subscene|ascene|devicetype|version|nettype|lang|pass_ticket|wx_header|"
    r"utm_.*|fromid|fr|track_id|trackid|recommend_id|req_id|_t|t|spm_id_from|"
    r"jsessionid|phpsessid)$",
    re.IGNORECASE,
)
# A session id in the path (";jsessionid=…") names the visitor, not the page.
_PATH_SESSION_RE = re.compile(r";(?:jsessionid|phpsessid)=[^/?#]*", re.IGNORECASE)


def canonical_url(url: str, base: str | None = None) -> str:
    """The identity of a page: absolute, normalized, tracking and share parameters removed.

    courlan normalizes (case, default ports, query order, punycode); its strict mode also drops
    every parameter it does not know, which on Chinese sites loses real ones (`articleid=`), so
    non-strict is used and trackers are removed here by name.
    """
    url = (url or "").strip()
    try:
        return _canonical_url(urljoin(base, url) if base else url)
    except ValueError as exc:  # urllib's own refusals: "Invalid IPv6 URL", a bad port
        raise ItemError("bad_url", f"{exc}: {url[:200]!r}", url=url[:2000]) from exc


def _canonical_url(url: str) -> str:
    if not url.lower().startswith(("http://", "https://")):
        raise ItemError("bad_url", f"not an http(s) URL: {url[:200]!r}", url=url[:2000])
    normalized = courlan.normalize_url(_PATH_SESSION_RE.sub("", url), strict=False)
    parts = urlsplit(normalized)
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not TRACKERS_RE.search(k) and not _CN_TRACKERS_RE.match(k)
    ]
    path = parts.path or "/"
    if "/." in path:  # dot segments ("/a/../b"), resolved as RFC 3986 says
        path = urlsplit(urljoin("http://host/", path)).path
    return urlunsplit((parts.scheme, _bare_netloc(parts), path, urlencode(query), ""))


def _bare_netloc(parts: SplitResult) -> str:
    """Host and non-default port: without credentials, and without the root label's dot."""
    host = (parts.hostname or "").rstrip(".")
    if ":" in host:  # IPv6
        host = f"[{host}]"
    return f"{host}:{parts.port}" if parts.port else host


def absolute_url(url: str | None, base: str | None) -> str | None:
    if not url or not url.strip():
        return None
    url = url.strip()
    if url.startswith("//"):
        url = "https:" + url
    try:
        resolved = urljoin(base, url) if base else url
    except ValueError:  # "Invalid IPv6 URL": no URL at all
        return None
    return resolved if resolved.lower().startswith(("http://", "https://")) else None


# --- dates ----------------------------------------------------------------------------------

_CN_DATE_RE = re.compile(
    r"(?P<y>\d{4})\s*年\s*(?P<m>\d{1,2})\s*月\s*(?P<d>\d{1,2})\s*日"
    r"(?:\s*(?P<H>\d{1,2})[:：](?P<M>\d{2})(?:[:：](?P<S>\d{2}))?)?"
)
_RFC2822_RE = re.compile(r"^(?:[A-Za-z]{3},?\s+)?\d{1,2}\s+[A-Za-z]{3}\s+\d{2,4}\s+\d{1,2}:\d{2}")
# The dates an item can truly have: none before the Unix epoch (year-one and epoch-zero dates are
# a CMS's empty value), none further ahead than a day (a year-3000 pubDate is wrong, not early).
MIN_DATE = datetime(1970, 1, 1, tzinfo=UTC)
MAX_FUTURE = timedelta(days=1)


def parse_date(
    raw: str | datetime | None, tz: ZoneInfo, now: datetime | None = None
) -> datetime | None:
    """A date string in any of the spellings users have, to an aware UTC datetime.

    RFC 2822, ISO 8601 (with or without offset), `YYYY-MM-DD HH:MM[:SS]`, `2022年9月7日 17:26`;
    anything else goes to dateparser. Naive times are in `tz`. Returns None for no date and
    raises ItemError("bad_date") for a date that cannot be read or lies outside
    [MIN_DATE, now + MAX_FUTURE] — the one bound every source's dates go through (feeds,
    pages, front matter, sitemaps, archives), so no date from outside reaches datetime
    arithmetic that overflows (year 1, year 9999 with a negative offset).
    """
    if raw is None:
        return None
    now = now or utcnow()
    if isinstance(raw, datetime):
        parsed = raw
    else:
        text = raw.strip()
        if not text:
            return None
        found = _parse_date_text(text, tz, now)
        if found is None:
            raise ItemError("bad_date", f"unreadable date {text[:80]!r}")
        parsed = found
    try:
        parsed = (parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)).astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise ItemError("bad_date", f"date out of range {str(raw)[:80]!r}") from exc
    if parsed > now + MAX_FUTURE or parsed < MIN_DATE:
        raise ItemError("bad_date", f"implausible date {parsed.isoformat()}")
    return parsed


def parse_date_or_none(raw: str | None, tz: ZoneInfo) -> datetime | None:
    """parse_date for filters and hints: a date that cannot be read counts as no date."""
    try:
        return parse_date(raw, tz)
    except ItemError:
        return None


# A decimal or exponent number ("1.5e+3", a YAML float in front matter) is no date; dateparser
# reads some as relative dates ("now") and others as years.
_FLOAT_RE = re.compile(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?")


def _parse_date_text(text: str, tz: ZoneInfo, now: datetime) -> datetime | None:
    # email.utils is lenient enough to misread other spellings ("5:26 PM"): RFC 2822 shapes only.
    if _RFC2822_RE.match(text):
        try:
            return parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            pass
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        pass
    if m := _CN_DATE_RE.search(text):
        try:
            return datetime(
                int(m["y"]),
                int(m["m"]),
                int(m["d"]),
                int(m["H"] or 0),
                int(m["M"] or 0),
                int(m["S"] or 0),
            )
        except ValueError:
            return None
    if _FLOAT_RE.fullmatch(text) and not text.isdigit():  # digits alone: epoch seconds
        return None
    try:
        return dateparser.parse(
            text,
            settings={
                "TIMEZONE": str(tz),
                "RETURN_AS_TIMEZONE_AWARE": True,
                "PREFER_DATES_FROM": "past",
                # "3分钟前", "昨天 17:26": relative to the run's clock, in the source's zone.
                "RELATIVE_BASE": now.astimezone(tz).replace(tzinfo=None),
            },
        )
    except (OverflowError, ValueError, ArithmeticError):  # digits it reads as a huge timestamp
        return None


# --- text -----------------------------------------------------------------------------------

_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b\ufeff]")
_SPACES_RE = re.compile(r"[ \t\u00a0\u3000]+")
_BLOCK_TAGS = frozenset(
    {
        "p",
        "div",
        "br",
        "li",
        "ul",
        "ol",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "blockquote",
        "pre",
        "table",
        "tr",
        "section",
        "article",
        "header",
        "footer",
        "figure",
        "figcaption",
        "dd",
        "dt",
    }
)
MAX_TITLE_CHARS = 1000


def clean_text(text: str | None) -> str:
    """Control characters out, runs of spaces folded, one paragraph per line."""
    if not text:
        return ""
    text = _CONTROL_RE.sub("", text).replace("\r\n", "\n").replace("\r", "\n")
    lines = (_SPACES_RE.sub(" ", line).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def html_to_text(html: str | None) -> str:
    """Plain text of an HTML fragment: paragraphs on their own lines, no markup."""
    if not html or not html.strip():
        return ""
    if "<" not in html:
        return clean_text(html)
    try:
        root = lxml.html.fragment_fromstring(html, create_parent="div")
    except (etree.ParserError, ValueError):
        return clean_text(re.sub(r"<[^>]+>", " ", html))
    etree.strip_elements(root, "script", "style", "noscript", with_tail=False)
    parts: list[str] = []

    def walk(el: lxml.html.HtmlElement) -> None:
        tag = el.tag if isinstance(el.tag, str) else ""
        if tag in _BLOCK_TAGS:
            parts.append("\n")
        if el.text and tag:
            parts.append(el.text)
        for child in el:
            walk(child)
        if tag in _BLOCK_TAGS:
            parts.append("\n")
        if el.tail:
            parts.append(el.tail)

    walk(root)
    return clean_text("".join(parts))


def clean_title(
    title: str | None,
    site_names: Iterable[str | None] = (),
    max_chars: int | None = MAX_TITLE_CHARS,
) -> str:
    """Trim a title and remove a trailing site name (" - 财联社", "_新浪财经", "｜…"); cut it to
    `max_chars` (None: leave the cutting, and recording it, to the caller)."""
    title = _SPACES_RE.sub(" ", _CONTROL_RE.sub("", title or "").replace("\n", " ")).strip()
    names = {n.strip().lower() for n in site_names if n and n.strip()}
    stripped = True
    while names and stripped:  # "标题_新浪财经_新浪网": one suffix at a time
        stripped = False
        for sep in (" - ", " — ", " – ", " | ", "｜", "|", "_", " -", "-", "—"):
            head, found, tail = title.rpartition(sep)
            if found and head.strip() and _is_site_name(tail.strip().lower(), names):
                title, stripped = head.strip(), True
                break
    return title[:max_chars]


def _is_site_name(tail: str, names: set[str]) -> bool:
    return bool(tail) and any(tail == n or tail in n or n in tail for n in names)


def content_hash(text: str) -> str:
    """Hash of the body as a reader sees it: NFKC, whitespace and case folded."""
    # str.split() splits on what `\s` matches, all of Unicode's whitespace, ~8x faster.
    folded = "".join(unicodedata.normalize("NFKC", text).split()).lower()
    return hashlib.sha1(folded.encode("utf-8")).hexdigest()


_CJK_RE = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def guess_language(text: str, declared: str | None = None) -> str | None:
    """The page's declared language, else 'zh' when CJK characters dominate, else 'en'.

    A full language identifier (py3langid) would add a model for a distinction our sources
    need only coarsely: Chinese or not.
    """
    if declared:
        return declared.split("-")[0].split("_")[0].lower() or None
    sample = text[:2000]
    if not sample:
        return None
    cjk = len(_CJK_RE.findall(sample))
    return "zh" if cjk / max(len(sample.replace(" ", "")), 1) > 0.2 else "en"


def as_list(value: object) -> list[str]:
    """A string becomes a one-element list; lists keep their non-empty strings, in order, each
    once: `Policy` after `policy` is the same term, and the first spelling stays."""
    if value is None:
        return []
    items = (
        [value]
        if isinstance(value, str)
        else list(value)
        if isinstance(value, Iterable)
        else [value]
    )
    out: dict[str, str] = {}
    for item in items:
        text = str(item).strip() if item is not None else ""
        if text:
            out.setdefault(text.casefold(), text)
    return list(out.values())


# Keyword lists in one value: `<meta name="keywords" content="区块链,行动计划,通知">`, with ASCII
# or full-width commas and semicolons, or the enumeration comma 、.
_KEYWORD_SEPARATORS_RE = re.compile(r"[,，、;；]")


def keyword_list(values: Iterable[str] | None) -> list[str]:
    """Keywords (tags), each list-valued one split at its separators; as_list's rules after."""
    return as_list(part for value in values or () for part in _KEYWORD_SEPARATORS_RE.split(value))


# --- assembling an article ------------------------------------------------------------------


def page_body(page: ExtractedPage, titles: Iterable[str]) -> str:
    """The extracted text of a page as body_text, without a first line that is the title.

    trafilatura keeps the <h1> when it sits inside the article element; it is not body.
    """
    body = clean_text(page.text)
    first, _, rest = body.partition("\n")
    return rest if rest and clean_title(first) in set(titles) - {""} else body


def build_feed_article(
    entry: FeedEntry,
    page: ExtractedPage | None,
    *,
    source: str | None,
    feed_title: str | None,
    language: str | None,
    feed_categories: list[str],
    tz: ZoneInfo,
    now: datetime | None = None,
) -> tuple[Article, list[ItemError]]:
    """One Article from a feed entry and its extracted page; the feed's fields win where set
    (its date only when it carries a time: `article_dates`).

    Returns the article and the per-field problems that were repaired (a bad date dropped, an
    overlong title cut), which the caller records. Raises ItemError when the item cannot become
    an article.
    """
    now = now or utcnow()
    link = entry.link or (entry.guid if entry.guid and entry.guid.startswith("http") else None)
    if not link:
        raise ItemError("no_link", f"item {entry.title or entry.guid or '?'!r} has no link")
    # A feed item without a page reads as one with an empty page: one path for both.
    shown = page or ExtractedPage(url=link)
    canon = canonical_url(link)
    names = [source, feed_title, shown.sitename]
    title, body, body_source, warnings = _title_and_body(entry, shown, names, link)
    dates = article_dates(entry, shown, tz, now, warnings)
    summary = html_to_text(entry.summary) or shown.description or None
    article = Article(
        article_id=article_id_for(canon),
        url=shown.url,
        canonical_url=canon,
        guid=entry.guid,
        feed_url=entry.feed_url,
        source=source or feed_title or shown.sitename,
        title=title,
        author=entry.author or shown.author,
        origin_source=shown.origin_source,
        categories=as_list([*entry.categories, *shown.categories, *feed_categories]),
        tags=keyword_list(shown.tags),
        image_url=absolute_url(entry.image or shown.image, shown.url),
        language=language or guess_language(body, shown.language or entry.language),
        summary=summary[:2000] if summary else None,
        body_text=body,
        body_source=body_source,
        content_hash=content_hash(body) if body else "",
        first_seen_at=now,
        last_seen_at=now,
        **dates,
    )
    return article, warnings


def _title_and_body(
    entry: FeedEntry, page: ExtractedPage, names: list[str | None], link: str
) -> tuple[str, str, str, list[ItemError]]:
    """(title, body, body source, warnings): the feed's title else the page's; the page's text
    else the feed's content or summary; the body's first line when there is no title."""
    warnings: list[ItemError] = []
    title = clean_title(entry.title or page.title, names, max_chars=None)
    if not title and page.title:
        title = clean_title(page.title, names, max_chars=None)
    body = page_body(page, (title, clean_title(page.title, names)))
    body_source = "page"
    if not body:
        body = html_to_text(entry.content) or html_to_text(entry.summary)
        body_source = "feed"
    if not title:
        title = body[:80].split("\n")[0]
    if not title:
        raise ItemError("no_title", "item has neither a title nor a body", url=link)
    if len(title) > MAX_TITLE_CHARS:
        warnings.append(
            ItemError(
                "title_truncated",
                f"title of {len(title)} characters cut to {MAX_TITLE_CHARS}: {title[:80]!r}…",
                url=link,
            )
        )
        title = title[:MAX_TITLE_CHARS]
    return title, body, body_source, warnings


def article_dates(
    entry: FeedEntry, page: ExtractedPage, tz: ZoneInfo, now: datetime, warnings: list[ItemError]
) -> dict[str, Any]:
    """Article's date columns. The feed item's date wins when it carries a time; then the
    page's (the metadata stage's order of trust); then the feed's date without a time. The
    feed's `updated` stays `updated_at` and never stands in for the publication date."""

    def feed_date(raw: str | None, field: str) -> Stamp | None:
        try:
            value = parse_date(raw, tz, now)
        except ItemError as exc:
            warnings.append(ItemError(exc.kind, f"{field}: {exc}", url=page.url))
            return None
        if value is None:
            return None
        return Stamp(value.astimezone(tz), feed_precision(raw or ""), "feed")

    published = feed_date(entry.published, "published")
    page_stamp = page_date(page.date, page.date_precision, page.date_source)
    if page_stamp and (published is None or published.precision not in ("minute", "second")):
        published = page_stamp
    updated = feed_date(entry.updated, "updated") or page_date(page.updated, page.updated_precision)
    return stamp_columns(published, updated, tz)


def rebuild_body(article: Article, page: ExtractedPage, tz: ZoneInfo) -> Article:
    """A stored article with its page extracted again: new text, and the page's metadata where
    the stored row lacks it (`refreshed_metadata`); all else as stored.

    Raises ItemError("extract_empty") when the page gives no text: the stored text stays.
    """
    body = page_body(page, (article.title, clean_title(page.title, [article.source])))
    if not body:
        raise ItemError("extract_empty", "no article text found on the page", url=article.url)
    return article.model_copy(
        update={
            "body_text": body,
            "content_hash": content_hash(body),
            "body_source": "page",
            **refreshed_metadata(article, page, tz),
        }
    )
