"""Charts as SVG text rendered on the server: no JavaScript library, nothing to vendor.

Each chart is drawn from the same rows the page prints as a table under it (the numbers are
never only in the picture). Values are floats here because they are only drawn; the tables
show the exact text (money as the market writes it).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from html import escape

from markupsafe import Markup

WIDTH, HEIGHT = 640, 200
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 56, 12, 12, 28
COLORS = ("#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2")

Point = tuple[int, float]  # (unix ms, value)


def clock_text(ms: int) -> str:
    """``HH:MM`` UTC: the charts' time axis."""
    return time.strftime("%H:%M", time.gmtime(ms / 1000))


def _number(value: float) -> str:
    return f"{value:.4g}"


def line_chart(series: dict[str, Sequence[Point]], *, unit: str, title: str) -> Markup:
    """One line per series over a shared time axis; the y axis starts at 0 and says ``unit``."""
    points = [p for pts in series.values() for p in pts]
    if not points:
        return Markup(f'<p class="empty">no data yet for {escape(title)}</p>')
    x0, x1 = min(p[0] for p in points), max(p[0] for p in points)
    top = max(0.0, *(p[1] for p in points)) or 1.0
    inner_w, inner_h = WIDTH - PAD_LEFT - PAD_RIGHT, HEIGHT - PAD_TOP - PAD_BOTTOM

    def xy(point: Point) -> str:
        x = PAD_LEFT + (0.5 if x1 == x0 else (point[0] - x0) / (x1 - x0)) * inner_w
        y = PAD_TOP + inner_h - (point[1] / top) * inner_h
        return f"{x:.1f},{y:.1f}"

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)} ({escape(unit)})">',
        f'<line x1="{PAD_LEFT}" y1="{PAD_TOP + inner_h}" x2="{WIDTH - PAD_RIGHT}" '
        f'y2="{PAD_TOP + inner_h}" class="axis"/>',
        f'<line x1="{PAD_LEFT}" y1="{PAD_TOP}" x2="{PAD_LEFT}" y2="{PAD_TOP + inner_h}" '
        'class="axis"/>',
        f'<text x="{PAD_LEFT - 4}" y="{PAD_TOP + 10}" text-anchor="end">{_number(top)}</text>',
        f'<text x="{PAD_LEFT - 4}" y="{PAD_TOP + inner_h}" text-anchor="end">0</text>',
        f'<text transform="rotate(-90)" x="{-(PAD_TOP + inner_h / 2)}" y="14" '
        f'text-anchor="middle">{escape(unit)}</text>',
        f'<text x="{PAD_LEFT}" y="{HEIGHT - 8}">{clock_text(x0)} UTC</text>',
        f'<text x="{WIDTH - PAD_RIGHT}" y="{HEIGHT - 8}" text-anchor="end">'
        f"{clock_text(x1)} UTC</text>",
    ]
    for i, (name, pts) in enumerate(series.items()):
        color = COLORS[i % len(COLORS)]
        ordered = sorted(pts)
        if len(ordered) == 1:
            cx, cy = xy(ordered[0]).split(",")
            parts.append(f'<circle cx="{cx}" cy="{cy}" r="3" fill="{color}"/>')
        else:
            path = " ".join(xy(p) for p in ordered)
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>'
            )
        parts.append(
            f'<text x="{PAD_LEFT + 8 + 110 * i}" y="{PAD_TOP + 12}" fill="{color}">'
            f"{escape(name)}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def bar_chart(bars: Sequence[tuple[str, float]], *, unit: str, title: str) -> Markup:
    """Horizontal bars, one per label, scaled to the largest; each says its value and ``unit``."""
    if not bars:
        return Markup(f'<p class="empty">no data yet for {escape(title)}</p>')
    top = max(v for _, v in bars) or 1.0
    row = 24
    height = row * len(bars) + 8
    label_w = 150
    inner_w = WIDTH - label_w - 120
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="{escape(title)} ({escape(unit)})">'
    ]
    for i, (label, value) in enumerate(bars):
        y = 4 + i * row
        w = max(1.0, value / top * inner_w)
        color = COLORS[i % len(COLORS)]
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 16}" text-anchor="end">{escape(label)}</text>'
        )
        parts.append(
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" fill="{color}"/>'
        )
        parts.append(
            f'<text x="{label_w + w + 6:.1f}" y="{y + 16}">{_number(value)} {escape(unit)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
