"""The TensorRT engine key, its sidecar and the compatibility check (pure Python, no TensorRT)."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest

from edgekit.core.errors import ArtifactError
from edgekit.runtime.tensorrt.engine_key import (
    BUILD_FIELDS,
    ENV_FIELDS,
    EngineKey,
    check_engine_compat,
    engine_mismatches,
    read_sidecar,
    read_verified_engine,
    sidecar_path,
    write_engine,
)

ORIN = EngineKey(
    onnx_sha256="a" * 64,
    tensorrt_version="10.3.0",
    precision="fp16",
    cuda_version="12.6",
    cudnn_version="9.3.0",
    gpu_name="Orin",
    compute_capability="8.7",
    sm_count=16,
    jetson_module="p3701-0005",
    l4t_release="36.4.0",
    jetpack_version="6.1",
    jetson_model="NVIDIA Jetson AGX Orin Developer Kit",
    shapes={"input": ((1, 3, 224, 224), (1, 3, 224, 224), (8, 3, 224, 224))},
    builder_optimization_level=3,
    workspace_mb=1024,
    timing_cache_sha256="b" * 64,
)

# A value of a different kind for every identifying field.
OTHER_VALUES = {
    "onnx_sha256": "c" * 64,
    "tensorrt_version": "10.7.0",
    "precision": "int8",
    "cuda_version": "13.0",
    "gpu_name": "NVIDIA GeForce RTX 4090",
    "compute_capability": "8.9",
    "sm_count": 8,
    "jetson_module": "p3767-0005",
    "int8_float": "fp16",
    "l4t_release": "36.3.0",
    "jetpack_version": "6.0",
    "strongly_typed": True,
    "shapes": {"input": ((1, 3, 224, 224), (4, 3, 224, 224), (8, 3, 224, 224))},
    "builder_optimization_level": 5,
    "workspace_mb": 2048,
    "dla_core": 0,
    "gpu_fallback": True,
    "hardware_compatible": True,
    "version_compatible": True,
    "timing_cache_sha256": "d" * 64,
}


def test_every_identifying_field_is_covered():
    assert set(OTHER_VALUES) == set(ENV_FIELDS) | set(BUILD_FIELDS)


def test_digest_is_stable_and_order_independent():
    same = dataclasses.replace(ORIN)
    assert same.digest() == ORIN.digest()
    assert len(ORIN.digest()) == 64
    two = {"b": ((1,), (2,), (3,)), "a": ((1, 2), (1, 2), (1, 2))}
    k1 = dataclasses.replace(ORIN, shapes=two)
    k2 = dataclasses.replace(ORIN, shapes=dict(reversed(list(two.items()))))
    assert k1.digest() == k2.digest()


def test_digest_format_is_pinned():
    # Cache keys written by one edgekit release must be found by the next: the canonical
    # form below may only change together with a KEY_VERSION bump.
    key = EngineKey(
        onnx_sha256="0" * 64,
        tensorrt_version="10.3.0",
        precision="fp32",
        shapes={"input": ((1, 3, 224, 224), (1, 3, 224, 224), (4, 3, 224, 224))},
    )
    expected = (
        '{"builder_optimization_level":3,"compute_capability":null,"cuda_version":null,'
        '"dla_core":null,"gpu_fallback":false,"gpu_name":null,"hardware_compatible":false,"int8_float":null,'
        '"jetpack_version":null,"jetson_module":null,'
        '"key_version":2,"l4t_release":null,"onnx_sha256":"' + "0" * 64 + '","precision":"fp32",'
        '"shapes":{"input":[[1,3,224,224],[1,3,224,224],[4,3,224,224]]},"sm_count":null,"strongly_typed":false,'
        '"tensorrt_version":"10.3.0","timing_cache_sha256":null,"version_compatible":false,"workspace_mb":1024}'
    )
    assert key.digest() == hashlib.sha256(expected.encode()).hexdigest()


@pytest.mark.parametrize("field", sorted(OTHER_VALUES))
def test_every_field_changes_the_digest(field):
    changed = dataclasses.replace(ORIN, **{field: OTHER_VALUES[field]})
    assert changed.digest() != ORIN.digest()


def test_recorded_only_fields_do_not_change_the_digest():
    other = dataclasses.replace(ORIN, jetson_model="NVIDIA Jetson Orin NX", extra={"note": "x"}, cuda_driver="13.0",
                                cudnn_version="9.5.0")
    assert other.digest() == ORIN.digest()


def test_json_round_trip():
    key = dataclasses.replace(ORIN, extra={"builder_flags": ["FP16"], "inputs": [{"name": "input"}]})
    back = EngineKey.from_json(json.loads(json.dumps(key.to_json())))
    assert back == key
    assert back.digest() == key.digest()
    assert back.extra == key.extra
    assert back.jetson_model == key.jetson_model


def test_older_key_version_refused_with_rebuild():
    d = ORIN.to_json()
    d["key_version"] = 1
    with pytest.raises(ArtifactError, match="key version 1 predates.*rebuild"):
        EngineKey.from_json(d)


def test_newer_key_version_refused():
    d = ORIN.to_json()
    d["key_version"] = 99
    with pytest.raises(ArtifactError, match="key version 99 is newer"):
        EngineKey.from_json(d)


# -- compatibility -------------------------------------------------------------
def test_same_environment_is_compatible():
    check_engine_compat(ORIN, dataclasses.replace(ORIN))


def test_example_message_tensorrt_version():
    device = dataclasses.replace(ORIN, tensorrt_version="10.7.0")
    with pytest.raises(ArtifactError) as exc:
        check_engine_compat(ORIN, device, engine="model.engine")
    msg = str(exc.value)
    assert ("engine model.engine was built for TensorRT 10.3.0, CUDA 12.6 on Orin (sm_87, 16 SMs) module p3701-0005, "
            "L4T 36.4.0") in msg
    assert "this device has TensorRT 10.7.0" in msg
    assert "TensorRT: engine 10.3.0, device 10.7.0" in msg
    assert "rebuild it on this device with 'edgekit build'" in msg


@pytest.mark.parametrize(
    ("field", "label", "engine_text", "device_text"),
    [
        ("tensorrt_version", "TensorRT", "10.3.0", "10.7.0"),
        ("cuda_version", "CUDA", "12.6", "13.0"),
        ("sm_count", "SMs", "16", "8"),
        ("jetson_module", "Jetson module", "p3701-0005", "p3767-0005"),
        ("gpu_name", "GPU", "Orin", "NVIDIA GeForce RTX 4090"),
        ("compute_capability", "compute capability", "8.7 (sm_87)", "8.9 (sm_89)"),
        ("l4t_release", "L4T", "36.4.0", "36.3.0"),
        ("jetpack_version", "JetPack", "6.1", "6.0"),
        ("precision", "precision", "fp16", "int8"),
        ("onnx_sha256", "ONNX sha256", "aaaaaaaaaaaa", "cccccccccccc"),
        ("workspace_mb", "workspace MiB", "1024", "2048"),
    ],
)
def test_each_mismatch_is_named(field, label, engine_text, device_text):
    device = dataclasses.replace(ORIN, **{field: OTHER_VALUES[field]})
    assert [d[0] for d in engine_mismatches(ORIN, device)] == [field]
    with pytest.raises(ArtifactError) as exc:
        check_engine_compat(ORIN, device)
    assert f"{label}: engine {engine_text}, device {device_text}" in str(exc.value)


def test_all_mismatches_are_listed_together():
    device = dataclasses.replace(
        ORIN, tensorrt_version="8.6.2", gpu_name="NVIDIA A40", compute_capability="8.6", l4t_release=None
    )
    msg = str(pytest.raises(ArtifactError, check_engine_compat, ORIN, device).value)
    for part in ("TensorRT: engine 10.3.0, device 8.6.2", "GPU: engine Orin, device NVIDIA A40",
                 "compute capability: engine 8.7 (sm_87), device 8.6 (sm_86)", "L4T: engine 36.4.0, device none"):
        assert part in msg


def test_cudnn_unknown_on_one_side_is_not_a_mismatch():
    assert engine_mismatches(ORIN, dataclasses.replace(ORIN, cudnn_version=None)) == []


def test_cuda_minor_is_not_a_mismatch():
    assert engine_mismatches(ORIN, dataclasses.replace(ORIN, cuda_version="12.8")) == []


def test_version_compatible_engine_runs_on_newer_same_major():
    vc = dataclasses.replace(ORIN, version_compatible=True)
    assert engine_mismatches(vc, dataclasses.replace(vc, tensorrt_version="10.7.0")) == []
    assert [d[0] for d in engine_mismatches(vc, dataclasses.replace(vc, tensorrt_version="10.1.0"))] == [
        "tensorrt_version"
    ]
    assert engine_mismatches(vc, dataclasses.replace(vc, tensorrt_version="11.0.0")) == []


def test_hardware_compatible_engine_runs_on_ampere_plus_only():
    hc = dataclasses.replace(ORIN, hardware_compatible=True, l4t_release=None, jetpack_version=None,
                             jetson_module=None)
    ada = dataclasses.replace(hc, gpu_name="NVIDIA L4", compute_capability="8.9")
    assert engine_mismatches(hc, ada) == []
    turing = dataclasses.replace(hc, gpu_name="Tesla T4", compute_capability="7.5")
    assert {d[0] for d in engine_mismatches(hc, turing)} == {"gpu_name", "compute_capability"}


# -- sidecar -------------------------------------------------------------------
def test_sidecar_round_trip(tmp_path):
    engine = tmp_path / "model.engine"
    write_engine(engine, b"serialized-engine-bytes", ORIN)
    assert sidecar_path(engine) == tmp_path / "model.engine.json"
    key, sha = read_sidecar(engine)
    assert key == ORIN
    data, key2 = read_verified_engine(engine)
    assert data == b"serialized-engine-bytes"
    assert key2.digest() == ORIN.digest()
    doc = json.loads(sidecar_path(engine).read_text())
    assert doc["engine_sha256"] == sha and doc["key_digest"] == ORIN.digest() and doc["engine_bytes"] == 23
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_modified_engine_is_refused(tmp_path):
    engine = tmp_path / "model.engine"
    write_engine(engine, b"serialized-engine-bytes", ORIN)
    engine.write_bytes(b"serialized-engine-bytez")
    with pytest.raises(ArtifactError, match="refusing to deserialize it"):
        read_verified_engine(engine)


def test_engine_without_sidecar_is_refused(tmp_path):
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"x")
    with pytest.raises(ArtifactError, match="has no sidecar model.engine.json"):
        read_verified_engine(engine)


def test_edited_sidecar_is_refused(tmp_path):
    engine = tmp_path / "model.engine"
    write_engine(engine, b"x", ORIN)
    doc = json.loads(sidecar_path(engine).read_text())
    doc["key"]["tensorrt_version"] = "10.7.0"  # pretend it was built elsewhere
    sidecar_path(engine).write_text(json.dumps(doc))
    with pytest.raises(ArtifactError, match="key_digest does not match"):
        read_sidecar(engine)


def test_garbage_sidecar_is_refused(tmp_path):
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"x")
    sidecar_path(engine).write_text("{not json")
    with pytest.raises(ArtifactError, match="cannot read"):
        read_sidecar(engine)
    sidecar_path(engine).write_text(json.dumps({"schema": "something-else"}))
    with pytest.raises(ArtifactError, match="not an edgekit engine sidecar"):
        read_sidecar(engine)


# -- Jetson (the key's L4T / JetPack / module come from edgekit.core.host) --------------------
@pytest.mark.parametrize(
    ("text", "release"),
    [
        ("# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64, DATE: Fri Sep 13 04:36:44 UTC 2024\n"
         "# KERNEL_VARIANT: oot\nTARGET_USERSPACE_LIB_DIR=nvidia\n", "36.4.0"),
        ("# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, DATE: Wed Jan  8 01:49:37 UTC 2025",
         "36.4.3"),
        ("# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64, DATE: Tue Aug  1 19:57:35 UTC 2023",
         "35.4.1"),
        ("# R32 (release), REVISION: 7.1, GCID: 29818004, BOARD: t186ref, EABI: aarch64, DATE: Sat Feb 19 17:07:00 UTC 2022",
         "32.7.1"),
        ("# R32 (release), REVISION: 5, GCID: 1, BOARD: t210ref", "32.5.0"),
        ("", None),
        ("Ubuntu 22.04.4 LTS", None),
    ],
)
def test_l4t_of_the_key_is_read_by_core_host(text, release):
    from edgekit.core.host import parse_l4t

    assert parse_l4t(text) == release
