"""A threaded HTTP/1.1 server on loopback for tests, and the hostile handlers it can play.

Bounded in count and time: at most `max_threads` connections are served at once (more wait in
the listen queue), an idle keep-alive connection is dropped after `HANDLER_BUDGET` seconds, every
hostile handler gives up by itself within that budget, and `close()` wakes whatever still runs.
So a failing assertion never leaves a thread hanging.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

MiB = 1024 * 1024
HANDLER_BUDGET = 5.0  # seconds any handler may run before it gives up by itself

Handler = Callable[["Request"], None]


class Request(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = HANDLER_BUDGET  # an idle keep-alive client does not hold a thread for long

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        pass

    def do_GET(self) -> None:
        self.server.owner.serve(self)

    def reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        headers = {"Content-Type": "text/html; charset=utf-8", **(headers or {})}
        headers.setdefault("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def wait(self, seconds: float) -> bool:
        """Sleep unless the server is closing; True when it is."""
        return self.server.owner.closing.wait(seconds)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], owner: LoopbackServer, max_threads: int) -> None:
        self.owner = owner
        self._slots = threading.BoundedSemaphore(max_threads)
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, Request)

    def process_request(self, request: Any, client_address: Any) -> None:
        while not self._slots.acquire(timeout=0.05):
            if self.owner.closing.is_set():
                self.shutdown_request(request)
                return
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._open_lock:
                self._open.discard(request)
            self._slots.release()

    def wake_all(self) -> None:
        """Hang up on every open connection, so blocked handlers end now."""
        with self._open_lock:
            pending = list(self._open)
        for request in pending:
            with contextlib.suppress(OSError):
                request.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: object, client_address: object) -> None:
        error = sys.exc_info()[1]
        if not isinstance(error, ConnectionError | TimeoutError):  # clients hanging up: expected
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class LoopbackServer:
    """Per-path handlers (query strings ignored); records what it received."""

    def __init__(self, host: str = "127.0.0.1", tls: Any = None, *, max_threads: int = 64) -> None:
        self.routes: dict[str, Handler] = {}
        self.hits: list[tuple[str, dict[str, str]]] = []
        self.starts: list[float] = []
        self.in_flight = 0
        self.peak = 0
        self.closing = threading.Event()
        self._lock = threading.Lock()
        self._httpd = _Server((host, 0), self, max_threads)
        if tls is not None:
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True)
        self.host, self.port = host, self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,))
        self._thread.start()

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def route(self, path: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.routes[path] = handler
            return handler

        return register

    def paths_hit(self) -> list[str]:
        with self._lock:
            return [urlsplit(path).path for path, _ in self.hits]

    def serve(self, request: Request) -> None:
        with self._lock:
            self.hits.append((request.path, dict(request.headers.items())))
            self.starts.append(time.monotonic())
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            handler = self.routes.get(urlsplit(request.path).path)
            if handler is None:
                request.reply(404, b"not found")
            else:
                handler(request)
        except (ConnectionError, TimeoutError):
            request.close_connection = True  # the client gave up, as limit tests expect
        finally:
            with self._lock:
                self.in_flight -= 1

    def close(self) -> None:
        self.closing.set()
        self._httpd.shutdown()
        self._httpd.wake_all()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> LoopbackServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# -- hostile handlers ----------------------------------------------------------------------


def zeros(size: int, compress: Callable[[bytes], bytes], flush: Callable[[], bytes]) -> bytes:
    """`size` zero bytes, compressed a MiB at a time (a compression bomb)."""
    block = bytes(MiB)
    return b"".join([compress(block) for _ in range(size // MiB)] + [flush()])


def gzip_bomb(size: int = 200 * MiB) -> bytes:
    """`size` zeros gzip-compressed: ~200 KiB on the wire for the default 200 MiB."""
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    return zeros(size, packer.compress, packer.flush)


def endless_chunks(request: Request) -> None:
    request.send_response(200)
    request.send_header("Transfer-Encoding", "chunked")
    request.end_headers()
    chunk = b"%x\r\n%s\r\n" % (16384, b"x" * 16384)
    deadline = time.monotonic() + HANDLER_BUDGET
    while time.monotonic() < deadline and not request.server.owner.closing.is_set():
        request.wfile.write(chunk)
    request.close_connection = True


def short_body(request: Request) -> None:
    """Announces 1000 bytes, sends ten, hangs up."""
    request.reply(200, b"only ten b", {"Content-Length": "1000"})
    request.close_connection = True


def trickle_body(request: Request, size: int = 100) -> None:
    """Headers at once, then a byte every 0.5 s: never idle long enough for a read timeout."""
    request.send_response(200)
    request.send_header("Content-Length", str(size))
    request.end_headers()
    for _ in range(size):
        request.wfile.write(b"x")
        if request.wait(0.5):
            break


def trickle_headers(request: Request) -> None:
    request.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
    for _ in range(100):
        request.wfile.write(b"x")
        if request.wait(0.5):
            break


def never_answers(request: Request, seconds: float = HANDLER_BUDGET) -> None:
    """Reads the request and says nothing for `seconds` or until the server closes."""
    request.wait(seconds)
    request.close_connection = True


def http_date(delta: timedelta) -> str:
    return format_datetime(datetime.now(UTC) + delta, usegmt=True)
