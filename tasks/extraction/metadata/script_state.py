"""Page state embedded in scripts: Next.js `__NEXT_DATA__` (cls.cn-style article pages),
`window.__INITIAL_STATE__ = {…}` (Vue/Nuxt portals, a JS object rather than JSON: chompjs reads
it), and WeChat article copies (`var ct = "1662542760"`, `publish_time = "2022-09-07"`).

The state holds more than the article (related lists, comments), so the search is breadth-first
and takes the shallowest article-like object: the page's own record sits above the lists it
carries.
"""

from __future__ import annotations

import json
import logging
import re
from collections import deque
from typing import Any

import chompjs
from lxml.html import HtmlElement

from newsflow.tasks.extraction.metadata.dates import Stamp, parse_stamp
from newsflow.tasks.extraction.metadata.sources import Found

LOGGER = logging.getLogger(__name__)

_STATE_RE = re.compile(r"window\.__(?:INITIAL_STATE|NUXT|PRELOADED_STATE)__\s*=\s*")
_WECHAT_CT_RE = re.compile(r"""\bvar\s+ct\s*=\s*["']?(\d{10})["']?""")
_WECHAT_DATE_RE = re.compile(r"""\bpublish_time\s*=\s*["']([^"']{8,25})["']""")
_TIME_KEYS = ("datePublished", "publishTime", "publish_time", "pubDate", "ctime", "publishDate")
_TITLE_KEYS = ("title", "headline")
_AUTHOR_KEYS = ("author", "authorName", "author_name")
# Objects searched at most: a state of tens of thousands of nodes is not walked to the end.
_MAX_NODES = 5000


def read_script_state(root: HtmlElement) -> Found:
    for script in root.iterfind(".//script"):
        text = script.text or ""
        if script.get("id") == "__NEXT_DATA__":
            state = _load(text, json_only=True)
        elif match := _STATE_RE.search(text):
            state = _load(text[match.end() :], json_only=False)
        else:
            if found := _wechat(text):
                return found
            continue
        if found := _article_in(state):
            return found
    return Found()


def _load(text: str, *, json_only: bool) -> Any:
    try:
        return json.loads(text) if json_only else chompjs.parse_js_object(text)
    except ValueError:  # a script that is not JSON (chompjs raises ValueError too)
        LOGGER.debug("page state that does not parse skipped")
        return None


def _wechat(text: str) -> Found | None:
    if "var ct" not in text and "publish_time" not in text:
        return None
    match = _WECHAT_CT_RE.search(text) or _WECHAT_DATE_RE.search(text)
    stamp = parse_stamp(match[1]) if match else None
    return Found(published=stamp) if stamp else None


def _article_in(state: Any) -> Found | None:
    queue: deque[Any] = deque([state])
    seen = 0
    while queue and seen < _MAX_NODES:
        node = queue.popleft()
        seen += 1
        if isinstance(node, dict):
            if found := _article(node):
                return found
            queue.extend(v for v in node.values() if isinstance(v, dict | list))
        elif isinstance(node, list):
            queue.extend(v for v in node if isinstance(v, dict | list))
    return None


def _article(node: dict[str, Any]) -> Found | None:
    title = next((node[k] for k in _TITLE_KEYS if isinstance(node.get(k), str)), None)
    stamp = next((s for k in _TIME_KEYS if (s := _stamp(node.get(k)))), None)
    if not title or not stamp:
        return None
    author = next((node[k] for k in _AUTHOR_KEYS if isinstance(node.get(k), str)), None)
    return Found(published=stamp, title=title.strip(), authors=[author] if author else [])


def _stamp(value: Any) -> Stamp | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(int(value))
    return parse_stamp(value) if isinstance(value, str) else None
