"""Turning fetched bytes into text: HTML to `str`, feed XML to UTF-8 bytes.

Sources are tried in the order of docs/ARCHITECTURE.md ("limits"): BOM → HTTP header →
in-document declaration → detection (charset-normalizer). A declared charset is only a claim:
it is used when it decodes the bytes cleanly, otherwise the next source is tried. GB2312 and
GBK are read as GB18030, their superset, because Chinese sites label GBK pages (镕, 喆 …)
"gb2312".

When nothing decodes cleanly, a body that is still mostly text in some candidate charset (a few
damaged bytes in a long page) is decoded with U+FFFD replacements and a warning, so an article
is not lost to one bad byte; a body that is not text in any of them is `ItemError("bad_encoding")`.
"""

from __future__ import annotations

import codecs
import logging
import re
from email.message import Message

from charset_normalizer import from_bytes

from newsflow.schemas.errors import ItemError

LOGGER = logging.getLogger(__name__)

# Declarations are looked for in the head of the document only, as browsers do.
_PRESCAN_BYTES = 4096
# At most this share of replacement characters still counts as "text with a few bad bytes"
# (one bad byte can cost 3 characters; random bytes give 12 % in GB18030, 44 % in UTF-8).
_MAX_REPLACED = 0.05

_BOMS = (  # UTF-32 first: its little-endian BOM starts with UTF-16's
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# XML without a BOM announces UTF-16/32 by how `<?` is laid out (XML 1.0, appendix F).
_XML_SNIFF = (
    (b"<\x00\x00\x00", "utf-32-le"),
    (b"\x00\x00\x00<", "utf-32-be"),
    (b"<\x00?\x00", "utf-16-le"),
    (b"\x00<\x00?", "utf-16-be"),
)
_GB_LABELS = {"gb2312", "gbk", "x-gbk", "gb-2312-80", "csgb2312", "cp936", "euc-cn", "x-euc-cn"}
# Labels browsers read as windows-1252, their superset.
_SINGLE_BYTE = {"latin-1", "iso8859-1", "cp1252", "ascii"}
# Text codecs Python looks up that are no document charset: they decode escapes, domain names
# or nothing at all, and raise UnicodeError rather than UnicodeDecodeError. (Bytes-to-bytes
# codecs such as zlib and base64 are refused as not text encodings.)
_NOT_CHARSETS = {
    "idna",
    "punycode",
    "undefined",
    "unicode-escape",
    "raw-unicode-escape",
    "utf-7",
    "charmap",
}

_META_CHARSET = re.compile(rb"""<meta[^>]*?charset\s*=\s*["']?\s*([\w.:-]+)""", re.IGNORECASE)
_XML_ENCODING = re.compile(rb"""^[^<]*<\?xml[^>]*?encoding\s*=\s*["']([\w.:-]+)["']""")
_XML_DECL = re.compile(r"""^(\s*<\?xml[^>]*?encoding\s*=\s*)(["'])[^"']*\2""")


def decode_html(body: bytes, content_type: str | None) -> tuple[str, str]:
    """Decode an HTML page; returns (text, codec name), e.g. ("…", "gb18030")."""
    head = body[:_PRESCAN_BYTES]
    meta = _META_CHARSET.search(head) or _XML_ENCODING.search(head)
    declared = [_codec(_header_charset(content_type)), _codec(_group(meta))]
    # A page whose declaration could be read as ASCII is not UTF-16/32 without a BOM (WHATWG).
    return _decode(body, [n for n in declared if n and not n.startswith(("utf-16", "utf-32"))])


def decode_text(body: bytes) -> str:
    """Decode a text file that declares nothing (a Markdown post): BOM, UTF-8, detection."""
    return _decode(body, [])[0]


def feed_bytes_as_utf8(body: bytes, content_type: str | None) -> bytes:
    """Re-encode feed XML as UTF-8 with its declaration saying so.

    Hand the result to feedparser together with `content-type: application/xml; charset=utf-8`;
    then what the server claimed (a lying header, a gb2312 declaration over GBK) no longer matters.
    """
    # UTF-16/32 without a BOM shows in the layout of `<?`; it outranks labels, which are ASCII.
    sniffed = next((name for prefix, name in _XML_SNIFF if body.startswith(prefix)), None)
    declared = _group(_XML_ENCODING.search(body[:_PRESCAN_BYTES]))
    names = [sniffed, _codec(_header_charset(content_type)), _codec(declared)]
    text, _ = _decode(body, [n for n in names if n])
    # The declaration would otherwise still name the old charset of bytes that are now UTF-8.
    return _XML_DECL.sub(r"\1\2utf-8\2", text, count=1).encode("utf-8")


def _decode(body: bytes, declared: list[str]) -> tuple[str, str]:
    """BOM, then each declared codec that fits the bytes, then detection, then salvage."""
    for bom, name in _BOMS:
        if body.startswith(bom):
            # A BOM is stronger evidence than any label; damaged bytes after it are replaced.
            return body[len(bom) :].decode(name, errors="replace"), name
    try:
        utf8: str | None = body.decode("utf-8")
    except UnicodeDecodeError:
        utf8 = None
    for name in declared:
        text = _decodes(body, name, utf8)
        if text is not None:
            return text, name
        LOGGER.debug("declared charset %s does not fit the bytes; trying the next source", name)
    if utf8 is not None:  # what detection would say, without its cost
        return utf8, "utf-8"
    best = from_bytes(body).best()
    detected = _codec(best.encoding) if best is not None else None
    if detected and (text := _decodes(body, detected, utf8)) is not None:
        return text, detected
    return _salvage(body, [*declared, "utf-8", "gb18030"])


def _decodes(body: bytes, name: str, utf8: str | None) -> str | None:
    """The text if `name` decodes `body` cleanly and plausibly, else None."""
    if utf8 is not None and name != "utf-8" and not body.isascii():
        # Non-ASCII bytes that form valid UTF-8 are UTF-8; by chance they almost never are, while
        # "iso-8859-1" headers (server defaults) and stale gb2312 labels on UTF-8 pages are common.
        return None
    try:
        return body.decode(name)
    except UnicodeDecodeError:
        return None


def _salvage(body: bytes, candidates: list[str]) -> tuple[str, str]:
    """Best effort when no charset decodes every byte: the one with the fewest replacements."""
    name = min(dict.fromkeys(candidates), key=lambda n: body.decode(n, "replace").count("\ufffd"))
    text = body.decode(name, errors="replace")
    if text.count("\ufffd") > _MAX_REPLACED * max(len(text), 1):
        raise ItemError("bad_encoding", "the body is not text in any known charset")
    LOGGER.warning("decoded as %s with replacement characters (damaged bytes)", name)
    return text, name


def _codec(label: str | None) -> str | None:
    """Python's codec name for a charset label, GB2312/GBK as GB18030; None when unknown."""
    if not label:
        return None
    label = label.strip().lower().replace("_", "-")
    if label in _GB_LABELS:
        return "gb18030"
    try:
        info = codecs.lookup(label)
    except LookupError:
        LOGGER.debug("unknown charset %r ignored", label)
        return None
    name = info.name
    # _is_text_encoding is how str.decode itself refuses bytes-to-bytes codecs.
    if not getattr(info, "_is_text_encoding", True) or name in _NOT_CHARSETS:
        LOGGER.debug("%r is not a charset; ignored", label)
        return None
    if name in {"gb2312", "gbk"}:
        return "gb18030"
    return "cp1252" if name in _SINGLE_BYTE else name


def _header_charset(content_type: str | None) -> str | None:
    if not content_type:
        return None
    message = Message()
    message["content-type"] = content_type
    charset = message.get_content_charset()
    return str(charset) if charset else None


def _group(match: re.Match[bytes] | None) -> str | None:
    return match.group(1).decode("ascii", "replace") if match else None
