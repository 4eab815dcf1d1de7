"""Settings and the feeds file.

Settings are built once at the entry point (`Settings.from_env`) and passed down; nothing below
the CLI reads the environment.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from schemas.errors import ConfigError

DEFAULT_DB = Path("data/news.duckdb")
DEFAULT_FEEDS = Path("feeds.toml")
DEFAULT_TIMEZONE = "Asia/Shanghai"
USER_AGENT = "newsflow/0.1 (news-ingestion for research; +https://pypi.org/project/newsflow/)"


def _check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown timezone {name!r}") from exc
    return name


class FetchLimits(BaseModel):
    """Limits every HTTP request obeys (DESIGN.md, 'Limits every fetch obeys')."""

    model_config = ConfigDict(frozen=True)

    connect_timeout: float = 10.0
    read_timeout: float = 20.0
    # Wall-clock bound per response, so a server trickling bytes cannot hold a run.
    total_deadline: float = 60.0
    max_bytes: int = 15 * 1024 * 1024
    max_redirects: int = 5
    per_host_concurrency: int = 4
    # Optional politeness gap between two requests to one host, in seconds.
    min_host_interval: float = 0.0
    # Transient failures (timeouts, 5xx, connection errors) are retried this often per request.
    retries: int = 2
    retry_backoff: float = 1.0
    # A Retry-After longer than this is not waited for inside a run; it defers the feed instead.
    max_retry_wait: float = 10.0
    # Total concurrent requests of one run, all hosts together.
    max_connections: int = 32
    user_agent: str = USER_AGENT
    allow_private_networks: bool = False
    # Networks reachable even without allow_private_networks, e.g. ["10.0.0.5/32"] for a
    # self-hosted RSSHub; every other private address stays refused.
    allowed_networks: tuple[str, ...] = ()

    @field_validator("allowed_networks")
    @classmethod
    def _networks(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for network in v:
            ipaddress.ip_network(network, strict=False)  # ValueError names the bad one
        return v


class Settings(BaseModel):
    """Everything a run needs to know, read once at the entry point."""

    model_config = ConfigDict(frozen=True)

    db_path: Path = DEFAULT_DB
    feeds_path: Path = DEFAULT_FEEDS
    timezone: Annotated[str, Field(validate_default=True)] = DEFAULT_TIMEZONE
    fetch: FetchLimits = FetchLimits()
    # Process pool for extraction: one worker per core.
    extract_workers: int = Field(default_factory=lambda: os.cpu_count() or 1)
    # Wall-clock bound per document in a worker; past it the worker is killed and replaced.
    extract_deadline: float = 30.0
    # The same for parsing one feed (up to max_bytes of XML) with feedparser.
    parse_deadline: float = 60.0
    # Address-space limit of each worker (Linux); a document needing more fails as too_large.
    # A worker takes ~70 MiB idle; a 2 MB page ~150 MiB; feedparser on a 10 MB feed ~230 MiB.
    worker_memory_limit: int = 320 * 1024 * 1024
    # Wall-clock bound on one feed's pages (downloads and extraction). What is not done by then
    # is left for the next run (one feed_timeout row), so no feed can hold a run for long.
    feed_deadline: float = 600.0
    max_items_per_feed: int = 2000
    # How long a run waits for another process holding the database before giving up.
    lock_timeout: float = 900.0
    # Poll interval for feeds that give no hint of their own, in seconds.
    default_poll_interval: float = 1800.0
    show_progress: bool = True

    _tz = field_validator("timezone")(_check_timezone)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from NEWSFLOW_* variables; explicit overrides (CLI flags) win."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        if env.get("NEWSFLOW_DB"):
            values["db_path"] = Path(env["NEWSFLOW_DB"])
        if env.get("NEWSFLOW_FEEDS"):
            values["feeds_path"] = Path(env["NEWSFLOW_FEEDS"])
        if env.get("NEWSFLOW_TIMEZONE"):
            values["timezone"] = env["NEWSFLOW_TIMEZONE"]
        fetch: dict[str, object] = {}
        if env.get("NEWSFLOW_ALLOW_PRIVATE_NETWORKS", "").lower() in {"1", "true", "yes"}:
            fetch["allow_private_networks"] = True
        fetch_overrides = overrides.pop("fetch", None)
        if isinstance(fetch_overrides, Mapping):
            fetch.update(fetch_overrides)
        if fetch:
            values["fetch"] = FetchLimits(**fetch)  # type: ignore[arg-type]
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(**values)  # type: ignore[arg-type]
        except ValidationError as exc:
            raise ConfigError(_first_error(exc)) from exc


class HostPolicy(BaseModel):
    """Per-host politeness from the feeds file: `[hosts."example.com"]`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    concurrency: int | None = Field(default=None, ge=1, le=64)
    min_interval: float | None = Field(default=None, ge=0)


class FeedDefaults(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: Annotated[str, Field(validate_default=True)] = DEFAULT_TIMEZONE
    language: str | None = None
    categories: list[str] = []
    concurrency: int | None = Field(default=None, ge=1, le=64)
    min_interval: float | None = Field(default=None, ge=0)

    _tz = field_validator("timezone")(_check_timezone)


class FeedConfig(BaseModel):
    """One `[[feeds]]` entry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    name: str | None = None
    source: str | None = None
    language: str | None = None
    categories: list[str] = []
    timezone: str | None = None
    enabled: bool = True
    # Free text: where this entry came from (route, documentation page); not used by the code.
    provenance: str | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        v = v.strip()
        if not v.lower().startswith(("http://", "https://")):
            raise ValueError(f"feed url must be http(s): {v!r}")
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        return None if v is None else _check_timezone(v)

    @field_validator("categories", mode="before")
    @classmethod
    def _one_or_many(cls, v: object) -> object:
        return [v] if isinstance(v, str) else v


class FeedsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    defaults: FeedDefaults = FeedDefaults()
    hosts: dict[str, HostPolicy] = {}
    feeds: list[FeedConfig] = []

    def fetch_limits(self, limits: FetchLimits) -> FetchLimits:
        """The run's limits with this file's default per-host politeness applied."""
        update: dict[str, object] = {}
        if self.defaults.concurrency is not None:
            update["per_host_concurrency"] = self.defaults.concurrency
        if self.defaults.min_interval is not None:
            update["min_host_interval"] = self.defaults.min_interval
        return limits.model_copy(update=update) if update else limits

    def timezone_for(self, feed: FeedConfig) -> str:
        return feed.timezone or self.defaults.timezone

    def language_for(self, feed: FeedConfig) -> str | None:
        return feed.language or self.defaults.language

    def categories_for(self, feed: FeedConfig) -> list[str]:
        return list(dict.fromkeys([*self.defaults.categories, *feed.categories]))


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}" if where else err["msg"]


def load_feeds_file(path: Path) -> FeedsFile:
    """Read and validate a feeds file; every problem is a one-line ConfigError."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8-sig"))
    except FileNotFoundError as exc:
        raise ConfigError(f"feeds file not found: {path}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read feeds file {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"feeds file {path} is not valid TOML: {exc}") from exc
    try:
        feeds = FeedsFile(**raw)
    except ValidationError as exc:
        raise ConfigError(f"feeds file {path}: {_first_error(exc)}") from exc
    seen: set[str] = set()
    for feed in feeds.feeds:
        if feed.url in seen:
            raise ConfigError(f"feeds file {path}: feed listed twice: {feed.url}")
        seen.add(feed.url)
    return feeds
