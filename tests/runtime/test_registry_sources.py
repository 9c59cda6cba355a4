"""What a runtime can do comes from its Backend record only: the host-CPU FP32 reference, the paired
latency of a pruned model and TensorRT's build precisions name no runtime of their own."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np
import pytest

from edgekit.core.errors import UsageError
from edgekit.runtime import registry
from edgekit.runtime.backend import Backend, OpenRequest
from edgekit.runtime.compare import reference_runner


class FakeRunner:
    """Records how it was opened; infers zeros."""

    name = "fakeonnx"
    made: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, path: str | Path, *, threads: int | None = None, mode: str | None = None) -> None:
        FakeRunner.made.append({"path": str(path), "threads": threads, "mode": mode})
        self.info = SimpleNamespace(to_json=lambda: {"runtime": "fakeonnx", "runtime_version": "0", "device": "CPU",
                                                     "details": {}})

    def __enter__(self) -> FakeRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def infer(self, feed: Any) -> np.ndarray:
        return np.zeros((1, 2), np.float32)


def _options(r: OpenRequest) -> dict[str, Any]:
    return {"mode": f"{r.spec.device}/{r.precision}", "threads": r.threads}


@pytest.fixture
def first_onnx_runtime():
    """A fake backend that reads ONNX and ranks before every built-in one."""
    FakeRunner.made.clear()
    registry.register(Backend(name="fakeonnx", runner=FakeRunner,  # type: ignore[arg-type]
                              requires="fakeonnx_mod", extra="fakeonnx", formats=("onnx",), rank=0, options=_options))
    try:
        yield
    finally:
        registry.unregister("fakeonnx")


def test_the_reference_is_the_first_onnx_runtime_opened_with_its_own_options(first_onnx_runtime, tmp_path):
    with reference_runner(tmp_path / "m.onnx", threads=3):
        pass
    assert FakeRunner.made == [{"path": str(tmp_path / "m.onnx"), "threads": 3, "mode": "CPU/fp32"}]


def test_a_runtime_without_a_cpu_cannot_be_the_reference(tmp_path):
    with pytest.raises(UsageError, match="does not run on this host's CPU"):
        reference_runner(tmp_path / "m.onnx", runtime="tensorrt")


def test_paired_latency_runs_in_the_registrys_onnx_runtime(first_onnx_runtime, tmp_path):
    from edgekit.bench.paired_latency import paired_onnx_latency

    samples = [{"input": np.full((1, 3), i, np.float32)} for i in range(4)]
    res = paired_onnx_latency(tmp_path / "a.onnx", tmp_path / "b.onnx", samples, threads=1, rounds=1, window_s=0.01)
    assert {m["path"] for m in FakeRunner.made} == {str(tmp_path / "a.onnx"), str(tmp_path / "b.onnx")}
    assert all(m["mode"] == "CPU/fp32" and m["threads"] == 1 for m in FakeRunner.made)
    assert res.settings["runtime"] == "fakeonnx"


def test_tensorrt_build_precisions_have_one_source(tiny_static_onnx, monkeypatch):
    from edgekit.runtime.tensorrt import BACKEND, builder

    kw: dict[str, Any] = {"shapes": None, "workspace_mb": 64, "builder_optimization_level": 3, "dla_core": None,
                          "gpu_fallback": False}
    builder.validate_build_request(tiny_static_onnx, precision="fp16", **kw)
    monkeypatch.setattr(builder, "BACKEND", dataclasses.replace(BACKEND, build_precisions=("fp32",)))
    with pytest.raises(UsageError, match="unknown TensorRT precision 'fp16'") as e:
        builder.validate_build_request(tiny_static_onnx, precision="fp16", **kw)
    assert e.value.hint == "choose one of fp32"
