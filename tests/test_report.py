"""The coverage report: one offline HTML file; in headless Chromium its charts draw and its
Chinese text renders as Chinese glyphs, not boxes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from newsflow.tasks.coverage.report import REPORT_FILE, write_report
from newsflow.tasks.storage.store import Database
from tests.labelled import load_labelled, read_labelled, shift_to_now

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
# Appended to a copy of the report (the report itself has no script): measures what Chromium
# laid out, and draws four Chinese characters in the page's own font stack on a canvas. A
# missing CJK font draws them all as the same box (or nothing), so four distinct pictures
# means four real glyphs.
PROBE = """<script>
(() => {
  const bars = [...document.querySelectorAll("svg rect.bar")];
  const drawn = bars.filter(r => {
    const b = r.getBoundingClientRect();
    return b.width > 0 && b.height > 0 && Number(r.dataset.value) > 0;
  });
  const font = getComputedStyle(document.body).fontFamily;
  const glyph = ch => {
    const c = document.createElement("canvas");
    c.width = 48; c.height = 48;
    const g = c.getContext("2d");
    g.font = "40px " + font;
    g.fillText(ch, 2, 42);
    return Array.from(g.getImageData(0, 0, 48, 48).data).join(",");
  };
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify({
    bars: bars.length,
    drawn: drawn.length,
    svgs: document.querySelectorAll("svg.chart").length,
    glyphs: new Set(["区", "块", "链", "省"].map(glyph)).size,
    heading: document.querySelector("h1").innerText,
  });
  document.body.append(out);
})();
</script>"""


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report")
    db = Database(root / "news.duckdb")
    items = read_labelled()
    load_labelled(db, items, shift_to_now(items))
    return write_report(db, root / "out")


def test_report_is_one_self_contained_file(report: Path) -> None:
    html = report.read_text(encoding="utf-8")
    assert report.name == REPORT_FILE and list(report.parent.iterdir()) == [report]
    # Nothing to fetch: no scripts, stylesheets, images or fonts from anywhere.
    assert not re.search(r"<script|<link|<img|@import|url\(|src=", html, re.IGNORECASE)
    assert not re.search(r'href="(?!#)', html)
    assert '<meta charset="utf-8">' in html and "Noto Sans CJK SC" in html
    for text in (
        "区块链",
        "苏州市（江苏省）",
        "合肥市区块链产业发展三年行动方案",
        "香港金融管理局",
    ):
        assert text in html


def test_empty_database_gives_a_page_too(tmp_path: Path) -> None:
    path = write_report(Database(tmp_path / "empty.duckdb"), tmp_path / "out")
    assert "No data yet." in path.read_text(encoding="utf-8")


def run_chromium(*args: str, user_dir: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={user_dir}",
    ]
    return subprocess.run(
        [CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120, check=True
    )


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs headless Chromium: apt-get install chromium")
def test_charts_draw_and_chinese_renders_in_chromium(report: Path, tmp_path: Path) -> None:
    probed = tmp_path / "probed.html"
    html = report.read_text(encoding="utf-8")
    probed.write_text(html.replace("</body>", PROBE + "\n</body>"), encoding="utf-8")

    dom = run_chromium("--dump-dom", probed.as_uri(), user_dir=tmp_path / "profile-dom").stdout
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.DOTALL)
    assert found, dom[-2000:]
    probe = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert probe["svgs"] >= 8
    assert probe["bars"] >= 50 and probe["drawn"] >= 40
    assert probe["glyphs"] == 4, "Chinese renders as boxes: apt-get install fonts-noto-cjk"
    assert probe["heading"].startswith("区块链政策报道分析")

    shot = tmp_path / "report.png"
    run_chromium(
        "--hide-scrollbars", "--window-size=1280,2400", f"--screenshot={shot}",
        report.as_uri(), user_dir=tmp_path / "profile-shot",
    )  # fmt: skip
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
