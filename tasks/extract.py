"""Extract: article text and metadata from HTML with trafilatura, in a process pool.

Extraction is the CPU-bound stage (~20–30 ms a page), so it runs in worker processes, one per
core. pebble's pool is used rather than concurrent.futures because it can kill the one worker
whose document overran its deadline and replace it, where ProcessPoolExecutor can only be
torn down whole.
"""

from __future__ import annotations

import logging
import multiprocessing
import re
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import trafilatura
from pebble import ProcessPool
from pebble.common import ProcessExpired
from trafilatura.settings import Document

from schemas.errors import ItemError
from schemas.models import ExtractedPage

LOGGER = logging.getLogger(__name__)

# A worker is replaced after this many documents, so slow leaks in lxml cannot add up.
_TASKS_PER_WORKER = 500
_HTML_LANG_RE = re.compile(rb"<html[^>]*\blang\s*=\s*[\"']?([A-Za-z]{2,3})", re.IGNORECASE)


def extract_page(url: str, html: str) -> ExtractedPage:
    """trafilatura on decoded HTML, comments excluded; raises ItemError when nothing is found."""
    doc = trafilatura.bare_extraction(
        html,
        url=url,
        include_comments=False,
        include_tables=True,
        with_metadata=True,
        deduplicate=False,
    )
    # Without as_dict trafilatura 2 returns a Document (the dict form is deprecated).
    meta: dict[str, Any] = doc.as_dict() if isinstance(doc, Document) else {}
    text = (meta.get("text") or "").strip()
    if not text:
        raise ItemError("extract_empty", "no article text found on the page", url=url)
    lang = _HTML_LANG_RE.search(html[:4096].encode("utf-8", "ignore"))
    return ExtractedPage(
        url=url,
        title=meta.get("title") or None,
        author=meta.get("author") or None,
        date=meta.get("date") or None,
        image=meta.get("image") or None,
        language=meta.get("language") or (lang.group(1).decode().lower() if lang else None),
        sitename=meta.get("sitename") or None,
        description=meta.get("description") or None,
        categories=_split(meta.get("categories")),
        tags=_split(meta.get("tags")),
        text=text,
    )


def _split(value: Any) -> list[str]:
    if not value:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v).strip() for v in value if str(v).strip()]


def _warm_worker() -> None:
    # Import-time work (lxml, trafilatura's settings) happens once per worker, not per page.
    logging.getLogger("trafilatura").setLevel(logging.CRITICAL)
    logging.getLogger("htmldate").setLevel(logging.CRITICAL)


class Extractor:
    """A pool of extraction workers with a deadline per document."""

    def __init__(self, workers: int, deadline: float) -> None:
        self.workers = max(1, workers)
        self.deadline = deadline
        self._pool: ProcessPool | None = None
        self._lock = threading.Lock()

    def _get_pool(self) -> ProcessPool:
        with self._lock:
            if self._pool is None:
                # forkserver: workers are forked from a clean server process, not from this
                # one with its Prefect threads (fork after threads can deadlock).
                context = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload(["tasks.extract"])
                self._pool = ProcessPool(
                    max_workers=self.workers,
                    max_tasks=_TASKS_PER_WORKER,
                    initializer=_warm_worker,
                    context=context,
                )
            return self._pool

    def extract_many(
        self, pages: Iterable[tuple[str, str]]
    ) -> Iterator[tuple[str, ExtractedPage | ItemError]]:
        """(url, html) pairs in; (url, page or error) out, in input order."""
        pool = self._get_pool()
        futures = [
            (url, pool.schedule(extract_page, args=(url, html), timeout=self.deadline))
            for url, html in pages
        ]
        for url, future in futures:
            try:
                yield url, future.result()
            except ItemError as exc:
                yield url, exc
            except FutureTimeout:
                yield (
                    url,
                    ItemError(
                        "timeout", f"extraction took longer than {self.deadline:.0f} s", url=url
                    ),
                )
            except ProcessExpired as exc:
                yield url, ItemError("extract_crash", f"extraction worker died: {exc}", url=url)
            except Exception as exc:  # trafilatura/lxml failures on hostile markup
                yield url, ItemError("extract_error", f"{type(exc).__name__}: {exc}", url=url)

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
