"""Latency gated as a ratio within one run: a derived row's latency over its FP32 row's, same run.

``edgekit gate --max-ratio-increase PCT``. For every results row of a
reduced precision (INT8, FP16, BF16, ...) with an FP32 row of the same model
on the same ``runtime:device`` in the *same* run, the ratio
``r = latency(row) / latency(fp32 row)`` is compared with the same ratio in
the baseline. The machine's speed cancels in each ratio, so a CI runner that
is faster or slower than the one that made the baseline does not move it; a
change that makes INT8 slower relative to FP32 (a lost fused kernel, a
de-quantized layer, a Q/DQ placement that falls back to float) does.

``rel = r_now / r_baseline - 1``; the recorded noise is
``k * sqrt(s1^2 + s2^2 + s3^2 + s4^2)`` over the four runs' spreads
(:func:`edgekit.gate.checks.spread`, the same robust spread as the absolute
latency check). **fail** when ``rel - noise > budget``; **within-noise**
when ``rel > budget`` but not by more than the noise; **pass** otherwise.
Not compared (skipped, with the reason) when a side lacks latency, when the
CPU architecture differs (an INT8 speed-up depends on the instruction set),
or when the thread counts differ. Torch-free.
"""

from __future__ import annotations

import math
from typing import Any

from edgekit.bench.results import BenchResult
from edgekit.gate.baseline import BaselineRow
from edgekit.gate.checks import Check, GateOptions, spread

REFERENCE_PRECISION = "fp32"


def fp32_row(rows: list[Any], row: Any) -> Any | None:
    """The FP32 row of ``row``'s model on the same runtime:device among ``rows`` that ran, or None."""
    if row.precision == REFERENCE_PRECISION:
        return None
    for r in rows:
        if (r.model, r.runtime, r.device, r.precision) == (row.model, row.runtime, row.device, REFERENCE_PRECISION) \
                and r.status == "ok":
            return r
    return None


def _lat(row: Any) -> Any | None:
    if isinstance(row, BaselineRow):
        return row.latency
    return row.latency.stats if row.latency is not None else None


def _threads(row: Any) -> int | None:
    if isinstance(row, BaselineRow):
        return row.threads
    return row.runner.threads if row.runner is not None else None


def ratio_check(rid: str, base: BaselineRow, base_ref: BaselineRow, cur: BenchResult, cur_ref: BenchResult,
                options: GateOptions, *, arch_differs: str | None = None) -> Check:
    """The latency ratio (row / its FP32 row of the same run) now against the baseline's."""
    m = options.metric
    name = f"latency-ratio.{m}"
    got = [_lat(x) for x in (base, base_ref, cur, cur_ref)]
    lats: list[Any] = [s for s in got if s is not None and float(getattr(s, m)) > 0]
    if len(lats) != 4:
        return Check(row=rid, name=name, outcome="skipped", passed=True,
                     message="latency ratio not compared: a row or its FP32 row has no latency")
    lb, lbr, lc, lcr = lats
    rb = float(getattr(lb, m)) / float(getattr(lbr, m))
    rc = float(getattr(lc, m)) / float(getattr(lcr, m))
    rel = rc / rb - 1
    noise = options.noise_k * math.sqrt(math.fsum(spread(s) ** 2 for s in lats))
    budget = options.max_ratio_increase_pct
    details: dict[str, Any] = {"metric": m, "baseline_ratio": rb, "current_ratio": rc, "increase_pct": 100 * rel,
                               "noise_pct": 100 * noise, "noise_k": options.noise_k, "budget_pct": budget,
                               "baseline_reference": base_ref.id, "current_reference": cur_ref.key}
    what = f"{m} ratio to FP32 of the same run {rb:.3f} -> {rc:.3f} ({100 * rel:+.1f} %)"
    kw: dict[str, Any] = {"row": rid, "name": name, "baseline": rb, "current": rc, "change": 100 * rel, "unit": "%",
                          "details": details}
    threads = {t for t in (_threads(x) for x in (base, base_ref, cur, cur_ref)) if t is not None}
    why = arch_differs or (f"thread counts differ ({sorted(threads)})" if len(threads) > 1 else None)
    if why:
        return Check(outcome="skipped", passed=True, message=f"{what}; not compared: {why}", **kw)
    noise_txt = f"recorded noise {100 * noise:.1f} % (k = {options.noise_k:g} x the four runs' spreads)"
    if budget is None:
        return Check(outcome="info", passed=True, message=f"{what}; not gated (no --max-ratio-increase); {noise_txt}",
                     **kw)
    b = budget / 100
    if rel <= b:
        return Check(outcome="pass", passed=True, message=f"{what}: within the +{budget:g} % budget ({noise_txt})",
                     **kw)
    if rel - noise <= b:
        return Check(outcome="within-noise", passed=True,
                     message=f"{what} exceeds the +{budget:g} % budget but not by more than the {noise_txt}", **kw)
    return Check(outcome="fail", passed=False,
                 message=f"{what} exceeds the +{budget:g} % budget by more than the {noise_txt}", **kw)
