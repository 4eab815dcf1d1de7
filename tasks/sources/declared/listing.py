"""One page of a declared source's list: the request built (template, signer, bootstrap),
sent through the run's guarded Fetcher, and its items read into FeedEntries."""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import chompjs
import jmespath
from parsel import Selector

from newsflow.schemas.errors import ItemError
from newsflow.schemas.models import FeedEntry, Response
from newsflow.schemas.sources import TEMPLATE_RE, BootstrapSpec, SourceConfig
from newsflow.tasks.fetching import charset
from newsflow.tasks.fetching.fetch import HTML_ACCEPT, Fetcher
from newsflow.tasks.sources.declared.fields import (
    ItemReader,
    item_date,
    item_link,
    wrong_epoch_unit,
)
from newsflow.tasks.sources.declared.signers import sign

LOGGER = logging.getLogger(__name__)
JSON_ACCEPT = "application/json, text/javascript;q=0.9, */*;q=0.5"


@dataclass(frozen=True)
class Endpoint:
    """Where the list requests go: the definition's, or the one a bootstrap page named."""

    url: str
    params: dict[str, str]


@dataclass
class ListPage:
    """A list page read: its entries, the raw items' cursor, and per-item problems."""

    response: Response
    entries: list[FeedEntry]
    items_found: int
    cursor: str | None
    # Per field, how many items of the page lacked it (the canary reads this).
    missing: dict[str, int]
    errors: list[ItemError] = field(default_factory=list)


def render(template: str, page: int, cursor: str) -> str:
    values = {"page": str(page), "cursor": cursor, "now_ms": str(int(time.time() * 1000))}
    return TEMPLATE_RE.sub(lambda m: values.get(m[1], m[0]), template)


def bootstrap(source: SourceConfig, spec: BootstrapSpec, fetcher: Fetcher) -> Endpoint:
    """Fetch the bootstrap page (the run's client keeps its cookies for the API calls) and read
    the endpoint from the element's attributes; ItemError("bootstrap_failed") without it."""
    url = source.rebase(spec.url)
    response = fetcher.get(url, decode_html=True)
    page = Selector(text=response.text or "")
    element = page.css(spec.element)
    endpoint = element.attrib.get(spec.url_attr) if element else None
    if not endpoint:
        raise ItemError(
            "bootstrap_failed",
            f"bootstrap page has no {spec.element!r} with a {spec.url_attr!r} attribute",
            url,
        )
    params: dict[str, str] = {}
    if spec.params_attr and (literal := element.attrib.get(spec.params_attr)):
        try:
            # The attribute is a JavaScript object literal (single quotes), not JSON.
            parsed: object = chompjs.parse_js_object(literal)
        except ValueError as exc:
            raise ItemError(
                "bootstrap_failed", f"{spec.params_attr!r} is not an object: {exc}", url
            ) from exc
        if isinstance(parsed, dict):
            params = {str(k): str(v) for k, v in parsed.items()}
    absolute = item_link(endpoint, response.final_url)
    return Endpoint(source.rebase(absolute), params)


def fetch_page(
    source: SourceConfig,
    fetcher: Fetcher,
    endpoint: Endpoint,
    page: int,
    cursor: str,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    until: float | None = None,
) -> Response:
    """One list request, signed when the definition says so, through the guarded fetcher."""
    req = source.request
    params = {k: render(str(v), page, cursor) for k, v in endpoint.params.items()}
    url = source.rebase(render(endpoint.url, page, cursor))
    if req.sign:
        params = sign(req.sign, params, url)
    if params:
        url = f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"
    content, headers = None, dict(req.headers)
    if req.form is not None:
        content = urlencode({k: render(str(v), page, cursor) for k, v in req.form.items()})
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    elif req.json_body is not None:
        body = render(json.dumps(req.json_body, ensure_ascii=False), page, cursor)
        content = body
        headers.setdefault("Content-Type", "application/json")
    return fetcher.get(
        url,
        etag=etag,
        last_modified=last_modified,
        accept=JSON_ACCEPT if source.kind == "json_api" else HTML_ACCEPT,
        method=req.method,
        content=content.encode("utf-8") if content is not None else None,
        headers={k: source.rebase(v) for k, v in headers.items()},
        until=until,
    )


def read_page(source: SourceConfig, response: Response, tz: ZoneInfo, now: datetime) -> ListPage:
    """The entries of one list response; ItemError when the body is not what the kind needs."""
    items, html = _items(source, response)
    reader = ItemReader(html=html)
    fields = source.fields
    date_tz = ZoneInfo(fields.timezone) if fields.timezone else tz
    entries, errors = [], []
    missing = dict.fromkeys(("title", "link", "date"), 0)
    unit_told = False
    link_filter = re.compile(source.items.link_filter) if source.items.link_filter else None
    title_filter = re.compile(source.items.title_filter) if source.items.title_filter else None
    for item in items:
        raw = {name: reader.first(item, getters, name) for name, getters in _scalar(source)}
        for name in missing:
            if getattr(fields, name) and not raw.get(name):
                missing[name] += 1
        if title_filter and not title_filter.search(raw.get("title") or ""):
            continue
        try:
            link = source.rebase(item_link(raw["link"], response.final_url))
        except ItemError as exc:
            if exc.kind != "no_link":  # counted in `missing`
                errors.append(
                    ItemError(exc.kind, f"{exc} (item {raw.get('title')!r})", response.url)
                )
            continue
        if link_filter and not link_filter.search(link):
            continue
        if not unit_told and (unit := wrong_epoch_unit(raw.get("date"), fields.date_format)):
            unit_told = True  # once a page: the values are read by their magnitude anyway
            errors.append(
                ItemError(
                    "date_unit",
                    f"fields.date: date_format is {fields.date_format} but values like "
                    f"{raw.get('date')} are {unit}; read as {unit}",
                    response.url,
                )
            )
        try:
            published = item_date(raw.get("date"), fields.date_format, date_tz, now)
        except ItemError as exc:
            errors.append(ItemError(exc.kind, str(exc), link))
            published = None
        entries.append(
            FeedEntry(
                feed_url=source.url,
                guid=raw.get("guid") or link,
                link=link,
                title=raw.get("title"),
                author=raw.get("author"),
                published=published.isoformat() if published else None,
                summary=raw.get("summary"),
                content=raw.get("content"),
                categories=reader.many(item, fields.categories),
                image=raw.get("image"),
            )
        )
    if source.items.limit:
        entries = entries[: source.items.limit]
    errors.extend(ItemError(w.kind, str(w), source.url) for w in reader.warnings)
    cursor = None
    if source.paging.cursor is not None and items:
        cursor = reader.first(items[-1], [source.paging.cursor], "cursor")
    return ListPage(response, entries, len(items), cursor, missing, errors)


def _scalar(source: SourceConfig) -> list[tuple[str, list]]:
    return [(n, g) for n, g in source.fields.named().items() if n != "categories" and g]


def _items(source: SourceConfig, response: Response) -> tuple[list, bool]:
    """The raw items of the response and whether they are HTML elements."""
    if source.kind == "html_list":
        return _select(source, _text(source, response)), True
    data = _json(source, response)
    found = jmespath.search(source.items.path or "@", data)
    if source.items.html:
        fragment = jmespath.search(source.items.html, found if found is not None else data)
        if not isinstance(fragment, str):
            raise ItemError(
                "parse_error", f"items.html {source.items.html!r} is not a string", response.url
            )
        return _select(source, fragment), True
    if isinstance(found, dict):
        found = [found]
    return (found if isinstance(found, list) else []), False


def _select(source: SourceConfig, text: str) -> list[Selector]:
    page = Selector(text=text)
    if source.items.css:
        return list(page.css(source.items.css))
    return list(page.xpath(source.items.xpath or ""))


def _text(source: SourceConfig, response: Response) -> str:
    if source.request.charset:
        return response.body.decode(source.request.charset, errors="replace")
    if response.text is not None:
        return response.text
    return charset.decode_html(response.body, response.content_type)[0]


def _json(source: SourceConfig, response: Response) -> object:
    body = response.body
    try:
        if source.request.charset:
            return json.loads(body.decode(source.request.charset, errors="replace"))
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        head = body.lstrip()[:1]
        if head == b"<":
            raise ItemError(
                "not_json",
                f"HTML where JSON was expected ({response.content_type or 'no content type'})",
                response.url,
            ) from exc
        raise ItemError("parse_error", f"invalid JSON: {exc}", response.url) from exc
