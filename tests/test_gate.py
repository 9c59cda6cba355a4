"""``edgekit gate``: paired accuracy, agreement, latency against noise, refusals, outputs, exit codes.

The bench reports are crafted from the result dataclasses (predictions, labels
and latency samples chosen per test), so every verdict below follows from the
numbers the test sets up. Real-model gates (a damaged INT8 model fails, a
faithful one passes) live with the quantize/bench integration tests.
"""

from __future__ import annotations

import dataclasses
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgekit.bench.accuracy import compute_accuracy
from edgekit.bench.environment import Environment
from edgekit.bench.harness import LatencyResult
from edgekit.bench.results import ArtifactInfo, BenchReport, BenchResult, write_report
from edgekit.bench.stats import LatencyStats
from edgekit.cli.main import cli
from edgekit.gate import (
    BASELINE_VERSION,
    BaselineError,
    GateOptions,
    IncompatibleBaseline,
    baseline_from_report,
    gate_reports,
    junit_xml,
    load_baseline,
    markdown_summary,
    run_gate,
    write_baseline,
)
from edgekit.runtime.base import RunnerInfo

CLASSES = ("Bear", "Bird", "Cat", "Cow", "Dog", "Elephant", "Giraffe", "Horse", "Sheep", "Zebra")
PRE = {"input_size": [224, 224], "crop_pct": 0.875, "interpolation": "bilinear", "mean": [0.485, 0.456, 0.406],
       "std": [0.229, 0.224, 0.225], "channel_order": "RGB", "layout": "NCHW", "resize_size": 256}


def labels_for(n: int) -> np.ndarray:
    return np.arange(n) % len(CLASSES)


def predictions(labels: np.ndarray, *, wrong: int, seed: int = 0, only_class: int | None = None) -> np.ndarray:
    """``labels`` with ``wrong`` images (chosen by ``seed``, optionally all of one class) predicted wrong."""
    rng = np.random.default_rng(seed)
    pool = np.flatnonzero(labels == only_class) if only_class is not None else np.arange(len(labels))
    idx = rng.choice(pool, size=wrong, replace=False)
    pred = labels.copy()
    pred[idx] = (labels[idx] + 1) % len(CLASSES)
    return pred


def latency(p50_ms: float, cv: float, *, n: int = 400, seed: int = 0) -> LatencyResult:
    rng = np.random.default_rng(seed)
    ns = np.clip(rng.normal(p50_ms * 1e6, cv * p50_ms * 1e6, size=n), 1e3, None).astype(np.int64)
    stats = LatencyStats.from_ns(ns)
    return LatencyResult(stats=stats, cold_ms=3 * p50_ms, warmup_s=1.0, warmup_iterations=10,
                         duration_s=float(ns.sum()) / 1e9, iterations=n, cut_short=False, n_distinct_samples=64,
                         n_samples_visited=64, seed=seed, settings={})


def env(cpu: str = "Intel(R) Xeon(R) Platinum 8480+") -> Environment:
    return Environment(cpu_model=cpu, board=None, arch="x86_64", physical_cores=2, logical_cores=2, affinity=None,
                       cpu_flags=(), governor=None, memory_total_mb=None, cpu_quota=None, os="Linux", kernel="6",
                       python="3.11", versions={}, thread_env={})


def row(*, pred: np.ndarray | None, labels: np.ndarray, lat: LatencyResult | None, model: str = "mobilenetv3",
        precision: str = "int8", runtime: str = "onnxruntime", status: str = "ok", dataset: str = "animals:heldout",
        threads: int = 2, artifact: str = "mnv3-int8") -> BenchResult:
    acc = None
    if pred is not None:
        logits = np.eye(len(CLASSES), dtype=np.float32)[pred]
        acc = compute_accuracy(logits, labels, class_names=CLASSES)
        acc = dataclasses.replace(acc, extra={"dataset": dataset, "eval_key": "k"})
    return BenchResult(key=f"{artifact}/{runtime}:cpu/{precision}", artifact=artifact, model=model, runtime=runtime,
                       device="cpu", precision=precision, status=status,
                       reason=None if status == "ok" else "it broke",
                       runner=RunnerInfo(runtime, "1.20", "cpu", precision, threads) if status == "ok" else None,
                       latency=lat if status == "ok" else None, accuracy=acc if status == "ok" else None)


def report(*rows: BenchResult, preprocess: dict | None = None, cpu: str = "Intel(R) Xeon(R) Platinum 8480+",
           num_classes: int = 10) -> BenchReport:
    arts = {}
    for r in rows:
        arts[r.artifact] = ArtifactInfo(
            name=r.artifact, path=f"/tmp/{r.artifact}", model=r.model, format="onnx", precision=r.precision,
            model_file="model.onnx", model_sha256="ab" * 32, files={"model.onnx": "ab" * 32}, size_bytes=1 << 20,
            input_shape=(1, 3, 224, 224), input_dtype="float32", num_classes=num_classes, has_labels=True,
            weights_origin="checkpoint", preprocess=dict(preprocess or PRE))
    return BenchReport(target={"name": "cpu"}, settings={}, environment=env(cpu), artifacts=tuple(arts.values()),
                       results=tuple(rows), dataset={"name": "animals:heldout"}, created="2025-01-01T00:00:00+00:00",
                       edgekit_version="0.1.0", command=("edgekit", "bench"))


N = 2000
LAB = labels_for(N)
BASE = report(row(pred=predictions(LAB, wrong=200), labels=LAB, lat=latency(5.0, 0.02, seed=1)))


def check(result, name: str, row: str | None = None):
    (c,) = [c for c in result.checks if c.name == name and (row is None or c.row == row)]
    return c


# --------------------------------------------------------------------------- the rules


def test_identical_run_passes_every_check():
    cur = report(row(pred=predictions(LAB, wrong=200), labels=LAB, lat=latency(5.0, 0.02, seed=2)))
    res = gate_reports(cur, BASE, options=GateOptions(min_agreement=0.99, max_latency_increase_pct=10))
    assert res and res.passed
    acc = check(res, "accuracy")
    assert acc.outcome == "pass" and acc.details["lost"] == 0 and acc.details["gained"] == 0
    assert acc.details["budget_pts"] == pytest.approx(0.9)  # default: 1 % of the baseline top-1 (90 %)
    assert check(res, "agreement").current == pytest.approx(100.0)
    assert check(res, "latency.p50").outcome in ("pass", "within-noise")
    assert res.rows[0].class_changes == ()


def test_accuracy_regression_fails_with_mcnemar_and_ci():
    # 100 more images wrong of 2000: a 5 pt drop against a 1 pt budget
    pred = predictions(LAB, wrong=200)
    worse = pred.copy()
    right = np.flatnonzero(pred == LAB)[:100]
    worse[right] = (LAB[right] + 1) % 10
    cur = report(row(pred=worse, labels=LAB, lat=latency(5.0, 0.02, seed=2)))
    res = gate_reports(cur, BASE, options=GateOptions(max_top1_drop_pts=1.0))
    acc = check(res, "accuracy")
    assert not res and acc.outcome == "fail" and not acc.passed
    assert acc.details["drop_pts"] == pytest.approx(5.0)
    assert acc.details["ci_pts"][0] > 1.0  # the CI's lower end is above the budget
    assert acc.details["lost"] == 100 and acc.details["gained"] == 0
    assert acc.details["mcnemar_p"] < 1e-20
    assert check(res, "agreement").current == pytest.approx(95.0)


def test_relative_budget_is_a_percentage_of_the_baseline_top1():
    res = gate_reports(BASE, BASE, options=GateOptions(max_rel_drop_pct=2))
    assert check(res, "accuracy").details["budget_pts"] == pytest.approx(1.8)
    with pytest.raises(Exception, match="not both"):
        gate_reports(BASE, BASE, options=GateOptions(max_rel_drop_pct=2, max_top1_drop_pts=1))


def test_too_small_eval_set_is_inconclusive_and_the_flag_decides():
    lab = labels_for(100)
    base = report(row(pred=predictions(lab, wrong=10), labels=lab, lat=None))
    pred = predictions(lab, wrong=10)
    cur_pred = pred.copy()
    cur_pred[np.flatnonzero(pred == lab)[0]] = (lab[np.flatnonzero(pred == lab)[0]] + 1) % 10  # one image lost
    cur = report(row(pred=cur_pred, labels=lab, lat=None))
    res = gate_reports(cur, base, options=GateOptions(max_top1_drop_pts=2))
    acc = check(res, "accuracy")
    assert acc.outcome == "inconclusive" and acc.passed and res.passed
    assert "too few" in acc.message and acc.details["needed_n"] > 100
    assert any("inconclusive" in w for w in res.warnings)
    strict = gate_reports(cur, base, options=GateOptions(max_top1_drop_pts=2, inconclusive="fail"))
    assert not strict and check(strict, "accuracy").outcome == "inconclusive"
    # an observed drop beyond the budget that the set cannot confirm: the default judges the estimate
    tight = GateOptions(max_top1_drop_pts=0.5)
    acc = check(gate_reports(cur, base, options=tight), "accuracy")
    assert acc.outcome == "inconclusive" and not acc.passed and "exceeds the budget" in acc.message
    lenient = gate_reports(cur, base, options=dataclasses.replace(tight, inconclusive="pass"))
    assert lenient.passed and check(lenient, "accuracy").outcome == "inconclusive"


def test_latency_regression_outside_noise_fails_inside_noise_passes():
    def gate(p50: float, cv: float, base_cv: float):
        base = report(row(pred=None, labels=LAB, lat=latency(5.0, base_cv, seed=1)))
        cur = report(row(pred=None, labels=LAB, lat=latency(p50, cv, seed=2)))
        return check(gate_reports(cur, base, options=GateOptions(max_latency_increase_pct=10)), "latency.p50")

    clear = gate(6.5, 0.02, 0.02)  # +30 %, noise ~3 %: fails
    assert clear.outcome == "fail" and not clear.passed and clear.change > 25
    noisy = gate(5.6, 0.06, 0.06)  # +12 %, noise ~8.5 %: over the budget but inside the noise
    assert noisy.outcome == "within-noise" and noisy.passed
    assert noisy.change > 10 and noisy.details["increase_pct"] - noisy.details["noise_pct"] <= 10
    quiet = gate(5.6, 0.005, 0.005)  # the same +12 % on a quiet machine is a regression
    assert quiet.outcome == "fail"
    faster = gate(4.0, 0.02, 0.02)
    assert faster.outcome == "improved" and faster.passed


def test_rare_outliers_do_not_hide_a_latency_regression():
    def spiky(p50: float, seed: int) -> LatencyResult:
        lat = latency(p50, 0.02, seed=seed)
        ns = np.asarray([int(v * 1e6) for v in np.random.default_rng(seed).normal(p50, 0.02 * p50, 400)])
        ns[::50] *= 100  # 2 % of the calls hit a 100x scheduler hiccup: CV far above 100 %
        return dataclasses.replace(lat, stats=LatencyStats.from_ns(ns))

    base, cur = spiky(5.0, 1), spiky(6.5, 2)
    assert base.stats.cv > 1 and cur.stats.cv > 1
    c = check(gate_reports(report(row(pred=None, labels=LAB, lat=cur)), report(row(pred=None, labels=LAB, lat=base)),
                           options=GateOptions(max_latency_increase_pct=10)), "latency.p50")
    assert c.outcome == "fail" and c.details["noise_pct"] < 5  # the quantile spread, not the CV, sets the noise


def test_latency_p90_metric_and_report_only_default():
    base = report(row(pred=None, labels=LAB, lat=latency(5.0, 0.02, seed=1)))
    cur = report(row(pred=None, labels=LAB, lat=latency(8.0, 0.02, seed=2)))
    info = check(gate_reports(cur, base), "latency.p50")
    assert info.outcome == "info" and info.passed  # no budget: reported, not gated
    p90 = check(gate_reports(cur, base, options=GateOptions(latency_metric="latency.p90",
                                                            max_latency_increase_pct=5)), "latency.p90")
    assert p90.outcome == "fail" and p90.baseline == pytest.approx(base.results[0].latency.stats.p90)


def test_latency_on_other_hardware_or_threads_is_not_compared():
    base = report(row(pred=None, labels=LAB, lat=latency(5.0, 0.02, seed=1)))
    other_cpu = report(row(pred=None, labels=LAB, lat=latency(9.0, 0.02, seed=2)), cpu="AMD EPYC 7763")
    res = gate_reports(other_cpu, base, options=GateOptions(max_latency_increase_pct=10))
    assert res.passed and check(res, "latency.p50").outcome == "skipped"
    assert any("different hardware" in w for w in res.warnings)
    threads = report(row(pred=None, labels=LAB, lat=latency(9.0, 0.02, seed=2), threads=4))
    c = check(gate_reports(threads, base, options=GateOptions(max_latency_increase_pct=10)), "latency.p50")
    assert c.outcome == "skipped" and "4 threads" in c.message


def test_accuracy_improvement_is_reported():
    better = LAB.copy()  # the baseline got 200 wrong, this gets none wrong
    cur = report(row(pred=better, labels=LAB, lat=latency(5.0, 0.02, seed=2)))
    res = gate_reports(cur, BASE)
    acc = check(res, "accuracy")
    assert res.passed and acc.outcome == "improved" and acc.change == pytest.approx(10.0)
    assert "--update-baseline" in acc.message


def test_agreement_gate_and_per_class_changes():
    pred = predictions(LAB, wrong=200)
    cur_pred = pred.copy()
    cat = np.flatnonzero((LAB == 2) & (pred == LAB))[:60]  # "Cat" loses 60 of its 200 images
    cur_pred[cat] = 3
    cur = report(row(pred=cur_pred, labels=LAB, lat=None))
    res = gate_reports(cur, BASE, options=GateOptions(max_top1_drop_pts=5, min_agreement=0.99))
    assert check(res, "accuracy").passed  # 3 pts within the 5 pt budget (CI upper end about 3.8)
    agr = check(res, "agreement")
    assert agr.outcome == "fail" and agr.current == pytest.approx(97.0)
    (change,) = res.rows[0].class_changes
    assert change.name == "Cat" and change.lost == 60 and change.gained == 0 and change.flagged
    assert change.change_pts == pytest.approx(-30.0)


def test_status_missing_and_new_rows():
    fp32 = row(pred=predictions(LAB, wrong=190), labels=LAB, lat=latency(9.0, 0.02), precision="fp32",
               artifact="mnv3")
    base = report(BASE.results[0], fp32)
    broken = report(row(pred=None, labels=LAB, lat=None, status="error"), fp32)
    res = gate_reports(broken, base)
    status = check(res, "status", "mobilenetv3/onnxruntime:cpu/int8")
    assert not res and status.outcome == "fail" and "it broke" in status.message
    assert check(res, "accuracy", "mobilenetv3/onnxruntime:cpu/fp32").passed
    missing = gate_reports(report(fp32), base)
    (present,) = [c for c in missing.checks if c.name == "present"]
    assert not missing and present.outcome == "fail" and "int8" in present.row
    skipped = row(pred=None, labels=LAB, lat=None, runtime="tensorrt", status="skipped")
    gone = gate_reports(report(*base.results), report(*base.results, skipped))
    assert gone.passed and check(gone, "present").outcome == "info"  # it never ran: its absence is no regression
    extra = row(pred=predictions(LAB, wrong=200), labels=LAB, lat=None, runtime="openvino", artifact="mnv3-int8")
    new = gate_reports(report(*base.results, extra), base)
    assert new.passed and any(r.state == "new" and r.row.startswith("mobilenetv3/openvino") for r in new.rows)


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("case, match", [
    ("model", "different model"),
    ("classes", "different model"),
    ("class-names", "class 2: 'Cat' vs 'Lynx'"),
    ("preprocessing", "preprocessing differs"),
    ("dataset-size", "different dataset"),
    ("dataset-name", "different dataset"),
    ("labels", "different dataset"),
])
def test_incompatible_baselines_are_refused_with_the_reason(case, match):
    pred = predictions(LAB, wrong=200)
    if case == "model":
        cur = report(row(pred=pred, labels=LAB, lat=None, model="efficientnet_b0"))
    elif case == "classes":
        cur = report(row(pred=pred, labels=LAB, lat=None), num_classes=1000)
    elif case == "class-names":
        r = row(pred=pred, labels=LAB, lat=None)
        names = CLASSES[:2] + ("Lynx",) + CLASSES[3:]
        cur = report(dataclasses.replace(r, accuracy=dataclasses.replace(r.accuracy, class_names=names)))
    elif case == "preprocessing":
        cur = report(row(pred=pred, labels=LAB, lat=None), preprocess={**PRE, "crop_pct": 0.95})
    elif case == "dataset-size":
        lab = labels_for(1000)
        cur = report(row(pred=predictions(lab, wrong=100), labels=lab, lat=None))
    elif case == "dataset-name":
        cur = report(row(pred=pred, labels=LAB, lat=None, dataset="my-val"))
    else:
        lab = np.sort(LAB)  # the same images in another order cannot be paired
        cur = report(row(pred=lab, labels=lab, lat=None))
    with pytest.raises(IncompatibleBaseline, match=match) as e:
        gate_reports(cur, BASE)
    assert e.value.exit_code == 2
    if case == "preprocessing":
        assert "crop_pct 0.875 -> 0.95" in e.value.message


# --------------------------------------------------------------------------- baseline file


def test_baseline_round_trip_keeps_predictions_and_stays_compact(tmp_path):
    path = write_baseline(baseline_from_report(BASE, source="results.json"), tmp_path / "b.json")
    text = path.read_text()
    assert len(text.splitlines()) < 200  # 2000 images: per-image lists are packed on one line each
    b = load_baseline(path)
    (r,) = b.rows
    assert r.id == "mobilenetv3/onnxruntime:cpu/int8" and r.accuracy is not None and r.latency is not None
    np.testing.assert_array_equal(r.accuracy.predictions, BASE.results[0].accuracy.predictions)
    np.testing.assert_array_equal(r.accuracy.labels, LAB)
    assert r.accuracy.top1 == pytest.approx(0.9)
    assert r.accuracy.per_class_accuracy == tuple(BASE.results[0].accuracy.per_class_accuracy)
    assert r.latency.p50_ci == BASE.results[0].latency.stats.p50_ci
    assert r.preprocess == PRE and r.artifact["class_names"] == list(CLASSES)
    assert json.loads(text)["schema_version"] == BASELINE_VERSION
    assert run_gate(BASE, b).passed


@pytest.mark.parametrize("mutate, match", [
    (lambda d: d.update(schema_version=BASELINE_VERSION + 1), "newer than this edgekit"),
    (lambda d: d.update(schema="edgekit.bench"), "not an edgekit baseline"),
    (lambda d: d.pop("rows"), "missing field 'rows'"),
    (lambda d: d["rows"][0]["accuracy"].pop("predictions"), "missing field 'predictions'"),
    (lambda d: d["rows"][0]["accuracy"].update(predictions=[1, 2, 3]), "3 predictions"),
    (lambda d: next(iter(d["datasets"].values()))["labels"].reverse(), "do not match their sha256"),
])
def test_bad_baselines_are_refused(tmp_path, mutate, match):
    d = baseline_from_report(BASE).to_json()
    mutate(d)
    p = tmp_path / "b.json"
    p.write_text(json.dumps(d))
    with pytest.raises(BaselineError, match=match) as e:
        load_baseline(p)
    assert e.value.exit_code == 2


# --------------------------------------------------------------------------- the command


def _files(tmp_path: Path, cur: BenchReport) -> tuple[Path, Path]:
    results = write_report(cur, tmp_path / "results.json")
    baseline = write_baseline(baseline_from_report(BASE), tmp_path / "baseline.json")
    return results, baseline


def test_cli_exit_codes_and_outputs(tmp_path, monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    runner = CliRunner()
    ok, base = _files(tmp_path, report(row(pred=predictions(LAB, wrong=200), labels=LAB,
                                           lat=latency(5.0, 0.02, seed=2))))
    r = runner.invoke(cli, ["gate", str(ok), "--baseline", str(base), "--max-latency-increase", "10%"])
    assert r.exit_code == 0, r.output
    assert "gate passed" in r.output

    worse = predictions(LAB, wrong=400)
    bad = write_report(report(row(pred=worse, labels=LAB, lat=latency(7.0, 0.02, seed=2))), tmp_path / "bad.json")
    junit, summary = tmp_path / "out" / "gate.xml", tmp_path / "out" / "summary.md"
    before = base.read_bytes()
    r = runner.invoke(cli, ["gate", str(bad), "--baseline", str(base), "--max-top1-drop", "1",
                            "--max-latency-increase", "10", "--junit", str(junit), "--summary", str(summary)])
    assert r.exit_code == 1, r.output
    assert "gate failed" in r.output and "--update-baseline" in r.output
    assert base.read_bytes() == before  # the baseline changes only when asked

    suite = ET.parse(junit).getroot().find("testsuite")
    cases = {(c.get("classname"), c.get("name")): c for c in suite.iter("testcase")}
    rid = "edgekit.gate.mobilenetv3/onnxruntime:cpu/int8"
    assert set(cases) == {(rid, n) for n in ("status", "accuracy", "agreement", "latency.p50")}
    assert cases[(rid, "accuracy")].find("failure") is not None
    assert "exceeds the 1 pt budget" in cases[(rid, "accuracy")].find("failure").get("message")
    assert cases[(rid, "latency.p50")].find("failure") is not None
    assert cases[(rid, "status")].find("failure") is None
    assert suite.get("failures") == "2" and suite.get("tests") == "4"

    md = summary.read_text()
    assert md.startswith("## ❌ edgekit gate: fail (2 of 4 checks failed)")
    assert "| `mobilenetv3/onnxruntime:cpu/int8` | accuracy | 90.00 % | 80.00 % | -10.00 pts" in md
    assert "--update-baseline" in md and "Per-class accuracy changes" in md

    r = runner.invoke(cli, ["gate", str(tmp_path / "nope.json"), "--baseline", str(base)])
    assert r.exit_code == 2 and "does not exist" in r.output


def test_cli_corrupt_truncated_and_incompatible_inputs_exit_2(tmp_path):
    runner = CliRunner()
    ok, base = _files(tmp_path, BASE)
    trunc = tmp_path / "trunc.json"
    trunc.write_text(ok.read_text()[:-200])
    r = runner.invoke(cli, ["gate", str(trunc), "--baseline", str(base)])
    assert r.exit_code == 2 and "truncated" in r.output
    junk = tmp_path / "junk.json"
    junk.write_text("[1, 2]")
    r = runner.invoke(cli, ["gate", str(junk), "--baseline", str(base)])
    assert r.exit_code == 2 and "not an edgekit bench results file" in r.output
    bad_base = tmp_path / "truncbase.json"
    bad_base.write_text(base.read_text()[: len(base.read_text()) // 2])
    r = runner.invoke(cli, ["gate", str(ok), "--baseline", str(bad_base)])
    assert r.exit_code == 2 and "baseline file" in r.output and "not valid JSON" in r.output
    other = write_report(report(row(pred=predictions(LAB, wrong=200), labels=LAB, lat=None, dataset="other")),
                         tmp_path / "other.json")
    junit = tmp_path / "j.xml"
    r = runner.invoke(cli, ["gate", str(other), "--baseline", str(base), "--junit", str(junit)])
    assert r.exit_code == 2 and "different dataset" in r.output
    err = ET.parse(junit).getroot().find("testsuite/testcase/error")
    assert err is not None and "different dataset" in err.get("message")
    r = runner.invoke(cli, ["gate", str(ok), "--baseline", str(base), "--max-top1-drop", "1", "--max-rel-drop", "1"])
    assert r.exit_code == 2 and "not both" in r.output


def test_cli_update_baseline_only_when_asked(tmp_path):
    runner = CliRunner()
    target = tmp_path / "ci" / "baseline.json"
    worse = write_report(report(row(pred=predictions(LAB, wrong=400), labels=LAB, lat=latency(5.0, 0.02))),
                         tmp_path / "results.json")
    r = runner.invoke(cli, ["gate", str(worse), "--baseline", str(target)])
    assert r.exit_code == 2 and not target.exists()
    base_results = write_report(BASE, tmp_path / "base.json")
    r = runner.invoke(cli, ["gate", str(base_results), "--baseline", str(target), "--update-baseline"])
    assert r.exit_code == 0, r.output
    assert "new baseline with 1 rows" in r.output and target.is_file()
    r = runner.invoke(cli, ["gate", str(worse), "--baseline", str(target)])
    assert r.exit_code == 1
    r = runner.invoke(cli, ["gate", str(worse), "--baseline", str(target), "--update-baseline"])
    assert r.exit_code == 0 and "top-1 90.00 % -> 80.00 % (-10.00 pts)" in r.output
    assert runner.invoke(cli, ["gate", str(worse), "--baseline", str(target)]).exit_code == 0
    assert not list(target.parent.glob(".*.tmp"))  # written atomically, no temp file left
    newer = json.loads(target.read_text())
    newer["schema_version"] = BASELINE_VERSION + 1
    target.write_text(json.dumps(newer))
    r = runner.invoke(cli, ["gate", str(worse), "--baseline", str(target), "--update-baseline"])
    assert r.exit_code == 2 and "refusing to downgrade" in r.output


def test_github_step_summary_is_appended_when_no_summary_is_given(tmp_path, monkeypatch):
    step = tmp_path / "step.md"
    step.write_text("earlier step output\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step))
    ok, base = _files(tmp_path, BASE)
    r = CliRunner().invoke(cli, ["gate", str(ok), "--baseline", str(base)])
    assert r.exit_code == 0, r.output
    text = step.read_text()
    assert text.startswith("earlier step output\n## ✅ edgekit gate: pass")
    r = CliRunner().invoke(cli, ["gate", str(ok), "--baseline", str(base), "--summary", str(step)])
    assert r.exit_code == 0 and step.read_text().count("## ✅ edgekit gate: pass") == 2  # appended again
    r = CliRunner().invoke(cli, ["gate", str(ok), "--baseline", str(base), "--min-agreement", "97"])
    assert r.exit_code == 2 and "0.97 or 97%" in r.output


def test_json_output_and_markdown_junit_of_a_passing_gate(tmp_path):
    res = gate_reports(BASE, BASE, options=GateOptions(max_latency_increase_pct=10))
    root = ET.fromstring(junit_xml(res))
    assert root.get("failures") == "0" and len(root.findall("testsuite/testcase")) == 4
    md = markdown_summary(res)
    assert md.startswith("## ✅ edgekit gate: pass") and "an inconclusive verdict judged by the observed drop" in md
    ok, base = _files(tmp_path, BASE)
    r = CliRunner().invoke(cli, ["gate", str(ok), "--baseline", str(base), "--json"])
    data = json.loads(r.output)
    assert r.exit_code == 0 and data["verdict"] == "pass" and data["rows"][0]["paired"]["n"] == N


def test_against_compares_int8_with_the_fp32_baseline_row():
    lab = LAB
    fp32 = row(pred=predictions(lab, wrong=200), labels=lab, lat=latency(5.0, 0.02, seed=1), precision="fp32",
               artifact="mnv3")
    base = baseline_from_report(report(fp32))
    # a faithful INT8: 4 images flip (2 lost, 2 gained); a broken one: 150 more images wrong
    good_pred = predictions(lab, wrong=200).copy()
    right = np.flatnonzero(good_pred == lab)[:2]
    wrong = np.flatnonzero(good_pred != lab)[:2]
    good_pred[right] = (lab[right] + 1) % len(CLASSES)
    good_pred[wrong] = lab[wrong]
    good = row(pred=good_pred, labels=lab, lat=latency(2.0, 0.02, seed=3), precision="int8", artifact="mnv3-int8")
    skipped = row(pred=None, labels=lab, lat=None, precision="fp16", status="skipped", artifact="mnv3-fp16")
    opts = GateOptions(max_top1_drop_pts=1.0, min_agreement=0.99, max_latency_increase_pct=10, against="fp32")
    res = run_gate(report(good, skipped), base, options=opts)
    assert res.passed, [c.message for c in res.failures]
    acc = check(res, "accuracy", "mobilenetv3/onnxruntime:cpu/int8 vs mobilenetv3/onnxruntime:cpu/fp32")
    assert acc.details["lost"] == 2 and acc.details["gained"] == 2 and acc.outcome == "pass"
    assert check(res, "latency.p50").outcome == "improved"
    fp16_row = "mobilenetv3/onnxruntime:cpu/fp16 vs mobilenetv3/onnxruntime:cpu/fp32"
    assert check(res, "status", fp16_row).outcome == "info"
    # without --against the INT8 row has no baseline row of its id: only reported, and the FP32 row is missing
    plain = run_gate(report(good), base, options=GateOptions(max_top1_drop_pts=1.0))
    assert not plain.passed and check(plain, "present", "mobilenetv3/onnxruntime:cpu/fp32").outcome == "fail"
    bad = row(pred=predictions(lab, wrong=350), labels=lab, lat=latency(2.0, 0.02, seed=3), artifact="mnv3-int8")
    res = run_gate(report(bad), base, options=opts)
    assert not res.passed and check(res, "accuracy").outcome == "fail"


def test_row_unsupported_on_other_hardware_is_skipped_not_failed():
    base = report(row(pred=predictions(LAB, wrong=200), labels=LAB, lat=latency(5.0, 0.02), precision="bf16"),
                  cpu="Intel(R) Xeon(R) Platinum 8480+")
    now = row(pred=None, labels=LAB, lat=None, precision="bf16", status="unsupported")
    other = run_gate(report(now, cpu="AMD EPYC 7763 64-Core Processor"), baseline_from_report(base))
    c = check(other, "status")
    assert other.passed and c.outcome == "skipped" and "different hardware" in c.message
    same = run_gate(report(now), baseline_from_report(base))
    assert not same.passed and check(same, "status").outcome == "fail"
    broken = dataclasses.replace(now, status="error")
    assert not run_gate(report(broken, cpu="AMD EPYC 7763 64-Core Processor"), baseline_from_report(base)).passed


# --------------------------------------------------------------------------- latency ratio within a run


def _pair(fp32_ms: float, int8_ms: float, *, seed: int, cpu: str = "Intel(R) Xeon(R) Platinum 8480+") -> BenchReport:
    return report(row(pred=None, labels=LAB, lat=latency(fp32_ms, 0.02, seed=seed), precision="fp32",
                      artifact="mnv3-fp32"),
                  row(pred=None, labels=LAB, lat=latency(int8_ms, 0.02, seed=seed + 1)), cpu=cpu)


def test_latency_ratio_to_fp32_of_the_same_run_cancels_the_machine_and_catches_a_slower_int8():
    base = _pair(10.0, 5.0, seed=1)  # INT8 at 0.50 of FP32
    opts = GateOptions(max_ratio_increase_pct=10)
    # a machine twice as slow: both rows slower, the ratio unchanged -> passes (the absolute latency would not)
    slow_machine = gate_reports(_pair(20.0, 10.0, seed=3), base, options=opts)
    c = check(slow_machine, "latency-ratio.p50", row="mobilenetv3/onnxruntime:cpu/int8")
    assert c.passed and c.outcome == "pass" and c.current == pytest.approx(0.5, rel=0.02)
    # INT8 lost its speed-up (0.50 -> 0.80 of FP32) on the same machine speed: fails, beyond the noise
    lost = gate_reports(_pair(10.0, 8.0, seed=3), base, options=opts)
    c = check(lost, "latency-ratio.p50", row="mobilenetv3/onnxruntime:cpu/int8")
    assert not c.passed and c.outcome == "fail" and c.change == pytest.approx(60, abs=3)
    assert not lost.passed
    # and on a twice-faster machine the same loss still fails: the machine cancels, the regression does not
    faster = gate_reports(_pair(5.0, 4.0, seed=3, cpu="AMD EPYC 7763"), base, options=opts)
    assert check(faster, "latency-ratio.p50", row="mobilenetv3/onnxruntime:cpu/int8").outcome == "fail"
    # inside the recorded noise: a 12 % increase with noisy runs (CV 10 %) is within noise, not a failure
    noisy_base = report(row(pred=None, labels=LAB, lat=latency(10.0, 0.10, seed=1), precision="fp32",
                            artifact="mnv3-fp32"), row(pred=None, labels=LAB, lat=latency(5.0, 0.10, seed=2)))
    noisy_cur = report(row(pred=None, labels=LAB, lat=latency(10.0, 0.10, seed=3), precision="fp32",
                           artifact="mnv3-fp32"), row(pred=None, labels=LAB, lat=latency(5.6, 0.10, seed=4)))
    c = check(gate_reports(noisy_cur, noisy_base, options=opts), "latency-ratio.p50",
              row="mobilenetv3/onnxruntime:cpu/int8")
    assert c.passed and c.outcome == "within-noise"
    # the FP32 row itself has no ratio check, and without the option nothing is added
    assert not [x for x in lost.checks if x.name.startswith("latency-ratio") and "fp32" in x.row]
    assert not [x for x in gate_reports(_pair(10.0, 8.0, seed=3), base).checks if x.name.startswith("latency-ratio")]


def test_cli_max_ratio_increase(tmp_path):
    base = tmp_path / "base.json"
    write_report(_pair(10.0, 5.0, seed=1), tmp_path / "b.json")
    runner = CliRunner()
    assert runner.invoke(cli, ["gate", str(tmp_path / "b.json"), "--baseline", str(base),
                               "--update-baseline"]).exit_code == 0
    write_report(_pair(10.0, 8.0, seed=3), tmp_path / "c.json")
    r = runner.invoke(cli, ["gate", str(tmp_path / "c.json"), "--baseline", str(base), "--max-ratio-increase", "10"])
    assert r.exit_code == 1, r.output
    assert "ratio" in r.output


def test_fp16_is_planned_and_gated_on_the_cpu_target():
    """FP16 is gated wherever it runs: an FP16 ONNX artifact gets an ONNX Runtime row on the cpu target (it runs
    there), not a 'target does not list fp16' skip that no gate ever looks at."""
    from edgekit.bench.plan import plan_cells
    from edgekit.core.manifest import Manifest, WeightsInfo
    from edgekit.core.specs import PreprocessSpec, TensorSpec
    from edgekit.core.targets import load_target

    m = Manifest(model="m", family="mobilenetv3", source="timm:m", num_classes=10, weights=WeightsInfo("none"),
                 inputs=(TensorSpec("input", (1, 3, 16, 16)),), outputs=(TensorSpec("logits", (1, 10)),),
                 preprocess=PreprocessSpec(input_size=(16, 16)), precision="fp16")
    cells = plan_cells([m], load_target("cpu"), runtimes=("onnxruntime",))
    fp16 = [c for c in cells if c.precision == "fp16"]
    assert fp16 and all(c.reason is None for c in fp16), cells
