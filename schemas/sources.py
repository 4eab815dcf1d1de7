"""Declared sources: list pages and JSON APIs described in the feeds file (`kind = "json_api"`
or `kind = "html_list"`), and catalogue adapters used by name (`adapter = "cls-telegraph"`).

Everything a definition names is checked when the file is read — selectors compiled with
parsel/cssselect and lxml, JSON paths with jmespath, templates parsed, signers looked up — so a
bad definition is a one-line error naming the feed and the field before any fetch.
The README's "Sources without feeds" shows how a user declares one.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlencode, urlsplit

import jmespath
from cssselect import SelectorError
from jmespath.exceptions import JMESPathError
from lxml import etree
from parsel.csstranslator import HTMLTranslator
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from newsflow.schemas.config import FeedConfig, _check_timezone

# Signers the `sign` field may name; their code lives in tasks/sources/declared/signers.py.
SIGNERS = ("cls",)
# `{name}` in a template; CSS inside braces may hold colons (`a::attr(href)`), so not str.format.
TEMPLATE_RE = re.compile(r"\{([^{}]+)\}")
REQUEST_VARS = frozenset({"page", "cursor", "now_ms"})
_CSS = HTMLTranslator()


# What each kind of expression is compiled with, and the errors that make it bad.
_COMPILERS: dict[
    str, tuple[Callable[[str], object], type[Exception] | tuple[type[Exception], ...]]
] = {
    "CSS selector": (_CSS.css_to_xpath, SelectorError),
    "XPath": (etree.XPath, etree.XPathSyntaxError),
    "JMESPath": (jmespath.compile, JMESPathError),
    "regex": (re.compile, re.error),
}


def _compiles(what: str, expr: str) -> str:
    compile_expr, errors = _COMPILERS[what]
    try:
        compile_expr(expr)
    except errors as exc:
        raise ValueError(f"bad {what} {expr!r}: {' '.join(str(exc).split())}") from None
    return expr


check_css = partial(_compiles, "CSS selector")
check_xpath = partial(_compiles, "XPath")
check_jmespath = partial(_compiles, "JMESPath")
check_regex = partial(_compiles, "regex")


def _one_or_many(v: object) -> object:
    return [v] if isinstance(v, str | dict) else v


class Getter(BaseModel):
    """One way to read a value from an item: a selector or path, or a template over them.

    In an html_list a bare string is CSS (`h4 a::attr(href)`), `xpath:` starts XPath; in a
    json_api it is JMESPath. A template's `{…}` parts are read the same way.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    css: str | None = None
    xpath: str | None = None
    path: str | None = None
    template: str | None = None
    value: str | None = None  # a constant

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        given = [k for k in ("css", "xpath", "path", "template", "value") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("give exactly one of css, xpath, path, template, value")
        if self.css:
            check_css(self.css)
        if self.xpath:
            check_xpath(self.xpath)
        if self.path:
            check_jmespath(self.path)
        if self.template and not TEMPLATE_RE.search(self.template):
            raise ValueError(f"template {self.template!r} has no {{…}} part")
        return self


Getters = Annotated[list[Getter | str], BeforeValidator(_one_or_many)]


class FieldsSpec(BaseModel):
    """How an item's fields are read; each a getter or a list of fallbacks tried in order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    title: Getters = []
    link: Getters = []
    date: Getters = []
    # epoch_s, epoch_ms (the unit is corrected by magnitude), text (free, incl. `3分钟前`,
    # `昨天 17:26`, `09-07 17:26`) or a strptime pattern.
    date_format: str = "text"
    timezone: str | None = None
    summary: Getters = []
    content: Getters = []
    author: Getters = []
    categories: Getters = []
    guid: Getters = []
    image: Getters = []

    @field_validator("date_format")
    @classmethod
    def _format(cls, v: str) -> str:
        if v not in {"epoch_s", "epoch_ms", "text"} and "%" not in v:
            raise ValueError(f"date_format must be epoch_s, epoch_ms, text or a %-pattern: {v!r}")
        return v

    _tz = field_validator("timezone")(lambda v: v if v is None else _check_timezone(v))

    def named(self) -> dict[str, list[Getter | str]]:
        return {
            name: getattr(self, name)
            for name in (
                "title",
                "link",
                "date",
                "summary",
                "content",
                "author",
                "categories",
                "guid",
                "image",
            )
        }


class RequestSpec(BaseModel):
    """The list page or API request; `{page}`, `{cursor}`, `{now_ms}` fill url, params and body."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    method: Literal["GET", "POST"] = "GET"
    params: dict[str, str | int] = {}
    form: dict[str, str | int] | None = None
    json_body: dict[str, object] | None = Field(default=None, alias="json")
    headers: dict[str, str] = {}
    # A charset the server does not declare (or declares wrongly), e.g. "gb18030".
    charset: str | None = None
    sign: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.lower().startswith(("http://", "https://")):
            raise ValueError(f"url must be http(s): {v!r}")
        for name in TEMPLATE_RE.findall(v):
            if name not in REQUEST_VARS:
                raise ValueError(f"unknown template variable {{{name}}} (use page, cursor, now_ms)")
        return v

    @field_validator("sign")
    @classmethod
    def _sign(cls, v: str | None) -> str | None:
        if v is not None and v not in SIGNERS:
            raise ValueError(f"unknown signer {v!r} (known: {', '.join(SIGNERS)})")
        return v

    @field_validator("charset")
    @classmethod
    def _charset(cls, v: str | None) -> str | None:
        if v is not None:
            "".encode(v)  # LookupError names an unknown codec
        return v


class BootstrapSpec(BaseModel):
    """A page fetched first (its cookies kept) whose element names the real endpoint: the
    element's `url_attr` is the endpoint and `params_attr` (a JS object literal) its query."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    element: str
    url_attr: str = "url"
    params_attr: str | None = None

    _css = field_validator("element")(check_css)


class ItemsSpec(BaseModel):
    """Where the items are: CSS/XPath for html_list; a JMESPath for json_api, optionally to an
    HTML fragment (`html`) read with css/xpath inside."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    css: str | None = None
    xpath: str | None = None
    path: str | None = None
    html: str | None = None
    link_filter: str | None = None
    title_filter: str | None = None
    limit: int | None = Field(default=None, ge=1)

    _css = field_validator("css")(lambda v: v if v is None else check_css(v))
    _xpath = field_validator("xpath")(lambda v: v if v is None else check_xpath(v))
    _paths = field_validator("path", "html")(lambda v: v if v is None else check_jmespath(v))
    _re = field_validator("link_filter", "title_filter")(
        lambda v: v if v is None else check_regex(v)
    )


class PagingSpec(BaseModel):
    """Page numbers or a cursor read from the last page (cls's `last_time`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["page", "cursor"] = "page"
    first: int = 1
    # Cursor: a getter over the page's last item (e.g. `ctime`) and its value for page one.
    cursor: Getter | str | None = None
    cursor_start: str = ""
    pages: int = Field(default=1, ge=1, le=100)  # per normal run
    max_pages: int = Field(default=50, ge=1, le=10_000)  # a backfill's walk back


class DetailSpec(BaseModel):
    """How an item's page is read when the general extraction is not enough."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    body: str | None = None  # CSS of the body element(s)
    date: str | None = None  # CSS of an element holding the date
    date_meta: str | None = None  # <meta name=…> holding the date
    next_data: str | None = None  # JMESPath into __NEXT_DATA__ to the body HTML
    next_data_date: str | None = None

    _css = field_validator("body", "date")(lambda v: v if v is None else check_css(v))
    _paths = field_validator("next_data", "next_data_date")(
        lambda v: v if v is None else check_jmespath(v)
    )


class NeedsBrowser(BaseModel):
    """A page that answers a JavaScript challenge instead of content: the marker that shows it
    and what to use instead."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    marker: str
    alternative: str

    _re = field_validator("marker")(check_regex)


class SourceConfig(FeedConfig):
    """A `[[feeds]]` entry with `kind = "json_api"` or `"html_list"` (or a resolved adapter).

    `url` is the source's identity in the `feeds` table: its first list request, rendered.
    """

    url: str = ""
    kind: Literal["json_api", "html_list"]
    adapter: str | None = None
    site: str | None = None  # the origin whose URLs `base_url` replaces
    base_url: str | None = None
    request: RequestSpec
    bootstrap: BootstrapSpec | None = None
    items: ItemsSpec
    fields: FieldsSpec
    paging: PagingSpec = PagingSpec()
    detail: DetailSpec | None = None
    needs_browser: NeedsBrowser | None = None
    # What the adapter yields and where its definition comes from (`newsflow sources`).
    yields: str | None = None
    last_verified: str = "never"

    @field_validator("base_url")
    @classmethod
    def _base(cls, v: str | None) -> str | None:
        if v is not None and not v.lower().startswith(("http://", "https://")):
            raise ValueError(f"base_url must be http(s): {v!r}")
        return None if v is None else v.rstrip("/")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        items = self.items
        if self.kind == "html_list" and not (items.css or items.xpath):
            raise ValueError("items: an html_list needs css or xpath")
        if self.kind == "json_api" and not items.path:
            raise ValueError("items: a json_api needs path")
        if items.html and not (items.css or items.xpath):
            raise ValueError("items: html (a fragment) needs css or xpath inside it")
        if not self.fields.link:
            raise ValueError("fields.link: every source needs a link")
        html = self.kind == "html_list" or bool(items.html)
        for name, getters in self.fields.named().items():
            for getter in getters:
                _check_getter(getter, html, f"fields.{name}")
        if self.paging.mode == "cursor" and self.paging.cursor is None:
            raise ValueError("paging.cursor: cursor paging needs a getter for the cursor")
        if self.paging.cursor is not None:
            _check_getter(self.paging.cursor, html, "paging.cursor")
        if base := self.base_url:
            if not self.site:
                object.__setattr__(self, "site", _origin(self.request.url))
            object.__setattr__(self, "base_url", base)
        if not self.url:
            object.__setattr__(self, "url", self.rebase(identity_url(self.request)))
        return self

    def rebase(self, url: str) -> str:
        """`url` on `base_url` when it is on the adapter's site (DESIGN: every request and link)."""
        if self.base_url and self.site and url.startswith(self.site):
            return self.base_url + url[len(self.site) :]
        return url


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def identity_url(request: RequestSpec) -> str:
    """The first request with its template variables blanked: stable across runs."""
    url = blank_vars(request.url)
    query = {k: blank_vars(str(v)) for k, v in request.params.items()}
    return f"{url}{'&' if '?' in url else '?'}{urlencode(query)}" if query else url


def blank_vars(text: str) -> str:
    return TEMPLATE_RE.sub(lambda m: "" if m[1] in REQUEST_VARS else m[0], text)


def _check_getter(getter: Getter | str, html: bool, where: str) -> None:
    try:
        if isinstance(getter, Getter):
            exprs = TEMPLATE_RE.findall(getter.template) if getter.template else []
            if getter.path and html:
                raise ValueError("path is for JSON; use css or xpath in an HTML list")
            if (getter.css or getter.xpath) and not html:
                raise ValueError("css/xpath need an HTML list; use path in a json_api")
        else:
            exprs = [getter]
        for expr in exprs:
            if html and expr.startswith("xpath:"):
                check_xpath(expr.removeprefix("xpath:"))
            elif html:
                check_css(expr)
            else:
                check_jmespath(expr)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


# --- the catalogue and the feeds file -------------------------------------------------------

CATALOGUE_DIR = Path(__file__).parent / "catalogue"


def catalogue() -> dict[str, dict[str, Any]]:
    """The shipped adapters by name: one TOML file each in schemas/catalogue/."""
    entries = {}
    for path in sorted(CATALOGUE_DIR.glob("*.toml")):
        entries[path.stem] = tomllib.loads(path.read_text(encoding="utf-8"))
    return entries


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def resolve_entry(raw: object, known: dict[str, dict[str, Any]] | None = None) -> object:
    """A feeds-file entry as a SourceConfig when it declares a kind or names an adapter (the
    adapter's definition with the entry's keys over it); other entries are left to FeedConfig.
    Problems are one-line ValueErrors naming the entry and the field."""
    if not isinstance(raw, dict) or not ({"adapter", "kind"} & raw.keys()):
        return raw
    label = raw.get("name") or raw.get("adapter") or raw.get("url") or "?"
    values = raw
    if adapter := raw.get("adapter"):
        adapters = catalogue() if known is None else known
        if adapter not in adapters:
            raise ValueError(
                f"feed {label!r}: adapter: unknown adapter {adapter!r} "
                f"(known: {', '.join(sorted(adapters))})"
            )
        values = _merge({"name": adapter, **adapters[adapter]}, raw)
    try:
        return SourceConfig(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise ValueError(f"feed {label!r}: {where + ': ' if where else ''}{msg}") from None
