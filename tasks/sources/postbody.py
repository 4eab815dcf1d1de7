"""The body of a front-matter post as plain text: HTML or Markdown, templating removed,
paragraphs on their own lines. Linear in the body: templating is found in one pass, and
markdown-it is linear (its worst input costs ~5 s per MiB; the post cap bounds that)."""

from __future__ import annotations

import re

from markdown_it import MarkdownIt
from markdown_it.token import Token

from newsflow.tasks.extraction.normalize import html_to_text

# Liquid tags and Hugo shortcodes (`{{ … }}`, `{% … %}`, at most this long) are templating,
# not text; `\{` is a literal brace.
_TEMPLATE_OPEN_RE = re.compile(r"(?<!\\)\{[{%]")
_TEMPLATE_CLOSE_RE = re.compile(r"[%}]\}")
MAX_TEMPLATE_TAG = 500
# A body that opens with a block element is HTML (feed-to-post tools write those); one that
# opens with text or inline HTML (`<img>` above a Markdown post) is Markdown, which may hold
# HTML. Read as Markdown, HTML with indented lines after a blank one would become code.
_HTML_BODY_RE = re.compile(
    r"\s*<(?:!doctype|html|body|div|p|section|article|main|header|h[1-6]|table|ul|ol|"
    r"blockquote|figure|pre|hr)\b",
    re.IGNORECASE,
)
_CJK_RE = re.compile(r"[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef]")

_MARKDOWN = MarkdownIt("commonmark")


def post_text(body: str) -> str:
    """Plain text of a post body, HTML or Markdown: paragraphs on their own lines."""
    body = strip_template_tags(body)
    if _HTML_BODY_RE.match(body):
        if "<pre" not in body.lower():
            # In HTML a line break inside a paragraph is a space; paragraphs come from tags.
            body = " ".join(line.strip(" \t") for line in body.split("\n"))
        return html_to_text(body)
    return html_to_text(markdown_html(body))


def strip_template_tags(body: str) -> str:
    """The body without Liquid tags and Hugo shortcodes, in one pass: each opener looks for
    the first closer after it, found once and reused by every opener before it (a regex that
    scans ahead from every `{{` takes minutes on megabytes of them)."""
    kept: list[str] = []
    pos = 0
    close: re.Match[str] | None = None
    for opener in _TEMPLATE_OPEN_RE.finditer(body):
        start = opener.start()
        if start < pos:
            continue  # inside a tag already removed
        if close is None or close.start() < opener.end():
            close = _TEMPLATE_CLOSE_RE.search(body, opener.end())
            if close is None:
                break  # no closer anywhere after: no more tags
        if close.start() - opener.end() <= MAX_TEMPLATE_TAG:
            kept.append(body[pos:start])
            pos = close.end()
    kept.append(body[pos:])
    return "".join(kept)


def markdown_html(text: str) -> str:
    """CommonMark to HTML, a hard-wrapped paragraph joined into one line (without a space
    between two Chinese characters, as a reader joins them)."""
    tokens = _MARKDOWN.parse(text)
    for token in tokens:
        if token.type == "inline" and token.children:
            _join_soft_breaks(token.children)
    return str(_MARKDOWN.renderer.render(tokens, _MARKDOWN.options, {}))


def _join_soft_breaks(children: list[Token]) -> None:
    for i, child in enumerate(children):
        if child.type != "softbreak":
            continue
        before = children[i - 1].content[-1:] if i > 0 else ""
        after = children[i + 1].content[:1] if i + 1 < len(children) else ""
        child.type = "text"
        child.content = "" if _CJK_RE.match(before) and _CJK_RE.match(after) else " "
