"""Settings and the feeds file.

Settings are built once at the entry point (`Settings.from_env`) and passed down; nothing below
the CLI reads the environment.

Over 450 lines for a reason: every setting, its default and its check are in one place, as
the README's Limits table lists them.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import tomllib
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Annotated, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from newsflow.schemas.errors import ConfigError

DEFAULT_DB = Path("data/news.duckdb")
DEFAULT_FEEDS = Path("feeds.toml")
DEFAULT_TIMEZONE = "Asia/Shanghai"
# Local inputs of a backfill, capped before they are parsed: a Markdown post (real ones are a
# few KiB to a few hundred; markdown-it is linear, but the worst MiB, `*a **a ` repeated,
# takes it ~5 s and ~300 MiB), a site configuration, and the page URLs one sitemap walk
# gathers (an index may list 50,000 sitemaps of 50,000 URLs each).
MAX_POST_BYTES = 1024 * 1024
MAX_SITE_CONFIG_BYTES = 1024 * 1024
# A `backfill --urls` file: some 150,000 URLs.
MAX_URL_FILE_BYTES = 16 * 1024 * 1024
MAX_SITEMAP_ENTRIES = 200_000
USER_AGENT = "newsflow/0.1 (news-ingestion for research; +https://pypi.org/project/newsflow/)"


def _check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown timezone {name!r}") from exc
    return name


class FetchLimits(BaseModel):
    """Limits every HTTP request obeys (docs/ARCHITECTURE.md, "limits")."""

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
    # A worker's address space is ~150 MiB idle (68 resident); parsing a 5 MB feed of 50,000
    # items peaks at ~270 MiB.
    worker_memory_limit: int = 320 * 1024 * 1024
    # Wall-clock bound on one feed's pages (downloads and extraction). What is not done by then
    # is left for the next run (one feed_timeout row), so no feed can hold a run for long.
    feed_deadline: float = 600.0
    max_items_per_feed: int = 2000
    max_post_bytes: int = Field(default=MAX_POST_BYTES, ge=1)
    max_site_config_bytes: int = Field(default=MAX_SITE_CONFIG_BYTES, ge=1)
    max_url_file_bytes: int = Field(default=MAX_URL_FILE_BYTES, ge=1)
    max_sitemap_entries: int = Field(default=MAX_SITEMAP_ENTRIES, ge=1)
    # How long a run waits for another process holding the database before giving up.
    lock_timeout: float = 900.0
    # Poll interval for feeds that give no hint of their own, in seconds.
    default_poll_interval: float = 1800.0
    show_progress: bool = True
    # Coverage tagging data files; None means the ones shipped in schemas/.
    lexicon_path: Path | None = None
    gazetteer_path: Path | None = None

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
        if env.get("NEWSFLOW_LEXICON"):
            values["lexicon_path"] = Path(env["NEWSFLOW_LEXICON"])
        if env.get("NEWSFLOW_GAZETTEER"):
            values["gazetteer_path"] = Path(env["NEWSFLOW_GAZETTEER"])
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
            raise ConfigError(_first_error(exc, _FLAGS)) from exc


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
    # Feeds, and declared sources (schemas/sources.py: a SourceConfig is a FeedConfig).
    feeds: list[FeedConfig] = []

    @field_validator("feeds", mode="before")
    @classmethod
    def _sources(cls, v: object) -> object:
        from newsflow.schemas.sources import resolve_entry  # it imports this module

        return [resolve_entry(entry) for entry in v] if isinstance(v, list) else v

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


# The command-line flag of each field a flag sets: an error names what the user typed.
_FLAGS = {
    "db_path": "--db",
    "feeds_path": "--feeds",
    "lexicon_path": "--lexicon",
    "gazetteer_path": "--gazetteer",
    "timezone": "--timezone",
    "since": "--since",
    "until": "--until",
    "format": "--format",
    "out": "--out",
    "feeds": "--feeds",
    "from_dir": "--from-dir",
    "urls": "--urls",
    "sitemaps": "--sitemap",
    "base_url": "--base-url",
    "runner": "--runner",
    "dask_address": "--dask-address",
    "shard": "--shard",
    "stage_dir": "--stage-dir",
}


def _first_error(exc: ValidationError, flags: Mapping[str, str] | None = None) -> str:
    """The first problem in one line, located by its field's path, or by its flag when
    `flags` names one for the field."""
    err = exc.errors()[0]
    loc = err["loc"]
    flag = flags.get(str(loc[0])) if flags and loc else None
    where = flag or ".".join(str(p) for p in loc)
    # pydantic prefixes the message of every ValueError a validator raises
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"{where}: {msg}" if where else msg


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
    urls: set[str] = set()
    names: set[str] = set()
    for feed in feeds.feeds:
        if feed.url in urls:
            raise ConfigError(f"feeds file {path}: feed listed twice: {feed.url}")
        if feed.name is not None and feed.name in names:
            # `newsflow feeds --enable NAME` and the listing tell feeds apart by name.
            raise ConfigError(f"feeds file {path}: two feeds named {feed.name!r}")
        urls.add(feed.url)
        if feed.name is not None:
            names.add(feed.name)
    return feeds


class _Days(BaseModel):
    """`--since`/`--until`: calendar days, both included (DateWindow.of_days makes instants)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    since: date | None = None
    until: date | None = None

    @field_validator("since", "until", mode="before")
    @classmethod
    def _iso_day(cls, v: object) -> object:
        if not isinstance(v, str):
            return v
        try:
            return date.fromisoformat(v.strip())
        except ValueError:
            raise ValueError(f"not a day (YYYY-MM-DD): {v!r}") from None

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.since and self.until and self.since > self.until:
            raise ValueError(f"--since {self.since} is after --until {self.until}")
        return self

    @classmethod
    def build(cls, **values: object) -> Self:
        """Validated request; every problem is a one-line ConfigError."""
        try:
            return cls(**{k: v for k, v in values.items() if v is not None})  # type: ignore[arg-type]
        except ValidationError as exc:
            raise ConfigError(_first_error(exc, _FLAGS)) from exc


EXPORT_FORMATS = ("markdown", "parquet", "jsonl")


class ExportRequest(_Days):
    """`newsflow export`: which articles, in which format, where."""

    format: Literal["markdown", "parquet", "jsonl"]
    out: Path


class BackfillRequest(_Days):
    """What a backfill reads (README, "Backfill and export"): every source optional, at least
    one given. `reextract` alone re-extracts every stored web article of the window."""

    feeds: Path | None = None
    from_dir: Path | None = None
    urls: Path | None = None
    sitemaps: tuple[str, ...] = ()
    reextract: bool = False
    # Base of site-relative permalinks and images in posts, when no _config.yml/config.toml
    # beside the archive names it.
    base_url: str | None = None
    # Archive pages per feed and sitemap documents per sitemap, at most.
    max_pages: int = Field(default=100, ge=1, le=10_000)
    # Items per load transaction: a killed backfill loses at most one batch of work.
    batch_size: int = Field(default=200, ge=1, le=10_000)

    @field_validator("sitemaps", mode="before")
    @classmethod
    def _one_or_many(cls, v: object) -> object:
        return (v,) if isinstance(v, str) else v

    @field_validator("sitemaps")
    @classmethod
    def _http_urls(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for url in v:
            if not url.lower().startswith(("http://", "https://")):
                raise ValueError(f"not an http(s) URL: {url!r}")
        return v

    @field_validator("base_url")
    @classmethod
    def _http_base(cls, v: str | None) -> str | None:
        if v is not None and not v.lower().startswith(("http://", "https://")):
            raise ValueError(f"not an http(s) URL: {v!r}")
        return v

    @field_validator("from_dir")
    @classmethod
    def _directory(cls, v: Path | None) -> Path | None:
        if v is not None and not v.is_dir():
            raise ValueError(f"not a directory: {v}")
        return v

    @field_validator("urls")
    @classmethod
    def _file(cls, v: Path | None) -> Path | None:
        if v is not None and not v.is_file():
            raise ValueError(f"no such file: {v}")
        return v

    @model_validator(mode="after")
    def _sources(self) -> BackfillRequest:
        if not (self.feeds or self.from_dir or self.urls or self.sitemaps or self.reextract):
            raise ValueError(
                "nothing to backfill: give --feeds, --from-dir, --urls, --sitemap or --reextract"
            )
        return self

    @property
    def web_sources(self) -> bool:
        return bool(self.feeds or self.urls or self.sitemaps)


class Shard(BaseModel):
    """`--shard I/N`: part I of N (0 ≤ I < N) of the feeds file.

    A feed belongs to the part its URL's blake2b hash falls in, so N workers given the same
    feeds file split it with no overlap and no coordination; Python's own `hash` is salted
    per process and would not do.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    index: int
    count: int

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, v: object) -> object:
        if not isinstance(v, str):
            return v
        index, sep, count = v.strip().partition("/")
        if not (sep and index.strip().isdigit() and count.strip().isdigit()):
            raise ValueError(f"not I/N, e.g. 0/3: {v!r}")
        return {"index": int(index), "count": int(count)}

    @model_validator(mode="after")
    def _in_range(self) -> Self:
        if not 0 <= self.index < self.count:
            raise ValueError(f"no shard {self}: I/N needs 0 <= I < N")
        return self

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, url: str) -> bool:
        digest = hashlib.blake2b(url.encode("utf-8"), digest_size=8).digest()
        return int.from_bytes(digest, "big") % self.count == self.index

    def select(self, feeds: list[FeedConfig]) -> list[FeedConfig]:
        return [f for f in feeds if self.owns(f.url)]


class ScaleOptions(BaseModel):
    """How one `newsflow run` spreads out (docs/SCALING.md): the task runner, a shard of
    the feeds, and staged Parquet output instead of the database."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    runner: Literal["local", "dask"] = "local"
    # A running dask.distributed scheduler (tcp://HOST:PORT); None starts a LocalCluster.
    dask_address: str | None = None
    shard: Shard | None = None
    # Folder or fsspec URL that receives the run's batches; None loads them into the database.
    stage_dir: str | None = None

    @model_validator(mode="after")
    def _address_needs_dask(self) -> Self:
        if self.dask_address and self.runner != "dask":
            raise ValueError("--dask-address needs --runner dask")
        return self

    @classmethod
    def build(cls, **values: object) -> ScaleOptions:
        """Validated options (an address alone means the dask runner); problems are one-line
        ConfigErrors."""
        given = {k: v for k, v in values.items() if v is not None}
        if given.get("dask_address") and "runner" not in given:
            given["runner"] = "dask"
        try:
            return cls(**given)  # type: ignore[arg-type]
        except ValidationError as exc:
            raise ConfigError(_first_error(exc, _FLAGS)) from exc

    def describe(self) -> dict[str, str]:
        """The options that differ from a plain run, for the `runs` row and the summary."""
        return {k: str(v) for k, v in self.model_dump().items() if v not in (None, "local")}


class SearchRequest(_Days):
    """`newsflow search`: the query, the days and filters, how many rows to show."""

    query: str
    source: str | None = None
    topic: str | None = None
    limit: int = Field(default=20, ge=1, le=10_000)


class TrendRequest(_Days):
    """`newsflow trend`: one series per term, counted per day, week or month."""

    terms: tuple[str, ...] = Field(min_length=1)
    by: Literal["day", "week", "month"] = "week"
    source: str | None = None
