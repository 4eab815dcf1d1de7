"""Error kinds and stages: one list (schemas/kinds.py) that every write site keeps to, the README
documents, and old databases are migrated to."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import duckdb

from newsflow.schemas.ddl import MIGRATIONS
from newsflow.schemas.kinds import Kind, Stage, http_kind
from newsflow.tasks.storage.store import Database, migrate

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [
    p for folder in ("tasks", "flows", "newsflow", "schemas") for p in (ROOT / folder).rglob("*.py")
]
_WORD = re.compile(r"^[a-z][a-z0-9_]*$")
# Helpers that make error rows or ItemErrors from a stage and a kind given as arguments.
_HELPER = re.compile(r"(^_?\w*_(error|row)$)|^(failed_batch|unexpected)$")
_KINDS_SECTION = re.compile(r"^#+ [^\n]*error kinds[^\n]*\n(.*?)(?=^#)", re.M | re.S | re.I)


def _name(node: ast.expr) -> str:
    return node.id if isinstance(node, ast.Name) else getattr(node, "attr", "")


def written_words() -> dict[str, list[tuple[str, str]]]:
    """Literal kinds and stages at the write sites, as {"kind"|"stage"|"either": [(word,
    where)]}: ItemError("x", …), kind="x", stage="x", and word-shaped literals given to the
    helpers that build error rows."""
    found: dict[str, list[tuple[str, str]]] = {"kind": [], "stage": [], "either": []}
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            name = _name(node.func)
            words = [
                (arg, a.value)
                for arg, a in [(None, a) for a in node.args]
                + [(k.arg, k.value) for k in node.keywords]
                if isinstance(a, ast.Constant) and isinstance(a.value, str) and _WORD.match(a.value)
            ]
            for i, (arg, word) in enumerate(words):
                if arg in {"kind", "stage"}:
                    found[arg].append((word, where))
                elif arg is None and name in {"ItemError", "_TooSlow"} and i == 0:
                    found["kind"].append((word, where))
                elif arg is None and _HELPER.match(name):
                    found["either"].append((word, where))
    return found


def test_every_kind_and_stage_written_is_in_the_lists() -> None:
    found = written_words()
    assert len(found["kind"]) > 10 and found["stage"] and found["either"]
    assert [(w, at) for w, at in found["kind"] if w not in set(Kind)] == []
    assert [(w, at) for w, at in found["stage"] if w not in set(Stage)] == []
    assert [(w, at) for w, at in found["either"] if w not in {*Kind, *Stage}] == []


def test_members_are_the_strings_they_stand_for() -> None:
    assert Kind.NO_TITLE == "no_title" and f"{Kind.BAD_DATE}" == "bad_date"
    assert http_kind(404) == "http_404"
    assert len(set(Kind)) == len(Kind) and len(set(Stage)) == len(Stage)


def test_the_readme_lists_every_kind_and_stage() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = _KINDS_SECTION.search(readme)
    assert section is not None, "README: no section on error kinds"
    listed = set(re.findall(r"`([a-z_0-9<>]+)`", section.group(1)))
    assert {*Kind, *Stage} <= listed


def test_missing_title_rows_become_no_title(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as con:
        migrate(con, [m for m in MIGRATIONS if m[0] < 7])
        con.execute(
            "INSERT INTO ingest_errors (run_id, occurred_at, stage, url, kind, message) VALUES "
            "('r', now(), 'post', 'a.md', 'missing_title', 'no title'), "
            "('r', now(), 'normalize', 'b', 'no_title', 'no title'), "
            "('r', now(), 'fetch', 'c', 'timeout', 'slow')"
        )
        con.execute("INSERT INTO feeds (url, last_error_kind) VALUES ('f', 'missing_title')")
    with Database(path).session() as con:
        kinds = con.execute("SELECT kind FROM ingest_errors ORDER BY url").fetchall()
        feed = con.execute("SELECT last_error_kind FROM feeds").fetchall()
    assert (kinds, feed) == ([("no_title",), ("no_title",), ("timeout",)], [("no_title",)])
