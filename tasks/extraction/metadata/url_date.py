"""A date in the URL (`/2022/09/07/`, `/2022-09-07/`, `t20220907_` on gov.cn/MIIT/PBoC-style
sites, `/20220907/`, `/202209/07/`): to the day, the last source in the order of trust — a
publishing system writes it when the story is filed, not when it is updated."""

from __future__ import annotations

import re
from datetime import datetime
from urllib.parse import urlsplit

from newsflow.tasks.extraction.metadata.dates import Stamp, plausible
from newsflow.tasks.extraction.metadata.sources import Found

_URL_DATE_RES = (
    re.compile(r"/((?:19|20)\d{2})[/-](\d{1,2})[/-](\d{1,2})(?=[/_-])"),
    re.compile(r"(?:/|\bt)((?:19|20)\d{2})(\d{2})(\d{2})(?=[/_])"),
    re.compile(r"/((?:19|20)\d{2})(\d{2})/(\d{2})/"),
)


def read_url_date(url: str) -> Found:
    path = urlsplit(url).path
    for pattern in _URL_DATE_RES:
        if m := pattern.search(path):
            try:
                stamp = Stamp(datetime(int(m[1]), int(m[2]), int(m[3])), "day")
            except ValueError:
                continue
            if plausible(stamp):
                return Found(published=stamp)
    return Found()
