"""Match a bench report's rows to a baseline's, refuse what cannot be compared, and run the checks.

Rows are matched by id (``model/runtime:device/precision``, see
:func:`~edgekit.gate.baseline.row_ids`). Refused with an
:class:`IncompatibleBaseline` (exit 2), with the reason:

* no row of the results is of a model the baseline knows (a baseline for a
  different model);
* a matched row whose model has other classes (count or names), or other
  preprocessing, than the baseline row's;
* a matched row whose eval images differ (:class:`DatasetFingerprint`):
  accuracy is compared image by image, so the image sets must be the same;
* a matched row the baseline has accuracy for, measured now without it.

Otherwise every row becomes a :class:`RowComparison` with its checks
(:mod:`edgekit.gate.checks`). A baseline row that the results lack, or that
ran before and does not run now, is a failed check (a missing row that did
not run in the baseline either is only reported); a results row the baseline
lacks is reported as new.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgekit.bench.paired import PairedComparison
from edgekit.bench.results import BenchReport, BenchResult
from edgekit.core.errors import UsageError
from edgekit.gate.baseline import (
    Baseline,
    BaselineRow,
    baseline_from_report,
    dataset_fingerprint,
    environment_summary,
    row_ids,
)
from edgekit.gate.checks import (
    Check,
    ClassChange,
    GateOptions,
    accuracy_check,
    agreement_check,
    class_changes,
    latency_check,
)
from edgekit.gate.energy import energy_check


class IncompatibleBaseline(UsageError):
    """The baseline cannot be compared with these results (another model, preprocessing or dataset): exit 2."""


@dataclass(frozen=True, eq=False)
class RowComparison:
    row: str
    state: str  # compared, missing (baseline only), new (results only)
    checks: tuple[Check, ...]
    class_changes: tuple[ClassChange, ...] = ()
    paired: PairedComparison | None = None

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {"row": self.row, "state": self.state, "passed": self.passed,
                "checks": [c.to_json() for c in self.checks],
                "class_changes": [c.to_json() for c in self.class_changes],
                "paired": self.paired.to_json() if self.paired is not None else None}


@dataclass(frozen=True, eq=False)
class GateResult:
    """Every check of one gate run; ``bool(result)`` is True when the gate passes."""

    rows: tuple[RowComparison, ...]
    options: GateOptions
    warnings: tuple[str, ...] = ()
    results_origin: str = ""
    baseline_origin: str = ""
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def checks(self) -> list[Check]:
        return [c for r in self.rows for c in r.checks]

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    @property
    def passed(self) -> bool:
        return not self.failures

    def __bool__(self) -> bool:
        return self.passed

    def outcomes(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.checks:
            out[c.outcome] = out.get(c.outcome, 0) + 1
        return out

    @property
    def verdict(self) -> str:
        return "pass" if self.passed else "fail"

    def to_json(self) -> dict[str, Any]:
        return {"schema": "edgekit.gate", "schema_version": 1, "verdict": self.verdict, "passed": self.passed,
                "outcomes": self.outcomes(), "options": dict(self.options.__dict__),
                "results": self.results_origin, "baseline": self.baseline_origin, "context": dict(self.context),
                "warnings": list(self.warnings), "rows": [r.to_json() for r in self.rows]}


def _preprocess_diff(a: dict[str, Any] | None, b: dict[str, Any] | None) -> str | None:
    if a is None or b is None or a == b:
        return None
    keys = [k for k in dict.fromkeys([*a, *b]) if a.get(k) != b.get(k)]
    return ", ".join(f"{k} {a.get(k)!r} -> {b.get(k)!r}" for k in keys)


def _incompatibility(rid: str, base: BaselineRow, cur: BenchResult, report: BenchReport) -> str | None:
    art = next((a for a in report.artifacts if a.name == cur.artifact), None)
    b_classes = base.artifact.get("num_classes")
    if art is not None and b_classes is not None and art.num_classes != b_classes:
        return (f"{rid}: the baseline model has {b_classes} classes, the results' {art.num_classes}: a baseline for a "
                "different model")
    b_names = base.artifact.get("class_names")
    c_names = cur.accuracy.class_names if cur.accuracy is not None else None
    if b_names and c_names and tuple(b_names) != tuple(c_names):
        if len(b_names) == len(c_names):
            i = next(i for i, (x, y) in enumerate(zip(b_names, c_names)) if x != y)
            where = f" (class {i}: {b_names[i]!r} vs {c_names[i]!r})"
        else:
            where = f" ({len(b_names)} vs {len(c_names)} names)"
        return f"{rid}: the class names differ from the baseline's{where}: a baseline for a different model"
    pre = _preprocess_diff(base.preprocess, art.preprocess if art is not None else None)
    if pre:
        return (f"{rid}: the preprocessing differs from the baseline's ({pre}); accuracy measured with other "
                "preprocessing is not comparable")
    if base.accuracy is not None and cur.ok:
        if cur.accuracy is None:
            why = f" ({cur.accuracy_skipped})" if cur.accuracy_skipped else ""
            return f"{rid}: the results have no accuracy{why} but the baseline has"
        fp = dataset_fingerprint(cur, report)
        if fp is not None:
            diff = base.accuracy.dataset.mismatch(fp)
            if diff:
                return (f"{rid}: the baseline was measured on a different dataset ({diff}; baseline "
                        f"{base.accuracy.dataset.describe()}, results {fp.describe()}); paired accuracy needs the same "
                        "images in the same order")
    return None


def _env_difference(baseline: Baseline, report: BenchReport) -> str | None:
    b, c = baseline.environment, environment_summary(report)
    if not b or not c:
        return None
    for k in ("cpu_model", "board", "arch"):
        if b.get(k) and c.get(k) and b[k] != c[k]:
            return f"measured on different hardware ({k} {b[k]!r} in the baseline, {c[k]!r} now)"
    return None


def run_gate(report: BenchReport, baseline: Baseline, *, options: GateOptions | None = None,
             results_origin: str = "", baseline_origin: str = "") -> GateResult:
    """Compare ``report`` with ``baseline``; raises :class:`IncompatibleBaseline` when they cannot be compared."""
    opts = (options or GateOptions()).validate()
    current = row_ids(report)
    if not set(baseline.models) & {r.model for r in report.results}:
        raise IncompatibleBaseline(
            f"the baseline is for {', '.join(baseline.models) or 'no model'}; the results are for "
            f"{', '.join(dict.fromkeys(r.model for r in report.results)) or 'no model'}: a baseline for a different "
            "model", hint="gate against this model's baseline, or make one with --update-baseline")
    pairs = (_reference_pairs(baseline, current, opts.against) if opts.against is not None
             else [(b, b.id, current[b.id]) for b in baseline.rows if b.id in current])
    problems = [p for b, rid, cur in pairs if (p := _incompatibility(rid, b, cur, report)) is not None]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise IncompatibleBaseline(problems[0] + more,
                                   hint="bench with the baseline's model, preprocessing, --data, --eval-size and "
                                        "--seed, or accept the new setup with --update-baseline")
    hw = _env_difference(baseline, report)
    warnings: list[str] = [f"latency not compared: {hw}"] if hw else []
    rows: list[RowComparison] = []
    if opts.against is not None:
        rows = _against(baseline, current, opts, hw, warnings)
        return GateResult(rows=tuple(rows), options=opts, warnings=tuple(dict.fromkeys(warnings)),
                          results_origin=results_origin, baseline_origin=baseline_origin,
                          context={"target": report.target_name, "results_created": report.created,
                                   "baseline_created": baseline.created, "baseline_source": dict(baseline.source),
                                   "against": opts.against})
    for b in baseline.rows:
        cur = current.get(b.id)
        if cur is None:
            ran = b.status == "ok"  # a row that never ran (skipped, unsupported) may come and go
            rows.append(RowComparison(row=b.id, state="missing", checks=(Check(
                row=b.id, name="present", outcome="fail" if ran else "info", passed=not ran,
                message=f"the baseline has {b.id} ({b.status}) but the results do not" + (
                    ": bench the same artifacts, runtimes and precisions, or --update-baseline to drop it" if ran
                    else "")),)))
            continue
        rows.append(_with_ratio(_compare_row(b, cur, opts, hw, warnings), b, cur, baseline, current, opts, report))
    for rid, cur in current.items():
        if all(b.id != rid for b in baseline.rows):
            rows.append(RowComparison(row=rid, state="new", checks=(Check(
                row=rid, name="present", outcome="info", passed=True,
                message=f"{rid} ({cur.status}) is new: not in the baseline, not gated"),)))
    return GateResult(rows=tuple(rows), options=opts, warnings=tuple(dict.fromkeys(warnings)),
                      results_origin=results_origin, baseline_origin=baseline_origin,
                      context={"target": report.target_name, "results_created": report.created,
                               "baseline_created": baseline.created, "baseline_source": dict(baseline.source)})


def reference_row(baseline: Baseline, cur: BenchResult, precision: str) -> BaselineRow | None:
    """The baseline row ``cur`` is compared with under ``--against precision``: same model and precision,
    the same runtime:device when the baseline has it (else the first such row that ran)."""
    rows = [b for b in baseline.rows if b.model == cur.model and b.precision == precision]
    same = [b for b in rows if b.runtime == cur.runtime and b.device == cur.device]
    ran = [b for b in rows if b.status == "ok"]
    return (same or ran or rows or [None])[0]


def _reference_pairs(baseline: Baseline, current: dict[str, BenchResult],
                     precision: str) -> list[tuple[BaselineRow, str, BenchResult]]:
    out = []
    for rid, cur in current.items():
        b = reference_row(baseline, cur, precision)
        if b is not None:
            out.append((b, f"{rid} vs {b.id}", cur))
    return out


def _against(baseline: Baseline, current: dict[str, BenchResult], opts: GateOptions, hw: str | None,
             warnings: list[str]) -> list[RowComparison]:
    """Every results row against the baseline's ``opts.against`` row of its model (missing rows are not failures)."""
    precision = str(opts.against)
    rows = []
    for rid, cur in current.items():
        b = reference_row(baseline, cur, precision)
        if b is None:
            rows.append(RowComparison(row=rid, state="new", checks=(Check(
                row=rid, name="present", outcome="info", passed=True,
                message=f"the baseline has no {precision} row of {cur.model}: not gated"),)))
            continue
        rows.append(_compare_row(b, cur, opts, hw, warnings, label=f"{rid} vs {b.id}"))
    return rows


def _compare_row(b: BaselineRow, cur: BenchResult, opts: GateOptions, hw: str | None,
                 warnings: list[str], *, label: str | None = None) -> RowComparison:
    rid = label or b.id
    if b.status != "ok":
        verb = "runs now" if cur.ok else f"is {cur.status}"
        return RowComparison(row=rid, state="compared", checks=(Check(
            row=rid, name="status", outcome="info", passed=True,
            message=f"{rid} was {b.status} in the baseline ({b.reason or 'no reason given'}) and {verb}"),))
    if not cur.ok and hw is not None and cur.status in ("unsupported", "skipped"):
        return RowComparison(row=rid, state="compared", checks=(Check(
            row=rid, name="status", outcome="skipped", passed=True,
            message=f"{rid} ran in the baseline but is {cur.status} on this machine "
                    f"({cur.reason or 'no reason given'}); the baseline was {hw}: not compared"),))
    if not cur.ok and opts.against is not None and cur.status != "error":
        return RowComparison(row=rid, state="compared", checks=(Check(
            row=rid, name="status", outcome="info", passed=True,
            message=f"{rid}: the results row is {cur.status} ({cur.reason or 'no reason given'}): "
                    "nothing to compare"),))
    if not cur.ok:
        return RowComparison(row=rid, state="compared", checks=(Check(
            row=rid, name="status", outcome="fail", passed=False,
            message=f"{rid} ran in the baseline but is {cur.status} now: {cur.reason or 'no reason given'}"),))
    checks = [Check(row=rid, name="status", outcome="pass", passed=True, message=f"{rid} runs")]
    if b.executed_precision and cur.executed_precision and b.executed_precision != cur.executed_precision \
            and opts.against is None:
        warnings.append(f"{rid}: the runtime executed {cur.executed_precision} now, {b.executed_precision} in the "
                        "baseline")
    paired, changes = None, ()
    if b.accuracy is not None and cur.accuracy is not None:
        bp, lab = b.accuracy.predictions, b.accuracy.labels
        cp = np.asarray(cur.accuracy.predictions, dtype=np.int64)
        acc, paired = accuracy_check(rid, bp, cp, lab, opts)
        checks.append(acc)
        if acc.outcome == "inconclusive":
            warnings.append(f"{rid}: accuracy inconclusive, {'passed' if acc.passed else 'failed'} by "
                            f"--inconclusive {opts.inconclusive}: {paired.reason}")
        checks.append(agreement_check(rid, bp, cp, opts))
        changes = tuple(class_changes(bp, cp, lab, class_names=b.accuracy.class_names, alpha=1 - opts.level))
    elif cur.accuracy is not None:
        checks.append(Check(row=rid, name="accuracy", outcome="skipped", passed=True,
                            message="the baseline has no accuracy for this row; --update-baseline to start gating it"))
    if b.latency is not None and cur.latency is not None:
        why = hw
        if why is None and b.threads is not None and cur.runner is not None and cur.runner.threads is not None \
                and b.threads != cur.runner.threads:
            why = f"measured with {cur.runner.threads} threads, the baseline with {b.threads}"
        checks.append(latency_check(rid, b.latency, cur.latency.stats, opts, not_comparable=why))
    elif b.latency is not None:
        reason = cur.latency_skipped or "not measured"
        checks.append(Check(row=rid, name=f"latency.{opts.metric}", outcome="skipped", passed=True,
                            message=f"no latency in the results ({reason})"))
    energy = energy_check(rid, b.metrics, cur, opts.max_energy_increase_pct)
    if energy is not None:
        checks.append(energy)
    return RowComparison(row=rid, state="compared", checks=tuple(checks), class_changes=changes, paired=paired)


def _with_ratio(rc: RowComparison, b: BaselineRow, cur: BenchResult, baseline: Baseline,
                current: dict[str, BenchResult], opts: GateOptions, report: BenchReport) -> RowComparison:
    """Add the same-run latency-ratio check (edgekit.gate.ratio) to a compared reduced-precision row."""
    from edgekit.gate.ratio import fp32_row, ratio_check

    if opts.max_ratio_increase_pct is None or not cur.ok or b.status != "ok":
        return rc
    b_ref, c_ref = fp32_row(list(baseline.rows), b), fp32_row(list(current.values()), cur)
    if b_ref is None or c_ref is None:
        return rc
    ba = (baseline.environment or {}).get("arch")
    ca = (environment_summary(report) or {}).get("arch")
    arch = f"measured on {ca}, the baseline on {ba}" if ba and ca and ba != ca else None
    check = ratio_check(rc.row, b, b_ref, cur, c_ref, opts, arch_differs=arch)
    return RowComparison(row=rc.row, state=rc.state, checks=(*rc.checks, check), class_changes=rc.class_changes,
                         paired=rc.paired)


def gate_reports(report: BenchReport, baseline_report: BenchReport, *,
                 options: GateOptions | None = None) -> GateResult:
    """Gate ``report`` against a baseline made from ``baseline_report`` (convenience for tests and scripts)."""
    return run_gate(report, baseline_from_report(baseline_report), options=options)
