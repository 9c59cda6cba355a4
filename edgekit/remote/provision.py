"""Provisioning: a torch-free edgekit of exactly this version in a venv on the device, cached by content hash.

1. The wheel is built from the running source tree (cached on the host under
   ``<cache>/remote/wheels/<source hash>``), or taken from ``$EDGEKIT_WHEEL`` for an installed edgekit.
2. The environment key hashes the source, the extras, the device's Python version, ``--system-site-packages``
   and the constraints; ``WORKDIR/envs/<key>`` holding ``.edgekit-ready`` is reused as is.
3. Otherwise a venv is made in ``WORKDIR/envs/.tmp-<key>-<random>`` (with ``--system-site-packages`` where
   the runtime comes from the OS: TensorRT on JetPack), the wheel is installed there with only the extras
   the profile needs (``--no-index --find-links`` a pushed wheelhouse for devices without internet), checked,
   marked ready and renamed into place. A killed install leaves only a ``.tmp-`` directory, never a
   half-used environment; stale ones are removed by the next install.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import edgekit
from edgekit.core.cache import cache_root
from edgekit.core.errors import UsageError
from edgekit.core.host import HostFacts
from edgekit.core.target_schema import TargetProfile
from edgekit.remote.errors import DeviceDiskFull, DevicePythonError, RemoteError
from edgekit.remote.ssh import Connection

log = logging.getLogger(__name__)

MIN_PYTHON = (3, 10)
MIN_FREE_MB = 1024  # a venv with numpy, onnx and one runtime takes a few hundred MB
READY = ".edgekit-ready"
_SOURCE_GLOBS = ("edgekit/**/*.py", "edgekit/**/*.npz", "edgekit/**/*.md", "edgekit/**/*.toml", "edgekit/py.typed",
                 "targets/*.toml", "pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "LICENSE")


@dataclass(frozen=True)
class Wheel:
    path: Path
    source_hash: str


@dataclass(frozen=True)
class EnvPlan:
    extras: tuple[str, ...]
    system_site_packages: bool
    reason: str


@dataclass(frozen=True)
class Provisioned:
    python: str  # the venv's python on the device
    env_dir: str
    key: str
    installed: bool  # False: reused
    seconds: float
    extras: tuple[str, ...]
    system_site_packages: bool


def source_root() -> Path | None:
    root = Path(edgekit.__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() and (root / "edgekit").is_dir() else None


def _source_files(root: Path) -> list[Path]:
    files = {p for g in _SOURCE_GLOBS for p in root.glob(g) if p.is_file() and "__pycache__" not in p.parts}
    return sorted(files)


def build_wheel(*, cache: Path | None = None) -> Wheel:
    """The wheel of the running edgekit (built once per source content, then reused)."""
    import os

    if os.environ.get("EDGEKIT_WHEEL"):
        p = Path(os.environ["EDGEKIT_WHEEL"])
        if not p.is_file():
            raise UsageError(f"EDGEKIT_WHEEL={p} does not exist", hint="point it at an edgekit .whl")
        return Wheel(p, hashlib.sha256(p.read_bytes()).hexdigest())
    root = source_root()
    if root is None:
        raise UsageError("cannot build the edgekit wheel to provision the device: this edgekit is not a source tree",
                         hint="set EDGEKIT_WHEEL=/path/to/edgekit-<version>-py3-none-any.whl of this version")
    h = hashlib.sha256()
    files = _source_files(root)
    for f in files:
        h.update(str(f.relative_to(root)).encode() + b"\0" + hashlib.sha256(f.read_bytes()).digest())
    key = h.hexdigest()
    out = (cache or cache_root() / "remote" / "wheels") / key[:24]
    found = sorted(out.glob("edgekit-*.whl")) if out.is_dir() else []
    if found:
        return Wheel(found[0], key)
    with tempfile.TemporaryDirectory(prefix="edgekit-wheel-") as tmp:
        src = Path(tmp) / "src"
        for f in files:
            dst = src / f.relative_to(root)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, dst)
        dist = Path(tmp) / "dist"
        p = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                            "-w", str(dist), str(src)], capture_output=True, text=True, timeout=600, check=False)
        wheels = sorted(dist.glob("edgekit-*.whl"))
        if p.returncode != 0 or not wheels:
            raise UsageError(f"building the edgekit wheel failed: {(p.stderr or p.stdout).strip()[-400:]}",
                             hint="pip install setuptools wheel in this environment")
        out.mkdir(parents=True, exist_ok=True)
        tmp_whl = out / (wheels[0].name + ".tmp")
        shutil.copy2(wheels[0], tmp_whl)
        tmp_whl.rename(out / wheels[0].name)
    return Wheel(out / wheels[0].name, key)


def plan_env(profile: TargetProfile, runtimes: tuple[str, ...] | None) -> EnvPlan:
    """Only the extras the profile (or ``--runtime``) needs; the OS's TensorRT through system site-packages
    on a Jetson (JetPack ships it; the PyPI wheel is not for Jetsons)."""
    from edgekit.runtime.registry import resolve_runtime

    wanted = {r.runtime for r in profile.runtimes}
    if runtimes:
        wanted &= {resolve_runtime(r.split(":")[0]).name for r in runtimes}
    system = "tensorrt" in wanted and profile.family == "jetson"
    extras = tuple(sorted({resolve_runtime(r).extra for r in wanted if not (system and r == "tensorrt")}))
    why = f"runtimes {', '.join(sorted(wanted)) or 'none'}"
    if system:
        why += "; TensorRT from JetPack through --system-site-packages"
    return EnvPlan(extras, system, why)


def check_device(facts: HostFacts, *, device: str, python: str) -> None:
    """Python new enough and disk space for an environment, else the fix."""
    if facts.python_version[:2] < MIN_PYTHON:
        raise DevicePythonError(
            f"{device}: {python} is Python {facts.python}, edgekit needs {'.'.join(map(str, MIN_PYTHON))} or newer",
            hint="install Python 3.10+ there (JetPack 6 ships 3.10; on JetPack 5 or older OSes: "
                 "'sudo apt-get install python3.10 python3.10-venv' from the deadsnakes PPA, or a uv/conda Python) "
                 f"and run 'edgekit devices add {device} --python /usr/bin/python3.10 --replace ...'")
    if facts.disk_free_mb is not None and facts.disk_free_mb < MIN_FREE_MB:
        raise DeviceDiskFull(f"{device}: only {facts.disk_free_mb:.0f} MB free at {facts.disk_path} "
                             f"(edgekit needs {MIN_FREE_MB} MB for its environment)",
                             hint="free space there, or choose another --workdir with 'edgekit devices add --replace'")


def env_key(wheel: Wheel, plan: EnvPlan, facts: HostFacts, constraints: bytes) -> str:
    h = hashlib.sha256(json.dumps({"source": wheel.source_hash, "extras": plan.extras, "system": plan.system_site_packages,
                                   "python": ".".join(map(str, facts.python_version[:2])), "arch": facts.arch,
                                   "constraints": hashlib.sha256(constraints).hexdigest()}, sort_keys=True).encode())
    return h.hexdigest()[:24]


def _constraints() -> bytes:
    root = source_root()
    if root is not None and (root / "constraints.txt").is_file():
        return (root / "constraints.txt").read_bytes()
    return b""


def provision(conn: Connection, facts: HostFacts, plan: EnvPlan, *, device: str, python: str, workdir: str,
              wheelhouse: Path | None = None, timeout_s: float = 1800) -> Provisioned:
    """The device's venv for this edgekit and ``plan``: reused when ready, else installed atomically."""
    t0 = time.perf_counter_ns()
    check_device(facts, device=device, python=python)
    wheel = build_wheel()
    constraints = _constraints()
    key = env_key(wheel, plan, facts, constraints)
    final = f"{workdir}/envs/{key}"
    envpy = f"{final}/bin/python"
    clean_stale(conn, python, f"{workdir}/envs")  # half-installs of killed runs (an hour old) go first
    probe = conn.run([python, "-c", "import os,sys; print(os.path.isfile(sys.argv[1]))", f"{final}/{READY}"],
                     timeout_s=60)
    if probe.stdout.strip() == "True":
        return Provisioned(envpy, final, key, False, (time.perf_counter_ns() - t0) / 1e9, plan.extras,
                           plan.system_site_packages)
    tmp = f"{workdir}/envs/.tmp-{key}-{secrets.token_hex(4)}"
    venv = [python, "-m", "venv", *(["--system-site-packages"] if plan.system_site_packages else []), tmp]
    try:
        conn.run(venv, timeout_s=600)
    except RemoteError as e:
        if "ensurepip" in str(e) or "venv" in str(e):
            raise DevicePythonError(f"{device}: {python} cannot create a venv ({e.message[-200:]})",
                                    hint="install the venv module there: 'sudo apt-get install python3-venv'") from None
        raise
    inbox = f"{tmp}/.edgekit-inbox"
    conn.run([python, "-c", "import os,sys; os.makedirs(sys.argv[1], mode=0o700)", inbox], timeout_s=60)
    conn.put(wheel.path, f"{inbox}/{wheel.path.name}", timeout_s=timeout_s)
    pip = [f"{tmp}/bin/python", "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    if constraints:
        local_c = Path(tempfile.mkdtemp(prefix="ek-c-")) / "constraints.txt"
        local_c.write_bytes(constraints)
        conn.put(local_c, f"{inbox}/constraints.txt", timeout_s=120)
        shutil.rmtree(local_c.parent, ignore_errors=True)
        pip += ["-c", f"{inbox}/constraints.txt"]
    if wheelhouse is not None:
        conn.put(wheelhouse, f"{inbox}/wheelhouse", timeout_s=timeout_s)
        pip += ["--no-index", "--find-links", f"{inbox}/wheelhouse"]
    spec = f"{inbox}/{wheel.path.name}" + (f"[{','.join(plan.extras)}]" if plan.extras else "")
    try:
        conn.run([*pip, spec], timeout_s=timeout_s)
    except RemoteError as e:
        low = str(e).lower()
        if "no space left" in low:
            raise DeviceDiskFull(f"{device}: no space left while installing edgekit", hint="free space in the workdir") from None
        hint = ("the device cannot reach the package index: pass --wheelhouse DIR with the wheels for the device "
                "(pip download --platform ... -d DIR 'edgekit[...]' on a connected machine)"
                if any(s in low for s in ("no matching distribution", "connection", "resolve", "network")) else None)
        raise RemoteError(f"{device}: installing edgekit failed: {e.message[-400:]}", hint=hint) from None
    conn.run([f"{tmp}/bin/python", "-c", _CHECK_INSTALL, f"{tmp}/{READY}", edgekit.__version__, json.dumps(plan.extras)],
             timeout_s=300)
    conn.run([python, "-c", "import os,shutil,sys; os.rename(sys.argv[1], sys.argv[2]); shutil.rmtree(sys.argv[3], True)",
              tmp, final, inbox.replace(tmp, final, 1)], timeout_s=60)
    return Provisioned(envpy, final, key, True, (time.perf_counter_ns() - t0) / 1e9, plan.extras, plan.system_site_packages)


def clean_stale(conn: Connection, python: str, directory: str, *, keep: str = "", prefix: str = ".tmp-") -> None:
    """Remove ``directory/<prefix>*`` older than an hour (left by killed pushes, installs or runs), except ``keep``."""
    conn.run([python, "-c", _CLEAN_STALE, directory, keep, prefix], timeout_s=120)


#: removes argv[1]/<argv[3]>* older than an hour, except argv[2] and a run still holding its pid file
_CLEAN_STALE = """
import os, shutil, sys, time
d = sys.argv[1]
os.makedirs(d, mode=0o700, exist_ok=True)
for n in os.listdir(d):
    p = os.path.join(d, n)
    old = time.time() - os.stat(p).st_mtime > 3600
    if n.startswith(sys.argv[3]) and p != sys.argv[2] and old and not os.path.exists(os.path.join(p, 'pid')):
        shutil.rmtree(p, True)
"""

#: in the new venv: edgekit of the right version imports, torch does not, the extras' runtimes do; marks it ready
_CHECK_INSTALL = """
import importlib.util, json, sys
import edgekit, edgekit.remote.agent
if edgekit.__version__ != sys.argv[2]:
    sys.exit('edgekit %s installed, %s expected' % (edgekit.__version__, sys.argv[2]))
missing = [m for m in json.loads(sys.argv[3]) if m != 'tensorrt' and importlib.util.find_spec(m) is None]
if missing:
    sys.exit('runtimes missing after the install: ' + ', '.join(missing))
open(sys.argv[1], 'w').write(json.dumps({'edgekit': edgekit.__version__, 'torch': importlib.util.find_spec('torch') is not None}))
"""
