"""Reading a declared source's fields from one item (a parsel selector or a JSON value), and
the dates and links list pages and APIs write.

Dates: epoch seconds or milliseconds (the unit told by magnitude, whatever the definition
says), a strptime pattern, or free text — the relative and year-less forms Chinese list pages
use (`刚刚`, `3分钟前`, `昨天 17:26`, `09-07 17:26`) here, anything else through normalize's
parser.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import jmespath
from parsel import Selector

from newsflow.schemas.errors import ItemError
from newsflow.schemas.sources import TEMPLATE_RE, Getter
from newsflow.tasks.extraction.normalize import absolute_url, parse_date

LOGGER = logging.getLogger(__name__)

Item = Selector | Any  # an HTML element or a JSON value
# Fields whose HTML is kept (FeedEntry.summary/content are HTML); the rest are text.
HTML_FIELDS = frozenset({"summary", "content"})
LIST_FIELDS = frozenset({"categories"})
# Epoch values above this are milliseconds (1e11 s is the year 5138; 1e11 ms is 1973).
_MS_THRESHOLD = 1e11

_AGO_RE = re.compile(r"^(\d+)\s*(秒|分钟|分|小时|天|周)前$")
_AGO_UNITS = {"秒": 1, "分钟": 60, "分": 60, "小时": 3600, "天": 86400, "周": 7 * 86400}
_DAY_RE = re.compile(r"^(今天|昨天|前天)\s*(\d{1,2})[:：](\d{2})$")
_DAY_OFFSETS = {"今天": 0, "昨天": 1, "前天": 2}
_NO_YEAR_RE = re.compile(r"^(\d{1,2})[-/月](\d{1,2})日?(?:\s+(\d{1,2})[:：](\d{2}))?$")


@dataclass
class ItemReader:
    """Reads fields from items of one source; problems found on the way are `warnings`."""

    html: bool
    warnings: list[ItemError] = field(default_factory=list)

    def first(self, item: Item, getters: list[Getter | str], name: str) -> str | None:
        """The first getter that yields a value; lists (categories) come from `many`."""
        for getter in getters:
            value = self._one(item, getter, name)
            if value:
                return value
        return None

    def many(self, item: Item, getters: list[Getter | str]) -> list[str]:
        for getter in getters:
            values = [v for v in self._values(item, getter, html=False) if v]
            if values:
                return values
        return []

    def _one(self, item: Item, getter: Getter | str, name: str) -> str | None:
        if isinstance(getter, Getter) and getter.value is not None:
            return getter.value
        if isinstance(getter, Getter) and getter.template is not None:
            return self._template(item, getter.template, name)
        values = self._values(item, getter, html=name in HTML_FIELDS)
        if len(values) > 1 and not self.html:
            self.warnings.append(
                ItemError(
                    "field_type",
                    f"fields.{name}: {_expr(getter)!r} gave a list where a string was expected",
                )
            )
            return None
        return values[0].strip() if values and values[0] else None

    def _template(self, item: Item, template: str, name: str) -> str | None:
        missing = []

        def fill(match: re.Match[str]) -> str:
            value = self._one(item, match[1], name)
            if value is None:
                missing.append(match[1])
            return value or ""

        text = TEMPLATE_RE.sub(fill, template)
        return None if missing else text

    def _values(self, item: Item, getter: Getter | str, html: bool) -> list[str]:
        expr = _expr(getter)
        if not self.html:
            return _json_values(jmespath.search(expr, item))
        selected = (
            item.xpath(expr.removeprefix("xpath:"))
            if expr.startswith("xpath:") or (isinstance(getter, Getter) and getter.xpath)
            else item.css(expr)
        )
        # ::text / ::attr() give strings; an element gives its text (or its HTML for content).
        return [
            s.root
            if isinstance(s.root, str)
            else str(s.get() if html else s.xpath("string()").get() or "")
            for s in selected
        ]


def _expr(getter: Getter | str) -> str:
    if isinstance(getter, str):
        return getter
    return getter.css or getter.xpath or getter.path or getter.template or getter.value or ""


def _json_values(found: object) -> list[str]:
    if found is None or isinstance(found, dict):
        return []
    if isinstance(found, list):
        return [str(v) for v in found if v is not None and not isinstance(v, dict | list)]
    if isinstance(found, bool):
        return [str(found).lower()]
    return [str(found)]


# --- links ----------------------------------------------------------------------------------


def item_link(raw: str | None, base: str) -> str:
    """An absolute http(s) link (relative and protocol-relative ones resolved against the list
    page); ItemError("bad_link") for `javascript:` and other non-web links."""
    if not raw:
        raise ItemError("no_link", "item has no link")
    link = absolute_url(raw, base)
    if link is None:
        raise ItemError("bad_link", f"not a web link: {raw[:120]!r}")
    return link


# --- dates ----------------------------------------------------------------------------------


def item_date(raw: str | None, date_format: str, tz: ZoneInfo, now: datetime) -> datetime | None:
    """An aware datetime, or None for no date; ItemError("bad_date") when it cannot be read."""
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    if date_format.startswith("epoch") or _is_number(text):
        return _epoch(text, tz)
    if "%" in date_format:
        try:
            parsed = datetime.strptime(text, date_format)
        except ValueError as exc:
            raise ItemError("bad_date", f"{text[:80]!r} does not match {date_format!r}") from exc
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)
    return _relative(text, tz, now) or parse_date(text, tz, now)


def wrong_epoch_unit(raw: str | None, date_format: str) -> str | None:
    """The unit the value's magnitude says, when the definition declares the other one."""
    if not raw or not date_format.startswith("epoch") or not _is_number(raw):
        return None
    unit = "epoch_ms" if float(raw) > _MS_THRESHOLD else "epoch_s"
    return unit if unit != date_format else None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _epoch(text: str, tz: ZoneInfo) -> datetime:
    try:
        value = float(text)
    except ValueError as exc:
        raise ItemError("bad_date", f"not an epoch value: {text[:80]!r}") from exc
    # The unit by magnitude: APIs mix seconds and milliseconds, and definitions get it wrong.
    seconds = value / 1000 if value > _MS_THRESHOLD else value
    try:
        return datetime.fromtimestamp(seconds, tz)
    except (OverflowError, OSError, ValueError) as exc:
        raise ItemError("bad_date", f"epoch value out of range: {text[:80]!r}") from exc


def _relative(text: str, tz: ZoneInfo, now: datetime) -> datetime | None:
    local = now.astimezone(tz)
    if text in {"刚刚", "刚才"}:
        return local
    if m := _AGO_RE.match(text):
        return local - timedelta(seconds=int(m[1]) * _AGO_UNITS[m[2]])
    if m := _DAY_RE.match(text):
        day = local - timedelta(days=_DAY_OFFSETS[m[1]])
        return _at(day, int(m[2]), int(m[3]), text)
    if m := _NO_YEAR_RE.match(text):
        # No year: this year's, or last year's when that would be in the future.
        try:
            when = local.replace(month=int(m[1]), day=int(m[2]))
        except ValueError as exc:
            raise ItemError("bad_date", f"no such day: {text!r}") from exc
        when = _at(when, int(m[3] or 0), int(m[4] or 0), text)
        if when > local + timedelta(days=1):
            when = when.replace(year=when.year - 1)
        return when
    return None


def _at(day: datetime, hour: int, minute: int, text: str) -> datetime:
    try:
        return day.replace(hour=hour, minute=minute, second=0, microsecond=0)
    except ValueError as exc:
        raise ItemError("bad_date", f"no such time: {text!r}") from exc
