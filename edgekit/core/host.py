"""One reader of host facts: what machine this is (arch, OS, Python, CPU, board, Jetson module, JetPack,
power mode, Raspberry Pi model, free disk).

Every file is read under ``root`` (``/`` by default; tests point it at a recorded tree) and every command
goes through ``run`` (injectable; a missing tool gives None, never an exception). The same module is the
probe run on a remote device before edgekit is installed there: ``python3 - < host.py`` prints the facts as
JSON (see ``__main__`` below), so it is standard library only and still parses on Python 3.8 (JetPack 5's
system Python), which it must be able to report as too old.

Jetson identity: the module P-number (``p3767-0005``) from ``/proc/device-tree/nvidia,dtsfilename``,
``compatible`` or ``nvidia,boardids`` is the reliable key; memory variants share one model string and
carrier boards change that string (reference: shared/reference/device-facts.md).
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

#: run(argv, timeout_s) -> stdout+stderr, or None when the tool is missing, fails or times out
Run = Callable[[list, float], Optional[str]]

FLAGS_OF_INTEREST = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni",
                     "amx_tile", "amx_bf16", "amx_int8", "neon", "asimdhp", "asimddp", "i8mm", "bf16", "sve")
#: (implementer, part) from /proc/cpuinfo on Arm -> core name
ARM_PARTS = {("0x41", "0xd03"): "Cortex-A53", ("0x41", "0xd07"): "Cortex-A57", ("0x41", "0xd08"): "Cortex-A72",
             ("0x41", "0xd0b"): "Cortex-A76", ("0x41", "0xd0c"): "Neoverse-N1", ("0x41", "0xd40"): "Neoverse-V1",
             ("0x41", "0xd41"): "Cortex-A78", ("0x41", "0xd42"): "Cortex-A78AE", ("0x41", "0xd4f"): "Neoverse-V2",
             ("0x4e", "0x004"): "NVIDIA Carmel"}
#: L4T release -> JetPack (device-facts.md); used only when the nvidia-jetpack package cannot be read
L4T_TO_JETPACK = {"39.2.0": "7.2", "38.4.0": "7.1", "38.2.0": "7.0", "38.2.1": "7.0", "38.2.2": "7.0",
                  "36.5.0": "6.2.2", "36.4.7": "6.2.1", "36.4.4": "6.2.1", "36.4.3": "6.2", "36.4.0": "6.1",
                  "36.3.0": "6.0", "36.2.0": "6.0 DP", "35.6.4": "5.1.6", "35.6.3": "5.1.5", "35.6.2": "5.1.5",
                  "35.6.1": "5.1.5", "35.6.0": "5.1.4", "35.5.0": "5.1.3", "35.4.1": "5.1.2", "35.3.1": "5.1.1",
                  "35.2.1": "5.1", "35.1.0": "5.0.2", "32.7.1": "4.6.1", "32.6.1": "4.6"}
#: Jetson module P-numbers (device-facts.md) -> what the module is
JETSON_MODULES = {
    "p3767-0005": "Orin Nano 8GB (developer kit module)", "p3767-0004": "Orin Nano 4GB",
    "p3767-0003": "Orin Nano 8GB", "p3767-0001": "Orin NX 8GB", "p3767-0000": "Orin NX 16GB",
    "p3701-0005": "AGX Orin 64GB", "p3701-0004": "AGX Orin 32GB", "p3701-0000": "AGX Orin",
    "p3668-0000": "Xavier NX (developer kit module)", "p3668-0001": "Xavier NX", "p3668-0003": "Xavier NX 16GB",
}
_MODULE_RE = re.compile(r"p(3767|3701|3668)-(\d{4})")
_BOARDID_RE = re.compile(r"\b(3767|3701|3668)[-:](\d{4})\b")


def run_command(argv: list, timeout_s: float) -> Optional[str]:
    """stdout of ``argv`` (stderr appended), or None if the tool is missing, fails or times out."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    out = (p.stdout or "") + (p.stderr or "")
    return out if p.returncode == 0 and out.strip() else None


def no_commands(argv: list, timeout_s: float) -> Optional[str]:
    """A ``run`` that runs nothing (recorded fixtures without command outputs)."""
    return None


@dataclass(frozen=True)
class HostFacts:
    """What a machine is, as read from itself. ``None`` = could not be read there."""

    arch: str
    os: str
    kernel: str
    python: str
    python_executable: str = ""
    cpu_model: Optional[str] = None
    cpu_flags: Tuple[str, ...] = ()
    physical_cores: Optional[int] = None
    logical_cores: Optional[int] = None
    memory_total_mb: Optional[float] = None
    board: Optional[str] = None  # /proc/device-tree/model without its NUL
    compatible: Tuple[str, ...] = ()  # /proc/device-tree/compatible entries
    jetson_module: Optional[str] = None  # "p3767-0005"
    l4t: Optional[str] = None  # "36.4.3"
    jetpack: Optional[str] = None  # "6.2"
    jetpack_source: Optional[str] = None  # "dpkg nvidia-jetpack" or "inferred from L4T 36.4.3"
    nvpmodel_mode: Optional[str] = None
    nvpmodel_id: Optional[int] = None
    rpi_model: Optional[str] = None  # "Raspberry Pi 5 Model B Rev 1.0"
    disk_path: Optional[str] = None
    disk_free_mb: Optional[float] = None
    extra: Dict[str, Any] = field(default_factory=dict)

    @property
    def is_jetson(self) -> bool:
        return bool(self.jetson_module or self.l4t or (self.board and "jetson" in self.board.lower()))

    @property
    def python_version(self) -> Tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", self.python)[:3])

    def to_json(self) -> Dict[str, Any]:
        d = asdict(self)
        d["cpu_flags"], d["compatible"] = list(self.cpu_flags), list(self.compatible)
        return d

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> HostFacts:
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        for k in ("cpu_flags", "compatible"):
            kw[k] = tuple(kw.get(k) or ())
        kw["extra"] = dict(kw.get("extra") or {})
        return cls(**kw)


# -- parsers (pure; tested on recorded outputs) ------------------------------------------------------------

def read_text(root: Path, rel: str, *, binary: bool = False) -> Optional[str]:
    """A file under ``root``; device-tree strings keep their NULs (callers split on them)."""
    try:
        raw = (Path(root) / rel.lstrip("/")).read_bytes()
    except OSError:
        return None
    return raw.decode("utf-8", "replace")


def parse_cpuinfo(text: Optional[str]) -> Tuple[Optional[str], Optional[int], Optional[int], Tuple[str, ...]]:
    """(model, physical cores, logical cores, flags of interest) from /proc/cpuinfo."""
    if not text:
        return None, None, None, ()
    procs = []
    for block in text.split("\n\n"):
        d = {}
        for line in block.splitlines():
            k, sep, v = line.partition(":")
            if sep:
                d[k.strip().lower()] = v.strip()
        if d.get("processor", "").isdigit():
            procs.append(d)
    model = next((d["model name"] for d in procs if d.get("model name")), None)
    if model is None:  # aarch64 kernels name no model: map the Arm implementer/part ids
        parts = sorted({ARM_PARTS.get((d.get("cpu implementer", "").lower(), d.get("cpu part", "").lower()), "")
                        for d in procs} - {""})
        model = " + ".join(parts) + " (from CPU part id)" if parts else None
    cores = {(d.get("physical id", "0"), d["core id"]) for d in procs if "core id" in d}
    flags = set()
    for d in procs:
        flags.update((d.get("flags") or d.get("features") or "").split())
    if "asimd" in flags:
        flags.add("neon")
    return model, (len(cores) or None), (len(procs) or None), tuple(f for f in FLAGS_OF_INTEREST if f in flags)


def parse_dt_strings(raw: Optional[str]) -> Tuple[str, ...]:
    """A device-tree string property (NUL-separated list) -> its entries."""
    return tuple(s.strip() for s in (raw or "").split("\x00") if s.strip())


def parse_device_tree_model(raw: Optional[str]) -> Optional[str]:
    items = parse_dt_strings(raw)
    return items[0] if items else None


def parse_jetson_module(*texts: Optional[str]) -> Optional[str]:
    """The module P-number (``p3767-0005``) from dtsfilename / compatible (``p3767-0005``) or boardids
    (``3767-0005-...``); the first module number found (the carrier board's p3768/p3737/p3509 is skipped)."""
    for t in texts:
        m = _MODULE_RE.search(t or "")
        if m:
            return f"p{m.group(1)}-{m.group(2)}"
    for t in texts:
        m = _BOARDID_RE.search(t or "")
        if m:
            return f"p{m.group(1)}-{m.group(2)}"
    return None


def parse_l4t(text: Optional[str]) -> Optional[str]:
    """'# R36 (release), REVISION: 4.3, ...' -> '36.4.3'; debug images ('R00 (debug)') -> None."""
    m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text or "")
    if not m or int(m.group(1)) == 0:
        return None
    rev = m.group(2).split(".")
    return ".".join([str(int(m.group(1)))] + rev + ["0"] * (2 - len(rev)))


def jetpack_for_l4t(l4t: Optional[str]) -> Optional[str]:
    if not l4t:
        return None
    if l4t in L4T_TO_JETPACK:
        return L4T_TO_JETPACK[l4t]
    if l4t.startswith("32.7."):
        return "4.6." + l4t.split(".")[2] if l4t.split(".")[2] != "0" else "4.6"
    return None


def parse_nvpmodel(text: Optional[str]) -> Tuple[Optional[str], Optional[int]]:
    """'NVPM WARN: ...\\nNV Power Mode: MAXN_SUPER\\n2' -> ('MAXN_SUPER', 2)."""
    m = re.search(r"NV Power Mode:[ \t]*(\S+)[ \t]*(?:\r?\n\s*(\d+))?", text or "")
    if not m:
        return None, None
    return m.group(1), (int(m.group(2)) if m.group(2) else None)


def parse_os_release(text: Optional[str]) -> Optional[str]:
    m = re.search(r'^PRETTY_NAME="?([^"\n]*)"?', text or "", re.M)
    return m.group(1) if m else None


def parse_meminfo_mb(text: Optional[str]) -> Optional[float]:
    m = re.search(r"^MemTotal:\s+(\d+)\s+kB", text or "", re.M)
    return int(m.group(1)) / 1024 if m else None


def _disk_free_mb(path: Optional[str]) -> Tuple[Optional[str], Optional[float]]:
    if not path:
        return None, None
    p = Path(os.path.expanduser(path))
    probe = p
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return str(p), shutil.disk_usage(str(probe)).free / 2**20
    except OSError:
        return str(p), None


def _jetpack(l4t: Optional[str], run: Run, timeout_s: float) -> Tuple[Optional[str], Optional[str]]:
    pkg = run(["dpkg-query", "--showformat=${Version}", "--show", "nvidia-jetpack"], timeout_s)
    if pkg and pkg.strip():
        return pkg.strip().split("+")[0].split("-")[0], "dpkg nvidia-jetpack"
    jp = jetpack_for_l4t(l4t)
    return jp, (f"inferred from L4T {l4t}" if jp else None)


def read_host_facts(*, root: "str | os.PathLike[str]" = "/", run: Optional[Run] = None, timeout_s: float = 5.0,
                    disk_path: Optional[str] = None, arch: Optional[str] = None,
                    python: Optional[str] = None) -> HostFacts:
    """The facts of this host (``root`` = ``/``) or of a recorded tree; ``run`` runs ``nvpmodel`` and
    ``dpkg-query`` (default: :func:`run_command` on the live host, nothing for a recorded tree)."""
    r = Path(root)
    live = r == Path("/")
    if run is None:
        run = run_command if live else no_commands
    model, phys, logical, flags = parse_cpuinfo(read_text(r, "proc/cpuinfo"))
    if model is None and live:
        model = platform.processor() or None
    if logical is None and live:
        logical = os.cpu_count()
    dt = "proc/device-tree"
    board = parse_device_tree_model(read_text(r, f"{dt}/model") or read_text(r, "sys/firmware/devicetree/base/model"))
    compatible = parse_dt_strings(read_text(r, f"{dt}/compatible"))
    module = parse_jetson_module(read_text(r, f"{dt}/nvidia,dtsfilename"), "\n".join(compatible),
                                 read_text(r, f"{dt}/nvidia,boardids"))
    l4t = parse_l4t(read_text(r, "etc/nv_tegra_release"))
    jetson = bool(module or l4t or (board and "jetson" in board.lower()))
    jetpack, jp_source = _jetpack(l4t, run, timeout_s) if jetson else (None, None)
    mode, mode_id = parse_nvpmodel(run(["nvpmodel", "-q"], timeout_s)) if jetson else (None, None)
    rpi = board if board and board.lower().startswith("raspberry pi") else None
    dpath, dfree = _disk_free_mb(disk_path)
    return HostFacts(
        arch=arch or platform.machine(), os=parse_os_release(read_text(r, "etc/os-release")) or platform.platform(),
        kernel=platform.release() if live else "", python=python or platform.python_version(),
        python_executable=sys.executable if live else "", cpu_model=model, cpu_flags=flags, physical_cores=phys,
        logical_cores=logical, memory_total_mb=parse_meminfo_mb(read_text(r, "proc/meminfo")), board=board,
        compatible=compatible, jetson_module=module, l4t=l4t, jetpack=jetpack, jetpack_source=jp_source,
        nvpmodel_mode=mode, nvpmodel_id=mode_id, rpi_model=rpi, disk_path=dpath, disk_free_mb=dfree)


def _probe_main(argv: list) -> int:
    """``python3 - DISK_PATH [MODULE...] < host.py``: the facts as one JSON line, plus which of MODULE import
    (by spec lookup, without importing them) -- the remote probe run before edgekit is installed."""
    facts = read_host_facts(disk_path=argv[0] if argv else None).to_json()
    import importlib.util

    found = {}
    for name in argv[1:]:
        try:
            found[name] = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found[name] = False
    facts["extra"] = {"modules": found}
    sys.stdout.write("EDGEKIT-FACTS " + json.dumps(facts) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(_probe_main(sys.argv[1:]))
