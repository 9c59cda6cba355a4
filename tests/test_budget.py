"""The accuracy budget that holds out of sample (edgekit.bench.budget): upper bound on validation, test reported."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.bench.budget import judge, upper_bound
from edgekit.core.errors import UsageError


def _preds(labels: np.ndarray, *, wrong_ref: int, lost: int, gained: int, seed: int) -> tuple[np.ndarray, ...]:
    """Reference and candidate predictions with exact discordant counts (b = lost, c = gained)."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    order = rng.permutation(n)
    ref = labels.copy()
    ref[order[:wrong_ref]] = (labels[order[:wrong_ref]] + 1) % 10
    cand = ref.copy()
    right = order[wrong_ref:]
    cand[right[:lost]] = (labels[right[:lost]] + 1) % 10  # reference right, candidate wrong
    cand[order[:gained]] = labels[order[:gained]]  # reference wrong, candidate right
    return ref, cand


def test_point_estimate_within_budget_is_not_enough_the_upper_bound_decides():
    y = np.arange(1000) % 10
    # observed drop 0.8 pt < 1 pt budget, but 10 lost / 2 gained on 1000 images: the upper bound is above 1 pt
    ref, cand = _preds(y, wrong_ref=100, lost=10, gained=2, seed=0)
    v = judge((ref, cand, y), None, budget_pts=1.0)
    assert v.validation.drop_pts == pytest.approx(0.8)
    assert v.validation_upper_pts > 1.0 and not v.accepted and not v
    assert v.to_json()["verdict"] == "failed"
    # the same observed drop on 20x the images: the bound tightens and the candidate is accepted
    y20 = np.arange(20000) % 10
    ref, cand = _preds(y20, wrong_ref=2000, lost=200, gained=40, seed=0)
    assert judge((ref, cand, y20), None, budget_pts=1.0).accepted


def test_confidence_moves_the_bound_and_is_one_sided():
    y = np.arange(2000) % 10
    ref, cand = _preds(y, wrong_ref=200, lost=14, gained=4, seed=1)
    u90, _ = upper_bound(ref, cand, y, budget_pts=1.0, confidence=0.90)
    u95, p95 = upper_bound(ref, cand, y, budget_pts=1.0, confidence=0.95)
    u99, _ = upper_bound(ref, cand, y, budget_pts=1.0, confidence=0.99)
    assert u90 < u95 < u99
    assert p95.level == pytest.approx(0.90)  # one-sided 95 % = the upper end of the two-sided 90 % interval
    with pytest.raises(UsageError, match="--confidence"):
        upper_bound(ref, cand, y, budget_pts=1.0, confidence=1.0)


def test_a_candidate_accepted_on_validation_that_breaks_the_budget_on_test_is_flagged_loudly():
    yv, yt = np.arange(4000) % 10, np.arange(2000) % 10
    val = _preds(yv, wrong_ref=400, lost=8, gained=6, seed=2)  # 0.05 pt: accepted
    test = _preds(yt, wrong_ref=200, lost=40, gained=5, seed=3)  # 1.75 pt on the images that chose nothing
    v = judge((*val, yv), (*test, yt), budget_pts=1.0)
    assert v.accepted and v.breaks_on_test
    assert "BUDGET BROKEN ON TEST" in v.statement and v.to_json()["breaks_on_test"] is True
    ok = judge((*val, yv), (*_preds(yt, wrong_ref=200, lost=5, gained=4, seed=3), yt), budget_pts=1.0)
    assert ok.accepted and not ok.breaks_on_test and "BROKEN" not in ok.statement
