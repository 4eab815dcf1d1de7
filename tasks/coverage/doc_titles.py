"""Policy documents named in a text: titles in 《…》, typed by how they end.

Chinese marks a document title with 《…》, a title inside a title with 〈…〉 (and, in practice,
sometimes with 《…》 again): 《关于印发〈数字经济发展规划〉的通知》 names two documents, and
both are listed. （…） parts stay in the title, since they tell editions apart
(《…三年行动方案（2022—2024年）》), but not in the ending that gives the type.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

_OPEN = {"《": "》", "〈": "〉"}
_CLOSE = {v: k for k, v in _OPEN.items()}
# Longer than this between the marks is a stray bracket, not a title.
MAX_TITLE_CHARS = 120
_TRAILING_PARENS = re.compile(r"(?:[（(][^（）()]*[）)]\s*)+$")
_MARKS = re.compile(r"[《》〈〉\n]")
_SPACES = re.compile(r"\s+")
_CJK = re.compile(r"[\u4e00-\u9fff]")

OTHER = "other"
PUBLICATION = "报刊"


def find_doc_titles(text: str) -> list[str]:
    """Every 《…》 title (and 〈…〉 or 《…》 title nested in one), in order of appearance.

    A bracket left open at the end of a line, or open for too long, is dropped.
    """
    found: list[tuple[int, str]] = []
    stack: list[tuple[str, int]] = []
    for mark in _MARKS.finditer(text):
        i, ch = mark.start(), mark.group()
        if ch == "\n":
            stack.clear()
        elif ch == "《" or (ch == "〈" and stack):
            stack.append((ch, i))
        elif ch in _CLOSE and stack and stack[-1][0] == _CLOSE[ch]:
            _, start = stack.pop()
            title = clean_title(text[start + 1 : i])
            if title and i - start - 1 <= MAX_TITLE_CHARS:
                found.append((start, title))
    # A nested title closes first; list titles by where they open.
    return [title for _, title in sorted(found)]


def clean_title(title: str) -> str:
    """One spelling per title: trimmed, spaces collapsed, () as （） in Chinese titles."""
    title = _SPACES.sub(" ", title).strip()
    if _CJK.search(title):
        title = title.replace("(", "（").replace(")", "）")
    return title


class DocTyper:
    """Types a title by its ending; the longest ending that fits wins.

    Draft markers at the end (条例草案, …意见征求意见稿) are set aside like （…） parts.
    """

    def __init__(
        self, endings: Iterable[str], publications: Iterable[str], drafts: Iterable[str] = ()
    ) -> None:
        typed = {e: e for e in endings}
        typed.update(dict.fromkeys(publications, PUBLICATION))
        self._endings = sorted(typed.items(), key=lambda kv: -len(kv[0]))
        self._drafts = tuple(drafts)

    def type_of(self, title: str) -> str:
        core = _TRAILING_PARENS.sub("", title).rstrip("〉》 ") or title
        for draft in self._drafts:
            if core.endswith(draft) and len(core) > len(draft):
                core = core[: -len(draft)]
                break
        for ending, kind in self._endings:
            if core.endswith(ending):
                return kind
        return OTHER

    def documents(self, texts: Iterable[str]) -> list[tuple[str, str, int]]:
        """(title, type, mentions) for the titles in the texts, in order of first mention."""
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(find_doc_titles(text))
        return [(title, self.type_of(title), n) for title, n in counts.items()]
