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

from edgekit.core.host import HostFacts, parse_l4t, parse_nvpmodel, read_host_facts, run_command
from edgekit.core.versions import tool_versions

log = logging.getLogger(__name__)

Run = Callable[[list[str], float], "str | None"]
__all__ = ["Environment", "JetsonInfo", "capture_environment", "parse_jetson_clocks", "parse_l4t", "parse_nvpmodel",
           "run_command"]

THREAD_ENV_PREFIXES = ("OMP_", "KMP_", "GOMP_", "MKL_", "OPENBLAS_", "TBB_", "ORT_", "OV_", "ONEDNN_")
THREAD_ENV_NAMES = ("CUDA_VISIBLE_DEVICES", "CUDA_MODULE_LOADING", "TF_NUM_INTRAOP_THREADS")


@dataclass(frozen=True)
class JetsonInfo:
    model: str | None = None
    l4t: str | None = None
    jetpack: str | None = None
    jetpack_source: str | None = None  # "dpkg nvidia-jetpack" or "inferred from L4T x.y.z"
    cuda: str | None = None
    nvpmodel_mode: str | None = None
    nvpmodel_id: int | None = None
    jetson_clocks: str | None = None  # "locked", "dvfs" (inferred from --show), "unknown (needs root)" or None
    jetson_clocks_raw: str | None = None
    module: str | None = None  # module P-number ("p3767-0005"), from the device tree


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


def parse_jetson_clocks(text: str | None) -> str | None:
    """'locked' when ``jetson_clocks --show`` shows the clocks pinned, else 'dvfs'; None when nothing parsed.

    Judged on the rows jetson_clocks locks: every online ``cpuN`` (MinFreq == MaxFreq == CurrentFreq), ``GPU``
    (MinFreq == MaxFreq) and ``EMC`` (FreqOverride=1). The DLA / PVA / CVNAS rows are left out: jetson_clocks
    only shows them and their MinFreq stays 0 even when locked. An inference from the printout, recorded next to
    the raw text.
    """
    rows = 0
    for line in (text or "").splitlines():
        m = re.search(r"MinFreq=(\d+)\s+MaxFreq=(\d+)\s+CurrentFreq=(\d+)", line)
        name = line.split(":")[0].split()[0] if line.strip() else ""
        if not m or not (re.fullmatch(r"cpu\d+", name) or name in ("GPU", "EMC")):
            continue
        if "Online=0" in line:
            continue
        rows += 1
        lo, hi, cur = m.groups()
        if name == "EMC":
            if "FreqOverride=1" not in line:
                return "dvfs"
        elif lo != hi or (name != "GPU" and cur != hi):
            return "dvfs"
    return "locked" if rows else None


def _jetson(facts: HostFacts, root: Path, run: Run, timeout_s: float) -> JetsonInfo | None:
    if not facts.is_jetson:
        return None
    cuda = None
    cuda_txt = _read(root, "usr/local/cuda/version.json") or _read(root, "usr/local/cuda/version.txt")
    m = re.search(r'"cuda"\s*:\s*\{[^}]*"version"\s*:\s*"([\d.]+)"|CUDA Version\s+([\d.]+)', cuda_txt or "")
    if m:
        cuda = m.group(1) or m.group(2)
    clocks_raw = run(["jetson_clocks", "--show"], timeout_s)
    clocks = parse_jetson_clocks(clocks_raw)
    if clocks_raw is None and (run(["id", "-u"], timeout_s) or "0").strip() not in ("0", ""):
        clocks = "unknown (needs root)"  # jetson_clocks --show exits 1 for non-root users
    return JetsonInfo(model=facts.board, l4t=facts.l4t, jetpack=facts.jetpack, jetpack_source=facts.jetpack_source,
                      cuda=cuda, nvpmodel_mode=facts.nvpmodel_mode, nvpmodel_id=facts.nvpmodel_id,
                      jetson_clocks=clocks,
                      jetson_clocks_raw=clocks_raw[:4000] if clocks_raw else None, module=facts.jetson_module)


def capture_environment(*, root: str | os.PathLike[str] = "/", run: Run = run_command, timeout_s: float = 5.0,
                        env: dict[str, str] | None = None) -> Environment:
    """Capture CPU, OS, library, threading, thermal and (on a Jetson) JetPack/power state."""
    r = Path(root)
    live = r == Path("/")
    env = dict(os.environ) if env is None else env
    facts = read_host_facts(root=r, run=run, timeout_s=timeout_s)
    phys = _sysfs_physical_cores(r) or facts.physical_cores
    affinity = None
    if live and hasattr(os, "sched_getaffinity"):
        affinity = tuple(sorted(os.sched_getaffinity(0)))
    quota = _read(r, "sys/fs/cgroup/cpu.max")
    return Environment(
        cpu_model=facts.cpu_model, board=facts.board, arch=platform.machine(), physical_cores=phys,
        logical_cores=facts.logical_cores, affinity=affinity, cpu_flags=facts.cpu_flags, governor=_governors(r),
        memory_total_mb=facts.memory_total_mb, cpu_quota=quota.strip() if quota else None, os=facts.os,
        kernel=platform.release(),
        python=platform.python_version(), versions=tool_versions(),
        thread_env={k: v for k, v in sorted(env.items()) if k.startswith(THREAD_ENV_PREFIXES) or k in THREAD_ENV_NAMES},
        thermal_c=_thermal(r), jetson=_jetson(facts, r, run, timeout_s),
    )
