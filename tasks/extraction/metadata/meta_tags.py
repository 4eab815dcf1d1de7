"""`<meta>` tags: OpenGraph/article (`article:published_time`) and the names Chinese CMSs use
(`PubDate`, `publishdate`, `firstpublishedtime`, `lastmodifiedtime`, `og:release_date`; TRS
government sites' `ContentSource`, `source`, `author`), plus `<time datetime>`.

OpenGraph and the CMS names are two sources in the order of trust (`choose.py`): OpenGraph is
declared for sharing and kept by the platform, the CMS names by templates of every age.
"""

from __future__ import annotations

from lxml.html import HtmlElement

from newsflow.tasks.extraction.metadata.dates import Stamp, parse_stamp
from newsflow.tasks.extraction.metadata.sources import Found

_OG_PUBLISHED = ("article:published_time", "og:article:published_time", "og:published_time")
_OG_UPDATED = ("article:modified_time", "og:updated_time", "og:article:modified_time")
_CMS_PUBLISHED = (
    "pubdate",
    "publishdate",
    "firstpublishedtime",
    "og:release_date",
    "publish_date",
    "publication_date",
    "date",
    "dc.date",
    "dc.date.issued",
    "sailthru.date",
    "parsely-pub-date",
    "weibo:article:create_at",
)
_CMS_UPDATED = ("lastmodifiedtime", "weibo:article:update_at")
_ORIGIN = ("contentsource", "source", "mediaid", "og:source")
_AUTHOR = ("author", "article:author", "dc.creator", "parsely-author", "byl")


def meta_values(root: HtmlElement) -> dict[str, str]:
    """Every named meta tag's content, by lower-cased name or property, first one kept."""
    values: dict[str, str] = {}
    for meta in root.iterfind(".//meta"):
        key = (meta.get("property") or meta.get("name") or meta.get("itemprop") or "").lower()
        content = (meta.get("content") or "").strip()
        if key and content and key not in values:
            values[key] = content
    return values


def _first(metas: dict[str, str], keys: tuple[str, ...]) -> Stamp | None:
    for key in keys:
        if stamp := parse_stamp(metas.get(key)):
            return stamp
    return None


def read_opengraph(metas: dict[str, str]) -> Found:
    return Found(
        published=_first(metas, _OG_PUBLISHED),
        updated=_first(metas, _OG_UPDATED),
        title=metas.get("og:title"),
    )


def read_cms_metas(metas: dict[str, str]) -> Found:
    author = next((metas[k] for k in _AUTHOR if k in metas and "://" not in metas[k]), None)
    return Found(
        published=_first(metas, _CMS_PUBLISHED),
        updated=_first(metas, _CMS_UPDATED),
        authors=[author] if author else [],
        origin=next((metas[k] for k in _ORIGIN if k in metas), None),
    )


def read_time_elements(root: HtmlElement) -> Found:
    """The first `<time datetime>` inside the article (or the page): a `pubdate` or
    `itemprop=datePublished` one wins over the first. A `<time>` in an aside, a footer or a list
    of related links dates someone else's story."""
    best: Stamp | None = None
    for el in root.iterfind(".//time[@datetime]"):
        if el.xpath("ancestor::aside or ancestor::footer or ancestor::nav or ancestor::li"):
            continue
        stamp = parse_stamp(el.get("datetime"))
        if stamp is None:
            continue
        if el.get("pubdate") is not None or el.get("itemprop") == "datePublished":
            return Found(published=stamp)
        best = best or stamp
    return Found(published=best)
