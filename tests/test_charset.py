"""Charset decisions for pages and feeds: BOM → header → declaration → detection."""

from __future__ import annotations

import codecs
import random

import feedparser
import pytest

from newsflow.schemas.errors import ItemError
from newsflow.tasks.fetching.charset import decode_html, feed_bytes_as_utf8

# 镕 and 喆 are in GBK but not in GB2312: a "gb2312" label over them must still decode.
NEWS = "朱镕基与张喆出席中国人民银行数字人民币试点座谈会，讨论区块链监管政策。" * 8
TITLE = "央行：数字人民币试点扩围（朱镕基、张喆）"


def page(charset_meta: str = "") -> str:
    meta = f'<meta charset="{charset_meta}">' if charset_meta else ""
    return f"<html><head>{meta}<title>{TITLE}</title></head><body><p>{NEWS}</p></body></html>"


def test_utf8_without_bom_or_declaration() -> None:
    text, encoding = decode_html(page().encode("utf-8"), None)
    assert (text, encoding) == (page(), "utf-8")


def test_utf8_bom_wins_over_header() -> None:
    body = codecs.BOM_UTF8 + page("gbk").encode("utf-8")
    text, encoding = decode_html(body, "text/html; charset=gbk")
    assert encoding == "utf-8"
    assert text == page("gbk")  # the BOM itself is not part of the text


def test_utf16_bom() -> None:
    body = codecs.BOM_UTF16_LE + page().encode("utf-16-le")
    assert decode_html(body, "text/html") == (page(), "utf-16-le")


@pytest.mark.parametrize("meta", ["gbk", ""], ids=["meta-gbk", "no-meta-detected"])
def test_gbk_bytes_declared_utf8_in_header(meta: str) -> None:
    body = page(meta).encode("gb18030")
    text, encoding = decode_html(body, "text/html; charset=utf-8")
    assert encoding == "gb18030"
    assert TITLE in text


@pytest.mark.parametrize(
    "declaration",
    [
        '<meta charset="gb2312">',
        '<meta http-equiv="Content-Type" content="text/html; charset=GB2312">',
        "<meta charset=gb_2312-80>",
        '<meta charset="x-gbk">',
    ],
)
def test_gb2312_label_over_gbk_only_characters(declaration: str) -> None:
    html = f"<html><head>{declaration}<title>{TITLE}</title></head><body>{NEWS}</body></html>"
    text, encoding = decode_html(html.encode("gb18030"), "text/html")
    assert encoding == "gb18030"
    assert "镕" in text
    assert "喆" in text


def test_gb2312_header_over_gbk_only_characters() -> None:
    text, encoding = decode_html(page().encode("gb18030"), "text/html; charset=gb2312")
    assert (text, encoding) == (page(), "gb18030")


@pytest.mark.parametrize("label", ["x-bogus", "utf-9", ""])
def test_unknown_charset_falls_through(label: str) -> None:
    text, encoding = decode_html(page(label).encode("utf-8"), f"text/html; charset={label}")
    assert (text, encoding) == (page(label), "utf-8")


# Codecs Python knows that are no charset: bytes-to-bytes ones (zlib, base64 …), and text
# codecs that raise UnicodeError, not UnicodeDecodeError, or decode escapes (idna, undefined …).
NOT_CHARSETS = [
    "zlib",
    "base64",
    "hex",
    "bz2",
    "rot13",
    "uu",
    "quopri",
    "idna",
    "punycode",
    "undefined",
    "unicode_escape",
    "raw_unicode_escape",
    "utf-7",
    "charmap",
]


@pytest.mark.parametrize("label", NOT_CHARSETS)
@pytest.mark.parametrize(
    "text", ["Digital yuan \\u4e2d +AGEAYgBj- " * 10, "数字人民币"], ids=["ascii", "utf-8"]
)
def test_a_codec_that_is_no_charset_is_ignored(label: str, text: str) -> None:
    page = f'<html><head><meta charset="{label}"></head><body>{text}</body></html>'.encode()
    assert decode_html(page, f"text/html; charset={label}")[0] == page.decode()
    feed = f'<?xml version="1.0" encoding="{label}"?><rss><title>{text}</title></rss>'
    utf8 = feed_bytes_as_utf8(feed.encode(), f"application/xml; charset={label}")
    assert utf8 == feed.replace(label, "utf-8", 1).encode()


@pytest.mark.parametrize("label", ["iso-8859-1", "gb2312"], ids=["server-default", "stale-meta"])
def test_utf8_body_under_a_wrong_legacy_label_is_utf8(label: str) -> None:
    text, encoding = decode_html(page(label).encode("utf-8"), f"text/html; charset={label}")
    assert (text, encoding) == (page(label), "utf-8")


def test_real_latin1_page() -> None:
    html = "<html><head><title>Café crème</title></head><body>Régulation</body></html>"
    text, encoding = decode_html(html.encode("latin-1"), "text/html; charset=ISO-8859-1")
    assert (text, encoding) == (html, "cp1252")


def test_declaration_after_the_prescan_is_ignored_but_detection_finds_it() -> None:
    html = f"<html><head><!-- {'x' * 5000} --><meta charset='big5'></head><body>{NEWS}</body>"
    text, encoding = decode_html(html.encode("gb18030"), None)
    assert encoding == "gb18030"
    assert NEWS in text


def test_a_few_damaged_bytes_are_replaced_not_fatal() -> None:
    good = page().encode("utf-8")
    body = good[:200] + b"\xff" + good[200:]
    text, encoding = decode_html(body, "text/html; charset=utf-8")
    assert encoding == "utf-8"
    assert 0 < text.count("\ufffd") <= 4  # the bad byte and the character it split
    assert TITLE in text


def test_binary_is_bad_encoding() -> None:
    noise = random.Random(0).randbytes(8192)
    with pytest.raises(ItemError) as info:
        decode_html(noise, "text/html")
    assert info.value.kind == "bad_encoding"


# -- feeds ---------------------------------------------------------------------------------

FEED_TITLE = "财联社电报"


def rss(encoding: str | None) -> str:
    decl = f'<?xml version="1.0" encoding="{encoding}"?>' if encoding else ""
    return (
        f"{decl}<rss version='2.0'><channel><title>{FEED_TITLE}</title>"
        f"<link>https://example.org/</link><description>{NEWS}</description>"
        f"<item><title>{TITLE}</title><link>https://example.org/1</link>"
        f"<description>{NEWS}</description></item></channel></rss>"
    )


def parse(data: bytes) -> feedparser.FeedParserDict:
    return feedparser.parse(
        data, response_headers={"content-type": "application/xml; charset=utf-8"}
    )


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (rss("gb2312").encode("gb18030"), "text/xml; charset=utf-8"),  # the header lies
        (rss("gb2312").encode("gb18030"), "application/rss+xml"),
        (rss("GBK").encode("gb18030"), None),
        (rss(None).encode("gb18030"), "text/xml"),  # nothing declared: detection
        (codecs.BOM_UTF8 + rss("gbk").encode("utf-8"), "text/xml; charset=gbk"),  # BOM wins
        (codecs.BOM_UTF16_LE + rss("utf-16").encode("utf-16-le"), None),
        (rss("utf-16").encode("utf-16-le"), None),  # no BOM: sniffed from "<?"
        (rss("utf-8").encode("utf-8"), "application/xml; charset=iso-8859-1"),
    ],
    ids=[
        "gbk-header-lies",
        "gbk-declared-gb2312",
        "gbk-no-header",
        "gbk-detected",
        "bom-vs-declaration",
        "utf16-bom",
        "utf16-sniffed",
        "utf8-under-latin1-header",
    ],
)
def test_feed_bytes_as_utf8_round_trip_through_feedparser(
    body: bytes, content_type: str | None
) -> None:
    data = feed_bytes_as_utf8(body, content_type)
    assert data.decode("utf-8").startswith(('<?xml version="1.0" encoding="utf-8"?>', "<rss"))
    parsed = parse(data)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.feed.title == FEED_TITLE
    assert parsed.entries[0].title == TITLE


def test_feed_without_declaration_is_left_as_is() -> None:
    body = rss(None).encode("utf-8")
    assert feed_bytes_as_utf8(body, "application/rss+xml") == body


def test_binary_feed_is_bad_encoding() -> None:
    with pytest.raises(ItemError) as info:
        feed_bytes_as_utf8(random.Random(1).randbytes(8192), "application/xml")
    assert info.value.kind == "bad_encoding"
