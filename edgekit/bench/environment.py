"""What the benchmark ran on: recorded with every result.

Every probe reads a file under ``root`` (``/`` by default; tests point it at a
fake tree) or runs a command through ``run`` (injectable); a missing file or
tool gives None, never an exception. Values that are derived rather than read
say so (``jetpack_source="inferred from L4T 36.4.3"``).
"""

from __future__ import annotations

import glob
import logging
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgekit.core.versions import tool_versions

log = logging.getLogger(__name__)

Run = Callable[[list[str], float], "str | None"]

FLAGS_OF_INTEREST = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni",
                     "amx_tile", "amx_bf16", "amx_int8", "neon", "asimdhp", "asimddp", "i8mm", "bf16", "sve")
THREAD_ENV_PREFIXES = ("OMP_", "KMP_", "GOMP_", "MKL_", "OPENBLAS_", "TBB_", "ORT_", "OV_", "ONEDNN_")
THREAD_ENV_NAMES = ("CUDA_VISIBLE_DEVICES", "CUDA_MODULE_LOADING", "TF_NUM_INTRAOP_THREADS")
#: (implementer, part) from /proc/cpuinfo on Arm -> core name
ARM_PARTS = {("0x41", "0xd03"): "Cortex-A53", ("0x41", "0xd07"): "Cortex-A57", ("0x41", "0xd08"): "Cortex-A72",
             ("0x41", "0xd0b"): "Cortex-A76", ("0x41", "0xd0c"): "Neoverse-N1", ("0x41", "0xd40"): "Neoverse-V1",
             ("0x41", "0xd41"): "Cortex-A78", ("0x41", "0xd42"): "Cortex-A78AE", ("0x41", "0xd4f"): "Neoverse-V2",
             ("0x4e", "0x004"): "NVIDIA Carmel"}
#: L4T release -> JetPack, for inference only when the nvidia-jetpack package cannot be read
L4T_TO_JETPACK = {"36.4.3": "6.2", "36.4.0": "6.1", "36.3.0": "6.0", "36.2.0": "6.0 DP", "35.6.0": "5.1.4",
                  "35.5.0": "5.1.3", "35.4.1": "5.1.2", "35.3.1": "5.1.1", "35.2.1": "5.1", "35.1.0": "5.0.2",
                  "32.7.1": "4.6.1", "32.6.1": "4.6"}


def run_command(argv: list[str], timeout_s: float) -> str | None:
    """stdout of ``argv`` (stderr appended), or None if the tool is missing, fails or times out."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.SubprocessError) as e:
        log.debug("%s failed: %s", argv[0], e)
        return None
    out = (p.stdout or "") + (p.stderr or "")
    return out if p.returncode == 0 and out.strip() else None


@dataclass(frozen=True)
class JetsonInfo:
    model: str | None = None
    l4t: str | None = None
    jetpack: str | None = None
    jetpack_source: str | None = None  # "dpkg nvidia-jetpack" or "inferred from L4T x.y.z"
    cuda: str | None = None
    nvpmodel_mode: str | None = None
    nvpmodel_id: int | None = None
    jetson_clocks: str | None = None  # "locked", "dvfs" (both inferred from --show) or None
    jetson_clocks_raw: str | None = None


@dataclass(frozen=True)
class Environment:
    cpu_model: str | None
    board: str | None  # device-tree model (Jetson, Raspberry Pi), when there is one
    arch: str
    physical_cores: int | None
    logical_cores: int | None
    affinity: tuple[int, ...] | None
    cpu_flags: tuple[str, ...]
    governor: tuple[str, ...] | None
    memory_total_mb: float | None
    cpu_quota: str | None
    os: str
    kernel: str
    python: str
    versions: dict[str, str]
    thread_env: dict[str, str]
    thermal_c: dict[str, float] = field(default_factory=dict)
    jetson: JetsonInfo | None = None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("affinity", "cpu_flags", "governor"):
            d[k] = list(d[k]) if d[k] is not None else None
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Environment:
        kw = {k: d.get(k) for k in cls.__dataclass_fields__}
        for k in ("affinity", "cpu_flags", "governor"):
            kw[k] = tuple(kw[k]) if kw[k] is not None else (() if k == "cpu_flags" else None)
        kw["jetson"] = JetsonInfo(**d["jetson"]) if d.get("jetson") else None
        kw["versions"], kw["thread_env"] = dict(kw["versions"] or {}), dict(kw["thread_env"] or {})
        kw["thermal_c"] = dict(kw["thermal_c"] or {})
        return cls(**kw)


def _read(root: Path, rel: str) -> str | None:
    try:
        return (root / rel.lstrip("/")).read_text(errors="replace")
    except OSError:
        return None


def _cpuinfo(text: str | None) -> tuple[str | None, int | None, int | None, tuple[str, ...]]:
    """(model, physical cores, logical cores, flags of interest) from /proc/cpuinfo."""
    if not text:
        return None, None, None, ()
    blocks = [b for b in text.split("\n\n") if b.strip()]
    fields: list[dict[str, str]] = []
    for b in blocks:
        d = {}
        for line in b.splitlines():
            k, sep, v = line.partition(":")
            if sep:
                d[k.strip().lower()] = v.strip()
        fields.append(d)
    procs = [d for d in fields if "processor" in d and d["processor"].isdigit()]
    model = next((d["model name"] for d in procs if d.get("model name")), None)
    if model is None:  # aarch64 kernels name no model: map the Arm implementer/part ids
        parts = sorted({ARM_PARTS.get((d.get("cpu implementer", "").lower(), d.get("cpu part", "").lower()), "")
                        for d in procs} - {""})
        model = " + ".join(parts) + " (from CPU part id)" if parts else None
    cores = {(d.get("physical id", "0"), d["core id"]) for d in procs if "core id" in d}
    flags: set[str] = set()
    for d in procs:
        flags.update((d.get("flags") or d.get("features") or "").split())
    if "asimd" in flags:
        flags.add("neon")
    return model, (len(cores) or None), (len(procs) or None), tuple(f for f in FLAGS_OF_INTEREST if f in flags)


def _sysfs_physical_cores(root: Path) -> int | None:
    ids = set()
    for p in glob.glob(str(root / "sys/devices/system/cpu/cpu[0-9]*/topology")):
        try:
            pkg = Path(p, "physical_package_id").read_text().strip()
            core = Path(p, "core_id").read_text().strip()
        except OSError:
            continue
        ids.add((pkg, core))
    return len(ids) or None


def _governors(root: Path) -> tuple[str, ...] | None:
    govs = set()
    for p in glob.glob(str(root / "sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_governor")):
        try:
            govs.add(Path(p).read_text().strip())
        except OSError:
            continue
    return tuple(sorted(govs)) or None


def _thermal(root: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    for z in sorted(glob.glob(str(root / "sys/class/thermal/thermal_zone*"))):
        try:
            kind = Path(z, "type").read_text().strip() or Path(z).name
            milli = int(Path(z, "temp").read_text().strip())
        except (OSError, ValueError):
            continue
        key = kind if kind not in out else f"{kind}:{Path(z).name}"
        out[key] = milli / 1000.0
    return out


def _meminfo_mb(text: str | None) -> float | None:
    m = re.search(r"^MemTotal:\s+(\d+)\s+kB", text or "", re.M)
    return int(m.group(1)) / 1024 if m else None


def _os_name(root: Path) -> str:
    m = re.search(r'^PRETTY_NAME="?([^"\n]*)"?', _read(root, "etc/os-release") or "", re.M)
    return m.group(1) if m else platform.platform()


def parse_l4t(text: str | None) -> str | None:
    """'# R36 (release), REVISION: 4.3, ...' -> '36.4.3'."""
    m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text or "")
    if not m:
        return None
    rev = m.group(2).split(".")
    return ".".join([m.group(1)] + rev + ["0"] * (2 - len(rev)))


def parse_nvpmodel(text: str | None) -> tuple[str | None, int | None]:
    """'NV Power Mode: MAXN\\n0' -> ('MAXN', 0)."""
    if not text:
        return None, None
    m = re.search(r"NV Power Mode:[ \t]*(\S+)[ \t]*(?:\r?\n\s*(\d+))?", text)
    if not m:
        return None, None
    return m.group(1), (int(m.group(2)) if m.group(2) else None)


def parse_jetson_clocks(text: str | None) -> str | None:
    """'locked' when every clock in ``jetson_clocks --show`` runs at its maximum and cannot scale
    (MinFreq == MaxFreq, or FreqOverride=1 as EMC shows), else 'dvfs'; None when nothing parsed.

    An inference from the printout, recorded next to the raw text.
    """
    rows = 0
    for line in (text or "").splitlines():
        m = re.search(r"MinFreq=(\d+)\s+MaxFreq=(\d+)\s+CurrentFreq=(\d+)", line)
        if not m:
            continue
        rows += 1
        lo, hi, cur = m.groups()
        if cur != hi or (lo != hi and "FreqOverride=1" not in line):
            return "dvfs"
    return "locked" if rows else None


def _board(root: Path) -> str | None:
    raw = _read(root, "proc/device-tree/model")
    return raw.rstrip("\x00\n ").strip() or None if raw else None


def _jetson(root: Path, run: Run, timeout_s: float) -> JetsonInfo | None:
    model = _board(root)
    release = _read(root, "etc/nv_tegra_release")
    if not release and not (model and "jetson" in model.lower()):
        return None
    l4t = parse_l4t(release)
    jp_pkg = run(["dpkg-query", "--showformat=${Version}", "--show", "nvidia-jetpack"], timeout_s)
    jetpack, source = None, None
    if jp_pkg:
        jetpack, source = jp_pkg.strip().split("+")[0].split("-")[0], "dpkg nvidia-jetpack"
    elif l4t:
        jetpack = L4T_TO_JETPACK.get(l4t)
        source = f"inferred from L4T {l4t}" if jetpack else None
    cuda = None
    cuda_txt = _read(root, "usr/local/cuda/version.json") or _read(root, "usr/local/cuda/version.txt")
    m = re.search(r'"cuda"\s*:\s*\{[^}]*"version"\s*:\s*"([\d.]+)"|CUDA Version\s+([\d.]+)', cuda_txt or "")
    if m:
        cuda = m.group(1) or m.group(2)
    mode, mode_id = parse_nvpmodel(run(["nvpmodel", "-q"], timeout_s))
    clocks_raw = run(["jetson_clocks", "--show"], timeout_s)
    return JetsonInfo(model=model, l4t=l4t, jetpack=jetpack, jetpack_source=source, cuda=cuda,
                      nvpmodel_mode=mode, nvpmodel_id=mode_id, jetson_clocks=parse_jetson_clocks(clocks_raw),
                      jetson_clocks_raw=clocks_raw[:4000] if clocks_raw else None)


def capture_environment(*, root: str | os.PathLike[str] = "/", run: Run = run_command, timeout_s: float = 5.0,
                        env: dict[str, str] | None = None) -> Environment:
    """Capture CPU, OS, library, threading, thermal and (on a Jetson) JetPack/power state."""
    r = Path(root)
    live = r == Path("/")
    env = dict(os.environ) if env is None else env
    model, phys, logical, flags = _cpuinfo(_read(r, "proc/cpuinfo"))
    phys = _sysfs_physical_cores(r) or phys
    if logical is None and live:
        logical = os.cpu_count()
    affinity = None
    if live and hasattr(os, "sched_getaffinity"):
        affinity = tuple(sorted(os.sched_getaffinity(0)))
    quota = _read(r, "sys/fs/cgroup/cpu.max")
    if model is None and live:
        model = platform.processor() or None
    return Environment(
        cpu_model=model, board=_board(r), arch=platform.machine(), physical_cores=phys, logical_cores=logical,
        affinity=affinity, cpu_flags=flags, governor=_governors(r),
        memory_total_mb=_meminfo_mb(_read(r, "proc/meminfo")),
        cpu_quota=quota.strip() if quota else None, os=_os_name(r), kernel=platform.release(),
        python=platform.python_version(), versions=tool_versions(),
        thread_env={k: v for k, v in sorted(env.items()) if k.startswith(THREAD_ENV_PREFIXES) or k in THREAD_ENV_NAMES},
        thermal_c=_thermal(r), jetson=_jetson(r, run, timeout_s),
    )
