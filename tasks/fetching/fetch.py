"""HTTP downloads within the limits of DESIGN.md ("Limits every fetch obeys").

One `Fetcher` per run, shared by Prefect task threads. Every request:

- goes only to public addresses unless `allow_private_networks` (or `allowed_networks`): the
  host is resolved once, every address is vetted, and the socket connects to a vetted address,
  so DNS cannot answer differently between the check and the connection; redirects are followed
  here, one hop at a time, so every hop goes through the same check;
- is bounded in time: connect/read timeouts, and a wall-clock deadline per response that also
  bounds every socket read, so a server trickling a byte at a time (headers or body) is cut;
- is bounded in size: Content-Length over the cap is refused unread, and the body is
  decompressed here in slices of at most 64 KiB, so a gzip/brotli bomb stops at the cap;
- waits its turn per host (concurrency and optional interval) and retries transient failures.

Failures are `ItemError`s with a stable `kind` (timeout, too_large, too_many_redirects,
http_<status>, blocked_address, connection_error, bad_url, not_html, empty_page, bad_encoding).
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import logging
import socket
import threading
import time
import zlib
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextvars import ContextVar
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpcore
import httpx

from newsflow.schemas.config import FetchLimits, HostPolicy
from newsflow.schemas.errors import ItemError
from newsflow.schemas.models import Response
from newsflow.tasks.fetching import charset

try:
    import brotli
except ImportError:  # pragma: no cover - httpx[brotli] installs it
    brotli = None  # type: ignore[assignment]

LOGGER = logging.getLogger(__name__)

FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)
HTML_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"

# Only codings we can decompress in bounded slices (brotli needs output_buffer_limit, >= 1.2).
_BROTLI_BOUNDED = brotli is not None and hasattr(brotli.Decompressor(), "can_accept_more_data")
ACCEPT_ENCODING = "gzip, deflate, br" if _BROTLI_BOUNDED else "gzip, deflate"
_DECODE_ERRORS: tuple[type[Exception], ...] = (zlib.error,) + ((brotli.error,) if brotli else ())

_SLICE = 64 * 1024
_REDIRECTS = {301, 302, 303, 307, 308}
_TRANSIENT_KINDS = {"timeout", "connection_error", "http_429"}
# Missing and text/plain types are common on real pages; anything else (PDF, images) is not HTML.
_HTML_TYPES = {"", "text/html", "application/xhtml+xml", "text/plain"}
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Files that servers send as text/html anyway; charset detection would "decode" them.
_BINARY_MAGIC = (
    (b"%PDF-", "a PDF"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"GIF8", "a GIF image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"RIFF", "a RIFF file (WebP, WAV, AVI)"),
    (b"PK\x03\x04", "a ZIP archive (or DOCX, XLSX)"),
    (b"\x1f\x8b", "gzip data"),
)

# The wall-clock deadline of the response being read in this thread. httpcore takes its read
# timeout once per response, so the network stream below clamps every read to what is left.
_DEADLINE: ContextVar[float | None] = ContextVar("newsflow_fetch_deadline", default=None)


def is_public_address(address: str) -> bool:
    """True when an IP literal is globally routable unicast, also for any IPv4 embedded in it."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None and not is_public_address(str(embedded)):
            return False
        if ip.is_site_local:
            return False
    return ip.is_global and not ip.is_multicast and not ip.is_reserved


def is_transient(exc: ItemError) -> bool:
    """A failure that may pass by itself (timeouts, 5xx, 429, lost connections)."""
    if isinstance(exc, _TooSlow):
        return False
    return exc.kind in _TRANSIENT_KINDS or (exc.status or 0) >= 500


class _TooSlow(ItemError):
    """A response cut at the total deadline. The server does answer, only too slowly: trying
    again would hold the run for the whole deadline once more, so it is not retried."""


class _BlockedAddress(Exception):
    def __init__(self, host: str, address: str) -> None:
        super().__init__(f"{host} resolves to non-public address {address}")


class _DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose every read and write ends by the current response's deadline."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _clamp(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _clamp(timeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        tls = self._stream.start_tls(ssl_context, server_hostname, _clamp(timeout))
        return _DeadlineStream(tls)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


def _clamp(timeout: float | None) -> float | None:
    deadline = _DEADLINE.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise httpcore.ReadTimeout("the total deadline passed")
    return left if timeout is None else min(timeout, left)


class _GuardedBackend(httpcore.SyncBackend):
    """Resolves once, refuses non-public addresses, then connects to a vetted IP literal."""

    def __init__(self, limits: FetchLimits) -> None:
        self._allow_all = limits.allow_private_networks
        self._allowed = [ipaddress.ip_network(n, strict=False) for n in limits.allowed_networks]

    def _permitted(self, address: str) -> bool:
        ip = ipaddress.ip_address(address)
        return self._allow_all or is_public_address(address) or any(ip in n for n in self._allowed)

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        for address in addresses:
            if not self._permitted(address):
                raise _BlockedAddress(host, address)
        error: httpcore.ConnectError | None = None
        for address in addresses:
            try:
                stream = super().connect_tcp(
                    address, port, _clamp(timeout), local_address, socket_options
                )
            except httpcore.ConnectError as exc:
                error = exc
            else:
                return _DeadlineStream(stream)
        raise error or httpcore.ConnectError(f"no address for {host}")


def _transport(limits: FetchLimits) -> httpx.HTTPTransport:
    ssl_context = httpx.create_ssl_context()
    transport = httpx.HTTPTransport(verify=ssl_context)
    # httpx has no option for the network backend; give its transport a pool built as httpx
    # builds it, with ours (httpx.HTTPTransport.__init__, httpx 0.27-0.28).
    transport._pool = httpcore.ConnectionPool(
        ssl_context=ssl_context,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_connections,
        keepalive_expiry=5.0,
        network_backend=_GuardedBackend(limits),
    )
    return transport


class _HostGate:
    """At most `concurrency` requests in flight to one host, starts `interval` seconds apart."""

    def __init__(self, concurrency: int, interval: float) -> None:
        self._slots = threading.BoundedSemaphore(concurrency)
        self._interval = interval
        self._lock = threading.Lock()
        self._next_start = 0.0

    @contextlib.contextmanager
    def turn(self, until: float | None = None) -> Iterator[bool]:
        """Waits for a slot; yields False, without one, when `until` passes first."""
        if not self._slots.acquire(timeout=_seconds_left(until)):
            yield False
            return
        try:
            if self._interval > 0:
                with self._lock:
                    now = time.monotonic()
                    start = max(now, self._next_start)
                    self._next_start = start + self._interval
                time.sleep(start - now)
            yield True
        finally:
            self._slots.release()


class Fetcher:
    """Thread-safe HTTP client for one run; see the module docstring for what it guarantees."""

    def __init__(self, limits: FetchLimits, hosts: Mapping[str, HostPolicy] | None = None) -> None:
        self.limits = limits
        self._hosts = {name.lower(): policy for name, policy in (hosts or {}).items()}
        self._gates: dict[str, _HostGate] = {}
        self._gates_lock = threading.Lock()
        read = min(limits.read_timeout, limits.total_deadline)
        self._client = httpx.Client(
            transport=_transport(limits),
            follow_redirects=False,  # followed in _get_once, so every hop is checked
            trust_env=False,  # a proxy from the environment would bypass the address check
            timeout=httpx.Timeout(
                connect=min(limits.connect_timeout, limits.total_deadline),
                read=read,
                write=read,
                pool=None,  # waiting for a free connection; every holder is bounded in time
            ),
            headers={"User-Agent": limits.user_agent, "Accept-Encoding": ACCEPT_ENCODING},
        )

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def get(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        accept: str | None = None,
        decode_html: bool = False,
        until: float | None = None,
        method: str = "GET",
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """GET `url` within the limits; a 304 to a conditional GET is `Response(status=304)`.

        `accept` defaults to HTML_ACCEPT with `decode_html`, else FEED_ACCEPT. With
        `decode_html`, a non-HTML content type is `not_html` and `text`/`encoding` are set.
        Past `until` (a `time.monotonic()` value) no request or retry starts: ItemError
        "feed_timeout" when none did, the last failure otherwise. Declared sources send a
        POST `content` and their own `headers` (referer, content type) the same way.
        """
        headers = {
            "Accept": accept or (HTML_ACCEPT if decode_html else FEED_ACCEPT),
            **(headers or {}),
        }
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        for attempt in itertools.count():
            try:
                return self._get_once(url, headers, decode_html, until, method, content)
            except ItemError as exc:
                wait = self._retry_wait(exc, attempt)
                if wait is None or (until is not None and time.monotonic() + wait > until):
                    raise
                LOGGER.info("retrying in %.1f s: %s", wait, exc)
                time.sleep(wait)
        raise AssertionError("unreachable")  # itertools.count() does not end

    def get_many(
        self, urls: Iterable[str], *, decode_html: bool = True, until: float | None = None
    ) -> Iterator[tuple[str, Response | ItemError]]:
        """Download concurrently, yielding (url, response or error) as each completes.

        At most `max_connections` downloads run or wait for the caller at once, so bodies do
        not pile up in memory faster than the caller uses them. Past `until` (a
        `time.monotonic()` value) no download starts: the URLs left are ItemError
        "feed_timeout", and those running end within their own limits.
        """
        waiting = deque(_interleave_hosts(urls))
        running: dict[Future[Response | ItemError], str] = {}
        with ThreadPoolExecutor(self.limits.max_connections, "newsflow-fetch") as pool:
            try:
                while waiting or running:
                    while waiting and len(running) < self.limits.max_connections:
                        if _seconds_left(until) == 0:
                            break
                        url = waiting.popleft()
                        running[pool.submit(self._get_or_error, url, decode_html, until)] = url
                    if not running:
                        break
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        yield running.pop(future), future.result()
            finally:  # the caller stopped early: drop what has not started
                for future in running:
                    future.cancel()
        for url in waiting:
            yield url, _late(url)

    def _get_or_error(
        self, url: str, decode_html: bool, until: float | None
    ) -> Response | ItemError:
        try:
            return self.get(url, decode_html=decode_html, until=until)
        except ItemError as exc:
            return exc
        except Exception as exc:  # one URL must not end the batch; keep the traceback in logs
            LOGGER.exception("unexpected error fetching %s", url)
            return ItemError("fetch_error", f"{type(exc).__name__}: {exc} ({url})", url)

    def _get_once(
        self,
        url: str,
        headers: dict[str, str],
        decode_html: bool,
        until: float | None,
        method: str = "GET",
        content: bytes | None = None,
    ) -> Response:
        hop = url
        for _ in range(self.limits.max_redirects + 1):
            target = _http_url(hop, url)
            with self._gate(target.host).turn(until) as ours:
                if not ours:
                    raise _late(url)
                deadline = time.monotonic() + self.limits.total_deadline
                token = _DEADLINE.set(deadline)
                try:
                    with (
                        _errors(url, hop, deadline),
                        self._client.stream(
                            method, target, headers=headers, content=content
                        ) as resp,
                    ):
                        location = resp.headers.get("location")
                        if resp.status_code in _REDIRECTS and location:
                            hop = str(resp.url.join(location))
                            if resp.status_code in {301, 302, 303}:  # as browsers do
                                method, content = "GET", None
                            continue
                        return self._read(url, resp, decode_html)
                finally:
                    _DEADLINE.reset(token)
        raise ItemError(
            "too_many_redirects",
            f"more than {self.limits.max_redirects} redirects from {url}",
            url,
        )

    def _read(self, url: str, resp: httpx.Response, decode_html: bool) -> Response:
        status = resp.status_code
        final = str(resp.url)
        if status >= 400:
            raise ItemError(
                f"http_{status}",
                f"HTTP {status} {resp.reason_phrase} from {_where(url, final)}",
                url,
                status=status,
                retry_after=_retry_after(resp.headers.get("retry-after")),
            )
        content_type = resp.headers.get("content-type", "")
        if decode_html and status != 304 and _media_type(content_type) not in _HTML_TYPES:
            raise ItemError("not_html", f"{content_type} is not HTML: {_where(url, final)}", url)
        body = b"" if status == 304 else self._read_body(url, resp)
        text, encoding = None, None
        if decode_html and status != 304:
            _check_page_body(
                body, f"{content_type or 'no content type'}: {_where(url, final)}", url
            )
            try:
                text, encoding = charset.decode_html(body, content_type)
            except ItemError as exc:
                raise ItemError(exc.kind, f"{exc} ({_where(url, final)})", url) from exc
        return Response(
            url=url,
            final_url=final,
            status=status,
            content_type=content_type,
            etag=resp.headers.get("etag"),
            last_modified=resp.headers.get("last-modified"),
            cache_max_age=_max_age(resp.headers.get("cache-control", "")),
            body=body,
            text=text,
            encoding=encoding,
        )

    def _read_body(self, url: str, resp: httpx.Response) -> bytes:
        cap = self.limits.max_bytes
        length = resp.headers.get("content-length", "")
        if length.isdigit() and int(length) > cap:
            raise ItemError("too_large", f"Content-Length {length} is over {cap} bytes: {url}", url)
        body = bytearray()
        codings = resp.headers.get("content-encoding", "")
        try:
            for piece in _decompress(resp.iter_raw(), codings):
                body += piece
                if len(body) > cap:
                    raise ItemError("too_large", f"body over {cap} bytes: {url}", url)
        except _DECODE_ERRORS as exc:
            raise ItemError("bad_encoding", f"corrupt {codings} body ({exc}): {url}", url) from exc
        return bytes(body)

    def _retry_wait(self, exc: ItemError, attempt: int) -> float | None:
        """Seconds to wait before retrying, or None to raise now."""
        if not is_transient(exc) or attempt >= self.limits.retries:
            return None
        backoff = self.limits.retry_backoff * 2**attempt
        if exc.retry_after is None:
            return backoff
        if exc.retry_after > self.limits.max_retry_wait:
            return None  # the caller defers the item; exc.retry_after says for how long
        return max(backoff, exc.retry_after)

    def _gate(self, host: str) -> _HostGate:
        with self._gates_lock:
            gate = self._gates.get(host)
            if gate is None:
                policy = self._hosts.get(host, HostPolicy())
                gate = _HostGate(
                    policy.concurrency or self.limits.per_host_concurrency,
                    self.limits.min_host_interval
                    if policy.min_interval is None
                    else policy.min_interval,
                )
                self._gates[host] = gate
            return gate


@contextlib.contextmanager
def _errors(url: str, hop: str, deadline: float) -> Iterator[None]:
    """Turn httpx's and the guard's exceptions into ItemErrors naming the URL."""
    where = _where(url, hop)
    try:
        yield
    except _BlockedAddress as exc:
        raise ItemError("blocked_address", f"refused: {exc} ({where})", url) from exc
    except httpx.TimeoutException as exc:
        if time.monotonic() >= deadline:
            raise _TooSlow("timeout", f"timed out (total deadline passed): {where}", url) from exc
        raise ItemError("timeout", f"timed out ({type(exc).__name__}): {where}", url) from exc
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        raise ItemError("bad_url", f"bad URL ({exc}): {where}", url) from exc
    except httpx.TransportError as exc:
        message = str(exc) or type(exc).__name__
        raise ItemError("connection_error", f"{message}: {where}", url) from exc


def _http_url(hop: str, url: str) -> httpx.URL:
    try:
        target = httpx.URL(hop)
    except httpx.InvalidURL as exc:
        raise ItemError("bad_url", f"bad URL ({exc}): {_where(url, hop)}", url) from exc
    if target.scheme not in {"http", "https"} or not target.host:
        raise ItemError("bad_url", f"not an http(s) URL: {_where(url, hop)}", url)
    return target


def _seconds_left(until: float | None) -> float | None:
    return None if until is None else max(0.0, until - time.monotonic())


def _late(url: str) -> ItemError:
    return ItemError("feed_timeout", f"the feed's deadline passed before this fetch: {url}", url)


def _where(url: str, hop: str) -> str:
    return url if hop == url else f"{hop} (redirected from {url})"


def gunzip(data: bytes, max_bytes: int) -> bytes:
    """The content of a gzip file (a `.xml.gz` sitemap, sent without Content-Encoding) within
    the body cap, in bounded slices like any body; other data is returned as it is."""
    if not data.startswith(b"\x1f\x8b"):
        return data
    out = bytearray()
    try:
        for piece in _inflate(iter([data]), raw_fallback=False):
            out += piece
            if len(out) > max_bytes:
                raise ItemError("too_large", f"gzip content over {max_bytes} bytes")
    except zlib.error as exc:
        raise ItemError("bad_encoding", f"corrupt gzip file ({exc})") from exc
    return bytes(out)


def _decompress(chunks: Iterator[bytes], codings: str) -> Iterator[bytes]:
    """Undo Content-Encoding, yielding slices of at most 64 KiB however well the data packs."""
    for coding in reversed([c.strip().lower() for c in codings.split(",") if c.strip()]):
        if coding in {"gzip", "x-gzip", "deflate"}:
            chunks = _inflate(chunks, raw_fallback=coding == "deflate")
        elif coding == "br" and _BROTLI_BOUNDED:
            chunks = _unbrotli(chunks)
        elif coding != "identity":  # as httpx does: pass through what we cannot decode
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


def _check_page_body(body: bytes, where: str, url: str) -> None:
    """An empty body is `empty_page`, a known binary format is `not_html`, whatever the label."""
    if not body.strip():
        raise ItemError("empty_page", f"empty body where a page was expected ({where})", url)
    for magic, what in _BINARY_MAGIC:
        if body.startswith(magic):
            raise ItemError("not_html", f"the body is {what}, not HTML ({where})", url)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delay or HTTP date); None when absent or garbage."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000" parses naive; HTTP dates are UTC
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _max_age(cache_control: str) -> int | None:
    for directive in cache_control.split(","):
        name, _, value = directive.strip().partition("=")
        if name.lower() == "max-age" and value.strip('"').isdigit():
            return int(value.strip('"'))
    return None


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _interleave_hosts(urls: Iterable[str]) -> list[str]:
    """Round-robin over hosts, so a pool of workers is not all queued behind one busy host."""
    by_host: dict[str, list[str]] = defaultdict(list)
    for url in urls:
        try:
            by_host[httpx.URL(url).host].append(url)
        except httpx.InvalidURL:
            by_host[""].append(url)
    rows = itertools.zip_longest(*by_host.values())
    return [url for row in rows for url in row if url is not None]
