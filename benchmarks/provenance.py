"""Where a committed result came from: the commit and a hash of the code paths it measured.

Every ``results/<name>.json`` carries ``provenance``:

* ``commit``: ``git rev-parse HEAD`` when it was written (``+dirty`` when the measured paths had uncommitted
  changes);
* ``code_paths``: the globs of :data:`CODE_PATHS` for its benchmark (the scripts, the pipelines they run and
  the edgekit packages they measure);
* ``code_sha256``: sha256 over every matched file's path and bytes (:func:`code_hash`).

``tests/test_provenance.py`` recomputes the hash and fails when the code moved on without the result: a stale
table cannot sit unnoticed. A result that is known to be stale and cannot be regenerated now carries
``"status": "stale"`` with its ``reason`` instead, and must be listed as stale in ``benchmarks/README.md``.
``benchmarks/regenerate.sh`` rewrites every result (and so every stamp).
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

_COMMON = ["benchmarks/common.py", "benchmarks/provenance.py", "edgekit/core/**/*.py", "edgekit/data/**/*.py",
           "edgekit/runtime/**/*.py", "edgekit/bench/**/*.py"]
_PIPELINE = [*_COMMON, "edgekit/optimize/**/*.py", "edgekit/export/**/*.py", "edgekit/zoo/**/*.py",
             "edgekit/pipeline/**/*.py", "edgekit/graph/**/*.py", "benchmarks/optimize.py",
             "benchmarks/optimize_report.py", "benchmarks/optimize_paired.py", "benchmarks/bars.py"]
#: result name -> the code paths (globs, relative to the repository root) its numbers depend on
CODE_PATHS: dict[str, list[str]] = {
    "overhead": [*_COMMON, "benchmarks/overhead.py"],
    "families": [*_COMMON, "edgekit/export/**/*.py", "edgekit/zoo/**/*.py", "edgekit/optimize/train/**/*.py",
                 "benchmarks/families.py", "benchmarks/families_accuracy.py", "benchmarks/families_report.py"],
    "optimize": [*_PIPELINE, "benchmarks/pipelines/optimize.toml", "benchmarks/pipelines/optimize-coatnet.toml"],
    "prune": [*_PIPELINE, "benchmarks/pipelines/prune.toml", "benchmarks/prune_control.py"],
    "presets": [*_PIPELINE, "benchmarks/pipelines/presets.toml"],
    "remote_overhead": [*_COMMON, "edgekit/remote/**/*.py", "edgekit/cli/bench.py", "benchmarks/remote_overhead.py"],
    "fleet_overhead": [*_COMMON, "edgekit/pipeline/executors.py", "edgekit/pipeline/ray_executor.py",
                       "edgekit/pipeline/ray_steps.py", "benchmarks/fleet_overhead.py"],
}


def files(globs: list[str], root: Path = ROOT) -> list[Path]:
    out: set[Path] = set()
    for g in globs:
        out.update(p for p in root.glob(g) if p.is_file() and "__pycache__" not in p.parts)
    return sorted(out)


def code_hash(globs: list[str], root: Path = ROOT) -> str:
    """sha256 over every file matched by ``globs``: its path relative to ``root`` and its bytes."""
    h = hashlib.sha256()
    for p in files(globs, root):
        h.update(p.relative_to(root).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def stamp(name: str) -> dict[str, Any]:
    """The provenance block of result ``name`` as of the working tree now."""
    globs = CODE_PATHS.get(name, CODE_PATHS.get(name.split("_")[0], _COMMON))
    commit = _git("rev-parse", "HEAD")
    dirty = _git("status", "--porcelain", "--", *[str(p.relative_to(ROOT)) for p in files(globs)])
    return {"status": "current", "commit": f"{commit}+dirty" if commit and dirty else commit,
            "code_paths": globs, "code_sha256": code_hash(globs)}
