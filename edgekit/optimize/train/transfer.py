"""Transfer-learning surgery: build the base model, give it a new head, freeze what is asked.

* Head: timm models through ``reset_classifier(n)``; torchvision models by
  replacing the classifier module the zoo names (the last ``Linear``, or
  SqueezeNet's final 1x1 ``Conv2d``) with a fresh one of ``n`` outputs.
* Freezing: ``--freeze-backbone`` trains the new head only;
  ``--unfreeze-from STAGE`` trains STAGE and everything registered after it
  (the head included). Stage names are the model's top-level children and
  the members of its top-level sequential containers (timm ``blocks.5``,
  ``stages.2``; torchvision ``features.10``, ``stage4``).
* Input size: a few timm models (CoAtNet/MaxViT) size their relative
  position tables for the input at build time; :func:`build_base` probes a
  forward pass and rebuilds them with ``img_size`` when the size differs.
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.core.errors import UsageError, WeightsError
from edgekit.core.lazy import require
from edgekit.core.manifest import WeightsInfo
from edgekit.zoo import builders
from edgekit.zoo.registry import ModelEntry
from edgekit.zoo.weights import LoadedModel, fit_state_dict, load_model, read_checkpoint

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BaseModel:
    """The model to fine-tune, before its head is replaced."""

    model: Any
    weights: WeightsInfo
    num_classes: int
    build_kwargs: dict[str, Any] = field(default_factory=dict)


def _forward_ok(model: Any, size: int) -> str | None:
    torch = require("torch")
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, size, size))
        return None
    except RuntimeError as e:
        return " ".join(str(e).split())[:160]
    finally:
        model.train(was)


def _build_timm_sized(entry: ModelEntry, n: int, size: int) -> Any:
    timm = require("timm", purpose="building timm models")
    try:
        return timm.create_model(entry.builder, pretrained=False, num_classes=n, img_size=size).eval()
    except (TypeError, ValueError, RuntimeError, AssertionError) as e:  # no img_size, or not at this size
        log.debug("timm cannot build %s with img_size=%d: %s", entry.builder, size, e)
        return None


def build_base(entry: ModelEntry, weights: str, *, img_size: int, num_classes: int) -> BaseModel:
    """``entry`` with ``weights`` ("imagenet", "none" or a checkpoint), runnable at ``img_size``.

    With ``none`` the head already has ``num_classes`` outputs. With a
    checkpoint whose architecture was built for ``img_size`` (a fine-tuned
    CoAtNet at 64 px, say) the model is rebuilt at that size before loading.
    """
    loaded: LoadedModel | None = None
    w = weights.strip()
    try:
        loaded = load_model(entry, w, num_classes=num_classes if w.lower() == "none" else None)
    except WeightsError as e:
        if w.lower() in ("none", "imagenet") or entry.source != "timm" or "does not fit" not in e.message:
            raise
        sized = _sized_from_checkpoint(entry, Path(w).expanduser(), img_size)
        if sized is None:
            raise
        return sized
    error = _forward_ok(loaded.model, img_size)
    if error is None:
        return BaseModel(loaded.model, loaded.weights, loaded.num_classes)
    if entry.source == "timm" and w.lower() == "none":
        model = _build_timm_sized(entry, loaded.num_classes, img_size)
        if model is not None and _forward_ok(model, img_size) is None:
            log.info("built %s for %d px inputs (img_size=%d)", entry.name, img_size, img_size)
            return BaseModel(model, loaded.weights, loaded.num_classes, {"img_size": img_size})
    if w.lower() == "imagenet" and entry.source == "timm" and _build_timm_sized(entry, 1, img_size) is not None:
        raise UsageError(
            f"{entry.name} with ImageNet weights only runs at its training size {entry.preprocess.input_size[0]}, "
            f"not --img-size {img_size}",
            hint=f"use --img-size {entry.preprocess.input_size[0]}, "
            f"or --weights none to train from scratch at {img_size}",
        )
    raise UsageError(
        f"{entry.name} cannot run on {img_size}x{img_size} inputs: {error}",
        hint="choose another --img-size (a multiple of 32 suits every zoo model)",
    )


def _sized_from_checkpoint(entry: ModelEntry, path: Path, img_size: int) -> BaseModel | None:
    ckpt = read_checkpoint(path)
    head = ckpt.state_dict.get(f"{builders.classifier_name(entry)}.weight")
    n = int(head.shape[0]) if head is not None and head.ndim >= 2 else entry.num_classes
    model = _build_timm_sized(entry, n, img_size)
    if model is None:
        return None
    fit_state_dict(model, ckpt.state_dict, what=f"{path} ({entry.name} at {img_size} px)")
    info = WeightsInfo(origin="path", source=str(path), sha256=ckpt.sha256)
    return BaseModel(model, info, n, {"img_size": img_size})


def _get(model: Any, dotted: str) -> Any:
    mod = model
    for part in dotted.split("."):
        mod = getattr(mod, part) if not part.isdigit() else mod[int(part)]
    return mod


def _set(model: Any, dotted: str, new: Any) -> None:
    parent_name, _, last = dotted.rpartition(".")
    parent = _get(model, parent_name) if parent_name else model
    if last.isdigit():
        parent[int(last)] = new
    else:
        setattr(parent, last, new)


def head_name(entry: ModelEntry) -> str:
    """Module name of the classifier that gets replaced (``classifier``, ``head.fc``, ``fc``, ``classifier.1``)."""
    return builders.classifier_name(entry)


def replace_head(model: Any, entry: ModelEntry, num_classes: int) -> None:
    """Give ``model`` a freshly initialized ``num_classes``-way head (uses torch's global RNG)."""
    torch = require("torch")
    if entry.source == "timm":
        model.reset_classifier(num_classes)
        return
    name = head_name(entry)
    old = _get(model, name)
    if isinstance(old, torch.nn.Linear):
        new = torch.nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    elif isinstance(old, torch.nn.Conv2d):
        new = torch.nn.Conv2d(
            old.in_channels, num_classes, kernel_size=old.kernel_size, stride=old.stride,
            padding=old.padding, bias=old.bias is not None,
        )
        if entry.family == "squeezenet":  # torchvision's own init of this layer
            torch.nn.init.normal_(new.weight, mean=0.0, std=0.01)
            if new.bias is not None:
                torch.nn.init.zeros_(new.bias)
    else:  # pragma: no cover - a new torchvision layout
        raise WeightsError(f"cannot replace the head {name} ({type(old).__name__}) of {entry.name}")
    _set(model, name, new)
    if hasattr(model, "num_classes"):
        model.num_classes = num_classes


def has_normalization(model: Any) -> bool:
    """True when the model has a BatchNorm, LayerNorm or GroupNorm layer (SqueezeNet has none)."""
    torch = require("torch")
    norms = (torch.nn.modules.batchnorm._BatchNorm, torch.nn.LayerNorm, torch.nn.GroupNorm)
    return any(isinstance(m, norms) or "Norm" in type(m).__name__ for m in model.modules())


def stage_names(model: Any) -> list[str]:
    """Names accepted by ``--unfreeze-from``, in registration order."""
    torch = require("torch")
    names: list[str] = []
    for name, child in model.named_children():
        if not any(True for _ in child.parameters()):
            continue
        names.append(name)
        if isinstance(child, (torch.nn.Sequential, torch.nn.ModuleList)):
            names.extend(f"{name}.{sub}" for sub, m in child.named_children() if any(True for _ in m.parameters()))
    return names


def check_stage(model: Any, entry: ModelEntry, stage: str) -> None:
    """Raise UsageError listing the valid stages when ``stage`` is not one of them."""
    valid = stage_names(model)
    if stage not in valid:
        close = difflib.get_close_matches(stage, valid, n=3)
        did = f"; did you mean {', '.join(close)}?" if close else ""
        raise UsageError(
            f"unknown --unfreeze-from stage {stage!r} for {entry.name}{did}",
            hint="valid stages: " + ", ".join(valid),
        )


def apply_freeze(model: Any, entry: ModelEntry, *, freeze_backbone: bool, unfreeze_from: str | None) -> str:
    """Set ``requires_grad``; returns a description for the training record."""
    params = list(model.named_parameters())
    if freeze_backbone:
        head = head_name(entry)
        start = next((i for i, (n, _) in enumerate(params) if n.startswith(head + ".")), None)
        for n, p in params:
            p.requires_grad_(n.startswith(head + "."))
        if start is None:  # pragma: no cover
            raise WeightsError(f"{entry.name}: no parameters under the head {head}")
        return f"head only ({head})"
    if unfreeze_from is None:
        for _, p in params:
            p.requires_grad_(True)
        return "all"
    check_stage(model, entry, unfreeze_from)
    prefix = unfreeze_from + "."
    start = next(i for i, (n, _) in enumerate(params) if n.startswith(prefix))
    for i, (_, p) in enumerate(params):
        p.requires_grad_(i >= start)
    return f"from {unfreeze_from}"
