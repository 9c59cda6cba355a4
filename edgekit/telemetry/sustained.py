"""Sustained mode: latency, power and temperature per interval of one long window, and the
last-over-first ratio (how much a device slows down, or draws less, as it heats up).

Call end times are reconstructed from the latencies: their running sum is
stretched to the window's wall time (the per-call bookkeeping outside the timed
region is spread evenly), which places each call within a fraction of a
percent of the window.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from edgekit.telemetry.energy import window_energy


def default_interval_s(total_s: float) -> float:
    return float(min(60.0, max(10.0, total_s / 10.0)))


def interval_table(mon: Any, latencies_ns: Sequence[int], *, kind: str | None,
                   interval_s: float | None = None) -> tuple[list[dict[str, Any]], dict[str, float | None]]:
    t0, t1 = int(mon.t0_ns), int(mon.t1_ns)
    total_s = (t1 - t0) / 1e9
    step = interval_s or default_interval_s(total_s)
    lat = np.asarray(latencies_ns, dtype=np.float64)
    ends = np.cumsum(lat)
    ends = t0 + ends * ((t1 - t0) / ends[-1]) if ends[-1] > 0 else np.full(len(lat), float(t1))
    n_int = max(1, round(total_s / step))
    edges = np.linspace(t0, t1, n_int + 1)
    rows: list[dict[str, Any]] = []
    for i, (lo, hi) in enumerate(itertools.pairwise(edges)):
        sel = (ends > lo) & (ends <= hi) if i else (ends >= lo) & (ends <= hi)
        calls = lat[sel]
        temps = [s.max_temp_c for s in mon.snapshots if lo <= s.t_ns <= hi and s.max_temp_c is not None]
        we = window_energy(mon.readings, int(lo), int(hi), kind=kind) if kind else None
        rows.append({"start_s": (lo - t0) / 1e9, "end_s": (hi - t0) / 1e9, "iterations": len(calls),
                     "p50_ms": float(np.median(calls)) / 1e6 if len(calls) else None,
                     "throughput_sps": len(calls) / ((hi - lo) / 1e9),
                     "power_w": we.mean_power_w if we else None,
                     "energy_mj": we.energy_mj / len(calls) if we and len(calls) else None,
                     "temp_max_c": max(temps) if temps else None})
    ratio: dict[str, float | None] = {}
    for k in ("p50_ms", "throughput_sps", "power_w", "energy_mj", "temp_max_c"):
        a, b = rows[0].get(k), rows[-1].get(k)
        ratio[k] = b / a if a and b is not None else None
    return rows, ratio
