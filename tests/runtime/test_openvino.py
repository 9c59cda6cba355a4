"""OpenVINO-specific behaviour: explicit precision read back, static reshape, IR, cache, devices."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.core.errors import ArtifactError, UsageError

ov = pytest.importorskip("openvino", reason="openvino is not installed")

from edgekit.runtime.openvino.runner import OpenVINORunner  # noqa: E402


def rel_err(out: np.ndarray, ref: np.ndarray) -> float:
    return float(np.max(np.abs(out.astype(np.float64) - ref.astype(np.float64))) / np.max(np.abs(ref)))


@pytest.mark.parametrize("batch", [1, 4])
def test_dynamic_batch_reshaped_static(tiny_onnx, tiny_inputs, ort_reference, batch):
    x = tiny_inputs[:batch].copy()
    with OpenVINORunner(tiny_onnx, batch=batch, threads=1) as r:
        assert r.inputs[0].shape == (batch, 3, 16, 16)
        assert r.outputs[0].shape == (batch, 5)
        assert not r.inputs[0].is_dynamic
        assert r.info.details["static_batch"] == batch
        out = r.infer({"image": x})["logits"]
        other = 2 if batch != 2 else 3
        with pytest.raises(UsageError, match=f"shape \\({other}, 3, 16, 16\\)"):
            r.infer({"image": tiny_inputs[:other].copy()})
    assert rel_err(out, ort_reference(tiny_onnx, {"image": x})["logits"]) <= 1e-4


def test_static_batch_model_reshaped_to_another_batch(tiny_static_onnx, tiny_inputs, ort_reference):
    with OpenVINORunner(tiny_static_onnx, batch=4) as r:
        assert r.inputs[0].shape == (4, 3, 16, 16)
        out = r.infer({"image": tiny_inputs})["logits"]
    ref = np.concatenate([ort_reference(tiny_static_onnx, {"image": tiny_inputs[i : i + 1]})["logits"] for i in range(4)])
    assert rel_err(out, ref) <= 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("batch", [1, 4])
def test_mobilenet_static_batch(mobilenet_onnx, photos, ort_reference, batch):
    x = np.concatenate([photos, photos[:, :, :, ::-1]])[:batch].copy()  # 3 photos + a mirrored one
    with OpenVINORunner(mobilenet_onnx, batch=batch, precision="f32") as r:
        assert r.inputs[0].shape == (batch, 3, 224, 224)
        out = r.infer({"input": x})["logits"]
    assert rel_err(out, ort_reference(mobilenet_onnx, {"input": x})["logits"]) <= 1e-4


def test_precision_is_set_and_read_back(tiny_onnx, tiny_inputs):
    with OpenVINORunner(tiny_onnx, precision="f32") as r32:
        info = r32.info
        out32 = r32.infer({"image": tiny_inputs})["logits"]
    assert info.precision == "fp32"
    assert info.details["inference_precision"] == "f32"
    assert info.details["precision_source"] == "compiled model"
    for key in ("performance_hint", "num_streams", "inference_num_threads", "execution_devices"):
        assert key in info.details, key
    try:
        r16 = OpenVINORunner(tiny_onnx, precision="bf16")
        r16.activate()
    except UsageError as e:
        if "does not run inference precision bf16" not in e.message:
            raise  # any other usage error is a bug, not a reason to skip
        pytest.skip(f"this CPU does not run OpenVINO bf16: {e}")
    with r16:
        info16 = r16.info
        out16 = r16.infer({"image": tiny_inputs})["logits"]
    assert info16.precision == "bf16"
    assert info16.details["inference_precision"] == "bf16"
    # bf16 is really used: the outputs move by more than f32 rounding, by less than bf16's 2^-8
    assert 1e-6 < rel_err(out16, out32) < 5e-2


def test_precision_aliases_accepted(tiny_onnx):
    with OpenVINORunner(tiny_onnx, precision="fp32") as r:
        assert r.info.details["inference_precision"] == "f32"


def test_unsupported_precision_names_supported_ones(tiny_onnx):
    r = OpenVINORunner(tiny_onnx, precision="f16")
    try:
        r.activate()
    except UsageError as e:
        msg = str(e)
        assert "does not run inference precision f16" in msg
        assert "supported here: f32" in msg
        assert "OPTIMIZATION_CAPABILITIES" in msg
    else:
        with r:
            assert r.info.details["inference_precision"] == "f16"
        pytest.skip("this CPU runs f16 natively, so f16 is not unsupported here")


@pytest.mark.parametrize("bad", ["int8", "fp64", "half-ish"])
def test_unknown_precision_refused(tiny_onnx, bad):
    with pytest.raises(UsageError, match="choose f32, bf16 or f16"):
        OpenVINORunner(tiny_onnx, precision=bad)


def test_bad_options_refused(tiny_onnx):
    with pytest.raises(UsageError, match="unknown performance hint"):
        OpenVINORunner(tiny_onnx, hint="fastest")
    with pytest.raises(UsageError, match="batch must be a positive integer"):
        OpenVINORunner(tiny_onnx, batch=0)
    with pytest.raises(UsageError, match="streams must be a positive integer"):
        OpenVINORunner(tiny_onnx, streams=-1)


def test_threads_streams_hint_read_back(tiny_onnx):
    with OpenVINORunner(tiny_onnx, threads=1, streams=1, hint="throughput") as r:
        info = r.info
    assert info.threads == 1
    assert info.details["inference_num_threads"] == 1
    assert info.details["num_streams"] == 1
    assert info.details["performance_hint"] == "throughput"
    assert info.details["execution_devices"] == ["CPU"]


def test_unavailable_device(tiny_onnx):
    if any(d.startswith("GPU") for d in ov.Core().available_devices):
        pytest.skip("an OpenVINO GPU is available on this machine")
    r = OpenVINORunner(tiny_onnx, device="GPU")
    with pytest.raises(UsageError, match="device 'GPU' is not available.*available: CPU"):
        r.activate()


def test_auto_device_records_execution_devices(tiny_onnx, tiny_inputs):
    with OpenVINORunner(tiny_onnx, device="AUTO", precision="f32") as r:
        info = r.info
        assert r.infer({"image": tiny_inputs})["logits"].shape == (4, 5)
    assert info.device == "AUTO"
    assert info.details["execution_devices"]
    # AUTO does not report the inference precision; the record says so instead of guessing
    if "inference_precision" not in info.details:
        assert info.details["precision_source"].startswith("requested")


def test_reads_ir(tiny_onnx, tiny_inputs, ort_reference, tmp_path):
    core = ov.Core()
    xml = tmp_path / "tiny.xml"
    ov.save_model(core.read_model(str(tiny_onnx)), str(xml), compress_to_fp16=False)
    with OpenVINORunner(xml) as r:
        assert r.inputs[0].name == "image"
        assert r.info.details["model_format"] == "ir"
        out = r.infer({"image": tiny_inputs})["logits"]
    assert rel_err(out, ort_reference(tiny_onnx, {"image": tiny_inputs})["logits"]) <= 1e-4
    xml.with_suffix(".bin").unlink()
    with pytest.raises(ArtifactError, match="has no tiny.bin"):
        OpenVINORunner(xml)


def test_refuses_other_formats(tmp_path):
    f = tmp_path / "model.engine"
    f.write_bytes(b"\0" * 16)
    with pytest.raises(UsageError, match="reads .onnx or IR .xml"):
        OpenVINORunner(f)


def test_corrupt_onnx_is_artifact_error(tmp_path):
    f = tmp_path / "broken.onnx"
    f.write_bytes(b"this is not a protobuf")
    with pytest.raises(ArtifactError, match="broken.onnx"):
        with OpenVINORunner(f):
            pass


def test_cache_dir_is_used(tiny_onnx, tmp_path):
    cache = tmp_path / "ov-cache"
    with OpenVINORunner(tiny_onnx, cache_dir=cache) as r:
        assert r.info.details["cache_dir"] == str(cache)
    blobs = [p for p in cache.rglob("*") if p.is_file()]
    assert blobs, "OpenVINO wrote nothing into CACHE_DIR"


def test_qdq_model_reports_int8_and_float_precision(tiny_qdq_onnx, tiny_inputs):
    with OpenVINORunner(tiny_qdq_onnx, precision="f32") as r:
        info = r.info
        out = r.infer({"image": tiny_inputs})["logits"]
    assert info.precision == "int8"
    assert info.details["float_precision"] == "fp32"
    assert info.details["graph"]["qdq_nodes"] == 4
    assert np.all(np.isfinite(out))
    # the compiled model itself says which layers run in int8 (its runtime model)
    layers = info.details["compute_layer_precisions"]
    assert any(p in ("u8", "i8") for p in layers), layers


def test_int8_ir_reports_int8_from_the_compiled_model(tiny_qdq_onnx, tiny_onnx, tmp_path):
    """An IR carries no Q/DQ graph to read: the executed precision comes from the compiled model."""
    core = ov.Core()
    for src, name in ((tiny_qdq_onnx, "q.xml"), (tiny_onnx, "f.xml")):
        ov.save_model(core.read_model(str(src)), str(tmp_path / name), compress_to_fp16=False)
    with OpenVINORunner(tmp_path / "q.xml", precision="f32") as r:
        q = r.info
    with OpenVINORunner(tmp_path / "f.xml", precision="f32") as r:
        f = r.info
    assert q.details["model_format"] == "ir" and q.precision == "int8" and q.details["float_precision"] == "fp32"
    assert f.precision == "fp32" and set(f.details["compute_layer_precisions"]) == {"f32"}


def test_qdq_model_with_bf16_float_layers_reports_the_mixed_precision(tiny_qdq_onnx, tiny_inputs):
    """benchmark_app's default on a CPU with native bf16: INT8 layers, the float layers in bf16 (int8+bf16)."""
    from edgekit.bench.plan import host_cpu_flags

    flags = host_cpu_flags()
    if not {"avx512_bf16", "amx_bf16", "bf16"} & set(flags):
        pytest.skip(f"this CPU has no native bf16 (flags read: {', '.join(flags) or 'none'})")
    with OpenVINORunner(tiny_qdq_onnx, precision="bf16") as r:
        info = r.info
        out = r.infer({"image": tiny_inputs})["logits"]
    assert info.precision == "int8+bf16" and info.details["float_precision"] == "bf16"
    assert np.all(np.isfinite(out))
