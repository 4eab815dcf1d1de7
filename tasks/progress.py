"""Progress of long runs, as log records the CLI turns into a progress bar; and notices that a
person waiting on a command should read at once (whom the database lock is waited for).

Flows also run under deployments with no terminal, so they only log; whoever shows progress
or notices listens on these loggers.
"""

from __future__ import annotations

import logging

PROGRESS = logging.getLogger("newsflow.progress")
# Progress is for a listener, not the log: without one it goes nowhere (Prefect's console
# handler on the root logger would print every step).
PROGRESS.propagate = False
PROGRESS.addHandler(logging.NullHandler())


def report_progress(stage: str, done: int, total: int, item: str = "") -> None:
    PROGRESS.info(
        "%s %d/%d %s",
        stage,
        done,
        total,
        item,
        extra={"stage": stage, "done": done, "total": total},
    )


# Notices go to a listener (the CLI prints them at once) and, as INFO, to the log.
NOTICES = logging.getLogger("newsflow.notices")
NOTICES.propagate = False
NOTICES.addHandler(logging.NullHandler())
LOGGER = logging.getLogger(__name__)


def notify(message: str) -> None:
    NOTICES.warning(message)
    LOGGER.info(message)
