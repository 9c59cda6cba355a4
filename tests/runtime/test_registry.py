"""Runtime registry: names, aliases, availability without importing, option checks."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from edgekit.core.errors import UsageError
from edgekit.runtime.registry import RUNTIMES, available_runtimes, create_runner, resolve_runtime


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("onnxruntime", "onnxruntime"),
        ("ort", "onnxruntime"),
        ("openvino", "openvino"),
        ("OV", "openvino"),
        ("tensorrt", "tensorrt"),
        ("trt", "tensorrt"),
    ],
)
def test_names_and_aliases(name, canonical):
    assert resolve_runtime(name).name == canonical


def test_unknown_runtime_lists_valid_names():
    with pytest.raises(UsageError) as exc:
        resolve_runtime("tflite")
    msg = str(exc.value)
    assert "unknown runtime 'tflite'" in msg
    for n in RUNTIMES:
        assert n in msg
    assert "ort" in msg and "ov" in msg and "trt" in msg


def test_available_runtimes_follow_find_spec(monkeypatch):
    real = importlib.util.find_spec

    def fake(name, *a, **k):
        if name in ("openvino", "tensorrt"):
            return None
        return real(name, *a, **k)

    monkeypatch.setattr(importlib.util, "find_spec", fake)
    got = available_runtimes()
    assert "openvino" not in got and "tensorrt" not in got
    assert ("onnxruntime" in got) == (real("onnxruntime") is not None)


def test_available_runtimes_imports_no_runtime():
    code = (
        "import sys; from edgekit.runtime.registry import available_runtimes; r = available_runtimes();"
        "bad = [m for m in ('onnxruntime', 'openvino', 'tensorrt', 'torch') if m in sys.modules];"
        "print(r); assert not bad, bad"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "onnxruntime" in proc.stdout or importlib.util.find_spec("onnxruntime") is None


def test_create_runner_by_alias(tiny_onnx):
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    from edgekit.runtime.onnxruntime.runner import OnnxRuntimeRunner

    r = create_runner("ort", tiny_onnx, threads=1)
    assert isinstance(r, OnnxRuntimeRunner)
    assert r.threads == 1


def test_create_runner_unknown_option(tiny_onnx):
    pytest.importorskip("openvino", reason="openvino is not installed")
    with pytest.raises(UsageError, match="does not take option\\(s\\) intra_threads.*it takes: device, precision"):
        create_runner("ov", tiny_onnx, intra_threads=2)


def test_backend_modules_import_no_runtime():
    code = (
        "import sys\n"
        "import edgekit.runtime.onnxruntime.runner, edgekit.runtime.openvino.runner, edgekit.runtime.tensorrt.runner\n"
        "import edgekit.runtime.registry, edgekit.runtime.tensorrt.engine_key\n"
        "heavy = ('torch', 'timm', 'onnxruntime', 'openvino', 'tensorrt', 'onnx', 'cuda')\n"
        "bad = [m for m in heavy if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
