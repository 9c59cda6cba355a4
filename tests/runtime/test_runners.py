"""One contract every runtime backend must meet, subclassed per backend.

Parity is measured against plain ONNX Runtime (CPU, default options) as
``max|out - ref| / max|ref|`` (relative to the output's peak, so it does not
depend on the logit scale of a random-init model).
"""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from edgekit.core.errors import MissingDependencyError, UsageError
from edgekit.runtime.base import Runner
from edgekit.runtime.onnx_info import read_graph_info
from edgekit.runtime.registry import create_runner


def rel_err(out: np.ndarray, ref: np.ndarray) -> float:
    return float(np.max(np.abs(out.astype(np.float64) - ref.astype(np.float64))) / np.max(np.abs(ref)))


class RunnerContract:
    """The backend test template. Subclasses set the class attributes and may override ``make_runner``."""

    runtime: ClassVar[str]
    package: ClassVar[str]
    extra: ClassVar[str]
    options: ClassVar[dict[str, Any]] = {}
    expected_precision: ClassVar[str] = "fp32"
    rel_tol: ClassVar[float] = 1e-5
    check_top1: ClassVar[bool] = True

    @pytest.fixture
    def ready(self) -> None:
        """Skip (with the reason) when this backend cannot run here."""
        pytest.importorskip(self.package, reason=f"{self.package} is not installed")

    def make_runner(self, model_path: Path, tmp_path: Path, **overrides: Any) -> Runner:
        return create_runner(self.runtime, model_path, **{**self.options, **overrides})

    # -- parity ----------------------------------------------------------
    def test_parity_tiny(self, ready, tiny_onnx, tiny_inputs, ort_reference, tmp_path):
        ref = ort_reference(tiny_onnx, {"image": tiny_inputs})["logits"]
        with self.make_runner(tiny_onnx, tmp_path) as r:
            out = r.infer({"image": tiny_inputs})
        assert set(out) == {"logits"}
        assert out["logits"].shape == ref.shape and out["logits"].dtype == np.float32
        assert rel_err(out["logits"], ref) <= self.rel_tol

    @pytest.mark.slow
    def test_parity_real_photos(self, ready, mobilenet_onnx, photos, ort_reference, tmp_path):
        ref = ort_reference(mobilenet_onnx, {"input": photos})["logits"]
        with self.make_runner(mobilenet_onnx, tmp_path) as r:
            out = r.infer({"input": photos})["logits"]
            precision = r.info.precision
        err = rel_err(out, ref)
        max_abs = float(np.max(np.abs(out - ref)))
        print(f"{type(self).__name__}: precision={precision} max-abs={max_abs:.3e} rel-to-peak={err:.3e}")
        assert out.shape == (3, 1000)
        assert np.all(np.isfinite(out))
        assert err <= self.rel_tol
        if self.check_top1:
            np.testing.assert_array_equal(out.argmax(1), ref.argmax(1))

    def test_batch_matches_single_runs(self, ready, tiny_onnx, tiny_inputs, tmp_path):
        with self.make_runner(tiny_onnx, tmp_path) as r:
            batched = r.infer({"image": tiny_inputs})["logits"]
            singles = np.concatenate([r.infer({"image": tiny_inputs[i : i + 1]})["logits"] for i in range(4)])
        assert rel_err(batched, singles) <= max(self.rel_tol, 1e-5)

    # -- metadata --------------------------------------------------------
    def test_metadata_matches_onnx_graph(self, ready, tiny_onnx, tmp_path):
        graph = read_graph_info(tiny_onnx)
        with self.make_runner(tiny_onnx, tmp_path) as r:
            assert r.inputs == graph.inputs
            assert r.outputs == graph.outputs
        assert graph.inputs[0].shape == ("batch", 3, 16, 16)
        assert graph.outputs[0].shape == ("batch", 5)

    def test_info(self, ready, tiny_onnx, tmp_path):
        with self.make_runner(tiny_onnx, tmp_path) as r:
            info = r.info
        assert info.runtime == self.runtime
        assert info.runtime_version
        assert info.precision == self.expected_precision
        json.dumps(info.to_json())  # recorded with every result, so it must serialize

    def test_runtime_timing(self, ready, tiny_onnx, tiny_inputs, tmp_path):
        """A runner that times its own calls says so and times every call; the rest report None."""
        with self.make_runner(tiny_onnx, tmp_path) as r:
            assert r.last_runtime_ns() is None  # nothing ran yet
            for i in range(3):
                t0 = time.perf_counter_ns()
                r.infer({"image": tiny_inputs[i : i + 1]})
                host = time.perf_counter_ns() - t0
                own = r.last_runtime_ns()
                if r.runtime_timer is None:
                    assert own is None
                else:  # the runtime's own timing lies inside the host wall time around the call
                    assert own is not None and 0 < own <= host
        with pytest.raises(UsageError, match="not active"):
            r.last_runtime_ns()

    # -- input validation --------------------------------------------------
    def test_feed_checks_are_built_at_activation(self, ready, tiny_onnx, tiny_inputs, tmp_path, monkeypatch):
        """Validation runs on every timed call, so it must not look the input specs up per call; an ndarray
        subclass is still accepted, and a bad feed still gets the full message."""
        with self.make_runner(tiny_onnx, tmp_path) as r:
            monkeypatch.setattr(r, "_inputs_impl", lambda: pytest.fail("input specs read per call"))
            r.infer({"image": tiny_inputs[:1]})
            r.infer({"image": tiny_inputs})  # a dynamic batch dimension
            r.validate_feeds({"image": tiny_inputs.view(type("Sub", (np.ndarray,), {}))})
            with pytest.raises(UsageError, match="has dtype float64, the model wants float32"):
                r.infer({"image": tiny_inputs.astype(np.float64)})
            with pytest.raises(UsageError, match="has shape"):
                r.infer({"image": tiny_inputs[:, :2]})
            with pytest.raises(UsageError, match="must be a numpy array, got list"):
                r.infer({"image": tiny_inputs.tolist()})

    def test_wrong_input_name(self, ready, tiny_onnx, tiny_inputs, tmp_path):
        with self.make_runner(tiny_onnx, tmp_path) as r:
            with pytest.raises(UsageError, match="missing \\['image'\\], unexpected \\['input'\\]"):
                r.infer({"input": tiny_inputs})

    def test_wrong_dtype(self, ready, tiny_onnx, tiny_inputs, tmp_path):
        with self.make_runner(tiny_onnx, tmp_path) as r:
            with pytest.raises(UsageError, match="dtype float64, the model wants float32"):
                r.infer({"image": tiny_inputs.astype(np.float64)})

    def test_wrong_shape(self, ready, tiny_onnx, tiny_inputs, tmp_path):
        with self.make_runner(tiny_onnx, tmp_path) as r:
            with pytest.raises(UsageError, match="shape \\(4, 3, 8, 8\\)"):
                r.infer({"image": tiny_inputs[:, :, :8, :8].copy()})
            with pytest.raises(UsageError, match="shape \\(3, 16, 16\\)"):
                r.infer({"image": tiny_inputs[0]})

    def test_used_outside_with(self, ready, tiny_onnx, tiny_inputs, tmp_path):
        r = self.make_runner(tiny_onnx, tmp_path)
        with pytest.raises(UsageError, match="not active"):
            r.infer({"image": tiny_inputs})
        with pytest.raises(UsageError, match="not active"):
            _ = r.inputs
        with r:
            assert r.infer({"image": tiny_inputs})["logits"].shape == (4, 5)
        with pytest.raises(UsageError, match="not active"):
            _ = r.info

    # -- packaging ---------------------------------------------------------
    def test_missing_runtime_names_extra(self, tiny_onnx, monkeypatch):
        real_find_spec = importlib.util.find_spec

        def find_spec(name: str, *args: Any, **kwargs: Any):
            if name.split(".")[0] == self.package:
                return None
            return real_find_spec(name, *args, **kwargs)

        monkeypatch.setattr(importlib.util, "find_spec", find_spec)
        with pytest.raises(MissingDependencyError) as exc:
            create_runner(self.runtime, tiny_onnx, **self.options)
        assert exc.value.extra == self.extra
        assert f"pip install 'edgekit[{self.extra}]'" in str(exc.value)


class TestOnnxRuntime(RunnerContract):
    runtime = "onnxruntime"
    package = "onnxruntime"
    extra = "onnxruntime"
    # a different code path from the reference: one thread, no graph fusions
    options: ClassVar[dict[str, Any]] = {"threads": 1, "graph_optimization": "disable"}


class TestOpenVINOf32(RunnerContract):
    runtime = "openvino"
    package = "openvino"
    extra = "openvino"
    options: ClassVar[dict[str, Any]] = {"precision": "f32", "threads": 1}
    rel_tol = 1e-4


class TestOpenVINObf16(RunnerContract):
    runtime = "openvino"
    package = "openvino"
    extra = "openvino"
    options: ClassVar[dict[str, Any]] = {"precision": "bf16", "threads": 1}
    expected_precision = "bf16"
    rel_tol = 5e-2  # bf16 keeps 8 mantissa bits
    check_top1 = False  # near-tied logits of a random-init model may swap

    def make_runner(self, model_path: Path, tmp_path: Path, **overrides: Any) -> Runner:
        r = super().make_runner(model_path, tmp_path, **overrides)
        try:
            r.activate()
        except UsageError as e:
            if "does not run inference precision bf16" in str(e):
                pytest.skip(f"this CPU does not run OpenVINO bf16: {e}")
            raise
        r.deactivate()
        return r


class TestTensorRT(RunnerContract):
    runtime = "tensorrt"
    package = "tensorrt"
    extra = "tensorrt"
    rel_tol = 1e-3  # fp32 with TF32 disabled; tactic choice still reorders sums

    @pytest.fixture
    def ready(self) -> None:
        from edgekit.runtime.tensorrt.runner import gpu_unavailable_reason

        reason = gpu_unavailable_reason()
        if reason:
            pytest.skip(f"TensorRT/CUDA not available on this machine (no GPU): {reason}")

    def make_runner(self, model_path: Path, tmp_path: Path, **overrides: Any) -> Runner:
        from edgekit.runtime.tensorrt.runner import build_engine_file

        engine = tmp_path / (model_path.stem + ".engine")
        if not engine.exists():
            shapes = None
            graph = read_graph_info(model_path)
            spec = graph.inputs[0]
            if isinstance(spec.shape[0], str):
                rest = tuple(int(d) for d in spec.shape[1:])
                shapes = {spec.name: ((1, *rest), (1, *rest), (4, *rest))}
            build_engine_file(model_path, engine, precision="fp32", shapes=shapes)
        return create_runner(self.runtime, engine, **{**self.options, **overrides})
