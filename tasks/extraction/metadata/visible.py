"""The visible line near the title, where Chinese pages (and many English ones) state their
date and byline: `发布时间：2022-09-07 17:26`, `2022年09月07日 17:26`,
`发表于 2005-5-7 21:23:57`, `来源：财联社`, `作者：张三`, `记者 张三`, `责任编辑：李四` (an editor,
not an author), `By Jane Doe`.

Only the text just after the title is read: a date anywhere else on the page may date a
comment, a sidebar link or a related story. Without a title element to start from, only labelled
dates (`发布时间`, `发表于`, `Published`) near the top of the page count.
"""

from __future__ import annotations

import re

from lxml.html import HtmlElement

from newsflow.tasks.extraction.metadata.dates import Stamp, parse_stamp
from newsflow.tasks.extraction.metadata.sources import Found

# Characters after the title where an unlabelled date still belongs to the article.
_NEAR = 160
# Characters after the title (or the top of the page) where a labelled line is looked for.
_LINE = 500
_TOP = 1500
_SPACE_RE = re.compile(r"[\s\u00a0\u3000]+")
_INLINE_SPACE_RE = re.compile(r"[ \t\r\n\u00a0\u3000]+")
_LABELS = (
    r"发布时间|发布日期|发表时间|发表日期|发表于|发布于|更新时间|时间|日期|Published|Posted|"
    r"Updated|Date"
)
_LABELLED_DATE_RE = re.compile(rf"(?P<label>{_LABELS})\s*(?:on)?\s*[:：]?\s*(?P<rest>.{{6,40}})")
_LABEL_WORDS = r"责任|编辑|来源|作者|时间|日期|发布|字号"
_STOP = r"(?=\s|$|来源|作者|记者|编辑|责任编辑|发布|时间|日期|字号|【|\||｜)"
_ORIGIN_RE = re.compile(
    rf"(?:来源|稿件来源|文章来源|出处)\s*[:：]\s*(?P<v>[^\s:：|｜]{{2,20}}?){_STOP}"
)
_AUTHOR_RE = re.compile(
    rf"(?:作者|撰文|文\s*[/／]|记者|楼主)\s*[:：]?\s*(?P<v>[\u4e00-\u9fff·\w]{{2,8}}"
    rf"(?:[、，, \t]+(?!{_LABEL_WORDS})[\u4e00-\u9fff·]{{2,4}})*){_STOP}"
)
_EDITOR_RE = re.compile(r"(?:责任编辑|编辑|责编)\s*[:：]?\s*(?P<v>[\u4e00-\u9fff·]{2,4})")
_BYLINE_RE = re.compile(
    r"\bBy[ \t]+(?P<v>[A-Z][\w.'-]+(?:[ \t]+[A-Z][\w.'-]+){0,3}"
    r"(?:[ \t]*(?:,|\band\b|&)[ \t]*[A-Z][\w.'-]+(?:[ \t]+[A-Z][\w.'-]+){0,3})*)"
)
# Text that belongs to other stories or to readers: scripts aside, the page's asides, lists of
# links, footers, comments, replies and "related"/"recommended" blocks.
_ELSEWHERE_TAGS = {"script", "style", "noscript", "aside", "footer", "nav", "li", "template"}
_ELSEWHERE_RE = re.compile(r"comment|sidebar|related|recommend|reply|footer|(?:^|\s)side(?:\s|$)")


def page_texts(root: HtmlElement) -> list[str]:
    """The text nodes of the page's own content in document order (see _ELSEWHERE_TAGS)."""
    texts: list[str] = []
    body = root.find(".//body")
    _collect(body if body is not None else root, texts)
    return texts


def _collect(el: HtmlElement, texts: list[str]) -> None:
    # A walk rather than an XPath with ancestor tests per text node: a tenth of the cost.
    tag = el.tag if isinstance(el.tag, str) else ""
    if tag and tag not in _ELSEWHERE_TAGS and not _ELSEWHERE_RE.search(_marks(el)):
        if el.text:
            texts.append(el.text)
        for child in el:
            _collect(child, texts)
    if el.tail:
        texts.append(el.tail)


def _marks(el: HtmlElement) -> str:
    return f"{el.get('class') or ''} {el.get('id') or ''}".lower()


def read_visible(root: HtmlElement, title: str | None) -> Found:
    """Dates and bylines from the lines after `title` (the title chosen from the page)."""
    texts = page_texts(root)
    start = _title_position(texts, title)
    # One text node a line: a byline's name must not run on into the next paragraph.
    pieces = texts[start + 1 :] if start is not None else texts
    after = "\n".join(t for p in pieces if (t := _INLINE_SPACE_RE.sub(" ", p).strip()))
    line = after[:_LINE] if start is not None else after[:_TOP]
    published = _labelled_date(line)
    if published is None and start is not None:
        published = parse_stamp(after[:_NEAR])
    editors = [m["v"] for m in _EDITOR_RE.finditer(line)]
    origin = _ORIGIN_RE.search(line)
    return Found(
        published=published,
        authors=_authors(line),
        origin=origin["v"] if origin else _source_element(root),
        editors=editors,
    )


def _title_position(texts: list[str], title: str | None) -> int | None:
    if not title:
        return None
    want = _SPACE_RE.sub("", title)
    for i, text in enumerate(texts):
        if _SPACE_RE.sub("", text) == want:
            return i
    return None


def _labelled_date(line: str) -> Stamp | None:
    for m in _LABELLED_DATE_RE.finditer(line):
        if m["label"] in ("更新时间", "Updated"):
            continue
        if stamp := parse_stamp(m["rest"]):
            return stamp
    return None


def _authors(line: str) -> list[str]:
    if m := _AUTHOR_RE.search(line):
        return [n for n in re.split(r"[、，,\s]+", m["v"]) if n]
    if m := _BYLINE_RE.search(line):
        return [n.strip() for n in re.split(r",|\band\b|&", m["v"]) if n.strip()]
    return []


def _source_element(root: HtmlElement) -> str | None:
    """A portal's unlabelled source link (`<a class="source">新华社</a>`)."""
    for el in root.xpath("//body//*[contains(@class, 'source') or contains(@id, 'source')]"):
        text = _SPACE_RE.sub("", el.text_content())
        if 2 <= len(text) <= 20 and not parse_stamp(text):
            return text
    return None
