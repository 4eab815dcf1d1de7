"""The bundled demo site and the loopback server that serves it.

`SiteServer` serves a directory (by default the sample site shipped in
`newsflow/demo/sample_site/`) on 127.0.0.1 with the behaviour a feed reader meets in the wild:
`{base}` placeholders in feeds and pages become the server's own URL, content types carry the
charset the file declares, and conditional GETs (`If-None-Match`, `If-Modified-Since`) are answered
with 304. `newsflow demo` ingests the site through it; tests reuse it with `extra_routes` for
canned responses and `hits` to count requests per path.

What the site holds (its feeds, the manifest of its pages) is in `newsflow.demo.catalogue`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import shutil
import socket
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources.abc import Traversable
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import unquote, urlsplit

from newsflow.demo.catalogue import PLACEHOLDER, packaged_site

LOGGER = logging.getLogger(__name__)

# (status, headers, body): a canned response for `SiteServer(extra_routes=...)`.
Route = tuple[int, Mapping[str, str], bytes]

_CONTENT_TYPES = {
    ".xml": "application/rss+xml",
    ".atom": "application/atom+xml",
    ".rdf": "application/rdf+xml",
    ".html": "text/html",
    ".htm": "text/html",
    ".json": "application/json",
    ".png": "image/png",
    ".css": "text/css",
    ".js": "text/javascript",
    ".txt": "text/plain",
    ".md": "text/markdown",
}
# Text files whose `{base}` placeholders are replaced and whose charset is declared in the file.
_TEXT_SUFFIXES = frozenset({".xml", ".atom", ".rdf", ".html", ".htm"})
_XML_DECL = re.compile(rb"""<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9._-]+)""", re.IGNORECASE)


@dataclass(frozen=True)
class RequestRecord:
    """One request the server answered."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    status: int
    # time.monotonic() when the request arrived and when its answer was ready to send
    started: float = 0.0
    answered: float = 0.0


class SiteServer:
    """Serve a directory on 127.0.0.1 (a free port) from a daemon thread.

    Use as a context manager, or call `start()` and `stop()`::

        with SiteServer() as site:
            feeds_toml = demo_feeds_toml(site.base_url)

    - `{base}` in .xml/.atom/.rdf/.html files (and in `extra_routes` bodies) is replaced, on
      bytes, by `base_url`, so GBK files stay GBK.
    - Feeds and pages are sent with the charset they declare (`charset=gbk` for a feed declared
      gbk, `charset=gb2312` for a page declaring gb2312); `ETag` is a hash of the bytes sent,
      `Last-Modified` the file's mtime; `If-None-Match` / `If-Modified-Since` give 304.
    - `latency` seconds are added to every response (benchmarks); `extra_routes` maps a path
      (with or without its query string) to a canned `(status, headers, body)`.
    - `hits` counts requests per path (query string dropped), `requests` lists them all.
    - At most `max_threads` requests are handled at once; more wait in the listen queue.
    """

    def __init__(
        self,
        root: Path | str | None = None,
        *,
        latency: float = 0.0,
        extra_routes: Mapping[str, Route] | None = None,
        max_threads: int = 16,
        port: int = 0,
    ) -> None:
        if latency < 0:
            raise ValueError("latency must be >= 0")
        if max_threads < 1:
            raise ValueError("max_threads must be >= 1")
        self._root_arg = Path(root) if root is not None else None
        self.latency = latency
        self.extra_routes: dict[str, Route] = dict(extra_routes or {})
        self.max_threads = max_threads
        # 0 picks a free port; the demo asks for a fixed one so its URLs (the articles'
        # identity) are the same from one demo run to the next.
        self.requested_port = port
        self._lock = threading.Lock()
        self._hits: Counter[str] = Counter()
        self._requests: list[RequestRecord] = []
        self._cache: dict[Path, tuple[tuple[int, int], bytes, str, str]] = {}
        self._httpd: _PooledHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        self._root: Path | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        if self._httpd is not None:
            return self
        self._root = self._resolve_root()
        self._cache.clear()  # cached bodies carry the previous base URL
        httpd = _PooledHTTPServer(
            ("127.0.0.1", self.requested_port), _Handler, site=self, max_threads=self.max_threads
        )
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"site-server-{httpd.server_port}",
            daemon=True,
        )
        self._thread.start()
        LOGGER.debug("serving %s at %s", self._root, self.base_url)
        return self

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        self._httpd = self._thread = None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if thread is not None:
            thread.join(timeout=10)
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- public state ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("SiteServer is not running")
        return int(self._httpd.server_port)

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>`, without a trailing slash."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def root(self) -> Path:
        if self._root is None:
            raise RuntimeError("SiteServer is not running")
        return self._root

    def url(self, path: str) -> str:
        """Absolute URL of a site path ("feeds/a.xml" or "/feeds/a.xml")."""
        return self.base_url + "/" + path.lstrip("/")

    @property
    def hits(self) -> Counter[str]:
        """Requests per path so far (a snapshot; query strings dropped)."""
        with self._lock:
            return Counter(self._hits)

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request answered so far, in order (a snapshot)."""
        with self._lock:
            return list(self._requests)

    def reset_counts(self) -> None:
        with self._lock:
            self._hits.clear()
            self._requests.clear()

    # -- internals ---------------------------------------------------------------------------

    def _resolve_root(self) -> Path:
        if self._root_arg is not None:
            if not self._root_arg.is_dir():
                raise FileNotFoundError(f"site directory not found: {self._root_arg}")
            return self._root_arg.resolve()
        site = packaged_site()
        if isinstance(site, Path):
            return site.resolve()
        # Installed in a way that is not a plain directory (a zip): copy it out once.
        self._tmpdir = tempfile.TemporaryDirectory(prefix="newsflow-demo-")
        dest = Path(self._tmpdir.name)
        _copy_tree(site, dest)
        return dest

    def _record(
        self,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        status: int,
        started: float,
    ) -> None:
        answered = time.monotonic()
        with self._lock:
            self._hits[path] += 1
            self._requests.append(
                RequestRecord(method, path, query, dict(headers), status, started, answered)
            )

    def _load(self, file: Path) -> tuple[bytes, str, str]:
        """(bytes to send, content type, etag) of a file, `{base}` replaced; cached by mtime."""
        st = file.stat()
        key = (st.st_mtime_ns, st.st_size)
        with self._lock:
            cached = self._cache.get(file)
        if cached is not None and cached[0] == key:
            return cached[1], cached[2], cached[3]
        data = file.read_bytes()
        suffix = file.suffix.lower()
        ctype = _CONTENT_TYPES.get(suffix, "application/octet-stream")
        if suffix in _TEXT_SUFFIXES:
            data = data.replace(PLACEHOLDER, self.base_url.encode("ascii"))
            ctype = f"{ctype}; charset={_declared_charset(data, suffix)}"
        etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
        with self._lock:
            self._cache[file] = (key, data, ctype, etag)
        return data, ctype, etag

    def _find(self, path: str) -> Path | None:
        root = self.root
        try:
            target = (root / path.lstrip("/")).resolve()
        except (OSError, ValueError):  # NUL bytes, loops
            return None
        if not target.is_relative_to(root):
            return None
        if target.is_dir():
            target = target / "index.html"
        return target if target.is_file() else None


class _PooledHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer whose requests run on a bounded pool instead of a thread each."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        *,
        site: SiteServer,
        max_threads: int,
    ) -> None:
        self.site = site
        self._pool = ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="site-server")
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        self._pool.submit(self.process_request_thread, request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-response is normal for a test server; stay quiet.
        LOGGER.debug("error while serving %s", client_address, exc_info=True)

    def server_close(self) -> None:
        super().server_close()
        # Wake handlers blocked on idle clients so that stop() does not wait out their timeout.
        with self._open_lock:
            pending = list(self._open)
        for request in pending:
            with contextlib.suppress(OSError):
                request.shutdown(socket.SHUT_RDWR)
        self._pool.shutdown(wait=True)


class _Handler(BaseHTTPRequestHandler):
    server: _PooledHTTPServer
    server_version = "newsflow-demo/1"
    # An idle keep-alive client must not hold a pool thread (or stop()) forever.
    timeout = 10

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def log_message(self, format: str, *args: Any) -> None:
        LOGGER.debug("%s " + format, self.address_string(), *args)

    def _serve(self, *, head: bool) -> None:
        site = self.server.site
        started = time.monotonic()
        parts = urlsplit(self.path)
        path = unquote(parts.path) or "/"
        if site.latency:
            time.sleep(site.latency)
        status, headers, body = self._respond(path, parts.path)
        # Counted before the response leaves, so a client that got it sees it in `hits`.
        site._record(self.command, path, parts.query, dict(self.headers.items()), status, started)
        self._send(status, headers, body, head=head or status == 304)

    def _respond(self, path: str, raw_path: str) -> tuple[int, dict[str, str], bytes]:
        site = self.server.site
        route = site.extra_routes.get(self.path) or site.extra_routes.get(raw_path)
        if route is not None:
            status, headers, body = route
            return status, dict(headers), body.replace(PLACEHOLDER, site.base_url.encode("ascii"))
        file = site._find(path)
        if file is None:
            return 404, {"Content-Type": "text/html; charset=utf-8"}, _NOT_FOUND
        data, ctype, etag = site._load(file)
        mtime = int(file.stat().st_mtime)
        headers = {
            "Content-Type": ctype,
            "ETag": etag,
            "Last-Modified": formatdate(mtime, usegmt=True),
            "Cache-Control": "max-age=0, must-revalidate",
        }
        inm, ims = self.headers.get("If-None-Match"), self.headers.get("If-Modified-Since")
        if _not_modified(inm, ims, etag, mtime):
            del headers["Content-Type"]
            return 304, headers, b""
        return 200, headers, data

    def _send(self, status: int, headers: dict[str, str], body: bytes, *, head: bool) -> None:
        self.send_response(status)
        lowered = {k.lower() for k in headers}
        for name, value in headers.items():
            self.send_header(name, value)
        if "content-length" not in lowered and status != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head and body:
            try:
                self.wfile.write(body)
            except (TimeoutError, BrokenPipeError, ConnectionResetError):
                LOGGER.debug("client went away before %s was sent", self.path)


_NOT_FOUND = (
    b"<!DOCTYPE html><html><head><title>404 Not Found</title></head>"
    b"<body><h1>Not Found</h1></body></html>"
)


def _not_modified(
    if_none_match: str | None, if_modified_since: str | None, etag: str, mtime: int
) -> bool:
    if if_none_match is not None:
        tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
        return "*" in tags or etag in tags
    if if_modified_since:
        try:
            since = parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError):
            return False
        return since.tzinfo is not None and mtime <= since.timestamp()
    return False


def _declared_charset(data: bytes, suffix: str) -> str:
    head = data[:2048]
    match = _XML_DECL.search(head) if suffix in {".xml", ".atom", ".rdf"} else None
    if match is None:
        match = _META_CHARSET.search(head)
    return match.group(1).decode("ascii").lower() if match else "utf-8"


def _copy_tree(src: Traversable, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for child in src.iterdir():
        if child.is_dir():
            _copy_tree(child, dest / child.name)
        else:
            with child.open("rb") as fin, (dest / child.name).open("wb") as fout:
                shutil.copyfileobj(fin, fout)
