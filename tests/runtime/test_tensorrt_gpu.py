"""Real TensorRT on a real NVIDIA GPU (marker ``gpu``; run them all with ``tools/gpu_check.sh WHEEL_DIR``).

They settle what the audit left to a device (shared/reference/tensorrt-audit.md "Needs a device") and check the
strict fake against the real module. Without a GPU every test here is skipped with the reason.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from edgekit.runtime.tensorrt.env import gpu_unavailable_reason

NO_GPU = gpu_unavailable_reason()
pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(NO_GPU is not None, reason=f"TensorRT/CUDA not usable on this machine: {NO_GPU}")]
TINY_SHAPES = {"image": ((1, 3, 16, 16), (2, 3, 16, 16), (4, 3, 16, 16))}

REAL_CLASS = {"Builder": "Builder", "INetworkDefinition": "INetworkDefinition", "ILayer": "ILayer",
              "IBuilderConfig": "IBuilderConfig", "OnnxParser": "OnnxParser", "Runtime": "Runtime",
              "ICudaEngine": "ICudaEngine", "EngineInspector": "EngineInspector",
              "IExecutionContext": "IExecutionContext", "IOptimizationProfile": "IOptimizationProfile",
              "ITimingCache": "ITimingCache"}


def _trt():
    from edgekit.runtime.tensorrt.env import import_tensorrt

    return import_tensorrt()


def test_the_strict_fake_allows_only_real_names(fake):
    """Every name the fake offers for this TensorRT version exists on the real module (the lists' derivation)."""
    import sys

    trt = _trt()
    sys.path.insert(0, str(Path(fake.__file__).parent))
    try:
        from trt_api_names import api
    finally:
        sys.path.pop(0)
    classes, enums = api(trt.__version__)
    missing = [n for n in classes["module"] if not hasattr(trt, n)]
    for cls, names in classes.items():
        if cls != "module":
            real = getattr(trt, REAL_CLASS[cls])
            missing += [f"{cls}.{n}" for n in names if not hasattr(real, n)]
    for enum, members in enums.items():
        missing += [f"{enum}.{m}" for m in members if not hasattr(getattr(trt, enum), m)]
    assert missing == [], f"the fake offers names TensorRT {trt.__version__} lacks: {missing}"


def test_environment_is_the_cuda_tensorrt_runs_on():
    from edgekit.runtime.tensorrt import cuda
    from edgekit.runtime.tensorrt.env import device_environment

    trt = _trt()
    rt = cuda.load_cuda(trt)
    env = device_environment(trt, cuda=rt)
    maps = Path("/proc/self/maps").read_text()
    mapped = sorted(set(re.findall(r"/\S*libcudart\.so\.\d+[\d.]*", maps)))
    assert len(mapped) <= 1, f"two CUDA runtimes in one process: {mapped}"
    assert int(env["cuda_version"].split(".")[0]) <= int(env["cuda_driver"].split(".")[0])
    assert env["sm_count"] > 0 and re.fullmatch(r"\d+\.\d+", env["compute_capability"])


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_static_engine_without_profile(tiny_static_onnx, tiny_inputs, ort_reference, tmp_path, precision):
    """Audit #18: an engine with no optimization profile runs (the runner reads engine.get_tensor_shape)."""
    from edgekit.runtime.tensorrt.runner import TensorRTRunner, build_engine_file

    engine = tmp_path / "static.engine"
    build_engine_file(tiny_static_onnx, engine, precision=precision)
    with TensorRTRunner(engine) as r:
        batch = r.inputs[0].shape[0]
        x = np.ascontiguousarray(tiny_inputs[:batch])
        out = r.infer({"image": x})["logits"]
    ref = ort_reference(tiny_static_onnx, {"image": x})["logits"]
    tol = 1e-3 if precision == "fp32" else 2e-2
    assert np.max(np.abs(out - ref)) <= tol * np.max(np.abs(ref))


def test_version_compatible_engine_loads(tiny_onnx, tiny_inputs, tmp_path):
    """Audit #8: a VERSION_COMPATIBLE plan deserializes (engine_host_code_allowed set by the runner)."""
    from edgekit.runtime.tensorrt.runner import TensorRTRunner, build_engine_file

    engine = tmp_path / "vc.engine"
    build_engine_file(tiny_onnx, engine, shapes=TINY_SHAPES, version_compatible=True)
    with TensorRTRunner(engine) as r:
        assert r.infer({"image": tiny_inputs[:2]})["logits"].shape == (2, 5)


@pytest.mark.parametrize("int8_float", ["fp16", "fp32"])
def test_int8_with_float_parts(tiny_qdq_onnx, tiny_inputs, ort_reference, tmp_path, int8_float):
    """Audit #7: INT8 from Q/DQ with FP16 (trtexec --int8 --fp16) or FP32 float parts, both accurate."""
    from edgekit.runtime.tensorrt.runner import TensorRTRunner, build_engine_file

    if not hasattr(_trt().BuilderFlag, "FP16"):
        pytest.skip("TensorRT 11: strongly typed, no INT8/FP16 builder flags")
    engine = tmp_path / f"int8-{int8_float}.engine"
    key = build_engine_file(tiny_qdq_onnx, engine, precision="int8", shapes=TINY_SHAPES, int8_float=int8_float)
    with TensorRTRunner(engine) as r:
        out = r.infer({"image": tiny_inputs})["logits"]
        assert r.info.details["precision_label"] == f"int8+{int8_float}" == key.precision_label
    ref = ort_reference(tiny_qdq_onnx, {"image": tiny_inputs})["logits"]
    assert np.max(np.abs(out - ref)) <= 5e-2 * np.max(np.abs(ref))


def test_timing_quantities(tiny_onnx, tiny_inputs, tmp_path):
    """Audit #11: H2D, compute and D2H from events; their sum within the Python wall time of the call."""
    from edgekit.runtime.tensorrt.runner import TensorRTRunner, build_engine_file

    engine = tmp_path / "t.engine"
    build_engine_file(tiny_onnx, engine, shapes=TINY_SHAPES)
    with TensorRTRunner(engine) as r:
        for _ in range(20):
            r.infer({"image": tiny_inputs})
        t = r.last_timing
    assert t.h2d_ms > 0 and t.gpu_compute_ms > 0 and t.d2h_ms > 0
    assert t.host_latency_ms <= t.python_end_to_end_ms


def test_dla_placement_is_recorded(tiny_onnx, tmp_path):
    """Audit #6 (Jetson with DLA only): placement recorded, device labelled by where the layers run."""
    from edgekit.runtime.tensorrt.runner import TensorRTRunner, build_engine_file

    trt = _trt()
    from edgekit.runtime.tensorrt.env import tensorrt_logger

    if trt.Builder(tensorrt_logger(trt)).num_DLA_cores == 0:
        pytest.skip("this GPU has no DLA")
    engine = tmp_path / "dla.engine"
    static = {"image": ((1, 3, 16, 16),) * 3}
    key = build_engine_file(tiny_onnx, engine, shapes=static, precision="fp16", dla_core=0, gpu_fallback=True)
    placement = key.extra["dla_placement"]
    with TensorRTRunner(engine) as r:
        assert r.info.device == ("dla:0+gpu" if placement["gpu_layers"] else "dla:0")
