"""Energy over a time window from power samples or energy-counter reads, and its confidence interval.

* Power sources: the samples are joined linearly (trapezoids) and held
  constant before the first and after the last sample; E = integral over
  [t0, t1].
* Energy counters: the counter is interpolated linearly between reads;
  E = E(t1) - E(t0).

Energy per inference = E / N. Its 95 % confidence interval comes from batch
means: the window is cut into ``blocks`` equal time blocks, the mean power of
each block is computed the same way, and the interval of their mean (Student
t, blocks - 1 degrees of freedom) is scaled by T / N (the inference count is
exact; the uncertainty is in the power). Fewer than two samples per block
gives no interval.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgekit.telemetry.base import PowerReading

#: two-sided 95 % Student t quantiles by degrees of freedom (1..30); 1.96 beyond
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
        2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
        2.045, 2.042)


def t95(dof: int) -> float:
    return _T95[dof - 1] if 1 <= dof <= len(_T95) else 1.96


def _series(readings: Sequence[PowerReading], kind: str) -> tuple[np.ndarray, np.ndarray]:
    attr = "power_mw" if kind == "power" else "energy_mj"
    pts = sorted((r.t_ns, getattr(r, attr)) for r in readings if getattr(r, attr) is not None)
    return (np.array([p[0] for p in pts], dtype=np.float64), np.array([p[1] for p in pts], dtype=np.float64))


def energy_mj(readings: Sequence[PowerReading], t0_ns: int, t1_ns: int, *, kind: str) -> float | None:
    """Energy in mJ over [t0, t1] (see the module docstring); None without a usable sample."""
    t, v = _series(readings, kind)
    return _energy(t, v, float(t0_ns), float(t1_ns), kind)


def _energy(t: np.ndarray, v: np.ndarray, t0: float, t1: float, kind: str) -> float | None:
    if t1 <= t0 or len(t) == 0 or (kind == "energy" and len(t) < 2):
        return None
    if kind == "energy":
        if t0 < t[0] - 1 or t1 > t[-1] + 1:  # the counter must bracket the window
            return None
        a, b = np.interp([t0, t1], t, v)
        return float(b - a)
    inside = t[(t > t0) & (t < t1)]
    ts = np.concatenate([[t0], inside, [t1]])
    ps = np.interp(ts, t, v)  # constant beyond the first and last samples
    return float(np.sum((ps[1:] + ps[:-1]) * 0.5 * np.diff(ts)) / 1e9)  # mW * s = mJ


def samples_in(readings: Sequence[PowerReading], t0_ns: int, t1_ns: int, *, kind: str) -> int:
    t, _ = _series(readings, kind)
    return int(np.sum((t >= t0_ns) & (t <= t1_ns)))


@dataclass(frozen=True)
class WindowEnergy:
    energy_mj: float
    duration_s: float
    mean_power_w: float
    power_ci_w: tuple[float, float] | None  # 95 %, batch means
    samples: int
    blocks: int


def window_energy(readings: Sequence[PowerReading], t0_ns: int, t1_ns: int, *, kind: str,
                  blocks: int = 10) -> WindowEnergy | None:
    t, v = _series(readings, kind)
    e = _energy(t, v, float(t0_ns), float(t1_ns), kind)
    if e is None:
        return None
    dur = (t1_ns - t0_ns) / 1e9
    n = int(np.sum((t >= t0_ns) & (t <= t1_ns)))
    b = min(blocks, n // 2)
    ci = None
    if b >= 2:
        edges = np.linspace(t0_ns, t1_ns, b + 1)
        powers = []
        for lo, hi in itertools.pairwise(edges):
            eb = _energy(t, v, float(lo), float(hi), kind)
            if eb is not None:
                powers.append(eb / ((hi - lo) / 1e9) / 1000.0)
        if len(powers) == b:
            mean, sd = float(np.mean(powers)), float(np.std(powers, ddof=1))
            half = t95(b - 1) * sd / math.sqrt(b)
            ci = (mean - half, mean + half)
    return WindowEnergy(energy_mj=e, duration_s=dur, mean_power_w=e / dur / 1000.0, power_ci_w=ci, samples=n,
                        blocks=b if ci else 0)
