"""Inline SVG plots for the HTML report, generated in Python (no JavaScript, no external resources).

:func:`scatter_svg` draws a latency-vs-accuracy scatter: one point per result,
colour by series (runtime:device), shape by precision, an optional horizontal
whisker (p50 to p90), and the Pareto front (lowest latency for a given
accuracy) as a highlighted step line with labelled points. Every point carries
an SVG ``<title>`` (the browser's tooltip). Text is escaped with
:func:`html.escape`; the output uses presentation attributes only (no
``style=""``), so a strict Content-Security-Policy applies to it unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

#: colour-blind-friendly palette (Okabe-Ito), one colour per series
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
#: marker shape per precision
MARKERS = {"fp32": "circle", "fp16": "square", "bf16": "diamond", "int8": "triangle"}


@dataclass(frozen=True)
class Point:
    """One plotted result. ``x`` latency (ms), ``y`` accuracy (%); ``x_hi`` the end of the whisker."""

    x: float
    y: float
    series: str  # colour (runtime:device)
    marker: str  # shape (precision)
    label: str  # short text shown next to Pareto-front points
    tooltip: str  # the SVG <title>: shown on hover
    key: str = ""  # the result key, as data-key for tests and scripts
    x_hi: float | None = None


def pareto_front(points: Sequence[Point]) -> list[int]:
    """Indices of the points no other point beats (lower or equal x AND higher or equal y, one strictly),
    ordered by increasing x."""
    order = sorted(range(len(points)), key=lambda i: (points[i].x, -points[i].y))
    front: list[int] = []
    best_y = -math.inf
    for i in order:
        if points[i].y > best_y:
            front.append(i)
            best_y = points[i].y
    return front


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering [lo, hi] (steps 1, 2, 2.5, 5 x 10^k)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi - lo <= max(abs(lo), abs(hi)) * 1e-6:  # empty or float-thin range (one point with a tiny whisker)
        hi = lo + (abs(lo) * 0.1 or 1.0)
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if (hi - lo) / (m * mag) <= n)
    start = math.floor(lo / step + 1e-9) * step
    ticks = []
    v = start
    while v <= hi + step * 1e-9 and len(ticks) <= 4 * n + 4:  # bounded: a step below float resolution never loops
        ticks.append(round(v, 12))
        v = start + len(ticks) * step
    if ticks[-1] < hi - step * 1e-9:
        ticks.append(round(v, 12))
    return ticks


def log_ticks(lo: float, hi: float) -> list[float]:
    """1, 2, 5 x 10^k ticks from the largest one <= lo to the smallest one >= hi (0 < lo <= hi)."""
    k = math.floor(math.log10(lo))
    cands: list[float] = []
    while not cands or cands[-1] < hi:
        cands.extend(m * 10.0 ** k for m in (1, 2, 5))
        k += 1
    first = max(i for i, v in enumerate(cands) if v <= lo * (1 + 1e-9))
    last = min(i for i, v in enumerate(cands) if v >= hi * (1 - 1e-9))
    return cands[first:last + 1]


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.3g}"


def _shape(kind: str, x: float, y: float, fill: str, *, big: bool) -> str:
    r = 6.5 if big else 5.0
    stroke = ' stroke="#111" stroke-width="2"' if big else ' stroke="#fff" stroke-width="1"'
    if kind == "circle":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" fill="{fill}"{stroke}/>'
    if kind == "square":
        s = r * 0.9
        return f'<rect x="{x - s:.1f}" y="{y - s:.1f}" width="{2 * s:.1f}" height="{2 * s:.1f}" fill="{fill}"{stroke}/>'
    if kind == "diamond":
        s = r * 1.25
        d = f"M{x:.1f},{y - s:.1f}L{x + s:.1f},{y:.1f}L{x:.1f},{y + s:.1f}L{x - s:.1f},{y:.1f}Z"
    elif kind == "triangle":
        s = r * 1.3
        d = f"M{x:.1f},{y - s:.1f}L{x + s * 0.9:.1f},{y + s * 0.7:.1f}L{x - s * 0.9:.1f},{y + s * 0.7:.1f}Z"
    else:  # anything else: a cross-like star
        s = r
        d = (f"M{x - s:.1f},{y - s:.1f}L{x + s:.1f},{y + s:.1f}M{x + s:.1f},{y - s:.1f}L{x - s:.1f},{y + s:.1f}")
        return f'<path d="{d}" stroke="{fill}" stroke-width="{3 if big else 2}" fill="none"/>'
    return f'<path d="{d}" fill="{fill}"{stroke}/>'


def scatter_svg(points: Sequence[Point], *, title: str, x_label: str, y_label: str, log_x: bool | None = None,
                width: int = 820, height: int = 440, css_class: str = "plot") -> str:
    """An inline ``<svg>`` scatter of ``points`` with the Pareto front highlighted.

    ``log_x`` None chooses a log latency axis when the points span more than 20x.
    """
    left, right, top, bottom = 64, 190, 34, 56
    pw, ph = width - left - right, height - top - bottom
    xs = [p.x for p in points] + [p.x_hi for p in points if p.x_hi is not None]
    ys = [p.y for p in points]
    if not points:
        return (f'<svg class="{escape(css_class)}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} 60" '
                f'role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>'
                f'<text x="10" y="35" font-size="14">no points to plot</text></svg>')
    x_lo, x_hi = min(xs), max(xs)
    if log_x is None:
        log_x = x_lo > 0 and x_hi / x_lo > 20
    if log_x:
        ticks_x = log_ticks(x_lo, x_hi)
        lx0, lx1 = math.log10(min(ticks_x[0], x_lo)), math.log10(max(ticks_x[-1], x_hi))

        def sx(v: float) -> float:
            return left + (math.log10(max(v, 1e-12)) - lx0) / ((lx1 - lx0) or 1) * pw
    else:
        pad = (x_hi - x_lo) * 0.05 or max(abs(x_hi) * 0.1, 0.1)
        ticks_x = nice_ticks(max(0.0, x_lo - pad), x_hi + pad)
        x0, x1 = ticks_x[0], ticks_x[-1]

        def sx(v: float) -> float:
            return left + (v - x0) / ((x1 - x0) or 1) * pw
    y_pad = (max(ys) - min(ys)) * 0.08 or 1.0
    ticks_y = nice_ticks(max(0.0, min(ys) - y_pad), min(100.0, max(ys) + y_pad))
    y0, y1 = ticks_y[0], ticks_y[-1]

    def sy(v: float) -> float:
        return top + ph - (v - y0) / ((y1 - y0) or 1) * ph

    series = list(dict.fromkeys(p.series for p in points))
    colour = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(series)}
    front = pareto_front(points)
    on_front = set(front)
    out = [f'<svg class="{escape(css_class)}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
           f'role="img" aria-label="{escape(title)}" font-family="system-ui, sans-serif" font-size="12">',
           f"<title>{escape(title)}</title>",
           f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fff" stroke="#999"/>']
    # grid and ticks
    for t in ticks_x:
        x = sx(t)
        out.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + ph}" stroke="#e5e5e5"/>'
                   f'<text x="{x:.1f}" y="{top + ph + 16}" text-anchor="middle" fill="#333">{escape(_fmt(t))}</text>')
    for t in ticks_y:
        y = sy(t)
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" stroke="#e5e5e5"/>'
                   f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#333">{escape(_fmt(t))}</text>')
    out.append(f'<text class="axis-label" x="{left + pw / 2:.1f}" y="{height - 12}" text-anchor="middle" '
               f'font-size="13">{escape(x_label + (" (log scale)" if log_x else ""))}</text>')
    out.append(f'<text class="axis-label" x="16" y="{top + ph / 2:.1f}" text-anchor="middle" font-size="13" '
               f'transform="rotate(-90 16 {top + ph / 2:.1f})">{escape(y_label)}</text>')
    out.append(f'<text x="{left}" y="{top - 12}" font-size="14" font-weight="600">{escape(title)}</text>')
    # Pareto front as a step line (latency must rise to buy accuracy)
    if len(front) > 1:
        pts = []
        for a, b in zip(front, front[1:]):
            pa, pb = points[a], points[b]
            pts.append(f"{sx(pa.x):.1f},{sy(pa.y):.1f} {sx(pb.x):.1f},{sy(pa.y):.1f}")
        pts.append(f"{sx(points[front[-1]].x):.1f},{sy(points[front[-1]].y):.1f}")
        out.append(f'<polyline class="pareto" points="{" ".join(pts)}" fill="none" stroke="#111" '
                   f'stroke-width="1.5" stroke-dasharray="5 3"/>')
    # points: dominated first, the front on top
    for i in sorted(range(len(points)), key=lambda i: i in on_front):
        p = points[i]
        x, y, c = sx(p.x), sy(p.y), colour[p.series]
        cls = "pt front" if i in on_front else "pt"
        out.append(f'<g class="{cls}" data-key="{escape(p.key)}"><title>{escape(p.tooltip)}</title>')
        if p.x_hi is not None and p.x_hi > p.x:
            out.append(f'<line x1="{x:.1f}" y1="{y:.1f}" x2="{sx(p.x_hi):.1f}" y2="{y:.1f}" stroke="{c}" '
                       f'stroke-width="1.5" stroke-opacity="0.6"/>')
        out.append(_shape(MARKERS.get(p.marker, "cross"), x, y, c, big=i in on_front))
        if i in on_front and p.label:
            anchor, dx = ("end", -10) if x > left + pw * 0.7 else ("start", 10)
            out.append(f'<text x="{x + dx:.1f}" y="{y - 8:.1f}" text-anchor="{anchor}" font-size="11" '
                       f'fill="#111">{escape(p.label)}</text>')
        out.append("</g>")
    # legend: series colours, precision shapes, the front
    lx, ly = left + pw + 16, top + 6
    out.append(f'<g class="legend"><text x="{lx}" y="{ly + 4}" font-weight="600">runtime:device</text>')
    ly += 18
    for s in series:
        out.append(f'<circle cx="{lx + 6}" cy="{ly}" r="5" fill="{colour[s]}"/>'
                   f'<text x="{lx + 16}" y="{ly + 4}">{escape(s)}</text>')
        ly += 17
    ly += 8
    out.append(f'<text x="{lx}" y="{ly + 4}" font-weight="600">precision</text>')
    ly += 18
    for m in dict.fromkeys(p.marker for p in points):
        out.append(_shape(MARKERS.get(m, "cross"), lx + 6, ly, "#666", big=False)
                   + f'<text x="{lx + 16}" y="{ly + 4}">{escape(m)}</text>')
        ly += 17
    ly += 8
    out.append(f'<line x1="{lx}" y1="{ly}" x2="{lx + 14}" y2="{ly}" stroke="#111" stroke-width="1.5" '
               f'stroke-dasharray="5 3"/><text x="{lx + 20}" y="{ly + 4}">Pareto front</text>')
    if any(p.x_hi is not None for p in points):
        ly += 17
        out.append(f'<line x1="{lx}" y1="{ly}" x2="{lx + 14}" y2="{ly}" stroke="#666" stroke-width="1.5"/>'
                   f'<text x="{lx + 20}" y="{ly + 4}">p50 to p90</text>')
    out.append("</g></svg>")
    return "\n".join(out)
