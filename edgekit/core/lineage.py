"""Typed parts of the manifest contract: lineage steps and the files a later step reads back.

One lineage step shape for every tool (``build``, ``quantize``, ``prune``,
``finetune``, ``export``)::

    {"step": "quantize", "created": "...", "parent": {...}, "recipe": {...}, "tool_versions": {...}}

``parent`` says what the step was made from: an artifact (``path``,
``model_file``, ``sha256`` of that model file, ``manifest_sha256``, ``format``,
``precision``) or a zoo model (``model``, ``weights``); only the keys known are
written. Manifests written before this shape load: the prune shape
(``parent`` = a sha string + ``parent_ref``, recipe keys at the top level) and
the finetune shape (``base_model``, ``base_weights``) are read into it; any
other top-level key goes into ``recipe``.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from edgekit.core.specs import Precision


def as_precision(value: Any) -> Precision | None:
    """``value`` as a Precision (edgekit or OpenVINO spelling: fp32/f32, fp16/f16, bf16, int8); None if absent."""
    if value is None or isinstance(value, Precision):
        return value
    v = str(value).strip().lower()
    return Precision(_SPELLINGS.get(v, v))


_SPELLINGS = {"f32": "fp32", "f16": "fp16", "float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}


def _compact(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Precision) else v) for k, v in d.items() if v is not None}


@dataclass(frozen=True)
class ParentRef:
    """What a step was made from: an artifact, or a zoo model with its weights."""

    path: str | None = None
    model_file: str | None = None
    sha256: str | None = None  # of the parent's model file: what `edgekit run` matches a cached step by
    manifest_sha256: str | None = None
    format: str | None = None
    precision: Precision | None = None
    model: str | None = None  # a zoo model name
    weights: dict[str, Any] | None = None  # the parent's WeightsInfo as JSON

    def __post_init__(self) -> None:
        object.__setattr__(self, "precision", as_precision(self.precision))

    def to_json(self) -> dict[str, Any]:
        return _compact({f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ParentRef:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True)
class LineageStep:
    """One step of an artifact's history."""

    step: str
    parent: ParentRef | None = None
    recipe: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    tool_versions: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "created": self.created,
                "parent": self.parent.to_json() if self.parent is not None else None,
                "recipe": dict(self.recipe), "tool_versions": dict(self.tool_versions)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> LineageStep:
        """Read a step in any shape edgekit has written (see the module docstring)."""
        rest = dict(d)
        step = str(rest.pop("step", "?"))
        created = str(rest.pop("created", "") or "")
        versions = dict(rest.pop("tool_versions", None) or {})
        parent, ref = rest.pop("parent", None), rest.pop("parent_ref", None)
        base_model, base_weights = rest.pop("base_model", None), rest.pop("base_weights", None)
        recipe = rest.pop("recipe", None)
        recipe = {**rest, **(recipe if isinstance(recipe, dict) else {})}
        if isinstance(parent, dict):
            p: ParentRef | None = ParentRef.from_json(parent)
        elif isinstance(ref, dict):  # prune: parent = the parent manifest's (or weights') sha256, ref = the details
            p = ParentRef(path=ref.get("artifact"), sha256=ref.get("model_sha256"),
                          manifest_sha256=ref.get("manifest_sha256"), model=ref.get("zoo"), weights=ref.get("weights"))
        elif base_model is not None:  # finetune
            p = ParentRef(model=str(base_model), weights=base_weights)
        elif isinstance(parent, str):
            p = ParentRef(manifest_sha256=parent)
        else:
            p = None
        return cls(step=step, parent=p, recipe=recipe, created=created, tool_versions=versions)

    @classmethod
    def made(cls, step: str, *, parent: ParentRef | None, recipe: dict[str, Any]) -> LineageStep:
        """A step made now by this edgekit (creation time and tool versions stamped)."""
        from edgekit.core.versions import tool_versions

        return cls(step=step, parent=parent, recipe=recipe, tool_versions=tool_versions(),
                   created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))

    @classmethod
    def coerce(cls, step: LineageStep | Mapping[str, Any]) -> LineageStep:
        return step if isinstance(step, LineageStep) else cls.from_json(step)


@dataclass(frozen=True)
class FileRef:
    """A file of the artifact that a later step reads back (a checkpoint, a pruning config), with its sha256."""

    file: str
    sha256: str | None = None
    format: str | None = None
    architecture: str | None = None  # how to rebuild the module the checkpoint fits
    build_kwargs: dict[str, Any] | None = None  # the zoo builder's arguments
    other: dict[str, Any] = field(default_factory=dict)  # keys this edgekit does not know, kept as they were

    def to_json(self) -> dict[str, Any]:
        d = _compact({f.name: getattr(self, f.name) for f in fields(self) if f.name != "other"})
        return {**d, **self.other}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> FileRef:
        names = {f.name for f in fields(cls)} - {"other"}
        return cls(**{k: v for k, v in d.items() if k in names},
                   other={k: v for k, v in d.items() if k not in names})
