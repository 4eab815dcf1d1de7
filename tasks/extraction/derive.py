"""Per-article CPU where the page is extracted: coverage tags, the body's dedup fingerprint and
its search terms.

On two cores the flow process's CPU is taken straight from extraction (docs/ARCHITECTURE.md,
"data flow"), so what is computed from an article's text runs in the extraction worker (a
process of the pool, or a Dask worker's thread), right after extraction, and comes back with
the page (`ExtractedPage.derived`). The pipeline hands it on in the batch
(`ArticleBatch.derived`, by article_id) and the loader takes it (`article_facts`,
`article_terms`) for every article whose title and body are the ones it was made from. The
rest — articles made from the feed's text, posts, declared sources' detail pages, a
re-extraction whose stored title differs from the page's — the loader tags, fingerprints and
segments itself, with the same functions: so an article's index terms never depend on which of
the two made them (`newsflow reindex` segments the stored body too).

The worker sees the page, not the feed's entry: it takes the title and body that normalize
gives when the entry's title agrees with the page's, the usual case. Where they differ the
loader finds another `text_key` and computes; the stored rows are the same either way.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from newsflow.schemas.models import Article, Derived, ExtractedPage
from newsflow.tasks.coverage.tag import (
    ArticleTags,
    DocTag,
    OrgTag,
    RegionTag,
    Tagger,
    TopicTag,
    load_tagger,
)
from newsflow.tasks.dedup.fingerprint import (
    CHARS_PER_SHINGLE,
    LSH_VERSION,
    MIN_SHINGLES,
    NUM_PERM,
    WORDS_PER_SHINGLE,
    BodyPrint,
    Fingerprint,
    Shingles,
    body_prints,
    fingerprint_articles,
)
from newsflow.tasks.extraction.normalize import clean_title, page_body
from newsflow.tasks.search.segment import index_terms

LOGGER = logging.getLogger(__name__)


def _scheme() -> str:
    # Results of another newsflow (a staged batch from an older worker) are not trusted: its
    # story-text rules or tag fields may differ.
    try:
        release = version("newsflow")
    except PackageNotFoundError:
        release = "unknown"
    parts = (release, CHARS_PER_SHINGLE, WORDS_PER_SHINGLE, MIN_SHINGLES, NUM_PERM, LSH_VERSION)
    return "/".join(str(p) for p in parts)


SCHEME = _scheme()


def text_key(title: str, body: str) -> str:
    """Names the exact text tags and fingerprint were made from."""
    data = f"{title}\x1f{body}".encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def derive(title: str, body: str, tagger: Tagger) -> Derived:
    """Tags, body print and body terms of an article with this title and body."""
    tags = tagger.tag("", title, body)
    (found,) = body_prints([(title, body)])
    return Derived.model_validate(
        {
            "version": SCHEME,
            "text_key": text_key(title, body),
            "tagger": tagger.version,
            "topics": tags.topics,
            "regions": tags.regions,
            "docs": tags.docs,
            "orgs": tags.orgs,
            "body_key": found.body_key,
            "shingles": found.shingles.tobytes() if found.shingles is not None else None,
            "signature": found.signature.tobytes() if found.signature is not None else None,
            "body_terms": index_terms(body),
        }
    )


def page_texts(page: ExtractedPage) -> tuple[str, str]:
    """The title and body normalize makes of this page when the feed's title agrees with it
    (newsflow.tasks.extraction.normalize.build_feed_article)."""
    title = clean_title(page.title, [page.sitename])
    body = page_body(page, (title,))
    return title or body[:80].split("\n")[0], body


@dataclass(frozen=True)
class Derivation:
    """The per-article work of an extraction worker, with the tagger's files (None: the
    packaged ones). Picklable: it travels to the worker with each page."""

    lexicon: Path | None = None
    gazetteer: Path | None = None

    def __call__(self, page: ExtractedPage) -> ExtractedPage:
        try:
            tagger = load_tagger(self.lexicon, self.gazetteer)  # built once per worker
            page.derived = derive(*page_texts(page), tagger)
        except Exception:  # the loader computes what the worker could not, and says why
            LOGGER.debug("no tags or fingerprint for %s", page.url, exc_info=True)
        return page


def derived_of(articles: Iterable[Article], pages: Iterable[ExtractedPage]) -> dict[str, Derived]:
    """What the workers derived for these articles' pages, by article_id. An article took its
    url from its page; a match by url alone is safe, as the loader checks each text_key."""
    by_url = {p.url: p.derived for p in pages if p.derived is not None}
    return {a.article_id: by_url[a.url] for a in articles if a.url in by_url}


def article_facts(
    articles: Sequence[Article], derived: Mapping[str, Derived], tagger: Tagger
) -> tuple[list[ArticleTags], list[Fingerprint]]:
    """Each article's tags and fingerprint: the worker's where they fit the article's title,
    body and this tagger, computed here otherwise."""
    tags: list[ArticleTags | None] = []
    bodies: list[BodyPrint | None] = []
    for article in articles:
        made = _fitting(derived.get(article.article_id), article, tagger)
        tags.append(_tags(article.article_id, made) if made else None)
        bodies.append(_body(made) if made else None)
    todo = [i for i, b in enumerate(bodies) if b is None]
    if todo:
        computed = body_prints([(articles[i].title, articles[i].body_text) for i in todo])
        for i, found in zip(todo, computed, strict=True):
            a = articles[i]
            tags[i], bodies[i] = tagger.tag(a.article_id, a.title, a.body_text), found
    LOGGER.debug(
        "%d of %d articles tagged and fingerprinted where extracted",
        len(articles) - len(todo),
        len(articles),
    )
    done = [b for b in bodies if b is not None]
    return [t for t in tags if t is not None], fingerprint_articles(articles, done)


def article_terms(articles: Sequence[Article], derived: Mapping[str, Derived]) -> list[str]:
    """Each article's body terms: the worker's where they were made from this very title and
    body, segmented here otherwise (before the writer's lock is taken)."""
    terms = []
    for article in articles:
        made = _made_from(derived.get(article.article_id), article)
        worker = made.body_terms if made is not None else None
        terms.append(worker if worker is not None else index_terms(article.body_text))
    return terms


def _made_from(made: Derived | None, article: Article) -> Derived | None:
    if made is None or made.version != SCHEME:
        return None
    return made if made.text_key == text_key(article.title, article.body_text) else None


def _fitting(made: Derived | None, article: Article, tagger: Tagger) -> Derived | None:
    fits = _made_from(made, article)
    return fits if fits is not None and fits.tagger == tagger.version else None


def _tags(article_id: str, made: Derived) -> ArticleTags:
    return ArticleTags(
        article_id,
        [TopicTag(*t) for t in made.topics],
        [RegionTag(*r) for r in made.regions],
        [DocTag(*d) for d in made.docs],
        [OrgTag(*o) for o in made.orgs],
    )


def _body(made: Derived) -> BodyPrint:
    def array(data: bytes | None) -> Shingles | None:
        return np.frombuffer(data, dtype=np.uint32) if data is not None else None

    return BodyPrint(made.body_key, array(made.shingles), array(made.signature))
