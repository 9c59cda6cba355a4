"""TensorRT backend.

* Checks that need no TensorRT: request validation (INT8 only from Q/DQ, shapes, DLA), missing
  packages naming the extra.
* The backend's logic against the strict fake TensorRT 8.6 / 10 / 11 + libcudart (fake_tensorrt.py): flags per
  precision and version, timing cache, sidecar verification before deserializing, I/O buffers,
  timing.
* Real builds and runs, skipped without a GPU.
"""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from edgekit.core.atomic import sha256_file
from edgekit.core.errors import ArtifactError, MissingDependencyError, UsageError
from edgekit.runtime.tensorrt.engine_key import read_sidecar, sidecar_path, write_engine
from edgekit.runtime.tensorrt.runner import TensorRTRunner, build_engine, build_engine_file, gpu_unavailable_reason

TINY_SHAPES = {"image": ((1, 3, 16, 16), (1, 3, 16, 16), (4, 3, 16, 16))}
NO_GPU = gpu_unavailable_reason()
needs_gpu = pytest.mark.skipif(
    NO_GPU is not None, reason=f"TensorRT/CUDA not available on this machine (no GPU): {NO_GPU}"
)


def hide(monkeypatch, *packages):
    real = importlib.util.find_spec

    def find_spec(name, *a, **k):
        return None if name.split(".")[0] in packages else real(name, *a, **k)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


# -- no TensorRT needed ----------------------------------------------------------
def test_int8_without_qdq_is_refused_before_tensorrt(tiny_onnx):
    had_trt = "tensorrt" in sys.modules
    with pytest.raises(UsageError) as exc:
        build_engine(tiny_onnx, precision="int8", shapes=TINY_SHAPES)
    msg = str(exc.value)
    assert "tiny.onnx has no QuantizeLinear/DequantizeLinear nodes" in msg
    assert "edgekit quantize --for tensorrt" in msg
    assert ("tensorrt" in sys.modules) == had_trt, "TensorRT was imported before the ONNX was checked"


@pytest.mark.slow
def test_int8_refused_on_exported_mobilenet(mobilenet_onnx):
    shapes = {"input": ((1, 3, 224, 224), (1, 3, 224, 224), (1, 3, 224, 224))}
    with pytest.raises(UsageError, match="no QuantizeLinear/DequantizeLinear nodes"):
        build_engine(mobilenet_onnx, precision="int8", shapes=shapes)


def test_int8_refused_for_qoperator_format(tiny_onnx, tmp_path):
    quant = pytest.importorskip("onnxruntime.quantization", reason="needs onnxruntime to write a QOperator model")
    out = tmp_path / "tiny_qop.onnx"
    quant.quantize_dynamic(str(tiny_onnx), str(out))
    with pytest.raises(UsageError, match="QOperator format"):
        build_engine(out, precision="int8", shapes=TINY_SHAPES)


def test_qdq_onnx_passes_validation_then_needs_tensorrt(tiny_qdq_onnx, monkeypatch):
    hide(monkeypatch, "tensorrt")
    with pytest.raises(MissingDependencyError) as exc:
        build_engine(tiny_qdq_onnx, precision="int8", shapes=TINY_SHAPES)
    assert exc.value.extra == "tensorrt"
    assert "pip install 'edgekit[tensorrt]'" in str(exc.value)
    assert "ships with JetPack" in str(exc.value)


def test_runner_without_tensorrt_names_extra_and_jetpack(tiny_onnx, monkeypatch):
    hide(monkeypatch, "tensorrt")
    with pytest.raises(MissingDependencyError) as exc:
        TensorRTRunner(tiny_onnx)
    assert exc.value.extra == "tensorrt"
    assert "on a Jetson TensorRT ships with JetPack" in str(exc.value)
    assert "pip install 'edgekit[tensorrt]'" in str(exc.value)


def test_gpu_reason_without_tensorrt(monkeypatch):
    hide(monkeypatch, "tensorrt")
    assert gpu_unavailable_reason() == "the tensorrt package cannot be imported"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"precision": "tf32"}, "unknown TensorRT precision 'tf32'"),
        ({"shapes": None}, "input 'image' has dynamic shape \\('batch', 3, 16, 16\\): give its \\(min, opt, max\\)"),
        ({"shapes": {"input": TINY_SHAPES["image"]}}, "shapes names inputs \\['input'\\]"),
        ({"shapes": {"image": ((1, 3, 16, 16), (1, 3, 16, 16), (4, 3, 16))}}, "has rank 3"),
        ({"shapes": {"image": ((1, 3, 16, 16), (1, 3, 16, 16), (4, 3, 32, 32))}}, "does not fit the input's shape"),
        ({"shapes": {"image": ((4, 3, 16, 16), (1, 3, 16, 16), (2, 3, 16, 16))}}, "min <= opt <= max"),
        ({"workspace_mb": 0}, "workspace_mb must be a positive integer"),
        ({"builder_optimization_level": 6}, "builder_optimization_level must be 0..5"),
        ({"precision": "fp32", "dla_core": 0}, "DLA runs FP16 and INT8 only"),
        ({"precision": "fp16", "dla_core": 0}, "DLA does not support dynamic shapes: image"),
        ({"gpu_fallback": True}, "gpu_fallback only applies to a DLA build"),
    ],
)
def test_bad_build_requests(tiny_onnx, kwargs, match):
    args = {"precision": "fp32", "shapes": TINY_SHAPES, **kwargs}
    with pytest.raises(UsageError, match=match):
        build_engine(tiny_onnx, **args)


def test_static_onnx_needs_no_shapes(tiny_static_onnx, fake_trt):
    trt, _ = fake_trt()
    assert build_engine(tiny_static_onnx, precision="fp32").startswith(b"FAKEPLAN")
    assert trt._configs[-1]._profiles == []


# -- backend logic on a fake TensorRT -------------------------------------------
@pytest.mark.parametrize(
    ("version", "v11", "precision", "onnx", "flags", "strongly_typed"),
    [
        ("10.3.0", False, "fp32", "tiny_onnx", set(), False),
        ("10.3.0", False, "fp16", "tiny_onnx", {"FP16"}, False),
        ("10.3.0", False, "int8", "tiny_qdq_onnx", {"INT8", "FP16"}, False),
        ("11.0.0", True, "fp32", "tiny_onnx", set(), True),
        ("11.0.0", True, "int8", "tiny_qdq_onnx", set(), True),
        ("11.0.0", True, "fp16", "tiny_fp16_onnx", set(), True),
    ],
)
def test_precision_flags_per_tensorrt_version(request, fake_trt, version, v11, precision, onnx, flags, strongly_typed):
    trt, _ = fake_trt(version)
    assert v11 == (not hasattr(trt.BuilderFlag, "FP16"))  # the strict fake has TensorRT 11's names only
    build_engine(request.getfixturevalue(onnx), precision=precision, shapes=TINY_SHAPES)
    cfg, net = trt._configs[-1], trt._networks[-1]
    assert cfg._flags == flags  # TF32 cleared in every case: fp32 layers stay fp32
    st_bit = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    assert bool(net._flags & st_bit) == strongly_typed
    assert cfg._pool == {"WORKSPACE": 1024 << 20}
    assert cfg._profiles == [TINY_SHAPES]


def test_tensorrt11_refuses_fp16_from_fp32_onnx(tiny_onnx, fake_trt):
    fake_trt("11.0.0")
    with pytest.raises(UsageError, match="TensorRT 11.0.0 has no FP16 builder flag.*tiny.onnx is fp32"):
        build_engine(tiny_onnx, precision="fp16", shapes=TINY_SHAPES)


def test_timing_cache_loaded_saved_and_keyed(tiny_onnx, fake_trt, tmp_path):
    trt, _ = fake_trt()
    cache = tmp_path / "timing.cache"
    k1 = build_engine_file(tiny_onnx, tmp_path / "a.engine", shapes=TINY_SHAPES, timing_cache=cache)
    assert trt._configs[-1]._timing_cache_in == b""  # a new cache
    assert cache.read_bytes() == b"+tuned"
    assert k1.timing_cache_sha256 is None
    before = sha256_file(cache)
    k2 = build_engine_file(tiny_onnx, tmp_path / "b.engine", shapes=TINY_SHAPES, timing_cache=cache)
    assert trt._configs[-1]._timing_cache_in == b"+tuned"  # loaded
    assert k2.timing_cache_sha256 == before
    assert k1.digest() != k2.digest()


def test_foreign_timing_cache_refused(tiny_onnx, fake_trt, tmp_path):
    fake_trt()
    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"other-device cache")
    with pytest.raises(ArtifactError, match="timing cache .* does not fit this device"):
        build_engine(tiny_onnx, shapes=TINY_SHAPES, timing_cache=cache)


def test_build_failure_reports_tensorrt_errors(tiny_onnx, fake_trt):
    fake_trt(fail_build=True)
    with pytest.raises(ArtifactError, match="failed to build an engine from tiny.onnx.*no implementation for node"):
        build_engine(tiny_onnx, shapes=TINY_SHAPES)


def test_unparsable_onnx(tiny_onnx, fake_trt, tmp_path, monkeypatch):
    fake_trt()
    import edgekit.runtime.tensorrt.builder as tb

    monkeypatch.setattr(tb, "validate_build_request", lambda *a, **k: (tb.read_graph_info(tiny_onnx), ()))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage")
    with pytest.raises(ArtifactError, match="cannot parse bad.onnx: fake: ModelImporter"):
        build_engine(bad)


def test_engine_file_key_and_sidecar(tiny_onnx, fake_trt, tmp_path):
    fake_trt()
    engine = tmp_path / "tiny.engine"
    key = build_engine_file(tiny_onnx, engine, precision="fp16", shapes=TINY_SHAPES)
    recorded, sha = read_sidecar(engine)
    assert recorded == key
    assert sha == sha256_file(engine)
    assert key.onnx_sha256 == sha256_file(tiny_onnx)
    assert (key.tensorrt_version, key.cuda_version, key.gpu_name, key.compute_capability, key.sm_count) == (
        "10.3.0", "12.6", "Orin", "8.7", 8
    )
    assert key.precision == "fp16" and key.extra["builder_flags"] == ["FP16"]
    assert key.shapes == (("image", (1, 3, 16, 16), (1, 3, 16, 16), (4, 3, 16, 16)),)


def test_runner_infers_and_times(tiny_onnx, tiny_inputs, fake_trt, tmp_path):
    trt, gpu = fake_trt()
    engine = tmp_path / "tiny.engine"
    build_engine_file(tiny_onnx, engine, shapes=TINY_SHAPES)
    with TensorRTRunner(engine) as r:
        assert r.last_timing is None and r.last_runtime_ns() is None
        assert r.inputs[0].shape == ("batch", 3, 16, 16) and r.outputs[0].shape == ("batch", 5)
        for b in (4, 1):
            out = r.infer({"image": tiny_inputs[:b]})["logits"]
            want = tiny_inputs[:b].reshape(b, -1).mean(1, keepdims=True) * np.arange(1, 6, dtype=np.float32)
            np.testing.assert_allclose(out, want, rtol=1e-6)
        t = r.last_timing
        assert t is not None and t.gpu_compute_ms == 0.25 and t.python_end_to_end_ms > 0
        assert r.last_runtime_ns() == 250_000 and "GPU compute" in (r.runtime_timer or "")
        info = r.info
        assert info.precision == "fp32" and info.device == "cuda:0 Orin" and info.details["tf32"] is False
        with pytest.raises(UsageError, match="outside the engine's profile"):
            r.infer({"image": np.zeros((8, 3, 16, 16), np.float32)})
    assert len(gpu.freed) == 4  # 2 device + 2 pinned host buffers released
    assert "H2D" in gpu.copies and "D2H" in gpu.copies


def test_runner_refuses_tampered_engine_without_deserializing(tiny_onnx, fake_trt, tmp_path):
    trt, _ = fake_trt()
    engine = tmp_path / "tiny.engine"
    build_engine_file(tiny_onnx, engine, shapes=TINY_SHAPES)
    engine.write_bytes(engine.read_bytes() + b" ")
    with pytest.raises(ArtifactError, match="refusing to deserialize"):
        TensorRTRunner(engine).activate()
    assert trt._deserialized == []


def test_runner_refuses_engine_from_other_tensorrt(tiny_onnx, fake_trt, tmp_path):
    fake_trt("10.3.0")
    engine = tmp_path / "tiny.engine"
    build_engine_file(tiny_onnx, engine, shapes=TINY_SHAPES)
    trt_new, _ = fake_trt("10.7.0")
    with pytest.raises(ArtifactError, match="TensorRT: engine 10.3.0, device 10.7.0.*edgekit build"):
        TensorRTRunner(engine).activate()
    assert trt_new._deserialized == []


def test_runner_refuses_engine_without_sidecar(tiny_onnx, fake_trt, tmp_path):
    fake_trt()
    engine = tmp_path / "tiny.engine"
    build_engine_file(tiny_onnx, engine, shapes=TINY_SHAPES)
    sidecar_path(engine).unlink()
    with pytest.raises(ArtifactError, match="has no sidecar"):
        TensorRTRunner(engine).activate()


def test_undeserializable_engine(tiny_onnx, fake_trt, tmp_path):
    fake_trt()
    engine = tmp_path / "tiny.engine"
    key = build_engine_file(tiny_onnx, engine, shapes=TINY_SHAPES)
    write_engine(engine, b"not a plan", key)  # hash matches, TensorRT rejects it
    with pytest.raises(ArtifactError, match="could not deserialize"):
        TensorRTRunner(engine).activate()


# -- real TensorRT -----------------------------------------------------------------
@needs_gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_real_build_and_parity(tiny_onnx, tiny_inputs, ort_reference, tmp_path, precision):
    engine = tmp_path / f"tiny-{precision}.engine"
    build_engine_file(tiny_onnx, engine, precision=precision, shapes=TINY_SHAPES, timing_cache=tmp_path / "tc")
    ref = ort_reference(tiny_onnx, {"image": tiny_inputs})["logits"]
    with TensorRTRunner(engine) as r:
        out = r.infer({"image": tiny_inputs})["logits"]
        timing = r.last_timing
    tol = 1e-3 if precision == "fp32" else 2e-2
    assert np.max(np.abs(out - ref)) <= tol * np.max(np.abs(ref))
    assert timing is not None and 0 < timing.gpu_compute_ms <= timing.host_latency_ms


@needs_gpu
def test_real_int8_from_qdq(tiny_qdq_onnx, tiny_inputs, ort_reference, tmp_path):
    engine = tmp_path / "tiny-int8.engine"
    key = build_engine_file(tiny_qdq_onnx, engine, precision="int8", shapes=TINY_SHAPES)
    assert key.precision == "int8"
    ref = ort_reference(tiny_qdq_onnx, {"image": tiny_inputs})["logits"]
    with TensorRTRunner(engine) as r:
        out = r.infer({"image": tiny_inputs})["logits"]
    assert np.max(np.abs(out - ref)) <= 5e-2 * np.max(np.abs(ref))
