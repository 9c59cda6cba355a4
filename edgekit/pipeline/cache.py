"""A content-addressed step cache.

A step's key is the sha256 of a canonical JSON document holding the step kind,
the hashes of its inputs (artifact files, not paths), its recipe and the
versions of the tools it uses. Its output is an artifact directory stored at
``<root>/<kind>/<key[:16]>``, written by the step's tool through
:func:`edgekit.core.atomic.staged_dir`:
an entry is either complete (it has its manifest and every file hashes to what
the manifest says) or absent. A run killed with SIGKILL leaves only a hidden
staging directory, which the next run removes; it never leaves a half entry.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.core.atomic import remove_stale_staging
from edgekit.core.cache import cache_root
from edgekit.core.errors import ArtifactError
from edgekit.core.manifest import MANIFEST_NAME, Artifact, load_artifact
from edgekit.core.versions import tool_versions


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def step_key(kind: str, *, inputs: dict[str, Any], recipe: dict[str, Any], tools: tuple[str, ...],
             source: str | None = None) -> str:
    """The cache key of a step: kind, input hashes, recipe, tool versions and (``source``) a digest of the
    edgekit code that makes the step, so an edited quantizer never reuses an old artifact."""
    names = tuple(sorted(set(tools) | {"edgekit", "python"}))
    versions = tool_versions(names)
    doc = {
        "kind": kind,
        "inputs": inputs,
        "recipe": recipe,
        "tools": {t: versions.get(t) for t in names},
        "source": source,
    }
    return hashlib.sha256(canonical(doc).encode()).hexdigest()


@dataclass(frozen=True)
class CacheEntry:
    kind: str
    key: str
    path: Path

    def load(self) -> Artifact | None:
        """The complete artifact at this entry, or None when absent or damaged."""
        if not (self.path / MANIFEST_NAME).is_file():
            return None
        try:
            return load_artifact(self.path, verify=True)
        except ArtifactError:
            return None


class StepCache:
    """Entries under ``root``; ``force`` makes every lookup a miss."""

    def __init__(self, root: Path | None = None, *, force: bool = False) -> None:
        self.root = Path(root) if root is not None else cache_root() / "steps"
        self.force = force

    def entry(self, kind: str, key: str) -> CacheEntry:
        return CacheEntry(kind, key, self.root / kind / key[:16])

    def lookup(self, entry: CacheEntry) -> Artifact | None:
        if self.force:
            return None
        return entry.load()

    def clear_damaged(self, entry: CacheEntry) -> None:
        if entry.path.exists() and entry.load() is None:
            shutil.rmtree(entry.path, ignore_errors=True)

    def sweep(self) -> list[Path]:
        """Remove what killed runs left: staging directories whose process is gone, and swap leftovers.

        A staging directory of a live process (a concurrent run) is kept.
        """
        removed: list[Path] = []
        if not self.root.is_dir():
            return removed
        for kind_dir in sorted(p for p in self.root.iterdir() if p.is_dir()):
            for d in sorted(kind_dir.glob(".*.staging-*")):
                name = d.name[1:].split(".staging-", 1)[0]
                removed.extend(remove_stale_staging(kind_dir / name))
            for d in sorted(kind_dir.glob(".*.old-*")):
                if d.is_dir():
                    shutil.rmtree(d, ignore_errors=True)
                    removed.append(d)
        return removed

    def entries(self) -> list[CacheEntry]:
        """Every entry directory in the cache (complete or not)."""
        if not self.root.is_dir():
            return []
        return [CacheEntry(k.name, e.name, e) for k in sorted(self.root.iterdir()) if k.is_dir()
                for e in sorted(k.iterdir()) if e.is_dir() and not e.name.startswith(".")]
