"""Extract: article text and metadata from HTML with trafilatura, in a process pool.

Extraction is the CPU-bound stage (~20–30 ms a page), so it runs in worker processes, one per
core; feed parsing (feedparser) runs in the same pool, and so does the per-article work on an
extracted page's text (tags, fingerprint: tasks/extraction/derive.py, `extract_article`).
pebble's pool is used rather than concurrent.futures because it can kill the one worker whose
document overran its deadline and replace it, where ProcessPoolExecutor can only be torn down
whole.

Every document is bounded: in time by its deadline (the worker is killed past it), in memory
by the workers' address-space limit (a document that needs more fails with MemoryError, as
`too_large`), and no feed queues more documents than the workers can take, so pages do not pile
up in memory.

A Dask worker is already one process per core, and a daemonic one, which may not start a pool
of its own: there `InlineExtractor` parses and extracts in the calling thread, under the same
deadlines; its memory is bounded by Dask's own limit per worker (the nanny restarts a worker
that passes it).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import re
import resource
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

import trafilatura
from pebble import ProcessPool
from pebble.common import ProcessExpired
from trafilatura.settings import Document
from trafilatura.utils import load_html

from newsflow.schemas.errors import ItemError
from newsflow.schemas.kinds import Kind, Stage
from newsflow.schemas.models import ExtractedPage, ParsedFeed, Response
from newsflow.tasks.extraction.assemble import Assembly
from newsflow.tasks.extraction.body import choose_body
from newsflow.tasks.extraction.derive import Derivation
from newsflow.tasks.extraction.metadata.authors import clean_authors
from newsflow.tasks.extraction.metadata.choose import PageMetadata, date_fields, read_metadata
from newsflow.tasks.extraction.metadata.trafilatura_fields import (
    TrafilaturaFields,
    trafilatura_fields,
)
from newsflow.tasks.extraction.mode import use_fast_mode
from newsflow.tasks.forkserver import ensure_forkserver
from newsflow.tasks.sources.feeds import parse_feed

LOGGER = logging.getLogger(__name__)

# A worker is replaced after this many documents, so slow leaks in lxml cannot add up.
_TASKS_PER_WORKER = 500
# Documents of one feed waiting in the pool, per worker.
_QUEUED_PER_WORKER = 2
T = TypeVar("T")
# A page's URL to what builds its entry's article in the worker (assemble.py).
Assemble = Callable[[str], Assembly]
_HTML_LANG_RE = re.compile(rb"<html[^>]*\blang\s*=\s*[\"']?([A-Za-z]{2,3})", re.IGNORECASE)


def extract_page(url: str, html: str, fast: bool | None = None) -> ExtractedPage:
    """trafilatura and the metadata stage on decoded HTML, comments excluded; raises ItemError
    when no text is found. The page is parsed once: the metadata stages read the tree before
    trafilatura cleans (a copy of) it. `fast`: trafilatura's fast mode, decided per page when
    None (mode.py)."""
    tree = load_html(html)
    found = read_metadata(tree, url) if tree is not None else PageMetadata()
    # trafilatura's own metadata pass is not run (with_metadata=False): trafilatura_fields.py
    # runs the part of it whose fields are used.
    doc = trafilatura.bare_extraction(
        tree if tree is not None else html,
        url=url,
        include_comments=False,
        include_tables=True,
        deduplicate=False,
        fast=use_fast_mode(tree) if fast is None else fast,
    )
    text = choose_body((doc.text or "").strip() if isinstance(doc, Document) else "", tree)
    if not text:
        raise ItemError(Kind.EXTRACT_EMPTY, "no article text found on the page", url=url)
    more = (
        trafilatura_fields(tree, url, need_title=not found.title, need_author=not found.authors)
        if tree is not None
        else TrafilaturaFields()
    )
    lang = _HTML_LANG_RE.search(html[:4096].encode("utf-8", "ignore"))
    return ExtractedPage(
        url=url,
        title=found.title or more.title or None,
        author=", ".join(found.authors or clean_authors([[more.author or ""]], set())) or None,
        image=more.image or None,
        language=lang.group(1).decode().lower() if lang else None,
        sitename=more.sitename or found.sitename or None,
        description=more.description or None,
        categories=more.categories,
        tags=more.tags,
        text=text,
        **date_fields(found),
    )


def extract_article(
    url: str, html: str, derive: Derivation | None, assembly: Assembly | None = None
) -> ExtractedPage:
    """extract_page, then the per-article work on its text in the same worker, so that the
    flow process does not do it: tags, fingerprint and search terms (`derive`:
    tasks/extraction/derive.py), and the entry's article (`assembly`: assemble.py)."""
    page = extract_page(url, html)
    if derive is not None:
        page = derive(page)
    return assembly(page) if assembly is not None else page


def _warm_worker(memory_limit: int | None) -> None:
    # Import-time work (lxml, trafilatura's settings) happens once per worker, not per page.
    logging.getLogger("trafilatura").setLevel(logging.CRITICAL)
    logging.getLogger("htmldate").setLevel(logging.CRITICAL)
    if memory_limit:
        # Address space, the one limit Linux enforces on malloc; ~150 MiB of it idle.
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))


def _feed_timeout(url: str) -> ItemError:
    return ItemError(Kind.FEED_TIMEOUT, f"the feed's deadline passed before extraction: {url}", url)


def _left(until: float | None) -> float | None:
    return None if until is None else max(0.0, until - time.monotonic())


def _workers_context() -> multiprocessing.context.ForkServerContext:
    # forkserver: workers are forked from a clean server process that has imported this
    # module, not from the caller with its Prefect threads (fork after threads can deadlock).
    # numpy (MinHash) loads OpenBLAS, which starts a thread per core with its own buffers,
    # all counted against the workers' address-space limit (a worker on 2 cores idled at 186
    # MiB of 320, 146 with one thread; the more cores, the less room for pages). MinHash uses
    # no BLAS. The forkserver, which imports numpy for the workers, starts with this setting.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["newsflow.tasks.extraction.extract"])
    return context


def start_forkserver() -> None:
    """Start the process workers are forked from ahead of the first document: its imports
    (trafilatura, lxml: ~0.5 s) then overlap whatever the caller waits for meanwhile."""
    _workers_context()
    ensure_forkserver()


class Extractor:
    """A pool of workers for CPU work (pages and feeds), with a deadline per document."""

    def __init__(
        self,
        workers: int,
        deadline: float,
        *,
        parse_deadline: float = 60.0,
        memory_limit: int | None = None,
        derive: Derivation | None = None,
    ) -> None:
        self.workers = max(1, workers)
        self.deadline = deadline
        self.parse_deadline = parse_deadline
        self.memory_limit = memory_limit
        self.derive = derive
        self._pool: ProcessPool | None = None
        self._lock = threading.Lock()

    def _get_pool(self) -> ProcessPool:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPool(
                    max_workers=self.workers,
                    max_tasks=_TASKS_PER_WORKER,
                    initializer=_warm_worker,
                    initargs=(self.memory_limit,),
                    context=_workers_context(),
                )
            return self._pool

    def parse_feed(self, response: Response, max_items: int) -> ParsedFeed:
        """`newsflow.tasks.sources.feeds.parse_feed` in a worker, within the parse deadline; raises
        ItemError."""
        future = self._get_pool().schedule(
            parse_feed, args=(response, max_items), timeout=self.parse_deadline
        )
        return _outcome(response.url, future, Stage.PARSE, self.parse_deadline, None)

    def extract_many(
        self,
        pages: Iterable[tuple[str, str]],
        until: float | None = None,
        assemble: Assemble | None = None,
    ) -> Iterator[tuple[str, ExtractedPage | ItemError]]:
        """(url, html) pairs in; (url, page or error) out, in input order.

        Pages are taken from `pages` only as workers free up. Past `until` (a
        `time.monotonic()` value: the feed's deadline), pages not yet extracted are
        ItemError(Kind.FEED_TIMEOUT). `assemble(url)`: what builds the page's entry's article
        in the worker too.
        """
        pool = self._get_pool()
        queued: deque[tuple[str, Future[ExtractedPage]]] = deque()

        def oldest() -> tuple[str, ExtractedPage | ItemError]:
            url, future = queued.popleft()
            try:
                return url, _outcome(url, future, Stage.EXTRACT, self.deadline, until)
            except ItemError as exc:
                return url, exc

        for url, html in pages:
            if _left(until) == 0:
                yield url, _feed_timeout(url)
                continue
            queued.append(
                (
                    url,
                    pool.schedule(
                        extract_article,
                        args=(url, html, self.derive, assemble(url) if assemble else None),
                        timeout=self.deadline,
                    ),
                )
            )
            if len(queued) >= _QUEUED_PER_WORKER * self.workers:
                yield oldest()
        while queued:
            yield oldest()

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.stop()
                self._pool.join(timeout=10)
                self._pool = None

    def __enter__(self) -> Extractor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _outcome(url: str, future: Future[T], stage: Stage, deadline: float, until: float | None) -> T:
    """The worker's result, or the ItemError that explains why there is none."""
    try:
        return future.result(timeout=_left(until))
    except ItemError:
        raise
    except FutureTimeout as exc:
        if not future.done():  # the feed's deadline passed while this one waited or ran
            future.cancel()  # pebble kills the worker if it had started
            raise _feed_timeout(url) from exc
        raise _overran(url, stage, deadline) from exc
    except Exception as exc:
        raise _failure(url, stage, exc) from exc


# What a stage's worker does, and the kinds of its failures: (an exception, the worker died).
_WORK = {
    Stage.EXTRACT: ("extraction", Kind.EXTRACT_ERROR, Kind.EXTRACT_CRASH),
    Stage.PARSE: ("parsing", Kind.PARSE_ERROR, Kind.PARSE_CRASH),
}


def _what(stage: Stage) -> str:
    return _WORK[stage][0]


def _overran(url: str, stage: Stage, deadline: float) -> ItemError:
    return ItemError(Kind.TIMEOUT, f"{_what(stage)} took longer than {deadline:.0f} s", url)


def _failure(url: str, stage: Stage, exc: Exception) -> ItemError:
    """A document's failure as a recorded error."""
    what, error, crash = _WORK[stage]
    if isinstance(exc, MemoryError):
        return ItemError(Kind.TOO_LARGE, f"{what} ran out of its worker's memory", url)
    if isinstance(exc, ProcessExpired):
        return ItemError(crash, f"{what} worker died: {exc}", url)
    # trafilatura/lxml/feedparser failures on hostile markup
    return ItemError(error, f"{type(exc).__name__}: {exc}", url)


class _Overrun(BaseException):
    """Raised into a thread whose document passed its deadline. A BaseException, so that no
    `except Exception` inside trafilatura, lxml's Python layers or feedparser swallows it."""


# After the deadline, the interruption is repeated this often until the call gives up: one
# that lands in a Python callback called from C (lxml's element-class lookup) is swallowed
# there as "unraisable", and the document would run on.
_INTERRUPT_AGAIN = 0.05


class _Call:
    """A call being watched: its thread, when to interrupt it next, and whether it ended."""

    __slots__ = ("at", "done", "guard", "thread_id")

    def __init__(self, thread_id: int, at: float) -> None:
        self.thread_id = thread_id
        self.at = at
        self.done = False
        # Held to send, and to mark the call done: never both at once.
        self.guard = threading.Lock()


class _Watchdog:
    """One thread for the process that interrupts calls past their deadline.

    Not a thread per call: starting a thread allocates its state under the starting thread's
    id until the new thread runs, so an interruption aimed at the caller while it started a
    thread could land in the new one, which then died before telling Thread.start() it had
    begun, and the caller waited forever (a CI run hung so, on a 2 ms deadline under load;
    a stress loop reproduced it in one run of three). This thread is started once, outside
    any call, and runs for the process's life."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._calls: set[_Call] = set()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def watch(self, call: _Call) -> None:
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="newsflow-deadline", daemon=True
                )
                self._thread.start()
            self._calls.add(call)
            self._cond.notify()

    def unwatch(self, call: _Call) -> None:
        with self._cond:
            self._calls.discard(call)

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                for call in [c for c in self._calls if c.at <= now]:
                    with call.guard:
                        if not call.done:
                            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                                ctypes.c_ulong(call.thread_id), ctypes.py_object(_Overrun)
                            )
                    call.at = now + _INTERRUPT_AGAIN
                soonest = min((c.at for c in self._calls), default=None)
                self._cond.wait(None if soonest is None else max(soonest - now, 0.0))


_WATCHDOG = _Watchdog()
# A forked child has no watchdog thread, and may hold a copy of a lock taken at the fork.
os.register_at_fork(after_in_child=_WATCHDOG.reset)


def call_with_deadline(deadline: float, fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` in this thread, interrupted with _Overrun once `deadline` seconds have passed.

    The interruption is an asynchronous exception (PyThreadState_SetAsyncExc): it lands at
    the next Python bytecode, so Python-level work (most of trafilatura) stops at the deadline,
    while one call into C (an lxml parse) finishes first. Only a process can be killed
    mid-call; this is the price of extracting inside a Dask worker.
    """
    call = _Call(threading.get_ident(), time.monotonic() + max(deadline, 0.0))
    try:
        _WATCHDOG.watch(call)
        return fn(*args)
    finally:
        _settle(call)
        _WATCHDOG.unwatch(call)


def _settle(call: _Call) -> None:
    """Mark the call done so that nothing more is sent, then drop an interruption sent but not
    yet raised. One raised here, while settling, is caught: it belongs to the call that just
    ended, and letting it out of a `finally` would leave the watchdog sending forever."""
    while not call.done:
        with contextlib.suppress(_Overrun), call.guard:
            call.done = True
    with contextlib.suppress(_Overrun):
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(call.thread_id), None)


def _quiet_swallowed_overruns() -> None:
    """Keep the interruptions that a C callback swallows (see _INTERRUPT_AGAIN) out of the
    worker's stderr; other unraisable exceptions are reported as before."""
    previous = sys.unraisablehook
    if getattr(previous, "newsflow_overruns", False):
        return

    def hook(unraisable: Any) -> None:
        if unraisable.exc_type is not _Overrun:
            previous(unraisable)

    hook.newsflow_overruns = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook


class InlineExtractor:
    """Extractor's interface, working in the calling thread, one document at a time: for
    processes that are the parallelism themselves (Dask workers)."""

    def __init__(
        self, deadline: float, *, parse_deadline: float = 60.0, derive: Derivation | None = None
    ) -> None:
        self.deadline = deadline
        self.parse_deadline = parse_deadline
        self.derive = derive
        _warm_worker(None)
        _quiet_swallowed_overruns()

    def _run(self, url: str, stage: Stage, deadline: float, fn: Callable[..., T], *args: Any) -> T:
        try:
            return call_with_deadline(deadline, fn, *args)
        except ItemError:
            raise
        except _Overrun as exc:
            raise _overran(url, stage, deadline) from exc
        except Exception as exc:
            raise _failure(url, stage, exc) from exc

    def parse_feed(self, response: Response, max_items: int) -> ParsedFeed:
        """`newsflow.tasks.sources.feeds.parse_feed` within the parse deadline; raises ItemError."""
        return self._run(
            response.url, Stage.PARSE, self.parse_deadline, parse_feed, response, max_items
        )

    def extract_many(
        self,
        pages: Iterable[tuple[str, str]],
        until: float | None = None,
        assemble: Assemble | None = None,
    ) -> Iterator[tuple[str, ExtractedPage | ItemError]]:
        """(url, html) pairs in; (url, page or error) out, in input order; past `until` (the
        feed's deadline), ItemError(Kind.FEED_TIMEOUT), as Extractor gives; `assemble` as
        Extractor takes it."""
        for url, html in pages:
            left = _left(until)
            if left == 0:
                yield url, _feed_timeout(url)
                continue
            deadline = self.deadline if left is None else min(self.deadline, left)
            try:
                yield (
                    url,
                    self._run(
                        url,
                        Stage.EXTRACT,
                        deadline,
                        extract_article,
                        url,
                        html,
                        self.derive,
                        assemble(url) if assemble else None,
                    ),
                )
            except ItemError as exc:
                cut = left is not None and left < self.deadline and exc.kind == "timeout"
                yield url, _feed_timeout(url) if cut else exc

    def close(self) -> None:
        """Nothing to release: no pool."""

    def __enter__(self) -> InlineExtractor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
