"""newsflow's own exceptions. The CLI turns each into a one-line `error: …` message."""

from __future__ import annotations


class NewsflowError(Exception):
    """Base class; `str(exc)` is a message fit for one line."""


class ConfigError(NewsflowError):
    """Bad arguments, an unreadable or invalid feeds file, bad settings."""


class DatabaseError(NewsflowError):
    """The database cannot be opened, is locked past the timeout, or is damaged."""


class ItemError(NewsflowError):
    """One item (feed, page, post) failed; `kind` is the stable word stored in ingest_errors."""

    def __init__(
        self,
        kind: str,
        message: str,
        url: str | None = None,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.url = url
        self.status = status
        # Seconds the server asked us to wait (429/503 Retry-After), when it said so.
        self.retry_after = retry_after

    def __reduce__(self) -> tuple[object, ...]:
        # Crosses process boundaries (extraction workers, Dask): keep the keyword fields.
        return (
            type(self),
            (self.kind, str(self), self.url),
            {"status": self.status, "retry_after": self.retry_after},
        )


class ServerError(NewsflowError):
    """The local Prefect server that `newsflow serve` needs could not be started."""
