"""Environment capture on fake /proc, /sys and /etc trees (x86 host, Jetson, Raspberry Pi)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekit.bench.environment import (
    Environment,
    capture_environment,
    parse_jetson_clocks,
    parse_l4t,
    parse_nvpmodel,
    run_command,
)

X86_CPUINFO = "".join(
    f"processor\t: {i}\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n"
    f"physical id\t: 0\ncore id\t\t: {i // 2}\n"
    "flags\t\t: fpu sse2 avx2 fma avx512f avx512_vnni avx512_bf16 amx_tile amx_bf16 amx_int8\n\n"
    for i in range(4)
)
ORIN_CPUINFO = "".join(
    f"processor\t: {i}\nBogoMIPS\t: 62.50\nFeatures\t: fp asimd evtstrm aes asimdhp asimddp\n"
    "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU part\t: 0xd42\n\n"
    for i in range(6)
)
RPI5_CPUINFO = "".join(
    f"processor\t: {i}\nFeatures\t: fp asimd asimdhp asimddp\nCPU implementer\t: 0x41\nCPU part\t: 0xd0b\n\n"
    for i in range(4)
) + "Revision\t: d04170\nModel\t\t: Raspberry Pi 5 Model B Rev 1.0\n"

JETSON_CLOCKS_LOCKED = """SOC family:tegra234  Machine:NVIDIA Jetson Orin Nano Developer Kit
Online CPUs: 0-5
cpu0: Online=1 Governor=schedutil MinFreq=1510400 MaxFreq=1510400 CurrentFreq=1510400 IdleStates: WFI=0 c7=0
cpu1: Online=1 Governor=schedutil MinFreq=1510400 MaxFreq=1510400 CurrentFreq=1510400 IdleStates: WFI=0 c7=0
GPU MinFreq=624750000 MaxFreq=624750000 CurrentFreq=624750000
EMC MinFreq=204000000 MaxFreq=2133000000 CurrentFreq=2133000000 FreqOverride=1
NV Power Mode: 15W
"""


def _tree(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
    return root


def _no_tools(argv: list[str], timeout_s: float) -> None:
    return None


def test_x86_host(tmp_path):
    root = _tree(tmp_path, {
        "proc/cpuinfo": X86_CPUINFO,
        "proc/meminfo": "MemTotal:       32768000 kB\nMemFree: 1 kB\n",
        "etc/os-release": 'NAME="Ubuntu"\nPRETTY_NAME="Ubuntu 22.04.4 LTS"\n',
        "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor": "performance\n",
        "sys/devices/system/cpu/cpu1/cpufreq/scaling_governor": "powersave\n",
        "sys/class/thermal/thermal_zone0/type": "x86_pkg_temp\n",
        "sys/class/thermal/thermal_zone0/temp": "48000\n",
        "sys/fs/cgroup/cpu.max": "200000 100000\n",
    })
    env = capture_environment(root=root, run=_no_tools, env={"OMP_NUM_THREADS": "2", "KMP_AFFINITY": "compact",
                                                             "HOME": "/root", "CUDA_VISIBLE_DEVICES": ""})
    assert env.cpu_model == "Intel(R) Xeon(R) Platinum 8480+"
    assert (env.physical_cores, env.logical_cores) == (2, 4)
    assert set(env.cpu_flags) >= {"avx2", "avx512_vnni", "amx_tile", "avx512_bf16"} and "neon" not in env.cpu_flags
    assert env.governor == ("performance", "powersave")
    assert env.memory_total_mb == pytest.approx(32000.0)
    assert env.os == "Ubuntu 22.04.4 LTS" and env.cpu_quota == "200000 100000"
    assert env.thread_env == {"CUDA_VISIBLE_DEVICES": "", "KMP_AFFINITY": "compact", "OMP_NUM_THREADS": "2"}
    assert env.thermal_c == {"x86_pkg_temp": 48.0}
    assert env.jetson is None and env.board is None
    assert "python" in env.versions and "numpy" in env.versions


def test_jetson_orin_nano(tmp_path):
    root = _tree(tmp_path, {
        "proc/cpuinfo": ORIN_CPUINFO,
        "proc/device-tree/model": b"NVIDIA Jetson Orin Nano Developer Kit\x00",
        "etc/nv_tegra_release": "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, "
                                "DATE: Wed Jan  8 01:49:37 UTC 2025\n",
        "usr/local/cuda/version.json": '{"cuda": {"name": "CUDA SDK", "version": "12.6.68"}}',
        "sys/class/thermal/thermal_zone0/type": "cpu-thermal\n",
        "sys/class/thermal/thermal_zone0/temp": "51500\n",
        "sys/class/thermal/thermal_zone1/type": "gpu-thermal\n",
        "sys/class/thermal/thermal_zone1/temp": "50250\n",
        "sys/class/thermal/thermal_zone2/type": "tj-thermal\n",
        "sys/class/thermal/thermal_zone2/temp": "garbage\n",  # unreadable: skipped, no exception
    })
    calls = []

    def tools(argv, timeout_s):
        calls.append(argv[0])
        return {"nvpmodel": "NV Power Mode: 15W\n0\n", "jetson_clocks": JETSON_CLOCKS_LOCKED}.get(argv[0])

    env = capture_environment(root=root, run=tools, env={})
    assert env.cpu_model == "Cortex-A78AE (from CPU part id)" and env.logical_cores == 6
    assert "neon" in env.cpu_flags and "asimddp" in env.cpu_flags
    assert env.board == "NVIDIA Jetson Orin Nano Developer Kit"
    assert env.thermal_c == {"cpu-thermal": 51.5, "gpu-thermal": 50.25}
    j = env.jetson
    assert j.model == "NVIDIA Jetson Orin Nano Developer Kit" and j.l4t == "36.4.3"
    assert (j.jetpack, j.jetpack_source) == ("6.2", "inferred from L4T 36.4.3")  # dpkg-query gave nothing
    assert j.cuda == "12.6.68"
    assert (j.nvpmodel_mode, j.nvpmodel_id) == ("15W", 0)
    assert j.jetson_clocks == "locked" and "GPU MinFreq" in j.jetson_clocks_raw
    assert {"dpkg-query", "nvpmodel", "jetson_clocks"} <= set(calls)
    back = Environment.from_json(json.loads(json.dumps(env.to_json())))
    assert back == env


def test_jetpack_read_from_dpkg_is_not_marked_inferred(tmp_path):
    root = _tree(tmp_path, {"proc/device-tree/model": b"NVIDIA Jetson AGX Orin\x00",
                            "etc/nv_tegra_release": "# R35 (release), REVISION: 4.1, GCID: 1\n"})
    env = capture_environment(root=root, run=lambda argv, t: "5.1.2-b104" if argv[0] == "dpkg-query" else None, env={})
    assert env.jetson.l4t == "35.4.1"
    assert (env.jetson.jetpack, env.jetson.jetpack_source) == ("5.1.2", "dpkg nvidia-jetpack")
    assert env.jetson.nvpmodel_mode is None and env.jetson.jetson_clocks is None


def test_raspberry_pi_5(tmp_path):
    root = _tree(tmp_path, {"proc/cpuinfo": RPI5_CPUINFO,
                            "proc/device-tree/model": b"Raspberry Pi 5 Model B Rev 1.0\x00"})
    env = capture_environment(root=root, run=_no_tools, env={})
    assert env.cpu_model == "Cortex-A76 (from CPU part id)" and env.logical_cores == 4
    assert env.board == "Raspberry Pi 5 Model B Rev 1.0" and env.jetson is None


def test_an_empty_tree_gives_none_not_exceptions(tmp_path):
    env = capture_environment(root=tmp_path, run=_no_tools, env={})
    assert env.cpu_model is None and env.physical_cores is None and env.logical_cores is None
    assert env.governor is None and env.memory_total_mb is None and env.thermal_c == {} and env.jetson is None
    assert env.cpu_flags == ()


def test_parsers():
    assert parse_l4t("# R32 (release), REVISION: 7.1, GCID: 29818004") == "32.7.1"
    assert parse_l4t("# R36 (release), REVISION: 4, GCID: 1") == "36.4.0"
    assert parse_l4t("garbage") is None and parse_l4t(None) is None
    assert parse_nvpmodel("NVPM WARN: fan mode is not set!\nNV Power Mode: MAXN\n0\n") == ("MAXN", 0)
    assert parse_nvpmodel("") == (None, None)
    dvfs = JETSON_CLOCKS_LOCKED.replace("MinFreq=624750000", "MinFreq=306000000")
    assert parse_jetson_clocks(dvfs) == "dvfs" and parse_jetson_clocks("nothing") is None


def test_missing_tool_gives_none():
    assert run_command(["edgekit-no-such-tool-xyz"], 1.0) is None
    assert run_command(["false"], 1.0) is None
    assert run_command(["sleep", "5"], 0.2) is None  # timeout


def test_live_capture_does_not_fail():
    env = capture_environment()
    assert env.python and env.arch and env.logical_cores and env.logical_cores >= 1
    json.dumps(env.to_json())
