"""Accuracy metrics and the paired comparison of two models on the same images."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from edgekit.bench.accuracy import AccuracyResult, compute_accuracy, topk_correct
from edgekit.bench.paired import (
    PairedComparison,
    compare_paired,
    mcnemar_chi2,
    mcnemar_exact_p,
    newcombe_paired_ci,
    relative_budget_pts,
    resolvable,
    wald_paired_ci,
    wilson_interval,
)
from edgekit.core.errors import DataError, UsageError


def _logits_for(pred: np.ndarray, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """Random logits whose argmax is ``pred``."""
    x = rng.normal(size=(pred.shape[0], num_classes))
    x[np.arange(pred.shape[0]), pred] = x.max(axis=1) + 1.0
    return x


# -- accuracy ------------------------------------------------------------------------------------

def test_hand_checked_small_case():
    # 3 classes, 6 images; predictions: [0, 0, 1, 1, 2, 0], labels: [0, 1, 1, 1, 2, 2]
    labels = np.array([0, 1, 1, 1, 2, 2])
    pred = np.array([0, 0, 1, 1, 2, 0])
    r = compute_accuracy(np.eye(3)[pred], labels)
    assert r.top1 == pytest.approx(4 / 6)
    assert r.confusion.tolist() == [[1, 0, 0], [1, 2, 0], [1, 0, 1]]
    # per class: P = [1/3, 1, 1], R = [1, 2/3, 1/2]
    assert r.macro_precision == pytest.approx((1 / 3 + 1 + 1) / 3)
    assert r.macro_recall == pytest.approx((1 + 2 / 3 + 1 / 2) / 3)
    f1 = [2 * p * q / (p + q) for p, q in ((1 / 3, 1), (1, 2 / 3), (1, 1 / 2))]
    assert r.macro_f1 == pytest.approx(sum(f1) / 3)
    assert r.per_class_accuracy == pytest.approx([1.0, 2 / 3, 0.5])
    assert r.top5 is None  # fewer than 5 classes


def test_class_never_predicted_and_class_without_support():
    labels = np.array([0, 0, 1, 1])
    pred = np.array([0, 0, 0, 3])  # class 1 never predicted; class 3 predicted but has no support
    r = compute_accuracy(np.eye(5)[pred], labels)
    # macro over classes present in labels (0 and 1): P = [2/3, 0], R = [1, 0]
    assert r.macro_precision == pytest.approx(1 / 3)
    assert r.macro_recall == pytest.approx(0.5)
    assert r.macro_f1 == pytest.approx((0.8 + 0.0) / 2)
    assert r.per_class_accuracy[3] is None and r.per_class_accuracy[1] == 0.0


def test_matches_scikit_learn():
    sk = pytest.importorskip("sklearn.metrics", reason="scikit-learn is the cross-check")
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 12, 800)
    logits = rng.normal(size=(800, 15))
    logits[np.arange(800), labels] += 1.2
    r = compute_accuracy(logits, labels)
    present = np.unique(labels)
    p, rc, f, _ = sk.precision_recall_fscore_support(labels, logits.argmax(1), labels=present, average="macro",
                                                     zero_division=0)
    assert (r.macro_precision, r.macro_recall, r.macro_f1) == pytest.approx((p, rc, f))
    assert r.top1 == pytest.approx(sk.accuracy_score(labels, logits.argmax(1)))
    assert r.top5 == pytest.approx(sk.top_k_accuracy_score(labels, logits, k=5, labels=np.arange(15)))
    assert np.array_equal(r.confusion, sk.confusion_matrix(labels, logits.argmax(1), labels=np.arange(15)))


def test_topk_ties_go_to_the_lowest_index():
    x = np.array([[1.0, 1.0, 1.0, 0.0]])
    assert topk_correct(x, np.array([1]), 2)[0]  # classes 0 and 1 are the top 2
    assert not topk_correct(x, np.array([2]), 2)[0]


def test_agreement_with_reference_predictions_or_logits():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 10, 200)
    ref_pred = labels.copy()
    cand_pred = labels.copy()
    cand_pred[:30] = (labels[:30] + 1) % 10
    cand = _logits_for(cand_pred, 10, rng)
    assert compute_accuracy(cand, labels, reference=ref_pred).agreement == pytest.approx(170 / 200)
    assert compute_accuracy(cand, labels, reference=_logits_for(ref_pred, 10, rng)).agreement == pytest.approx(0.85)


def test_non_finite_rows_count_as_wrong():
    labels = np.array([0, 1, 2, 3, 4, 0])
    x = np.eye(6)[labels][:, :5]
    x[1, 2] = np.nan
    x[4, 0] = np.inf
    r = compute_accuracy(x, labels)
    assert r.n_invalid == 2 and r.top1 == pytest.approx(4 / 6) and r.top5 == pytest.approx(4 / 6)
    assert r.predictions[1] == -1 and r.confusion.sum() == 4


@pytest.mark.parametrize("logits, labels, msg", [
    (np.zeros(5), np.zeros(5, int), "2-D"),
    (np.zeros((4, 3)), np.zeros(5, int), "one label per image"),
    (np.zeros((2, 3)), np.array([0, 3]), "outside 0..2"),
    (np.zeros((2, 3)), np.array([0.5, 1.0]), "integer class indices"),
])
def test_bad_inputs_are_data_errors(logits, labels, msg):
    with pytest.raises(DataError, match=msg):
        compute_accuracy(logits, labels)


def test_accuracy_json_round_trip():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 6, 50)
    r = compute_accuracy(rng.normal(size=(50, 6)), labels, reference=labels, class_names=tuple("abcdef"))
    back = AccuracyResult.from_json(json.loads(json.dumps(r.to_json())))
    for k in ("n", "top1", "top5", "macro_f1", "agreement", "class_names", "per_class_accuracy"):
        assert getattr(back, k) == getattr(r, k)
    assert np.array_equal(back.confusion, r.confusion) and np.array_equal(back.predictions, r.predictions)


# -- McNemar, intervals ---------------------------------------------------------------------------

@pytest.mark.parametrize("b, c, expected", [
    (0, 5, 2 * 0.5 ** 5),  # 2 * P(X <= 0), X ~ Bin(5, 1/2)
    (2, 8, 2 * (1 + 10 + 45) / 1024),  # 2 * P(X <= 2), X ~ Bin(10, 1/2)
    (8, 2, 2 * (1 + 10 + 45) / 1024),
    (4, 4, 1.0),
    (0, 0, 1.0),
])
def test_mcnemar_exact_known_values(b, c, expected):
    assert mcnemar_exact_p(b, c) == pytest.approx(expected, rel=1e-12)


def test_mcnemar_exact_matches_scipy_for_large_counts():
    stats = pytest.importorskip("scipy.stats", reason="scipy is the cross-check (not needed at run time)")
    for b, c in ((30, 52), (300, 360), (5000, 5200), (20000, 20350)):
        assert mcnemar_exact_p(b, c) == pytest.approx(stats.binomtest(min(b, c), b + c, 0.5).pvalue, rel=1e-8)
        stat, p = mcnemar_chi2(b, c)
        assert stat == pytest.approx((abs(b - c) - 1) ** 2 / (b + c))
        assert p == pytest.approx(stats.chi2.sf(stat, 1), rel=1e-9)


def test_wilson_interval_known_value():
    # 81 successes of 263 (Newcombe 1998 single-proportion example): 0.2553 to 0.3662
    lo, hi = wilson_interval(81, 263)
    assert (round(lo, 4), round(hi, 4)) == (0.2553, 0.3662)


def test_newcombe_paired_interval_matches_published_example():
    # Fagerland, Lydersen & Laake, "The paired 2x2 table" (Cavo et al. 2012): table [[59, 6], [16, 80]],
    # difference -0.0621, Newcombe square-and-add 95 % CI -0.1186 to -0.0046
    lo, hi = newcombe_paired_ci(59, 6, 16, 80)
    assert (round(lo, 4), round(hi, 4)) == (-0.1186, -0.0046)


def test_newcombe_close_to_wald_for_large_n_and_sane_at_zero_flips():
    lo, hi = newcombe_paired_ci(37000, 700, 500, 11800)
    wlo, whi = wald_paired_ci(700, 500, 50000)
    assert lo == pytest.approx(wlo, abs=2e-4) and hi == pytest.approx(whi, abs=2e-4)
    lo0, hi0 = newcombe_paired_ci(80, 0, 0, 20)
    assert lo0 < 0 < hi0 and hi0 - lo0 < 0.1


# -- paired comparison ----------------------------------------------------------------------------

def _paired(n: int, acc: float, b: int, c: int, seed: int = 0):
    """labels, reference predictions, candidate predictions with exactly b and c discordant images."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 100, n)
    ref = labels.copy()
    wrong = rng.choice(n, size=int(round((1 - acc) * n)), replace=False)
    ref[wrong] = (labels[wrong] + 1) % 100
    cand = ref.copy()
    right_idx = np.setdiff1d(np.arange(n), wrong)
    flip_b = rng.choice(right_idx, size=b, replace=False)
    cand[flip_b] = (labels[flip_b] + 2) % 100
    flip_c = rng.choice(wrong, size=c, replace=False)
    cand[flip_c] = labels[flip_c]
    return labels, ref, cand


def test_pass_fail_inconclusive():
    labels, ref, cand = _paired(50000, 0.75, b=300, c=200)  # drop 0.2 pt, tight CI
    ok = compare_paired(ref, cand, labels, budget_pts=1.0)
    assert ok.verdict == "pass" and bool(ok)
    assert ok.drop_pts == pytest.approx(0.2) and ok.ci_pts[0] < 0.2 < ok.ci_pts[1] < 1.0
    assert (ok.reference_only, ok.candidate_only) == (300, 200)

    labels, ref, cand = _paired(50000, 0.75, b=1500, c=200)  # drop 2.6 pts
    bad = compare_paired(ref, cand, labels, budget_pts=1.0)
    assert bad.verdict == "fail" and not bad and bad.ci_pts[0] > 1.0 and bad.mcnemar_p < 1e-100

    labels, ref, cand = _paired(1000, 0.75, b=25, c=20)  # drop 0.5 pt on 1000 images
    unsure = compare_paired(ref, cand, labels, budget_pts=1.0)
    assert unsure.verdict == "inconclusive" and not unsure
    assert "too few" in unsure.reason and unsure.needed_n > 1000


def test_disagreements_include_different_wrong_answers():
    labels, ref, cand = _paired(2000, 0.7, b=10, c=5)
    wrong_both = np.nonzero((ref != labels) & (cand != labels))[0][:7]
    cand[wrong_both] = (labels[wrong_both] + 50) % 100  # both wrong, different classes
    r = compare_paired(ref, cand, labels, budget_pts=1.0)
    assert r.disagreements == 10 + 5 + 7
    assert r.agreement == pytest.approx(1 - 22 / 2000)


def test_compare_accuracy_results_requires_the_same_images():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 10, 300)
    a = compute_accuracy(_logits_for(labels, 10, rng), labels)
    b = compute_accuracy(_logits_for(labels, 10, rng), labels)
    same = compare_paired(a, b, budget_pts=2.0)
    assert same.verdict == "pass" and same.drop_pts == 0.0 and same.mcnemar_p == 1.0 and same.disagreements == 0
    # zero flips in 300 images still cannot rule out a 0.5 pt drop (about 1 % flips would often show none)
    assert compare_paired(a, b, budget_pts=0.5).verdict == "inconclusive"
    other = compute_accuracy(_logits_for(labels[::-1].copy(), 10, rng), labels[::-1].copy())
    with pytest.raises(DataError, match="same images"):
        compare_paired(a, other, budget_pts=0.5)


def test_paired_json_round_trip():
    labels, ref, cand = _paired(500, 0.8, b=12, c=4)
    r = compare_paired(ref, cand, labels, budget_pts=1.0)
    back = PairedComparison.from_json(json.loads(json.dumps(r.to_json())))
    assert back == r and bool(back) == bool(r)


def test_resolvable_states_when_the_set_is_too_small():
    small = resolvable(1.0, 1000, discordant_rate=0.03)
    assert not small.ok and "too small" in small.message and small.needed_n == 1153
    assert small.half_width_pts == pytest.approx(100 * 1.959964 * math.sqrt(0.03 / 1000), rel=1e-5)
    big = resolvable(1.0, 50000, discordant_rate=0.03)
    assert big.ok and big.half_width_pts < 0.2
    with pytest.raises(UsageError):
        resolvable(0, 1000, discordant_rate=0.03)


def test_relative_budget():
    assert relative_budget_pts(0.7646, 0.01) == pytest.approx(0.7646)
    with pytest.raises(UsageError):
        compare_paired(np.zeros(3, int), np.zeros(3, int), np.zeros(3, int), budget_pts=-1)
