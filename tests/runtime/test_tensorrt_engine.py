"""TensorRT audit (shared/reference/tensorrt-audit.md): builder, engine key and runner, against the strict fake.

#3 TensorRT 8.6 built with an explicit-batch network, 8.5 refused; #6 DLA placement checked; #7 INT8 with FP16
for the float parts, labelled; #8 version-compatible engines load; #9 Orin modules told apart; #11 timing
quantities as trtexec names them; #12 data-dependent outputs refused; #13 cuDNN / JetPack not over-strict;
#16 the nvidia-gpu profile; #17 L4T table; #18 engines without a profile.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest

from edgekit.core.errors import ArtifactError, UsageError

TINY_SHAPES = {"image": ((1, 3, 16, 16), (1, 3, 16, 16), (4, 3, 16, 16))}
STATIC = {"image": ((1, 3, 16, 16),) * 3}
ROOT = Path(__file__).resolve().parents[2]


def _build(onnx, tmp_path, name="tiny.engine", **kw):
    from edgekit.runtime.tensorrt.builder import build_engine_file

    kw.setdefault("shapes", TINY_SHAPES)
    return build_engine_file(onnx, tmp_path / name, **kw)


def _runner(tmp_path, name="tiny.engine"):
    from edgekit.runtime.tensorrt.runner import TensorRTRunner

    return TensorRTRunner(tmp_path / name)


# -- #3: TensorRT 8.x -----------------------------------------------------------------------------------------------
def test_tensorrt_8_6_builds_an_explicit_batch_network(tiny_onnx, tiny_inputs, fake_trt, tmp_path):
    trt, _ = fake_trt("8.6.2")
    key = _build(tiny_onnx, tmp_path, precision="fp16")
    net = trt._networks[-1]
    assert net._flags & (1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH))
    assert key.tensorrt_version == "8.6.2" and "FP16" in key.extra["builder_flags"]
    with _runner(tmp_path) as r:
        assert r.infer({"image": tiny_inputs[:1]})["logits"].shape == (1, 5)


def test_tensorrt_8_5_is_refused_with_the_reason(tiny_onnx, fake_trt, tmp_path):
    fake_trt("8.5.2")
    with pytest.raises(UsageError, match=r"TensorRT 8\.5\.2 is not supported.*8\.6") as exc:
        _build(tiny_onnx, tmp_path)
    assert "JetPack" in exc.value.one_line()


def test_jetpack5_and_xavier_say_python_38_is_too_old():
    xavier = (ROOT / "targets" / "jetson-xavier-nx.toml").read_text()
    assert "Python 3.8" in xavier and "3.10" in xavier


# -- #6: DLA placement --------------------------------------------------------------------------------------------
def test_dla_build_records_layer_placement_and_labels_the_device(tiny_onnx, tiny_inputs, fake_trt, fake, tmp_path):
    trt, _ = fake_trt(gpu=fake.FakeGPU(dla_cores=2))
    key = _build(tiny_onnx, tmp_path, shapes=STATIC, precision="fp16", dla_core=0, gpu_fallback=True)
    placement = key.extra["dla_placement"]
    assert placement["dla_layers"] == 2 and placement["gpu_layers"] == 2
    assert placement["on_gpu"] == ["reduce_2", "shuffle_3"]
    with _runner(tmp_path) as r:
        info = r.info
    assert info.device == "dla:0+gpu" and info.details["dla_placement"] == placement
    assert "2 of 4 layers" in info.details["precision_note"]


def test_dla_build_without_fallback_names_the_gpu_layers_before_building(tiny_onnx, fake_trt, fake, tmp_path):
    fake_trt(gpu=fake.FakeGPU(dla_cores=1))
    with pytest.raises(UsageError, match="reduce_2, shuffle_3 cannot run on DLA"):
        _build(tiny_onnx, tmp_path, shapes=STATIC, precision="fp16", dla_core=0)


def test_dla_build_where_nothing_runs_on_dla_is_refused(tiny_onnx, fake_trt, fake, tmp_path):
    fake_trt(gpu=fake.FakeGPU(dla_cores=1), layers=("REDUCE", "SHUFFLE"))
    with pytest.raises(UsageError, match="no layer .* runs on DLA"):
        _build(tiny_onnx, tmp_path, shapes=STATIC, precision="fp16", dla_core=0, gpu_fallback=True)


# -- #7: INT8 with FP16 float parts ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("int8_float", "flags", "label"), [("fp16", {"INT8", "FP16"}, "int8+fp16"),
                                                             ("fp32", {"INT8"}, "int8+fp32")])
def test_int8_float_parts(tiny_qdq_onnx, fake_trt, tmp_path, int8_float, flags, label):
    trt, _ = fake_trt()
    key = _build(tiny_qdq_onnx, tmp_path, precision="int8", int8_float=int8_float)
    assert trt._configs[-1]._flags == flags and set(key.extra["builder_flags"]) == flags
    with _runner(tmp_path) as r:
        assert r.info.precision == "int8" and r.info.details["precision_label"] == label


def test_int8_default_is_trtexec_int8_fp16(tiny_qdq_onnx, fake_trt, tmp_path):
    fake_trt()
    assert _build(tiny_qdq_onnx, tmp_path, precision="int8").int8_float == "fp16"


# -- #8: version-compatible engines --------------------------------------------------------------------------------
def test_version_compatible_engine_loads_on_a_newer_tensorrt(tiny_onnx, tiny_inputs, fake_trt, fake, tmp_path):
    fake_trt("10.3.0", runtime_version=12060)
    _build(tiny_onnx, tmp_path, version_compatible=True)
    trt, _ = fake_trt("10.7.0", gpu=fake.FakeGPU(driver=12080), runtime_version=12080)
    with _runner(tmp_path) as r:
        assert r.infer({"image": tiny_inputs[:1]})["logits"].shape == (1, 5)
    assert trt._runtimes[-1].engine_host_code_allowed is True


def test_plain_engine_never_allows_host_code(tiny_onnx, fake_trt, tmp_path):
    trt, _ = fake_trt()
    _build(tiny_onnx, tmp_path)
    with _runner(tmp_path):
        pass
    assert trt._runtimes[-1].engine_host_code_allowed is False


# -- #9: Orin modules -------------------------------------------------------------------------------------------------
def _jetson(monkeypatch, module):
    import edgekit.runtime.tensorrt.env as env

    ident = {"l4t_release": "36.4.3", "jetpack_version": "6.2", "jetson_model": "NVIDIA Jetson", "jetson_module": module}
    monkeypatch.setattr(env, "jetson_identity", lambda: dict(ident))


def test_agx_orin_engine_is_refused_on_an_orin_nano(tiny_onnx, fake_trt, fake, tmp_path, monkeypatch):
    from edgekit.runtime.tensorrt.build import environment_digest

    _jetson(monkeypatch, "p3701-0005")
    fake_trt(gpu=fake.FakeGPU(sms=16))
    agx = _build(tiny_onnx, tmp_path)
    _jetson(monkeypatch, "p3767-0005")
    trt, _ = fake_trt(gpu=fake.FakeGPU(sms=8))
    with pytest.raises(ArtifactError) as exc:
        _runner(tmp_path).activate()
    assert "Jetson module: engine p3701-0005, device p3767-0005" in str(exc.value)
    assert "SMs: engine 16, device 8" in str(exc.value)
    assert trt._deserialized == []
    nano = agx.with_environment({"jetson_module": "p3767-0005", "sm_count": 8})
    assert environment_digest(agx.to_json()) != environment_digest(nano.to_json())


# -- #11: timing quantities ------------------------------------------------------------------------------------------
def test_timing_is_trtexecs_host_latency_from_cuda_events(tiny_onnx, tiny_inputs, fake_trt, fake, tmp_path):
    fake_trt()
    _build(tiny_onnx, tmp_path)
    with _runner(tmp_path) as r:
        r.infer({"image": tiny_inputs[:2]})
        t = r.last_timing
    assert (t.h2d_ms, t.gpu_compute_ms, t.d2h_ms) == (fake.H2D_MS, fake.COMPUTE_MS, fake.D2H_MS)
    assert t.host_latency_ms == pytest.approx(fake.H2D_MS + fake.COMPUTE_MS + fake.D2H_MS)
    assert t.python_end_to_end_ms > 0
    assert set(t.to_json()) == {"h2d_ms", "gpu_compute_ms", "d2h_ms", "host_latency_ms", "python_end_to_end_ms"}


# -- #12: data-dependent output shapes --------------------------------------------------------------------------------
def test_data_dependent_output_is_refused(tiny_onnx, fake_trt, fake, tmp_path, monkeypatch):
    fake_trt()
    _build(tiny_onnx, tmp_path)
    monkeypatch.setattr(fake.FakeContext, "get_tensor_shape",
                        lambda self, n: self._shapes.get("image", (1, 3, 16, 16)) if n == "image" else (-1, 5))
    with pytest.raises(ArtifactError, match="logits.*data-dependent"):
        _runner(tmp_path).activate()


# -- #13: cuDNN and JetPack -------------------------------------------------------------------------------------------
def test_cudnn_and_late_jetpack_package_do_not_force_a_rebuild():
    from edgekit.runtime.tensorrt.engine_key import EngineKey, engine_mismatches

    built = EngineKey(onnx_sha256="a", tensorrt_version="10.3.0", precision="fp16", cudnn_version="9.1.0",
                      jetpack_version=None, l4t_release="36.4.3")
    device = EngineKey(onnx_sha256="a", tensorrt_version="10.3.0", precision="fp16", cudnn_version="9.3.0",
                       jetpack_version="6.2", l4t_release="36.4.3")
    assert engine_mismatches(built, device) == []
    other_l4t = EngineKey(onnx_sha256="a", tensorrt_version="10.3.0", precision="fp16", l4t_release="36.4.0")
    assert [m[0] for m in engine_mismatches(built, other_l4t)] == ["l4t_release"]


def test_runner_does_not_load_cudnn(tiny_onnx, fake_trt, tmp_path, monkeypatch):
    import ctypes

    fake_trt()
    _build(tiny_onnx, tmp_path)
    real = ctypes.CDLL

    def no_cudnn(name, *a, **k):
        assert "cudnn" not in str(name), "activation loaded libcudnn"
        return real(name, *a, **k)

    monkeypatch.setattr(ctypes, "CDLL", no_cudnn)
    with _runner(tmp_path):
        pass


# -- #16 / #17: profile and L4T table ----------------------------------------------------------------------------------
def test_nvidia_gpu_profile_claims_only_what_edgekit_builds():
    prof = tomllib.loads((ROOT / "targets" / "nvidia-gpu.toml").read_text())
    trt = next(r for r in prof["runtimes"] if r["runtime"] == "tensorrt")
    assert "bf16" not in trt["precisions"]
    assert not any("key caches on" in n and "driver" in n for n in prof["notes"])


def test_l4t_table_knows_recent_releases():
    from edgekit.core.host import jetpack_for_l4t

    assert [jetpack_for_l4t(v) for v in ("36.4.4", "35.6.1", "38.2.0")] == ["6.2.1", "5.1.5", "7.0"]


# -- #18: an engine built without an optimization profile -------------------------------------------------------------
def test_static_engine_without_profile_runs(tiny_static_onnx, tiny_inputs, fake_trt, tmp_path):
    fake_trt()
    _build(tiny_static_onnx, tmp_path, shapes=None)
    with _runner(tmp_path) as r:
        batch = r.inputs[0].shape[0]
        out = r.infer({"image": np.ascontiguousarray(tiny_inputs[:batch])})["logits"]
    assert out.shape == (batch, 5)
