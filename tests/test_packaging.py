"""The wheel carries every package: pyproject's explicit list (package-dir maps the user's
folders into the newsflow namespace, so setuptools cannot find them by itself) names each
folder with an __init__.py."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed_for_the_wheel() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    found = set()
    for top in ("flows", "tasks", "schemas", "deployments", "newsflow"):
        for init in (ROOT / top).rglob("__init__.py"):
            if "sample_site" in init.parts:
                continue
            parts = init.parent.relative_to(ROOT).parts
            found.add(".".join(parts if top == "newsflow" else ("newsflow", *parts)))
    assert found - listed == set()
    assert listed - found == set()
