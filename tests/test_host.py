"""Host facts and target resolution on recorded device trees (shared/reference/device-facts.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgekit.core import host
from edgekit.core.host import HostFacts, parse_jetson_module, parse_l4t, parse_nvpmodel, read_host_facts
from edgekit.core.targets import resolve_target

R36 = "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, DATE: Wed Jan  8 01:49:37 UTC 2025\n"
R35 = "# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64, DATE: Tue Aug  1 19:57:35 UTC 2023\n"
DEBUG = "# R00 (debug), REVISION: 0.0, GCID: , BOARD: generic, EABI: aarch64, DATE: unknown\n"
NVPM = "NVPM WARN: fan mode is not set!\nNV Power Mode: MAXN_SUPER\n2\n"
ORIN_CPUINFO = "".join(f"processor\t: {i}\nFeatures\t: fp asimd asimdhp asimddp\nCPU implementer\t: 0x41\n"
                       "CPU part\t: 0xd42\n\n" for i in range(6))
X86_CPUINFO = "".join(f"processor\t: {i}\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\nphysical id\t: 0\n"
                      f"core id\t\t: {i // 2}\nflags\t\t: fpu avx2 avx512f amx_tile\n\n" for i in range(4))


def tree(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
    return root


def jetson(root: Path, model: str, dts: str, compatible: str, release: str = R36) -> Path:
    return tree(root, {"proc/device-tree/model": model.encode() + b"\0",
                       "proc/device-tree/nvidia,dtsfilename": dts.encode() + b"\0",
                       "proc/device-tree/compatible": compatible.encode().replace(b" ", b"\0") + b"\0",
                       "etc/nv_tegra_release": release, "proc/cpuinfo": ORIN_CPUINFO,
                       "etc/os-release": 'PRETTY_NAME="Ubuntu 22.04.5 LTS"\n'})


def nvpmodel_only(argv, timeout_s):
    return NVPM if argv[:2] == ["nvpmodel", "-q"] else None


@pytest.mark.parametrize("text, l4t, jetpack", [(R36, "36.4.3", "6.2"), (R35, "35.4.1", "5.1.2"), (DEBUG, None, None),
                                               ("# R36 (release), REVISION: 4\n", "36.4.0", "6.1")])
def test_l4t_and_jetpack(text, l4t, jetpack):
    assert parse_l4t(text) == l4t
    assert host.jetpack_for_l4t(l4t) == jetpack


def test_nvpmodel_with_a_warning_line_first():
    assert parse_nvpmodel(NVPM) == ("MAXN_SUPER", 2)
    assert parse_nvpmodel("NV Power Mode: 15W\n0") == ("15W", 0)
    assert parse_nvpmodel("nvpmodel: command failed") == (None, None)


@pytest.mark.parametrize("texts, module", [
    (("/dvs/git/dirty/git-master_linux/kernel/dts/tegra234-p3701-0000-p3737-0000.dts", "", ""), "p3701-0000"),
    (("", "nvidia,p3768-0000+p3767-0005\nnvidia,p3767-0005\nnvidia,tegra234", ""), "p3767-0005"),
    (("", "", "3668-0001-100--1-0-"), "p3668-0001"),
    (("", "raspberrypi,5-model-b\nbrcm,bcm2712", ""), None),
])
def test_module_p_number(texts, module):
    assert parse_jetson_module(*texts) == module


@pytest.mark.parametrize("dts, expected, resolves", [
    ("tegra234-p3701-0005-p3737-0000", "p3701-0005", "jetson-agx-orin"),
    ("tegra234-p3701-0004-p3737-0000", "p3701-0004", None),  # AGX Orin 32 GB: same model string, not the 64 GB profile
])
def test_memory_variants_resolve_by_p_number(tmp_path, dts, expected, resolves):
    root = jetson(tmp_path, "NVIDIA Jetson AGX Orin Developer Kit", dts, f"nvidia,{dts.split('-', 1)[1]} nvidia,tegra234")
    facts = read_host_facts(root=root, run=nvpmodel_only)
    assert facts.jetson_module == expected and facts.is_jetson
    assert (facts.l4t, facts.jetpack, facts.jetpack_source) == ("36.4.3", "6.2", "inferred from L4T 36.4.3")
    assert (facts.nvpmodel_mode, facts.nvpmodel_id) == ("MAXN_SUPER", 2)
    res = resolve_target(facts)
    assert (res.profile.name if res.profile else None) == resolves
    if resolves is None:
        assert "AGX Orin 32GB" in res.reason and "no built-in profile" in res.reason


def test_orin_nano_devkit_on_a_carrier_with_another_model_string(tmp_path):
    root = jetson(tmp_path, "ACME Vision Box", "tegra234-p3767-0005-p3768-0000-a0",
                  "nvidia,p3768-0000+p3767-0005 nvidia,p3767-0005 nvidia,tegra234")
    facts = read_host_facts(root=root)
    assert facts.board == "ACME Vision Box" and facts.compatible[-1] == "nvidia,tegra234"
    assert facts.cpu_model == "Cortex-A78AE (from CPU part id)" and facts.logical_cores == 6 and "neon" in facts.cpu_flags
    assert facts.nvpmodel_mode is None  # a recorded tree runs no commands
    assert resolve_target(facts).profile.name == "jetson-orin-nano"


def test_raspberry_pi_5_and_x86(tmp_path):
    pi = tree(tmp_path / "pi", {"proc/device-tree/model": b"Raspberry Pi 5 Model B Rev 1.0\0",
                                "proc/device-tree/compatible": b"raspberrypi,5-model-b\0brcm,bcm2712\0"})
    facts = read_host_facts(root=pi, arch="aarch64")
    assert facts.rpi_model == "Raspberry Pi 5 Model B Rev 1.0" and not facts.is_jetson and facts.jetpack is None
    assert resolve_target(facts).profile.name == "rpi5"
    pi4 = tree(tmp_path / "pi4", {"proc/device-tree/model": b"Raspberry Pi 4 Model B Rev 1.4\0"})
    assert resolve_target(read_host_facts(root=pi4, arch="aarch64")).profile is None

    x86 = tree(tmp_path / "x86", {"proc/cpuinfo": X86_CPUINFO})
    facts = read_host_facts(root=x86, arch="x86_64")
    assert facts.physical_cores == 2 and facts.cpu_flags == ("avx2", "avx512f", "amx_tile")
    assert resolve_target(facts).profile.name == "intel-cpu"
    assert resolve_target(read_host_facts(root=tmp_path / "none", arch="aarch64")).profile.name == "cpu"


def test_facts_round_trip_and_free_disk(tmp_path):
    facts = read_host_facts(disk_path=str(tmp_path / "not" / "yet"))
    assert facts.disk_free_mb is not None and facts.disk_free_mb > 0  # measured on the nearest existing parent
    back = HostFacts.from_json(json.loads(json.dumps(facts.to_json())))
    assert back == facts


def test_the_probe_runs_as_a_standalone_script(tmp_path):
    """What runs on a device before edgekit is there: the module's source on stdin, no edgekit import."""
    src = Path(host.__file__).read_text()
    p = subprocess.run([sys.executable, "-I", "-", str(tmp_path), "json", "no_such_module_xyz"], input=src,
                       capture_output=True, text=True, timeout=60, cwd=tmp_path, check=True)
    line = next(x for x in p.stdout.splitlines() if x.startswith("EDGEKIT-FACTS "))
    facts = HostFacts.from_json(json.loads(line.split(" ", 1)[1]))
    assert facts.extra["modules"] == {"json": True, "no_such_module_xyz": False}
    assert facts.python == ".".join(map(str, sys.version_info[:3])) and facts.disk_path == str(tmp_path)


def test_device_env_takes_only_the_extras_the_profile_needs():
    from edgekit.core.targets import load_target
    from edgekit.remote.provision import plan_env

    orin = load_target("jetson-orin-nano")
    plan = plan_env(orin, None)
    assert plan.system_site_packages and "tensorrt" not in plan.extras and "onnxruntime" in plan.extras
    assert plan_env(orin, ("trt",)).extras == () and plan_env(orin, ("trt",)).system_site_packages
    cpu = load_target("cpu")
    assert plan_env(cpu, ("ort",)).extras == ("onnxruntime",) and not plan_env(cpu, ("ort",)).system_site_packages
    assert plan_env(cpu, None).extras == ("onnxruntime", "openvino")


def test_the_probe_parses_as_python_3_8():
    """JetPack 5's system Python is 3.8: the probe must run there to report it as too old."""
    import ast

    ast.parse(Path(host.__file__).read_text(), feature_version=(3, 8))
    agent = Path(host.__file__).parents[1] / "remote" / "agent.py"
    ast.parse(agent.read_text(), feature_version=(3, 10))  # the agent runs in the provisioned venv (>= 3.10)
