"""What to ship, per model x target, and why not the rest.

For every model of a bench report (one target), each row (artifact x runtime
x precision) is a *candidate*. The rules, in the order they are applied to a
candidate:

1. **unsupported**: the row did not run because the runtime, the target or the
   artifact cannot give it here (status ``unsupported`` or ``skipped``);
2. **invalid**: the row failed or its measurement cannot be trusted (status
   ``error`` or ``invalid``: a device lost, a timeout, a cancelled job), or it
   has no latency;
3. **throttled**: the device throttled during the window (status
   ``throttled``, telemetry's ``throttled`` flag with its reasons, or a warning
   that says so);
4. **unstable**: the latency window's CV is above the target's threshold;
5. **the FP32 baseline** is the fastest FP32 row left (by the verdict metric,
   p50 by default, p90 with ``metric="p90"``); another FP32 row is *slower than
   FP32*. When every FP32 row was unstable, the fastest of them is still the
   reference the others are compared with (its spread widens the noise they
   must beat) but cannot ship itself; with no FP32 row at all (or only failed,
   throttled ones) there is no verdict, and the note says why;
6. **accuracy** (every non-FP32 row): its paired top-1 drop against FP32 on the
   same images (:mod:`edgekit.bench.paired`) must have its upper 95 % bound
   within the budget (the budget the bench judged it by, or ``budget_pts``).
   A lower bound above it is **over the accuracy budget**; a CI that straddles
   it is **inconclusive**, with the number of images that would settle it; no
   paired accuracy at all is **inconclusive** too (nothing shows it is faithful);
7. **speed**: its metric must be below the FP32 baseline's (else **slower than
   FP32**) by more than the measured noise, the rule of ``edgekit gate``'s
   ``improved`` (:func:`edgekit.gate.checks.latency_check`: the change exceeds
   the two windows' combined spread and the order-statistic CIs do not
   overlap); a speed-up inside the noise is **not faster beyond the noise**.

The configuration to **ship** is the fastest candidate that passes 6 and 7;
when none does, it is the FP32 baseline. Every other eligible candidate is
**slower than the shipped one**. Energy per inference (mJ, telemetry's
``energy_mj``) is carried beside each candidate where the row measured it
(never required).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from edgekit.bench.paired import images_to_resolve
from edgekit.bench.results import BenchReport, BenchResult
from edgekit.core.errors import UsageError

METRICS = ("p50", "p90")
REFERENCE_PRECISION = "fp32"


class Outcome(StrEnum):
    """Why a candidate was shipped or lost (the value is what reports print)."""

    SHIP = "ship"
    BEATEN = "slower than the shipped one"
    SLOWER = "slower than FP32"
    WITHIN_NOISE = "not faster beyond the noise"
    OVER_BUDGET = "over the accuracy budget"
    INCONCLUSIVE = "inconclusive"
    UNSTABLE = "unstable"
    THROTTLED = "throttled"
    UNSUPPORTED = "unsupported"
    INVALID = "invalid"
    NO_REFERENCE = "no FP32 reference"


@dataclass(frozen=True)
class Candidate:
    """One configuration (a bench row) and how it fared."""

    key: str  # the bench row key
    artifact: str
    runtime: str  # runtime:device
    precision: str  # as asked (e.g. int8, bf16, int8+fp16)
    executed_precision: str | None
    outcome: Outcome
    reason: str
    latency_ms: float | None = None  # the verdict metric
    speedup: float | None = None  # FP32 baseline / this (>1 is faster)
    drop_pts: float | None = None
    drop_ci_pts: tuple[float, float] | None = None
    needed_images: int | None = None  # for an inconclusive accuracy: about how many images would settle it
    energy_mj: float | None = None  # per inference, where measured

    def to_json(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["outcome"] = str(self.outcome)
        d["drop_ci_pts"] = list(self.drop_ci_pts) if self.drop_ci_pts is not None else None
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Candidate:
        kw = {k: d.get(k) for k in cls.__dataclass_fields__}
        kw["outcome"] = Outcome(d["outcome"])
        kw["drop_ci_pts"] = tuple(d["drop_ci_pts"]) if d.get("drop_ci_pts") is not None else None
        return cls(**kw)


@dataclass(frozen=True)
class ModelVerdict:
    """The answer for one model on one target: the configuration to ship and every other one with its reason."""

    model: str
    target: str
    metric: str
    ship: Candidate | None  # None: no FP32 reference ran cleanly, nothing can be judged
    baseline: str | None  # the FP32 row every other one is compared with
    candidates: tuple[Candidate, ...] = field(default_factory=tuple)
    note: str = ""

    def __bool__(self) -> bool:
        return self.ship is not None

    @property
    def losers(self) -> list[Candidate]:
        return [c for c in self.candidates if c.outcome is not Outcome.SHIP]

    def summary(self) -> str:
        """One line a user can act on."""
        if self.ship is None:
            return f"{self.model} on {self.target}: no verdict: {self.note}"
        s = self.ship
        parts = [f"{self.metric} {s.latency_ms:.3f} ms" if s.latency_ms is not None else None,
                 f"{s.speedup:.2f}x FP32" if s.speedup is not None and s.key != self.baseline else "the FP32 baseline",
                 (f"drop {s.drop_pts:+.2f} pts [{s.drop_ci_pts[0]:+.2f}, {s.drop_ci_pts[1]:+.2f}]"
                  if s.drop_ci_pts is not None and s.drop_pts is not None else None),
                 f"{s.energy_mj:.3f} mJ/inference" if s.energy_mj is not None else None]
        ran = "" if s.executed_precision in (None, s.precision) else f" (ran {s.executed_precision})"
        return (f"{self.model} on {self.target}: ship {s.artifact} on {s.runtime} at {s.precision}{ran} ("
                + ", ".join(p for p in parts if p) + ")")

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "target": self.target, "metric": self.metric,
                "ship": self.ship.to_json() if self.ship is not None else None, "baseline": self.baseline,
                "summary": self.summary(), "note": self.note,
                "candidates": [c.to_json() for c in self.candidates]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ModelVerdict:
        return cls(model=d["model"], target=d["target"], metric=d["metric"],
                   ship=Candidate.from_json(d["ship"]) if d.get("ship") else None, baseline=d.get("baseline"),
                   candidates=tuple(Candidate.from_json(c) for c in d.get("candidates", ())),
                   note=str(d.get("note", "")))


# --- readers of optional fields (telemetry adds them; never required) -------------------------------------------------

def energy_mj(row: BenchResult) -> float | None:
    """Energy per inference in mJ where telemetry measured it (``row.telemetry.energy_mj``), else None."""
    tel = getattr(row, "telemetry", None)
    v = getattr(tel, "energy_mj", None) if tel is not None else None
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def executed_label(row: BenchResult) -> str | None:
    """What ran, as the runtime labels it: a TensorRT INT8 engine with FP16 float layers reports
    ``precision_label`` = ``int8+fp16`` in its details; otherwise the executed precision."""
    details = row.runner.details if row.runner is not None else {}
    label = details.get("precision_label") if isinstance(details, dict) else None
    return str(label) if label else row.executed_precision


def throttled(row: BenchResult) -> str | None:
    """Why the row's window was throttled (telemetry's flag and reasons, or the ``throttled`` status), or None."""
    tel = getattr(row, "telemetry", None)
    if row.status == "throttled" or (tel is not None and getattr(tel, "throttled", False)):
        reasons = tuple(getattr(tel, "throttle_reasons", ()) or ()) if tel is not None else ()
        return ("the device throttled during the window" + (f": {'; '.join(reasons)}" if reasons else "")
                + (f" ({row.reason})" if row.reason and row.status == "throttled" else ""))
    for w in row.warnings:
        if "throttl" in w.lower():
            return w
    return None


# --- the rules -----------------------------------------------------------------------------------------------------

def _metric(row: BenchResult, metric: str) -> float | None:
    return float(getattr(row.latency.stats, metric)) if row.latency is not None else None


def _is_fp32(row: BenchResult) -> bool:
    """Asked for FP32 and ran it (a row the runtime silently ran in bf16 is a candidate like any other)."""
    return row.precision == REFERENCE_PRECISION and row.executed_precision in (None, REFERENCE_PRECISION)


def _gate_row(row: BenchResult, metric: str) -> tuple[Outcome, str] | None:
    """Rules 1-4: the reason a row cannot compete at all, or None."""
    why = row.reason or "no reason given"
    if row.status in ("unsupported", "skipped"):
        return Outcome.UNSUPPORTED, why
    if row.status == "throttled":
        return Outcome.THROTTLED, throttled(row) or why
    if row.status != "ok":
        return Outcome.INVALID, f"{row.status}: {why}"
    if row.latency is None:
        return Outcome.INVALID, f"no latency measured ({row.latency_skipped or 'not measured'})"
    t = throttled(row)
    if t:
        return Outcome.THROTTLED, t
    if row.latency.stats.unstable:
        s = row.latency.stats
        return Outcome.UNSTABLE, (f"latency CV {s.cv:.1%} exceeds {s.cv_threshold:.1%}: lock clocks, pin threads, "
                                  "check thermals or run longer")
    return None


def _accuracy(row: BenchResult, budget_pts: float | None) -> tuple[Outcome | None, str, int | None]:
    """Rule 6: (None when within budget, else the losing outcome), the reason, images that would settle it."""
    p = row.paired
    if p is None:
        why = row.accuracy_skipped or ("no paired FP32 reference on the same images" if row.accuracy is not None
                                       else "accuracy not measured")
        return Outcome.INCONCLUSIVE, f"no paired top-1 drop vs FP32 ({why}): nothing shows it is faithful", None
    budget = p.budget_pts if budget_pts is None else float(budget_pts)
    lo, hi = p.ci_pts
    ci = f"top-1 drop {p.drop_pts:+.2f} pts, {p.level:.0%} CI [{lo:+.2f}, {hi:+.2f}]"
    if hi <= budget:
        return None, f"{ci} within the {budget:g} pt budget", None
    if lo > budget:
        return Outcome.OVER_BUDGET, f"{ci}: over the {budget:g} pt budget", None
    needed = images_to_resolve(p.reference_only, p.candidate_only, p.n, budget_pts=budget, level=p.level)
    if needed is not None:
        more = f"about {needed} paired images would settle it"
    elif p.reference_only + p.candidate_only == 0:
        more = "no image changed its top-1 correctness: the interval is this wide only because the set is small"
    else:
        more = "the observed drop already reaches the budget; more images would most likely confirm a failure"
    return Outcome.INCONCLUSIVE, f"{ci} straddles the {budget:g} pt budget on {p.n} images: {more}", needed


def _speed(row: BenchResult, base: BenchResult, metric: str) -> tuple[Outcome | None, str, float]:
    """Rule 7: (None when faster beyond the noise, else the losing outcome), the reason, the speed-up."""
    from edgekit.gate.checks import GateOptions, latency_check

    assert row.latency is not None and base.latency is not None  # rule 2 ran first
    b, c = _metric(base, metric), _metric(row, metric)
    assert b is not None and c is not None
    speedup = b / c if c > 0 else float("inf")
    what = f"{metric} {c:.3f} ms vs FP32 {b:.3f} ms ({base.runtime}:{base.device})"
    if c >= b:
        return Outcome.SLOWER, f"{what}: {c / b:.2f}x the FP32 latency", speedup
    check = latency_check(row.key, base.latency.stats, row.latency.stats,
                          GateOptions(max_latency_increase_pct=0.0, latency_metric=metric))
    noise = check.details.get("noise_pct")
    if check.outcome == "improved":
        return None, f"{what}: {speedup:.2f}x faster, beyond the noise ({noise:.1f} %)", speedup
    return Outcome.WITHIN_NOISE, (f"{what}: {speedup:.2f}x, but inside the measured noise ({noise:.1f} % combined "
                                  "spread, or the order-statistic CIs overlap)"), speedup


def _candidate(row: BenchResult, outcome: Outcome, reason: str, metric: str, *, base: BenchResult | None = None,
               speedup: float | None = None, needed: int | None = None) -> Candidate:
    p = row.paired
    if speedup is None and base is not None and row.latency is not None and base.latency is not None:
        b, c = _metric(base, metric), _metric(row, metric)
        speedup = b / c if b and c else None
    return Candidate(key=row.key, artifact=row.artifact, runtime=f"{row.runtime}:{row.device}",
                     precision=row.precision, executed_precision=executed_label(row), outcome=outcome,
                     reason=reason, latency_ms=_metric(row, metric), speedup=speedup,
                     drop_pts=p.drop_pts if p is not None else (0.0 if row.reference == row.key else None),
                     drop_ci_pts=tuple(p.ci_pts) if p is not None else None,  # type: ignore[arg-type]
                     needed_images=needed, energy_mj=energy_mj(row))


def judge_model(rows: Iterable[BenchResult], *, model: str, target: str, metric: str = "p50",
                budget_pts: float | None = None) -> ModelVerdict:
    """The verdict for one model's rows on one target (rules in the module doc)."""
    if metric not in METRICS:
        raise UsageError(f"unknown verdict metric {metric!r}", hint=f"use one of {', '.join(METRICS)}")
    rows = list(rows)
    out: dict[str, Candidate] = {}
    alive: list[BenchResult] = []
    for r in rows:
        gated = _gate_row(r, metric)
        if gated is not None:
            out[r.key] = _candidate(r, gated[0], gated[1], metric)
        else:
            alive.append(r)
    fp32 = sorted((r for r in alive if _is_fp32(r)), key=lambda r: _metric(r, metric) or 0.0)
    # an unstable FP32 window cannot ship, but still measures what the others are compared with (its spread
    # widens the noise the speed rule demands); a throttled or failed one measures nothing
    shaky = sorted((r for r in rows if _is_fp32(r) and out.get(r.key) is not None
                    and out[r.key].outcome is Outcome.UNSTABLE), key=lambda r: _metric(r, metric) or 0.0)
    if not fp32 and not shaky:
        note = ("no FP32 row ran cleanly (" + ", ".join(f"{c.key}: {c.outcome}" for c in out.values()
                                                         if c.precision == REFERENCE_PRECISION) + ")"
                if any(r.precision == REFERENCE_PRECISION for r in rows)
                else "the run has no FP32 row of this model: nothing to compare speed and accuracy with")
        for r in alive:
            out[r.key] = _candidate(r, Outcome.NO_REFERENCE, note, metric)
        return ModelVerdict(model, target, metric, None, None, tuple(out[r.key] for r in rows), note)
    base_unstable = not fp32
    base = fp32[0] if fp32 else shaky[0]
    eligible: list[tuple[BenchResult, str, float]] = []
    for r in alive:
        if r is base:
            continue
        if _is_fp32(r):
            out[r.key] = _candidate(r, Outcome.SLOWER, f"{metric} {_metric(r, metric):.3f} ms; the fastest FP32 "
                                                       f"configuration is {base.runtime}:{base.device} at "
                                                       f"{_metric(base, metric):.3f} ms", metric, base=base)
            continue
        acc, acc_reason, needed = _accuracy(r, budget_pts)
        spd, spd_reason, speedup = _speed(r, base, metric)
        if acc is not None:  # a row that loses on accuracy says so, with its speed beside it
            out[r.key] = _candidate(r, acc, f"{acc_reason}; {spd_reason}", metric, speedup=speedup, needed=needed)
        elif spd is not None:
            out[r.key] = _candidate(r, spd, f"{spd_reason}; {acc_reason}", metric, speedup=speedup)
        else:
            eligible.append((r, f"{spd_reason}; {acc_reason}", speedup))
    eligible.sort(key=lambda e: _metric(e[0], metric) or 0.0)
    if eligible:
        win, why, speedup = eligible[0]
        out[win.key] = _candidate(win, Outcome.SHIP, f"the fastest qualifying configuration: {why}", metric,
                                  speedup=speedup)
        for r, why, speedup in eligible[1:]:
            out[r.key] = _candidate(r, Outcome.BEATEN, f"{metric} {_metric(r, metric):.3f} ms vs "
                                                       f"{_metric(win, metric):.3f} ms shipped ({why})", metric,
                                    speedup=speedup)
        if not base_unstable:
            out[base.key] = _candidate(base, Outcome.BEATEN, f"the FP32 baseline; {win.key} is faster beyond the "
                                                             "noise and within the accuracy budget", metric, base=base)
    elif base_unstable:
        note = (f"nothing qualifies and the FP32 reference {base.key} was unstable ({out[base.key].reason}): "
                "rerun with a longer window (bench.min_duration) on a quiet machine")
        return ModelVerdict(model, target, metric, None, base.key, tuple(out[r.key] for r in rows), note)
    else:
        out[base.key] = _candidate(base, Outcome.SHIP, "the fastest FP32 configuration: no other configuration is "
                                                       "faster beyond the noise and within the accuracy budget",
                                   metric, base=base)
    ship = out[(eligible[0][0] if eligible else base).key]
    return ModelVerdict(model, target, metric, ship, base.key, tuple(out[r.key] for r in rows))


def judge_report(report: BenchReport, *, metric: str = "p50", budget_pts: float | None = None) -> list[ModelVerdict]:
    """One verdict per model of ``report`` (its target), models in report order."""
    models = list(dict.fromkeys(r.model for r in report.results))
    return [judge_model([r for r in report.results if r.model == m], model=m, target=report.target_name,
                        metric=metric, budget_pts=budget_pts) for m in models]


def report_verdicts(report: BenchReport, *, metric: str | None = None) -> list[ModelVerdict]:
    """The verdicts stored in the report (``extra.verdict``) when their metric matches, else computed."""
    stored = report.extra.get("verdict") if isinstance(report.extra, dict) else None
    if isinstance(stored, dict) and stored.get("models") is not None and (metric in (None, stored.get("metric"))):
        try:
            return [ModelVerdict.from_json(v) for v in stored["models"]]
        except (KeyError, TypeError, ValueError):
            pass  # an older or foreign layout: recompute from the rows
    return judge_report(report, metric=metric or "p50")


def verdict_json(verdicts: list[ModelVerdict], *, metric: str, budget_pts: float | None) -> dict[str, Any]:
    """What ``results.json`` carries under ``extra.verdict``."""
    return {"schema_version": 1, "metric": metric, "budget_pts": budget_pts,
            "rules": "docs/results-schema.md#verdict", "models": [v.to_json() for v in verdicts]}
