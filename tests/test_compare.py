"""The one device-side comparator (``edgekit.runtime.compare``): padding rule, logits comparison, reference runner."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgekit.runtime.compare import (
    ComparisonResult,
    compare_logits,
    compare_outputs,
    pad_batch,
    reference_runner,
    run_batched,
    run_logits,
)


class TestPadding:
    def test_short_chunk_repeats_its_last_row(self) -> None:
        x = np.arange(6, dtype=np.float32).reshape(3, 2)
        p = pad_batch(x, 5)
        assert p.shape == (5, 2) and (p[:3] == x).all() and (p[3:] == x[-1]).all()

    def test_dynamic_or_full_chunk_is_unchanged(self) -> None:
        x = np.ones((4, 2), dtype=np.float32)
        assert pad_batch(x, None).shape == (4, 2) and pad_batch(x, 4).shape == (4, 2)
        assert pad_batch(x[:, ::2], None).flags["C_CONTIGUOUS"]

    @pytest.mark.parametrize("n, batch", [(1, 8), (2, 8), (7, 3), (9, 3), (5, 1)])
    def test_run_batched_feeds_full_batches_and_drops_padding(self, n: int, batch: int) -> None:
        x = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
        fed: list[int] = []

        def infer(a: np.ndarray) -> np.ndarray:
            fed.append(len(a))
            return a * 2  # row-wise: the output of a row depends on that row only

        out = run_batched(infer, x, batch)
        assert all(k == batch for k in fed) and len(fed) == -(-n // batch)
        np.testing.assert_array_equal(out, x * 2)

    def test_run_logits_uses_first_input_and_output(self) -> None:
        class Spec:
            def __init__(self, name: str) -> None:
                self.name = name

        class Fake:
            inputs = (Spec("input"),)
            outputs = (Spec("logits"), Spec("other"))

            def infer(self, feed: dict) -> dict:
                assert set(feed) == {"input"} and len(feed["input"]) == 4
                return {"logits": feed["input"][:, :2] + 1, "other": feed["input"]}

        x = np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32)
        np.testing.assert_allclose(run_logits(Fake(), x, batch=4), x[:, :2] + 1)  # type: ignore[arg-type]


class TestCompareLogits:
    def test_identical_passes(self) -> None:
        ref = np.random.default_rng(1).standard_normal((10, 5))
        c = compare_logits(ref, ref.copy(), tol=1e-4)
        assert c and c.max_abs == 0 and c.rel == 0 and c.top1_agreement == 1 and c.flips == 0

    def test_error_above_tolerance_fails_with_reason(self) -> None:
        ref = np.array([[0.0, 10.0], [10.0, 0.0]])
        c = compare_logits(ref, ref + np.array([[0.0, 0.5], [0.0, 0.0]]), tol=1e-3)
        assert not c and c.reason == "error above tolerance" and c.rel == pytest.approx(0.05)

    def test_a_flip_at_a_near_tie_is_explained(self) -> None:
        ref = np.array([[1.0, 1.001, -5.0], [9.0, 0.0, 0.0]])
        got = np.array([[1.001, 1.0, -5.0], [9.0, 0.0, 0.0]])
        c = compare_logits(ref, got, tol=1e-3)  # rel = 0.001/14 < tol; the margin 0.001 <= 2 * max_abs
        assert c and c.flips == 1 and c.unexplained_flips == 0 and c.top1_agreement == 0.5

    def test_a_decided_flip_fails_on_its_error(self) -> None:
        # flipping a row whose top-1/top-2 margin is m moves some logit by >= m/2, so with the global max-abs
        # every flip counts as "explained": what fails a decided flip is the relative error
        ref = np.array([[0.0, 3.0, 0.0], [9.0, 0.0, 0.0]] * 50)
        got = ref.copy()
        got[0] = [3.0, 0.0, 0.0]
        c = compare_logits(ref, got, tol=1e-2)
        assert not c and c.flips == 1 and c.unexplained_flips == 0 and c.reason == "error above tolerance"
        assert c.ref_margin_max_flipped == pytest.approx(3.0) and c.top1_agreement == pytest.approx(0.99)

    def test_shape_and_nan_are_failures_with_nothing_compared(self) -> None:
        ref = np.zeros((2, 3))
        c = compare_logits(ref, np.zeros((2, 4)), tol=1e-4)
        assert not c and not c.finite and "shape" in c.reason
        bad = np.zeros((2, 3))
        bad[1, 1] = np.nan
        c = compare_logits(ref, bad, tol=1e-4)
        assert not c and c.reason == "output contains NaN or Inf"

    def test_no_tolerance_measures_without_a_verdict(self) -> None:
        ref = np.array([[0.0, 3.0], [1.0, 0.0]])
        c = compare_logits(ref, -ref, tol=None)
        assert c.passed and c.flips == 2 and isinstance(c, ComparisonResult)
        assert set(c.to_json()) >= {"max_abs", "rel", "top1_agreement", "flips", "unexplained_flips", "reason"}

    def test_parity_line_keeps_its_manifest_shape(self) -> None:
        ref = np.array([[0.0, 3.0], [1.0, 0.0]])
        r = compare_outputs("onnxruntime", ref, ref, rel_tol=1e-4, precision="fp32", batches=[1, 2])
        assert r and r.to_json() == {"runtime": "onnxruntime", "status": "passed", "precision": "fp32",
                                     "max_abs": 0.0, "mean_abs": 0.0, "rel": 0.0, "top1_agreement": 1.0,
                                     "flips": 0, "unexplained_flips": 0, "batches": [1, 2], "reason": ""}
        r = compare_outputs("openvino", ref, np.zeros((3, 2)), rel_tol=1e-4, precision="f32", batches=[1])
        assert not r and r.rel is None and "shape" in r.reason


def test_reference_runner_is_fp32_on_the_host_cpu(tmp_path: Path) -> None:
    """OpenVINO's reference is asked for f32 on the CPU (on AMX CPUs it would silently run bf16 otherwise)."""
    from edgekit.runtime.registry import runner_class

    pytest.importorskip("openvino", reason="the OpenVINO reference needs openvino")
    model = tmp_path / "m.onnx"
    _tiny_onnx(model)
    with reference_runner(model, runtime="openvino", threads=1, batch=2) as r:
        assert isinstance(r, runner_class("openvino")) and r.info.precision in ("f32", "fp32")
        out = run_logits(r, np.ones((3, 4), dtype=np.float32), batch=2)
    with reference_runner(model, threads=1) as r2:
        ref = run_logits(r2, np.ones((3, 4), dtype=np.float32), batch=2)
    assert compare_logits(ref, out, tol=1e-5)


def _tiny_onnx(path: Path) -> None:
    onnx = pytest.importorskip("onnx", reason="building the test graph needs onnx")
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(4, 3) / 10, "w")
    g = helper.make_graph([helper.make_node("MatMul", ["input", "w"], ["logits"])], "g",
                          [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 4])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(path))
