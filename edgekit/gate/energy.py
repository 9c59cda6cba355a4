"""The energy gate: energy per inference of a results row against its baseline row.

With ``b = max_energy_increase_pct / 100``, ``rel = current / baseline - 1``
and the noise taken as the two rows' relative 95 % CI half-widths combined
(``hypot``): pass when ``rel <= b``; within the noise when ``rel - noise <=
b``; fail otherwise. Rows whose power was measured with another source or
scope are not compared (a CPU-package number is not a module-input number).
A baseline row with energy and a results row without it is skipped with the
reason the results give (never a pass on a made-up number).
"""

from __future__ import annotations

import math
from typing import Any

from edgekit.bench.results import BenchResult
from edgekit.gate.checks import Check


def _rel_half(v: Any, lo: Any, hi: Any) -> float:
    if v is None or lo is None or hi is None or not v > 0:
        return 0.0
    return (float(hi) - float(lo)) / 2 / float(v)


def energy_check(row: str, base: dict[str, Any], cur: BenchResult, budget_pct: float | None) -> Check | None:
    b = base.get("energy_mj")
    if b is None:
        return None
    name = "energy"
    t = cur.telemetry
    if t is None or t.energy_mj is None:
        why = "; ".join(t.power_unavailable) if t is not None and t.power_unavailable else "not measured"
        return Check(row=row, name=name, outcome="skipped", passed=True,
                     message=f"the baseline has {b:.4g} mJ/inference; the results have no energy ({why})")
    if (base.get("power_scope"), base.get("power_source")) != (t.scope, t.source):
        return Check(row=row, name=name, outcome="skipped", passed=True, baseline=b, current=t.energy_mj,
                     message=f"energy measured over {t.scope} ({t.source}) now, over {base.get('power_scope')} "
                             f"({base.get('power_source')}) in the baseline: not compared")
    c = t.energy_mj
    rel = c / b - 1 if b > 0 else math.inf
    ci = t.energy_ci_mj or (None, None)
    noise = math.hypot(_rel_half(b, base.get("energy_ci_low_mj"), base.get("energy_ci_high_mj")),
                       _rel_half(c, ci[0], ci[1]))
    what = f"energy {b:.4g} -> {c:.4g} mJ/inference ({100 * rel:+.1f} %, noise {100 * noise:.1f} %)"
    kw: dict[str, Any] = {"row": row, "name": name, "baseline": b, "current": c, "change": 100 * rel, "unit": "%",
                          "details": {"increase_pct": 100 * rel, "noise_pct": 100 * noise, "budget_pct": budget_pct,
                                      "scope": t.scope, "source": t.source}}
    if budget_pct is None:
        return Check(outcome="info", passed=True, message=f"{what}; not gated (no --max-energy-increase)", **kw)
    if rel <= budget_pct / 100:
        return Check(outcome="pass", passed=True, message=f"{what}: within the +{budget_pct:g} % budget", **kw)
    if rel - noise <= budget_pct / 100:
        return Check(outcome="within-noise", passed=True,
                     message=f"{what} exceeds the +{budget_pct:g} % budget but is inside the noise", **kw)
    return Check(outcome="fail", passed=False,
                 message=f"{what} exceeds the +{budget_pct:g} % budget by more than the noise", **kw)
