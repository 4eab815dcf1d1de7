"""Progress of long runs, as log records the CLI turns into a progress bar.

Flows also run under deployments with no terminal, so they only log; whoever shows progress
listens on this logger.
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
