"""Text from data, made safe for the terminal.

Feed names, titles, servers' reason phrases and error messages come from the network or a
config file. Rich would read `[bold]` or `[link=…]` in them as markup, and a terminal would
act on ESC sequences; so every cell and message built from data goes through `shown`.
"""

from __future__ import annotations

import re

from rich.text import Text

# C0 controls but tab and newline, DEL, and C1 controls (ESC starts terminal sequences).
_CONTROLS_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def visible(value: object) -> str:
    """The value as text, each control character written out (`\\x1b`), never sent."""
    return _CONTROLS_RE.sub(lambda m: f"\\x{ord(m[0]):02x}", "" if value is None else str(value))


def shown(value: object) -> Text:
    """A rich Text of the value: no markup read, control characters made visible."""
    return Text(visible(value))
