"""``edgekit gate``: fail a CI job when accuracy or latency regressed against a committed baseline (torch-free).

Exit status: 0 every check passed (or the baseline was updated), 1 a regression,
2 bad input (a missing, corrupt or truncated results/baseline file, a baseline
schema newer than this edgekit, or a baseline for another model, preprocessing
or dataset).
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

import click

from edgekit.cli import ui
from edgekit.core.errors import CheckFailed, EdgekitError, OutputError, UsageError


def _percent(value: str | None, flag: str, *, fraction: bool = False) -> float | None:
    """'10', '10%' -> 10.0 (or 0.10 with ``fraction``: '0.97', '97%' -> 0.97)."""
    if value is None:
        return None
    text = value.strip()
    pct = text.endswith("%")
    try:
        v = float(text.rstrip("%").strip())
    except ValueError:
        raise UsageError(f"{flag} takes a number, got {value!r}",
                         hint="e.g. 0.97 or 97%" if fraction else "e.g. 10 or 10%") from None
    if fraction and pct:
        v /= 100
    elif fraction and v > 1:
        raise UsageError(f"{flag} is a fraction, got {value!r}", hint=f"write {v / 100:g} or {v:g}%")
    return v


def _check_output(path: Path | None, flag: str) -> None:
    if path is None:
        return
    if path.is_dir():
        raise OutputError(f"{flag} {path} is a directory", hint="give a file name")
    probe = path.resolve().parent
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK):
        raise OutputError(f"cannot write {flag} {path} ({probe} is not writable)", hint=f"choose another {flag}")


def _step_summary(summary: Path | None) -> Path | None:
    """--summary, else $GITHUB_STEP_SUMMARY when GitHub Actions sets it."""
    if summary is not None:
        return summary
    env = os.environ.get("GITHUB_STEP_SUMMARY")
    return Path(env) if env else None


@click.command("gate")
@click.argument("results", type=click.Path(path_type=Path))
@click.option("--baseline", "-b", "baseline_path", required=True, type=click.Path(path_type=Path),
              help="The baseline JSON (made with --update-baseline, committed in the repository).")
@click.option("--max-top1-drop", default=None, help="Accuracy budget: top-1 drop in absolute points (e.g. 1).")
@click.option("--max-rel-drop", default=None, help="Accuracy budget: top-1 drop in %% of the baseline top-1 "
                                                   "(default 1, MLPerf's 99 %% of the reference).")
@click.option("--min-agreement", default=None, help="Minimum top-1 agreement with the baseline's predictions "
                                                    "(0.97 or 97%%). Default: reported, not gated.")
@click.option("--max-latency-increase", default=None, help="Latency budget in %% (e.g. 10); an increase inside the "
                                                           "run-to-run noise passes. Default: reported, not gated.")
@click.option("--max-ratio-increase", default=None,
              help="Budget in %% for each INT8/FP16/BF16 row's latency divided by its FP32 row's in the same run, "
                   "against the same ratio in the baseline (the machine's speed cancels). Default: not gated.")
@click.option("--metric", type=click.Choice(["latency.p50", "latency.p90"]), default="latency.p50",
              show_default=True, help="Latency percentile the budget applies to.")
@click.option("--max-energy-increase", default=None, help="Energy-per-inference budget in %% (e.g. 10); rows whose "
              "power was measured with another source or scope are not compared.")
@click.option("--noise-k", type=float, default=1.0, show_default=True,
              help="Noise allowance: k x the combined latency spread (CV, robust to outliers) of the two runs.")
@click.option("--inconclusive", type=click.Choice(["estimate", "pass", "fail"]), default="estimate",
              show_default=True, help="What an accuracy verdict the eval set is too small to resolve counts as "
                                      "(always warned): estimate judges the observed drop against the budget.")
@click.option("--against", default=None, metavar="PRECISION",
              help="Compare every results row with the baseline row of the same model at PRECISION (e.g. fp32: "
                   "an INT8 candidate against the FP32 baseline; same runtime:device when the baseline has it) "
                   "instead of the row with the same id.")
@click.option("--junit", "junit_path", type=click.Path(path_type=Path), default=None,
              help="Write JUnit XML here (one testcase per check).")
@click.option("--summary", "summary_path", type=click.Path(path_type=Path), default=None,
              help="Write a Markdown summary here. Default: appended to $GITHUB_STEP_SUMMARY when that is set.")
@click.option("--update-baseline", is_flag=True, help="Write RESULTS as the new baseline (atomically) instead of "
                                                      "gating, and print what changed.")
@click.option("--json", "as_json", is_flag=True, help="Print the gate result as JSON.")
def gate_cmd(results: Path, baseline_path: Path, max_top1_drop: str | None, max_rel_drop: str | None,
             min_agreement: str | None, max_latency_increase: str | None, max_ratio_increase: str | None,
             metric: str, max_energy_increase: str | None, noise_k: float,
             inconclusive: str, against: str | None, junit_path: Path | None, summary_path: Path | None,
             update_baseline: bool, as_json: bool) -> None:
    """Compare bench RESULTS with a BASELINE: paired accuracy, agreement, latency against noise.

    Exit status: 0 pass, 1 regression, 2 bad or incompatible input.
    """
    from edgekit.gate import GateOptions

    options = GateOptions(
        max_top1_drop_pts=_percent(max_top1_drop, "--max-top1-drop"),
        max_rel_drop_pct=_percent(max_rel_drop, "--max-rel-drop"),
        min_agreement=_percent(min_agreement, "--min-agreement", fraction=True),
        max_latency_increase_pct=_percent(max_latency_increase, "--max-latency-increase"),
        max_ratio_increase_pct=_percent(max_ratio_increase, "--max-ratio-increase"),
        latency_metric=metric, noise_k=noise_k, inconclusive=inconclusive, against=against,
        max_energy_increase_pct=_percent(max_energy_increase, "--max-energy-increase")).validate()
    if update_baseline and against is not None:
        raise UsageError("--against compares with a baseline; it does not apply to --update-baseline")
    if update_baseline:
        _update(results, baseline_path, as_json)
        return
    summary = _step_summary(summary_path)
    _check_output(junit_path, "--junit")
    _check_output(summary_path, "--summary")
    _gate(results, baseline_path, options, junit_path, summary, as_json)


def _gate(results: Path, baseline_path: Path, options: Any, junit_path: Path | None, summary: Path | None,
          as_json: bool) -> None:
    from edgekit.bench.results import load_report
    from edgekit.core.atomic import atomic_write_text
    from edgekit.gate import load_baseline, run_gate
    from edgekit.gate.output import error_summary, junit_error, junit_xml, markdown_summary, write_summary

    try:
        report = load_report(results)
        baseline = load_baseline(baseline_path)
        result = run_gate(report, baseline, options=options, results_origin=str(results),
                          baseline_origin=str(baseline_path))
    except EdgekitError as e:  # the CI still gets a report that says why the gate did not run
        if junit_path is not None:
            atomic_write_text(junit_path, junit_error(e.one_line()))
        if summary is not None:
            write_summary(error_summary(e.one_line()), summary)
        raise
    # --against compares with the baseline's rows of another precision: accepting would overwrite those rows
    # (the FP32 reference) with these results, so that advice is never given there
    update = None if options.against else " ".join(
        shlex.quote(s) for s in ("edgekit", "gate", str(results), "--baseline", str(baseline_path),
                                 "--update-baseline"))
    if junit_path is not None:
        atomic_write_text(junit_path, junit_xml(result))
    if summary is not None:
        write_summary(markdown_summary(result, update_command=update), summary)
    if as_json:
        ui.print_json(result.to_json())
    else:
        _print(result)
        for path in (junit_path, summary):
            if path is not None:
                ui.stdout.print(f"wrote {path}", markup=False, highlight=False)
    if not result.passed:
        fails = result.failures
        raise CheckFailed(f"gate failed: {len(fails)} of {len(result.checks)} checks: "
                          + "; ".join(f"{c.row} {c.name}: {c.message}" for c in fails[:2])
                          + (" ..." if len(fails) > 2 else ""),
                          hint=f"if the change is intended, accept it: {update}" if update else
                          f"the baseline's {options.against} rows are the reference: fix the candidate, or "
                          "loosen the budget (--max-top1-drop, --max-latency-increase) if the loss is acceptable")


def _print(result: Any) -> None:
    from rich.table import Table

    from edgekit.gate.output import ICONS, _change, _value

    t = Table(title=f"edgekit gate: {result.verdict}", title_justify="left")
    for col in ("row", "check", "baseline", "current", "change", "verdict"):
        t.add_column(col, overflow="fold")
    for c in result.checks:
        if c.name == "status" and c.outcome == "pass":
            continue
        verdict = ICONS.get(c.outcome, c.outcome) if c.passed else f"❌ {c.outcome}"
        t.add_row(c.row, c.name, _value(c, c.baseline), _value(c, c.current), _change(c), verdict)
    console = ui.table_console()
    console.print(t)
    # a paragraph only for what failed or is inconclusive, once; rows whose predictions did not change get one line
    unchanged = [c for c in result.checks if c.name == "accuracy" and c.outcome == "inconclusive" and c.passed
                 and c.details.get("lost") == 0 and c.details.get("gained") == 0]
    said = {c.row for c in result.checks if c.name == "accuracy" and c.outcome == "inconclusive"}
    for c in result.checks:
        if c in unchanged or c.outcome in ("pass", "info", "improved", "within-noise", "skipped") and c.passed:
            continue
        console.print(f"{c.row} {c.name}: {c.message}", markup=False, highlight=False)
    if unchanged:
        n = sorted({c.details.get("n") for c in unchanged})
        console.print(f"{len(unchanged)} row(s) gave the same top-1 correctness as the baseline on every image "
                      f"({'/'.join(map(str, n))} images): drop 0, counted as a pass; the set is too small to bound "
                      "the drop below the budget (more images, or --inconclusive to choose)", markup=False,
                      highlight=False)
    for w in result.warnings:
        if not any(w.startswith(f"{row}: accuracy inconclusive") for row in said):
            console.print(f"warning: {w}", markup=False, highlight=False)
    n = len(result.checks)
    console.print(f"gate {'passed' if result.passed else 'FAILED'}: {n - len(result.failures)} of {n} checks passed",
                  markup=False, highlight=False)


def _update(results: Path, baseline_path: Path, as_json: bool) -> None:
    from edgekit.bench.results import load_report
    from edgekit.gate import BaselineError, baseline_from_report, load_baseline, write_baseline
    from edgekit.gate.baseline import BASELINE_SCHEMA, BASELINE_VERSION
    from edgekit.gate.output import baseline_changes

    report = load_report(results)
    new = baseline_from_report(report, source=str(results))
    old, note = None, None
    if baseline_path.exists():
        try:
            old = load_baseline(baseline_path)
        except BaselineError as e:
            if "newer than this edgekit" in e.message:
                raise UsageError(f"{baseline_path} is a newer baseline than this edgekit writes "
                                 f"({BASELINE_SCHEMA} v{BASELINE_VERSION}); refusing to downgrade it",
                                 hint="upgrade edgekit") from None
            note = f"replacing an unreadable baseline: {e.one_line()}"
    write_baseline(new, baseline_path)
    lines = baseline_changes(old, new)
    failed = [r.key for r in report.failed]
    if as_json:
        ui.print_json({"baseline": str(baseline_path), "rows": len(new.rows), "changes": lines, "note": note,
                       "failed_rows": failed})
        return
    out = ui.stdout
    if note:
        out.print(f"warning: {note}", markup=False, highlight=False)
    for line in lines:
        out.print(line, markup=False, highlight=False)
    if failed:
        out.print(f"warning: {len(failed)} row(s) failed in these results and are recorded as failed: "
                  + ", ".join(failed), markup=False, highlight=False)
    out.print(f"wrote baseline {baseline_path} ({len(new.rows)} rows); commit it", markup=False, highlight=False)
