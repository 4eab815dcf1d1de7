"""Chinese bodies: a text-density block where trafilatura keeps too much or too little, and the
date/source/editor lines that are metadata, not body, taken off the text's ends.

Old blog and forum templates and government pages put the text in table cells beside
navigation cells; trafilatura (with tables kept, as newsflow needs for notices) then returns the
cells around the article too, or nothing. The method is GNE's idea, reduced: the block whose
own text (links excluded) is densest per tag and richest in sentence punctuation is the article.

Which body is kept (`choose_body`), measured on tests/fixtures/meta_pages (benchmarks/metadata.py):
trafilatura's, unless the page is Chinese and the densest block holds at least 90% of the
sentences trafilatura's text holds while being shorter — then trafilatura's surplus is
navigation, cells and one-line replies without sentences, and the block is the article. A
sentence is a run of 15 or more characters ended by 。！？; (shorter ones are replies such as
"顶一下，说得有道理。" and captions). Where trafilatura found nothing, the block is used when it
holds three sentences or more. The densest block grows to its parent while the parent holds half
as many sentences again, looking up to three levels past wrappers (a notice whose paragraphs
sit one per table row).
readability-lxml was measured too and lost on the old blogs and forums (F1 0.48 and 0.06 against
trafilatura's 0.79 and 0.52), so it is not used.
"""

from __future__ import annotations

import math
import re

from lxml.html import HtmlElement

_PUNCT_RE = re.compile(r"[，。！？；：、]")
_SENTENCE_RE = re.compile(r"[^。！？；\n]{15,}[。！？；]")
_INFO_LINE_RE = re.compile(
    r"^(?:.{0,30}(?:\d{4}[-年/.]\d{1,2}[-月/.]\d{1,2}|来源|作者|记者|发布时间|发布日期|字号).{0,40}"
    r"|[（(]?(?:责任编辑|编辑|责编)[:：].{1,20}?[）)]?)$"
)
_CJK_RE = re.compile(r"[\u3400-\u9fff]")
_BLOCKS = {"div", "td", "article", "section", "main"}
_SKIP = {"script", "style", "noscript", "a", "nav", "footer", "aside", "select", "button"}
_BREAKS = {"p", "br", "div", "li", "tr", "h1", "h2", "h3", "h4", "blockquote", "section", "table"}
# Below this share of trafilatura's sentences the block is missing part of the article.
_KEEP_SHARE = 0.9
_MIN_SENTENCES = 3
# Ancestors of the densest block looked at for more of the article's sentences.
_CLIMB = 3


def sentences(text: str) -> int:
    """Sentences of some length (see the module docstring)."""
    return len(_SENTENCE_RE.findall(text))


def densest_block_text(root: HtmlElement) -> str:
    """The text of the densest block, one paragraph a line ("" when no block has sentences)."""
    best: tuple[float, HtmlElement] | None = None
    for el in root.iter(*_BLOCKS):
        own = "".join(_own_text(el))
        punct = len(_PUNCT_RE.findall(own))
        if punct < _MIN_SENTENCES:
            continue
        tags = sum(1 for _ in el.iter()) - sum(1 for _ in el.iter("a"))
        score = len(own) / max(tags, 1) * math.log(punct + 1)
        if best is None or score > best[0]:
            best = (score, el)
    if best is None:
        return ""
    block = best[1]
    inner = sentences("".join(_own_text(block)))
    parent = block.getparent()
    for _ in range(_CLIMB):  # wrappers (tr, tbody) hold as many sentences: look past them
        if parent is None or parent.tag == "body":
            break
        outer = sentences("".join(_own_text(parent)))
        if outer >= 1.5 * inner:
            block, inner = parent, outer
        parent = parent.getparent()
    parts: list[str] = []
    _lines(block, parts)
    return "\n".join(line for p in "".join(parts).split("\n") if (line := p.strip()))


def _own_text(el: HtmlElement) -> list[str]:
    out: list[str] = []
    if el.text:
        out.append(el.text)
    for child in el:
        if isinstance(child.tag, str) and child.tag not in _SKIP:
            out.extend(_own_text(child))
        if child.tail:
            out.append(child.tail)
    return out


def _lines(el: HtmlElement, parts: list[str]) -> None:
    tag = el.tag if isinstance(el.tag, str) else ""
    if tag in _BREAKS:
        parts.append("\n")
    if el.text and tag not in _SKIP:
        parts.append(el.text)
    if tag not in _SKIP:
        for child in el:
            _lines(child, parts)
    if tag in _BREAKS:
        parts.append("\n")
    if el.tail:
        parts.append(el.tail)


def is_chinese(text: str) -> bool:
    sample = re.sub(r"\s", "", text[:2000])
    return bool(sample) and len(_CJK_RE.findall(sample)) / len(sample) > 0.3


def choose_body(trafilatura_text: str, root: HtmlElement | None) -> str:
    """trafilatura's text or the densest block's (rule in the module docstring), without its
    leading date/source lines and trailing editor lines."""
    return strip_info_lines(_choose(trafilatura_text, root))


def strip_info_lines(text: str) -> str:
    """Up to two leading lines that are a dateline or byline without a sentence, and trailing
    editor lines, off the text: they are the page's metadata (read by the metadata stage)."""
    lines = text.split("\n")
    for _ in range(2):
        if len(lines) > 1 and _INFO_LINE_RE.match(lines[0]) and not sentences(lines[0]):
            lines.pop(0)
    while len(lines) > 1 and _INFO_LINE_RE.match(lines[-1]) and not sentences(lines[-1]):
        lines.pop()
    return "\n".join(lines)


def _choose(trafilatura_text: str, root: HtmlElement | None) -> str:
    if root is None or (trafilatura_text and not is_chinese(trafilatura_text)):
        return trafilatura_text
    block = densest_block_text(root)
    if not block or not is_chinese(block):
        return trafilatura_text
    if not trafilatura_text:
        return block if sentences(block) >= _MIN_SENTENCES else ""
    ours, theirs = sentences(block), sentences(trafilatura_text)
    if len(block) < len(trafilatura_text) and ours >= _KEEP_SHARE * theirs:
        return block
    return trafilatura_text
