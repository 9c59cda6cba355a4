"""Paired comparison of two models on the same images (e.g. FP32 reference vs INT8).

Counts over the n images: ``a`` both right, ``b`` reference right and candidate
wrong, ``c`` reference wrong and candidate right, ``d`` both wrong. The top-1
**drop** is (b - c) / n, positive when the candidate is worse, reported in
percentage points.

* **Confidence interval** of the drop: Newcombe's hybrid score interval for
  paired proportions (Newcombe 1998, method 10: Wilson intervals of the two
  marginal accuracies combined with the continuity-corrected phi correlation).
  It stays inside [-1, 1], behaves when b or c is 0, and is far narrower than
  an unpaired interval because only the discordant images carry information.
  :func:`wald_paired_ci` (the textbook Wald interval, variance
  ((b+c) - (b-c)^2/n) / n^2) is kept for comparison and planning.
* **McNemar**: exact two-sided binomial test on the discordant counts
  (p = min(1, 2 * P(X <= min(b, c))), X ~ Binomial(b + c, 1/2)), computed in
  log space so it works for any b + c; the chi-square statistic with continuity
  correction, (|b - c| - 1)^2 / (b + c), is given alongside. No scipy needed.
* **Verdict** against an absolute budget in points (:func:`relative_budget_pts`
  converts an MLPerf-style "99 % of FP32" budget): ``pass`` when the upper end
  of the two-sided CI is within the budget, ``fail`` when its lower end is above
  it, ``inconclusive`` otherwise, with a reason that says how many images
  would resolve it. ``bool(result)`` is True only for ``pass``.
* **Disagreements** are images whose top-1 predictions differ (this includes
  images both models get wrong with different wrong classes, so it is >= b + c).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from edgekit.bench.accuracy import AccuracyResult, predictions_from
from edgekit.core.errors import DataError, UsageError

DEFAULT_LEVEL = 0.95


def _z(level: float) -> float:
    if not 0 < level < 1:
        raise UsageError(f"confidence level must be in (0, 1), got {level}")
    return NormalDist().inv_cdf(1 - (1 - level) / 2)


def _counts(*xs: int) -> None:
    for x in xs:
        if isinstance(x, bool) or int(x) != x or x < 0:
            raise UsageError(f"counts must be non-negative integers, got {x!r}")


def mcnemar_exact_p(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: min(1, 2 * P(X <= min(b, c))), X ~ Bin(b + c, 1/2)."""
    _counts(b, c)
    m, k = int(b + c), int(min(b, c))
    if m == 0 or 2 * k == m:
        return 1.0
    log_terms = [math.lgamma(m + 1) - math.lgamma(i + 1) - math.lgamma(m - i + 1) for i in range(k + 1)]
    top = max(log_terms)
    log_tail = top + math.log(math.fsum(math.exp(t - top) for t in log_terms)) - m * math.log(2)
    return min(1.0, 2 * math.exp(log_tail))


def mcnemar_chi2(b: int, c: int, *, correction: bool = True) -> tuple[float, float]:
    """McNemar chi-square statistic (continuity-corrected by default) and its 1-df p-value."""
    _counts(b, c)
    if b + c == 0:
        return 0.0, 1.0
    diff = abs(b - c) - (1 if correction else 0)
    stat = max(diff, 0) ** 2 / (b + c)
    return stat, math.erfc(math.sqrt(stat / 2))


def wilson_interval(k: int, n: int, *, level: float = DEFAULT_LEVEL) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n."""
    _counts(k, n)
    if n == 0 or k > n:
        raise UsageError(f"wilson_interval needs 0 <= k <= n and n > 0, got k={k}, n={n}")
    z = _z(level)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_paired_ci(a: int, b: int, c: int, d: int, *, level: float = DEFAULT_LEVEL) -> tuple[float, float]:
    """CI of (b - c) / n, the first model's accuracy minus the second's, on paired data."""
    _counts(a, b, c, d)
    n = a + b + c + d
    if n == 0:
        raise UsageError("no paired observations")
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson_interval(a + b, n, level=level)
    l2, u2 = wilson_interval(a + c, n, level=level)
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    phi = 0.0
    if margins > 0:
        cross = a * d - b * c
        if cross > n / 2:
            phi = (cross - n / 2) / math.sqrt(margins)
        elif cross < 0:
            phi = cross / math.sqrt(margins)
    theta = p1 - p2
    lo = theta - math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    hi = theta + math.sqrt(max(0.0, (p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2))
    return max(-1.0, lo), min(1.0, hi)


def wald_paired_ci(b: int, c: int, n: int, *, level: float = DEFAULT_LEVEL) -> tuple[float, float]:
    """Wald CI of (b - c) / n with the paired variance ((b + c) - (b - c)^2 / n) / n^2."""
    _counts(b, c, n)
    if n == 0 or b + c > n:
        raise UsageError(f"wald_paired_ci needs b + c <= n and n > 0, got b={b}, c={c}, n={n}")
    theta = (b - c) / n
    half = _z(level) * math.sqrt(max(0.0, (b + c) - (b - c) ** 2 / n)) / n
    return theta - half, theta + half


def relative_budget_pts(reference_top1: float, fraction: float) -> float:
    """An MLPerf-style relative budget ("99 % of FP32" is fraction=0.01) in absolute points."""
    if not 0 <= reference_top1 <= 1 or not 0 < fraction < 1:
        raise UsageError(f"need 0 <= reference_top1 <= 1 and 0 < fraction < 1, got {reference_top1}, {fraction}")
    return 100.0 * reference_top1 * fraction


@dataclass(frozen=True)
class Resolvability:
    ok: bool
    half_width_pts: float
    needed_n: int | None
    message: str


def resolvable(budget_pts: float, n: int, *, discordant_rate: float,
               level: float = DEFAULT_LEVEL) -> Resolvability:
    """Can an eval set of ``n`` images resolve ``budget_pts`` when ``discordant_rate`` of the
    images flip between the models? Planning uses the paired Wald half-width at zero drop,
    z * sqrt(rate / n); typical rates: ~0.5 % for FP16, a few % for INT8."""
    if not budget_pts > 0:
        raise UsageError(f"budget_pts must be > 0, got {budget_pts}")
    if not 0 <= discordant_rate <= 1:
        raise UsageError(f"discordant_rate must be in [0, 1], got {discordant_rate}")
    if n <= 0:
        raise UsageError(f"n must be > 0, got {n}")
    z = _z(level)
    half = 100 * z * math.sqrt(discordant_rate / n)
    needed = math.ceil((100 * z) ** 2 * discordant_rate / budget_pts ** 2) if discordant_rate > 0 else 1
    ok = half < budget_pts
    what = (f"with n={n} images and {discordant_rate:.2%} of top-1 results flipping, the {level:.0%} CI of the "
            f"top-1 drop is about ±{half:.2f} pts")
    if ok:
        return Resolvability(True, half, needed, f"{what}, narrower than the {budget_pts:g} pt budget")
    return Resolvability(False, half, needed, f"{what}, wider than the {budget_pts:g} pt budget: the eval set is "
                                              f"too small to resolve it (about {needed} images needed)")


@dataclass(frozen=True)
class PairedComparison:
    """Reference vs candidate on the same images, judged against an accuracy-drop budget."""

    n: int
    both_correct: int  # a
    reference_only: int  # b: reference right, candidate wrong
    candidate_only: int  # c
    both_wrong: int  # d
    reference_top1: float
    candidate_top1: float
    drop_pts: float
    ci_pts: tuple[float, float]
    level: float
    budget_pts: float
    disagreements: int
    mcnemar_p: float
    mcnemar_chi2: float
    mcnemar_chi2_p: float
    verdict: str  # pass, fail or inconclusive
    reason: str
    needed_n: int | None = None
    ci_method: str = "newcombe-hybrid-score"

    def __bool__(self) -> bool:
        return self.verdict == "pass"

    @property
    def agreement(self) -> float:
        return 1 - self.disagreements / self.n

    def to_json(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["ci_pts"] = list(self.ci_pts)
        d["agreement"] = self.agreement
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PairedComparison:
        kw = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        kw["ci_pts"] = tuple(kw["ci_pts"])
        return cls(**kw)


def _preds_and_labels(reference: Any, candidate: Any, labels: Any | None) -> tuple[np.ndarray, ...]:
    if isinstance(reference, AccuracyResult) or isinstance(candidate, AccuracyResult):
        if not (isinstance(reference, AccuracyResult) and isinstance(candidate, AccuracyResult)):
            raise UsageError("pass two AccuracyResults, or two arrays of logits/predictions with labels")
        if reference.labels.shape != candidate.labels.shape or not np.array_equal(reference.labels, candidate.labels):
            raise DataError("the two results are not on the same images (their labels differ)",
                            hint="evaluate both models on the same eval set, in the same order")
        return reference.predictions, candidate.predictions, reference.labels
    if labels is None:
        raise UsageError("labels are required when comparing arrays")
    ref, cand = predictions_from(reference, "reference"), predictions_from(candidate, "candidate")
    y = np.asarray(labels).astype(np.int64)
    if not (ref.shape == cand.shape == y.shape) or y.ndim != 1:
        raise DataError(f"reference ({ref.shape[0]}), candidate ({cand.shape[0]}) and labels ({y.shape}) must "
                        "cover the same images")
    return ref, cand, y


def images_to_resolve(b: int, c: int, n: int, *, budget_pts: float, level: float = DEFAULT_LEVEL) -> int | None:
    """About how many paired images would put the drop's CI on one side of ``budget_pts``, at the
    observed flip rate (its Wilson upper bound while fewer than 10 flips are seen, so that a lucky 0
    promises no tiny set); None when the observed drop already reaches the budget, or when no image flipped
    (nothing to extrapolate from)."""
    _counts(b, c, n)
    if n == 0:
        raise UsageError("no paired observations")
    theta = (b - c) / n
    if theta * 100 >= budget_pts or b + c == 0:  # no flip seen: no rate to extrapolate from
        return None
    f = max((b + c) / n, wilson_interval(b + c, n, level=level)[1] if b + c < 10 else 0.0)
    z = _z(level)
    return math.ceil(z * z * max(f - theta * theta, 1e-12) / (budget_pts / 100 - theta) ** 2)


def compare_paired(reference: Any, candidate: Any, labels: Any | None = None, *, budget_pts: float,
                   level: float = DEFAULT_LEVEL) -> PairedComparison:
    """Compare ``candidate`` with ``reference`` on the same images against ``budget_pts``.

    Each of ``reference`` / ``candidate`` is logits (N, C), top-1 predictions (N,), or an
    :class:`~edgekit.bench.accuracy.AccuracyResult` (then ``labels`` come from it).
    """
    if not (isinstance(budget_pts, (int, float)) and math.isfinite(budget_pts) and budget_pts >= 0):
        raise UsageError(f"budget_pts must be a number >= 0, got {budget_pts!r}")
    ref, cand, y = _preds_and_labels(reference, candidate, labels)
    n = int(y.shape[0])
    if n == 0:
        raise DataError("no images to compare")
    rc, cc = ref == y, cand == y
    a, b = int(np.sum(rc & cc)), int(np.sum(rc & ~cc))
    c, d = int(np.sum(~rc & cc)), int(np.sum(~rc & ~cc))
    lo, hi = newcombe_paired_ci(a, b, c, d, level=level)
    drop, lo, hi = 100 * (b - c) / n, 100 * lo, 100 * hi
    chi2, chi2_p = mcnemar_chi2(b, c)
    ci_txt = f"top-1 drop {drop:+.2f} pts, {level:.0%} CI [{lo:+.2f}, {hi:+.2f}]"
    needed = None
    if hi <= budget_pts:
        verdict, reason = "pass", f"{ci_txt} is within the {budget_pts:g} pt budget"
    elif lo > budget_pts:
        verdict, reason = "fail", f"{ci_txt} exceeds the {budget_pts:g} pt budget"
    else:
        verdict = "inconclusive"
        needed = images_to_resolve(b, c, n, budget_pts=budget_pts, level=level)
        if b + c == 0:  # nothing changed: there is no observed flip rate to extrapolate from
            more = (f"no image changed its top-1 correctness (0 lost, 0 gained), so the observed drop is 0; the "
                    f"interval is this wide only because the set is small")
        elif needed is not None:
            more = f"about {needed} images at the observed flip rate would resolve it"
        else:
            more = "the observed drop already reaches the budget; more images would most likely confirm a failure"
        reason = (f"{ci_txt} straddles the {budget_pts:g} pt budget: {n} images are too few to resolve it; {more}")
    return PairedComparison(
        n=n, both_correct=a, reference_only=b, candidate_only=c, both_wrong=d,
        reference_top1=(a + b) / n, candidate_top1=(a + c) / n, drop_pts=drop, ci_pts=(lo, hi), level=level,
        budget_pts=float(budget_pts), disagreements=int(np.sum(ref != cand)), mcnemar_p=mcnemar_exact_p(b, c),
        mcnemar_chi2=chi2, mcnemar_chi2_p=chi2_p, verdict=verdict, reason=reason, needed_n=needed,
    )
