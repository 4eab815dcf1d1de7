"""Which pages trafilatura extracts in fast mode, decided per page from the parsed tree.

trafilatura's `fast=True` skips its comparison with readability and jusText (its baseline and
recall rescues still run). Measured with benchmarks/fast_mode.py: where a page's prose sits in
`<p>` elements, fast mode gives the same bodies as the default in less time; where it sits in
bare `<div>`s, table cells, `<font>` or `<br>`-separated lines (tests/fixtures/fallback_pages),
the main extractor can settle on a short `<p>` block such as a summary, and only the fallbacks
find the article — in English and Chinese alike. Chinese pages keep the default even when their
prose is in `<p>`: trafilatura's own benchmark lost 0.017 F1 on Chinese pages in fast mode, and
our Chinese fixtures are too few to rule that out; pages in other scripts are not measured.

So: fast mode for a page in Latin script whose prose is nearly all in `<p>`. Both are read from
the page's runs of text outside links, headings, scripts and styles: one XPath over the tree,
about 1 ms on a 73 KiB page. What fast mode saves depends on the page: about 2 ms of 72 on
benchmarks/ingest.py's English pages, about half the time on the English fixture pages.
"""

from __future__ import annotations

from lxml.etree import XPath
from lxml.html import HtmlElement

# A run of text this long is prose, not a label, a date or a menu entry.
_MIN_RUN = 20
# Runs of prose, filtered inside libxml2: turning every text node of a 100 KiB page into a
# Python string would cost more than the fast mode saves.
_PROSE = XPath(
    f"//body//text()[string-length(normalize-space(.)) >= {_MIN_RUN}]"
    "[not(ancestor::*[self::a or self::script or self::style or self::noscript"
    " or self::h1 or self::h2 or self::h3 or self::h4 or self::h5 or self::h6])]"
)
# Characters of prose read for the script: enough to tell it, few enough to stay cheap.
_SAMPLE_CHARS = 3000
# Letters of Latin script (ASCII and the Latin-1/Extended-A/B blocks) end below this code point.
_LATIN_END = 0x250
# Share of letters that must be Latin: a quoted name in another script does not tip a page.
_LATIN_SHARE = 0.95
# Share of the prose that must sit in <p>: a byline or a caption outside does not tip a page,
# a summary in <p> over a body in <div>s (a fifth to a third of the prose) does.
_IN_PARAGRAPHS = 0.7


def prose_runs(tree: HtmlElement) -> list[tuple[str, bool]]:
    """The page's runs of prose, each with whether it sits inside a <p>."""
    runs = []
    for text in _PROSE(tree):
        run = str(text).strip()
        holder = text.getparent()
        if holder is not None and text.is_tail:
            holder = holder.getparent()
        in_p = holder is not None and (
            holder.tag == "p" or any(a.tag == "p" for a in holder.iterancestors())
        )
        runs.append((run, in_p))
    return runs


def is_latin_script(text: str) -> bool:
    """Whether nearly all of the letters in `text` are Latin (False with no letters)."""
    letters = [c for c in text[:_SAMPLE_CHARS] if c.isalpha()]
    if not letters:
        return False
    latin = sum(1 for c in letters if ord(c) < _LATIN_END)
    return latin >= _LATIN_SHARE * len(letters)


def use_fast_mode(tree: HtmlElement | None) -> bool:
    """Fast mode for a page in Latin script with its prose in <p> (see the module docstring);
    the default, fallbacks on, for every other page, one that did not parse included."""
    if tree is None:
        return False
    runs = prose_runs(tree)
    total = sum(len(run) for run, _ in runs)
    if not total:
        return False
    in_paragraphs = sum(len(run) for run, in_p in runs if in_p)
    sample = " ".join(run for run, _ in runs)[:_SAMPLE_CHARS]
    return in_paragraphs >= _IN_PARAGRAPHS * total and is_latin_script(sample)
