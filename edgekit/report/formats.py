"""Bench reports as text: the summary columns shared by every format, CSV and Markdown.

:func:`summary_rows` gives one dict of display strings per result row (the
columns of the terminal table and of the Markdown table), and
:func:`report_notes` the footnotes (why a row was skipped or unsupported,
instability, warnings). CSV carries the full flat metrics of
:meth:`~edgekit.bench.results.BenchResult.metrics`, one row per result, in
plain numbers (latency in ms, fractions in [0, 1]); Markdown carries the
summary. Files are written atomically.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from pathlib import Path
from typing import Any

from edgekit.bench.results import BenchReport, BenchResult
from edgekit.core.atomic import atomic_write_text
from edgekit.runtime.registry import RUNTIMES
from edgekit.verdict.render import markdown_section
from edgekit.verdict.rules import report_verdicts

#: summary columns: key -> header
COLUMNS: dict[str, str] = {
    "artifact": "artifact", "runtime": "runtime", "precision": "precision", "status": "status",
    "p50": "p50 ms", "p90": "p90 ms", "p99": "p99 ms", "cv": "CV", "rt_p50": "runtime p50 ms", "cold": "cold ms",
    "throughput": "max img/s (bs)", "top1": "top-1", "agreement": "agree", "drop": "Δtop-1 pts [95% CI]",
    "rss": "peak RSS MB", "energy": "mJ/inf [95% CI]", "power": "W (>idle)", "temp": "°C start>max",
}
#: telemetry columns: shown when some row has a value (energy: whenever telemetry ran, "n/a" saying it could not)
_TELEMETRY = ("energy", "power", "temp")
IDENTITY = ("key", "artifact", "model", "runtime", "device", "precision", "status", "reason")
_MB = 1024 * 1024


def _num(v: Any, fmt: str = ".3f") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return format(v, fmt)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def _precision(r: BenchResult) -> str:
    ran = r.executed_precision
    return r.precision if ran in (None, r.precision) else f"{r.precision} (ran {ran})"


def summary_rows(report: BenchReport) -> list[dict[str, str]]:
    """Display strings per result, keyed like :data:`COLUMNS`; footnote marks ``[n]`` refer to :func:`report_notes`."""
    rows = []
    marks = _footnotes(report)[0]
    for r in report.results:
        row = {k: "" for k in COLUMNS}
        row.update(artifact=r.artifact, runtime=f"{r.runtime}:{r.device}", precision=_precision(r),
                   status=r.status + (f" [{marks[r.key]}]" if r.key in marks else ""))
        s = r.latency.stats if r.latency else None
        if s is not None:
            row.update(p50=_num(s.p50), p90=_num(s.p90), p99=_num(s.p99),
                       cv=f"{100 * s.cv:.1f}%" + (" !" if s.unstable else ""), cold=_num(r.latency.cold_ms, ".2f"))
            rs = r.latency.runtime_stats
            row["rt_p50"] = _num(rs.p50) if rs is not None else "-"
        elif r.ok:
            row.update(p50="-", p90="-", p99="-", cv="-", rt_p50="-", cold="-")
        best = r.throughput.best if r.throughput else None
        if best is not None:
            row["throughput"] = f"{best.samples_per_s:.1f} ({best.batch_size})"
        a = r.accuracy
        if a is not None:
            row["top1"] = _pct(a.top1)
            row["agreement"] = _pct(a.agreement)
        elif r.ok:
            row["top1"] = "n/a"
        p = r.paired
        if p is not None:
            row["drop"] = f"{p.drop_pts:+.2f} [{p.ci_pts[0]:+.2f}, {p.ci_pts[1]:+.2f}] {p.verdict}"
        elif a is not None and r.reference == r.key:
            row["drop"] = "reference"
        if r.memory is not None and r.memory.peak_rss_mb is not None:
            row["rss"] = f"{r.memory.peak_rss_mb:.0f}"
        row.update(_telemetry_cells(r))
        rows.append(row)
    return rows


def _telemetry_cells(r: BenchResult) -> dict[str, str]:
    t = r.telemetry
    if t is None:
        return {}
    out = {"energy": "n/a"}
    if t.energy_mj is not None:
        ci = t.energy_ci_mj
        out["energy"] = f"{t.energy_mj:.3g}" + (f" [{ci[0]:.3g}, {ci[1]:.3g}]" if ci else "")
    if t.mean_power_w is not None:
        out["power"] = f"{t.mean_power_w:.2f}" + (f" ({t.above_idle_w:+.2f})" if t.above_idle_w is not None else "")
    if t.temp_start_c is not None:
        out["temp"] = f"{t.temp_start_c:.0f}>{t.temp_max_c:.0f}"
    return out


def _telemetry_notes(r: BenchResult) -> list[str]:
    t, out = r.telemetry, []
    if t is not None and t.first_last:
        fl = t.first_last

        def ratio(k: str) -> str:
            return "-" if fl.get(k) is None else f"x{fl[k]:.3f}"

        out.append(f"sustained {len(t.intervals)} intervals, last/first: p50 {ratio('p50_ms')}, throughput "
                   f"{ratio('throughput_sps')}, power {ratio('power_w')}, temperature {ratio('temp_max_c')}")
    if t is not None and t.cooldown and not t.cooldown.get("reached"):
        c = t.cooldown
        out.append(c.get("reason") or f"cooldown: still {c.get('temp_c')} °C after {c.get('waited_s', 0):.0f} s "
                                      f"(target {c.get('target_c')} °C)")
    return out


def power_line(report: BenchReport) -> str | None:
    """How power was measured (source, scope, rate, idle), or None when telemetry did not run."""
    tel = report.settings.get("telemetry")
    if not tel:
        return None
    if not tel.get("source"):
        return "power: not measured here (the notes say why for each source); energy columns show n/a"
    idle = tel.get("idle_power_w")
    rates = [r.telemetry.rate_hz for r in report.results if r.telemetry is not None and r.telemetry.rate_hz]
    return (f"power: {tel['source']}, scope {tel['scope']} ({tel.get('detail')}); idle "
            + (f"{idle:.2f} W" if idle is not None else "not measured")
            + (f"; sampled at {min(rates):.0f}-{max(rates):.0f} Hz" if rates else "")
            + "; energy per inference = window energy / inferences, 95% CI from 10 time blocks")


def _footnotes(report: BenchReport) -> tuple[dict[str, str], list[str]]:
    """(row key -> marks like "1,3", the distinct note texts); one note per distinct reason."""
    marks: dict[str, str] = {}
    texts: list[str] = []
    index: dict[str, int] = {}
    for r in report.results:
        parts = []
        if r.reason:
            parts.append(r.reason)
        if r.ok and r.latency_skipped:
            parts.append(f"latency: {r.latency_skipped}")
        if r.ok and r.accuracy_skipped:
            parts.append(f"accuracy: {r.accuracy_skipped}")
        refused: dict[str, list[str]] = {}
        for p in r.throughput.points if r.throughput else ():
            if p.error:
                refused.setdefault(p.error, []).append(str(p.batch_size))
        for err, sizes in refused.items():
            parts.append(f"batch{'es' if len(sizes) > 1 else ''} {', '.join(sizes)}: {err}")
        parts.extend(r.warnings)
        parts.extend(_telemetry_notes(r))
        ids = []
        for text in dict.fromkeys(parts):
            if text not in index:
                texts.append(text)
                index[text] = len(texts)
            ids.append(str(index[text]))
        if ids:
            marks[r.key] = ",".join(ids)
    return marks, texts


def report_notes(report: BenchReport) -> list[str]:
    """Footnotes ``[n] ...``, then the report's warnings."""
    _, texts = _footnotes(report)
    out = [f"[{i}] {t}" for i, t in enumerate(texts, 1)]
    out.extend(w for w in report.warnings if not any(w in t for t in texts))
    return out


def header_lines(report: BenchReport) -> list[str]:
    """Target, host, settings and dataset in a few lines."""
    env, st, ds = report.environment, report.settings, report.dataset or {}
    lines = [f"target {report.target_name} ({report.target.get('description', '')})"]
    if env is not None:
        cores = f"{env.physical_cores or '?'} physical / {env.logical_cores or '?'} logical cores"
        runtimes = {d for b in RUNTIMES.values() for d in b.versions}
        rt = ", ".join(f"{k} {v}" for k, v in env.versions.items() if k in runtimes)
        lines.append(f"host: {env.cpu_model or env.arch}, {cores}; {rt or 'no runtime versions'}")
    lines.append(f"tier {st.get('tier')}: warm-up {st.get('warmup_s')} s, then >= {st.get('min_duration_s')} s and "
                 f">= {st.get('min_iterations')} iterations per window; batch sweep {st.get('batch_sizes')}")
    timers = sorted({r.latency.runtime_timer for r in report.results
                     if r.latency is not None and r.latency.runtime_timer})
    if timers:
        lines.append("p50: host wall time around each infer() call; runtime p50: the same calls timed by the "
                     f"runtime itself ({'; '.join(timers)})")
    power = power_line(report)
    if power:
        lines.append(power)
    if ds:
        lines.append(f"data: {ds.get('source')} ({ds.get('n_images')} images, {len(ds.get('classes', []))} classes; "
                     f"eval {ds.get('eval_n')}, latency pool {ds.get('latency_pool_n')}"
                     + (f"; accuracy on the {' / '.join(ds['splits'])} split" if ds.get("splits") else "") + ")")
    for a in report.artifacts:
        prof = (f"{a.params / 1e6:.2f} M params, {a.macs / 1e9:.3f} GMACs" if a.profile
                else f"params/MACs unknown: {a.profile_error}")
        lines.append(f"{a.name}: {a.model} {a.format} {a.precision}, input {list(a.input_shape)}, "
                     f"{a.size_bytes / _MB:.2f} MiB, {prof}, sha256 {(a.model_sha256 or '-')[:12]}")
    return lines


def csv_text(report: BenchReport) -> str:
    """One row per result: identity columns, then every flat metric."""
    arts = {a.name: a for a in report.artifacts}
    rows = []
    metric_keys: list[str] = []
    for r in report.results:
        m = r.metrics(arts.get(r.artifact))
        for k in m:
            if k not in metric_keys and k != "status":
                metric_keys.append(k)
        rows.append((r, m))
    sweep = re.compile(r"^throughput_b(\d+)_sps$")
    tput = sorted((k for k in metric_keys if sweep.match(k)), key=lambda k: int(sweep.match(k).group(1)))  # type: ignore[union-attr]
    metric_keys = [k for k in metric_keys if not sweep.match(k)] + tput
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*IDENTITY, *metric_keys])
    for r, m in rows:
        ident = [getattr(r, k) for k in IDENTITY]
        w.writerow(["" if v is None else v for v in (*ident, *(m.get(k) for k in metric_keys))])
    return buf.getvalue()


def _md_cell(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ") or " "


def shown_columns(rows: list[dict[str, str]]) -> list[str]:
    """:data:`COLUMNS` less the runtime-timing column when no row has a runtime that times itself."""
    def has(k: str, empty: tuple[str, ...] = ("", "-")) -> bool:
        return any(r.get(k, "") not in empty for r in rows)

    return [k for k in COLUMNS if (k != "rt_p50" or has(k)) and (k not in _TELEMETRY or has(k, ("", "-", "n/a"))
                                                                  or (k == "energy" and has(k)))]


def markdown_text(report: BenchReport) -> str:
    """A Markdown section: header lines, the summary table, the notes."""
    out = [f"## edgekit bench: {report.target_name}", ""]
    out.extend(f"- {line}" for line in header_lines(report))
    out.append("")
    rows = summary_rows(report)
    cols = shown_columns(rows)
    out.append("| " + " | ".join(COLUMNS[k] for k in cols) + " |")
    out.append("|" + "|".join("---" if k in ("artifact", "runtime", "precision", "status") else "---:"
                              for k in cols) + "|")
    for row in rows:
        out.append("| " + " | ".join(_md_cell(row[k]) for k in cols) + " |")
    notes = report_notes(report)
    if notes:
        out.append("")
        out.extend(f"- {_md_cell(n)}" for n in notes)
    out.append("")
    out.append(f"Latency: single stream, batch 1, nearest-rank percentiles; CV above {report.settings.get('cv_threshold')} "
               "marked ! (unstable). Throughput: samples / wall time, one batch in flight. Δtop-1: paired vs the FP32 "
               "reference on the same images (Newcombe CI), verdict against the accuracy budget."
               + (" Energy: per inference over the latency window, in the power scope named above; a window during "
                  "which the device throttled is marked throttled, not ok." if power_line(report) else ""))
    out.append("")
    out.append(markdown_section(report_verdicts(report), level=3))
    return "\n".join(out).rstrip("\n") + "\n"


def write_csv(report: BenchReport, path: str | os.PathLike[str]) -> Path:
    return atomic_write_text(Path(path), csv_text(report))


def write_markdown(report: BenchReport, path: str | os.PathLike[str]) -> Path:
    return atomic_write_text(Path(path), markdown_text(report))
