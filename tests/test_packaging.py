"""The wheel carries every package: pyproject's explicit list (package-dir maps the user's
folders into the newsflow namespace, so setuptools cannot find them by itself) names each
folder with an __init__.py."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
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


def _imported_modules() -> dict[str, set[str]]:
    """Top-level modules imported anywhere in the installed packages, with one file each."""
    found: dict[str, set[str]] = {}
    for top in ("flows", "tasks", "schemas", "newsflow"):
        for path in (ROOT / top).rglob("*.py"):
            if "sample_site" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_imported_distribution_is_a_runtime_dependency() -> None:
    """A module the code imports comes from a distribution it depends on (or the scale extra,
    which the CLI checks before use): a test-only dependency would pass here and break a wheel
    install, as numpy did when datasketch became a test dependency."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    project = config["project"]
    declared = [*project["dependencies"], *project["optional-dependencies"]["scale"]]
    providers = importlib.metadata.packages_distributions()
    missing = {}
    for module, files in _imported_modules().items():
        if module in sys.stdlib_module_names or module in {"newsflow", "__future__"}:
            continue
        dists = {d.lower().replace("_", "-") for d in providers.get(module, [module])}
        if not dists & _with_requirements(declared):
            missing[module] = sorted(files)[:2]
    assert missing == {}


def _name_and_extras(spec: str) -> tuple[str, set[str]]:
    match = re.match(r"\s*([A-Za-z0-9_.-]+)\s*(?:\[([^\]]*)\])?", spec)
    assert match, spec
    extras = {e.strip() for e in (match.group(2) or "").split(",") if e.strip()}
    return match.group(1).lower().replace("_", "-"), extras


def _with_requirements(declared: list[str]) -> set[str]:
    """The declared distributions and everything they require (with the extras asked for),
    transitively."""
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = list(declared)
    while todo:
        name, extras = _name_and_extras(todo.pop())
        if (name, frozenset(extras)) in seen:
            continue
        seen.add((name, frozenset(extras)))
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for spec in requires:
            extra = re.search(r"extra\s*==\s*[\"']([^\"']+)", spec)
            if extra is None or extra.group(1) in extras:
                todo.append(spec)
    return {name for name, _ in seen}
