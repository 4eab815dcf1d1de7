"""Undoing Content-Encoding within the body cap (docs/ARCHITECTURE.md, "limits").

Bodies are decompressed in slices of at most 64 KiB however well the data packs, so a gzip or
brotli bomb stops at the cap after a few slices instead of inflating a whole network read. A
chain of codings is bounded too (`MAX_CODINGS`): each coding is one more generator to pass every
slice through, and real servers send one (two when a compressed file is compressed again).
"""

from __future__ import annotations

import itertools
import logging
import zlib
from collections.abc import Iterable, Iterator

from newsflow.schemas.errors import ItemError
from newsflow.schemas.kinds import Kind

try:
    import brotli
except ImportError:  # pragma: no cover - httpx[brotli] installs it
    brotli = None  # type: ignore[assignment]

LOGGER = logging.getLogger(__name__)

# Only codings we can decompress in bounded slices (brotli needs output_buffer_limit, >= 1.2).
_BROTLI_BOUNDED = brotli is not None and hasattr(brotli.Decompressor(), "can_accept_more_data")
ACCEPT_ENCODING = "gzip, deflate, br" if _BROTLI_BOUNDED else "gzip, deflate"
_DECODE_ERRORS: tuple[type[Exception], ...] = (zlib.error,) + ((brotli.error,) if brotli else ())

MAX_CODINGS = 3
_SLICE = 64 * 1024


def read_body(chunks: Iterable[bytes], codings: str, max_bytes: int, url: str) -> bytes:
    """The body of raw `chunks` sent with Content-Encoding `codings`, decompressed.

    ItemError "too_large" past `max_bytes` after decompression; "bad_encoding" for corrupt
    data or a chain of more than MAX_CODINGS codings.
    """
    names = content_codings(codings)
    if len(names) > MAX_CODINGS:
        raise ItemError(
            Kind.BAD_ENCODING,
            f"Content-Encoding chains {len(names)} codings, more than {MAX_CODINGS}: {url}",
            url,
        )
    try:
        return _collect(_decompress(iter(chunks), names), max_bytes, "body", url)
    except _DECODE_ERRORS as exc:
        raise ItemError(Kind.BAD_ENCODING, f"corrupt {codings} body ({exc}): {url}", url) from exc


def gunzip(data: bytes, max_bytes: int) -> bytes:
    """The content of a gzip file (a `.xml.gz` sitemap, sent without Content-Encoding) within
    the body cap, in bounded slices like any body; other data is returned as it is."""
    if not data.startswith(b"\x1f\x8b"):
        return data
    try:
        return _collect(_inflate(iter([data]), raw_fallback=False), max_bytes, "gzip content")
    except zlib.error as exc:
        raise ItemError(Kind.BAD_ENCODING, f"corrupt gzip file ({exc})") from exc


def content_codings(header: str) -> list[str]:
    """The codings of a Content-Encoding header in the order applied, `identity` left out."""
    names = (c.strip().lower() for c in header.split(","))
    return [name for name in names if name and name != "identity"]


def _collect(pieces: Iterator[bytes], max_bytes: int, what: str, url: str | None = None) -> bytes:
    out = bytearray()
    for piece in pieces:
        out += piece
        if len(out) > max_bytes:
            where = f": {url}" if url else ""
            raise ItemError(Kind.TOO_LARGE, f"{what} over {max_bytes} bytes{where}", url)
    return bytes(out)


def _decompress(chunks: Iterator[bytes], codings: list[str]) -> Iterator[bytes]:
    """Undo the codings, last applied first."""
    for coding in reversed(codings):
        if coding in {"gzip", "x-gzip", "deflate"}:
            chunks = _inflate(chunks, raw_fallback=coding == "deflate")
        elif coding == "br" and _BROTLI_BOUNDED:
            chunks = _unbrotli(chunks)
        else:  # as httpx does: pass through what we cannot decode
            LOGGER.debug("unknown Content-Encoding %r left as is", coding)
    return chunks


def _inflate(chunks: Iterator[bytes], raw_fallback: bool) -> Iterator[bytes]:
    # gzip or zlib header, detected; some servers send "deflate" as raw deflate without one.
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 32)
    started = False
    for data in chunks:
        while data and not inflater.eof:
            try:
                piece = inflater.decompress(data, _SLICE)
            except zlib.error:
                if started or not raw_fallback:
                    raise
                inflater, raw_fallback = zlib.decompressobj(-zlib.MAX_WBITS), False
                continue
            started = True
            data = inflater.unconsumed_tail
            yield piece
    yield inflater.flush()


def _unbrotli(chunks: Iterator[bytes]) -> Iterator[bytes]:
    decompressor = brotli.Decompressor()
    for data in itertools.chain(chunks, [b""]):
        yield decompressor.process(data, output_buffer_limit=_SLICE)
        while not decompressor.can_accept_more_data():
            yield decompressor.process(b"", output_buffer_limit=_SLICE)
