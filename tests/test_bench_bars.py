"""The optimization bars can fail: each rule of ``benchmarks/bars.py`` on rows built by hand."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bars():
    spec = importlib.util.spec_from_file_location("bench_bars", ROOT / "benchmarks" / "bars.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def row(recipe: str, runtime: str = "onnxruntime", *, model: str = "m", precision: str = "int8",
        drop: float = 0.0, ci: tuple[float, float] = (-0.3, 0.3), unseen: tuple[float, float, float] | None = None,
        control: tuple[float, float, float] | None = None, ratios: list[float] | None = None,
        p50: float | None = None, fp32_p50: float | None = None, **extra) -> dict:
    art = f"{model}-{recipe}"
    r = {"model": model, "recipe": recipe, "artifact": art, "runtime": runtime, "precision": precision,
         "status": "ok", "key": f"{art}/{runtime}/{precision}", "reference": f"{model}-fp32/onnxruntime/fp32",
         "drop_pts": drop, "ci_pts": list(ci), "p50_ms": p50, "fp32_p50_ms": fp32_p50,
         "ac_unseen": None if unseen is None else {"drop_pts": unseen[0], "ci_pts": [unseen[1], unseen[2]], "n": 1000},
         "vs_control": None if control is None else {"drop_pts": control[0], "ci_pts": [control[1], control[2]]},
         "paired": None if ratios is None else {"ratios": ratios}}
    r.update(extra)
    return r


FAST = [0.70, 0.72, 0.71, 0.69, 0.73, 0.70, 0.71, 0.72]      # candidate/FP32 per round: about 1.4x faster
SLOW = [1.30, 1.28, 1.31, 1.29, 1.33, 1.30, 1.27, 1.32]


# (a) the upper bound, not the point ---------------------------------------------------------------------

def test_int8_point_within_budget_but_upper_bound_over_is_not_met(bars):
    rows = [row("int8-ort", drop=0.2, ci=(-0.4, 0.8))]
    ok, text = bars.int8_bar(rows, "m")
    assert not ok and "NOT MET" in text and "upper +0.80" in text and "point +0.20" in text
    ok, text = bars.int8_bar([row("int8-ort", drop=0.1, ci=(-0.2, 0.45))], "m")
    assert ok and ": met" in text


def test_the_interval_on_images_accuracy_control_never_saw_is_the_one_judged(bars):
    # all images: within; the half accuracy control did not choose on: over
    rows = [row("int8-ort", drop=0.0, ci=(-0.3, 0.3), unseen=(0.3, -0.4, 1.0))]
    assert bars.upper_pts(rows[0]) == 1.0 and not bars.int8_bar(rows, "m")[0]


def test_pruning_takes_the_larger_upper_bound_of_parent_and_same_recovery_control(bars):
    r = row("pruned-30", precision="fp32", drop=-1.0, ci=(-2.0, 0.1), control=(0.4, -0.3, 1.2), ratios=FAST)
    assert bars.upper_pts(r) == 1.2 and bars.point_pts(r) == 0.4
    ok, text = bars.prune_bar([r], "m")
    assert not ok and "accuracy" in text


# (b) one artifact, one verdict: its worst runtime --------------------------------------------------------

def test_an_artifact_on_two_runtimes_counts_once_judged_on_its_worst_runtime(bars):
    rows = [row("int8-ort", "onnxruntime", ci=(-0.2, 0.4)), row("int8-ort", "openvino", ci=(-0.1, 0.7))]
    arts = bars.per_artifact(rows)
    assert list(arts) == ["m-int8-ort"] and len(arts["m-int8-ort"]["runtimes"]) == 2
    assert arts["m-int8-ort"]["upper_pts"] == 0.7 and arts["m-int8-ort"]["worst"] == "openvino"
    ok, text = bars.int8_bar(rows, "m")
    assert not ok and "over 2 runtime(s)" in text


def test_speed_of_an_artifact_is_its_least_favourable_runtime(bars):
    rows = [row("pruned-30", "onnxruntime", precision="fp32", ci=(-0.5, 0.5), ratios=FAST),
            row("pruned-30", "openvino", precision="fp32", ci=(-0.5, 0.5), ratios=SLOW)]
    assert bars.per_artifact(rows)["m-pruned-30"]["speed"]["verdict"] == "slower"
    ok, text = bars.prune_bar(rows, "m")
    assert not ok and "speed on openvino: slower" in text
    ok, _ = bars.prune_bar([rows[0], {**rows[1], "paired": {"ratios": FAST}}], "m")
    assert ok


# (c) no best-of-N: the declared recipe, never the best row ---------------------------------------------

def test_a_better_undeclared_int8_row_does_not_meet_the_bar(bars):
    rows = [row("int8-ort", ci=(0.1, 1.5), drop=0.8), row("int8-nncf-onnx", ci=(-0.3, 0.2), drop=-0.05)]
    ok, text = bars.int8_bar(rows, "m")
    assert not ok and "declared int8-ort" in text and "not counted" in text and "int8-nncf-onnx: within" in text
    ok, _ = bars.int8_bar([rows[1]], "m")
    assert not ok  # the declared recipe missing is not met either


def test_a_better_undeclared_pruning_ratio_does_not_meet_the_bar(bars):
    good = row("pruned-20", precision="fp32", ci=(-0.5, 0.5), ratios=FAST)
    bad = row("pruned-30", precision="fp32", ci=(0.5, 2.5), drop=1.5, ratios=FAST)
    ok, text = bars.prune_bar([good, bad], "m")
    assert not ok and "declared pruned-30" in text and "not counted: pruned-20" in text


# (d) faster only from a paired, interleaved interval that excludes 1 -------------------------------------

def test_paired_rounds_that_measured_slower_are_reported_slower(bars):
    sp = bars.speed(row("int8-ort", ratios=SLOW))
    assert sp["verdict"] == "slower" and sp["ci"][0] > 1 and sp["ratio"] > 1
    assert "slower" in bars.speed_text(sp) and "0.77x" in bars.speed_text(sp)
    assert bars.speed(row("int8-ort", ratios=FAST))["verdict"] == "faster"


def test_paired_rounds_that_straddle_one_are_within_noise_and_few_rounds_give_no_verdict(bars):
    assert bars.speed(row("x", ratios=[0.9, 1.1, 0.95, 1.05, 0.97, 1.02, 0.99, 1.01]))["verdict"] == "within noise"
    assert bars.speed(row("x", ratios=[0.7, 0.7, 0.7]))["verdict"] == "too few rounds"


def test_sequential_windows_support_no_speed_claim(bars):
    sp = bars.speed(row("int8-ort", p50=1.0, fp32_p50=2.0))
    assert sp["verdict"] == "unpaired" and sp["ratio"] == 0.5 and "unpaired, no verdict" in bars.speed_text(sp)
    ok, text = bars.prune_bar([row("pruned-30", precision="fp32", ci=(-0.5, 0.5), p50=1.0, fp32_p50=2.0)], "m")
    assert not ok and "speed on onnxruntime: unpaired" in text


def test_a_faster_claim_without_paired_support_fails_the_speed_bar(bars):
    honest = [row("int8-ort", ratios=FAST, speed_verdict="faster"), row("int8-ort", "openvino", ratios=SLOW,
                                                                        speed_verdict="slower")]
    assert bars.speed_bar(honest, "m")[0]
    measured_slower = [row("int8-ort", ratios=SLOW, speed_verdict="faster")]
    ok, text = bars.speed_bar(measured_slower, "m")
    assert not ok and "paired comparison says slower" in text
    sequential = [row("int8-ort", p50=1.0, fp32_p50=2.0, speed_verdict="faster")]
    assert not bars.speed_bar(sequential, "m")[0]


def test_the_gain_bar_uses_the_conservative_end_of_the_paired_interval(bars):
    # median 0.86 (14 % faster) with rounds up to 0.90: faster, but not >= 15 % faster
    r = row("pruned-30", precision="fp32", ci=(-0.5, 0.5), ratios=[0.84, 0.85, 0.86, 0.86, 0.86, 0.87, 0.88, 0.90])
    assert bars.speed(r)["verdict"] == "faster"
    assert not bars.prune_bar([r], "m")[0]


def test_bars_module_is_torch_free():
    code = ("import sys; sys.path.insert(0, 'benchmarks'); import bars; "
            "assert 'torch' not in sys.modules, 'benchmarks/bars.py imported torch'")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_bars_lists_each_bar_once_per_model(bars):
    rows = [row("int8-ort", ci=(-0.1, 0.3), ratios=FAST, speed_verdict="faster"),
            row("int8-ort", model="n", ci=(0.1, 0.9), ratios=SLOW, speed_verdict="slower")]
    lines = bars.bars(rows)
    assert len(lines) == 4 and lines[0].endswith(")") and ", m, declared" in lines[0] and ", n, declared" in lines[2]
    assert ": met" in lines[0] and "NOT MET" in lines[2] and "1 slower" in lines[3]


def test_unjudged_pruning_keeps_the_model_and_the_numbers_without_a_verdict(bars):
    rows = [row("pruned-30", model="efficientnet_b0", precision="fp32", ci=(-0.5, 0.5), ratios=FAST)]
    judged, = bars.bars(rows)
    listed, = bars.bars(rows, judge_prune=False)
    assert ": met (" in judged and listed.startswith("pruning, efficientnet_b0: not judged here")
    assert "met" not in listed.split("prune.md): ", 1)[1].split("(")[0] and "upper +0.50" in listed


def test_a_speed_bar_without_any_paired_row_says_it_is_vacuous(bars):
    ok, text = bars.speed_bar([row("int8-ort", p50=1.0, fp32_p50=2.0, speed_verdict="unpaired")], "m")
    assert ok and "vacuously" in text
    ok, text = bars.speed_bar([row("int8-ort", ratios=SLOW, speed_verdict="slower")], "m")
    assert ok and "vacuously" not in text


@pytest.mark.parametrize("name", ["optimize", "prune"])
def test_the_committed_bars_are_what_bars_py_says_of_the_committed_rows(bars, name):
    """A change to the rules without re-judging the committed results (optimize.py --from-committed) fails."""
    import json

    doc = json.loads((ROOT / "benchmarks" / "results" / f"{name}.json").read_text(encoding="utf-8"))
    assert doc["bars"] == bars.bars(doc["rows"], judge_prune=name == "prune")
    md = (ROOT / "benchmarks" / "results" / f"{name}.md").read_text(encoding="utf-8")
    assert all(f"- {line}" in md for line in doc["bars"])


# accuracy control, judged out of sample ------------------------------------------------------------------

def _decision(model: str = "m", recipe: str = "int8-ort", *, accepted: bool = True, step: str = "ran") -> dict:
    return {"model": model, "recipe": recipe, "artifact": f"{model}-{recipe}", "step": step, "note": None,
            "budget_pts": 0.5, "confidence": 0.95, "accepted": accepted, "validation_n": 1000,
            "validation_point_pts": -0.1, "validation_upper_pts": 0.45}


@pytest.mark.parametrize(("drop", "ci", "verdict"), [
    (-0.1, (-0.4, 0.2), "holds"),           # the test bound within the budget
    (0.3, (-0.2, 0.8), "not resolved"),     # the point within, the bound past it
    (0.9, (0.2, 1.6), "BROKEN"),            # accepted on validation, past the budget on test
])
def test_accuracy_control_is_judged_on_the_test_split(bars, drop, ci, verdict):
    out, = bars.ac_out_of_sample([_decision()], [row("int8-ort", drop=drop, ci=ci, n=2000)])
    assert out["verdict"] == verdict and out["test_upper_pts"] == ci[1] and out["test_n"] == 2000


def test_accuracy_control_breaks_on_its_worst_runtime_not_its_best(bars):
    rows = [row("int8-ort", drop=0.0, ci=(-0.3, 0.3)), row("int8-ort", "openvino", drop=0.8, ci=(0.1, 1.5))]
    out, = bars.ac_out_of_sample([_decision()], rows)
    assert out["verdict"] == "BROKEN" and out["test_worst_runtime"] == "openvino"
    assert out["runtimes"] == ["onnxruntime", "openvino"]


def test_a_refused_or_unbenched_decision_is_listed_never_dropped(bars):
    refused, unbenched = bars.ac_out_of_sample(
        [_decision(accepted=False, step="failed"), _decision(recipe="int8-nncf-openvino")], [])
    assert refused["verdict"] == "refused" and unbenched["verdict"] == "not benched"
    assert unbenched["test_upper_pts"] is None


def test_the_committed_accuracy_control_table_is_what_bars_py_says(bars):
    """optimize.json's out-of-sample verdicts recomputed from its own decisions and rows (a stale file has none)."""
    import json

    doc = json.loads((ROOT / "benchmarks" / "results" / "optimize.json").read_text(encoding="utf-8"))
    if doc.get("provenance", {}).get("status") == "stale":
        pytest.skip("results/optimize.json is marked stale (listed in benchmarks/README.md); regenerate it")
    ac = doc["accuracy_control"]
    added = {"verdict", "test_n", "test_point_pts", "test_upper_pts", "test_ci_pts", "test_worst_runtime", "runtimes",
             "test_source"}
    decisions = [{k: v for k, v in a.items() if k not in added} for a in ac]
    assert ac and bars.ac_out_of_sample(decisions, doc["rows"]) == ac
    md = (ROOT / "benchmarks" / "results" / "optimize.md").read_text(encoding="utf-8")
    assert f"**Out of {len(ac)} accuracy-controlled artifacts: the budget holds (upper bound) for " in md


def test_accepted_on_validation_but_broken_in_the_quantize_steps_own_test_check_is_broken(bars):
    d = {**_decision(step="failed"), "breaks_on_test": True,
         "step_test": {"n": 1000, "drop_pts": 0.9, "ci_pts": [0.1, 1.7], "runtime": "onnxruntime"}}
    out, = bars.ac_out_of_sample([d], [])
    assert out["verdict"] == "BROKEN" and out["test_point_pts"] == 0.9 and out["test_source"] == "quantize step"
