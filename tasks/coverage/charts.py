"""Inline SVG charts for the coverage report: plain strings, no JavaScript, no network.

Text is measured by estimate (a CJK character about one em, Latin about 0.55 em) since there
is no browser here; labels longer than their column are cut with … and kept whole in <title>.
Every bar is a <rect class="bar"> carrying its value in data-value, which the report test
reads back from the rendered page.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from html import escape

FONT_SIZE = 13
ROW_HEIGHT = 24
BAR_HEIGHT = 16
PALETTE = (
    "#2563eb",  # blue
    "#dc2626",  # red
    "#059669",  # green
    "#d97706",  # amber
    "#7c3aed",  # violet
    "#0891b2",  # cyan
    "#db2777",  # pink
    "#4b5563",  # grey
)


def text_width(text: str, size: float = FONT_SIZE) -> float:
    """Estimated rendered width in px."""
    return sum(size if unicodedata.east_asian_width(c) in "WF" else size * 0.58 for c in text)


def fit(text: str, width: float, size: float = FONT_SIZE) -> str:
    """The text, cut with … to fit the width."""
    if text_width(text, size) <= width:
        return text
    while text and text_width(text + "…", size) > width:
        text = text[:-1]
    return text + "…"


def number(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"


def hbar_chart(
    rows: Sequence[tuple[str, float, str]],
    *,
    color: str = PALETTE[0],
    width: int = 760,
    label_width: int = 250,
    aria_label: str = "",
) -> str:
    """Horizontal bars: (label, value, note shown after the value) per row, largest first."""
    if not rows:
        return '<p class="empty">No data yet.</p>'
    value_width = 150
    bar_space = width - label_width - value_width - 16
    top = max(v for _, v, _ in rows) or 1
    height = ROW_HEIGHT * len(rows) + 8
    parts = [_svg_open(width, height, aria_label)]
    for i, (label, value, note) in enumerate(rows):
        y = 4 + i * ROW_HEIGHT
        bar = max(1.0, bar_space * value / top) if value > 0 else 0.0
        mid = y + ROW_HEIGHT / 2
        shown = fit(label, label_width - 8)
        parts.append(
            f'<text x="{label_width - 8}" y="{mid:.1f}" text-anchor="end" '
            f'dominant-baseline="middle" class="label"><title>{escape(label)}</title>'
            f"{escape(shown)}</text>"
        )
        parts.append(
            f'<rect class="bar" data-value="{value:g}" x="{label_width}" '
            f'y="{mid - BAR_HEIGHT / 2:.1f}" width="{bar:.1f}" height="{BAR_HEIGHT}" '
            f'fill="{color}" rx="2"><title>{escape(label)}: {number(value)}</title></rect>'
        )
        value_text = number(value) + (f" · {note}" if note else "")
        parts.append(
            f'<text x="{label_width + bar + 6:.1f}" y="{mid:.1f}" dominant-baseline="middle" '
            f'class="value">{escape(value_text)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def column_chart(
    points: Sequence[tuple[str, float]],
    *,
    color: str = PALETTE[0],
    width: int = 360,
    height: int = 130,
    aria_label: str = "",
) -> str:
    """Vertical bars over time, labelled at the first and last point and with the maximum."""
    if not points:
        return '<p class="empty">No data yet.</p>'
    left, bottom, top_pad = 34, 22, 8
    plot_w, plot_h = width - left - 6, height - bottom - top_pad
    top = max(v for _, v in points) or 1
    step = plot_w / len(points)
    bar_w = max(1.0, step * 0.8)
    parts = [_svg_open(width, height, aria_label)]
    base = top_pad + plot_h
    parts.append(
        f'<line x1="{left}" y1="{base}" x2="{width - 6}" y2="{base}" class="axis"/>'
        f'<text x="{left - 4}" y="{top_pad + 4}" text-anchor="end" class="tick">'
        f"{number(top)}</text>"
        f'<text x="{left - 4}" y="{base}" text-anchor="end" class="tick">0</text>'
    )
    for i, (label, value) in enumerate(points):
        h = plot_h * value / top
        x = left + i * step + (step - bar_w) / 2
        parts.append(
            f'<rect class="bar" data-value="{value:g}" x="{x:.1f}" y="{base - h:.1f}" '
            f'width="{bar_w:.1f}" height="{h:.1f}" fill="{color}">'
            f"<title>{escape(label)}: {number(value)}</title></rect>"
        )
    parts.append(
        f'<text x="{left}" y="{height - 6}" class="tick">{escape(points[0][0])}</text>'
        f'<text x="{width - 6}" y="{height - 6}" text-anchor="end" class="tick">'
        f"{escape(points[-1][0])}</text></svg>"
    )
    return "".join(parts)


def share_bar(
    segments: Sequence[tuple[str, float, str]], *, width: int = 760, aria_label: str = ""
) -> str:
    """One 100 % bar split into (label, value, color) parts, with a legend below."""
    total = sum(v for _, v, _ in segments)
    if total <= 0:
        return '<p class="empty">No data yet.</p>'
    height = 64
    out = [_svg_open(width, height, aria_label)]
    x = 0.0
    for label, value, color in segments:
        w = width * value / total
        out.append(
            f'<rect class="bar" data-value="{value:g}" x="{x:.1f}" y="4" width="{w:.1f}" '
            f'height="26" fill="{color}"><title>{escape(label)}: {number(value)}</title></rect>'
        )
        x += w
    x = 0.0
    for label, value, color in segments:
        text = f"{label}: {number(value)} ({value / total:.0%})"
        out.append(
            f'<rect x="{x:.1f}" y="42" width="12" height="12" fill="{color}"/>'
            f'<text x="{x + 18:.1f}" y="48" dominant-baseline="middle" class="label">'
            f"{escape(text)}</text>"
        )
        x += text_width(text) + 48
    out.append("</svg>")
    return "".join(out)


def _svg_open(width: int, height: int, aria_label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(aria_label)}">'
    )
