"""Extraction inside a Dask worker: the same pages as the pool gives, and the same deadline."""

from __future__ import annotations

import contextlib
import os
import time

import pytest

from newsflow.schemas.errors import ItemError
from newsflow.tasks.extraction.extract import (
    Extractor,
    InlineExtractor,
    _Overrun,
    call_with_deadline,
)
from tests.test_extract import CASES, page_text


def test_inline_extraction_gives_what_the_pool_gives() -> None:
    docs = [(f"http://example.test/{p.name}", page_text(p)) for p in CASES]
    docs.insert(1, ("http://example.test/empty", "<html><body></body></html>"))
    with Extractor(workers=1, deadline=30) as pool:
        expected = list(pool.extract_many(docs))
    got = list(InlineExtractor(deadline=30).extract_many(docs))
    assert [url for url, _ in got] == [url for url, _ in docs]
    for (_, mine), (_, theirs) in zip(got, expected, strict=True):
        if isinstance(theirs, ItemError):
            assert isinstance(mine, ItemError) and mine.kind == theirs.kind
        else:
            assert mine == theirs


@pytest.mark.slow
def test_a_document_past_its_deadline_is_interrupted_and_the_next_one_extracted() -> None:
    # Tens of thousands of paragraphs: trafilatura walks them in Python for about ten seconds.
    huge = (
        "<html><body><article>"
        + "".join(
            f"<p>Paragraph {i} on the stablecoin rules, in many words.</p>" for i in range(60_000)
        )
        + "</article></body></html>"
    )
    # CPU time of this process, which other processes' load does not stretch: trafilatura
    # alone would spend about ten seconds of it on the huge page.
    started = time.process_time()
    results = dict(
        InlineExtractor(deadline=0.5).extract_many([("huge", huge), ("good", page_text(CASES[0]))])
    )
    huge_result = results["huge"]
    assert isinstance(huge_result, ItemError) and huge_result.kind == "timeout"
    assert not isinstance(results["good"], ItemError)
    assert time.process_time() - started < 5


def spin(seconds: float) -> str:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return "done"


def test_calls_within_the_deadline_leave_no_interruption_behind() -> None:
    assert call_with_deadline(1.0, spin, 0.01) == "done"
    # Calls that end about when their deadline fires: an interruption is raised from the
    # call or not at all, never later in the caller's code.
    for _ in range(1000):
        with contextlib.suppress(_Overrun):
            call_with_deadline(0.002, spin, 0.002)
    spin(0.2)


def test_a_forked_child_has_its_deadlines_too() -> None:
    """The watchdog thread does not survive a fork: the child starts its own."""
    assert call_with_deadline(1.0, time.sleep, 0.01) is None  # the parent's watchdog runs
    pid = os.fork()
    if pid == 0:  # the child exits 0 only if a call past its deadline is interrupted
        try:
            call_with_deadline(0.1, spin, 5.0)
        except _Overrun:
            os._exit(0)
        os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
