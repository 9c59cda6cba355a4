"""ONNX Runtime-specific behaviour: providers, threads, graph precision."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.core.errors import ArtifactError, UsageError
from edgekit.runtime.onnxruntime.runner import AUTO_ORDER, resolve_providers

ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")

from edgekit.runtime.onnxruntime.runner import OnnxRuntimeRunner  # noqa: E402


def test_auto_provider_order():
    avail = ["AzureExecutionProvider", "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"]
    assert resolve_providers(None, avail) == list(AUTO_ORDER)
    assert resolve_providers(None, ["AzureExecutionProvider", "CPUExecutionProvider"]) == ["CPUExecutionProvider"]


def test_explicit_providers_checked_and_aliased():
    avail = ["CPUExecutionProvider", "CUDAExecutionProvider"]
    assert resolve_providers(["cuda", "cpu"], avail) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert resolve_providers("cpu", avail) == ["CPUExecutionProvider"]
    with pytest.raises(UsageError, match="'tensorrt' is not available.*available: CPUExecutionProvider"):
        resolve_providers(["tensorrt"], avail)
    with pytest.raises(UsageError, match="providers is empty"):
        resolve_providers([], avail)


def test_unavailable_provider_refused(tiny_onnx):
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("CUDA execution provider is installed here")
    with pytest.raises(UsageError, match="'cuda' is not available"):
        OnnxRuntimeRunner(tiny_onnx, providers=["cuda"])


def test_threads_and_providers_recorded(tiny_onnx):
    with OnnxRuntimeRunner(tiny_onnx, threads=1, inter_op_threads=1, providers=["cpu"]) as r:
        info = r.info
    assert info.threads == 1
    assert info.device == "cpu"
    assert info.details["providers"] == ["CPUExecutionProvider"]
    assert info.details["intra_op_num_threads"] == 1
    assert info.details["inter_op_num_threads"] == 1
    assert info.details["execution_mode"] == "sequential"


def test_default_threads_are_explicit(tiny_onnx):
    import os

    with OnnxRuntimeRunner(tiny_onnx) as r:
        assert r.info.threads == len(os.sched_getaffinity(0))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"threads": 0}, "threads must be a positive integer"),
        ({"inter_op_threads": 0}, "inter_op_threads must be a positive integer"),
        ({"graph_optimization": "max"}, "unknown graph_optimization 'max'"),
    ],
)
def test_bad_options(tiny_onnx, kwargs, match):
    with pytest.raises(UsageError, match=match):
        OnnxRuntimeRunner(tiny_onnx, **kwargs)


def test_qdq_graph_reports_int8(tiny_qdq_onnx, tiny_inputs):
    with OnnxRuntimeRunner(tiny_qdq_onnx) as r:
        info = r.info
        out = r.infer({"image": tiny_inputs})["logits"]
    assert info.precision == "int8"
    assert info.details["graph"]["qdq_nodes"] == 4
    assert np.all(np.isfinite(out))


def test_fp16_graph_reports_fp16(tiny_fp16_onnx, tiny_onnx, tiny_inputs):
    with OnnxRuntimeRunner(tiny_fp16_onnx) as r:
        assert r.info.precision == "fp16"
        assert r.inputs[0].dtype == "float16"
        out16 = r.infer({"image": tiny_inputs.astype(np.float16)})["logits"]
        with pytest.raises(UsageError, match="dtype float32, the model wants float16"):
            r.infer({"image": tiny_inputs})
    with OnnxRuntimeRunner(tiny_onnx) as r:
        out32 = r.infer({"image": tiny_inputs})["logits"]
    assert out16.dtype == np.float16
    # same seeded weights, rounded to fp16: close, not equal
    assert np.max(np.abs(out16.astype(np.float32) - out32)) < 2e-2 * np.max(np.abs(out32))


def test_missing_file(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        OnnxRuntimeRunner(tmp_path / "nope.onnx")


def test_corrupt_file_is_artifact_error(tmp_path):
    f = tmp_path / "broken.onnx"
    f.write_bytes(b"not an onnx model")
    with pytest.raises(ArtifactError, match="broken.onnx"):
        with OnnxRuntimeRunner(f):
            pass
