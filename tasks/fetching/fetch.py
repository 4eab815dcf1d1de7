"""The HTTP client: downloads within the limits of docs/ARCHITECTURE.md ("limits").

One `Fetcher` per run, shared by Prefect task threads. Every request:

- goes only to addresses the guard permits (`guard.py`: public ones unless
  `allow_private_networks` or `allowed_networks`), vetted after DNS; redirects are followed
  here, one hop at a time, so every hop goes through the same check;
- is bounded in time: connect/read timeouts, and a wall-clock deadline per response that also
  bounds every socket read (`guard.response_deadline`), so a trickling server is cut;
- is bounded in size: Content-Length over the cap is refused unread, and the body is
  decompressed in bounded slices (`decompress.py`), so a gzip/brotli bomb stops at the cap;
- waits its turn per host (concurrency and optional interval) and retries transient failures.

Failures are `ItemError`s with a stable kind (`newsflow.schemas.kinds.Kind`: timeout,
too_large, too_many_redirects, http_<status>, blocked_address, connection_error, bad_url,
not_html, empty_page, bad_encoding, feed_timeout, fetch_error).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from newsflow.schemas.config import FetchLimits, HostPolicy
from newsflow.schemas.errors import ItemError
from newsflow.schemas.kinds import Kind, http_kind
from newsflow.schemas.models import Response
from newsflow.tasks.fetching import charset
from newsflow.tasks.fetching.decompress import ACCEPT_ENCODING, read_body
from newsflow.tasks.fetching.guard import BlockedAddress, guarded_transport, response_deadline

LOGGER = logging.getLogger(__name__)

FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)
HTML_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"

_REDIRECTS = {301, 302, 303, 307, 308}
_TRANSIENT_KINDS = {Kind.TIMEOUT, Kind.CONNECTION_ERROR, http_kind(429)}
# Missing and text/plain types are common on real pages; anything else (PDF, images) is not HTML.
_HTML_TYPES = {"", "text/html", "application/xhtml+xml", "text/plain"}
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


def is_transient(exc: ItemError) -> bool:
    """A failure that may pass by itself (timeouts, 5xx, 429, lost connections)."""
    if isinstance(exc, _TooSlow):
        return False
    return exc.kind in _TRANSIENT_KINDS or (exc.status or 0) >= 500


class _TooSlow(ItemError):
    """A response cut at the total deadline. The server does answer, only too slowly: trying
    again would hold the run for the whole deadline once more, so it is not retried."""


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
            transport=guarded_transport(limits),
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
            return ItemError(Kind.FETCH_ERROR, f"{type(exc).__name__}: {exc} ({url})", url)

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
                with (
                    response_deadline(deadline),
                    _errors(url, hop, deadline),
                    self._client.stream(method, target, headers=headers, content=content) as resp,
                ):
                    location = resp.headers.get("location")
                    if resp.status_code in _REDIRECTS and location:
                        hop = str(resp.url.join(location))
                        if resp.status_code in {301, 302, 303}:  # as browsers do
                            method, content = "GET", None
                        continue
                    return self._read(url, resp, decode_html)
        raise ItemError(
            Kind.TOO_MANY_REDIRECTS,
            f"more than {self.limits.max_redirects} redirects from {url}",
            url,
        )

    def _read(self, url: str, resp: httpx.Response, decode_html: bool) -> Response:
        status = resp.status_code
        final = str(resp.url)
        if status >= 400:
            raise ItemError(
                http_kind(status),
                f"HTTP {status} {resp.reason_phrase} from {_where(url, final)}",
                url,
                status=status,
                retry_after=_retry_after(resp.headers.get("retry-after")),
            )
        content_type = resp.headers.get("content-type", "")
        if decode_html and status != 304 and _media_type(content_type) not in _HTML_TYPES:
            raise ItemError(Kind.NOT_HTML, f"{content_type} is not HTML: {_where(url, final)}", url)
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
        length = delta_seconds(resp.headers.get("content-length", ""), ceiling=2**63)
        if length is not None and length > cap:
            where = resp.headers["content-length"][:20]
            raise ItemError(
                Kind.TOO_LARGE, f"Content-Length {where} is over {cap} bytes: {url}", url
            )
        codings = resp.headers.get("content-encoding", "")
        return read_body(resp.iter_raw(), codings, cap, url)

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
    except BlockedAddress as exc:
        raise ItemError(Kind.BLOCKED_ADDRESS, f"refused: {exc} ({where})", url) from exc
    except httpx.TimeoutException as exc:
        if time.monotonic() >= deadline:
            raise _TooSlow(
                Kind.TIMEOUT, f"timed out (total deadline passed): {where}", url
            ) from exc
        raise ItemError(Kind.TIMEOUT, f"timed out ({type(exc).__name__}): {where}", url) from exc
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        raise ItemError(Kind.BAD_URL, f"bad URL ({exc}): {where}", url) from exc
    except httpx.TransportError as exc:
        message = str(exc) or type(exc).__name__
        raise ItemError(Kind.CONNECTION_ERROR, f"{message}: {where}", url) from exc


def _http_url(hop: str, url: str) -> httpx.URL:
    try:
        target = httpx.URL(hop)
    except httpx.InvalidURL as exc:
        raise ItemError(Kind.BAD_URL, f"bad URL ({exc}): {_where(url, hop)}", url) from exc
    if target.scheme not in {"http", "https"} or not target.host:
        raise ItemError(Kind.BAD_URL, f"not an http(s) URL: {_where(url, hop)}", url)
    return target


def _seconds_left(until: float | None) -> float | None:
    return None if until is None else max(0.0, until - time.monotonic())


def _late(url: str) -> ItemError:
    return ItemError(Kind.FEED_TIMEOUT, f"the feed's deadline passed before this fetch: {url}", url)


def _where(url: str, hop: str) -> str:
    return url if hop == url else f"{hop} (redirected from {url})"


def _check_page_body(body: bytes, where: str, url: str) -> None:
    """An empty body is `empty_page`, a known binary format is `not_html`, whatever the label."""
    if not body.strip():
        raise ItemError(Kind.EMPTY_PAGE, f"empty body where a page was expected ({where})", url)
    for magic, what in _BINARY_MAGIC:
        if body.startswith(magic):
            raise ItemError(Kind.NOT_HTML, f"the body is {what}, not HTML ({where})", url)


def delta_seconds(value: str, ceiling: int = 2**31) -> int | None:
    """A header's count of seconds (or bytes), capped at `ceiling`; None unless ASCII digits.

    RFC 9111 (1.2.2): a delta-seconds value too big to represent counts as 2**31. The digits are
    not all converted: int() refuses strings of over 4,300 digits.
    """
    value = value.strip()
    if not (value.isascii() and value.isdigit()):
        return None
    if len(value.lstrip("0")) > len(str(ceiling)):
        return ceiling
    return min(int(value), ceiling)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delay or HTTP date); None when absent or garbage."""
    if not value:
        return None
    seconds = delta_seconds(value)
    if seconds is not None:
        return float(seconds)
    value = value.strip()
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
        if name.strip().lower() == "max-age":
            seconds = delta_seconds(value.strip().strip('"'))
            if seconds is not None:
                return seconds
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
