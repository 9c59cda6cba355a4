"""``edgekit bench`` end to end on real exported artifacts.

* ``mnv3``: mobilenetv3_small_100, random init (no labels), 64x64, dynamic
  batch: the speed/memory matrix, JSON/CSV/Markdown, static batch, errors.
* ``trained``: a trained model with the embedded dataset's labels, fast to
  make (softmax regression trained here in numpy, as an ONNX artifact):
  accuracy equals an independent ONNX Runtime computation, the FP32
  reference, a Q/DQ INT8 variant compared paired. A slow test repeats the
  accuracy checks on conftest's fine-tuned MobileNetV3 (``trained_artifact``).

Windows are short (0.3 s, 20 iterations) to keep the tests fast; the numbers
are not the point here, their presence and consistency are.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgekit.bench.results import BenchReport, load_report, write_report
from edgekit.bench.runner import BenchOptions, run_bench
from edgekit.cli.main import cli
from edgekit.core.errors import ArtifactError, DataError, UsageError
from edgekit.core.manifest import MANIFEST_NAME, load_artifact

pytest.importorskip("onnxruntime", reason="edgekit bench tests need the onnxruntime extra")

FAST = ("--min-duration", "0.3", "--min-iterations", "20", "--warmup", "0.05")
FAST_KW = {"min_duration_s": 0.3, "min_iterations": 20, "warmup_s": 0.05}


# -- artifacts -------------------------------------------------------------------------------


def derive_artifact(src: Path, dst: Path, *, onnx_edit=None, manifest_edit=None) -> Path:
    """Copy an artifact, change its ONNX graph and/or manifest, re-hash its files."""
    import onnx

    from edgekit.core.manifest import Manifest

    shutil.copytree(src, dst)
    model_path = dst / "model.onnx"
    if onnx_edit is not None:
        onnx_edit(model_path)
    m = Manifest.from_json(json.loads((dst / MANIFEST_NAME).read_text()))
    if manifest_edit is not None:
        m = manifest_edit(m)
    m.with_files(dst).write(dst)
    onnx.checker.check_model(str(model_path))
    return dst


def _set_batch(batch: int):
    def edit(path: Path) -> None:
        import onnx

        model = onnx.load(str(path))
        for v in (*model.graph.input, *model.graph.output):
            v.type.tensor_type.shape.dim[0].dim_value = batch
        onnx.save(model, str(path))

    return edit


def _static_manifest(batch: int):
    def edit(m):
        inputs = tuple(dataclasses.replace(t, shape=(batch, *t.shape[1:])) for t in m.inputs)
        outputs = tuple(dataclasses.replace(t, shape=(batch, *t.shape[1:])) for t in m.outputs)
        return dataclasses.replace(m, inputs=inputs, outputs=outputs)

    return edit


@pytest.fixture(scope="module")
def mnv3(export_artifact) -> Path:
    return export_artifact("mobilenetv3_small_100", dynamic_batch=True, img_size=64)


@pytest.fixture(scope="module")
def mnv3_static2(mnv3, tmp_path_factory) -> Path:
    return derive_artifact(mnv3, tmp_path_factory.mktemp("static") / "mnv3-b2", onnx_edit=_set_batch(2),
                           manifest_edit=_static_manifest(2))


@pytest.fixture(scope="module")
def report(mnv3) -> BenchReport:
    calls: list[tuple[str, float]] = []
    rep = run_bench(BenchOptions(target="cpu", artifacts=(mnv3,), batch_sizes=(1, 4), **FAST_KW),
                    progress=lambda what, frac: calls.append((what, frac)))
    rep.extra["progress_calls"] = calls
    return rep


# -- the matrix on an untrained model --------------------------------------------------------


def test_every_runtime_and_precision_row_is_present(report):
    keys = [(r.runtime, r.precision) for r in report.results]
    assert keys == [("onnxruntime", "fp32"), ("openvino", "fp32"), ("openvino", "fp16"), ("openvino", "bf16")]
    by = {(r.runtime, r.precision): r for r in report.results}
    assert by["onnxruntime", "fp32"].status == "ok"
    assert by["openvino", "fp32"].status == "ok"
    for p in ("fp16", "bf16"):
        r = by["openvino", p]
        assert r.status in ("ok", "unsupported"), r.reason
        if r.status == "unsupported":  # the runner refused a precision this CPU would silently replace
            assert "does not run inference precision" in r.reason and r.latency is None
        else:
            assert r.executed_precision == p


def test_ok_rows_carry_latency_throughput_memory_and_what_ran(report, mnv3):
    art = report.artifacts[0]
    for r in report.find(status="ok"):
        lat = r.latency
        assert lat is not None and lat.iterations >= 20 and lat.duration_s >= 0.3
        assert lat.stats.n == lat.iterations and lat.stats.min <= lat.stats.p50 <= lat.stats.p90 <= lat.stats.max
        assert lat.cold_ms > 0 and lat.warmup_s >= 0.05
        assert lat.n_distinct_samples == 64 and lat.n_samples_visited >= 20
        assert [p.batch_size for p in r.throughput.points] == [1, 4]
        assert all(p.samples_per_s and p.samples_per_s > 0 for p in r.throughput.points)
        assert r.throughput.points[0].samples_per_s == pytest.approx(lat.throughput)
        assert r.memory.peak_rss_mb >= r.memory.rss_before_mb > 0
        # the rule (bench.cell.resolve_threads), not this machine's count: the physical cores this process may use
        env = report.environment
        known = [x for x in (env.physical_cores, len(env.affinity) if env.affinity else None) if x]
        assert r.runner.threads == (max(1, min(known)) if known else 1) if r.runtime == "onnxruntime" \
            else r.runner.threads >= 1
        assert r.runner.runtime_version and r.executed_precision == r.runner.precision
        assert r.load_ms > 0
        assert r.accuracy is None and "no class labels" in r.accuracy_skipped
    ov = report.find(runtime="openvino", precision="fp32")[0]
    assert ov.runner.details["inference_precision"] == "f32" and ov.runner.details["static_batch"] == 1
    # OpenVINO times each call itself (benchmark_app's number): inside the host timing, never above it
    rs = ov.latency.runtime_stats
    assert rs is not None and rs.n == ov.latency.stats.n and "InferRequest.latency" in ov.latency.runtime_timer
    assert 0 < rs.min and rs.p50 <= ov.latency.stats.p50
    assert ov.metrics()["runtime_latency_p50_ms"] == rs.p50
    ort = report.find(runtime="onnxruntime")[0]
    assert ort.latency.runtime_stats is None and ort.metrics()["runtime_latency_p50_ms"] is None
    assert art.model_sha256 == load_artifact(mnv3).manifest.files["model.onnx"]
    assert art.size_bytes == (mnv3 / "model.onnx").stat().st_size


def test_params_and_macs_come_from_the_graph_profile(report, mnv3):
    from edgekit.graph.profile import profile_onnx

    p = profile_onnx(mnv3 / "model.onnx")
    art = report.artifacts[0]
    assert art.profile_error is None
    assert (art.params, art.macs) == (p.params, p.macs) and art.macs > 0


def test_environment_target_and_progress_are_recorded(report):
    assert report.target_name == "cpu" and report.target["profile"]["runtimes"]
    env = report.environment
    assert env.versions["onnxruntime"] and env.logical_cores >= 1
    assert report.settings["min_duration_s"] == 0.3 and report.settings["batch_sizes"] == [1, 4]
    assert report.dataset["latency_pool_n"] == 64 and not report.dataset["explicit"]
    fracs = [f for _, f in report.extra["progress_calls"]]
    assert fracs[-1] == 1.0 and all(a <= b + 1e-9 for a, b in zip(fracs, fracs[1:]))


def test_results_json_round_trips(report, tmp_path):
    path = write_report(report, tmp_path / "r.json")
    back = load_report(path)
    d1, d2 = report.to_json(), back.to_json()
    d1.pop("extra")
    d2.pop("extra")
    assert d1 == d2
    r0, b0 = report.results[0], back.results[0]
    assert b0.latency.stats == r0.latency.stats and b0.runner == r0.runner
    assert b0.metrics(back.artifacts[0]) == r0.metrics(report.artifacts[0])


@pytest.mark.parametrize("damage, error, words", [
    (lambda t: t[: len(t) // 3], ArtifactError, "not valid JSON (truncated?)"),
    (lambda t: t[: len(t) // 2], ArtifactError, "not valid JSON (truncated?)"),
    (lambda t: t[: 2 * len(t) // 3], ArtifactError, "not valid JSON (truncated?)"),
    (lambda t: t.rstrip()[:-1], ArtifactError, "not valid JSON (truncated?)"),
    (lambda t: t.replace("{", "{,", 1), ArtifactError, "not valid JSON: "),
    (lambda t: "", ArtifactError, "is empty"),
    (lambda t: t.replace('"schema_version": 1', '"schema_version": 99', 1), UsageError, "newer than this edgekit"),
    (lambda t: t.replace('"edgekit.bench"', '"something.else"', 1), ArtifactError, "not an edgekit bench results"),
    (lambda t: t.replace('"results":', '"resultz":', 1), ArtifactError, "missing field 'results'"),
])
def test_a_damaged_results_file_is_a_one_line_error(report, tmp_path, damage, error, words):
    good = write_report(report, tmp_path / "r.json").read_text()
    bad = tmp_path / "bad.json"
    bad.write_text(damage(good))
    with pytest.raises(error) as e:
        load_report(bad)
    assert words in str(e.value) and "\n" not in str(e.value)
    assert e.value.exit_code == 2


def test_cli_writes_json_csv_markdown(mnv3, tmp_path):
    out, csv_path, md = tmp_path / "r.json", tmp_path / "r.csv", tmp_path / "r.md"
    res = CliRunner().invoke(cli, ["bench", "--target", "cpu", str(mnv3), "--runtime", "ort", "--batch", "1,2",
                                   *FAST, "-o", str(out), "--csv", str(csv_path), "--md", str(md), "--json"])
    assert res.exit_code == 0, res.output
    printed = json.loads(res.stdout)
    assert printed["schema"] == "edgekit.bench" and json.loads(out.read_text()) == printed
    assert [r["key"] for r in printed["results"]] == [f"{mnv3.name}/onnxruntime:CPU/fp32"]
    lines = csv_path.read_text().splitlines()
    header = lines[0].split(",")
    assert header[:7] == ["key", "artifact", "model", "runtime", "device", "precision", "status"]
    assert {"latency_p50_ms", "latency_p90_ms", "throughput_b2_sps", "peak_rss_mb"} <= set(header) and len(lines) == 2
    row = dict(zip(header, lines[1].split(",")))
    assert float(row["latency_p50_ms"]) == pytest.approx(printed["results"][0]["latency"]["stats"]["p50"])
    text = md.read_text()
    assert "| artifact | runtime | precision | status | p50 ms |" in text and "onnxruntime:CPU" in text
    assert "runtime p50" not in text  # ONNX Runtime times nothing itself: no empty column


def test_cli_prints_the_table(mnv3):
    res = CliRunner().invoke(cli, ["bench", "--target", "cpu", str(mnv3), "--runtime", "openvino",
                                   "--precision", "fp32,fp16", "--batch", "1", *FAST])
    assert res.exit_code == 0, res.output
    assert "openvino:CPU" in res.stdout and "p90 ms" in res.stdout and "ok" in res.stdout
    assert "runtime p50 ms" in res.stdout and "InferRequest.latency" in res.stdout  # the column and what it is


def test_static_batch_graph_latency_and_sweep(mnv3_static2):
    rep = run_bench(BenchOptions(target="cpu", artifacts=(mnv3_static2,), runtimes=("ort", "ov"),
                                 precisions=("fp32",), batch_sizes=(1, 2, 4), accuracy=False, **FAST_KW))
    ort, ov = rep.find(runtime="onnxruntime")[0], rep.find(runtime="openvino")[0]
    assert ort.status == "ok" and ort.latency is None and "static batch of 2" in ort.latency_skipped
    pts = {p.batch_size: p for p in ort.throughput.points}
    assert pts[2].samples_per_s > 0 and "static batch of 2" in pts[1].error and pts[4].error
    # OpenVINO reshapes the static graph: batch-1 latency and the whole sweep
    assert ov.status == "ok" and ov.latency is not None and ov.latency.iterations >= 20
    assert all(p.samples_per_s for p in ov.throughput.points)


# -- errors ------------------------------------------------------------------------------------


def _bench(*args: str):
    return CliRunner().invoke(cli, ["bench", *args])


def _assert_exit2(res, *words: str) -> None:
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    err = res.stderr.strip()
    assert err.startswith("edgekit: error:") and len(err.splitlines()) == 1, err
    for w in words:
        assert w in err, err


def test_unknown_target_lists_the_targets(mnv3):
    _assert_exit2(_bench("--target", "jetsn-nano", str(mnv3), *FAST), "unknown target", "built-in targets:", "cpu")


def test_malformed_target_file_names_the_field(mnv3, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('schema_version = 1\nname = "x"\ndescription = "d"\nfamily = "cpu"\n'
                   '[peak_compute]\nnote = "n"\n[[runtimes]]\nruntime = "onnxruntime"\ndevice = "CPU"\n'
                   'precisions = ["int4"]\n')
    _assert_exit2(_bench("--target", str(bad), str(mnv3), *FAST), "runtimes[0].precisions", "'int4'")


def test_artifact_without_manifest(mnv3, tmp_path):
    d = tmp_path / "bare"
    d.mkdir()
    shutil.copy(mnv3 / "model.onnx", d / "model.onnx")
    _assert_exit2(_bench("--target", "cpu", str(d), *FAST), "has no edgekit.json")


@pytest.mark.parametrize("args, words", [
    (("--min-iterations", "0"), ("--min-iterations must be an integer > 0",)),
    (("--min-duration", "-1"), ("--min-duration must be a number > 0",)),
    (("--min-duration", "0"), ("--min-duration must be a number > 0",)),
    (("--warmup", "-0.5"), ("--warmup must be a number >= 0",)),
    (("--batch", "1,0"), ("--batch must be an integer > 0",)),
    (("--batch", "1,x"), ("--batch takes comma-separated positive integers",)),
    (("--threads", "0"), ("--threads must be an integer > 0",)),
    (("--precision", "int4"), ("unknown precision 'int4'",)),
    (("--runtime", "tflite"), ("unknown runtime 'tflite'",)),
    (("--runtime", "tensorrt"), ("target cpu has no runtime 'tensorrt'",)),
])
def test_bad_numbers_and_names(mnv3, args, words):
    _assert_exit2(_bench("--target", "cpu", str(mnv3), *args), *words)


def test_model_and_artifacts_exclude_each_other(mnv3):
    _assert_exit2(_bench("--target", "cpu", str(mnv3), "--model", "mobilenetv3"), "exactly one")
    _assert_exit2(_bench("--target", "cpu"), "exactly one")


def test_missing_weights_file_for_model(tmp_path):
    _assert_exit2(_bench("--target", "cpu", "--model", "mobilenetv3", "--weights", str(tmp_path / "no.pth")),
                  "weights file", "does not exist")


def test_runtime_not_installed_names_the_extra(mnv3, monkeypatch):
    import edgekit.bench.plan as plan

    real = plan.available
    monkeypatch.setattr(plan, "available", lambda m: False if m == "openvino" else real(m))
    _assert_exit2(_bench("--target", "cpu", str(mnv3), "--runtime", "openvino", *FAST),
                  "openvino is not installed", "pip install 'edgekit[openvino]'")
    # not asked for: its rows say how to install it, the others run
    rep = run_bench(BenchOptions(target="cpu", artifacts=(mnv3,), batch_sizes=(1,), accuracy=False, **FAST_KW))
    ov = rep.find(runtime="openvino")
    assert ov and all(r.status == "unsupported" and "pip install 'edgekit[openvino]'" in r.reason for r in ov)
    assert rep.find(runtime="onnxruntime")[0].ok


def test_empty_data_dir(mnv3, tmp_path):
    d = tmp_path / "empty"
    d.mkdir()
    _assert_exit2(_bench("--target", "cpu", str(mnv3), "--data", str(d), *FAST), "is empty")


@pytest.mark.parametrize("edit, words", [
    (lambda m: dataclasses.replace(m, preprocess=m.preprocess.with_input_size(32)), ("takes 64x64 images", "32x32")),
    (lambda m: dataclasses.replace(m, inputs=(dataclasses.replace(m.inputs[0], dtype="float16"),)),
     ("is float32 in the model but float16 in the manifest",)),
    (lambda m: dataclasses.replace(m, inputs=(dataclasses.replace(m.inputs[0], shape=("batch", 3, 64, 80)),)),
     ("has shape",)),
])
def test_input_shape_or_dtype_mismatch(mnv3, tmp_path, edit, words):
    art = derive_artifact(mnv3, tmp_path / "bad", manifest_edit=edit)
    _assert_exit2(_bench("--target", "cpu", str(art), *FAST), *words)


# -- accuracy on a trained model -------------------------------------------------------------

LINEAR_SPEC_SIZE = 16


def _train_linear_artifact(out: Path) -> Path:
    """A trained classifier of the embedded animals, fast enough for any test run: softmax regression
    on 16x16 preprocessed pixels (150 seeded Adam steps on 3,000 training images; about 75 % held-out
    top-1), written as an ONNX artifact (Flatten -> Gemm) with the dataset's labels."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edgekit.core.manifest import Manifest, WeightsInfo
    from edgekit.core.specs import PreprocessSpec, TensorSpec
    from edgekit.data import calibration_indices, embedded_class_names, load_embedded, preload

    spec = PreprocessSpec(input_size=(LINEAR_SPEC_SIZE, LINEAR_SPEC_SIZE), crop_pct=1.0)
    ds = load_embedded(split="train")
    idx = calibration_indices(ds.labels, 3000, seed=0)
    x = preload(ds, idx, spec).reshape(len(idx), -1)
    y = np.asarray(ds.labels)[idx]
    onehot = np.eye(10, dtype=np.float32)[y]
    params = [np.zeros((x.shape[1], 10), np.float32), np.zeros(10, np.float32)]
    m1 = [np.zeros_like(p) for p in params]
    m2 = [np.zeros_like(p) for p in params]
    for t in range(1, 151):
        z = x @ params[0] + params[1]
        p = np.exp(z - z.max(1, keepdims=True))
        g = (p / p.sum(1, keepdims=True) - onehot) / len(y)
        for i, gr in enumerate((x.T @ g + 1e-3 * params[0], g.sum(0))):
            m1[i] = 0.9 * m1[i] + 0.1 * gr
            m2[i] = 0.999 * m2[i] + 0.001 * gr * gr
            params[i] -= 2e-3 * (m1[i] / (1 - 0.9**t)) / (np.sqrt(m2[i] / (1 - 0.999**t)) + 1e-8)
    w, b = params
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["input"], ["flat"], axis=1),
         helper.make_node("Gemm", ["flat", "W", "B"], ["logits"])],
        "softmax_regression",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, LINEAR_SPEC_SIZE, LINEAR_SPEC_SIZE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    out.mkdir(parents=True)
    onnx.save(model, str(out / "model.onnx"))
    Manifest(model="embedded_softmax_regression", family="linear", source="tests/test_bench.py", num_classes=10,
             weights=WeightsInfo(origin="none", source="trained in tests/test_bench.py (softmax regression)"),
             inputs=(TensorSpec("input", ("batch", 3, LINEAR_SPEC_SIZE, LINEAR_SPEC_SIZE), "float32", "NCHW"),),
             outputs=(TensorSpec("logits", ("batch", 10), "float32"),), preprocess=spec,
             labels=embedded_class_names(), opset=17).with_files(out).write(out)
    return out


def _quantize_qdq(src: Path, dst: Path) -> Path:
    """An INT8 Q/DQ copy of ``src`` (ONNX Runtime static quantization, calibrated on embedded training images)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from edgekit.data import calibration_indices, load_embedded, preload

    m = load_artifact(src).manifest
    ds = load_embedded(split="train")
    calib = preload(ds, calibration_indices(ds.labels, 64, seed=1), m.preprocess)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(calib[i:i + 1] for i in range(len(calib)))

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {m.input.name: x}

    def edit(path: Path) -> None:
        quantize_static(str(src / "model.onnx"), str(path), Reader(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)

    return derive_artifact(src, dst, onnx_edit=edit, manifest_edit=lambda mm: dataclasses.replace(
        mm, precision="int8", lineage=({"step": "quantize", "from": str(src), "method": "ort-qdq"},)))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A trained model with the embedded dataset's labels, fast enough for every run (the fine-tuned
    MobileNet of conftest's ``trained_artifact`` is used by the slow test below)."""
    return _train_linear_artifact(tmp_path_factory.mktemp("trained") / "linear")


@pytest.fixture(scope="module")
def trained_int8(trained, tmp_path_factory) -> Path:
    return _quantize_qdq(trained, tmp_path_factory.mktemp("int8") / f"{trained.name}-int8")


def _ort_reference(artifact: Path, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Logits of the artifact with ONNX Runtime called directly, and model-space labels."""
    import onnxruntime as ort

    from edgekit.data import check_labels_match, load_embedded, preload

    m = load_artifact(artifact).manifest
    ds = load_embedded(split="heldout")
    x = preload(ds, indices, m.preprocess)
    sess = ort.InferenceSession(str(artifact / "model.onnx"), providers=["CPUExecutionProvider"])
    step = m.input.shape[0] if isinstance(m.input.shape[0], int) else 50  # a static batch runs only its own
    logits = np.concatenate([sess.run(None, {m.input.name: x[i:i + step]})[0] for i in range(0, len(x), step)])
    mapping = check_labels_match(ds.classes, m.labels, num_classes=m.num_classes)
    return logits, mapping[np.asarray(ds.labels)[indices]]


def _check_accuracy_against_onnxruntime(artifact: Path, n: int) -> None:
    metrics = pytest.importorskip("sklearn.metrics", reason="scikit-learn (from the openvino extra) is the reference")
    confusion_matrix, precision_recall_fscore_support = metrics.confusion_matrix, metrics.precision_recall_fscore_support

    from edgekit.data import evaluation_indices, load_embedded

    rep = run_bench(BenchOptions(target="cpu", artifacts=(artifact,), precisions=("fp32",), batch_sizes=(1,),
                                 eval_size=n, **FAST_KW))
    ort_row, ov_row = rep.find(runtime="onnxruntime")[0], rep.find(runtime="openvino")[0]
    idx = evaluation_indices(load_embedded(split="heldout").labels, n, seed=0)
    logits, y = _ort_reference(artifact, idx)
    pred = logits.argmax(1)
    acc = ort_row.accuracy
    assert acc.n == n and np.array_equal(acc.labels, y) and np.array_equal(acc.predictions, pred)
    assert acc.top1 == pytest.approx(float(np.mean(pred == y)))
    top5 = np.argsort(-logits, axis=1)[:, :5]
    assert acc.top5 == pytest.approx(float(np.mean((top5 == y[:, None]).any(1))))
    present = np.unique(y)
    p, r, f1, _ = precision_recall_fscore_support(y, pred, labels=present, average="macro", zero_division=0)
    assert (acc.macro_precision, acc.macro_recall, acc.macro_f1) == pytest.approx((p, r, f1))
    assert np.array_equal(acc.confusion, confusion_matrix(y, pred, labels=np.arange(acc.num_classes)))
    assert acc.top1 > 0.5  # a trained model, well above the 10 % of chance
    # the first fp32 row is the reference: agreement 1.0 with itself, no paired comparison with itself
    assert ort_row.reference == ort_row.key and acc.agreement == 1.0 and ort_row.paired is None
    assert ov_row.reference == ort_row.key and ov_row.paired is not None
    assert ov_row.accuracy.agreement == pytest.approx(float(np.mean(ov_row.accuracy.predictions == pred)))
    assert ov_row.paired.n == n and ov_row.accuracy.agreement > 0.95
    assert rep.dataset["eval_n"] == n and ov_row.accuracy.extra["eval_key"] == acc.extra["eval_key"]


def test_accuracy_equals_an_independent_onnxruntime_computation(trained):
    _check_accuracy_against_onnxruntime(trained, 400)


@pytest.mark.slow
def test_accuracy_of_the_finetuned_mobilenet(trained_artifact):
    """The same checks on a real fine-tuned MobileNetV3 (conftest's session fixture)."""
    _check_accuracy_against_onnxruntime(Path(trained_artifact), 300)


def test_int8_rows_are_compared_paired_with_the_fp32_reference(trained, trained_int8):
    # the INT8 artifact comes first: the reference is still the fp32 row, found after all rows ran
    rep = run_bench(BenchOptions(target="cpu", artifacts=(trained_int8, trained), precisions=("fp32", "int8"),
                                 batch_sizes=(1,), eval_size=400, **FAST_KW))
    keys = [(r.artifact, r.runtime, r.precision, r.status) for r in rep.results]
    assert keys == [(trained_int8.name, "onnxruntime", "int8", "ok"), (trained_int8.name, "openvino", "int8", "ok"),
                    (trained.name, "onnxruntime", "fp32", "ok"), (trained.name, "openvino", "fp32", "ok")]
    ref = rep.find(artifact=trained.name, runtime="onnxruntime")[0]
    for r in rep.find(artifact=trained_int8.name):
        assert r.executed_precision == "int8" and r.reference == ref.key
        p = r.paired
        assert p.n == 400 and p.reference_top1 == pytest.approx(ref.accuracy.top1)
        assert p.candidate_top1 == pytest.approx(r.accuracy.top1)
        assert p.drop_pts == pytest.approx(100 * (ref.accuracy.top1 - r.accuracy.top1))
        assert p.ci_pts[0] <= p.drop_pts <= p.ci_pts[1] and p.verdict in ("pass", "fail", "inconclusive")
        assert p.budget_pts == pytest.approx(ref.accuracy.top1)  # 1 % of the reference's top-1, in points
        assert r.accuracy.agreement == pytest.approx(p.agreement)


def test_explicit_data_with_matching_classes_measures_accuracy(trained, tmp_path):
    from edgekit.data import materialize_imagefolder

    folder = materialize_imagefolder(tmp_path / "animals", per_class=6)
    rep = run_bench(BenchOptions(target="cpu", artifacts=(trained,), runtimes=("ort",), batch_sizes=(1,),
                                 data=folder, **FAST_KW))
    r = rep.results[0]
    assert rep.dataset["explicit"] and rep.dataset["n_images"] == 60 and rep.dataset["latency_pool_n"] == 60
    assert r.accuracy.n == 60 and r.latency.n_distinct_samples == 60
    assert any("only 60 distinct images" in w for w in rep.warnings)


def test_explicit_data_with_unknown_classes_is_an_error(trained, tmp_path):
    from PIL import Image

    for cls in ("apple", "banana"):
        (tmp_path / "fruit" / cls).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (20, 20), (40 * i, 90, 200)).save(tmp_path / "fruit" / cls / f"{i}.png")
    _assert_exit2(_bench("--target", "cpu", str(trained), "--data", str(tmp_path / "fruit"), *FAST),
                  "dataset classes are unknown to the model", "'apple'", "'banana'")


def _trained_on_embedded(trained: Path, dst: Path, n_test: int = 100) -> Path:
    """The linear artifact, with a manifest saying it was trained on the embedded set (recorded splits)."""
    from edgekit.data import load_embedded

    test = [str(int(i)) for i in load_embedded(split="test").ids[::20][:n_test]]
    val = [str(int(i)) for i in load_embedded(split="validation").ids[:50]]
    rec = {"source": "embedded:animals", "test_ids": test, "validation_ids": val}
    return derive_artifact(trained, dst, manifest_edit=lambda m: dataclasses.replace(
        m, extra={**m.extra, "dataset": rec}))


def test_bench_on_the_training_data_uses_the_recorded_test_split_and_says_so(trained, tmp_path):
    art = _trained_on_embedded(trained, tmp_path / "on-embedded")
    rep = run_bench(BenchOptions(target="cpu", artifacts=(art,), runtimes=("ort",), batch_sizes=(1,),
                                 data="embedded:all", **FAST_KW))
    r = rep.results[0]
    assert r.accuracy.n == 100 and r.accuracy.extra["split"].startswith("test")
    assert rep.dataset["splits"] == ["test (the model's recorded split)"]
    assert any("recorded test split" in w and "trained on or chose the epoch" in w for w in rep.warnings)
    # a selection split alone is refused as a result, with the fix; measured only when asked
    with pytest.raises(DataError, match="none of the model's test images") as exc:
        run_bench(BenchOptions(target="cpu", artifacts=(art,), runtimes=("ort",), batch_sizes=(1,),
                               data="embedded:validation", **FAST_KW))
    assert "--allow-selection-split" in exc.value.one_line()
    rep = run_bench(BenchOptions(target="cpu", artifacts=(art,), runtimes=("ort",), batch_sizes=(1,),
                                 data="embedded:validation", selection_splits=True, eval_size=200, **FAST_KW))
    assert rep.results[0].accuracy.n == 200 and rep.results[0].accuracy.extra["split"].startswith("all")
    # a model not trained on this data: all of it is held-out
    rep = run_bench(BenchOptions(target="cpu", artifacts=(trained,), runtimes=("ort",), batch_sizes=(1,),
                                 eval_size=200, **FAST_KW))
    assert rep.results[0].accuracy.n == 200 and rep.results[0].accuracy.extra["split"] == "test"


def test_imagenet_labels_on_the_embedded_set_skip_accuracy_with_the_reason(trained, tmp_path):
    imagenet_like = derive_artifact(trained, tmp_path / "in1k", manifest_edit=lambda m: dataclasses.replace(
        m, labels=tuple(f"n{i:08d}" for i in range(m.num_classes))))
    rep = run_bench(BenchOptions(target="cpu", artifacts=(imagenet_like,), runtimes=("ort",), batch_sizes=(1,),
                                 **FAST_KW))
    r = rep.results[0]
    assert r.ok and r.accuracy is None and r.accuracy_skipped.startswith("labels do not match the dataset")


# -- torch-free imports and --model --------------------------------------------------------------


def test_bench_modules_import_no_torch():
    import subprocess
    import sys

    code = ("import sys\nimport edgekit.bench.runner, edgekit.bench.cell, edgekit.bench.results, edgekit.report, "
            "edgekit.cli.bench\nprint(' '.join(m for m in ('torch', 'torchvision', 'timm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == []


@pytest.mark.slow
def test_model_is_exported_once_into_the_cache(tmp_path, monkeypatch):
    pytest.importorskip("torch", reason="--model exports with the torch extra")
    monkeypatch.setenv("EDGEKIT_CACHE", str(tmp_path / "cache"))
    args = ("--target", "cpu", "--model", "mobilenetv3_small", "--weights", "none", "--img-size", "64",
            "--runtime", "ort", "--batch", "1", *FAST, "--json")
    first = _bench(*args)
    assert first.exit_code == 0, first.output
    (cached,) = (tmp_path / "cache" / "artifacts").iterdir()
    assert cached.name.startswith("mobilenetv3_small_100-")
    rep = json.loads(first.stdout)
    assert rep["artifacts"][0]["path"] == str(cached) and rep["settings"]["model"] == "mobilenetv3_small"
    assert rep["artifacts"][0]["input_shape"] == ["batch", 3, 64, 64]  # dynamic batch: the sweep can run
    mtime = (cached / "model.onnx").stat().st_mtime_ns
    second = _bench(*args)
    assert second.exit_code == 0, second.output
    assert (cached / "model.onnx").stat().st_mtime_ns == mtime  # reused, not exported again


def test_a_failing_paired_comparison_is_kept_in_json_and_metrics():
    """PairedComparison is falsy unless it passes: the row must keep it whatever the verdict."""
    from edgekit.bench.paired import compare_paired
    from edgekit.bench.results import BenchResult

    labels = np.arange(200) % 10
    worse = np.where(np.arange(200) < 40, (labels + 1) % 10, labels)
    paired = compare_paired(labels, worse, labels, budget_pts=1.0)
    assert paired.verdict == "fail" and not paired
    r = BenchResult(key="a/onnxruntime:CPU/int8", artifact="a", model="m", runtime="onnxruntime", device="CPU",
                    precision="int8", status="ok", paired=paired, reference="a/onnxruntime:CPU/fp32")
    d = r.to_json()
    assert d["paired"]["verdict"] == "fail" and d["metrics"]["top1_drop_pts"] == pytest.approx(20.0)
    assert d["metrics"]["accuracy_verdict"] == "fail"
    assert BenchResult.from_json(d).paired.drop_pts == pytest.approx(20.0)
