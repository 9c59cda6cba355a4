"""Save a pruned model without pickle, and rebuild it from the zoo and a channel configuration.

A pruned model cannot be rebuilt from its zoo name alone: its layers are
narrower. It is saved as two files:

* ``checkpoint.safetensors``: the state_dict (tensors only, no code);
* ``prune_config.json``: the *channel configuration*: the zoo model, its
  class count and build arguments, and for every layer whose channels changed
  its type and channel attributes (``in_channels``, ``out_channels``,
  ``groups``, ``num_features``, ``in_features``, ``normalized_shape``...),
  plus the shape of every tensor of the state_dict.

:func:`rebuild` builds the zoo architecture, narrows the listed layers
(attributes set, their parameters and buffers re-allocated at the recorded
shapes) and :func:`load_pruned` loads the safetensors state_dict strictly
into it. Nothing is unpickled, no code is read from the artifact.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from edgekit.core.atomic import atomic_write_json, sha256_file
from edgekit.core.errors import ArtifactError
from edgekit.core.lazy import require
from edgekit.core.manifest import Artifact, WeightsInfo, load_artifact
from edgekit.optimize.prune.structure import CHANNEL_ATTRS, StructureReport
from edgekit.zoo.registry import ModelEntry, get_model

log = logging.getLogger(__name__)

CONFIG_NAME = "prune_config.json"
CHECKPOINT_NAME = "checkpoint.safetensors"
SCHEMA = "edgekit.prune_config"
SCHEMA_VERSION = 1
_TUPLE_ATTRS = ("normalized_shape",)


def channel_config(
    model: Any, entry: ModelEntry, report: StructureReport, *, num_classes: int, build_kwargs: dict[str, Any]
) -> dict[str, Any]:
    """The JSON channel configuration of a pruned ``model`` (see the module docstring)."""
    modules = {c.name: {"type": c.kind, "attrs": dict(c.after)} for c in report.changes}
    tensors = {k: list(v.shape) for k, v in model.state_dict().items()}
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "model": entry.name,
        "num_classes": int(num_classes),
        "build_kwargs": dict(build_kwargs),
        "modules": modules,
        "tensors": tensors,
        "pruning": report.to_json(layers=False),
    }


def save_pruned(
    model: Any, config: dict[str, Any], directory: Path, *, metadata: dict[str, str] | None = None
) -> dict[str, str]:
    """Write ``checkpoint.safetensors`` and ``prune_config.json`` into ``directory``; returns their sha256."""
    st = require("safetensors.torch", purpose="writing the pruned checkpoint")
    directory.mkdir(parents=True, exist_ok=True)
    cfg_path = atomic_write_json(directory / CONFIG_NAME, config)
    meta = {"model": str(config["model"]), "format": "pt", "prune_config_sha256": sha256_file(cfg_path)}
    meta.update(metadata or {})
    sd = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    ck_path = directory / CHECKPOINT_NAME
    st.save_file(sd, str(ck_path), metadata=meta)
    return {CHECKPOINT_NAME: sha256_file(ck_path), CONFIG_NAME: meta["prune_config_sha256"]}


def read_config(path: Path) -> dict[str, Any]:
    """Read and check a channel configuration file (JSON only)."""
    try:
        cfg = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ArtifactError(f"cannot read the channel configuration {path}: {e}") from None
    if not isinstance(cfg, dict) or cfg.get("schema") != SCHEMA:
        raise ArtifactError(f"{path} is not an edgekit channel configuration (schema {SCHEMA})")
    version = cfg.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise ArtifactError(f"{path}: schema_version {version!r} is newer than this edgekit understands",
                            hint="upgrade edgekit")
    for key, kind in (("model", str), ("num_classes", int), ("modules", dict), ("tensors", dict)):
        if not isinstance(cfg.get(key), kind):
            raise ArtifactError(f"{path}: '{key}' is missing or not a {kind.__name__}")
    return cfg


def _build(entry: ModelEntry, num_classes: int, build_kwargs: dict[str, Any]) -> Any:
    if build_kwargs:
        if entry.source != "timm":
            raise ArtifactError(f"build arguments {build_kwargs} are only supported for timm models")
        timm = require("timm", purpose="rebuilding the pruned model")
        return timm.create_model(entry.builder, pretrained=False, num_classes=num_classes, **build_kwargs).eval()
    from edgekit.zoo import builders

    return builders.build_model(entry, num_classes=num_classes)


def rebuild(config: dict[str, Any]) -> Any:
    """The zoo architecture narrowed to ``config`` (uninitialized narrowed tensors; load a state_dict next)."""
    torch = require("torch", purpose="rebuilding the pruned model")
    entry = get_model(config["model"])
    model = _build(entry, int(config["num_classes"]), dict(config.get("build_kwargs") or {}))
    tensors: dict[str, list[int]] = config["tensors"]
    for name, spec in config["modules"].items():
        try:
            mod = model.get_submodule(name)
        except AttributeError:
            raise ArtifactError(
                f"the channel configuration names {name!r}, which {entry.name} does not have",
                hint="the artifact was made with another model layout (timm/torchvision version)",
            ) from None
        kind = spec.get("type") if isinstance(spec, dict) else None
        if kind != type(mod).__name__:
            raise ArtifactError(f"channel configuration: {name} is a {type(mod).__name__}, the file says {kind}")
        for attr, value in dict(spec.get("attrs", {})).items():
            if attr not in CHANNEL_ATTRS or not hasattr(mod, attr):
                raise ArtifactError(f"channel configuration: {name} has no channel attribute {attr!r}")
            setattr(mod, attr, tuple(int(v) for v in value) if attr in _TUPLE_ATTRS else int(value))
    # re-allocate every tensor whose recorded shape differs (the narrowed layers, and parameters
    # outside any layer, such as layer-scale vectors); the state_dict fills them next
    for mod_name, mod in model.named_modules():
        prefix = f"{mod_name}." if mod_name else ""
        for pname, p in list(mod.named_parameters(recurse=False)):
            shape = tensors.get(prefix + pname)
            if shape is not None and list(p.shape) != list(shape):
                new = torch.nn.Parameter(torch.empty(shape, dtype=p.dtype), requires_grad=p.requires_grad)
                setattr(mod, pname, new)
        for bname, b in list(mod.named_buffers(recurse=False)):
            shape = tensors.get(prefix + bname)
            if b is not None and shape is not None and list(b.shape) != list(shape):
                mod._buffers[bname] = torch.empty(shape, dtype=b.dtype)
    return model.eval()


def load_pruned_files(config_path: Path, checkpoint_path: Path) -> tuple[Any, dict[str, Any]]:
    """Rebuild from ``config_path`` and load ``checkpoint_path`` (safetensors) strictly."""
    from edgekit.zoo.weights import fit_state_dict, read_checkpoint

    cfg = read_config(config_path)
    if Path(checkpoint_path).suffix != ".safetensors":
        raise ArtifactError(f"{checkpoint_path}: a pruned checkpoint must be .safetensors")
    model = rebuild(cfg)
    ckpt = read_checkpoint(checkpoint_path)
    fit_state_dict(model, ckpt.state_dict, what=f"{checkpoint_path} (pruned {cfg['model']})")
    return model.eval(), cfg


def is_pruned_artifact(art: Artifact) -> bool:
    return art.manifest.prune_config is not None


def load_pruned(artifact: str | Path | Artifact) -> Any:
    """The PyTorch model of a pruned artifact as a :class:`~edgekit.zoo.weights.LoadedModel`.

    Every file is checked against the manifest's sha256 first; the model is
    rebuilt from the zoo and ``prune_config.json`` and the safetensors
    state_dict loaded into it. No pickle is involved.
    """
    from edgekit.zoo.weights import LoadedModel

    art = artifact if isinstance(artifact, Artifact) else load_artifact(artifact, verify=True)
    m = art.manifest
    info, ck = m.prune_config, m.checkpoint
    if info is None or ck is None:
        raise ArtifactError(f"{art.path} is not a pruned artifact (no prune_config in its manifest)",
                            hint="make it with 'edgekit prune'")
    cfg_path, ck_path = art.path / info.file, art.path / ck.file
    for p in (cfg_path, ck_path):
        if p.name not in m.files:
            raise ArtifactError(f"{art.path}: {p.name} is not listed (hashed) in the manifest")
    model, cfg = load_pruned_files(cfg_path, ck_path)
    if cfg["model"] != m.model or int(cfg["num_classes"]) != m.num_classes:
        raise ArtifactError(f"{cfg_path} describes {cfg['model']} with {cfg['num_classes']} classes, "
                            f"the manifest {m.model} with {m.num_classes}")
    weights = WeightsInfo(origin="path", source=str(ck_path), sha256=m.files[ck_path.name])
    return LoadedModel(model, weights, int(cfg["num_classes"]), m.labels)
