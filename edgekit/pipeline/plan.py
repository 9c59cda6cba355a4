"""Turning a pipeline into a plan of cached steps.

Each model becomes one *model step* (fine-tune, or export), and each
(model, recipe) pair with a recipe kind becomes one *recipe step* (quantize or
prune) whose parent is the model step. A step's key hashes its kind, its
recipe, the versions of the tools it uses, a digest of the edgekit source
files that make it, and its inputs: the weights (file sha256 for a
checkpoint), the dataset fingerprint, the training thread count for the steps
that train (CPU training is bit-reproducible for a seed *and* a thread count;
``finetune.threads`` in the file, else ``--threads``),
and, for a recipe step, its parent step's key (which covers everything the
parent was made from). On top of the key, a recipe step's cached artifact is
used only if its recorded parent hash is the current parent's (see
:func:`edgekit.pipeline.run.run_pipeline`).
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.core.atomic import sha256_file
from edgekit.pipeline.cache import CacheEntry, StepCache, step_key
from edgekit.pipeline.config import ModelStep, Pipeline, Recipe
from edgekit.pipeline.kinds import KINDS


@functools.lru_cache(maxsize=None)
def source_digest(kind: str) -> str:
    """sha256 over the edgekit files that make a step of ``kind`` (relative name and content)."""
    import edgekit

    pkg = Path(edgekit.__file__).resolve().parent
    files: dict[str, Path] = {}
    for pattern in KINDS[kind].sources:
        if pattern.startswith("targets/"):  # beside the package in a checkout, inside it in a wheel
            from edgekit.core.targets import builtin_targets_dir

            root = Path(str(builtin_targets_dir()))
            found = list(root.glob(pattern.split("/", 1)[1])) if root.is_dir() else []
            files.update({f"targets/{f.name}": f for f in found})
        else:
            files.update({f.relative_to(pkg).as_posix(): f for f in pkg.glob(pattern)})
    h = hashlib.sha256()
    for rel, f in sorted(files.items()):
        if f.is_file():
            h.update(f"{rel}\0{sha256_file(f)}\n".encode())
    return h.hexdigest()


@dataclass(frozen=True)
class Step:
    kind: str
    label: str  # model or model/recipe
    model: ModelStep
    recipe: Recipe | None
    key: str
    entry: CacheEntry
    parent: Step | None = None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.entry.path


@dataclass(frozen=True)
class Plan:
    pipeline: Pipeline
    target: str
    steps: tuple[Step, ...]
    #: (model label, recipe name, the step whose artifact is benched)
    artifacts: tuple[tuple[str, str, Step], ...]


def data_fingerprint(data: str) -> str:
    """A content fingerprint of a dataset spec: the embedded file's hash, or a
    directory listing with sizes and modification times (or a file's sha256)."""
    if data.split(":")[0] == "embedded":
        from importlib import resources

        npz = resources.files("edgekit.data").joinpath("embedded/animals.npz")
        with resources.as_file(npz) as p:
            return f"{data}:{sha256_file(p)}"
    root = Path(data)
    if root.is_file():
        return f"file:{sha256_file(root)}"
    h = hashlib.sha256()
    if root.is_dir():
        for dirpath, dirs, files in os.walk(root):
            dirs.sort()
            for f in sorted(files):
                st = (Path(dirpath) / f).stat()
                h.update(f"{Path(dirpath, f).relative_to(root).as_posix()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return f"dir:{h.hexdigest()}"


def weights_fingerprint(weights: str) -> str:
    p = Path(weights)
    if weights.lower() not in ("imagenet", "none") and p.is_file():
        return f"file:{sha256_file(p)}"
    return weights.lower()


def make_plan(pipeline: Pipeline, cache: StepCache, *, target: str | None = None,
              threads: int | None = None) -> Plan:
    """The steps of ``pipeline`` with their keys and cache entries (nothing is run or read but hashes)."""
    data_fp = data_fingerprint(pipeline.data)
    steps: list[Step] = []
    artifacts: list[tuple[str, str, Step]] = []
    for m in pipeline.models:
        kind = "finetune" if m.finetune is not None else "export"
        params: dict[str, Any] = {"weights": weights_fingerprint(m.weights), "export": m.export,
                                  "seed": pipeline.seed}
        inputs: dict[str, Any] = {"model": m.name, "weights": params["weights"]}
        k = KINDS[kind]
        if kind == "finetune":
            params["finetune"] = m.finetune
        table = m.finetune if m.finetune is not None else m.export
        if k.needs_data(table):
            inputs["data"] = data_fp
        if k.trains:
            inputs["threads"] = table.get("threads", threads)
        key = step_key(kind, inputs=inputs, recipe=params, tools=k.tools, source=source_digest(kind))
        base = Step(kind, m.name, m, None, key, cache.entry(kind, key), None, params)
        steps.append(base)
        for r in pipeline.recipes:
            if r.kind is None:
                artifacts.append((m.name, r.name, base))
                continue
            rparams = {**r.params, "seed": pipeline.seed}
            rinputs: dict[str, Any] = {"parent": base.key}
            rk = KINDS[r.kind]
            if rk.needs_data(r.params):
                rinputs["data"] = data_fp
            if rk.trains:
                rinputs["threads"] = r.params.get("threads", threads)
            rkey = step_key(r.kind, inputs=rinputs, recipe=rparams, tools=rk.tools, source=source_digest(r.kind))
            step = Step(r.kind, f"{m.name}/{r.name}", m, r, rkey, cache.entry(r.kind, rkey), base, rparams)
            steps.append(step)
            artifacts.append((m.name, r.name, step))
    return Plan(pipeline, target or pipeline.target, tuple(steps), tuple(artifacts))
