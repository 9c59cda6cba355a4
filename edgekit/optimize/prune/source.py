"""What ``edgekit prune`` starts from: an FP32 artifact with PyTorch weights, or a zoo model.

* An artifact directory made by ``edgekit finetune`` (its
  ``checkpoint.safetensors``), by ``edgekit prune`` (pruning again: rebuilt
  from its channel configuration), or by ``edgekit export`` from ImageNet or a
  checkpoint file (reloaded, its sha256 checked). Its preprocessing, labels
  and build arguments are kept; it becomes the lineage parent.
* A zoo name with ``--weights`` (imagenet, none, or a checkpoint path).

A quantized or reduced-precision artifact is refused: structured pruning
works on the FP32 PyTorch model, and the order is prune, recover, then
quantize.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.core.atomic import sha256_file
from edgekit.core.errors import ArtifactError, UsageError
from edgekit.core.manifest import MANIFEST_NAME, Artifact, LineageStep, ParentRef, load_artifact
from edgekit.core.specs import PreprocessSpec
from edgekit.zoo.registry import ModelEntry, get_model

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Source:
    """The model to prune and everything the pruned artifact inherits from it."""

    entry: ModelEntry
    loaded: Any  # LoadedModel
    preprocess: PreprocessSpec
    labels: tuple[str, ...] | None
    build_kwargs: dict[str, Any] = field(default_factory=dict)
    parent: ParentRef = field(default_factory=ParentRef)
    lineage: tuple[LineageStep, ...] = ()
    dataset: dict[str, Any] | None = None


def looks_like_path(text: str) -> bool:
    return "/" in text or "\\" in text or text.startswith(".") or text.endswith(MANIFEST_NAME)


def check_prunable(art: Artifact) -> None:
    """Refuse quantized / reduced-precision artifacts: prune before quantizing."""
    m = art.manifest
    graph_precision = None
    if m.format == "onnx" and art.model_path.is_file():
        from edgekit.runtime.onnx_info import read_graph_info

        graph_precision = read_graph_info(art.model_path).precision
    quantized_step = any(s.step in ("quantize", "fp16") for s in m.lineage)
    precision = m.precision if m.precision != "fp32" else (graph_precision or "fp32")
    if precision != "fp32" or quantized_step:
        what = "quantized (int8 / Q-DQ)" if precision == "int8" else f"{precision}"
        raise ArtifactError(
            f"{art.path} is a {what} artifact (precision {precision}); structured pruning works on the FP32 model",
            hint="prune before quantizing: prune the FP32 artifact it was made from (see its lineage), "
            "then quantize the pruned artifact",
        )
    if m.format != "onnx":
        raise ArtifactError(f"{art.path} is a {m.format} artifact; prune takes an FP32 ONNX artifact with its weights",
                            hint="give the artifact written by 'edgekit finetune' or 'edgekit export'")
    if m.family == "imported":  # made by 'edgekit import': there is no PyTorch model to prune and recover
        raise ArtifactError(f"{art.path} was imported from ONNX ({m.source}); structured pruning needs the PyTorch "
                            "model of a zoo architecture",
                            hint="prune the PyTorch model before exporting it, or bench/quantize/gate the import")


def from_artifact(path: Path) -> Source:
    art = load_artifact(path, verify=True)
    check_prunable(art)
    m = art.manifest
    entry = get_model(m.model)
    from edgekit.optimize.prune.config import is_pruned_artifact, load_pruned

    if is_pruned_artifact(art):
        loaded = load_pruned(art)
    elif m.checkpoint is not None:
        from edgekit.optimize.train.finetune import load_finetuned

        loaded = load_finetuned(art)
    else:
        loaded = _reload_exported(art, entry)
    parent = ParentRef(path=str(art.path.resolve()), manifest_sha256=sha256_file(art.path / MANIFEST_NAME),
                       sha256=m.files.get(m.model_file), weights=m.weights.to_json())
    labels = m.labels if m.labels is not None else loaded.labels
    build_kwargs = dict(m.build_kwargs or {})
    if m.prune_config is not None:
        build_kwargs = dict(m.prune_config.build_kwargs or build_kwargs)
    dataset = m.extra.get("dataset") if isinstance(m.extra.get("dataset"), dict) else None
    return Source(entry, loaded, m.preprocess, labels, build_kwargs, parent, tuple(m.lineage), dataset)


def _reload_exported(art: Artifact, entry: ModelEntry) -> Any:
    from edgekit.zoo.weights import load_model

    w = art.manifest.weights
    if w.origin == "imagenet":
        loaded = load_model(entry, "imagenet")
    elif w.origin == "path" and w.source and Path(w.source).is_file():
        if w.sha256 and sha256_file(w.source) != w.sha256:
            raise ArtifactError(f"{w.source}, the checkpoint {art.path} was exported from, changed since (sha256)",
                                hint="give the zoo model with --weights PATH instead")
        loaded = load_model(entry, w.source, num_classes=art.manifest.num_classes)
    else:
        why = "random init" if w.random_init or w.origin == "none" else f"weights from {w.origin} {w.source or ''}"
        raise ArtifactError(
            f"{art.path} holds no PyTorch weights to prune ({why}, no checkpoint in the artifact)",
            hint="give an artifact made by 'edgekit finetune', or the zoo model with --weights",
        )
    if loaded.num_classes != art.manifest.num_classes:
        raise ArtifactError(f"{art.path} has {art.manifest.num_classes} classes, its weights {loaded.num_classes}")
    return loaded


def from_zoo(name: str, *, weights: str, num_classes: int | None, img_size: int | None) -> Source:
    from edgekit.optimize.train import transfer
    from edgekit.zoo import builders
    from edgekit.zoo.weights import LoadedModel

    entry = get_model(name)
    size = int(img_size) if img_size is not None else int(entry.preprocess.input_size[0])
    w = str(weights).strip()
    n = num_classes if num_classes is not None else entry.num_classes
    base = transfer.build_base(entry, w, img_size=size, num_classes=n)
    if num_classes is not None and base.num_classes != num_classes:
        raise UsageError(f"--num-classes {num_classes} does not match the {base.num_classes} classes of the weights",
                         hint="omit --num-classes")
    labels = None
    if base.weights.origin == "imagenet" and base.num_classes == builders.IMAGENET_CLASSES:
        labels = builders.imagenet_labels(entry)
    loaded = LoadedModel(base.model.eval(), base.weights, base.num_classes, labels)
    spec = entry.preprocess if img_size is None else entry.preprocess.with_input_size(size)
    parent = ParentRef(model=entry.name, weights=base.weights.to_json())
    return Source(entry, loaded, spec, labels, dict(base.build_kwargs), parent, (), None)


def resolve(source: str | Path, *, weights: str, num_classes: int | None, img_size: int | None) -> Source:
    """An artifact directory (or its edgekit.json) or a zoo model name."""
    text = str(source).strip()
    if not text:
        raise UsageError("give an artifact directory or a zoo model name to prune")
    p = Path(text).expanduser()
    if p.exists():
        if img_size is not None or num_classes is not None:
            raise UsageError("--img-size and --num-classes apply to a zoo model; an artifact keeps its own",
                             hint="drop them, or give the zoo model name")
        src = from_artifact(p)
        if str(weights).strip().lower() not in ("", "imagenet"):
            log.warning("--weights %s is ignored: the artifact carries its own weights", weights)
        return src
    if looks_like_path(text):
        raise ArtifactError(f"artifact {p} does not exist", hint="give an artifact directory or a zoo model name")
    return from_zoo(text, weights=weights, num_classes=num_classes, img_size=img_size)
