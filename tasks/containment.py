"""The rule that keeps one bad input from failing a run: every unit of work (a feed, a source,
a batch of pages, a post) catches what it did not expect at its boundary and records it as one
`ingest_errors` row of kind `internal_error`, with the exception's type and message; the
traceback goes to the log. The run goes on, and ends `completed`.

Expected failures are ItemErrors with kinds of their own; an internal_error row is a bug to
fix, reported without costing the other units their work.
"""

from __future__ import annotations

import logging

from newsflow.schemas.errors import ItemError
from newsflow.schemas.models import IngestErrorRecord

LOGGER = logging.getLogger(__name__)

INTERNAL_ERROR = "internal_error"
_MAX_MESSAGE = 500


def describe(exc: BaseException) -> str:
    """The exception's type and message, on one line and short."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:_MAX_MESSAGE] if text else type(exc).__name__


def unexpected(stage: str, exc: BaseException, url: str | None = None) -> ItemError:
    """An ItemError of kind internal_error for `exc`; its traceback is logged here."""
    LOGGER.error("unexpected error in %s of %s", stage, url or "the run", exc_info=exc)
    return ItemError(INTERNAL_ERROR, describe(exc), url=url)


def internal_error(
    stage: str, exc: BaseException, url: str | None = None, feed_url: str | None = None
) -> IngestErrorRecord:
    """The one row that records an unexpected exception of a unit; its traceback is logged."""
    error = unexpected(stage, exc, url)
    return IngestErrorRecord(
        stage=stage, url=url, kind=error.kind, message=str(error), feed_url=feed_url
    )
