"""Dates as pages write them, read with the precision they state.

A `Stamp` keeps what the page said and no more: a date without a time stays a date
(precision "day"), a month stays a month. Time zones are applied later, in normalize, where the
feed's zone is known (`resolve_stamp`): the extraction workers see only the page.

The rule for dates without a time: `published_at` is the local midnight of that date in the
source's zone, and is stored only together with `published_precision` = "day" (or month/year)
and `published_date` = that local calendar date. Grouping by day uses `published_date`, which
never moves to the previous day the way a UTC midnight would.

Own regexes cover the numeric and Chinese spellings (`2022-09-07 17:26`, `2005-5-7 21:23:57`,
`2022年09月07日 17:26`, epoch seconds); English prose dates ("December 5, 2026, 3:04 PM") go
to dateparser, whose result is kept only to the precision the text shows.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

import dateparser

LOGGER = logging.getLogger(__name__)

PRECISIONS = ("year", "month", "day", "minute", "second")
_MIN_YEAR = 1990
# A date more than this ahead of now is a typo or a placeholder, not an early publication.
MAX_AHEAD = timedelta(days=1)

_NUMERIC_RE = re.compile(
    r"(?<!\d)(?P<y>(?:19|20)\d{2})\s*(?P<sep>[-/.年])\s*(?P<m>\d{1,2})\s*(?:[-/.月])\s*"
    r"(?P<d>\d{1,2})(?!\d)\s*日?"
    r"(?:[\sT]*(?P<H>\d{1,2})\s*[:：时]\s*(?P<M>\d{2})(?:\s*[:：分]\s*(?P<S>\d{2}))?"
    r"(?:\.\d+)?\s*(?P<tz>Z|[+-]\d{2}:?\d{2})?)?"
)
_MONTH_RE = re.compile(r"(?<!\d)(?P<y>(?:19|20)\d{2})\s*(?:年|[-/.])\s*(?P<m>\d{1,2})\s*月")
_EPOCH_RE = re.compile(r"^\s*(\d{10})(\d{3})?\s*$")
_EN_MONTHS = (
    r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.?"  # English month names
)
_EN_DATE_RE = re.compile(
    rf"(?:{_EN_MONTHS}\s+\d{{1,2}},?\s+(?:19|20)\d{{2}}|\d{{1,2}}\s+{_EN_MONTHS}\s+(?:19|20)\d{{2}})"
    r"(?:(?:,|\s+at)?\s+\d{1,2}:\d{2}(?::\d{2})?\s*(?:[AaPp]\.?[Mm]\.?)?"
    r"(?:\s*(?:UTC|GMT|[A-Z]{2,4}|[+-]\d{2}:?\d{2}))?)?",
    re.IGNORECASE,
)
_TIME_RE = re.compile(r"\d{1,2}:\d{2}(:\d{2})?")
_US_ZONES: dict[str, tzinfo] = {
    "ET": ZoneInfo("America/New_York"),
    "EST": timezone(timedelta(hours=-5)),
    "EDT": timezone(timedelta(hours=-4)),
    "PT": ZoneInfo("America/Los_Angeles"),
    "GMT": UTC,
    "UTC": UTC,
}


@dataclass(frozen=True)
class Stamp:
    """A date as a page states it: naive when the page gave no zone, `precision` saying how
    much of it is real (the rest is zero and means nothing)."""

    value: datetime
    precision: str
    source: str = ""

    def with_source(self, source: str) -> Stamp:
        return Stamp(self.value, self.precision, source)

    def to_text(self) -> str:
        """ISO text to this stamp's precision: what ExtractedPage carries across processes."""
        if self.precision in ("year", "month", "day"):
            return self.value.date().isoformat()
        spec = "seconds" if self.precision == "second" else "minutes"
        return self.value.isoformat(timespec=spec)

    @classmethod
    def from_text(cls, text: str, precision: str, source: str) -> Stamp:
        return cls(datetime.fromisoformat(text), precision, source)


def parse_stamp(text: str | None, now: datetime | None = None) -> Stamp | None:
    """The first date in `text` at the precision it is written with; None when there is none,
    or when it cannot be true (2022-13-45, 0000-00-00, before 1990, over a day ahead)."""
    if not text or not (text := text.strip()):
        return None
    stamp = _epoch(text) or _numeric(text) or _english(text) or _month(text)
    return stamp if stamp and plausible(stamp, now) else None


def plausible(stamp: Stamp, now: datetime | None = None) -> bool:
    now = now or datetime.now(UTC)
    value = stamp.value if stamp.value.tzinfo else stamp.value.replace(tzinfo=UTC)
    return value.year >= _MIN_YEAR and value <= now + MAX_AHEAD


def _epoch(text: str) -> Stamp | None:
    if not (m := _EPOCH_RE.match(text)):
        return None
    return Stamp(datetime.fromtimestamp(int(m[1]), UTC), "second")


def _numeric(text: str) -> Stamp | None:
    for m in _NUMERIC_RE.finditer(text):
        if m["sep"] == "年" and "月" not in m[0]:
            continue
        try:
            value = datetime(int(m["y"]), int(m["m"]), int(m["d"]))
            precision = "day"
            if m["H"] is not None:
                value = value.replace(hour=int(m["H"]), minute=int(m["M"]))
                precision = "minute"
                if m["S"] is not None:
                    value, precision = value.replace(second=int(m["S"])), "second"
                if m["tz"]:
                    value = value.replace(tzinfo=_offset(m["tz"]))
        except ValueError:  # 2022-13-45, 25:61: not a date; look further
            continue
        return Stamp(value, precision)
    return None


def _offset(text: str) -> timezone:
    if text == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    return timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))


def _month(text: str) -> Stamp | None:
    if not (m := _MONTH_RE.search(text)):
        return None
    try:
        return Stamp(datetime(int(m["y"]), int(m["m"]), 1), "month")
    except ValueError:
        return None


def _english(text: str) -> Stamp | None:
    if not (m := _EN_DATE_RE.search(text)):
        return None
    found = m[0]
    zone = next((z for abbr, z in _US_ZONES.items() if found.endswith(" " + abbr)), None)
    if zone:
        found = found[: -len(found.rsplit(" ", 1)[1])].strip()
    parsed = dateparser.parse(
        found, languages=["en"], settings={"PREFER_DAY_OF_MONTH": "first", "STRICT_PARSING": True}
    )
    if parsed is None:
        return None
    if zone and parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    timed = _TIME_RE.search(found)
    if not timed:
        return Stamp(datetime(parsed.year, parsed.month, parsed.day), "day")
    return Stamp(parsed, "second" if timed[1] else "minute")


def resolve_stamp(stamp: Stamp, tz: ZoneInfo) -> tuple[datetime, date]:
    """(published_at in UTC, published_date): a naive time is read in `tz`; a date without a
    time is the local midnight of that date in `tz`, and its calendar date is the date itself,
    whatever day that midnight falls on in UTC."""
    value = stamp.value
    if stamp.precision in ("year", "month", "day"):
        day = value.date()
        return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC), day
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    # The calendar date is the date in the zone the page stated (a UTC "Z" or an epoch is a
    # serialization, not a statement: there the source's zone decides).
    local = value.astimezone(tz) if value.utcoffset() == timedelta(0) else value
    return value.astimezone(UTC), local.date()


def finer(a: str, b: str) -> bool:
    """Whether precision `a` says more than `b`."""
    return PRECISIONS.index(a) > PRECISIONS.index(b)
