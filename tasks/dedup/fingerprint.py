"""Fingerprint article bodies for near-duplicate detection: the story's own text, shingles that
suit its script, MinHash signatures and LSH band hashes, vectorized with numpy over a batch.

- Story text: NFKC, lower case, and without the lines that are not the story (来源, 编辑,
  责任编辑, reporter credits, bylines, copyright lines, "（完）", wire datelines), which are
  exactly what a syndicating site changes.
- Tokens: every character of an unspaced script (Han, kana, Thai, …) is a token, every run of
  letters or digits in other scripts is one word. Shingles are runs of consecutive tokens:
  character n-grams for Chinese, word n-grams for the rest. (Whitespace-token SimHash would see
  a Chinese paragraph as one token.)
- Signatures are datasketch's MinHash (scheme "affine32", the same seed and permutations), so a
  signature equals `datasketch.MinHash(...).update_batch(shingles)`; computed here in bulk they
  cost ~21 µs an article against ~210 µs for a MinHash object per article (measured on the
  benchmark's articles), which hashes its input one value at a time.

Over 450 lines for a reason: shingling, the MinHash signature and the LSH bands must agree on
one set of constants and one normalization of the text; split, they could drift apart.
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt

from newsflow.schemas.models import Article

LOGGER = logging.getLogger(__name__)

Shingles = npt.NDArray[np.uint32]  # sorted, unique shingle hashes of one article
Signature = npt.NDArray[np.uint32]  # MinHash values of one article

# --- story text -----------------------------------------------------------------------------

# A line that is a credit, not the story: a label and a separator (来源：…, 责任编辑：…, Photo: …).
_CREDIT_LINE_RE = re.compile(
    r"^\W*(?:(?:文章|稿件|本文|图片|消息|新闻|内容)?来源|出处|原标题|原文标题|原文链接|"
    r"(?:责任|值班|实习)?编辑|责编|主编|编审|审核|审校|校对|排版|出品|监制|策划|"
    r"作者|撰文|撰稿|文|图|摄影?|(?:本报|本网|实习|特约)?记者|通讯员|"
    r"(?:免责|特别|版权)?声明|风险提示|"
    r"source|photo|image|editing|reporting|writing|additional reporting|compiled|edited)"
    r"\s*(?:by)?\s*[：:｜|/]",
    re.IGNORECASE,
)
# Reporter lines without a separator: "（记者 张三 李四）", "本报记者 王五 报道".
_REPORTER_LINE_RE = re.compile(r"^\W*(?:本报|本网|特约|实习)?(?:记者|通讯员)[^。！？!?]{0,24}$")
# English bylines: "By Jane Doe, Example Wire", "Reporting by Jane Doe; Editing by John Roe".
# Every word after "by" is a name or a connector, so "By the end of the year, …" stays.
_BYLINE_RE = re.compile(
    r"^(?:(?:additional )?reporting|writing|editing|compiled)? ?by\s+(.+)$", re.I
)
_BYLINE_CONNECTORS = frozenset({"and", "&", "in", "for", "by", "editing", "reporting", "writing"})
_BYLINE_MAX_WORDS = 12
# Links and prompts around the story: "点击阅读全文", "相关阅读", "Read more: …".
_PROMPT_LINE_RE = re.compile(
    r"^\W*(?:(?:点击)?(?:阅读|查看)(?:全文|原文|更多)|(?:相关|推荐|延伸)阅读|"
    r"read more|continue reading|related|follow us|sign up|subscribe)\b",
    re.IGNORECASE,
)
_RIGHTS_RE = re.compile(
    r"all rights reserved|版权所有|copyright\s*©|©|未经(?:授权|许可)[^。]{0,12}(?:转载|使用)|"
    r"转载请注明|不得转载",
    re.IGNORECASE,
)
# Every rights line contains one of these; checking them first spares most lines the search.
_RIGHTS_HINTS = ("©", "版权", "转载", "eserved", "ESERVED")
# Copyright lines, bylines and reporter credits are short; a paragraph that mentions "版权所有"
# is the story (about copyright). Only a labelled credit (免责声明：…) may be longer.
_MAX_CREDIT_CHARS = 200
# "（完）", "(END)" closing a dispatch.
_END_MARK_RE = re.compile(r"\s*[（(【\[]\s*(?:完|end|ends)\s*[)）】\]]\s*$", re.IGNORECASE)
# Datelines a wire copy rewrites: "财联社3月5日电，", "新华社北京3月5日电（记者 王五）",
# "本报讯（记者 张三）", "HONG KONG, March 5 (Example Wire) - ".
_LEAD_IN_RES = (
    re.compile(
        r"^[^，。,\s]{0,16}?\d{1,2}月\d{1,2}日\s*(?:电|讯|消息)\s*(?:[（(][^）)]{0,24}[）)])?\s*[，,：:]?\s*"
    ),
    re.compile(r"^(?:本报|本网|本刊)讯\s*(?:[（(][^）)]{0,24}[）)])?\s*[，,：:]?\s*"),
    re.compile(
        r"^[A-Z][A-Z.' ]{1,30}(?:,\s*[A-Z][a-z]{2,8}\.?\s+\d{1,2})?\s*(?:\([^)]{1,30}\))?\s*"
        r"[-—–]{1,2}\s+"
    ),
)
# A line that is only a date or time, which some page wrappers leave in the extracted text.
_DATE_LINE_RE = re.compile(r"^[\d\s:/.,年月日时分秒-]+$")
_NON_WORD_RE = re.compile(r"[\W_]+")
# The line patterns above in one pass of the regex engine.
_NOT_STORY_LINE_RE = re.compile(
    "|".join(
        f"(?:{pattern.pattern})"
        for pattern in (_DATE_LINE_RE, _CREDIT_LINE_RE, _REPORTER_LINE_RE, _PROMPT_LINE_RE)
    ),
    re.IGNORECASE,
)


def story_text(body: str, title: str = "") -> str:
    """The words of the story itself: NFKC, credits and wrappers removed, lower case, words
    separated by single spaces (unspaced scripts stay unspaced). A line repeating the title goes
    too: a copy has its own headline, and extraction keeps it on some sites and not others."""
    return _NON_WORD_RE.sub(" ", _story_lines(body, title)).strip()


def _story_lines(body: str, title: str) -> str:
    """`story_text` with its punctuation: the tokenizer reads that as spaces anyway."""
    headline = _folded(title)
    lines: list[str] = []
    for raw in unicodedata.normalize("NFKC", body).split("\n"):
        line = raw.strip()
        if not line or _is_not_story(line) or _is_headline(line, headline):
            continue
        if not lines:
            line = _strip_lead_in(line)
        if line[-1] in ")）】]":
            line = _END_MARK_RE.sub("", line)
        lines.append(line)
    return " ".join(lines).lower()


def _folded(text: str) -> str:
    return _NON_WORD_RE.sub("", unicodedata.normalize("NFKC", text).lower())


def _is_headline(line: str, headline: str) -> bool:
    # Only a line about as long as the headline can repeat it: skip folding the paragraphs.
    return bool(headline) and len(line) <= 2 * len(headline) + 8 and _folded(line) == headline


def _is_not_story(line: str) -> bool:
    if len(line) > _MAX_CREDIT_CHARS:
        return bool(_CREDIT_LINE_RE.match(line))
    if _NOT_STORY_LINE_RE.match(line):
        return True
    if any(hint in line for hint in _RIGHTS_HINTS) and _RIGHTS_RE.search(line):
        return True
    return _is_byline(line)


def _is_byline(line: str) -> bool:
    match = _BYLINE_RE.match(line)
    if not match:
        return False
    words = re.findall(r"[^\s,;]+", match[1])
    return len(words) <= _BYLINE_MAX_WORDS and all(
        w[0].isupper() or w.lower() in _BYLINE_CONNECTORS for w in words
    )


def _strip_lead_in(line: str) -> str:
    for pattern in _LEAD_IN_RES:
        line = pattern.sub("", line, count=1)
    return line


# --- shingles -------------------------------------------------------------------------------

# Shingle sizes, chosen on the evaluation set (tests/fixtures/dedup): 4 characters of Chinese is
# about two words, specific enough that different reports on one policy (which share its long
# official name) stay below the thresholds; 3 words is the usual w-shingle for English news.
CHARS_PER_SHINGLE = 4
WORDS_PER_SHINGLE = 3
# An article whose story text gives fewer shingles is too short to tell copies from reports
# that share a template ("比特币跌破6万美元"): it is not compared by body.
MIN_SHINGLES = 30

_UNSPACED_RANGES = (
    (0x0E00, 0x0EFF),  # Thai, Lao
    (0x1000, 0x109F),  # Myanmar
    (0x1780, 0x17FF),  # Khmer
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0x20000, 0x323AF),  # CJK extensions B–H
)
_UNSPACED_BMP = np.zeros(0x10000, dtype=bool)
for _low, _high in _UNSPACED_RANGES:
    _UNSPACED_BMP[_low : min(_high, 0xFFFF) + 1] = True
_ASTRAL_CJK = (0x20000, 0x323AF)
# Letters and digits of the Basic Multilingual Plane (what `[^\W_]` matches there).
_WORD_BMP = np.array([chr(c).isalnum() for c in range(0x10000)], dtype=bool)
# Ends each text in a chunk; a control character, which story texts no longer contain.
_DOC_SEPARATOR = 0x1E
_MAX_TOKEN_CHARS = 64
_CHUNK_CHARS = 400_000  # bounds the temporary arrays of one vectorized pass
_U64 = np.uint64
_CHAR_BASE = _U64(0x100000001B3)
_TOKEN_BASE = _U64(0x9E3779B97F4A7C15)


def _powers(base: np.uint64, count: int) -> npt.NDArray[np.uint64]:
    out = np.ones(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for i in range(1, count):
            out[i] = out[i - 1] * base
    return out


_CHAR_POWERS = _powers(_CHAR_BASE, _MAX_TOKEN_CHARS)


def _fmix64(h: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """MurmurHash3's finalizer: spreads the polynomial hashes over all 64 bits."""
    h = h ^ (h >> _U64(33))
    h = h * _U64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> _U64(33))
    h = h * _U64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> _U64(33))


def shingle_sets(texts: Sequence[str]) -> list[Shingles]:
    """The shingle set of each story text (see `story_text`), as sorted unique uint32 hashes."""
    return [shingles for shingles, _ in _shingles_and_keys(texts)]


def _shingles_and_keys(texts: Sequence[str]) -> list[tuple[Shingles, str]]:
    """Shingle sets, and a key of each text's token sequence (what `story_text` keeps of it)."""
    out: list[tuple[Shingles, str]] = []
    for chunk in _chunks(texts):
        out.extend(_shingle_chunk(chunk))
    return out


def _chunks(texts: Sequence[str]) -> Iterator[Sequence[str]]:
    start, size = 0, 0
    for i, text in enumerate(texts):
        size += len(text) + 1
        if size >= _CHUNK_CHARS:
            yield texts[start : i + 1]
            start, size = i + 1, 0
    if start < len(texts):
        yield texts[start:]


def _shingle_chunk(texts: Sequence[str]) -> list[tuple[Shingles, str]]:
    """All texts of a chunk in one pass over one code-point array. Anything but a letter or a
    digit (of the Basic Multilingual Plane, or a CJK extension ideograph) separates tokens."""
    separator = chr(_DOC_SEPARATOR)
    cps = np.frombuffer((separator.join(texts) + separator).encode("utf-32-le"), dtype=np.uint32)
    space = ~_is_word(cps)
    unspaced = _is_unspaced(cps)
    # A token starts at every unspaced character and at a word character after a boundary.
    boundary_before = np.ones(len(cps), dtype=bool)
    boundary_before[1:] = space[:-1] | unspaced[:-1]
    starts = ~space & (unspaced | boundary_before)
    token_hashes, token_docs, token_unspaced = _token_hashes(cps, space, starts, unspaced)
    token_bounds = np.searchsorted(token_docs, np.arange(len(texts) + 1))
    keys = [
        _body_key(token_hashes[token_bounds[i] : token_bounds[i + 1]]) for i in range(len(texts))
    ]
    if not len(token_hashes):
        return [(np.empty(0, dtype=np.uint32), key) for key in keys]
    # Character n-grams for documents that are mostly unspaced script, word n-grams otherwise.
    unspaced_share = np.bincount(token_docs, token_unspaced, len(texts)) / np.maximum(
        np.bincount(token_docs, minlength=len(texts)), 1
    )
    size_of_doc = np.where(unspaced_share >= 0.5, CHARS_PER_SHINGLE, WORDS_PER_SHINGLE)
    hashes, docs = _ngrams(token_hashes, token_docs, size_of_doc)
    # Sorted unique (document, shingle) keys; sorting is ~50x faster than np.unique here.
    keyed = np.sort((docs.astype(np.uint64) << _U64(32)) | hashes)
    keyed = keyed[np.concatenate((keyed[:1] == keyed[:1], keyed[1:] != keyed[:-1]))]
    bounds = np.searchsorted(keyed >> _U64(32), np.arange(len(texts) + 1))
    values = keyed.astype(np.uint32)  # the low 32 bits: the shingle hash
    return [(values[bounds[i] : bounds[i + 1]], keys[i]) for i in range(len(texts))]


def _body_key(tokens: npt.NDArray[np.uint64]) -> str:
    # Tokens, not characters: spacing and punctuation, which copies change, do not count.
    return hashlib.blake2b(tokens.tobytes(), digest_size=16).hexdigest()


def _is_word(cps: npt.NDArray[np.uint32]) -> npt.NDArray[np.bool_]:
    found = _WORD_BMP[np.minimum(cps, 0xFFFF)]
    found |= (cps >= _ASTRAL_CJK[0]) & (cps <= _ASTRAL_CJK[1])
    return found


def _is_unspaced(cps: npt.NDArray[np.uint32]) -> npt.NDArray[np.bool_]:
    found = _UNSPACED_BMP[np.minimum(cps, 0xFFFF)]
    found |= (cps >= _ASTRAL_CJK[0]) & (cps <= _ASTRAL_CJK[1])
    return found


def _token_hashes(
    cps: npt.NDArray[np.uint32],
    space: npt.NDArray[np.bool_],
    starts: npt.NDArray[np.bool_],
    unspaced: npt.NDArray[np.bool_],
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """A polynomial hash of each token's code points, the token's document and script."""
    chars = np.flatnonzero(~space)
    if not len(chars):
        empty = np.empty(0, dtype=np.int64)
        return np.empty(0, dtype=np.uint64), empty, np.empty(0, dtype=bool)
    start_positions = np.flatnonzero(starts)
    token_of_char = np.cumsum(starts)[chars] - 1
    offset = np.minimum(chars - start_positions[token_of_char], _MAX_TOKEN_CHARS - 1)
    with np.errstate(over="ignore"):
        terms = cps[chars].astype(np.uint64) * _CHAR_POWERS[offset]
        hashes = _fmix64(np.add.reduceat(terms, np.flatnonzero(starts[chars])))
    docs = np.cumsum(cps == _DOC_SEPARATOR)[start_positions]
    return hashes, docs, unspaced[start_positions]


def _ngrams(
    tokens: npt.NDArray[np.uint64], docs: npt.NDArray[np.int64], size_of_doc: npt.NDArray[np.int_]
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64]]:
    """Hashes of n consecutive tokens within one document, n per document."""
    hashes, owners = [], []
    for size in np.unique(size_of_doc):
        n = int(size)
        count = len(tokens) - n + 1
        if count <= 0:
            continue
        h = tokens[:count].copy()
        with np.errstate(over="ignore"):
            for i in range(1, n):
                h = h * _TOKEN_BASE + tokens[i : i + count]
        keep = (docs[:count] == docs[n - 1 : n - 1 + count]) & (size_of_doc[docs[:count]] == n)
        hashes.append((_fmix64(h[keep]) >> _U64(32)).astype(np.uint64))
        owners.append(docs[:count][keep])
    if not hashes:
        return np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.int64)
    return np.concatenate(hashes), np.concatenate(owners)


# --- MinHash and LSH bands ------------------------------------------------------------------

# LSH: BANDS bands of ROWS_PER_BAND MinHash values. Two articles become candidates when one
# band agrees, with probability 1 - (1 - J^r)^b for Jaccard similarity J. With b=42, r=3:
# J=0.3 → 0.68, J=0.4 → 0.94, J=0.5 → 0.996, J=0.6 → 1.0; J=0.1 → 0.04, J=0.05 → 0.005.
# The low band is deliberate: a truncated copy has a Jaccard of about its length ratio, and
# candidates are verified on exact shingle sets (`is_near_copy`), which keeps precision.
ROWS_PER_BAND = 3
BANDS = 42
NUM_PERM = ROWS_PER_BAND * BANDS
MINHASH_SEED = 1
# Folded into every band hash: a change of the fingerprint parameters must not match old rows.
LSH_VERSION = 1


_U32 = np.uint32


@cache
def _permutations() -> npt.NDArray[np.uint32]:
    """datasketch's affine32 permutations for MINHASH_SEED, drawn as MinHash draws them
    (tests/test_dedup.py compares the signatures): importing datasketch imports scipy, ~0.7 s
    and ~55 MiB in every process that fingerprints (each extraction worker)."""
    generator = np.random.RandomState(MINHASH_SEED)
    a = generator.randint(0, 1 << 31, NUM_PERM, dtype=_U32) * _U32(2) + _U32(1)
    b = generator.randint(0, 1 << 32, NUM_PERM, dtype=_U32)
    return np.array([a, b])


def _fmix32(h: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint32]:
    """datasketch's pre-mix for the affine32 scheme (MurmurHash3's 32-bit finalizer)."""
    h = h ^ (h >> _U32(16))
    h = h * _U32(0x85EBCA6B)
    h = h ^ (h >> _U32(13))
    h = h * _U32(0xC2B2AE35)
    return h ^ (h >> _U32(16))


def minhash_signatures(sets: Sequence[Shingles]) -> npt.NDArray[np.uint32]:
    """MinHash signature of each non-empty shingle set, as datasketch computes it."""
    if not sets:
        return np.empty((0, NUM_PERM), dtype=np.uint32)
    if any(not len(s) for s in sets):
        raise ValueError("an empty shingle set has no signature")
    values = _fmix32(np.concatenate(sets))
    bounds = np.cumsum([0, *(len(s) for s in sets[:-1])])
    a, b = _permutations()
    out = np.empty((len(sets), NUM_PERM), dtype=np.uint32)
    with np.errstate(over="ignore"):
        for k in range(NUM_PERM):
            out[:, k] = np.minimum.reduceat(values * a[k] + b[k], bounds)
    return out


_BAND_SEEDS = _fmix64(np.arange(BANDS, dtype=np.uint64) + _U64(LSH_VERSION << 16))


def band_hashes(signatures: npt.NDArray[np.uint32]) -> npt.NDArray[np.int64]:
    """One 64-bit bucket per band and article (band index folded in), as DuckDB BIGINTs."""
    bands = signatures.reshape(len(signatures), BANDS, ROWS_PER_BAND).astype(np.uint64)
    h = np.broadcast_to(_BAND_SEEDS, (len(signatures), BANDS)).copy()
    with np.errstate(over="ignore"):
        for r in range(ROWS_PER_BAND):
            h = _fmix64(h * _TOKEN_BASE + bands[:, :, r])
    return h.view(np.int64)


# --- verification ---------------------------------------------------------------------------

# Thresholds on exact shingle sets, chosen on the evaluation set (tests/fixtures/dedup, 46
# items; measured on the extracted pages):
# - Copies that keep the whole story (new headline, lead-in, credits, 2–5 % of words changed)
#   have Jaccard 0.52–1.0, the lowest being a 100-character flash with two phrases changed.
#   Hard negatives stay at or below 0.22: different reports on one policy ≤ 0.06, an outlet's
#   templated daily roundups 0.15–0.19, two short central-bank flashes of one template 0.17.
#   0.4 lies between, nearer the copies' side than the midpoint: a false merge hides a story,
#   and the negatives' side is the one real templates (price alerts, notices) push up.
# - A truncated copy has a low Jaccard (0.33–0.46 for 38–56 % of the text) but 84–100 % of its
#   shingles are in the full text; no hard negative of comparable length exceeds 33 %.
# - A flash quoted word for word in a roundup is contained in it too (100 %), at a length
#   ratio of 0.22–0.29; the truncated copies keep at least 0.38. Hence containment counts only
#   when the shorter text is at least a third of the longer one.
MIN_JACCARD = 0.4
MIN_CONTAINMENT = 0.75
MIN_LENGTH_RATIO = 0.33


@dataclass(frozen=True)
class Similarity:
    jaccard: float
    containment: float  # shared shingles over the smaller set
    length_ratio: float  # smaller set over the larger


def similarity(a: Shingles, b: Shingles) -> Similarity:
    if not len(a) or not len(b):
        return Similarity(0.0, 0.0, 0.0)
    shared = len(np.intersect1d(a, b, assume_unique=True))
    small, large = sorted((len(a), len(b)))
    return Similarity(shared / (small + large - shared), shared / small, small / large)


# Triage of LSH candidates on their MinHash signatures, so that few stored bodies are read.
# The estimate (the share of equal values) has a standard deviation of at most 0.045 with 126
# values. Above SURE_JACCARD, 4.4 deviations over MIN_JACCARD, a candidate is a copy without
# checking. A pair that passes on containment has a Jaccard of at least 0.23 (0.75 of a text a
# third as long); below UNLIKELY_JACCARD, 3 deviations under that, it is dropped unchecked.
SURE_JACCARD = 0.6
UNLIKELY_JACCARD = 0.11


def estimated_jaccard(a: Signature, b: Signature) -> float:
    return float(np.count_nonzero(a == b)) / len(a)


def is_near_copy(s: Similarity) -> bool:
    """The verdict on an LSH candidate: the same story text, edited or cut, or not."""
    if s.jaccard >= MIN_JACCARD:
        return True
    return s.containment >= MIN_CONTAINMENT and s.length_ratio >= MIN_LENGTH_RATIO


# --- articles -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fingerprint:
    """What dedup compares. The body fields are None for a body too short to compare."""

    title_key: str | None  # source and normalized title
    body_key: str | None  # the story text's words in order (spacing, punctuation aside)
    shingles: Shingles | None
    signature: Signature | None  # MinHash
    buckets: npt.NDArray[np.int64] | None  # LSH band hashes


@dataclass(frozen=True)
class BodyPrint:
    """What of a Fingerprint reads the body (all but the title key): the part the extraction
    workers make (newsflow.tasks.extraction.derive). None fields for a body too short."""

    body_key: str | None
    shingles: Shingles | None
    signature: Signature | None


def body_prints(texts: Sequence[tuple[str, str]]) -> list[BodyPrint]:
    """Body prints of (title, body) pairs: the story text's key, shingles and MinHash."""
    found = _shingles_and_keys([_story_lines(body, title) for title, body in texts])
    sets = [s if len(s) >= MIN_SHINGLES else None for s, _ in found]
    usable = [i for i, s in enumerate(sets) if s is not None]
    signatures = minhash_signatures([sets[i] for i in usable])  # type: ignore[misc]
    signed = dict(zip(usable, signatures, strict=True))
    return [
        BodyPrint(key if shingles is not None else None, shingles, signed.get(i))
        for i, ((_, key), shingles) in enumerate(zip(found, sets, strict=True))
    ]


def fingerprint_articles(
    articles: Sequence[Article], bodies: Sequence[BodyPrint] | None = None
) -> list[Fingerprint]:
    """The articles' fingerprints; `bodies`: their body prints, when made already."""
    if bodies is None:
        bodies = body_prints([(a.title, a.body_text) for a in articles])
    signed = [(i, b.signature) for i, b in enumerate(bodies) if b.signature is not None]
    stacked = np.stack([s for _, s in signed]) if signed else np.empty((0, NUM_PERM), _U32)
    buckets = dict(zip([i for i, _ in signed], band_hashes(stacked), strict=True))
    return [
        Fingerprint(title_key(a), b.body_key, b.shingles, b.signature, buckets.get(i))
        for i, (a, b) in enumerate(zip(articles, bodies, strict=True))
    ]


def body_shingles(articles: Sequence[tuple[str, str]]) -> list[Shingles | None]:
    """Shingle sets of (body, title) pairs as `fingerprint_articles` makes them; None for a
    body too short to compare."""
    found = shingle_sets([_story_lines(body, title) for body, title in articles])
    return [s if len(s) >= MIN_SHINGLES else None for s in found]


def title_key(article: Article) -> str | None:
    """Same source, same title up to case, width, spacing and punctuation: one key."""
    title = _folded(article.title)
    if not title:
        return None
    source = article.source or urlsplit(article.canonical_url).hostname or ""
    source = unicodedata.normalize("NFKC", source).strip().lower()
    return hashlib.blake2b(f"{source}\x1f{title}".encode(), digest_size=8).hexdigest()
