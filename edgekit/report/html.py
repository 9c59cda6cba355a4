"""The self-contained HTML report of one or more ``edgekit bench`` results files.

One page, no network: inline CSS, inline SVG plots drawn in Python, a tiny
inline sorting script, and a Content-Security-Policy that lets the browser load
nothing else (see :mod:`edgekit.report.html_base`). Files are grouped by target
(:func:`~edgekit.report.merge.group_by_target`); each target gets:

* the results table: every row with latency p50/p90/p99, CV and the unstable
  flag, throughput, peak RSS, size, params, MACs, top-1/top-5, agreement, the
  paired top-1 drop vs FP32 with its CI, McNemar p and the verdict (click a
  header to sort);
* a latency-vs-accuracy plot (p50 vs top-1, one point per artifact x runtime
  x precision, the Pareto front highlighted, tooltips on hover);
* precision-vs-precision comparisons, per-class top-1 deltas, the artifacts,
  and the environment of every file.

All text is escaped. :func:`write_html` writes atomically.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from collections.abc import Sequence
from pathlib import Path

from edgekit import __version__
from edgekit.bench.results import BenchReport, BenchResult
from edgekit.bench.stats import LatencyStats
from edgekit.core.atomic import atomic_write_text
from edgekit.report import html_sections as sections
from edgekit.report import html_telemetry as telemetry
from edgekit.report.formats import report_notes, summary_rows
from edgekit.report.html_base import CSS, JS, csp, e, finite, fmt, num, pct, precision_text, pvalue, table, td
from edgekit.report.merge import Source, TargetGroup, group_by_target
from edgekit.report.svg import Point, scatter_svg

_MB = 1024 * 1024
_MARK = re.compile(r" \[([\d,]+)\]$")


def _slug(text: str, used: set[str]) -> str:
    base = "target-" + (re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "unnamed")
    slug, i = base, 2
    while slug in used:
        slug, i = f"{base}-{i}", i + 1
    used.add(slug)
    return slug


def _status_cell(src: Source, group: TargetGroup, r: BenchResult, shown: str) -> str:
    """The status with its footnote marks ([1,3]; [A1,A3] when files are merged); the reason as tooltip."""
    m = _MARK.search(shown)
    text = r.status
    if m:
        marks = ",".join(f"{src.tag if group.merged else ''}{i}" for i in m.group(1).split(","))
        text += f" [{marks}]"
    return td(text, cls=f"status-{r.status}", title=r.reason)


def _ci_text(s: LatencyStats) -> str:
    lo, hi = s.p50_ci
    return f"n = {s.n}; p50 {s.ci_level:.0%} CI [{fmt(lo)}, {fmt(hi)}] ms; mean {s.mean:.3f} ms, max {s.max:.3f} ms"


def _result_row(group: TargetGroup, src: Source, r: BenchResult, shown: dict[str, str]) -> str:
    art = src.artifact(r.artifact)
    s = r.latency.stats if r.latency else None
    best = r.throughput.best if r.throughput else None
    a, p = r.accuracy, r.paired
    prof = (art.profile or {}) if art else {}
    cells = [td(src.tag, title=src.name)] if group.merged else []
    cells += [
        td(r.artifact, title=f"{r.model} ({art.format if art else '?'}); {r.key}"), td(r.runtime), td(r.device),
        td(precision_text(r.precision, r.executed_precision), cls="warn" if r.executed_precision not in
           (None, r.precision) else ""),
        _status_cell(src, group, r, shown["status"]),
        num(s.p50 if s else None, title=_ci_text(s) if s else None),
        num(s.p90 if s else None), num(s.p99 if s else None, title=("too few samples for a p99 CI"
                                                                    if s and "p99" in s.too_few_for else None)),
        td((f"{100 * s.cv:.1f} %" + (" unstable" if s.unstable else "")) if s else "-", v=100 * s.cv if s else "",
           cls="unstable" if s and s.unstable else "",
           title=f"CV threshold {100 * s.cv_threshold:.0f} %" if s else None),
        td(f"{best.samples_per_s:.1f} (b{best.batch_size})" if best and finite(best.samples_per_s) else "-",
           v=best.samples_per_s if best and finite(best.samples_per_s) else ""),
        num(r.memory.peak_rss_mb if r.memory else None, ".0f"),
        *telemetry.energy_cells(r),
        num(art.size_bytes / _MB if art else None, ".2f"),
        num(art.params / 1e6 if art and art.params else None, ".3f"),
        td(("" if prof.get("macs_complete", True) else "≥ ") + fmt(art.macs / 1e9 if art and art.macs else None),
           v=art.macs / 1e9 if art and art.macs else ""),
        td(pct(a.top1) if a else ("n/a" if r.ok else ""), v=100 * a.top1 if a else "",
           title=f"{a.n} images" if a else r.accuracy_skipped),
        td(pct(a.top5) if a and a.top5 is not None else "", v=100 * a.top5 if a and a.top5 is not None else ""),
        td(pct(a.agreement) if a and a.agreement is not None else "",
           v=100 * a.agreement if a and a.agreement is not None else ""),
        sections.drop_cell(r),
        td(pvalue(p.mcnemar_p) if p is not None else "", v=p.mcnemar_p if p is not None else "",
           title=f"{p.disagreements} of {p.n} images flip top-1" if p is not None else None),
        sections.verdict_cell(r),
    ]
    row_cls = f' class="{e(r.status)}"' if r.status != "ok" else ""
    return f'<tr{row_cls} data-key="{e(r.key)}">' + "".join(cells) + "</tr>\n"


RESULT_HEADERS: list[str | tuple[str, str]] = [
    "artifact", "runtime", "device", ("precision", "asked (what the runtime reports it ran, when different)"),
    "status", ("p50 ms", "single stream, batch 1, nearest-rank percentile"), "p90 ms", "p99 ms",
    ("CV", "std / mean of the latency window; 'unstable' above the target's threshold"),
    ("throughput img/s", "offline, best batch size (b)"), ("peak RSS MB", "process peak during the latency window"),
    *telemetry.HEADERS,
    ("size MiB", "model files on disk"), ("params (M)", "parameters"), ("GMACs", "multiply-accumulates per image"),
    "top-1", "top-5", ("agreement", "top-1 agreement with the FP32 reference on the same images"),
    ("Δtop-1 pts [95 % CI]", "paired vs the FP32 reference; positive = worse"),
    ("McNemar p", "exact two-sided test on the discordant images"), ("verdict", "against the accuracy budget"),
]


def results_table(group: TargetGroup) -> str:
    heads = (["source"] if group.merged else []) + list(RESULT_HEADERS)
    body = []
    notes = []
    for src in group.sources:
        shown = summary_rows(src.report)
        body.extend(_result_row(group, src, r, row) for r, row in zip(src.report.results, shown))
        for n in report_notes(src.report):
            notes.append(re.sub(r"^\[(\d+)\]", lambda m: f"[{src.tag}{m.group(1)}]", n) if group.merged else n)
    note_html = "".join(f"<li>{e(n)}</li>" for n in notes)
    return (table(heads, body, cls="sortable results")
            + (f'<ul class="notes">{note_html}</ul>' if note_html else ""))


def pareto_plot(group: TargetGroup, *, x: str = "latency") -> str:
    """p50 latency (or, ``x="energy"``, energy per inference) vs top-1 of every measured row with both;
    a note lists the rows left out and why."""
    points, left_out = [], []
    for src, r in group.rows():
        s, a = (r.latency.stats if r.latency else None), r.accuracy
        mj = r.telemetry.energy_mj if r.telemetry is not None else None
        if not r.ok or s is None or a is None or (x == "energy" and mj is None):
            why = (f"status {r.status}" if not r.ok else "no latency" if s is None
                   else f"no accuracy ({r.accuracy_skipped or 'not measured'})" if a is None
                   else "no energy (" + ("; ".join(r.telemetry.power_unavailable) if r.telemetry else
                                         "telemetry not run") + ")")
            left_out.append(f"{src.tag + ': ' if group.merged else ''}{r.key}: {why}")
            continue
        prec = precision_text(r.precision, r.executed_precision)
        tip = (f"{r.artifact} · {r.runtime}:{r.device} · {prec}\np50 {s.p50:.3f} ms, p90 {s.p90:.3f} ms\n"
               f"top-1 {100 * a.top1:.2f} % on {a.n} images"
               + (f"\nΔtop-1 {r.paired.drop_pts:+.2f} pts vs FP32 ({r.paired.verdict})"
                  if r.paired is not None else "")
               + (f"\nsource {src.name}" if group.merged else ""))
        ran = r.executed_precision
        label = (f"{(src.tag + ':') if group.merged else ''}{r.artifact} {r.precision}"
                 + (f"→{ran}" if ran not in (None, r.precision) else ""))
        if x == "energy":
            ci = r.telemetry.energy_ci_mj if r.telemetry else None
            tip += f"\nenergy {mj:.3g} mJ/inference ({r.telemetry.scope if r.telemetry else ''})"
        xv, xhi = (mj, ci[1] if ci else None) if x == "energy" else (s.p50, s.p90)
        points.append(Point(x=xv, y=100 * a.top1, x_hi=xhi, series=f"{r.runtime}:{r.device}",
                            marker=r.executed_precision or r.precision, label=label[:32], tooltip=tip, key=r.key))
    if not points:
        return ('<p class="note">Nothing to plot: no row has both a latency and an accuracy.</p>'
                + _left_out(left_out))
    evals = {(s.report.dataset or {}).get("source") for s, r in group.rows() if r.accuracy is not None}
    caveat = (" The rows were evaluated on different data sets: compare accuracies only within one."
              if len(evals) > 1 else "")
    what = "energy" if x == "energy" else "latency"
    svg = scatter_svg(points, title=f"{group.target}: {what} vs top-1",
                      x_label="energy per inference (mJ)" if x == "energy" else "latency p50, batch 1 (ms)",
                      y_label="top-1 accuracy (%)")
    whisker = "energy to its 95 % CI upper bound" if x == "energy" else "p50 to p90"
    better = "more frugal" if x == "energy" else "faster"
    return (f"<figure>{svg}<figcaption>One point per artifact × runtime × precision (shape: precision the "
            f"runtime executed; colour: runtime:device; whisker: {whisker}). The dashed step line is the Pareto "
            f"front: no other point is both {better} and more accurate. Hover a point for its numbers."
            f"{e(caveat)}</figcaption></figure>" + _left_out(left_out))


def _left_out(items: list[str]) -> str:
    if not items:
        return ""
    return ('<details class="note"><summary>' + e(f"{len(items)} row(s) not plotted")
            + "</summary><ul class=\"notes\">" + "".join(f"<li>{e(i)}</li>" for i in items) + "</ul></details>")


def _has_energy(group: TargetGroup) -> bool:
    return any(r.telemetry is not None and r.telemetry.energy_mj is not None for _, r in group.rows())


def _verdicts(group: TargetGroup) -> str:
    """Per model, the configuration to ship and why the others lost (:mod:`edgekit.verdict`), per file."""
    from edgekit.verdict.render import html_section
    from edgekit.verdict.rules import report_verdicts

    parts = []
    for src in group.sources:
        if group.merged:
            parts.append(f'<p class="meta">{e(src.tag)}: {e(src.name)}</p>')
        parts.append(html_section(report_verdicts(src.report)))
    return "\n".join(parts)


def _target_section(group: TargetGroup, slug: str) -> str:
    files = ", ".join(f"{s.tag}: {s.name}" if group.merged else s.name for s in group.sources)
    n = sum(len(s.report.results) for s in group.sources)
    desc = f" — {group.description}" if group.description else ""
    return "\n".join([
        f'<section class="target" id="{e(slug)}">',
        f"<h2>Target {e(group.target)}{e(desc)}</h2>",
        f'<p class="meta">{n} rows from {e(files)}</p>',
        "<h3>Verdict: what to ship</h3>", _verdicts(group),
        "<h3>Results</h3>", results_table(group),
        "<h3>Latency vs accuracy</h3>", pareto_plot(group),
        *(["<h3>Energy vs accuracy</h3>", pareto_plot(group, x="energy")] if _has_energy(group) else []),
        *(["<h3>Sustained run</h3>", sus] if (sus := telemetry.sustained_section(group)) else []),
        "<h3>Precision vs precision</h3>", sections.comparisons(group),
        "<h3>Per-class top-1 vs the FP32 reference</h3>", sections.per_class(group),
        "<h3>Artifacts</h3>", sections.artifacts(group),
        "<h3>Environment</h3>", sections.environment(group),
        "</section>",
    ])


def render_html(reports: BenchReport | Sequence[BenchReport], *, names: Sequence[str] | None = None,
                title: str | None = None, generated: str | None = None, preamble: str = "") -> str:
    """The report page of ``reports`` (named ``names``, e.g. their paths), grouped by target.

    ``preamble``: ready HTML placed before the target sections (the cross-device comparison).
    """
    reps = [reports] if isinstance(reports, BenchReport) else list(reports)
    groups = group_by_target(reps, names)
    title = title or "edgekit report: " + ", ".join(g.target for g in groups)
    generated = generated or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    used: set[str] = set()
    slugs = [_slug(g.target, used) for g in groups]
    toc = "".join(f'<li><a href="#{e(s)}">{e(g.target)}</a> ({sum(len(x.report.results) for x in g.sources)} rows)'
                  "</li>" for g, s in zip(groups, slugs))
    files = "".join(f"<li>{e(s.tag)}: {e(s.name)} (target {e(s.report.target_name)}, {e(s.report.created)})</li>"
                    for g in groups for s in g.sources)
    body = "\n".join(_target_section(g, s) for g, s in zip(groups, slugs))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{e(csp())}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="edgekit {e(__version__)}">
<title>{e(title)}</title>
<style>{CSS}</style>
</head>
<body>
<header>
<h1>{e(title)}</h1>
<p class="meta">generated {e(generated)} by edgekit {e(__version__)}; self-contained (no network needed)</p>
<nav><strong>Targets</strong><ul>{toc}</ul></nav>
<details><summary>{len([s for g in groups for s in g.sources])} results file(s)</summary><ul>{files}</ul></details>
</header>
<main>
{preamble}
{body}
</main>
<footer class="note"><p>Latency: single stream, batch 1, time-based warm-up, then at least a minimum duration and a
minimum count of inferences over real preprocessed samples; nearest-rank percentiles; CV = std / mean, rows above
the target's threshold are flagged unstable. Throughput: samples per second over wall time, one batch in flight.
Accuracy comparisons are paired (the same images): Δtop-1 with a Newcombe 95 % CI, exact McNemar test, verdict
pass / fail / inconclusive against the accuracy budget. "ran" shows the precision the runtime reports it executed
when it differs from the one asked for.</p></footer>
<script>{JS}</script>
</body>
</html>
"""


def write_html(reports: BenchReport | Sequence[BenchReport], path: str | os.PathLike[str], *,
               names: Sequence[str] | None = None, title: str | None = None) -> Path:
    """Write the report page atomically (a reader never sees half a file)."""
    return atomic_write_text(Path(path), render_html(reports, names=names, title=title))


__all__ = ["pareto_plot", "render_html", "results_table", "write_html"]
