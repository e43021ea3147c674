"""Line charts as inline SVG, drawn on the server: the dashboard loads no script and no
font from anywhere, so it works offline and under a ``default-src 'none'`` policy.

Pure: numbers in, markup out. Every point is a ``<circle class="point">`` carrying its
values in ``data-x``/``data-y`` (and a ``<title>`` a browser shows on hover), so a test
reads the curve the reader sees instead of re-deriving it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563")
"""Series colours, in order (distinct in print and for the common colour blindnesses)."""


@dataclass(frozen=True)
class Series:
    """One named line: ``points`` are (x, y) pairs in data units, drawn in x order."""

    name: str
    points: Sequence[tuple[float, float]]


def _ticks(low: float, high: float, count: int = 5, integer: bool = False) -> list[float]:
    """About ``count`` round tick values covering ``[low, high]`` (whole numbers only when
    ``integer``: rounds and blocks have no halves)."""
    if high <= low:
        return [low]
    raw = (high - low) / max(count - 1, 1)
    if integer:
        raw = max(raw, 1.0)
    magnitude = 10 ** math.floor(math.log10(raw))
    multiples = (1, 2, 5, 10) if integer else (1, 2, 2.5, 5, 10)
    step = next(m * magnitude for m in multiples if m * magnitude >= raw)
    start = math.ceil(low / step - 1e-9) * step
    ticks = []
    value = start
    while value <= high + 1e-9 * step:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _label(value: float) -> str:
    return f"{value:g}" if abs(value) < 1e6 else f"{value:.3g}"


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    y_range: tuple[float, float] | None = None,
    x_integer: bool = False,
    width: int = 640,
    height: int = 260,
) -> str:
    """An ``<svg>`` line chart of ``series`` with axes, ticks and a legend.

    ``y_range`` fixes the y axis (e.g. (0, 1) for accuracy); by default it spans the data.
    ``x_integer`` puts x ticks on whole numbers only (rounds, blocks).
    An empty chart (no points) still draws its axes and says "no data yet".
    """
    left, right, top, bottom = 56, 16, 28, 44
    legend = 18 * len(series) if len(series) > 1 else 0
    height += legend
    plot_w, plot_h = width - left - right, height - top - bottom - legend
    xs = [x for s in series for x, _ in s.points]
    ys = [y for s in series for _, y in s.points]
    x_lo, x_hi = (min(xs), max(xs)) if xs else (0.0, 1.0)
    y_lo, y_hi = y_range if y_range is not None else ((min(ys), max(ys)) if ys else (0.0, 1.0))
    if x_hi == x_lo:
        x_lo, x_hi = x_lo - 1, x_hi + 1
    if y_hi == y_lo:
        y_lo, y_hi = y_lo - 0.5, y_hi + 0.5

    def px(x: float) -> float:
        return left + (x - x_lo) / (x_hi - x_lo) * plot_w

    def py(y: float) -> float:
        return top + plot_h - (y - y_lo) / (y_hi - y_lo) * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<text x="{left}" y="16" font-size="13" font-weight="bold">{escape(title)}</text>',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fafafa" '
        'stroke="#d4d4d4"/>',
    ]
    for tick in _ticks(y_lo, y_hi):
        y = py(tick)
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e5e5"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">'
            f"{_label(tick)}</text>"
        )
    for tick in _ticks(x_lo, x_hi, 6, x_integer):
        x = px(tick)
        parts.append(
            f'<text x="{x:.1f}" y="{top + plot_h + 16}" font-size="11" text-anchor="middle">'
            f"{_label(tick)}</text>"
        )
    parts.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{top + plot_h + 34}" font-size="12" '
        f'text-anchor="middle">{escape(x_label)}</text>'
        f'<text x="14" y="{top + plot_h / 2:.1f}" font-size="12" text-anchor="middle" '
        f'transform="rotate(-90 14 {top + plot_h / 2:.1f})">{escape(y_label)}</text>'
    )
    if not xs:
        parts.append(
            f'<text x="{left + plot_w / 2:.1f}" y="{top + plot_h / 2:.1f}" font-size="13" '
            'text-anchor="middle" fill="#737373">no data yet</text>'
        )
    for i, s in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        pts = sorted(s.points)
        name = escape(s.name)
        if len(pts) > 1:
            line = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
            parts.append(
                f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{line}"/>'
            )
        for x, y in pts:
            parts.append(
                f'<circle class="point" data-series="{name}" data-x="{x:g}" data-y="{y:.6g}" '
                f'cx="{px(x):.1f}" cy="{py(y):.1f}" r="3.5" fill="{colour}">'
                f"<title>{name}: {_label(x)}, {y:.4g}</title></circle>"
            )
        if legend:
            ly = top + plot_h + bottom + 18 * i + 4
            parts.append(
                f'<rect x="{left}" y="{ly}" width="12" height="12" fill="{colour}"/>'
                f'<text x="{left + 18}" y="{ly + 10}" font-size="12">{name}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)
