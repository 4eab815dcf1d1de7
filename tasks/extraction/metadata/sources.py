"""What one kind of source on a page says: the record each reader returns (`choose.py` weighs
them)."""

from __future__ import annotations

from dataclasses import dataclass, field

from newsflow.tasks.extraction.metadata.dates import Stamp


@dataclass
class Found:
    """One source's findings; empty fields mean it said nothing about them."""

    published: Stamp | None = None
    updated: Stamp | None = None
    title: str | None = None
    authors: list[str] = field(default_factory=list)
    origin: str | None = None
    editors: list[str] = field(default_factory=list)
    publisher: str | None = None
