"""Authors as names: "记者", "本报讯", "本报记者", "通讯员", "文/", "By" and editors removed;
lists joined in order without repeats. The first source (in the order `choose.py` gives) that
leaves at least one name wins — names from several sources are not mixed, since they spell the
same people differently."""

from __future__ import annotations

import re
from collections.abc import Iterable

_PREFIX_RE = re.compile(
    r"^(?:本报记者|本报通讯员|特约记者|见习记者|实习记者|记者|通讯员|作者|撰文|文|By|by)"
    r"\s*[:：/／]?\s*"
)
_SUFFIX_RE = re.compile(r"(?:报道|摄影?|发自.*|综合报道)$")
_SPLIT_RE = re.compile(r"\s*(?:[,，、;；/]|\band\b|&)\s*")
# Words that stand where a name should and are not one.
_NOT_NAMES = {
    "记者",
    "本报讯",
    "本报记者",
    "通讯员",
    "编辑",
    "责任编辑",
    "admin",
    "administrator",
    "staff",
    "佚名",
    "未知",
    "匿名",
    "小编",
}
_EDITOR_RE = re.compile(r"^(?:责任编辑|编辑|责编|校对)\s*[:：]")
_ORIGIN_CUT_RE = re.compile(r"^(?:来源|稿件来源|文章来源)\s*[:：]\s*")


def clean_name(raw: str) -> str:
    name = raw.strip()
    if len(name) >= 4 and name.endswith("报道"):  # "北京报道": where the report was filed
        return ""
    if _EDITOR_RE.match(name):
        return ""
    if name.startswith("本报讯"):
        name = name[3:].strip("（()） ")
    for _ in range(2):
        name = _SUFFIX_RE.sub("", _PREFIX_RE.sub("", name)).strip(" ：:·")
    return name


def clean_authors(sources: Iterable[Iterable[str]], editors: set[str]) -> list[str]:
    for raw_names in sources:
        names: list[str] = []
        for raw in raw_names:
            for part in _SPLIT_RE.split(raw or ""):
                name = clean_name(part)
                if name and name.lower() not in _NOT_NAMES and name not in editors:
                    names.append(name)
        if names:
            return list(dict.fromkeys(names))
    return []


def clean_origin(raw: str | None) -> str | None:
    origin = _ORIGIN_CUT_RE.sub("", (raw or "").strip()).strip()
    return origin or None
