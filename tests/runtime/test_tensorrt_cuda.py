"""TensorRT audit (shared/reference/tensorrt-audit.md): the CUDA side, against the strict fake.

#1 the CUDA runtime comes from the libcudart TensorRT uses, never cuda-python; the driver is checked
against it first and a mismatch is one error naming the fix; #2 the key records that CUDA; #5 CUDA
failures are edgekit errors; #14 ``device`` is set before building; #15 one TensorRT logger per process.
A real libcudart (the one torch's CUDA 13 wheels put in this venv) is exercised on this GPU-less box too.
"""

from __future__ import annotations

import glob
import sys
from pathlib import Path

import pytest

from edgekit.core.errors import DeviceError, EdgekitError, MissingDependencyError

TINY_SHAPES = {"image": ((1, 3, 16, 16), (1, 3, 16, 16), (4, 3, 16, 16))}


def _build(tiny_onnx, tmp_path, **kw):
    from edgekit.runtime.tensorrt.builder import build_engine_file

    return build_engine_file(tiny_onnx, tmp_path / "tiny.engine", shapes=TINY_SHAPES, **kw)


# -- #1: the CUDA binding and the driver --------------------------------------------------------------------------
def test_cuda_python_build_does_not_matter(tiny_onnx, tiny_inputs, fake_trt, fake, tmp_path):
    """JetPack 6: driver and TensorRT on CUDA 12.6, cuda-python 13 installed (needs R580): everything still runs."""
    from edgekit.runtime.tensorrt.runner import TensorRTRunner

    fake_trt(gpu=fake.FakeGPU(driver=12060), runtime_version=12060, cuda_python_version=13000)
    _build(tiny_onnx, tmp_path)
    with TensorRTRunner(tmp_path / "tiny.engine") as r:
        assert r.infer({"image": tiny_inputs[:2]})["logits"].shape == (2, 5)


@pytest.mark.parametrize(
    ("driver", "runtime", "words"),
    [
        (0, 12060, ["no NVIDIA driver", "libcudart"]),
        (12020, 13000, ["driver supports CUDA 12.2", "CUDA 13.0", "driver >= 580", "tensorrt-cu12"]),
    ],
)
def test_driver_preflight_is_one_error_naming_the_fix(tiny_onnx, fake_trt, fake, tmp_path, driver, runtime, words):
    from edgekit.runtime.tensorrt.env import gpu_unavailable_reason

    fake_trt(gpu=fake.FakeGPU(driver=driver), runtime_version=runtime)
    with pytest.raises(DeviceError) as exc:
        _build(tiny_onnx, tmp_path)
    line = exc.value.one_line()
    assert "\n" not in line and all(w in line for w in words), line
    assert not (tmp_path / "tiny.engine").exists()
    assert gpu_unavailable_reason() == str(exc.value)


def test_driver_mismatch_on_jetson_names_jetpack_not_pip(tiny_onnx, fake_trt, fake, tmp_path, monkeypatch):
    import edgekit.runtime.tensorrt.cuda as cuda_mod

    monkeypatch.setattr(cuda_mod, "on_jetson", lambda: True)
    fake_trt(gpu=fake.FakeGPU(driver=12060), runtime_version=13000)
    with pytest.raises(DeviceError) as exc:
        _build(tiny_onnx, tmp_path)
    line = exc.value.one_line()
    assert "JetPack" in line and "cuda-compat" in line and "pip install" not in line, line


def test_missing_tensorrt_on_jetson_never_points_at_the_pypi_extra(monkeypatch):
    import importlib.util

    import edgekit.runtime.tensorrt.cuda as cuda_mod
    from edgekit.runtime.tensorrt.env import import_tensorrt

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a, **k: None if n == "tensorrt" else real(n, *a, **k))
    monkeypatch.setattr(cuda_mod, "on_jetson", lambda: True)
    with pytest.raises(MissingDependencyError) as exc:
        import_tensorrt()
    msg = exc.value.one_line()
    assert "edgekit[tensorrt]" not in msg and "python3-libnvinfer" in msg and "--system-site-packages" in msg


def test_install_lines_are_right_per_platform():
    root = Path(__file__).resolve().parents[2]
    pyproject = (root / "pyproject.toml").read_text()
    extra = next(line for line in pyproject.splitlines() if line.startswith("tensorrt = "))
    assert "cuda-python" not in extra and "platform_machine != 'aarch64'" in extra
    readme = (root / "README.md").read_text()
    jetson = next(line for line in readme.splitlines() if "--system-site-packages" in line and "Jetson" in line)
    assert "edgekit[tensorrt]" not in jetson, jetson
    assert "JetPack 5" in readme and "Python 3.8" in readme


REAL_CUDART = sorted(glob.glob(str(Path(sys.prefix) / "lib/python3*/site-packages/nvidia/*/lib/libcudart.so.*")))


@pytest.mark.skipif(not REAL_CUDART, reason="no libcudart wheel (nvidia-cuda-runtime) in this venv")
def test_real_libcudart_without_a_driver(monkeypatch):
    """The ctypes binding against a real libcudart on this GPU-less machine: the no-driver path, for real."""
    from pathlib import Path as P

    import edgekit.runtime.tensorrt.cuda as cuda_mod

    if P("/proc/driver/nvidia").exists():
        pytest.skip("this machine has an NVIDIA driver: the no-driver path cannot be shown here")
    lib = cuda_mod.open_path(REAL_CUDART[0])
    rt = cuda_mod.CudaRuntime(lib, path=REAL_CUDART[0])
    assert rt.driver_version() == 0 and rt.runtime_version() >= 12000
    with pytest.raises(DeviceError, match="no NVIDIA driver"):
        rt.preflight()
    with pytest.raises(DeviceError, match="cudaErrorInsufficientDriver|cudaErrorNoDevice"):
        rt.device_count()


# -- #2: the key records the CUDA TensorRT runs on ----------------------------------------------------------------
def test_key_records_tensorrts_cuda_not_cuda_pythons(tiny_onnx, fake_trt, fake, tmp_path):
    fake_trt(gpu=fake.FakeGPU(driver=12080), runtime_version=12060, cuda_python_version=12090)
    key = _build(tiny_onnx, tmp_path)
    assert key.cuda_version == "12.6"
    assert key.cuda_driver == "12.8"


def test_cuda_minor_upgrade_keeps_the_engine_major_change_refuses(tiny_onnx, fake_trt, fake, tmp_path):
    from edgekit.core.errors import ArtifactError
    from edgekit.runtime.tensorrt.runner import TensorRTRunner

    fake_trt(gpu=fake.FakeGPU(driver=13000), runtime_version=12060)
    _build(tiny_onnx, tmp_path)
    fake_trt(gpu=fake.FakeGPU(driver=13000), runtime_version=12080)
    with TensorRTRunner(tmp_path / "tiny.engine") as r:
        assert r.info.details["environment"]["cuda_version"] == "12.8"
    trt, _ = fake_trt(gpu=fake.FakeGPU(driver=13000), runtime_version=13000)
    with pytest.raises(ArtifactError, match="CUDA: engine 12.6, device 13.0"):
        TensorRTRunner(tmp_path / "tiny.engine").activate()
    assert trt._deserialized == []


# -- #5: CUDA failures are edgekit errors ---------------------------------------------------------------------------
def test_cuda_failure_is_an_edgekit_error_with_the_cuda_name(tiny_onnx, fake_trt, fake, tmp_path):
    from edgekit.runtime.tensorrt.runner import TensorRTRunner

    gpu = fake.FakeGPU()
    fake_trt(gpu=gpu)
    _build(tiny_onnx, tmp_path)
    gpu.mem_limit = 16  # an 8 GB Orin Nano out of memory
    with pytest.raises(DeviceError, match="cudaMalloc failed: cudaErrorMemoryAllocation") as exc:
        TensorRTRunner(tmp_path / "tiny.engine").activate()
    assert isinstance(exc.value, EdgekitError)


# -- #14: the build runs on the device it is keyed for ----------------------------------------------------------------
def test_build_on_device_1_sets_it_first(tiny_onnx, fake_trt, fake, tmp_path):
    gpu = fake.FakeGPU(devices=2)
    fake_trt(gpu=gpu)
    key = _build(tiny_onnx, tmp_path, device=1)
    assert gpu.builder_device == 1 and key.sm_count == gpu.sms + 1 and key.gpu_name == "Orin #1"


# -- #15: one logger per process ------------------------------------------------------------------------------------
def test_one_tensorrt_logger_per_process(tiny_onnx, fake_trt, tmp_path):
    from edgekit.runtime.tensorrt.runner import TensorRTRunner

    trt, _ = fake_trt()
    _build(tiny_onnx, tmp_path)
    with TensorRTRunner(tmp_path / "tiny.engine"), TensorRTRunner(tmp_path / "tiny.engine"):
        pass
    assert len(trt._loggers) == 3 and len({id(lg) for lg in trt._loggers}) == 1
