"""What the bundled demo site holds: its feeds (and the feeds file that lists them), the
manifest of its article pages with what the pipeline should make of each, and where the packaged
copy lives. `newsflow.demo.site` serves it."""

from __future__ import annotations

import importlib.resources
import json
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Literal, TypedDict

DEMO_PACKAGE = "newsflow.demo"
DEMO_DIR = "sample_site"
PLACEHOLDER = b"{base}"
# The one feed item whose page does not exist, to show the error path (an http_404 row).
MISSING_PAGE = "/articles/en/exchange-inspection-regime.html"


@dataclass(frozen=True)
class DemoFeed:
    """One feed of the demo site, as it appears in the generated feeds file."""

    path: str
    name: str
    source: str
    language: str
    categories: tuple[str, ...] = ()


DEMO_FEEDS: tuple[DemoFeed, ...] = (
    DemoFeed("/feeds/policy-en.xml", "meridian-top-news", "Meridian Wire", "en", ("wire",)),
    DemoFeed("/feeds/markets.atom", "ledger-markets", "The Ledger Desk", "en", ("crypto",)),
    DemoFeed("/feeds/chain-cn.xml", "chainnews-policy", "链闻财经", "zh", ("区块链",)),
    DemoFeed(
        "/feeds/ministry.rdf", "mde-notices", "中华人民共和国数字经济发展部", "zh", ("政府公告",)
    ),
    DemoFeed("/feeds/flash-cn.xml", "cls-telegraph", "示例财联社", "zh", ("快讯",)),
    DemoFeed("/feeds/portal-cn.xml", "dfcx-roll", "东方财讯网", "zh"),
)


class ManifestPage(TypedDict):
    """One article page of the demo site, as listed in `MANIFEST.json`."""

    path: str  # site-relative, no leading slash: "articles/zh/2024-pilot-zones.html"
    language: Literal["zh", "en"]
    title: str  # without the outlet's suffix
    published: str  # UTC, ISO 8601 with "Z"
    source: str  # outlet name
    topic: Literal["blockchain-policy", "other"]
    syndicates: str | None  # path of the original when this page republishes it
    author: str
    encoding: Literal["utf-8", "gbk"]  # bytes on disk
    feeds: list[str]  # site-relative paths of the feeds that link to the page


def demo_feeds_toml(base_url: str) -> str:
    """The feeds file (README, "The feeds file") for the demo site served at `base_url`."""
    base = base_url.rstrip("/")
    lines = [
        "# Feeds of the bundled demo site, served on loopback by `newsflow demo`.",
        "[defaults]",
        'timezone = "Asia/Shanghai"',
    ]
    for feed in DEMO_FEEDS:
        lines += [
            "",
            "[[feeds]]",
            f"url = {_toml_str(base + feed.path)}",
            f"name = {_toml_str(feed.name)}",
            f"source = {_toml_str(feed.source)}",
            f"language = {_toml_str(feed.language)}",
            f"categories = [{', '.join(_toml_str(c) for c in feed.categories)}]",
            'provenance = "bundled demo site (newsflow/demo/sample_site)"',
        ]
    return "\n".join(lines) + "\n"


def load_manifest(root: Path | None = None) -> list[ManifestPage]:
    """The demo site's `MANIFEST.json` (of the packaged site unless `root` is given)."""
    if root is not None:
        text = (root / "MANIFEST.json").read_text(encoding="utf-8")
    else:
        text = packaged_site().joinpath("MANIFEST.json").read_text(encoding="utf-8")
    pages: list[ManifestPage] = json.loads(text)
    return pages


def _toml_str(value: str) -> str:
    # A JSON string is a valid TOML basic string.
    return json.dumps(value, ensure_ascii=False)


def packaged_site() -> Traversable:
    return importlib.resources.files(DEMO_PACKAGE).joinpath(DEMO_DIR)
