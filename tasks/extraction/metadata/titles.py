"""The page's title: an `<h1>` that `og:title` or the JSON-LD headline repeats or `<title>`
begins with; else `og:title`; else the headline; else the lone `<h1>`; else `<title>` cut to
its longest head that the page shows as text of its own (a site suffix such as "_新浪财经_新浪网"
removed without knowing the site's name). An unconfirmed `<h1>` among several is often the
site's logo."""

from __future__ import annotations

import re

from lxml.html import HtmlElement

_SPACE_RE = re.compile(r"[\s\u00a0\u3000]+")
_SEPARATORS_RE = re.compile(r"\s+[-—–|]\s+|\s*[_｜|]\s*|\s+-|-\s+")


def _norm(text: str | None) -> str:
    return _SPACE_RE.sub(" ", text or "").strip()


def choose_title(root: HtmlElement, metas: dict[str, str], headline: str | None) -> str | None:
    tag = _norm(root.findtext(".//title"))
    og = _norm(metas.get("og:title"))
    headline = _norm(headline)
    h1s = [t for h in root.iterfind(".//h1") if (t := _norm(h.text_content()))]
    for h1 in h1s:
        if h1 in (headline, og) or (len(h1) > 3 and tag.startswith(h1)):
            return h1
    if og:
        return og
    if headline:
        return headline
    if len(h1s) == 1:
        return h1s[0]
    return _shown_head(root, tag) or tag or None


def _shown_head(root: HtmlElement, title: str) -> str | None:
    """The longest head of `title`, cut at a separator, that is the whole text of an element."""
    cuts = [m.start() for m in _SEPARATORS_RE.finditer(title)]
    if not cuts:
        return None
    shown = {_norm(t) for t in root.xpath("//body//text()")}
    for cut in sorted(cuts, reverse=True):
        head = title[:cut].strip()
        if head in shown:
            return head
    return None
