"""``edgekit build``: ONNX artifact + target -> OpenVINO IR / TensorRT engine artifact.

* Fast tests on small ONNX graphs written with ``onnx.helper`` (random weights: the point is that
  the built engine computes what the ONNX computes, never accuracy), wrapped as artifacts.
* TensorRT through the strict fake TensorRT + libcudart of ``tests/runtime/fake_tensorrt.py``; the fake engine
  computes ``mean(image) * (k + 1)``, so an ONNX graph computing exactly that verifies end to end.
* Slow tests on a real exported ``mobilenetv3_small_100`` (random init: build parity only).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgekit.engines import BuildOptions, NothingToBuild, build_artifact, plan_build
from edgekit.runtime.tensorrt.build import environment_digest
from edgekit.cli.main import cli
from edgekit.core.atomic import sha256_file
from edgekit.core.errors import MissingDependencyError, ParityError, UsageError
from edgekit.core.manifest import Manifest, WeightsInfo, load_artifact
from edgekit.core.specs import PreprocessSpec, TensorSpec
from edgekit.core.lineage import as_precision
from edgekit.runtime.registry import runner_for_artifact

pytest.importorskip("onnx", reason="building test graphs needs onnx")
pytest.importorskip("onnxruntime", reason="the build is verified against onnxruntime")

CLASSES = 5


def _runtime_fixtures():
    """tests/runtime/conftest.py as a module: its graph builder and fake TensorRT (one copy of each)."""
    spec = importlib.util.spec_from_file_location("edgekit_tests_runtime_fixtures",
                                                  Path(__file__).parent / "runtime" / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


RT = _runtime_fixtures()


def _mean_onnx(path: Path) -> Path:
    """image[batch,3,16,16] -> logits[batch,5] = mean(image) * (k + 1): what the fake TensorRT engine computes."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    scale = numpy_helper.from_array(np.arange(1, CLASSES + 1, dtype=np.float32), "scale")
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["image"], ["m"], axes=[1, 2, 3], keepdims=1),
            helper.make_node("Flatten", ["m"], ["f"], axis=1),
            helper.make_node("Mul", ["f", "scale"], ["logits"]),
        ],
        "edgekit_mean",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", CLASSES])],
        [scale],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def _artifact(directory: Path, onnx_path: Path, *, batch: int | str = "batch", precision: str = "fp32") -> Path:
    """Wrap an ONNX file as an artifact, as 'edgekit export' would (model.onnx + edgekit.json)."""
    directory.mkdir(parents=True)
    (directory / "model.onnx").write_bytes(onnx_path.read_bytes())
    Manifest(
        model="tiny",
        family="test",
        source="tests:onnx.helper",
        num_classes=CLASSES,
        weights=WeightsInfo(origin="none", random_init=True),
        inputs=(TensorSpec("image", (batch, 3, 16, 16), "float32", "NCHW"),),
        outputs=(TensorSpec("logits", (batch, CLASSES), "float32"),),
        preprocess=PreprocessSpec(input_size=(16, 16), crop_pct=1.0),
        precision=precision,
        labels=tuple(f"class{i}" for i in range(CLASSES)),
        opset=17,
        exporter="onnx.helper",
        lineage=({"step": "export", "note": "test"},),
    ).with_files(directory).write(directory)
    return directory


@pytest.fixture(scope="module")
def tiny_art(tmp_path_factory) -> Path:
    """A conv classifier with a dynamic batch, as an artifact."""
    root = tmp_path_factory.mktemp("tiny-art")
    return _artifact(root / "tiny", RT.make_tiny_onnx(root / "tiny.onnx"))


@pytest.fixture(scope="module")
def qdq_art(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("qdq-art")
    return _artifact(root / "tiny-qdq", RT.make_tiny_onnx(root / "q.onnx", qdq=True), precision="int8")


@pytest.fixture(scope="module")
def mean_art(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mean-art")
    return _artifact(root / "mean", _mean_onnx(root / "mean.onnx"))


def _ort(model: Path, x: np.ndarray, name: str = "image") -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return sess.run(None, {name: x})[0]


def _invoke(*args: str):
    return CliRunner().invoke(cli, ["build", *args])


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".staging-" in p.name or ".old-" in p.name)


def hide(monkeypatch, *packages: str) -> None:
    real = importlib.util.find_spec

    def find_spec(name, *a, **k):
        return None if name.split(".")[0] in packages else real(name, *a, **k)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


# -- OpenVINO IR -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("precision", "target", "compressed", "hint"), [
    ("fp32", "intel-cpu", False, "f32"),
    ("fp16", "cpu", True, "f16"),
    ("bf16", "intel-cpu", False, "bf16"),
])
def test_ir_build_records_precision_and_runs(tiny_art, tmp_path, precision, target, compressed, hint):
    pytest.importorskip("openvino", reason="building an IR needs the 'openvino' extra")
    import openvino as ov

    out = tmp_path / "ir"
    art = build_artifact(BuildOptions(artifact=tiny_art, target=target, precision=precision, batch=2, output=out))
    m = art.manifest
    assert (m.format, m.model_file, m.precision) == ("openvino-ir", "model.xml", precision)
    assert set(m.files) == {"model.xml", "model.bin"}
    assert m.inference_precision == as_precision(hint) and m.extra["target"] == target
    assert json.loads((out / "edgekit.json").read_text())["extra"]["inference_precision"] == str(as_precision(hint))
    assert m.lineage[-1].recipe["compress_to_fp16"] is compressed
    # the dynamic batch was made static, and the manifest says so
    assert m.input.shape == (2, 3, 16, 16) and m.outputs[0].shape == (2, CLASSES)
    consts = {op.get_element_type().get_type_name() for op in ov.Core().read_model(str(out / "model.xml")).get_ops()
              if op.get_type_name() == "Constant" and op.get_element_type().is_real()}
    assert consts == ({"f16"} if compressed else {"f32"})
    # the parent's preprocessing and labels travel unchanged
    parent = load_artifact(tiny_art).manifest
    assert m.preprocess == parent.preprocess and m.labels == parent.labels
    assert m.parity["passed"] and m.parity["runtimes"][0]["rel"] <= m.parity["rel_tol"]
    defaults = runner_for_artifact(out)  # the recorded inference precision and device
    assert (type(defaults).__name__, defaults.precision, defaults.device) == ("OpenVINORunner", hint, "CPU")
    x = np.random.default_rng(3).standard_normal((2, 3, 16, 16)).astype(np.float32)
    with runner_for_artifact(out, precision="f32") as r:
        got = r.infer({r.inputs[0].name: x})[r.outputs[0].name]
    ref = _ort(tiny_art / "model.onnx", x)
    tol = 1e-5 if not compressed else 1e-2 * float(ref.max() - ref.min())
    np.testing.assert_allclose(got, ref, atol=tol, rtol=0)


@pytest.fixture(scope="module")
def tiny_ir(tiny_art, tmp_path_factory) -> Path:
    """The tiny artifact built as an fp32 IR for intel-cpu."""
    pytest.importorskip("openvino", reason="building an IR needs the 'openvino' extra")
    out = tmp_path_factory.mktemp("tiny-ir") / "ir"
    return build_artifact(BuildOptions(artifact=tiny_art, target="intel-cpu", output=out)).path


def test_ir_manifest_lineage_points_at_the_parent(tiny_art, tiny_ir):
    art = load_artifact(tiny_ir)
    parent = load_artifact(tiny_art).manifest
    m = art.manifest
    assert len(m.lineage) == len(parent.lineage) + 1 and m.lineage[:-1] == parent.lineage
    step = m.lineage[-1]
    assert step.step == "build"
    assert step.parent.sha256 == sha256_file(tiny_art / "model.onnx")
    assert Path(step.parent.path) == tiny_art.resolve()
    assert step.recipe["target"] == "intel-cpu" and step.recipe["runtime"] == "openvino"
    assert step.recipe["batch"] == 1 and "openvino" in step.tool_versions
    on_disk = json.loads((tiny_ir / "edgekit.json").read_text())
    assert on_disk["lineage"][-1]["parent"]["model_file"] == "model.onnx"


def test_int8_ir_from_qdq_artifact(qdq_art, tmp_path):
    pytest.importorskip("openvino", reason="building an IR needs the 'openvino' extra")
    art = build_artifact(BuildOptions(artifact=qdq_art, target="intel-cpu", output=tmp_path / "ir"))
    assert art.manifest.precision == "int8"  # the Q/DQ artifact's own precision by default
    assert art.manifest.inference_precision == "fp32" and art.manifest.runtime == "openvino"
    with runner_for_artifact(art) as r:
        # the compiled IR runs its quantized layers in int8, the rest in the f32 it was built with
        assert r.info.precision == "int8" and r.info.details["float_precision"] == "fp32"
    assert art.manifest.parity["passed"]


def test_default_output_is_beside_the_artifact(tmp_path, tiny_art):
    pytest.importorskip("openvino", reason="building an IR needs the 'openvino' extra")
    src = _artifact(tmp_path / "mine", tiny_art / "model.onnx")
    r = _invoke(str(src), "--target", "intel-cpu")
    assert r.exit_code == 0, r.output
    out = tmp_path / "mine-intel-cpu-fp32"
    assert load_artifact(out).manifest.format == "openvino-ir"
    assert "verified openvino" in r.output and "passed" in r.output


def test_verification_failure_writes_nothing(tiny_art, tmp_path):
    pytest.importorskip("openvino", reason="building an IR needs the 'openvino' extra")
    out = tmp_path / "ir16"
    # an fp16-compressed IR really differs from the ONNX by ~1e-4 of the output range: a 1e-9 budget fails
    r = _invoke(str(tiny_art), "--target", "cpu", "-p", "fp16", "--rel-tol", "1e-9", "-o", str(out))
    assert r.exit_code == 1, r.output
    assert "does not compute what the ONNX does" in r.output and "nothing was written" in r.output
    assert "Traceback" not in r.output
    assert not out.exists() and _leftovers(tmp_path) == []


# -- choosing what to build ------------------------------------------------------------------------
@pytest.mark.parametrize(("args", "needle"), [
    (["--target", "cpu", "--runtime", "ort"], "nothing to build: target cpu runs fp32 on onnxruntime:CPU"),
    (["--target", "rpi5", "-p", "int8"], "nothing to build: target rpi5 runs int8 on onnxruntime:CPU"),
])
def test_onnxruntime_target_has_nothing_to_build(tiny_art, tmp_path, args, needle):
    out = tmp_path / "out"
    r = _invoke(str(tiny_art), *args, "-o", str(out))
    assert r.exit_code == 2, r.output
    assert needle in r.output and "runs the ONNX artifact" in r.output
    assert not out.exists()


def test_nothing_to_build_suggests_the_buildable_runtime(tiny_art):
    with pytest.raises(NothingToBuild) as exc:
        plan_build(BuildOptions(artifact=tiny_art, target="cpu", runtime="onnxruntime"))
    assert "--runtime openvino" in str(exc.value)


def test_target_order_decides_the_runtime(tiny_art, tmp_path):
    # cpu lists onnxruntime first, but it builds nothing: openvino is the first runtime that builds fp32
    plan = plan_build(BuildOptions(artifact=tiny_art, target="cpu", output=tmp_path / "o"))
    assert (plan.runtime.runtime, plan.precision, plan.batch) == ("openvino", "fp32", 1)
    plan = plan_build(BuildOptions(artifact=tiny_art, target="jetson-orin-nano", output=tmp_path / "o"))
    assert plan.runtime.key == "tensorrt:GPU"
    plan = plan_build(BuildOptions(artifact=tiny_art, target="intel-igpu", precision="fp16", output=tmp_path / "o"))
    assert plan.runtime.key == "openvino:GPU" and plan.rel_tol == 1e-2


def test_unknown_target_lists_targets(tiny_art, tmp_path):
    r = _invoke(str(tiny_art), "--target", "intel-cpux", "-o", str(tmp_path / "o"))
    assert r.exit_code == 2, r.output
    assert "unknown target 'intel-cpux'" in r.output and "did you mean intel-cpu" in r.output
    for name in ("cpu", "jetson-orin-nano", "rpi5"):
        assert name in r.output


def test_artifact_without_manifest_exits_2(tmp_path, tiny_art):
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "model.onnx").write_bytes((tiny_art / "model.onnx").read_bytes())
    r = _invoke(str(bare), "--target", "intel-cpu")
    assert r.exit_code == 2, r.output
    assert "has no edgekit.json" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "bare-intel-cpu-fp32").exists()


def test_engine_artifact_is_not_a_build_input(tiny_ir, tmp_path):
    r = _invoke(str(tiny_ir), "--target", "intel-cpu", "-o", str(tmp_path / "again"))
    assert r.exit_code == 2 and "not an ONNX artifact (format 'openvino-ir')" in r.output


@pytest.mark.parametrize(("args", "needle"), [
    (["--target", "intel-cpu", "-p", "int8"], "needs a quantized artifact"),
    (["--target", "intel-cpu", "-p", "fp16"], "target intel-cpu has no runtime with precision=fp16"),
    (["--target", "nvidia-gpu", "-p", "bf16"], "target nvidia-gpu has no runtime with precision=bf16"),
    (["--target", "jetson-agx-orin", "--runtime-device", "DLA", "-p", "fp32"],
     "no runtime with device=DLA, precision=fp32"),
    (["--target", "jetson-agx-orin", "--device", "DLA", "-p", "fp32"], "no runtime with device=DLA, precision=fp32"),
    (["--target", "intel-cpu", "--batch", "0"], "--batch must be >= 1"),
])
def test_bad_requests_exit_2_before_any_work(tiny_art, tmp_path, args, needle):
    out = tmp_path / "out"
    r = _invoke(str(tiny_art), *args, "-o", str(out))
    assert r.exit_code == 2, r.output
    assert needle in r.output and "Traceback" not in r.output
    assert not out.exists()


def test_quantized_artifact_builds_only_int8(qdq_art, tmp_path):
    with pytest.raises(UsageError, match="builds only as --precision int8, not fp32"):
        plan_build(BuildOptions(artifact=qdq_art, target="intel-cpu", precision="fp32", output=tmp_path / "o"))


def test_static_batch_cannot_change(tmp_path):
    src = _artifact(tmp_path / "static", RT.make_tiny_onnx(tmp_path / "s.onnx", batch=1), batch=1)
    with pytest.raises(UsageError, match="static batch of 1; cannot build batch 4"):
        plan_build(BuildOptions(artifact=src, target="intel-cpu", batch=4))


# -- TensorRT ----------------------------------------------------------------------------------------
def test_tensorrt_missing_names_the_extra(tiny_art, tmp_path, monkeypatch):
    hide(monkeypatch, "tensorrt")
    out = tmp_path / "engine"
    r = _invoke(str(tiny_art), "--target", "jetson-orin-nano", "-p", "fp16", "-o", str(out))
    assert r.exit_code == 2, r.output
    assert "tensorrt is not installed" in r.output and "pip install 'edgekit[tensorrt]'" in r.output
    assert "JetPack" in r.output
    assert not out.exists() and _leftovers(tmp_path) == []


def test_tensorrt_int8_refused_without_qdq_before_import(tiny_art, monkeypatch):
    hide(monkeypatch, "tensorrt")
    with pytest.raises(UsageError, match="needs a quantized artifact") as exc:
        build_artifact(BuildOptions(artifact=tiny_art, target="jetson-orin-nano", precision="int8"))
    assert not isinstance(exc.value, MissingDependencyError)


FAKE = RT.load_fake_tensorrt()


@pytest.fixture
def fake_trt(monkeypatch):
    trt, _ = FAKE.install(monkeypatch, "10.3.0")
    return trt


def test_tensorrt_engine_artifact_with_fake_tensorrt(mean_art, tmp_path, fake_trt):
    cache_dir = tmp_path / "cache"
    out = tmp_path / "engine"
    r = _invoke(str(mean_art), "--target", "jetson-orin-nano", "-p", "fp16", "--batch", "2",
                "--timing-cache-dir", str(cache_dir), "-o", str(out))
    assert r.exit_code == 0, r.output
    art = load_artifact(out)
    m = art.manifest
    assert (m.format, m.model_file, m.precision) == ("tensorrt-engine", "model.engine", "fp16")
    assert set(m.files) == {"model.engine", "model.engine.json"}
    recipe = m.lineage[-1].recipe
    assert recipe["runtime"] == "tensorrt" and recipe["device"] == "GPU" and recipe["builder_flags"] == ["FP16"]
    assert recipe["shapes"] == {"image": [[2, 3, 16, 16]] * 3}
    assert m.input.shape == (2, 3, 16, 16)
    # TF32 off, FP16 on; the timing cache is keyed by the device environment and was written
    assert fake_trt._configs[-1]._flags == {"FP16"}
    cache = Path(recipe["timing_cache"])
    assert cache.parent == cache_dir and cache.read_bytes() == b"+tuned"
    sidecar = json.loads((out / "model.engine.json").read_text())
    assert cache.stem == environment_digest(sidecar["key"])
    # verified for real against ONNX Runtime (the fake engine computes what mean.onnx computes)
    assert m.parity["passed"] and m.parity["runtimes"][0]["runtime"] == "tensorrt"
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    with runner_for_artifact(art) as runner:
        got = runner.infer({"image": x})["logits"]
    np.testing.assert_allclose(got, _ort(mean_art / "model.onnx", x), rtol=1e-5, atol=1e-6)


def test_tensorrt_without_timing_cache(mean_art, tmp_path, fake_trt):
    art = build_artifact(BuildOptions(artifact=mean_art, target="nvidia-gpu", output=tmp_path / "e",
                                      timing_cache=False))
    assert art.manifest.lineage[-1].recipe["timing_cache"] is None
    assert fake_trt._configs[-1]._timing_cache_in is None
    assert fake_trt._configs[-1]._flags == set()  # fp32: TF32 cleared, nothing else


def test_tensorrt_engine_that_disagrees_writes_nothing(tiny_art, tmp_path, fake_trt):
    # the fake engine computes mean(image) * k, not the conv model: the verification must catch it
    out = tmp_path / "engine"
    with pytest.raises(ParityError, match="tensorrt-engine built from .* does not compute what the ONNX does"):
        build_artifact(BuildOptions(artifact=tiny_art, target="jetson-orin-nano", output=out,
                                    timing_cache_dir=tmp_path / "cache"))
    assert not out.exists() and _leftovers(tmp_path) == []



@pytest.mark.parametrize(("driver", "runtime", "words"), [
    (0, 12060, ["no NVIDIA driver"]),  # a CPU-only box
    (12020, 13000, ["driver supports CUDA 12.2", "driver >= 580"]),  # a driver older than TensorRT's CUDA
])
def test_build_without_a_usable_driver_is_one_line_naming_the_fix(mean_art, tmp_path, monkeypatch, driver, runtime,
                                                                  words):
    FAKE.install(monkeypatch, "10.3.0", gpu=FAKE.FakeGPU(driver=driver), runtime_version=runtime)
    out = tmp_path / "engine"
    r = _invoke(str(mean_art), "--target", "nvidia-gpu", "-o", str(out))
    assert r.exit_code == 1, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and all(w in lines[0] for w in words), r.output
    assert "Traceback" not in r.output and not out.exists() and _leftovers(tmp_path) == []


def test_bench_on_a_box_without_a_usable_driver_records_the_cell_and_goes_on(mean_art, tmp_path, monkeypatch):
    """#5: the TensorRT cell is an error row naming the fix; the ONNX Runtime cell of the same run still runs."""
    FAKE.install(monkeypatch, "10.3.0")
    engine = tmp_path / "engine"
    assert _invoke(str(mean_art), "--target", "nvidia-gpu", "-o", str(engine)).exit_code == 0
    FAKE.install(monkeypatch, "10.3.0", gpu=FAKE.FakeGPU(driver=0))
    import edgekit.bench.plan as bench_plan

    real = bench_plan.available
    monkeypatch.setattr(bench_plan, "available", lambda m: m == "tensorrt" or real(m))  # the fake is "installed"
    res = tmp_path / "res.json"
    r = CliRunner().invoke(cli, ["bench", str(engine), str(mean_art), "--target", "nvidia-gpu", "--no-accuracy",
                                 "--runtime", "trt,ort:CPU", "--min-duration", "0.05", "--min-iterations", "3", "--warmup", "0", "--batch", "1",
                                 "--quiet", "-o", str(res)])
    assert "Traceback" not in r.output and res.is_file(), r.output
    rows = json.loads(res.read_text())["results"]
    trt = [x for x in rows if x["runtime"] == "tensorrt" and x["artifact"] == "engine"]
    ort = [x for x in rows if x["runtime"] == "onnxruntime"]
    assert trt and all(x["status"] == "error" and "no NVIDIA driver" in x["reason"] for x in trt), trt
    assert ort and any(x["status"] == "ok" for x in ort), ort

# -- runner_for_artifact -----------------------------------------------------------------------------
def test_runner_for_artifact_follows_the_format(tiny_art):
    from edgekit.runtime.onnxruntime.runner import OnnxRuntimeRunner

    assert isinstance(runner_for_artifact(tiny_art), OnnxRuntimeRunner)
    with pytest.raises(UsageError, match="tensorrt does not run onnx artifacts .*edgekit build"):
        runner_for_artifact(tiny_art, runtime="trt")


def test_runner_for_ir_artifact_refuses_other_runtimes(tiny_ir):
    with pytest.raises(UsageError, match="onnxruntime does not run openvino-ir artifacts"):
        runner_for_artifact(tiny_ir, runtime="onnxruntime")


# -- the device path is torch-free -------------------------------------------------------------------
@pytest.mark.slow
def test_build_imports_no_torch(tiny_art, tmp_path):
    pytest.importorskip("openvino", reason="building an IR needs the 'openvino' extra")
    code = (
        "import sys; from edgekit.cli.main import cli\n"
        f"cli(['build', {str(tiny_art)!r}, '--target', 'intel-cpu', '-o', {str(tmp_path / 'o')!r}],"
        " standalone_mode=False)\n"
        "bad = [m for m in ('torch', 'timm', 'torchvision') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert load_artifact(tmp_path / "o").manifest.format == "openvino-ir"


# -- a real exported model -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mobilenet_art(export_artifact) -> Path:
    """export_model(ExportOptions(model="mobilenetv3_small_100", weights="none")), shared per session."""
    pytest.importorskip("openvino", reason="building an IR needs the 'openvino' extra")
    return export_artifact("mobilenetv3_small_100")


@pytest.mark.slow
def test_mobilenet_ir_fp32_and_fp16(mobilenet_art, tmp_path):
    from edgekit.data.sampling import parity_inputs
    from edgekit.runtime.openvino.runner import OpenVINORunner

    outs = {}
    for p in ("fp32", "fp16"):
        r = _invoke(str(mobilenet_art), "--target", "cpu", "-p", p, "-o", str(tmp_path / p))
        assert r.exit_code == 0, r.output
        assert f"openvino-ir, {p}" in r.output and "verified openvino   passed" in r.output
        outs[p] = load_artifact(tmp_path / p)
    m32, m16 = outs["fp32"].manifest, outs["fp16"].manifest
    assert m32.parity["runtimes"][0]["rel"] < 1e-5 < m16.parity["runtimes"][0]["rel"] < 1e-2
    size = {p: (tmp_path / p / "model.bin").stat().st_size for p in outs}
    assert 0.45 < size["fp16"] / size["fp32"] < 0.55
    parent = load_artifact(mobilenet_art).manifest
    for m in (m32, m16):
        assert m.lineage[-1].parent.sha256 == parent.files["model.onnx"]
        assert (m.model, m.num_classes, m.preprocess) == (parent.model, 1000, parent.preprocess)
        assert m.inputs == parent.inputs and m.labels == parent.labels
    x, _ = parity_inputs(parent.preprocess, n_real=2, n_random=0, seed=5)
    ref = np.concatenate([_ort(mobilenet_art / "model.onnx", x[i : i + 1], "input") for i in range(2)])
    with OpenVINORunner(tmp_path / "fp32" / "model.xml", precision="f32") as r:
        got = np.concatenate([r.infer({"input": x[i : i + 1]})["logits"] for i in range(2)])
    assert float(np.abs(got - ref).max()) <= 1e-4 * float(ref.max() - ref.min())
    assert (got.argmax(1) == ref.argmax(1)).all()


def test_runtime_device_flag_and_its_deprecated_spelling(monkeypatch, tmp_path):
    """build's --device (a runtime device, e.g. DLA) is --runtime-device: bench/run --device name an SSH device.
    The old spelling still works, with a one-line notice, and is hidden from --help."""
    import edgekit.engines as engines

    seen = []

    def fake(opts, **k):
        seen.append(opts.device)
        raise UsageError("stopped here")

    monkeypatch.setattr(engines, "build_artifact", fake)
    r = _invoke("a", "--target", "jetson-agx-orin", "--runtime-device", "DLA")
    assert r.exit_code == 2 and seen.pop() == "DLA" and "deprecated" not in r.output
    r = _invoke("a", "--target", "jetson-agx-orin", "--device", "DLA")
    assert r.exit_code == 2 and seen.pop() == "DLA"
    assert "--device is deprecated, use --runtime-device DLA" in r.output
    r = _invoke("a", "--target", "jetson-agx-orin", "--device", "DLA", "--runtime-device", "GPU")
    assert r.exit_code == 2 and "disagree" in r.output and not seen
    help_text = _invoke("--help").output
    assert "--runtime-device" in help_text and "--device " not in help_text.replace("--runtime-device", "")
