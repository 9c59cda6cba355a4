"""Latency statistics from nanosecond samples.

Definitions (stated once, used everywhere):

* **Percentile**: nearest rank. The p-th percentile of n sorted samples
  x(1) <= ... <= x(n) is x(ceil(p*n)), an observed sample (numpy's
  ``method="inverted_cdf"``). onnxruntime_perf_test uses index floor(n*p) on
  the 0-based sorted list, i.e. x(floor(p*n) + 1); the two agree unless p*n is
  an integer, where ORT's is one rank higher. No interpolation: an
  interpolated p99 of 50 samples is a number no inference took.
* **std** is the sample standard deviation (ddof=1); **cv** = std / mean.
* **unstable**: cv > ``cv_threshold``. The default, 0.10, is for end-to-end
  host latency of one inference from Python on a CPU, which includes OS
  scheduling noise; trtexec warns at 0.025 for *GPU compute* time with locked
  clocks (:data:`GPU_COMPUTE_CV_THRESHOLD`). Target profiles set their own
  (``[bench] cv_threshold``).
* **Confidence intervals** for p50/p90/p99 are distribution-free order-statistic
  intervals: the number of samples at or below the true p-quantile is
  Binomial(n, p), so [x(j), x(k)] covers it with probability
  >= P(j <= B <= k-1). ``ci_level`` is two-sided (0.95 by default). They
  assume independent samples; consecutive latencies are correlated (clocks,
  thermals), so the interval is optimistic: repeat windows for robustness.
* **p90_upper** is the one-sided 99 % upper bound of p90, the conservative
  order statistic in the spirit of MLPerf LoadGen's early-stopping estimate.
* **Enough samples**: the upper bound of the p-quantile exists only when
  p**n <= alpha/2, i.e. n >= ceil(log(alpha/2) / log(p)):
  :func:`min_samples_for` gives 36 for p90 and 368 for p99 at 95 %, and 44 for
  the one-sided 99 % p90 bound. With fewer samples that percentile is listed in
  ``too_few_for``; its CI upper end is None.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from edgekit.core.errors import UsageError

DEFAULT_CV_THRESHOLD = 0.10
GPU_COMPUTE_CV_THRESHOLD = 0.025
DEFAULT_CI_LEVEL = 0.95
CI_PERCENTILES = (50, 90, 99)
_NS_PER_MS = 1e6


def percentile_nearest_rank(sorted_values: np.ndarray, p: float) -> float:
    """x(ceil(p/100 * n)) of ascending ``sorted_values`` (nearest-rank definition)."""
    n = len(sorted_values)
    if n == 0:
        raise UsageError("cannot take a percentile of no samples")
    if not 0 <= p <= 100:
        raise UsageError(f"percentile must be in [0, 100], got {p}")
    rank = max(1, math.ceil(Fraction(str(p)) * n / 100))  # exact: no float round-up at p*n integer
    return float(sorted_values[min(rank, n) - 1])


def _binom_cdf(n: int, p: float) -> np.ndarray:
    """F(k) = P(B <= k) for k = 0..n, B ~ Binomial(n, p), computed in log space."""
    k = np.arange(n + 1, dtype=np.float64)
    logs = np.log(np.arange(1, n + 1, dtype=np.float64))
    log_fact = np.concatenate(([0.0], np.cumsum(logs)))
    log_pmf = log_fact[n] - log_fact - log_fact[::-1] + k * math.log(p) + (n - k) * math.log1p(-p)
    pmf = np.exp(log_pmf - log_pmf.max())
    return np.minimum(np.cumsum(pmf) / pmf.sum(), 1.0)


def order_statistic_ci(n: int, p: float, *, level: float = DEFAULT_CI_LEVEL,
                       sided: str = "two") -> tuple[int | None, int | None]:
    """1-based ranks (j, k) with P(x(j) <= q_p <= x(k)) >= level; None where n is too small.

    ``sided="upper"`` gives only an upper rank at one-sided confidence ``level``.
    """
    if n <= 0 or not 0 < p < 1 or not 0 < level < 1:
        raise UsageError(f"order_statistic_ci needs n > 0, 0 < p < 1, 0 < level < 1 (got {n}, {p}, {level})")
    tail = (1 - level) / 2 if sided == "two" else 1 - level
    cdf = _binom_cdf(n, p)  # cdf[m] = P(B <= m)
    # lower: largest j >= 1 with P(B <= j-1) <= tail
    lows = np.nonzero(cdf[:n] <= tail)[0]
    j = int(lows[-1]) + 1 if sided == "two" and lows.size else None
    # upper: smallest k <= n with P(B <= k-1) >= 1 - tail
    ups = np.nonzero(cdf[:n] >= 1 - tail)[0]
    k = int(ups[0]) + 1 if ups.size else None
    return j, k


def min_samples_for(p: float, *, level: float = DEFAULT_CI_LEVEL, sided: str = "two") -> int:
    """Smallest n for which the order-statistic upper bound of the p-quantile exists."""
    tail = (1 - level) / 2 if sided == "two" else 1 - level
    return math.ceil(math.log(tail) / math.log(p) - 1e-12)


@dataclass(frozen=True)
class LatencyStats:
    """Summary of one latency window; every value in milliseconds."""

    n: int
    mean: float
    std: float
    cv: float
    min: float
    p50: float
    p90: float
    p95: float
    p99: float
    max: float
    p50_ci: tuple[float | None, float | None] = (None, None)
    p90_ci: tuple[float | None, float | None] = (None, None)
    p99_ci: tuple[float | None, float | None] = (None, None)
    p90_upper: float | None = None  # one-sided 99 % upper bound of p90
    ci_level: float = DEFAULT_CI_LEVEL
    cv_threshold: float = DEFAULT_CV_THRESHOLD
    unstable: bool = False
    too_few_for: tuple[str, ...] = ()  # percentiles whose CI upper bound n cannot give

    @classmethod
    def from_ns(cls, samples_ns: Any, *, cv_threshold: float = DEFAULT_CV_THRESHOLD,
                ci_level: float = DEFAULT_CI_LEVEL) -> LatencyStats:
        """Statistics of latencies given in integer nanoseconds."""
        if not 0 < cv_threshold:
            raise UsageError(f"cv_threshold must be > 0, got {cv_threshold}")
        if not 0 < ci_level < 1:
            raise UsageError(f"ci_level must be in (0, 1), got {ci_level}")
        ns = np.asarray(samples_ns, dtype=np.float64).ravel()
        if ns.size == 0:
            raise UsageError("no latency samples to summarize")
        if not np.all(np.isfinite(ns)) or np.any(ns < 0):
            raise UsageError("latency samples must be finite and non-negative")
        ms = np.sort(ns) / _NS_PER_MS
        n = int(ms.size)
        mean = float(ms.mean())
        std = float(ms.std(ddof=1)) if n > 1 else 0.0
        cv = std / mean if mean > 0 else 0.0
        cis: dict[int, tuple[float | None, float | None]] = {}
        too_few = []
        for q in CI_PERCENTILES:
            j, k = order_statistic_ci(n, q / 100, level=ci_level)
            cis[q] = (float(ms[j - 1]) if j else None, float(ms[k - 1]) if k else None)
            if k is None:
                too_few.append(f"p{q}")
        _, k90 = order_statistic_ci(n, 0.90, level=0.99, sided="upper")
        pct = {q: percentile_nearest_rank(ms, q) for q in (50, 90, 95, 99)}
        return cls(
            n=n, mean=mean, std=std, cv=cv, min=float(ms[0]), p50=pct[50], p90=pct[90], p95=pct[95], p99=pct[99],
            max=float(ms[-1]), p50_ci=cis[50], p90_ci=cis[90], p99_ci=cis[99],
            p90_upper=float(ms[k90 - 1]) if k90 else None, ci_level=ci_level, cv_threshold=cv_threshold,
            unstable=cv > cv_threshold, too_few_for=tuple(too_few),
        )

    def warnings(self) -> list[str]:
        """Plain-language warnings for a report."""
        out = []
        if self.unstable:
            out.append(f"unstable: CV {self.cv:.1%} exceeds {self.cv_threshold:.1%}; lock clocks/governor, "
                       "pin threads, check thermals, or run longer")
        for q in self.too_few_for:
            p = int(q[1:]) / 100
            out.append(f"{q} rests on too few samples ({self.n}); its {self.ci_level:.0%} confidence bound needs "
                       f">= {min_samples_for(p, level=self.ci_level)}")
        return out

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {k: getattr(self, k) for k in (
            "n", "mean", "std", "cv", "min", "p50", "p90", "p95", "p99", "max")}
        d.update({
            "p50_ci": list(self.p50_ci), "p90_ci": list(self.p90_ci), "p99_ci": list(self.p99_ci),
            "p90_upper": self.p90_upper, "ci_level": self.ci_level, "cv_threshold": self.cv_threshold,
            "unstable": self.unstable, "too_few_for": list(self.too_few_for),
            "unit": "ms", "percentile_method": "nearest-rank",
        })
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> LatencyStats:
        def ci(key: str) -> tuple[float | None, float | None]:
            lo, hi = d.get(key) or (None, None)
            return (lo, hi)

        return cls(
            n=int(d["n"]), mean=float(d["mean"]), std=float(d["std"]), cv=float(d["cv"]), min=float(d["min"]),
            p50=float(d["p50"]), p90=float(d["p90"]), p95=float(d["p95"]), p99=float(d["p99"]),
            max=float(d["max"]), p50_ci=ci("p50_ci"), p90_ci=ci("p90_ci"), p99_ci=ci("p99_ci"),
            p90_upper=d.get("p90_upper"), ci_level=float(d.get("ci_level", DEFAULT_CI_LEVEL)),
            cv_threshold=float(d.get("cv_threshold", DEFAULT_CV_THRESHOLD)), unstable=bool(d.get("unstable", False)),
            too_few_for=tuple(d.get("too_few_for", ())),
        )
