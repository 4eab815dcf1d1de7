"""The `newsflow` command: parse the arguments, run the command, turn our errors into one line.

Our own errors become one line (`error: …`) and a non-zero exit; a run that completed exits 0
even when some feeds or items failed (they are recorded). The parser is in
newsflow.cli.parser, the commands in newsflow.cli.commands, the output in newsflow.cli.render.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import FrameType

from newsflow.cli.parser import build_parser
from newsflow.cli.render import err, error_line, show_notices
from newsflow.schemas.errors import NewsflowError


def _interrupted(signum: int, frame: FrameType | None) -> None:
    # The command is stopping: what Prefect ("Crash detected!") and the worker threads (a
    # client closed under them) log while the run unwinds is noise; one line says it.
    logging.disable(logging.CRITICAL)
    raise KeyboardInterrupt


@contextmanager
def quiet_interrupt() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, _interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    show_notices()
    try:
        with quiet_interrupt():
            return func(args)
    except NewsflowError as exc:
        error_line(exc)
        return 1
    except KeyboardInterrupt:
        err.print("interrupted", markup=False)
        return 130


if __name__ == "__main__":
    sys.exit(main())
