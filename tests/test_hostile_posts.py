"""Hostile local inputs of `backfill --from-dir`, read within bounds (tasks/sources/bounded.py):
links out of the folder, devices, FIFOs, files over the cap, YAML alias bombs, pathological
Markdown. Before, a link to /dev/zero was read without limit, a FIFO hung the backfill, a
`_config.yml` alias bomb grew to 2.7 GB and 14 MB of `{{` took 124 s."""

from __future__ import annotations

import os
import time
import tracemalloc
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from newsflow.schemas.config import MAX_POST_BYTES
from newsflow.schemas.errors import ConfigError
from newsflow.tasks.sources.frontmatter import (
    find_posts,
    parse_front_matter,
    read_posts,
    read_site,
)
from newsflow.tasks.sources.postbody import post_text, strip_template_tags

SHANGHAI = ZoneInfo("Asia/Shanghai")
POST = "---\ntitle: {title}\ndate: 2024-03-05\n---\nBody of {title}.\n"
# Nine levels of nine aliases: 9**9 values once expanded.
LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)


def folder_with(tmp_path: Path) -> tuple[Path, Path]:
    """An archive folder with one good post, and a secret file beside (outside) it."""
    posts = tmp_path / "posts"
    posts.mkdir()
    (posts / "good.md").write_text(POST.format(title="Good"), encoding="utf-8")
    secret = tmp_path / "secret.md"
    secret.write_text(POST.format(title="SECRET"), encoding="utf-8")
    return posts, secret


def read_folder(posts: Path) -> tuple[list[str], list[tuple[str, str, str]]]:
    batch = read_posts(find_posts(posts), read_site(posts, SHANGHAI))
    errors = [(Path(e.url or "").name, e.kind, e.stage) for e in batch.errors]
    return [a.title for a in batch.articles], sorted(errors)


@pytest.mark.timeout(20)
def test_only_regular_files_inside_the_folder_are_read(tmp_path: Path) -> None:
    posts, secret = folder_with(tmp_path)
    (posts / "zero.md").symlink_to("/dev/zero")
    (posts / "leak.md").symlink_to(secret)
    os.mkfifo(posts / "fifo.md")
    (posts / "sub").mkdir()
    (posts / "sub" / "inside.md").symlink_to(posts / "good.md")  # a link within: read

    # Reading /dev/zero or opening the FIFO would never end: the timeout mark catches that.
    titles, errors = read_folder(posts)

    assert titles == ["Good", "Good"]
    assert errors == [
        ("fifo.md", "not_regular_file", "post"),
        ("leak.md", "outside_folder", "post"),
        ("zero.md", "outside_folder", "post"),
    ]


def test_a_post_over_the_cap_is_refused_before_it_is_read(tmp_path: Path) -> None:
    posts, _ = folder_with(tmp_path)
    big = POST.format(title="Big") + "x" * MAX_POST_BYTES
    (posts / "big.md").write_text(big, encoding="utf-8")
    assert read_folder(posts) == (["Good"], [("big.md", "too_large", "post")])
    site = read_site(posts, SHANGHAI, max_post_bytes=len(big.encode()))
    assert len(read_posts(find_posts(posts), site).articles) == 2


@pytest.mark.timeout(20)
def test_site_configurations_are_bounded(tmp_path: Path) -> None:
    posts, secret = folder_with(tmp_path)
    config = posts / "_config.yml"
    config.write_text(LAUGHS, encoding="utf-8")
    tracemalloc.start()
    with pytest.raises(ConfigError, match="aliases"):
        read_site(posts, SHANGHAI)
    assert tracemalloc.get_traced_memory()[1] < 20 * 1024 * 1024
    tracemalloc.stop()
    config.write_text("url: https://example.org/\n" + "#" * 100, encoding="utf-8")
    with pytest.raises(ConfigError, match="over the cap of 50"):
        read_site(posts, SHANGHAI, max_config_bytes=50)
    config.unlink()
    config.symlink_to(secret)
    with pytest.raises(ConfigError, match="outside"):
        read_site(posts, SHANGHAI)
    config.unlink()
    os.mkfifo(config)
    with pytest.raises(ConfigError, match="not a regular file"):
        read_site(posts, SHANGHAI)


def test_front_matter_alias_bombs_are_refused_while_composed() -> None:
    from newsflow.schemas.errors import ItemError

    started = time.process_time()
    with pytest.raises(ItemError) as exc:
        parse_front_matter("yaml", LAUGHS)
    assert exc.value.kind == "invalid_front_matter"
    assert "aliases" in str(exc.value)
    assert time.process_time() - started < 1  # CPU time; the expanded tree would take minutes
    # A few aliases, as real configurations use them, are fine.
    assert parse_front_matter("yaml", "a: &x [1, 2]\nb: *x\n") == {"a": [1, 2], "b": [1, 2]}


@pytest.mark.timeout(180)
@pytest.mark.parametrize("unit", ["{{", "*a **a ", "{{ x "], ids=["braces", "emphasis", "tags"])
def test_post_text_is_linear_up_to_the_file_cap(unit: str) -> None:
    """A quarter of the cap, then the whole cap, of the worst bodies known: four times the
    input takes about four times as long (a quadratic cleaner would take sixteen), and the
    cap bounds the whole (~5 s for the emphasis case on an idle machine)."""
    seconds = []
    for size in (MAX_POST_BYTES // 4, MAX_POST_BYTES):
        started = time.process_time()  # CPU time: other processes' load does not stretch it
        post_text(unit * (size // len(unit)))
        seconds.append(time.process_time() - started)
    assert seconds[1] < 8 * max(seconds[0], 0.05), seconds
    assert seconds[1] < 90, seconds


def test_template_tags_are_stripped_in_one_pass() -> None:
    assert strip_template_tags("a {{< x >}} b {% y %} c \\{{ d }}") == "a  b  c \\{{ d }}"
    assert strip_template_tags("{{ open " + "x" * 600 + " }} tail") == (
        "{{ open " + "x" * 600 + " }} tail"
    )
    started = time.process_time()
    # 14 MB: the regex it replaces took 14 s per MiB of these
    assert strip_template_tags("{{" * 7_000_000) == "{{" * 7_000_000
    assert time.process_time() - started < 10  # CPU time; the old regex: ~190 s
