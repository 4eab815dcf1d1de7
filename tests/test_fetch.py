"""Fetcher against real HTTP servers on loopback: limits, errors, retries, politeness, SSRF guard.

The servers and their hostile handlers are in `tests/loopback.py`.
"""

from __future__ import annotations

import gzip
import socket
import ssl
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import brotli
import pytest
from pydantic import ValidationError

from newsflow.schemas.config import FetchLimits, HostPolicy
from newsflow.schemas.errors import ItemError
from newsflow.schemas.models import Response
from newsflow.tasks.fetching.decompress import ACCEPT_ENCODING, MAX_CODINGS
from newsflow.tasks.fetching.fetch import FEED_ACCEPT, HTML_ACCEPT, Fetcher
from newsflow.tasks.fetching.guard import is_public_address
from tests.loopback import (
    HANDLER_BUDGET,
    Handler,
    LoopbackServer,
    MiB,
    Request,
    endless_chunks,
    gzip_bomb,
    http_date,
    short_body,
    trickle_body,
    trickle_headers,
    zeros,
)

# Tests reach 127.0.0.1, so they allow private networks; the SSRF tests use the defaults.
LOOPBACK = FetchLimits(
    allow_private_networks=True,
    retries=0,
    retry_backoff=0,
    connect_timeout=2,
    read_timeout=2,
    total_deadline=5,
)


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    srv = LoopbackServer()
    yield srv
    srv.close()


def fetcher(**changes: object) -> Fetcher:
    return Fetcher(LOOPBACK.model_copy(update=changes))


def fetch_error(fetch: Fetcher, url: str, **kwargs: object) -> ItemError:
    with pytest.raises(ItemError) as info:
        fetch.get(url, **kwargs)  # type: ignore[arg-type]
    assert url in str(info.value)
    assert "\n" not in str(info.value)
    return info.value


# -- plain and conditional GET -------------------------------------------------------------

ETAG = '"v1"'
LAST_MODIFIED = "Wed, 21 Oct 2015 07:28:00 GMT"
PAGE = "<html><head><title>数字人民币</title></head><body>区块链</body></html>".encode()


def conditional(request: Request) -> None:
    if (
        request.headers.get("If-None-Match") == ETAG
        or request.headers.get("If-Modified-Since") == LAST_MODIFIED
    ):
        request.reply(304, headers={"ETag": ETAG, "Content-Length": "0"})
        return
    request.reply(
        200,
        PAGE,
        {"ETag": ETAG, "Last-Modified": LAST_MODIFIED, "Cache-Control": "public, max-age=300"},
    )


def test_get_fills_the_response(server: LoopbackServer) -> None:
    server.routes["/feed"] = conditional
    with fetcher(user_agent="newsflow-test/1") as fetch:
        resp = fetch.get(server.url("/feed"))
    assert resp == Response(
        url=server.url("/feed"),
        final_url=server.url("/feed"),
        status=200,
        content_type="text/html; charset=utf-8",
        etag=ETAG,
        last_modified=LAST_MODIFIED,
        cache_max_age=300,
        body=PAGE,
    )
    headers = server.hits[0][1]
    assert headers["User-Agent"] == "newsflow-test/1"
    assert headers["Accept"] == FEED_ACCEPT
    assert headers["Accept-Encoding"] == ACCEPT_ENCODING
    assert "br" in ACCEPT_ENCODING
    assert "If-None-Match" not in headers


HUGE = "9" * 5000  # int() refuses strings of over 4,300 digits


@pytest.mark.parametrize(
    ("cache_control", "max_age"),
    [
        (f"max-age={HUGE}", 2**31),  # RFC 9111: too big to represent counts as 2**31
        (f'public, max-age="{HUGE}"', 2**31),
        ("max-age=00000000000000000000000042", 42),
        ("max-age=²", None),  # a Unicode digit, not an ASCII one
        ("max-age=-5", None),
    ],
)
def test_cache_control_max_age_is_parsed_safely(
    server: LoopbackServer, cache_control: str, max_age: int | None
) -> None:
    server.routes["/feed"] = lambda r: r.reply(200, PAGE, {"Cache-Control": cache_control})
    with fetcher() as fetch:
        assert fetch.get(server.url("/feed")).cache_max_age == max_age


def test_huge_retry_after_is_capped(server: LoopbackServer) -> None:
    server.routes["/busy"] = lambda r: r.reply(429, b"", {"Retry-After": HUGE})
    with fetcher() as fetch:
        error = fetch_error(fetch, server.url("/busy"))
    assert (error.kind, error.retry_after) == ("http_429", 2**31)


@pytest.mark.parametrize(
    "validators",
    [{"etag": ETAG}, {"last_modified": LAST_MODIFIED}],
    ids=["etag", "last-modified"],
)
def test_conditional_get_not_modified(server: LoopbackServer, validators: dict[str, str]) -> None:
    server.routes["/feed"] = conditional
    with fetcher() as fetch:
        resp = fetch.get(server.url("/feed"), **validators)  # type: ignore[arg-type]
    assert resp.status == 304
    assert resp.not_modified
    assert resp.body == b""
    assert resp.etag == ETAG
    sent = server.hits[0][1]
    assert sent.get("If-None-Match") == validators.get("etag")
    assert sent.get("If-Modified-Since") == validators.get("last_modified")


def test_decode_html_gives_text_and_encoding(server: LoopbackServer) -> None:
    html = "<html><head><meta charset=gb2312><title>朱镕基 张喆</title></head></html>"
    server.routes["/gbk"] = lambda r: r.reply(
        200,
        html.encode("gb18030"),
        {"Content-Type": "text/html; charset=utf-8"},  # a lie
    )
    with fetcher() as fetch:
        resp = fetch.get(server.url("/gbk"), decode_html=True)
    assert (resp.text, resp.encoding) == (html, "gb18030")
    assert server.hits[0][1]["Accept"] == HTML_ACCEPT


@pytest.mark.parametrize("content_type", ["", "text/plain", "application/xhtml+xml"])
def test_missing_or_loose_content_type_is_still_html(
    server: LoopbackServer, content_type: str
) -> None:
    server.routes["/p"] = lambda r: r.reply(200, PAGE, {"Content-Type": content_type})
    with fetcher() as fetch:
        assert fetch.get(server.url("/p"), decode_html=True).text == PAGE.decode()


@pytest.mark.parametrize("content_type", ["application/pdf", "image/png"])
def test_non_html_content_type_is_not_html(server: LoopbackServer, content_type: str) -> None:
    server.routes["/file"] = lambda r: r.reply(200, b"%PDF-1.7", {"Content-Type": content_type})
    with fetcher() as fetch:
        assert fetch_error(fetch, server.url("/file"), decode_html=True).kind == "not_html"
        # Feeds and other raw downloads do not care.
        assert fetch.get(server.url("/file")).body == b"%PDF-1.7"


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b"", "empty_page"),
        (b" \r\n ", "empty_page"),
        (b"%PDF-1.7 ...", "not_html"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "not_html"),
        (b"\xff\xd8\xff\xe0 JFIF", "not_html"),
    ],
    ids=["empty", "blank", "pdf", "png", "jpeg"],
)
def test_empty_or_binary_body_labelled_html(server: LoopbackServer, body: bytes, kind: str) -> None:
    server.routes["/p"] = lambda r: r.reply(200, body, {"Content-Type": "text/html"})
    with fetcher() as fetch:
        assert fetch_error(fetch, server.url("/p"), decode_html=True).kind == kind
        assert fetch.get(server.url("/p")).body == body  # feeds are not pages


# -- redirects -----------------------------------------------------------------------------


def test_redirects_are_followed(server: LoopbackServer) -> None:
    server.routes["/a"] = lambda r: r.reply(301, headers={"Location": server.url("/b")})
    server.routes["/b"] = lambda r: r.reply(302, headers={"Location": "c?x=1"})  # relative
    server.routes["/c"] = lambda r: r.reply(200, PAGE)
    with fetcher() as fetch:
        resp = fetch.get(server.url("/a"))
    assert (resp.url, resp.final_url, resp.body) == (server.url("/a"), server.url("/c?x=1"), PAGE)


def test_redirect_loop_stops_after_max_redirects(server: LoopbackServer) -> None:
    server.routes["/loop"] = lambda r: r.reply(302, headers={"Location": "/loop"})
    with fetcher(max_redirects=5) as fetch:
        assert fetch_error(fetch, server.url("/loop")).kind == "too_many_redirects"
    assert len(server.hits) == 6  # the first request and five redirects


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "file:///etc/passwd", "ftp://example.org/x", "http://", "not a url"],
)
def test_non_http_urls_are_bad_url(url: str) -> None:
    with fetcher() as fetch:
        assert fetch_error(fetch, url).kind == "bad_url"


def test_redirect_to_non_http_scheme_is_bad_url(server: LoopbackServer) -> None:
    server.routes["/js"] = lambda r: r.reply(302, headers={"Location": "javascript:alert(1)"})
    with fetcher() as fetch:
        assert fetch_error(fetch, server.url("/js")).kind == "bad_url"


# -- size limits ---------------------------------------------------------------------------


@pytest.fixture(scope="module", name="gzip_bomb")
def gzip_bomb_fixture() -> bytes:
    return gzip_bomb()


@pytest.fixture(scope="module")
def brotli_bomb() -> bytes:
    packer = brotli.Compressor(quality=5)
    return zeros(200 * MiB, packer.process, packer.finish)  # a few hundred bytes


@pytest.mark.parametrize("coding", ["gzip", "br"])
def test_compression_bomb_stops_at_the_cap_in_bounded_memory(
    server: LoopbackServer, coding: str, request: pytest.FixtureRequest
) -> None:
    bomb = request.getfixturevalue(f"{'gzip' if coding == 'gzip' else 'brotli'}_bomb")
    assert len(bomb) < 300 * 1024
    server.routes["/bomb"] = lambda r: r.reply(200, bomb, {"Content-Encoding": coding})
    with fetcher(max_bytes=MiB) as fetch:
        tracemalloc.start()
        try:
            error = fetch_error(fetch, server.url("/bomb"))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert error.kind == "too_large"
    # The 1 MiB body, a copy of it and a few 64 KiB slices; inflating one network read at once
    # would take 64 MiB.
    assert peak < 8 * MiB


@pytest.mark.parametrize(
    ("coding", "pack"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data, wbits=-zlib.MAX_WBITS)),  # raw, no header
        ("br", brotli.compress),
        ("gzip, br", lambda data: brotli.compress(gzip.compress(data))),
    ],
    ids=["gzip", "deflate-zlib", "deflate-raw", "br", "gzip-then-br"],
)
def test_compressed_bodies_are_decoded(
    server: LoopbackServer, coding: str, pack: Callable[[bytes], bytes]
) -> None:
    body = PAGE * 2000
    server.routes["/z"] = lambda r: r.reply(200, pack(body), {"Content-Encoding": coding})
    with fetcher() as fetch:
        assert fetch.get(server.url("/z")).body == body


@pytest.mark.parametrize(
    ("coding", "layers"),
    [("gzip, gzip", 2), ("gzip, identity, gzip, gzip", 3), ("gzip, " * 1999 + "gzip", 2000)],
    ids=["two", "three", "2000"],
)
def test_chained_codings_are_bounded(server: LoopbackServer, coding: str, layers: int) -> None:
    body = PAGE
    for _ in range(min(layers, 5)):
        body = gzip.compress(body)
    server.routes["/z"] = lambda r: r.reply(200, body, {"Content-Encoding": coding})
    with fetcher() as fetch:
        if layers <= MAX_CODINGS:
            assert fetch.get(server.url("/z")).body == PAGE
        else:
            error = fetch_error(fetch, server.url("/z"))
            assert (error.kind, str(error).split(":")[0]) == (
                "bad_encoding",
                f"Content-Encoding chains {layers} codings, more than {MAX_CODINGS}",
            )


def test_corrupt_gzip_is_bad_encoding(server: LoopbackServer) -> None:
    server.routes["/z"] = lambda r: r.reply(200, b"not gzip at all", {"Content-Encoding": "gzip"})
    with fetcher() as fetch:
        assert fetch_error(fetch, server.url("/z")).kind == "bad_encoding"


def test_endless_chunked_body_is_too_large(server: LoopbackServer) -> None:
    server.routes["/endless"] = endless_chunks
    with fetcher(max_bytes=256 * 1024) as fetch:
        assert fetch_error(fetch, server.url("/endless")).kind == "too_large"


def test_content_length_over_the_cap_is_refused_unread(server: LoopbackServer) -> None:
    def huge(request: Request) -> None:
        request.reply(200, b"x" * 10, {"Content-Length": str(10 * MiB)})
        request.wait(HANDLER_BUDGET)  # never sends the rest
        request.close_connection = True

    server.routes["/huge"] = huge
    started = time.monotonic()
    with fetcher(max_bytes=MiB, read_timeout=HANDLER_BUDGET * 4) as fetch:
        assert fetch_error(fetch, server.url("/huge")).kind == "too_large"
    # Reading the body would wait for the server, which holds the connection for the handler
    # budget: refused from the header, the fetch ends well inside it.
    assert time.monotonic() - started < HANDLER_BUDGET


def test_body_shorter_than_content_length_is_connection_error(server: LoopbackServer) -> None:
    server.routes["/short"] = short_body
    with fetcher() as fetch:
        assert fetch_error(fetch, server.url("/short")).kind == "connection_error"


# -- time limits ---------------------------------------------------------------------------


@pytest.mark.parametrize("handler", [trickle_body, trickle_headers], ids=["body", "headers"])
def test_trickling_server_is_cut_by_the_total_deadline(
    server: LoopbackServer, handler: Handler
) -> None:
    server.routes["/slow"] = handler
    started = time.monotonic()
    # A byte every 0.5 s never trips the 1 s read timeout; only the deadline stops it.
    with fetcher(read_timeout=1, total_deadline=1.5) as fetch:
        error = fetch_error(fetch, server.url("/slow"))
    # Never before the deadline; and far before the trickle's own end (100 bytes, 50 s).
    assert 1.5 <= time.monotonic() - started < 25
    assert (error.kind, "deadline" in str(error)) == ("timeout", True)


def test_response_cut_at_the_total_deadline_is_not_retried(server: LoopbackServer) -> None:
    server.routes["/slow"] = trickle_body
    with fetcher(read_timeout=1, total_deadline=1.0, retries=2) as fetch:
        assert fetch_error(fetch, server.url("/slow")).kind == "timeout"
    assert len(server.hits) == 1


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A server that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(HANDLER_BUDGET)
    closing = threading.Event()

    def accept() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            closing.wait(HANDLER_BUDGET)

    thread = threading.Thread(target=accept)
    thread.start()
    yield listener.getsockname()[1]
    closing.set()
    listener.close()
    thread.join(timeout=HANDLER_BUDGET + 1)


def test_server_that_never_answers_times_out(silent_port: int) -> None:
    # Had the read timeout not fired, the server closing after its budget would end the
    # fetch as a connection error, not a timeout.
    with fetcher(read_timeout=0.5) as fetch:
        assert fetch_error(fetch, f"http://127.0.0.1:{silent_port}/").kind == "timeout"


def test_refused_connection_is_connection_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # free, and nothing listens once closed
    with fetcher() as fetch:
        assert fetch_error(fetch, f"http://127.0.0.1:{port}/").kind == "connection_error"


# -- HTTP errors and retries ---------------------------------------------------------------


@pytest.mark.parametrize("status", [404, 410, 500])
def test_http_errors(server: LoopbackServer, status: int) -> None:
    server.routes["/e"] = lambda r: r.reply(status, b"nope")
    with fetcher() as fetch:
        error = fetch_error(fetch, server.url("/e"))
    assert (error.kind, error.status, error.url) == (f"http_{status}", status, server.url("/e"))


def failing_then_ok(failures: int, status: int, headers: dict[str, str] | None = None) -> Handler:
    count = iter(range(1_000))

    def handler(request: Request) -> None:
        if next(count) < failures:
            request.reply(status, b"busy", headers)
        else:
            request.reply(200, PAGE)

    return handler


def test_5xx_is_retried(server: LoopbackServer) -> None:
    server.routes["/flaky"] = failing_then_ok(2, 500)
    with fetcher(retries=2) as fetch:
        assert fetch.get(server.url("/flaky")).body == PAGE
    assert len(server.hits) == 3


def test_retries_back_off_and_give_up(server: LoopbackServer) -> None:
    server.routes["/down"] = failing_then_ok(99, 502)
    started = time.monotonic()
    with fetcher(retries=2, retry_backoff=0.05) as fetch:
        assert fetch_error(fetch, server.url("/down")).kind == "http_502"
    assert len(server.hits) == 3
    assert time.monotonic() - started >= 0.05 + 0.1


def test_404_is_not_retried(server: LoopbackServer) -> None:
    with fetcher(retries=2) as fetch:
        assert fetch_error(fetch, server.url("/missing")).kind == "http_404"
    assert len(server.hits) == 1


@pytest.mark.parametrize(
    ("status", "retry_after"),
    [
        (429, "0"),
        (503, http_date(timedelta(hours=-1))),  # already past: no wait
        (429, "soon"),  # garbage: ignored, the (zero) backoff applies
    ],
    ids=["seconds", "past-date", "garbage"],
)
def test_short_retry_after_is_waited_for(
    server: LoopbackServer, status: int, retry_after: str
) -> None:
    server.routes["/busy"] = failing_then_ok(1, status, {"Retry-After": retry_after})
    with fetcher(retries=1) as fetch:
        assert fetch.get(server.url("/busy")).body == PAGE
    assert len(server.hits) == 2


@pytest.mark.parametrize(
    ("status", "retry_after"),
    [(503, lambda: "3600"), (429, lambda: http_date(timedelta(hours=1)))],
    ids=["seconds", "http-date"],
)
def test_long_retry_after_raises_at_once(
    server: LoopbackServer, status: int, retry_after: Callable[[], str]
) -> None:
    server.routes["/busy"] = failing_then_ok(99, status, {"Retry-After": retry_after()})
    started = time.monotonic()
    with fetcher(retries=2, max_retry_wait=60) as fetch:
        error = fetch_error(fetch, server.url("/busy"))
    # Not waited for, not even up to max_retry_wait: far below it.
    assert time.monotonic() - started < 30
    assert len(server.hits) == 1
    assert error.kind == f"http_{status}"
    assert error.retry_after == pytest.approx(3600, abs=5)


def test_garbage_retry_after_is_none(server: LoopbackServer) -> None:
    server.routes["/busy"] = failing_then_ok(99, 429, {"Retry-After": "soon"})
    with fetcher() as fetch:
        assert fetch_error(fetch, server.url("/busy")).retry_after is None


# -- concurrency and politeness ------------------------------------------------------------


def slow_page(request: Request) -> None:
    request.wait(0.15)
    request.reply(200, PAGE)


@pytest.mark.parametrize(
    ("changes", "hosts", "limit"),
    [
        ({"per_host_concurrency": 2}, None, 2),
        ({"per_host_concurrency": 4}, {"127.0.0.1": HostPolicy(concurrency=1)}, 1),
    ],
    ids=["limits", "host-policy"],
)
def test_per_host_concurrency_seen_at_the_server(
    server: LoopbackServer,
    changes: dict[str, object],
    hosts: dict[str, HostPolicy] | None,
    limit: int,
) -> None:
    server.routes["/slow"] = slow_page
    urls = [server.url(f"/slow?i={i}") for i in range(3 * limit)]
    with Fetcher(LOOPBACK.model_copy(update=changes), hosts) as fetch:
        results = dict(fetch.get_many(urls))
    assert sorted(results) == sorted(urls)
    assert all(isinstance(r, Response) and r.text for r in results.values())
    assert server.peak == limit


def test_min_interval_between_requests_to_one_host(server: LoopbackServer) -> None:
    server.routes["/p"] = lambda r: r.reply(200, PAGE)
    urls = [server.url(f"/p?i={i}") for i in range(4)]
    with Fetcher(LOOPBACK, {"127.0.0.1": HostPolicy(min_interval=0.1)}) as fetch:
        assert len(list(fetch.get_many(urls))) == 4
    # Measured at the server, so allow for scheduling jitter on each side.
    gaps = [b - a for a, b in zip(server.starts, server.starts[1:], strict=False)]
    assert min(gaps) > 0.05
    assert server.starts[-1] - server.starts[0] > 0.25


def test_get_many_yields_failures_without_raising(server: LoopbackServer) -> None:
    server.routes["/ok"] = lambda r: r.reply(200, PAGE)
    urls = [server.url("/ok"), server.url("/gone"), "javascript:void(0)"]
    with fetcher() as fetch:
        results = dict(fetch.get_many(urls))
    assert isinstance(results[server.url("/ok")], Response)
    kinds = {url: getattr(r, "kind", None) for url, r in results.items()}
    assert kinds == {server.url("/ok"): None, server.url("/gone"): "http_404", urls[2]: "bad_url"}


# -- SSRF guard ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:4700:4700::1111", True),
        ("10.0.0.1", False),
        ("172.16.5.4", False),
        ("192.168.1.1", False),
        ("127.0.0.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # CGNAT
        ("0.0.0.0", False),
        ("224.0.1.1", False),
        ("240.0.0.1", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("fec0::1", False),
        ("ff0e::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("2002:7f00:1::", False),  # 6to4 around 127.0.0.1
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 around 169.254.169.254
    ],
)
def test_is_public_address(address: str, public: bool) -> None:
    assert is_public_address(address) is public


@pytest.mark.parametrize(
    "url_for",
    [
        lambda port: f"http://127.0.0.1:{port}/",
        lambda port: f"http://localhost:{port}/",  # refused after DNS resolution
        lambda port: f"http://[::ffff:127.0.0.1]:{port}/",
        lambda port: f"http://2130706433:{port}/",  # 127.0.0.1 as one number
    ],
    ids=["ip", "localhost", "v4-mapped", "decimal"],
)
def test_loopback_refused_by_default(server: LoopbackServer, url_for: Callable[[int], str]) -> None:
    with Fetcher(FetchLimits(retries=0)) as fetch:
        assert fetch_error(fetch, url_for(server.port)).kind == "blocked_address"
    assert server.hits == []


@pytest.fixture
def second_loopback() -> Iterator[LoopbackServer]:
    srv = LoopbackServer("127.0.0.2")  # also loopback, but not in allowed_networks below
    yield srv
    srv.close()


def test_redirect_to_a_private_address_is_refused(
    server: LoopbackServer, second_loopback: LoopbackServer
) -> None:
    server.routes["/to-internal"] = lambda r: r.reply(
        302, headers={"Location": second_loopback.url()}
    )
    server.routes["/to-metadata"] = lambda r: r.reply(
        302, headers={"Location": "http://169.254.169.254/latest/meta-data/"}
    )
    # 127.0.0.1 stands in for an allowed public site; everything else private stays refused.
    with Fetcher(FetchLimits(retries=0, allowed_networks=("127.0.0.1/32",))) as fetch:
        for path in ("/to-internal", "/to-metadata"):
            error = fetch_error(fetch, server.url(path))
            assert error.kind == "blocked_address"
    assert [path for path, _ in server.hits] == ["/to-internal", "/to-metadata"]
    assert second_loopback.hits == []


def test_allowed_networks_are_validated() -> None:
    with pytest.raises(ValidationError):
        FetchLimits(allowed_networks=("not-a-network",))


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for "localhost" only (not for 127.0.0.1), and its key."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def test_https_keeps_sni_and_host_while_connecting_to_the_vetted_ip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert_file, key_file = self_signed(tmp_path)
    server_names: list[str | None] = []
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert_file, key_file)
    tls.sni_callback = lambda sock, name, ctx: server_names.append(name)  # type: ignore[func-returns-value]
    srv = LoopbackServer("127.0.0.1", tls=tls)
    srv.routes["/"] = lambda r: r.reply(200, PAGE)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))  # httpx's way to trust a private CA
    try:
        with fetcher() as fetch:
            # The socket goes to the resolved 127.0.0.1; the certificate names only "localhost".
            assert fetch.get(f"https://localhost:{srv.port}/").body == PAGE
    finally:
        srv.close()
    assert server_names == ["localhost"]
    assert srv.hits[0][1]["Host"] == f"localhost:{srv.port}"
