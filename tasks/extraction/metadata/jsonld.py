"""JSON-LD: the article object a CMS declares (`NewsArticle`, `Article`, `BlogPosting`,
`ReportageNewsArticle`), read with the json module — a malformed block is skipped, never fatal.

Our own reader rather than extruct: only `application/ld+json` is needed, and extruct would parse
the page again and pull in rdflib and mf2py for microdata we do not read.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

from lxml.html import HtmlElement

from newsflow.tasks.extraction.metadata.dates import parse_stamp
from newsflow.tasks.extraction.metadata.sources import Found

LOGGER = logging.getLogger(__name__)

_ARTICLE_TYPES = {"NewsArticle", "Article", "BlogPosting", "ReportageNewsArticle"}


def read_jsonld(root: HtmlElement) -> Found:
    for script in root.iterfind(".//script[@type='application/ld+json']"):
        try:
            data = json.loads(script.text or "", strict=False)
        except ValueError:
            LOGGER.debug("malformed JSON-LD block skipped")
            continue
        for node in _nodes(data):
            if _is_article(node):
                return _found(node)
    return Found()


def _nodes(data: Any) -> Iterator[dict[str, Any]]:
    if isinstance(data, list):
        for item in data:
            yield from _nodes(item)
    elif isinstance(data, dict):
        yield data
        yield from _nodes(data.get("@graph", []))


def _is_article(node: dict[str, Any]) -> bool:
    kind = node.get("@type")
    kinds = kind if isinstance(kind, list) else [kind]
    return any(k in _ARTICLE_TYPES for k in kinds if isinstance(k, str))


def _found(node: dict[str, Any]) -> Found:
    return Found(
        published=parse_stamp(_text(node.get("datePublished"))),
        updated=parse_stamp(_text(node.get("dateModified"))),
        title=_text(node.get("headline")),
        authors=_names(node.get("author")),
        publisher=next(iter(_names(node.get("publisher"))), None),
    )


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _names(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    names = (item.get("name") if isinstance(item, dict) else item for item in items)
    return [n.strip() for n in names if isinstance(n, str) and n.strip()]
