"""Text to index terms, for Chinese and English alike (docs/ARCHITECTURE.md, "search").

Chinese runs become overlapping character bigrams (a run of one character stays a unigram);
Latin words and numbers are kept whole, even inside Chinese text ("MiCA", "e-CNY", "USDT"),
lower-cased, with a light plural stemmer; a few English stopwords are dropped.

Bigrams rather than a dictionary segmenter, by measurement: `python
benchmarks/segmenters.py` swaps only the Chinese rule (`split_han`) and ranks the judged queries
of the relevance test with the same BM25 SQL. One run (shared 2-core machine, noisy timings):

    segmenter          p@10 all  p@10 zh  区块链先导区 first  real zh articles/s  postings
    bigrams (shipped)     0.865    0.877  yes                             17,904    11,308
    jieba (Python)        0.843    0.833  no                         777 - 1,350     5,727
    rjieba (jieba-rs)     0.843    0.833  no                     15,509 - 17,279     5,727

(jieba's precise and search modes, `lcut` and `lcut_for_search`, score within 0.005 of each
other; postings of the fixture's 62 Chinese articles, precise mode.) A dictionary cuts a word by
its context: the seed's title "多地区块链先导区…" becomes 多/地区/块/链/先导/区, so its title
(weighted three times) no longer holds 区块 and the article ranks below another, and
"区块链算力" becomes 区块/链算力, so one of five 算力 articles is not found; bigrams cut a word
alike wherever it stands. Python jieba is 13-23× slower on real text (45-72× on
benchmarks/search.py's synthetic text, words it does not know); rjieba is as fast as bigrams.
Bigrams cost twice the postings. Besides: no dictionary to ship, every new coinage (a pilot
zone's name, a token's ticker) is found the day it appears, and a query is segmented by SQL
macros in a plain `duckdb` session, which a dictionary segmenter would not allow.

The SQL macros in schemas/ddl.py (migration 9) segment queries by the very same rules, so a
plain `duckdb` session searches without Python; tests/test_search_segment.py holds the two
together on the fixture corpus.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from operator import add

# Han ideographs: CJK extension A, the unified block, compatibility ideographs. Written as
# characters so that the same class reads alike in Python's re and DuckDB's RE2.
HAN = "㐀-䶿一-鿿豈-﫿"
LATIN = "0-9a-zà-ɏ"
TOKEN_PATTERN = f"[{HAN}]+|[{LATIN}]+(?:[-.][{LATIN}]+)*"
_TOKEN_RE = re.compile(TOKEN_PATTERN)
_LAST_LATIN = "ɏ"  # every Han character sorts after the Latin class's last
_STEMMABLE_RE = re.compile("[a-z]{4,}")

STOPWORDS = frozenset(
    {"a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "in", "is", "it", "its"}
    | {"of", "on", "or", "that", "the", "this", "to", "was", "were", "with"}
)


@lru_cache(maxsize=1 << 16)
def stem(word: str) -> str:
    """Harman's S-stemmer on plain words of four letters or more: policies → policy,
    exchanges → exchange, stablecoins → stablecoin; us/ss endings kept."""
    if not _STEMMABLE_RE.fullmatch(word):
        return word
    if word.endswith("ies") and not word.endswith(("eies", "aies")):
        return word[:-3] + "y"
    if word.endswith("es") and not word.endswith(("aes", "ees", "oes")):
        return word[:-1]
    if word.endswith("s") and not word.endswith(("us", "ss")):
        return word[:-1]
    return word


def bigrams(run: str) -> list[str]:
    """A run of Chinese characters as its overlapping bigrams; one character stays itself."""
    if len(run) == 1:
        return [run]
    return list(map(add, run, run[1:]))  # pairs joined in C


def tokens(text: str, split_han: Callable[[str], Iterable[str]] = bigrams) -> list[str]:
    """The index terms of a text, in order, repeats kept. `split_han` segments each run of
    Chinese characters; the index uses bigrams, benchmarks/segmenters.py tries others."""
    out: list[str] = []
    for token in _TOKEN_RE.findall(text.lower()):
        if token[0] > _LAST_LATIN:  # a Han run
            out.extend(split_han(token))
        elif token not in STOPWORDS:
            out.append(stem(token))  # cached: news repeats its words
    return out


def index_terms(text: str) -> str:
    """The terms of a text as one space-separated string: what an extraction worker hands to
    the writer (a string pickles and validates far faster than a list of thousands)."""
    return " ".join(tokens(text))
