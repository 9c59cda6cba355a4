"""The verdict: each rule on constructed results, then on a real ``edgekit run`` output.

The constructed rows reuse ``test_gate``'s builders (predictions and latency
samples chosen per test), with the paired comparisons attached by the bench's
own :func:`~edgekit.bench.reference.attach_references`, so every outcome below
follows from numbers the test sets up.
"""

from __future__ import annotations

import dataclasses
import pytest

from edgekit.bench.reference import attach_references
from edgekit.bench.results import BenchReport, load_report
from edgekit.report.formats import markdown_text
from edgekit.report.html import render_html
from edgekit.verdict import Outcome, judge_model, judge_report, report_verdicts
from edgekit.verdict.render import terminal_lines
from tests.test_gate import LAB, labels_for, latency, predictions, report, row



def fp32(*, p50: float = 5.0, cv: float = 0.02, runtime: str = "onnxruntime", labels=LAB, seed: int = 1):
    return row(pred=predictions(labels, wrong=len(labels) // 10), labels=labels, lat=latency(p50, cv, seed=seed),
               precision="fp32", runtime=runtime, artifact="m-fp32")


def cand(name: str, *, p50: float, extra_wrong: int = 0, cv: float = 0.02, precision: str = "int8",
         runtime: str = "onnxruntime", labels=LAB, status: str = "ok", seed: int = 2):
    pred = predictions(labels, wrong=len(labels) // 10)  # the FP32 model's mistakes (10 %)
    if extra_wrong:  # break images the FP32 model gets right
        right = [i for i in range(len(labels)) if pred[i] == labels[i]][:extra_wrong]
        pred = pred.copy()
        pred[right] = (labels[right] + 1) % 10
    return row(pred=pred, labels=labels, lat=latency(p50, cv, seed=seed), precision=precision, runtime=runtime,
               artifact=name, status=status)


def judged(*rows, budget: float = 1.0, metric: str = "p50"):
    with_refs, _ = attach_references(rows, budget_pts=budget)
    (v,) = judge_report(report(*with_refs), metric=metric)
    return v, {c.artifact + "/" + c.precision + "/" + c.runtime: c for c in v.candidates}


def test_the_fastest_faithful_configuration_ships_and_the_others_say_why():
    v, c = judged(fp32(), cand("m-int8-fast", p50=2.0), cand("m-int8-faster", p50=1.5, runtime="openvino"))
    assert v and v.ship is not None and v.ship.artifact == "m-int8-faster" and v.ship.runtime == "openvino:cpu"
    assert v.ship.outcome is Outcome.SHIP and v.ship.speedup == pytest.approx(5.0 / 1.5, rel=0.05)
    assert c["m-int8-fast/int8/onnxruntime:cpu"].outcome is Outcome.BEATEN
    assert c["m-fp32/fp32/onnxruntime:cpu"].outcome is Outcome.BEATEN
    assert "ship m-int8-faster on openvino:cpu at int8" in v.summary() and "drop +0.00 pts" in v.summary()


def test_faster_but_over_the_budget_loses():
    v, c = judged(fp32(), cand("m-int8", p50=2.0, extra_wrong=120))  # 6 pts lost on 2,000 images
    lost = c["m-int8/int8/onnxruntime:cpu"]
    assert lost.outcome is Outcome.OVER_BUDGET and lost.drop_ci_pts[0] > 1.0
    assert "over the 1 pt budget" in lost.reason and "faster" in lost.reason  # its speed is said beside it
    assert v.ship.precision == "fp32"  # nothing qualifies: the FP32 baseline ships


def test_too_few_images_is_inconclusive_and_says_how_many_would_settle_it():
    small = labels_for(200)
    v, c = judged(fp32(labels=small), cand("m-int8", p50=2.0, extra_wrong=1, labels=small))  # 0.5 pt lost
    lost = c["m-int8/int8/onnxruntime:cpu"]
    assert lost.outcome is Outcome.INCONCLUSIVE and lost.needed_images is not None and lost.needed_images > 200
    assert f"about {lost.needed_images} paired images would settle it" in lost.reason
    lo, hi = lost.drop_ci_pts
    assert lo <= 1.0 < hi
    assert v.ship.precision == "fp32"
    # nothing flipped on a small set: inconclusive, and it says so instead of extrapolating a rate of 0
    v, c = judged(fp32(labels=small), cand("m-int8", p50=2.0, labels=small), budget=0.5)
    lost = c["m-int8/int8/onnxruntime:cpu"]
    assert lost.outcome is Outcome.INCONCLUSIVE and lost.needed_images is None
    assert "no image changed its top-1 correctness" in lost.reason


def test_slower_int8_loses_even_when_faithful():
    v, c = judged(fp32(p50=5.0), cand("m-int8", p50=6.5))  # INT8 on depthwise models often is
    lost = c["m-int8/int8/onnxruntime:cpu"]
    assert lost.outcome is Outcome.SLOWER and "1.30x the FP32 latency" in lost.reason
    assert v.ship.precision == "fp32"


def test_a_speedup_inside_the_noise_does_not_ship():
    v, c = judged(fp32(p50=5.0, cv=0.08), cand("m-int8", p50=4.9, cv=0.08))
    assert c["m-int8/int8/onnxruntime:cpu"].outcome is Outcome.WITHIN_NOISE
    assert v.ship.precision == "fp32"


def test_unstable_throttled_unsupported_and_invalid_rows_do_not_compete():
    unstable = cand("m-bf16", p50=1.0, cv=0.30, precision="bf16", runtime="openvino")
    throttled = dataclasses.replace(cand("m-int8-hot", p50=1.0, seed=5),
                                    warnings=("throttled: a passive trip point was reached during the window",))
    # (a warning alone is enough: reports written before telemetry's status existed)
    unsupported = dataclasses.replace(cand("m-fp16", p50=1.0, precision="fp16", status="unsupported"),
                                      reason="fp16 is not supported by this CPU")
    invalid = dataclasses.replace(cand("m-int8-lost", p50=1.0, seed=6, status="error"),
                                  status="invalid", reason="device nano-01 disconnected")
    v, c = judged(fp32(), unstable, throttled, unsupported, invalid, cand("m-int8", p50=2.0))
    assert c["m-bf16/bf16/openvino:cpu"].outcome is Outcome.UNSTABLE
    assert c["m-int8-hot/int8/onnxruntime:cpu"].outcome is Outcome.THROTTLED
    assert c["m-fp16/fp16/onnxruntime:cpu"].outcome is Outcome.UNSUPPORTED
    lost = c["m-int8-lost/int8/onnxruntime:cpu"]
    assert lost.outcome is Outcome.INVALID and "nano-01 disconnected" in lost.reason
    assert v.ship.artifact == "m-int8"  # the fastest that qualifies, not the fastest number


def test_the_p90_metric_and_an_explicit_budget():
    v, _ = judged(fp32(), cand("m-int8", p50=2.0), metric="p90")
    assert v.metric == "p90" and v.ship.latency_ms == pytest.approx(v.ship.latency_ms)
    assert "p90" in v.summary()
    rows, _ = attach_references((fp32(), cand("m-int8", p50=2.0, extra_wrong=10)), budget_pts=1.0)
    loose = judge_model(rows, model="mobilenetv3", target="cpu", budget_pts=5.0)
    assert loose.ship.artifact == "m-int8"  # 0.5 pt lost is within 5 pts


def test_no_fp32_row_means_no_verdict_and_says_why():
    broken = dataclasses.replace(fp32(), status="error", reason="the runtime crashed", latency=None)
    v = judge_model([broken, cand("m-int8", p50=2.0)], model="mobilenetv3", target="cpu")
    assert not v and v.ship is None and "no FP32 row ran cleanly" in v.note
    assert {c.outcome for c in v.candidates} == {Outcome.INVALID, Outcome.NO_REFERENCE}


def test_energy_is_read_where_measured_and_never_required():
    from edgekit.telemetry.result import TelemetryResult

    v, _ = judged(fp32(), cand("m-int8", p50=2.0))
    assert v.ship.energy_mj is None
    rows, _ = attach_references((fp32(), cand("m-int8", p50=2.0)), budget_pts=1.0)
    tel = TelemetryResult(source="rapl", scope="CPU package", samples=50, energy_mj=4.25)
    rows = [rows[0], dataclasses.replace(rows[1], telemetry=tel)]
    v = judge_model(rows, model="mobilenetv3", target="cpu")
    assert v.ship.energy_mj == 4.25 and "4.250 mJ/inference" in v.summary()


def test_a_throttled_window_does_not_compete_and_says_why():
    from edgekit.telemetry.result import TelemetryResult

    rows, _ = attach_references((fp32(), cand("m-int8", p50=2.0), cand("m-ov", p50=3.0)), budget_pts=1.0)
    hot = TelemetryResult(throttled=True, throttle_reasons=("thermal zone cpu-thermal crossed its passive trip",))
    by_status = dataclasses.replace(rows[2], status="throttled", reason="throttle bit 2 set during the window")
    v = judge_model([rows[0], dataclasses.replace(rows[1], telemetry=hot), by_status], model="mobilenetv3",
                    target="rpi5")
    c = {x.artifact: x for x in v.candidates}
    assert c["m-int8"].outcome is Outcome.THROTTLED and "passive trip" in c["m-int8"].reason
    assert c["m-ov"].outcome is Outcome.THROTTLED and "throttle bit 2" in c["m-ov"].reason
    assert v.ship.precision == "fp32"


def test_verdict_survives_json_and_renders_everywhere(tmp_path):
    rows, _ = attach_references((fp32(), cand("m-int8", p50=2.0, extra_wrong=120), cand("m-ov", p50=3.0)),
                                budget_pts=1.0)
    rep = report(*rows)
    (v,) = judge_report(rep)
    from edgekit.verdict import verdict_json

    rep = dataclasses.replace(rep, extra={"verdict": verdict_json([v], metric="p50", budget_pts=1.0)})
    path = tmp_path / "results.json"
    path.write_text(rep.to_json_text())
    back = load_report(path)
    (again,) = report_verdicts(back)
    assert again == v
    md = markdown_text(back)
    assert "### Verdict: what to ship" in md and "over the accuracy budget" in md and v.summary() in md
    html = render_html(back)
    assert "Verdict: what to ship" in html and 'data-outcome="ship"' in html and "m-ov" in html
    lines = terminal_lines([v])
    assert lines[0].startswith("verdict: ") and any("over the accuracy budget" in x for x in lines[1:])


def test_an_unstable_fp32_is_still_the_reference_but_never_ships():
    shaky = fp32(cv=0.30)
    v, c = judged(shaky, cand("m-int8", p50=1.0))
    assert c["m-fp32/fp32/onnxruntime:cpu"].outcome is Outcome.UNSTABLE
    assert v.ship is not None and v.ship.artifact == "m-int8"  # 5x faster: beyond even that noise
    v, _ = judged(fp32(cv=0.30), cand("m-int8", p50=6.0))
    assert v.ship is None and "unstable" in v.note and "rerun" in v.note


# --- the vendors' default mixed precisions are candidates where the hardware has them --------------------------

def _int8_manifest():
    from edgekit.core.manifest import Manifest, TensorSpec, WeightsInfo
    from edgekit.core.specs import PreprocessSpec

    return Manifest(model="m", family="x", source="tests", num_classes=10, weights=WeightsInfo(origin="none"),
                    inputs=(TensorSpec("input", (1, 3, 32, 32), "float32", "NCHW"),),
                    outputs=(TensorSpec("logits", (1, 10), "float32"),), preprocess=PreprocessSpec(input_size=(32, 32)),
                    precision="int8")


@pytest.mark.parametrize("flags, expected", [
    (("avx512f", "avx512_bf16"), True), (("amx_tile", "amx_bf16"), True), (("neon", "bf16"), True),
    (("avx2", "avx512f", "avx512_vnni"), False), ((), False),
])
def test_openvino_int8_with_bf16_float_layers_is_a_candidate_only_with_native_bf16(flags, expected):
    from edgekit.bench.plan import plan_cells
    from edgekit.core.targets import load_target

    cells = plan_cells([_int8_manifest()], load_target("cpu"), cpu_flags=flags)
    rows = {(c.spec.runtime, c.precision) for c in cells if c.runs}
    assert ("openvino", "int8+bf16" in {p for r, p in rows if r == "openvino"}) == ("openvino", expected)
    assert ("openvino", "int8") in rows and ("onnxruntime", "int8+bf16") not in rows  # ORT has no such default
    asked = plan_cells([_int8_manifest()], load_target("cpu"), cpu_flags=flags, precisions=["int8"])
    assert all(c.precision == "int8" for c in asked)  # --precision int8 leaves it out
    if expected:
        only = plan_cells([_int8_manifest()], load_target("cpu"), cpu_flags=flags, precisions=["int8+bf16"])
        assert [(c.spec.runtime, c.precision) for c in only if c.runs] == [("openvino", "int8+bf16")]


def test_the_mixed_row_asks_openvino_for_bf16_float_layers_even_on_an_ir_that_records_f32():
    import dataclasses as dc

    from edgekit.core.targets import load_target
    from edgekit.runtime.backend import OpenRequest
    from edgekit.runtime.registry import resolve_runtime

    ov = resolve_runtime("openvino")
    spec = next(s for s in load_target("cpu").runtimes if s.runtime == "openvino")
    ir = dc.replace(_int8_manifest(), format="openvino-ir", model_file="model.xml", inference_precision="fp32")
    req = OpenRequest(spec=spec, precision="int8+bf16", manifest=ir, threads=1, streams=1, batch=1)
    assert ov.options(req)["precision"] == "bf16"
    assert "precision" not in ov.options(dc.replace(req, precision="int8"))  # the plain row: the IR's own


def test_a_tensorrt_int8_fp16_engine_is_shown_by_its_label():
    import dataclasses as dc

    from edgekit.runtime.base import RunnerInfo

    rows, _ = attach_references((fp32(), cand("m-int8", p50=2.0)), budget_pts=1.0)
    trt = dc.replace(rows[1], runner=RunnerInfo("tensorrt", "10.3", "GPU", "int8", None,
                                                details={"precision_label": "int8+fp16"}))
    v = judge_model([rows[0], trt], model="mobilenetv3", target="jetson")
    assert v.ship.executed_precision == "int8+fp16" and v.ship.precision == "int8"
    assert "at int8 (ran int8+fp16)" in terminal_lines([v])[0]
    assert "int8 (ran int8+fp16)" in markdown_text(report(rows[0], trt))
