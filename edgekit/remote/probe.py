"""What a device is, read from itself before anything is installed there, and what it lacks.

:func:`probe` runs :mod:`edgekit.core.host` on the device (its source on ``python3``'s stdin: the same reader
as on the host, standard library only) and creates the workdir 0700. :func:`check` adds the runtimes that
import there and, for anything missing, the exact command that fixes it (``edgekit devices check``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from edgekit.core import host as host_module
from edgekit.core.host import HostFacts
from edgekit.core.targets import load_target, resolve_target
from edgekit.remote.errors import DevicePythonError, RemoteError
from edgekit.remote.provision import MIN_FREE_MB, MIN_PYTHON
from edgekit.remote.ssh import Connection

RUNTIME_MODULES = ("onnxruntime", "openvino", "tensorrt")
_MKDIR = "import os,sys; p=os.path.expanduser(sys.argv[1]); os.makedirs(p, mode=0o700, exist_ok=True); os.chmod(p, 0o700); print(p)"


def probe(conn: Connection, *, python: str, workdir: str, device: str) -> HostFacts:
    """The device's facts (disk measured at its workdir, which is created 0700 and resolved to an absolute path)."""
    try:
        made = conn.run([python, "-c", _MKDIR, workdir], timeout_s=60)
    except RemoteError as e:
        if "not found" in str(e) or "No such file" in str(e) or "exited 127" in str(e):
            raise DevicePythonError(f"{device}: no {python} on the device",
                                    hint="install it there ('sudo apt-get install python3 python3-venv') or pass "
                                         f"--python PATH to 'edgekit devices add {device}'") from None
        raise
    absolute = made.stdout.strip().splitlines()[-1]
    src = Path(host_module.__file__).read_text(encoding="utf-8")
    out = conn.run([python, "-", absolute, *RUNTIME_MODULES], stdin=src, timeout_s=120)
    line = next((x for x in out.stdout.splitlines() if x.startswith("EDGEKIT-FACTS ")), None)
    if line is None:
        raise RemoteError(f"{device}: the facts probe printed nothing ({out.stderr.strip()[-200:]})")
    return HostFacts.from_json(json.loads(line.split(" ", 1)[1]))


@dataclass(frozen=True)
class CheckItem:
    name: str
    ok: bool
    value: str
    fix: str | None = None


def check(facts: HostFacts, *, device: str, python: str, target: str | None) -> tuple[list[CheckItem], str | None]:
    """Rows for ``edgekit devices check`` and the resolved target name (None when none resolves)."""
    mods = dict((facts.extra or {}).get("modules") or {})
    rows = [CheckItem("architecture", facts.arch in ("x86_64", "aarch64"), facts.arch,
                      None if facts.arch in ("x86_64", "aarch64") else "edgekit's runtimes ship wheels for x86_64 and aarch64 only"),
            CheckItem("os", True, facts.os)]
    py_ok = facts.python_version[:2] >= MIN_PYTHON
    rows.append(CheckItem("python", py_ok, f"{facts.python} ({python})", None if py_ok else
                          f"install Python 3.10+ and run 'edgekit devices add {device} --python /usr/bin/python3.10 --replace ...'"))
    free = facts.disk_free_mb
    rows.append(CheckItem("free disk", free is None or free >= MIN_FREE_MB,
                          f"{free:.0f} MB at {facts.disk_path}" if free is not None else "unknown",
                          None if free is None or free >= MIN_FREE_MB else f"free {MIN_FREE_MB} MB there or choose another --workdir"))
    if facts.is_jetson:
        rows.append(CheckItem("jetson", True, f"module {facts.jetson_module or '?'}, L4T {facts.l4t or '?'}, JetPack "
                              f"{facts.jetpack or '?'}, nvpmodel {facts.nvpmodel_mode or '?'}"))
    resolved: str | None = None
    if target:
        prof = load_target(target, facts=facts) if target == "jetson" else load_target(target)
        resolved, why = prof.name, "set for this device"
    else:
        res = resolve_target(facts)
        resolved, why = (res.profile.name if res.profile else None), res.reason
    rows.append(CheckItem("target", resolved is not None, f"{resolved or 'none'} ({why})", None if resolved else
                          f"pass a profile: 'edgekit devices add {device} --target PROFILE.toml --replace ...'"))
    for m in RUNTIME_MODULES:
        present = bool(mods.get(m))
        if m == "tensorrt":
            fix = ("sudo apt-get install python3-libnvinfer (TensorRT from JetPack; edgekit's venv uses it through "
                   "--system-site-packages)" if facts.is_jetson else None)
            rows.append(CheckItem("tensorrt (system)", present or not facts.is_jetson,
                                  "imports" if present else "not installed", None if present else fix))
        else:
            rows.append(CheckItem(f"{m} (system)", True, "imports" if present else
                                  "not installed (edgekit installs it in its own venv on the first bench)"))
    return rows, resolved
