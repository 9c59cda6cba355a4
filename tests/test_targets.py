"""Target profiles: the built-in TOML files, validation messages, Jetson detection, the CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgekit.core.host import read_host_facts
from edgekit.core.errors import UsageError
from edgekit.core.specs import Precision
from edgekit.core.targets import (
    TargetProfile,
    builtin_target_names,
    builtin_targets_dir,
    load_target,
    resolve_jetson,
)

REPO = Path(__file__).resolve().parents[1]
EXPECTED = {"cpu", "intel-cpu", "intel-igpu", "jetson-orin-nano", "jetson-orin-nx", "jetson-agx-orin",
            "jetson-xavier-nx", "rpi5", "nvidia-gpu"}


def test_builtin_targets_are_found_in_the_checkout():
    assert Path(builtin_targets_dir()) == REPO / "targets"
    assert EXPECTED <= set(builtin_target_names())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_builtin_target_is_valid_and_round_trips(name):
    t = load_target(name)
    assert t.name == name and t.description and t.runtimes
    assert t.source == f"targets/{name}.toml"
    precisions = {str(p) for p in Precision}
    for r in t.runtimes:
        assert r.precisions and set(r.precisions) <= precisions
    # published figures carry their source; no figure means a note saying why
    assert all(p.source for p in t.peak_compute)
    assert t.peak_compute or t.peak_note
    if t.memory.bandwidth_gbps is not None:
        assert t.memory.source
    assert TargetProfile.from_json(json.loads(json.dumps(t.to_json())), origin=t.source) == t


@pytest.mark.parametrize("name, tops, sparsity, bandwidth, dla", [
    ("jetson-orin-nano", 40, "sparse", 68, 0),
    ("jetson-orin-nx", 100, "sparse", 102.4, 2),
    ("jetson-agx-orin", 275, "sparse", 204.8, 2),
    ("jetson-xavier-nx", 21, "dense", 59.7, 2),
])
def test_jetson_profiles_carry_the_datasheet_figures(name, tops, sparsity, bandwidth, dla):
    t = load_target(name)
    peak = t.peak("int8")
    assert (peak.value, peak.unit, peak.sparsity) == (tops, "TOPS", sparsity)
    assert "data sheet" in peak.source
    assert t.memory.bandwidth_gbps == bandwidth and t.hardware.dla_cores == dla
    assert t.runtimes[0].key == "tensorrt:GPU"
    assert any(r.key == "tensorrt:DLA" for r in t.runtimes) == (dla > 0)
    assert t.power_modes and t.default_power_mode in {m.name for m in t.power_modes}


def test_generic_hosts_give_no_invented_peak_figures():
    for name in ("cpu", "intel-cpu", "intel-igpu", "rpi5", "nvidia-gpu"):
        t = load_target(name)
        assert t.peak_compute == () and ("unknown" in t.peak_note or "no published" in t.peak_note)


def test_runtime_selection():
    t = load_target("jetson-agx-orin")
    assert t.runtime_for().key == "tensorrt:GPU"
    assert t.runtime_for(device="dla", precision="int8").key == "tensorrt:DLA"
    assert t.runtime_for(runtime="onnxruntime").key == "onnxruntime:TensorRT"
    with pytest.raises(UsageError, match="no runtime with runtime=openvino"):
        t.runtime_for(runtime="openvino")
    assert load_target("intel-cpu").runtime_for(precision="bf16").key == "openvino:CPU"


def test_unknown_target_lists_the_targets_and_close_matches():
    with pytest.raises(UsageError) as e:
        load_target("orin-nanoo")
    msg = str(e.value)
    assert "unknown target 'orin-nanoo'" in msg and "did you mean jetson-orin-nano" in msg
    assert all(n in msg for n in EXPECTED)
    assert load_target("Jetson_Orin_Nano").name == "jetson-orin-nano"


def _tree(root, model):
    (root / "proc/device-tree").mkdir(parents=True)
    (root / "proc/device-tree/model").write_bytes(model.encode() + b"\x00")  # the device tree ends it with NUL


# -- --target jetson ----------------------------------------------------------------------------------

@pytest.mark.parametrize("model, expected", [
    ("NVIDIA Jetson Orin Nano Developer Kit", "jetson-orin-nano"),
    ("NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super", "jetson-orin-nano"),
    ("NVIDIA Jetson Orin NX Engineering Reference Developer Kit", "jetson-orin-nx"),
    ("Jetson AGX Orin Developer Kit", "jetson-agx-orin"),
    ("NVIDIA Jetson AGX Orin", "jetson-agx-orin"),
    ("NVIDIA Jetson Xavier NX Developer Kit", "jetson-xavier-nx"),
])
def test_jetson_resolves_from_the_device_tree(tmp_path, model, expected):
    _tree(tmp_path, model)
    assert load_target("jetson", facts=read_host_facts(root=tmp_path)).name == expected


def test_jetson_elsewhere_says_how_to_run_on_one(tmp_path):
    with pytest.raises(UsageError) as e:
        resolve_jetson(facts=read_host_facts(root=tmp_path / "missing"))
    msg = str(e.value)
    assert "needs a Jetson" in msg and "install edgekit on the Jetson with the TensorRT from JetPack" in msg
    assert "edgekit bench --target jetson" in msg
    assert all(n in msg for n in ("jetson-orin-nano", "jetson-orin-nx", "jetson-agx-orin", "jetson-xavier-nx"))
    _tree(tmp_path / "rpi", "Raspberry Pi 5 Model B Rev 1.0")
    with pytest.raises(UsageError, match="Raspberry Pi 5"):
        resolve_jetson(facts=read_host_facts(root=tmp_path / "rpi"))


def test_a_jetson_without_a_profile_is_named(tmp_path):
    _tree(tmp_path, "NVIDIA Jetson AGX Xavier")
    with pytest.raises(UsageError, match="'NVIDIA Jetson AGX Xavier'.*no built-in profile"):
        load_target("jetson", facts=read_host_facts(root=tmp_path))


# -- user profiles and validation -------------------------------------------------------------------

MINIMAL = '''schema_version = 1
name = "my-box"
description = "my box"
family = "other"
[peak_compute]
note = "unknown"
[[runtimes]]
runtime = "onnxruntime"
device = "CPU"
precisions = ["fp32"]
[[runtimes]]
runtime = "openvino"
device = "CPU"
precisions = ["fp32", "int8"]
'''


def _write(tmp_path: Path, text: str, name: str = "foo.toml") -> Path:
    p = tmp_path / "targets" / name
    p.parent.mkdir(exist_ok=True)
    p.write_text(text)
    return p


def test_user_profile_by_path(tmp_path, monkeypatch):
    p = _write(tmp_path, MINIMAL)
    t = load_target(p)
    assert t.name == "my-box" and [r.key for r in t.runtimes] == ["onnxruntime:CPU", "openvino:CPU"]
    assert [r.provider for r in t.runtimes] == ["CPUExecutionProvider", None]  # derived from the device
    assert t.threads is None and t.streams == 1 and t.cv_threshold == 0.10
    monkeypatch.chdir(tmp_path)
    relative = load_target("targets/foo.toml")
    assert relative.source == "targets/foo.toml" and relative.runtimes == t.runtimes
    with pytest.raises(UsageError, match="does not exist"):
        load_target(tmp_path / "nope.toml")


@pytest.mark.parametrize("old, new, message", [
    ('precisions = ["fp32", "int8"]', 'precisions = ["fp32", "int4"]',
     "targets/foo.toml: runtimes[1].precisions: 'int4' is not one of fp32, fp16, bf16, int8"),
    ('runtime = "openvino"', 'runtime = "tflite"', "runtimes[1].runtime: 'tflite' is not one of"),
    ('device = "CPU"\nprecisions = ["fp32", "int8"]', 'device = "DLA"\nprecisions = ["fp32", "int8"]',
     "runtimes[1].device: 'DLA' is not one of CPU, GPU, NPU, AUTO for openvino"),
    ('name = "my-box"\n', '', "name: is required"),
    ('family = "other"', 'family = "toaster"', "family: 'toaster' is not one of"),
    ('family = "other"', 'family = "other"\ncolour = "red"', "(top level): unknown key 'colour'"),
    ('note = "unknown"', 'note = 3', "peak_compute.note: must be a string, got 3"),
    ('note = "unknown"', '', "peak_compute.note: no published figure given"),
    ('schema_version = 1', 'schema_version = 2', "schema_version: is 2"),
    ('family = "other"', 'family = "other"\n[memory]\nbandwidth_gbps = 10', "memory.source: a published size or "
                                                                             "bandwidth needs a source"),
    ('family = "other"', 'family = "other"\n[defaults]\npower_mode = "MAXN"', "defaults.power_mode: 'MAXN' is not "
                                                                               "one of the power_modes (none)"),
    ('family = "other"', 'family = "other"\n[defaults]\nbatch_sizes = [1, 0]', "defaults.batch_sizes: must be"),
    ('family = "other"', 'family = "other"\n[bench]\ncv_threshold = 5', "bench.cv_threshold: is a fraction"),
    ('family = "other"', 'family = "other"\n[defaults]\nthreads = -2', "defaults.threads: must be > 0"),
    ('runtime = "openvino"', 'runtime = "onnxruntime"', "runtimes: onnxruntime:CPU is listed twice"),
    ('family = "other"', 'family = "other"\n[[peak_compute.values]]\nprecision = "int8"\nvalue = 10\nunit = "TOPS"',
     "peak_compute.values[0].source: is required"),
    ('name = "my-box"', 'name = "my-box', "targets/foo.toml: not valid TOML"),
    ('device = "CPU"\nprecisions = ["fp32"]', 'device = "CPU"\nprovider = "CUDAExecutionProvider"\nprecisions = ["fp32"]',
     "runtimes[0].provider: 'CUDAExecutionProvider' does not run on CPU; use CPUExecutionProvider"),
])
def test_validation_names_file_and_field(tmp_path, monkeypatch, old, new, message):
    assert old in MINIMAL
    _write(tmp_path, MINIMAL.replace(old, new, 1))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError) as e:
        load_target("targets/foo.toml")
    assert message in str(e.value)


def test_dla_accepts_only_fp16_and_int8(tmp_path):
    text = MINIMAL.replace('runtime = "openvino"\ndevice = "CPU"\nprecisions = ["fp32", "int8"]',
                           'runtime = "tensorrt"\ndevice = "DLA"\nprecisions = ["fp32", "int8"]')
    with pytest.raises(UsageError, match=r"runtimes\[1\]\.precisions: DLA runs fp16 and int8 only"):
        load_target(_write(tmp_path, text))


# -- CLI --------------------------------------------------------------------------------------------

def _cli():
    from edgekit.cli.main import cli

    return cli


def test_cli_lists_targets():
    res = CliRunner().invoke(_cli(), ["targets"])
    assert res.exit_code == 0, res.output
    assert all(n in res.output for n in EXPECTED)
    assert "275 TOPS int8 sparse" in res.output


def test_cli_json_list_and_show():
    res = CliRunner().invoke(_cli(), ["targets", "--json"])
    assert res.exit_code == 0
    assert {d["name"] for d in json.loads(res.output)} >= EXPECTED
    res = CliRunner().invoke(_cli(), ["targets", "show", "jetson-orin-nx", "--json"])
    assert res.exit_code == 0
    d = json.loads(res.output)
    assert d["memory"]["bandwidth_gbps"] == 102.4 and d["runtimes"][1]["device"] == "DLA"


def test_cli_show_details():
    res = CliRunner().invoke(_cli(), ["targets", "show", "jetson-orin-nano"])
    assert res.exit_code == 0, res.output
    for text in ("tensorrt", "40 TOPS (sparse)", "[source: NVIDIA Jetson Orin Nano series module data sheet",
                 "68 GB/s", "7W", "No DLA"):
        assert text in res.output


def test_cli_unknown_target_is_a_usage_error():
    res = CliRunner().invoke(_cli(), ["targets", "show", "jetson-nano-2gb"])
    assert res.exit_code == 2
    assert "unknown target 'jetson-nano-2gb'" in res.output


# -- packaging ----------------------------------------------------------------------------------------

@pytest.mark.slow
def test_wheel_ships_the_targets(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        if (REPO / name).exists():
            shutil.copy2(REPO / name, src / name)
    for d in ("edgekit", "targets"):
        shutil.copytree(REPO / d, src / d, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("edgekit-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = {f"edgekit/targets/{n}.toml" for n in EXPECTED} - names
    assert not missing, f"the wheel does not ship {sorted(missing)}"
