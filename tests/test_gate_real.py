"""``edgekit gate`` on a real trained model: a faithful INT8 passes against the FP32 baseline, a damaged one fails,
and a too-small eval set is inconclusive with the reason.

The model is MobileNetV3-small trained on the embedded animals dataset (the
conftest's session ``trained_artifact``), quantized
to INT8 with ONNX Runtime (Q/DQ), and benched with ONNX Runtime on this CPU
(short latency windows; the accuracy is what is gated). The damaged model is
the same INT8 ONNX with the scales of some weight DequantizeLinear nodes
corrupted and its manifest re-hashed, so that it loads and runs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgekit.cli.main import cli
from edgekit.core.manifest import load_artifact

pytestmark = pytest.mark.slow

#: the gate's accuracy budget in these tests (points of top-1)
BUDGET = "2"
EVAL = 600


@pytest.fixture(scope="module")
def trained(trained_artifact) -> Path:  # noqa: ANN001 - the conftest's TrainedArtifacts
    """The session's MobileNetV3-small trained on the embedded animals (conftest ``trained_artifact``)."""
    path = Path(trained_artifact.path)
    top1 = load_artifact(path).manifest.extra["training"]["heldout_top1"]
    assert top1 > 0.6, f"the model did not train (held-out top-1 {top1:.2%})"
    return path


@pytest.fixture(scope="module")
def int8(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgekit.optimize.quant.quantize import QuantizeOptions, quantize

    out = tmp_path_factory.mktemp("gate-real-int8") / "int8"
    quantize(QuantizeOptions(artifact=trained, output=out, calib="embedded:train", calib_size=128, eval_size=200,
                             precision="int8", method="onnxruntime", seed=0))
    return out


def bench(artifacts: list[Path], out: Path, *, eval_size: int = EVAL) -> Path:
    from edgekit.bench.results import write_report
    from edgekit.bench.runner import BenchOptions, run_bench

    report = run_bench(BenchOptions(target="cpu", artifacts=tuple(str(a) for a in artifacts),
                                    runtimes=("onnxruntime",), batch_sizes=(1,), eval_size=eval_size,
                                    min_duration_s=0.2, min_iterations=10, warmup_s=0.0, seed=0))
    return write_report(report, out)


def gate(*args: str) -> tuple[int, dict | None, str]:
    r = CliRunner().invoke(cli, ["gate", *args])
    doc = None
    if "--json" in args:
        try:
            doc = json.loads(r.stdout)
        except ValueError:
            pass
    return r.exit_code, doc, r.output


@pytest.fixture(scope="module")
def results(trained: Path, int8: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """FP32 and INT8 benched together; the baseline is made from this run (the FP32 row is what INT8 meets)."""
    d = tmp_path_factory.mktemp("gate-real-results")
    res = bench([trained, int8], d / "results.json")
    code, _, out = gate(str(res), "--baseline", str(d / "baseline.json"), "--update-baseline")
    assert code == 0, out
    return {"results": res, "baseline": d / "baseline.json", "dir": d}


def accuracy_check(doc: dict, precision: str) -> dict:
    (c,) = [c for r in doc["rows"] for c in r["checks"] if c["name"] == "accuracy" and f"/{precision} vs" in c["row"]]
    return c


def test_faithful_int8_passes_against_the_fp32_baseline(results: dict[str, Path]) -> None:
    rows = {r["precision"]: r for r in json.loads(results["results"].read_text())["results"]}
    assert rows["fp32"]["status"] == "ok" and rows["int8"]["status"] == "ok"
    junit = results["dir"] / "junit.xml"
    code, doc, out = gate(str(results["results"]), "--baseline", str(results["baseline"]), "--against", "fp32",
                          "--max-top1-drop", BUDGET, "--junit", str(junit), "--json")
    assert code == 0, out
    acc = accuracy_check(doc, "int8")
    d = acc["details"]
    assert acc["passed"] and acc["outcome"] in ("pass", "improved"), acc["message"]
    assert d["n"] == EVAL and d["ci_pts"][1] <= float(BUDGET)
    # the INT8 model is a real quantization, not a copy: it is another file, and the numbers are paired
    assert rows["int8"]["accuracy"]["top1"] > 0.6
    assert 'failures="0"' in junit.read_text()


def _damage(int8: Path, out: Path, *, every: int = 3) -> int:
    """Copy ``int8`` to ``out`` with the scales of every ``every``-th weight DequantizeLinear negated and
    scaled up; re-hash the manifest so the artifact loads. Returns how many nodes were damaged."""
    import onnx
    from onnx import numpy_helper

    shutil.copytree(int8, out)
    art = load_artifact(out)
    path = art.model_path
    model = onnx.load(str(path))
    inits = {i.name: i for i in model.graph.initializer}
    damaged = 0
    weight_dq = [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits
                 and numpy_helper.to_array(inits[n.input[0]]).ndim == 4]
    for node in weight_dq[::every]:
        scale = inits[node.input[1]]
        arr = numpy_helper.to_array(scale).astype(np.float32)
        scale.CopyFrom(numpy_helper.from_array((-4.0 * arr).astype(arr.dtype), scale.name))
        damaged += 1
    onnx.save(model, str(path))
    art.manifest.with_files(out).write(out)
    load_artifact(out, verify=True)
    return damaged


def test_damaged_int8_fails_the_gate(results: dict[str, Path], int8: Path, tmp_path: Path) -> None:
    n = _damage(int8, tmp_path / "int8-damaged")
    assert n >= 3
    res = bench([tmp_path / "int8-damaged"], tmp_path / "damaged.json")
    code, doc, out = gate(str(res), "--baseline", str(results["baseline"]), "--against", "fp32",
                          "--max-top1-drop", BUDGET, "--json")
    assert code == 1, out
    acc = accuracy_check(doc, "int8")
    assert acc["outcome"] == "fail" and not acc["passed"]
    assert acc["details"]["ci_pts"][0] > float(BUDGET) and acc["details"]["mcnemar_p"] < 0.001
    # the plain CLI says why, in one line per failed check
    code, _, text = gate(str(res), "--baseline", str(results["baseline"]), "--against", "fp32",
                         "--max-top1-drop", BUDGET)
    assert code == 1 and "gate FAILED" in text and "accuracy" in text


def test_too_small_eval_set_is_inconclusive_with_the_reason(trained: Path, int8: Path, tmp_path: Path) -> None:
    res = bench([trained, int8], tmp_path / "small.json", eval_size=40)
    code, _, out = gate(str(res), "--baseline", str(tmp_path / "small-baseline.json"), "--update-baseline")
    assert code == 0, out
    code, doc, out = gate(str(res), "--baseline", str(tmp_path / "small-baseline.json"), "--against", "fp32",
                          "--max-top1-drop", "1", "--json")
    acc = accuracy_check(doc, "int8")
    assert acc["outcome"] == "inconclusive" and acc["details"]["n"] == 40
    assert acc["details"]["needed_n"] is None or acc["details"]["needed_n"] > 40
    assert "40 images are too few to resolve it" in acc["message"] and "--inconclusive estimate" in acc["message"]
    # estimate judges the observed drop; a strict policy makes the same verdict a failure
    assert code == (0 if acc["details"]["drop_pts"] <= 1.0 else 1)
    assert any("inconclusive" in w for w in doc["warnings"])
    code, doc, _ = gate(str(res), "--baseline", str(tmp_path / "small-baseline.json"), "--against", "fp32",
                        "--max-top1-drop", "1", "--inconclusive", "fail", "--json")
    assert code == 1 and not accuracy_check(doc, "int8")["passed"]


def _scale_damage(int8: Path, out: Path, rel: float, *, seed: int = 0) -> Path:
    """Copy ``int8`` with every weight DequantizeLinear scale off by ``rel`` (each element x (1 +- rel), seeded
    signs): a plausible bug (a rounding or per-channel axis slip), not a catastrophe."""
    import onnx
    from onnx import numpy_helper

    shutil.copytree(int8, out)
    art = load_artifact(out)
    model = onnx.load(str(art.model_path))
    inits = {i.name: i for i in model.graph.initializer}
    rng = np.random.default_rng(seed)
    for n in model.graph.node:
        if n.op_type == "DequantizeLinear" and n.input[0] in inits and \
                numpy_helper.to_array(inits[n.input[0]]).ndim == 4:
            scale = inits[n.input[1]]
            arr = numpy_helper.to_array(scale).astype(np.float32)
            sign = rng.choice([-1.0, 1.0], size=arr.shape).astype(np.float32)
            scale.CopyFrom(numpy_helper.from_array((arr * (1 + rel * sign)).astype(arr.dtype), scale.name))
    onnx.save(model, str(art.model_path))
    art.manifest.with_files(out).write(out)
    return out


#: the CI's INT8-vs-FP32 rule (the embedded default's own [gate], run by .ci/run): 1 point against FP32 of the same
#: run, an inconclusive verdict judged by the observed drop
CI_BUDGET = "1"


def test_mid_size_damage_fails_the_gate_and_a_faithful_model_passes(results: dict[str, Path], int8: Path,
                                                                      tmp_path: Path) -> None:
    """INT8 weight scales off by a few percent cost 1.5-4 points: the gate must fail that, not only a catastrophe,
    while the faithful INT8 passes under the same rule."""
    args = ("--baseline", str(results["baseline"]), "--against", "fp32", "--max-top1-drop", CI_BUDGET, "--json")
    code, doc, out = gate(str(results["results"]), *args)
    assert code == 0 and accuracy_check(doc, "int8")["passed"], out
    drop, code, rel = 0.0, 0, 0.0
    for rel in (0.02, 0.03, 0.04, 0.06, 0.08, 0.1, 0.13, 0.16, 0.2, 0.25, 0.3, 0.4):
        dmg = _scale_damage(int8, tmp_path / f"int8-off-{rel:g}", rel)
        code, doc, out = gate(str(bench([dmg], tmp_path / f"off-{rel:g}.json")), *args)
        drop = accuracy_check(doc, "int8")["details"]["drop_pts"]
        if drop >= 1.5:
            break
    assert 1.5 <= drop <= 4.0, f"scales off by {rel:.0%} gave a {drop:.2f} pt drop: the step is too coarse"
    acc = accuracy_check(doc, "int8")
    assert code == 1 and not acc["passed"], f"a {drop:.2f} pt drop (scales off by {rel:.0%}) passed: {acc['message']}"
