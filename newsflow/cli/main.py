"""The `newsflow` command: parse the arguments, run the command, turn our errors into one line.

Our own errors become one line (`error: …`) and a non-zero exit; a run that completed exits 0
even when some feeds or items failed (they are recorded). The parser is in
newsflow.cli.parser, the commands in newsflow.cli.commands, the output in newsflow.cli.render.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from newsflow.cli.parser import build_parser
from newsflow.cli.render import err, error_line, show_notices
from newsflow.schemas.errors import NewsflowError


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    show_notices()
    try:
        return func(args)
    except NewsflowError as exc:
        error_line(exc)
        return 1
    except KeyboardInterrupt:
        err.print("interrupted", markup=False)
        return 130


if __name__ == "__main__":
    sys.exit(main())
