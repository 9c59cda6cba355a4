"""Telemetry in the HTML report: energy cells of the results table and the sustained-mode plots
(latency p50, temperature and power per interval over time), as inline SVG line charts."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from edgekit.bench.results import BenchResult
from edgekit.report.html_base import e, num, td
from edgekit.report.merge import TargetGroup
from edgekit.report.svg import PALETTE, nice_ticks

HEADERS: list[str | tuple[str, str]] = [
    ("mJ/inf", "energy per inference over the latency window (hover: 95 % CI, scope, source)"),
    ("W (>idle)", "mean power during the window, and above the idle baseline"),
    ("°C max", "hottest thermal zone during the window"),
]


def energy_cells(r: BenchResult) -> list[str]:
    t = r.telemetry
    if t is None:
        return [td(""), td(""), td("")]
    if t.energy_mj is None:
        why = "; ".join(t.power_unavailable) or "not measured"
        ci_cell = td("n/a", title=why)
    else:
        ci = t.energy_ci_mj
        ci_cell = num(t.energy_mj, ".3g", title=(f"95 % CI [{ci[0]:.3g}, {ci[1]:.3g}] mJ; " if ci else "")
                      + f"{t.scope} via {t.source}; {t.samples} samples at {t.rate_hz or 0:.0f} Hz")
    power = (f"{t.mean_power_w:.2f}" + (f" ({t.above_idle_w:+.2f})" if t.above_idle_w is not None else "")
             if t.mean_power_w is not None else "-")
    throttle = "; ".join(t.throttle_reasons) if t.throttled else None
    return [ci_cell, td(power, v=t.mean_power_w if t.mean_power_w is not None else ""),
            num(t.temp_max_c, ".1f", title=throttle)]


def line_svg(series: Sequence[tuple[str, list[tuple[float, float]]]], *, title: str, x_label: str, y_label: str,
             width: int = 820, height: int = 260) -> str:
    """A small multi-series line chart (x: seconds into the window)."""
    pts = [p for _, s in series for p in s]
    if not pts:
        return ""
    left, right, top, bottom = 64, 170, 30, 46
    pw, ph = width - left - right, height - top - bottom
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y0, y1 = min(p[1] for p in pts), max(p[1] for p in pts)
    pad = (y1 - y0) * 0.1 or abs(y1) * 0.05 or 1.0
    y0, y1 = y0 - pad, y1 + pad
    x1 = x1 if x1 > x0 else x0 + 1

    def sx(v: float) -> float:
        return left + (v - x0) / (x1 - x0) * pw

    def sy(v: float) -> float:
        return top + ph - (v - y0) / (y1 - y0) * ph

    out = [(f'<svg class="plot" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="{escape(title)}"><title>{escape(title)}</title>'),
           f'<text x="{left}" y="18" font-size="13" font-weight="bold">{escape(title)}</text>',
           f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>']
    for t in nice_ticks(y0, y1, 4):
        if y0 <= t <= y1:
            out.append(f'<text x="{left - 6}" y="{sy(t) + 4:.1f}" font-size="11" text-anchor="end">{t:g}</text>')
    for t in nice_ticks(x0, x1, 6):
        if x0 <= t <= x1:
            out.append(f'<text x="{sx(t):.1f}" y="{top + ph + 16}" font-size="11" text-anchor="middle">{t:g}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 6}" font-size="12" text-anchor="middle">{escape(x_label)}</text>')
    out.append(f'<text x="14" y="{top + ph / 2}" font-size="12" transform="rotate(-90 14 {top + ph / 2})" '
               f'text-anchor="middle">{escape(y_label)}</text>')
    for i, (name, s) in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in s)
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
        for x, y in s:
            out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{colour}">'
                       f"<title>{escape(name)}: {y:.4g} at {x:.0f} s</title></circle>")
        out.append(f'<text x="{left + pw + 10}" y="{top + 14 + 16 * i}" font-size="11" fill="{colour}">'
                   f"{escape(name[:26])}</text>")
    out.append("</svg>")
    return "".join(out)


def sustained_section(group: TargetGroup) -> str:
    """Latency and temperature (and power) over time for every row run with --sustained; '' when none."""
    rows = [(src, r, r.telemetry) for src, r in group.rows() if r.telemetry is not None and r.telemetry.intervals]
    if not rows:
        return ""
    charts = []
    for key, label, unit in (("p50_ms", "latency p50", "ms"), ("temp_max_c", "temperature (hottest zone)", "°C"),
                             ("power_w", "mean power", "W")):
        series = []
        for src, r, t in rows:
            pts = [((i["start_s"] + i["end_s"]) / 2, i[key]) for i in t.intervals if i.get(key) is not None]
            if pts:
                series.append((f"{src.tag + ':' if group.merged else ''}{r.artifact} {r.runtime} {r.precision}", pts))
        svg = line_svg(series, title=f"{label} per interval", x_label="seconds into the sustained window",
                       y_label=f"{label} ({unit})")
        if svg:
            charts.append(f"<figure>{svg}</figure>")
        elif key == "temp_max_c":
            why = rows[0][2].state_absent.get("temperature", "no temperature was read")
            charts.append(f'<p class="note">No temperature plot: {e(why)}</p>')
    ratios = "".join(
        f"<li>{e(r.key)}: last/first p50 {_r(t.first_last, 'p50_ms')}, throughput "
        f"{_r(t.first_last, 'throughput_sps')}, power {_r(t.first_last, 'power_w')}</li>"
        for _, r, t in rows)
    return "".join(charts) + f'<ul class="notes">{ratios}</ul>'


def _r(d: dict | None, k: str) -> str:
    v = (d or {}).get(k)
    return "-" if v is None else f"{v:.3f}"
