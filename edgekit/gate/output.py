"""Gate reports for CI: a Markdown summary (job summary, PR comment) and JUnit XML (one testcase per check).

Also :func:`baseline_changes`, the "what changed" lines printed by
``--update-baseline``. Standard library only.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

from edgekit.core.atomic import atomic_write_text
from edgekit.gate.baseline import Baseline
from edgekit.gate.checks import Check
from edgekit.gate.compare import GateResult

ICONS = {"pass": "✅ pass", "improved": "✅ improved", "within-noise": "⚠️ within noise",
         "inconclusive": "⚠️ inconclusive", "info": "ℹ️ info", "skipped": "⏭️ skipped", "fail": "❌ fail"}
_MAX_CLASS_ROWS = 30


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _value(c: Check, v: float | None) -> str:
    if v is None:
        return ""
    if c.name.startswith("latency-ratio"):
        return f"{v:.3f}x FP32"
    if c.name.startswith("latency"):
        return f"{v:.3f} ms"
    return f"{v:.2f} %"


def _change(c: Check) -> str:
    if c.change is None:
        return ""
    if c.name == "accuracy":
        lo, hi = c.details.get("ci_pts", (None, None))
        ci = f" (drop CI [{lo:+.2f}, {hi:+.2f}])" if lo is not None else ""
        return f"{c.change:+.2f} pts{ci}"
    if c.name.startswith("latency"):
        return f"{c.change:+.1f} %"
    return f"{c.change:+.2f}"


def _icon(c: Check) -> str:
    if c.outcome == "inconclusive" and not c.passed:
        return "❌ inconclusive"
    return ICONS.get(c.outcome, c.outcome)


def _rules(result: GateResult) -> str:
    o = result.options
    if o.max_top1_drop_pts is not None:
        acc = f"top-1 drop ≤ {o.max_top1_drop_pts:g} pts (absolute)"
    else:
        acc = f"top-1 drop ≤ {o.max_rel_drop_pct if o.max_rel_drop_pct is not None else 1.0:g} % of the baseline top-1"
    lat = (f"{o.metric} increase ≤ {o.max_latency_increase_pct:g} % beyond noise (k = {o.noise_k:g})"
           if o.max_latency_increase_pct is not None else f"{o.metric} reported, not gated")
    if o.max_ratio_increase_pct is not None:
        lat += (f"; {o.metric} / FP32 of the same run: increase ≤ {o.max_ratio_increase_pct:g} % of the baseline's "
                "ratio beyond noise")
    agr = f"agreement ≥ {o.min_agreement:.2%}" if o.min_agreement is not None else "agreement reported"
    inc = ("judged by the observed drop" if o.inconclusive == "estimate" else f"counts as **{o.inconclusive}**")
    return (f"Rules: {acc}, paired on the same images at {o.level:.0%} confidence; an inconclusive verdict {inc}; "
            f"{agr}; {lat}.")


def markdown_summary(result: GateResult, *, update_command: str | None = None) -> str:
    """A Markdown report of ``result`` for a CI job summary or a pull-request comment."""
    checks = result.checks
    fails = result.failures
    head = ("## ✅ edgekit gate: pass" if result.passed
            else f"## ❌ edgekit gate: fail ({len(fails)} of {len(checks)} checks failed)")
    ctx = result.context
    lines = [head, ""]
    src = f"Results `{result.results_origin or 'results'}` vs baseline `{result.baseline_origin or 'baseline'}`"
    if ctx.get("target"):
        src += f" on target `{ctx['target']}`"
    if ctx.get("baseline_created"):
        src += f" (baseline made {ctx['baseline_created']})"
    lines += [src + ".", "", _rules(result), ""]
    lines += ["| Row | Check | Baseline | Current | Change | Verdict |", "|---|---|---|---|---|---|"]
    for c in checks:
        if c.name == "status" and c.outcome == "pass":
            continue  # "it runs" is implied by the other checks of the row
        lines.append(f"| `{_cell(c.row)}` | {c.name} | {_value(c, c.baseline)} | {_value(c, c.current)} | "
                     f"{_cell(_change(c))} | {_icon(c)} |")
    notable = [c for c in checks if c.outcome not in ("pass", "info") or not c.passed]
    if notable:
        lines += ["", "### Details", ""]
        lines += [f"- {_icon(c)} **{_cell(c.row)}** {c.name}: {_cell(c.message)}" for c in notable]
    changes = [(r.row, ch) for r in result.rows for ch in r.class_changes]
    if changes:
        flagged = sum(ch.flagged for _, ch in changes)
        lines += ["", f"<details><summary>Per-class accuracy changes: {len(changes)} classes moved, {flagged} "
                      "significant after Holm correction (reported, not gated)</summary>", "",
                  "| Row | Class | Images | Baseline | Current | Change | Lost | Gained | McNemar p |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for rid, ch in changes[:_MAX_CLASS_ROWS]:
            flag = " ⚠️" if ch.flagged else ""
            lines.append(f"| `{_cell(rid)}` | {_cell(ch.label)} | {ch.support} | {100 * ch.baseline:.1f} % | "
                         f"{100 * ch.current:.1f} % | {ch.change_pts:+.1f} pts | {ch.lost} | {ch.gained} | "
                         f"{ch.p_value:.3g}{flag} |")
        if len(changes) > _MAX_CLASS_ROWS:
            lines.append(f"\n{len(changes) - _MAX_CLASS_ROWS} more in the --json output.")
        lines += ["", "</details>"]
    if result.warnings:
        lines += ["", "### Warnings", ""] + [f"- {_cell(w)}" for w in result.warnings]
    if update_command:
        lines += ["", f"To accept these results as the new baseline: `{update_command}`, then commit the baseline."]
    return "\n".join(lines) + "\n"


def error_summary(message: str) -> str:
    return f"## ❌ edgekit gate: could not run\n\n{_cell(message)}\n"


def junit_xml(result: GateResult) -> str:
    """JUnit XML: one testsuite, one testcase per check (classname ``edgekit.gate.<row>``)."""
    checks = result.checks
    failures = sum(not c.passed for c in checks)
    skipped = sum(c.outcome == "skipped" for c in checks)
    root = ET.Element("testsuites", name="edgekit gate", tests=str(len(checks)), failures=str(failures),
                      errors="0", skipped=str(skipped), time="0")
    suite = ET.SubElement(root, "testsuite", name="edgekit.gate", tests=str(len(checks)), failures=str(failures),
                          errors="0", skipped=str(skipped), time="0")
    props = ET.SubElement(suite, "properties")
    for k, v in (("results", result.results_origin), ("baseline", result.baseline_origin),
                 ("target", str(result.context.get("target", ""))), ("verdict", result.verdict)):
        ET.SubElement(props, "property", name=k, value=v)
    for c in checks:
        case = ET.SubElement(suite, "testcase", classname=f"edgekit.gate.{c.row}", name=c.name, time="0")
        if not c.passed:
            fail = ET.SubElement(case, "failure", message=c.message, type=c.outcome)
            fail.text = _detail_text(c)
        elif c.outcome == "skipped":
            ET.SubElement(case, "skipped", message=c.message)
        else:
            out = ET.SubElement(case, "system-out")
            out.text = f"{c.outcome}: {c.message}"
    if result.warnings:
        ET.SubElement(suite, "system-err").text = "\n".join(result.warnings)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def junit_error(message: str) -> str:
    """JUnit XML for a gate that could not run (bad or incompatible input): one errored testcase."""
    root = ET.Element("testsuites", name="edgekit gate", tests="1", failures="0", errors="1", skipped="0")
    suite = ET.SubElement(root, "testsuite", name="edgekit.gate", tests="1", failures="0", errors="1", skipped="0")
    case = ET.SubElement(suite, "testcase", classname="edgekit.gate", name="inputs", time="0")
    ET.SubElement(case, "error", message=message, type="input").text = message
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _detail_text(c: Check) -> str:
    lines = [c.message]
    lines += [f"{k}: {v}" for k, v in c.details.items()]
    return "\n".join(lines)


def write_summary(text: str, path: str | os.PathLike[str]) -> Path:
    """Write ``text`` to ``path`` atomically, except GitHub's step summary file, which is appended to."""
    p = Path(path)
    step = os.environ.get("GITHUB_STEP_SUMMARY")
    if step and p.exists() and os.path.samefile(p, step):
        with open(p, "a", encoding="utf-8") as f:
            f.write(text)
        return p
    return atomic_write_text(p, text)


def baseline_changes(old: Baseline | None, new: Baseline) -> list[str]:
    """What replacing ``old`` with ``new`` changes, one line per row (``old`` None: a new baseline)."""
    if old is None:
        return [f"new baseline with {len(new.rows)} rows: " + ", ".join(r.id for r in new.rows)]
    out = []
    old_rows = {r.id: r for r in old.rows}
    for r in new.rows:
        o = old_rows.pop(r.id, None)
        if o is None:
            out.append(f"+ {r.id}: added ({r.status})")
            continue
        parts = []
        if o.status != r.status:
            parts.append(f"status {o.status} -> {r.status}")
        if o.accuracy is not None and r.accuracy is not None:
            d = 100 * (r.accuracy.top1 - o.accuracy.top1)
            if o.accuracy.dataset.digest != r.accuracy.dataset.digest:
                parts.append(f"eval set {o.accuracy.dataset.describe()} -> {r.accuracy.dataset.describe()}")
            if d or (o.accuracy.predictions.shape == r.accuracy.predictions.shape
                     and (o.accuracy.predictions != r.accuracy.predictions).any()):
                parts.append(f"top-1 {100 * o.accuracy.top1:.2f} % -> {100 * r.accuracy.top1:.2f} % ({d:+.2f} pts)")
        elif (o.accuracy is None) != (r.accuracy is None):
            parts.append("accuracy " + ("added" if r.accuracy is not None else "removed"))
        if o.latency is not None and r.latency is not None and o.latency.p50 > 0:
            rel = 100 * (r.latency.p50 / o.latency.p50 - 1)
            parts.append(f"p50 {o.latency.p50:.3f} -> {r.latency.p50:.3f} ms ({rel:+.1f} %)")
        if o.preprocess != r.preprocess:
            parts.append("preprocessing changed")
        out.append(f"~ {r.id}: " + ("; ".join(parts) if parts else "unchanged"))
    out += [f"- {rid}: removed" for rid in old_rows]
    return out
