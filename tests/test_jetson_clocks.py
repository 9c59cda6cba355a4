"""jetson_clocks on Jetsons with DLA/PVA (TensorRT audit #4): those rows never lock; a non-root run says why.

The AGX Orin rows follow a public ``sudo jetson_clocks --show`` capture (shared/reference/device-facts.md,
tensorrt-audit.md #4): ``DLA0_CORE ... MinFreq=0`` even after ``sudo jetson_clocks``.
"""

from __future__ import annotations

from pathlib import Path

from edgekit.bench.environment import capture_environment, parse_jetson_clocks

AGX_HEAD = """SOC family:tegra234  Machine:NVIDIA Jetson AGX Orin Developer Kit
Online CPUs: 0-11
"""
AGX_TAIL = """GPU MinFreq=1300500000 MaxFreq=1300500000 CurrentFreq=1300500000
EMC MinFreq=204000000 MaxFreq=3199000000 CurrentFreq=3199000000 FreqOverride=1
DLA0_CORE:   Online=1 MinFreq=0 MaxFreq=1600000000 CurrentFreq=1600000000
DLA0_FALCON: Online=1 MinFreq=0 MaxFreq=844800000 CurrentFreq=844800000
DLA1_CORE:   Online=1 MinFreq=0 MaxFreq=1600000000 CurrentFreq=1600000000
DLA1_FALCON: Online=1 MinFreq=0 MaxFreq=844800000 CurrentFreq=844800000
PVA0_VPS0: Online=1 MinFreq=0 MaxFreq=1152000000 CurrentFreq=1152000000
PVA0_AXI:  Online=1 MinFreq=0 MaxFreq=832000000 CurrentFreq=832000000
FAN Dynamic Speed control=active hwmon4_pwm=80
NV Power Mode: MAXN
"""


def _cpus(lo: int, hi: int, cur: int) -> str:
    return "".join(f"cpu{i}: Online=1 Governor=schedutil MinFreq={lo} MaxFreq={hi} CurrentFreq={cur} "
                   "IdleStates: WFI=1 c7=1\n" for i in range(12))


def test_agx_orin_locked_despite_dla_and_pva_rows():
    assert parse_jetson_clocks(AGX_HEAD + _cpus(2201600, 2201600, 2201600) + AGX_TAIL) == "locked"


def test_agx_orin_unlocked_cpu_is_dvfs():
    assert parse_jetson_clocks(AGX_HEAD + _cpus(115200, 2201600, 729600) + AGX_TAIL) == "dvfs"


def test_agx_orin_unlocked_gpu_is_dvfs():
    text = AGX_HEAD + _cpus(2201600, 2201600, 2201600) + AGX_TAIL.replace(
        "GPU MinFreq=1300500000", "GPU MinFreq=306000000")
    assert parse_jetson_clocks(text) == "dvfs"


def test_emc_without_override_is_dvfs():
    text = AGX_HEAD + _cpus(2201600, 2201600, 2201600) + AGX_TAIL.replace("FreqOverride=1", "FreqOverride=0")
    assert parse_jetson_clocks(text) == "dvfs"


def test_non_root_run_records_why(tmp_path: Path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/nv_tegra_release").write_text("# R36 (release), REVISION: 4.3, GCID: 1\n")

    def tools(argv, timeout_s):
        # jetson_clocks exits 1 for non-root ("Run this script ... as a root user"): run() gives None
        return {"id": "1000\n"}.get(argv[0])

    env = capture_environment(root=tmp_path, run=tools, env={})
    assert env.jetson.jetson_clocks == "unknown (needs root)"
    assert env.jetson.jetson_clocks_raw is None
