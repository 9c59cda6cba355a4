"""An accuracy budget that holds out of sample: decide on validation, report on test.

A candidate (an INT8 model with some layers in float, a pruned and
recovered model) is **accepted** only when the one-sided upper
``confidence`` bound of its paired top-1 drop against the FP32 reference,
measured on the *validation* split, is within the budget. The two-sided
interval used is Newcombe's hybrid score interval
(:func:`edgekit.bench.paired.compare_paired`) at level ``2 * confidence - 1``,
whose upper end is the one-sided upper bound at ``confidence`` (0.95 -> the
upper end of the 90 % interval).

The accepted candidate is then measured once on the *test* split (images
that chose nothing) and that is the reported number. When its observed drop
on test exceeds the budget the record says ``breaks_on_test`` and the
statement says so loudly: a budget honoured only on the images that tuned
it is not a budget. Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgekit.bench.paired import PairedComparison, compare_paired
from edgekit.core.errors import UsageError

DEFAULT_CONFIDENCE = 0.95


def check_confidence(confidence: float) -> float:
    if not (isinstance(confidence, (int, float)) and 0.5 <= float(confidence) < 1.0):
        raise UsageError(f"--confidence must be in [0.5, 1), got {confidence!r}",
                         hint="0.95 accepts a candidate when the upper 95 % bound of its drop is within the budget")
    return float(confidence)


def upper_bound(ref: Any, cand: Any, labels: Any, *, budget_pts: float,
                confidence: float = DEFAULT_CONFIDENCE) -> tuple[float, PairedComparison]:
    """(one-sided upper ``confidence`` bound of the paired top-1 drop in points, the comparison)."""
    p = compare_paired(ref, cand, labels, budget_pts=budget_pts, level=2 * check_confidence(confidence) - 1)
    return float(p.ci_pts[1]), p


@dataclass(frozen=True)
class BudgetVerdict:
    """Accepted on validation (upper bound) or not; measured on test; flagged when test breaks the budget."""

    budget_pts: float
    confidence: float
    validation_upper_pts: float
    validation: PairedComparison
    test: PairedComparison | None
    accepted: bool

    def __bool__(self) -> bool:
        return self.accepted

    @property
    def breaks_on_test(self) -> bool:
        return self.test is not None and self.test.drop_pts > self.budget_pts

    @property
    def statement(self) -> str:
        v = (f"validation: drop {self.validation.drop_pts:+.2f} pts, upper {self.confidence:.0%} bound "
             f"{self.validation_upper_pts:+.2f} on {self.validation.n} images "
             f"({'within' if self.accepted else 'OVER'} the {self.budget_pts:g} pt budget)")
        if self.test is None:
            return v + "; not measured on a test split"
        lo, hi = self.test.ci_pts
        t = (f"test (reported): drop {self.test.drop_pts:+.2f} pts, 95 % CI [{lo:+.2f}, {hi:+.2f}] on "
             f"{self.test.n} images")
        if self.breaks_on_test:
            t = f"BUDGET BROKEN ON TEST: {t} exceeds the {self.budget_pts:g} pt budget"
        return f"{v}; {t}"

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": (f"accept when the upper {self.confidence:.0%} bound of the paired top-1 drop on the validation "
                     "split is within the budget; report the test split"),
            "budget_pts": self.budget_pts,
            "confidence": self.confidence,
            "accepted": self.accepted,
            "verdict": "passed" if self.accepted else "failed",
            "validation_upper_pts": self.validation_upper_pts,
            "validation": self.validation.to_json(),
            "test": self.test.to_json() if self.test is not None else None,
            "test_drop_pts": self.test.drop_pts if self.test is not None else None,
            "breaks_on_test": self.breaks_on_test,
            "statement": self.statement,
        }


def judge(val: tuple[Any, Any, Any], test: tuple[Any, Any, Any] | None, *, budget_pts: float,
          confidence: float = DEFAULT_CONFIDENCE) -> BudgetVerdict:
    """``val`` / ``test``: (reference logits or predictions, candidate's, labels) on each split."""
    ub, pv = upper_bound(*val, budget_pts=budget_pts, confidence=confidence)
    pt = compare_paired(*test, budget_pts=budget_pts) if test is not None else None
    return BudgetVerdict(float(budget_pts), float(confidence), ub, pv, pt, bool(ub <= budget_pts))


def predictions(logits: Any) -> np.ndarray:
    a = np.asarray(logits)
    return a.argmax(axis=1) if a.ndim == 2 else a.astype(np.int64)
