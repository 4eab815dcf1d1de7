"""Tag articles for coverage analysis: topics, regions, policy documents, organizations.

Pure functions over title and body text, run where pages are extracted
(`newsflow.tasks.extraction.derive`) or, for articles without a page, by the loader;
`newsflow.tasks.storage.tags` writes the results (in bulk, inside the load transaction) and
re-tags stored articles. The data comes from the lexicon and the
gazetteer (`schemas/lexicon.py`); one `Tagger` is built per pair of files and reused.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from newsflow.schemas.errors import ConfigError
from newsflow.schemas.lexicon import (
    DEFAULT_GAZETTEER,
    DEFAULT_LEXICON,
    Gazetteer,
    Lexicon,
    load_gazetteer,
    load_lexicon,
)
from newsflow.tasks.coverage.doc_titles import DocTyper
from newsflow.tasks.coverage.match import TermMatcher, normalize_text

LOGGER = logging.getLogger(__name__)

PREFECTURE = "prefecture"
# Suffixes a prefecture's short form drops (苏州市 → 苏州); used for "province + prefecture"
# forms such as 山东德州, which are unambiguous even where 德州 alone is not.
_PREFECTURE_SUFFIXES = ("市", "地区", "盟")


class TopicTag(NamedTuple):
    topic: str
    terms: list[str]
    hits: int
    title_hits: int
    score: float


class RegionTag(NamedTuple):
    region: str
    province: str
    level: str
    hits: int


class DocTag(NamedTuple):
    doc_title: str
    doc_type: str
    hits: int


class OrgTag(NamedTuple):
    org: str
    country: str
    hits: int


@dataclass
class ArticleTags:
    article_id: str
    topics: list[TopicTag] = field(default_factory=list)
    regions: list[RegionTag] = field(default_factory=list)
    docs: list[DocTag] = field(default_factory=list)
    orgs: list[OrgTag] = field(default_factory=list)


class Region(NamedTuple):
    province: str
    level: str


def region_index(gazetteer: Gazetteer) -> tuple[dict[str, Region], dict[str, tuple[str, ...]]]:
    """(region → its province and level, name → the regions it names) from the gazetteer.

    A name given to two places is an error in the file: it would be tagged at random.
    """
    regions: dict[str, Region] = {}
    names: dict[str, tuple[str, ...]] = {}

    blocked = set(gazetteer.not_places)

    def add(name: str, targets: tuple[str, ...], *, derived: bool = False) -> None:
        if derived and name in blocked:
            return
        if name in names and names[name] != targets:
            if derived:  # a generated form never overrides one written in the file
                return
            raise ConfigError(f"gazetteer: {name!r} names both {names[name][0]} and {targets[0]}")
        names[name] = targets

    for province in gazetteer.provinces:
        regions[province.name] = Region(province.name, province.level)
        for name in (province.name, *province.names, *province.en):
            add(name, (province.name,))
    for province in gazetteer.provinces:
        province_forms = [province.name, *province.names]
        for pref in province.prefectures:
            regions[pref.name] = Region(province.name, PREFECTURE)
            for name in (pref.name, *pref.names, *pref.en):
                add(name, (pref.name,))
            bare = {pref.name, *pref.names, _strip_suffix(pref.name)}
            for p in province_forms:
                for b in bare:
                    add(p + b, (pref.name, province.name), derived=True)
            # 吉林市场 is the province's market, not 吉林市 + 场.
            short = _strip_suffix(pref.name)
            if pref.name.endswith("市") and short in names and names[short] != (pref.name,):
                add(pref.name + "场", names[short], derived=True)
    for word in gazetteer.still_places:
        starts = [n for n in names if word.startswith(n) and n != word]
        if not starts:
            raise ConfigError(f"gazetteer: still_places word {word!r} starts with no place name")
        add(word, names[max(starts, key=len)])
    return regions, names


def _strip_suffix(name: str) -> str:
    for suffix in _PREFECTURE_SUFFIXES:
        if name.endswith(suffix) and len(name) - len(suffix) >= 2:
            return name[: -len(suffix)]
    return name


class Tagger:
    """Everything the lexicon and gazetteer say, compiled for fast matching."""

    def __init__(self, lexicon: Lexicon, gazetteer: Gazetteer) -> None:
        self.lexicon = lexicon
        # Names what this tagger finds: tags made elsewhere with the same version are its own.
        data = f"{lexicon.model_dump_json()}\x1e{gazetteer.model_dump_json()}"
        self.version = hashlib.blake2b(data.encode("utf-8"), digest_size=8).hexdigest()
        topic_terms: dict[str, list[str]] = defaultdict(list)
        for topic, config in lexicon.topics.items():
            for term in config.terms:
                topic_terms[term].append(topic)
        self.regions, place_names = region_index(gazetteer)
        try:
            self._topics = TermMatcher(topic_terms, lexicon.false_friends.terms)
            self._places = TermMatcher(place_names, gazetteer.not_places)
        except ValueError as exc:
            raise ConfigError(f"lexicon or gazetteer: {exc}") from exc

        org_terms: dict[str, list[str]] = {}
        self._org_country: dict[str, str] = {}
        for org in lexicon.orgs.entries:
            self._org_country[org.name] = org.country
            for term in org.terms:
                if term in org_terms and org_terms[term] != [org.name]:
                    raise ConfigError(
                        f"lexicon: {term!r} names both {org_terms[term][0]} and {org.name}"
                    )
                org_terms[term] = [org.name]
        # Short names that mean another body in an article that names that body in full.
        self._in_context: dict[str, list[str]] = defaultdict(list)
        for org in lexicon.orgs.entries:
            for term in org.in_context:
                if term not in org_terms:
                    raise ConfigError(f"lexicon: in_context term {term!r} of {org.name} is no term")
                self._in_context[term].append(org.name)
        try:
            self._orgs = TermMatcher(org_terms, lexicon.orgs.not_orgs)
        except ValueError as exc:
            raise ConfigError(f"lexicon: {exc}") from exc
        docs = lexicon.policy_docs
        self._docs = DocTyper(docs.endings, docs.publications, docs.drafts)

    def tag(self, article_id: str, title: str | None, body: str | None) -> ArticleTags:
        title = title or ""
        body = body or ""
        norm_title, norm_body = normalize_text(title), normalize_text(body)
        return ArticleTags(
            article_id=article_id,
            topics=self.topics(norm_title, norm_body),
            regions=self.places(norm_title, norm_body),
            docs=[DocTag(*d) for d in self._docs.documents((title, body))],
            orgs=self.orgs(norm_title, norm_body),
        )

    def topics(self, title: str, body: str) -> list[TopicTag]:
        """Topics whose score reaches their threshold; texts already normalized."""
        title_hits: Counter[str] = Counter()
        body_hits: Counter[str] = Counter()
        terms: dict[str, dict[str, None]] = defaultdict(dict)
        for counter, text in ((title_hits, title), (body_hits, body)):
            for m in self._topics.find(text):
                for topic in m.targets:
                    counter[topic] += 1
                    terms[topic][m.term] = None
        weight = self.lexicon.scoring.title_weight
        tags = []
        for topic in terms:
            score = weight * title_hits[topic] + body_hits[topic]
            if score >= self.lexicon.min_score(topic):
                tags.append(
                    TopicTag(
                        topic,
                        sorted(terms[topic]),
                        title_hits[topic] + body_hits[topic],
                        title_hits[topic],
                        score,
                    )
                )
        return tags

    def places(self, *texts: str) -> list[RegionTag]:
        hits: Counter[str] = Counter()
        for text in texts:
            for m in self._places.find(text):
                hits.update(m.targets)
        return [
            RegionTag(region, self.regions[region].province, self.regions[region].level, n)
            for region, n in hits.items()
        ]

    def orgs(self, *texts: str) -> list[OrgTag]:
        """Organizations named; a short name listed in an org's `in_context` counts for that
        org when the article also names it otherwise (证监会 in an article about 香港证监会)."""
        hits: Counter[str] = Counter()
        contextual: Counter[tuple[str, str]] = Counter()
        for text in texts:
            for m in self._orgs.find(text):
                if m.term in self._in_context:
                    contextual[(m.term, m.targets[0])] += 1
                else:
                    hits.update(m.targets)
        for (term, usual), n in contextual.items():
            named = [org for org in self._in_context[term] if hits[org]]
            hits[max(named, key=hits.__getitem__) if named else usual] += n
        return [OrgTag(org, self._org_country[org], n) for org, n in hits.items()]


@lru_cache(maxsize=8)
def _cached_tagger(
    lexicon_path: Path, gazetteer_path: Path, _lexicon_mtime: int, _gazetteer_mtime: int
) -> Tagger:
    return Tagger(load_lexicon(lexicon_path), load_gazetteer(gazetteer_path))


def load_tagger(lexicon_path: Path | None = None, gazetteer_path: Path | None = None) -> Tagger:
    """The tagger for these files (default: the packaged ones), rebuilt when a file changes.

    Building one takes a few tenths of a second, so every load batch shares it.
    """
    lexicon_path = Path(lexicon_path or DEFAULT_LEXICON).resolve()
    gazetteer_path = Path(gazetteer_path or DEFAULT_GAZETTEER).resolve()
    return _cached_tagger(
        lexicon_path, gazetteer_path, _mtime(lexicon_path), _mtime(gazetteer_path)
    )


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0  # load_* reports the missing file
