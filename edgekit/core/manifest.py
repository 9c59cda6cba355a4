"""The artifact manifest: ``edgekit.json`` beside every model file.

The manifest is the contract between the host that made an artifact and the
device that runs it: it says what the model is, how to feed it (input tensor
and preprocessing), what its outputs mean (labels), where it came from
(weights, lineage, tool versions) and what was checked (parity). It is written
last, so an artifact directory without one is incomplete by definition.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edgekit.core.atomic import atomic_write_json, sha256_file
from edgekit.core.errors import ArtifactError
from edgekit.core.jsonfile import read_json_file
from edgekit.core.lineage import FileRef, LineageStep, ParentRef, as_precision
from edgekit.core.specs import Precision, PreprocessSpec, TensorSpec

MANIFEST_NAME = "edgekit.json"
SCHEMA = "edgekit.artifact"
SCHEMA_VERSION = 1
#: ``extra`` keys that are contracts between packages: typed fields of :class:`Manifest`, kept in ``extra`` on disk
TYPED_EXTRA = ("runtime", "device", "inference_precision", "checkpoint", "prune_config", "build_kwargs")


@dataclass(frozen=True)
class WeightsInfo:
    """Where the weights came from. ``origin`` is imagenet, path, package or none."""

    origin: str
    source: str | None = None
    sha256: str | None = None
    random_init: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "source": self.source,
            "sha256": self.sha256,
            "random_init": self.random_init,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> WeightsInfo:
        return cls(
            origin=d["origin"],
            source=d.get("source"),
            sha256=d.get("sha256"),
            random_init=bool(d.get("random_init", False)),
        )


@dataclass(frozen=True)
class Manifest:
    """Everything a device needs to use an artifact, and its provenance.

    Typed on construction: ``precision`` becomes a :class:`Precision`, lineage steps
    :class:`LineageStep` (old shapes are read), and the contract keys of ``extra`` (``TYPED_EXTRA``)
    move to their fields. ``runtime``/``device``/``inference_precision``: what an engine was built
    for and the precision its runtime is to run (edgekit spelling); ``checkpoint``/``prune_config``:
    files a later step reads back; ``build_kwargs``: the zoo builder's arguments.
    """

    model: str
    family: str
    source: str
    num_classes: int
    weights: WeightsInfo
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    preprocess: PreprocessSpec
    model_file: str = "model.onnx"
    format: str = "onnx"
    precision: Precision = Precision.FP32
    labels: tuple[str, ...] | None = None
    opset: int | None = None
    exporter: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    parity: dict[str, Any] | None = None
    lineage: tuple[LineageStep, ...] = ()
    versions: dict[str, str] = field(default_factory=dict)
    created: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    runtime: str | None = None
    device: str | None = None
    inference_precision: Precision | None = None
    checkpoint: FileRef | None = None
    prune_config: FileRef | None = None
    build_kwargs: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        extra, lifted = _lift(self.extra)
        set_ = object.__setattr__
        set_(self, "extra", extra)
        for k, v in lifted.items():
            if getattr(self, k) is None:
                set_(self, k, v)
        set_(self, "precision", as_precision(self.precision))
        set_(self, "inference_precision", as_precision(self.inference_precision))
        set_(self, "lineage", tuple(LineageStep.coerce(s) for s in self.lineage))
        for k in ("checkpoint", "prune_config"):
            v = getattr(self, k)
            if isinstance(v, dict):
                set_(self, k, FileRef.from_json(v))

    @property
    def input(self) -> TensorSpec:
        return self.inputs[0]

    def with_files(self, directory: Path) -> Manifest:
        """A copy whose ``files`` holds the sha256 of every file in ``directory``."""
        files = {
            p.relative_to(directory).as_posix(): sha256_file(p)
            for p in sorted(directory.rglob("*"))
            if p.is_file() and p.name != MANIFEST_NAME and not p.name.startswith(".")
        }
        return replace(self, files=files)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "created": self.created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "model": self.model,
            "family": self.family,
            "source": self.source,
            "num_classes": self.num_classes,
            "format": self.format,
            "model_file": self.model_file,
            "precision": self.precision,
            "weights": self.weights.to_json(),
            "inputs": [t.to_json() for t in self.inputs],
            "outputs": [t.to_json() for t in self.outputs],
            "preprocess": self.preprocess.to_json(),
            "labels": list(self.labels) if self.labels is not None else None,
            "opset": self.opset,
            "exporter": self.exporter,
            "files": dict(self.files),
            "parity": self.parity,
            "lineage": [s.to_json() for s in self.lineage],
            "versions": dict(self.versions),
            "extra": {**self._typed_extra(), **self.extra},
        }

    def _typed_extra(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k in TYPED_EXTRA:
            v = getattr(self, k)
            if v is not None:
                out[k] = v.to_json() if isinstance(v, FileRef) else str(v) if isinstance(v, Precision) else v
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Manifest:
        if d.get("schema") != SCHEMA:
            raise ArtifactError(f"not an edgekit manifest (schema={d.get('schema')!r})")
        version = d.get("schema_version")
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise ArtifactError(
                f"manifest schema_version {version!r} is newer than this edgekit understands ({SCHEMA_VERSION})",
                hint="upgrade edgekit",
            )
        try:
            return cls(
                model=d["model"],
                family=d["family"],
                source=d["source"],
                num_classes=int(d["num_classes"]),
                weights=WeightsInfo.from_json(d["weights"]),
                inputs=tuple(TensorSpec.from_json(t) for t in d["inputs"]),
                outputs=tuple(TensorSpec.from_json(t) for t in d["outputs"]),
                preprocess=PreprocessSpec.from_json(d["preprocess"]),
                model_file=d.get("model_file", "model.onnx"),
                format=d.get("format", "onnx"),
                precision=d.get("precision", "fp32"),
                labels=tuple(d["labels"]) if d.get("labels") is not None else None,
                opset=d.get("opset"),
                exporter=d.get("exporter"),
                files=dict(d.get("files", {})),
                parity=d.get("parity"),
                lineage=tuple(LineageStep.from_json(s) for s in d.get("lineage", ())),
                versions=dict(d.get("versions", {})),
                created=d.get("created", ""),
                extra=dict(d.get("extra", {})),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ArtifactError(f"manifest is malformed: {type(e).__name__}: {e}") from None

    def write(self, directory: str | Path) -> Path:
        """Write the manifest atomically into ``directory`` (do this last)."""
        return atomic_write_json(Path(directory) / MANIFEST_NAME, self.to_json())


def _lift(extra: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split ``extra`` into the untyped rest and the typed contract keys (a value of an unknown shape stays)."""
    rest, lifted = dict(extra), {}
    for k in TYPED_EXTRA:
        v = rest.get(k)
        if v is None:
            continue
        if k in ("checkpoint", "prune_config"):
            if not isinstance(v, dict) or "file" not in v:
                continue
            v = FileRef.from_json(v)
        elif k == "inference_precision":
            try:
                v = as_precision(v)
            except ValueError:
                continue
        elif k == "build_kwargs" and not isinstance(v, dict):
            continue
        lifted[k] = v
        del rest[k]
    return rest, lifted


@dataclass(frozen=True)
class Artifact:
    """An artifact directory with its manifest, verified on load."""

    path: Path
    manifest: Manifest

    @property
    def model_path(self) -> Path:
        return self.path / self.manifest.model_file

    def as_parent(self) -> ParentRef:
        """How a step made from this artifact records it in its lineage."""
        m = self.manifest
        return ParentRef(path=str(self.path.resolve()), model_file=m.model_file, sha256=m.files[m.model_file],
                         format=m.format, precision=m.precision)


def load_artifact(path: str | Path, *, verify: bool = True) -> Artifact:
    """Load ``path`` (a directory holding ``edgekit.json``, or the manifest itself).

    With ``verify`` every file listed in the manifest must exist and match its
    sha256, so a device never runs a model other than the one described.
    """
    p = Path(path)
    if p.is_file() and p.name == MANIFEST_NAME:
        p = p.parent
    if not p.exists():
        raise ArtifactError(f"artifact {p} does not exist", hint="give the directory written by 'edgekit export'")
    mpath = p / MANIFEST_NAME
    if p.is_file() and p.suffix.lower() == ".onnx":  # a bare model: the manifest says how to feed it
        raise ArtifactError(
            f"{p} is a bare ONNX file: edgekit needs its preprocessing and labels to bench, quantize or gate it",
            hint=f"make it an artifact: edgekit import {p} --preprocess imagenet --labels LABELS.txt -o DIR",
        )
    if not p.is_dir() or not mpath.is_file():
        raise ArtifactError(
            f"{p} has no {MANIFEST_NAME}: not an edgekit artifact, or an incomplete one",
            hint="export it with 'edgekit export', or make one from an ONNX file with 'edgekit import'",
        )
    data = read_json_file(mpath, what="manifest", error=ArtifactError, missing_hint="export it with 'edgekit export'",
                          broken_hint="the artifact is damaged; re-export it")
    if not isinstance(data, dict):
        raise ArtifactError(f"{mpath} does not hold a JSON object")
    manifest = Manifest.from_json(data)
    if verify:
        if manifest.model_file not in manifest.files:
            raise ArtifactError(f"{mpath} does not list its model file {manifest.model_file}")
        for rel, digest in manifest.files.items():
            f = p / rel
            if not f.is_file():
                raise ArtifactError(f"artifact {p} is missing {rel}", hint="re-export it")
            if sha256_file(f) != digest:
                raise ArtifactError(
                    f"{f} does not match the sha256 recorded in {MANIFEST_NAME}",
                    hint="the file was modified after export; re-export it",
                )
    return Artifact(path=p, manifest=manifest)


__all__ = ["MANIFEST_NAME", "SCHEMA", "SCHEMA_VERSION", "TYPED_EXTRA", "Artifact", "FileRef", "LineageStep", "Manifest",
           "ParentRef", "WeightsInfo", "load_artifact"]
