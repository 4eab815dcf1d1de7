"""Dictionary matching for the taggers: Aho–Corasick over many terms, leftmost-longest.

One pass of a C automaton (pyahocorasick) finds every occurrence of every term; overlaps are
then resolved the way a dictionary word segmenter does, leftmost first and longest at a given
start. That is what keeps place names inside other words out: in 浙江门户 浙江 starts first and
takes the 江 that 江门 would need, and a "blocker" (a word that is not a term, such as 供应链 or
长沙发上) wins its span and counts for nothing.

Case: a term with an uppercase letter matches as written or in capitals (CBDC, SEC, Beijing and
BEIJING); an all-lowercase term matches in any case. Terms that start or end with a Latin
letter or digit match on word boundaries only (the longest term at a position must fit them).
Texts go through `normalize_text` before matching.
"""

from __future__ import annotations

import logging
import re
import string
from collections.abc import Iterable, Mapping
from typing import NamedTuple

import ahocorasick

LOGGER = logging.getLogger(__name__)

_ALNUM = frozenset(string.ascii_letters + string.digits)
_FULLWIDTH = re.compile("[\uff10-\uff19\uff21-\uff3a\uff41-\uff5a]")
# Typographic apostrophes, so Xi’an matches Xi'an.
_APOSTROPHES = ("\u2019", "\u2018", "\u02bc")


def _halfwidth(m: re.Match[str]) -> str:
    return chr(ord(m.group()) - 0xFEE0)


def normalize_text(text: str) -> str:
    """The form terms are matched in: full-width Latin letters and digits as ASCII (ＮＦＴ is
    NFT), typographic apostrophes as ', no-break spaces as spaces.

    Not full NFKC: it would cost more than the matching itself on Chinese text, whose full-width
    punctuation it rewrites for nothing. Also keeps `str.lower` length-preserving, which the two
    automata rely on for shared offsets: İ (U+0130) is the one character whose lowercase is two.
    """
    if _FULLWIDTH.search(text):
        text = _FULLWIDTH.sub(_halfwidth, text)
    if "\u00a0" in text:
        text = text.replace("\u00a0", " ")
    for apostrophe in _APOSTROPHES:
        if apostrophe in text:
            text = text.replace(apostrophe, "'")
    if "\u0130" in text:
        text = text.replace("\u0130", "I")
    return text


class Match(NamedTuple):
    start: int
    end: int  # exclusive
    term: str  # as written in the data file
    targets: tuple[str, ...]  # what the term names: topics, a region (and its province), an org


class _Entry(NamedTuple):
    length: int
    term: str
    targets: tuple[str, ...]  # empty for a blocker
    left_boundary: bool
    right_boundary: bool


class TermMatcher:
    """Finds terms in normalized text; each term names one or more targets."""

    def __init__(self, terms: Mapping[str, Iterable[str]], blockers: Iterable[str] = ()) -> None:
        entries: dict[str, _Entry] = {}
        for term, targets in terms.items():
            key = normalize_text(term)
            previous = entries.get(key)
            merged = tuple(dict.fromkeys((*(previous.targets if previous else ()), *targets)))
            entries[key] = _entry(key, term, merged)
        for blocker in blockers:
            key = normalize_text(blocker)
            if key in entries and entries[key].targets:
                raise ValueError(f"{blocker!r} is both a term and a word that blocks terms")
            entries[key] = _entry(key, blocker, ())
        self._exact = ahocorasick.Automaton()
        self._folded = ahocorasick.Automaton()
        for key, entry in entries.items():
            if key != key.lower():
                self._exact.add_word(key, entry)
                # Headlines and wire datelines are set in capitals (BEIJING, May 10).
                if key.upper() not in entries:
                    self._exact.add_word(key.upper(), entry)
            else:
                self._folded.add_word(key, entry)
        self._automata = []
        for automaton, fold in ((self._exact, False), (self._folded, True)):
            if len(automaton):
                automaton.make_automaton()
                self._automata.append((automaton, fold))

    def find(self, text: str) -> list[Match]:
        """Non-overlapping term matches (blockers dropped) in a `normalize_text` text."""
        candidates: list[tuple[int, int, _Entry]] = []
        for automaton, fold in self._automata:
            haystack = text.lower() if fold else text
            # iter_long already resolves overlaps leftmost-longest within one automaton.
            for last, entry in automaton.iter_long(haystack):
                start = last - entry.length + 1
                if entry.left_boundary and start > 0 and haystack[start - 1] in _ALNUM:
                    continue
                if entry.right_boundary and haystack[last + 1 : last + 2] in _ALNUM:
                    continue
                candidates.append((start, -entry.length, entry))
        if len(self._automata) > 1:
            candidates.sort(key=_position)
        matches = []
        cursor = 0
        for start, negative_length, entry in candidates:
            if start < cursor:
                continue
            cursor = start - negative_length
            if entry.targets:
                matches.append(Match(start, cursor, entry.term, entry.targets))
        return matches


def _position(candidate: tuple[int, int, _Entry]) -> tuple[int, int]:
    return candidate[0], candidate[1]


def _entry(key: str, term: str, targets: tuple[str, ...]) -> _Entry:
    return _Entry(len(key), term, targets, key[0] in _ALNUM, key[-1] in _ALNUM)
