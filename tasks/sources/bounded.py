"""Local inputs read within bounds: a file only when it is a regular file inside its folder
and no larger than a cap, and YAML without alias bombs or dates that raise.

`backfill --from-dir` reads whatever a folder holds, and a folder can hold a link to
`/dev/zero` or to a secret outside it, a FIFO (opening one for reading waits forever for a
writer), or a few lines of YAML whose aliases expand to gigabytes. Each is refused here as an
ItemError the caller records, before anything is parsed.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

from newsflow.schemas.errors import ItemError

_READ_CHUNK = 1 << 20


def read_regular_file(path: Path, root: Path, max_bytes: int) -> bytes:
    """The bytes of `path`, which must resolve to a regular file inside `root` of at most
    `max_bytes`. Raises ItemError: outside_folder, not_regular_file, too_large; OSError when
    it cannot be read.

    The resolved path is opened without following a link (O_NOFOLLOW: nothing swapped in
    between resolving and opening is followed) and without blocking (O_NONBLOCK: a FIFO opens
    at once, and fstat then refuses it); the size is checked on the open file, and the read
    stops past the cap whatever fstat said.
    """
    resolved = path.resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise ItemError("outside_folder", f"leads outside {root} (to {resolved})")
    fd = os.open(resolved, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ItemError("not_regular_file", "not a regular file")
        if info.st_size > max_bytes:
            raise ItemError("too_large", f"{info.st_size} bytes, over the cap of {max_bytes}")
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, min(_READ_CHUNK, max_bytes + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes:
                raise ItemError("too_large", f"grew past the cap of {max_bytes} bytes while read")
        return b"".join(chunks)
    finally:
        os.close(fd)


class AliasBomb(yaml.YAMLError):
    """YAML whose aliases would expand to more values than any post or site config has."""


class BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, bounded: a document expands to at most `max_values` values
    counting every use of an alias (a billion-laughs tree is refused while it is composed, not
    after it was expanded by whoever walks it), and a timestamp that is no date (2024-02-30,
    year 0) stays a string for the date parser to reject, instead of a ValueError here."""

    max_values = 100_000

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._sizes: dict[int, int] = {}

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        node = super().compose_node(parent, index)
        if node is None or id(node) in self._sizes:  # an alias: sized where its anchor was
            size = self._sizes.get(id(node), 1)
        else:
            size = 1 + sum(self._sizes.get(id(child), 1) for child in _children(node))
            self._sizes[id(node)] = size
        if size > self.max_values:
            raise AliasBomb(f"the YAML expands to over {self.max_values} values (aliases)")
        return node

    def construct_yaml_timestamp(self, node: Node) -> Any:
        try:
            return super().construct_yaml_timestamp(node)  # type: ignore[no-untyped-call]
        except (ValueError, OverflowError):
            return self.construct_scalar(node)  # type: ignore[arg-type]


BoundedLoader.add_constructor("tag:yaml.org,2002:timestamp", BoundedLoader.construct_yaml_timestamp)


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def load_yaml(text: str) -> Any:
    """One YAML document with BoundedLoader; raises yaml.YAMLError (AliasBomb among them)."""
    loader = BoundedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()  # type: ignore[no-untyped-call]
