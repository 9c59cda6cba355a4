"""Structured channel pruning of a zoo model with Torch-Pruning's DependencyGraph.

What is pruned and what is kept whole:

* Coupled channels are pruned together: Torch-Pruning traces the model and
  groups every tensor that shares a channel dimension (a convolution's
  outputs, the BatchNorm after it, the depthwise convolution and its
  ``groups``, the squeeze-excite reduce/expand convolutions and the
  multiply, residual adds across a stage, SqueezeNet's concatenations, the
  classifier's inputs). A group loses the same channels everywhere.
* The classifier keeps its outputs (the classes); its input features follow
  the layer before it, as in Torch-Pruning's own examples.
* Attention (any module with ``num_heads``: CoAtNet's ``Attention2d``) is
  kept whole: qkv outputs, heads, the projection and the relative-position
  tables are not touched, and the residual stream of the transformer stages
  is therefore fixed too. What is pruned in those stages is the MLP hidden
  width (``fc1`` outputs / ``fc2`` inputs); the convolutional (MBConv)
  stages, the stem and the inputs of the first attention block are pruned
  like any CNN.
* ShuffleNetV2's channel shuffle (torchvision's view/transpose) is not
  traceable; :mod:`edgekit.optimize.prune.shufflenet` prunes it through a
  traceable proxy of its branch-internal layers (a family hook in
  :data:`FAMILY_PRUNERS`, the place for the next untraceable family).

Importance is the group L2 magnitude (``GroupMagnitudeImportance(p=2)``,
mean over the group, mean-normalized). ``ratio`` is the fraction of
channels removed in each group (or across all groups with
``global_pruning``). After ranking, the channels a layer keeps are rounded
to the nearest multiple of ``round_to`` (at least ``round_to``; layers
narrower than ``round_to`` are left alone), which keeps SIMD and tensor-core
kernels on their fast paths (MACs are not latency). With
``global_pruning`` no layer loses more than
:data:`edgekit.optimize.prune.pruner.GLOBAL_MAX_LAYER_RATIO`
of its channels.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from typing import Any

from edgekit.core.errors import UsageError
from edgekit.core.lazy import require
from edgekit.core.options import Rule
from edgekit.optimize.prune.pruner import make_pruner, quiet_torch_pruning
from edgekit.zoo import builders
from edgekit.zoo.registry import ModelEntry

log = logging.getLogger(__name__)

IMPORTANCE = "group L2 magnitude (Torch-Pruning GroupMagnitudeImportance p=2, mean reduction, mean-normalized)"
#: families whose models Torch-Pruning cannot trace: family -> "module:function" with the signature
#: ``prune(model, example, *, ratio, round_to, global_pruning) -> (method, kept whole, notes)``
FAMILY_PRUNERS: dict[str, str] = {
    "shufflenetv2": "edgekit.optimize.prune.shufflenet:prune",
}
#: module attributes that describe a layer's channels (saved in the channel configuration)
CHANNEL_ATTRS = (
    "in_channels",
    "out_channels",
    "groups",
    "in_features",
    "out_features",
    "num_features",
    "normalized_shape",
    "num_channels",
)


@dataclass(frozen=True)
class LayerChange:
    """One layer whose channels changed."""

    name: str
    kind: str
    before: dict[str, Any]
    after: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.kind, "before": self.before, "after": self.after}


@dataclass(frozen=True)
class StructureReport:
    """What the structural pruning did."""

    method: str
    ratio: float
    round_to: int
    global_pruning: bool
    importance: str
    params_before: int
    params_after: int
    kept_whole: tuple[str, ...]
    changes: tuple[LayerChange, ...]
    notes: tuple[str, ...] = field(default=())

    def to_json(self, *, layers: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {
            "method": self.method,
            "ratio": self.ratio,
            "round_to": self.round_to,
            "global": self.global_pruning,
            "importance": self.importance,
            "torch_params_before": self.params_before,
            "torch_params_after": self.params_after,
            "kept_whole": list(self.kept_whole),
            "layers_changed": len(self.changes),
            "notes": list(self.notes),
        }
        if layers:
            d["layers"] = [c.to_json() for c in self.changes]
        return d


def channel_attrs(module: Any) -> dict[str, Any]:
    """The channel-describing attributes a module has (see :data:`CHANNEL_ATTRS`)."""
    out: dict[str, Any] = {}
    for a in CHANNEL_ATTRS:
        v = getattr(module, a, None)
        if isinstance(v, bool) or v is None:
            continue
        if isinstance(v, int):
            out[a] = int(v)
        elif isinstance(v, (tuple, list)) and all(isinstance(i, int) for i in v):
            out[a] = [int(i) for i in v]
    return out


def snapshot(model: Any) -> dict[str, tuple[str, dict[str, Any], dict[str, tuple[int, ...]]]]:
    """Per module with channel attributes: (type name, attributes, own tensor shapes)."""
    snap = {}
    for name, mod in model.named_modules():
        attrs = channel_attrs(mod)
        if not attrs:
            continue
        own = (*mod.named_parameters(recurse=False), *mod.named_buffers(recurse=False))
        shapes = {n: tuple(t.shape) for n, t in own}
        snap[name] = (type(mod).__name__, attrs, shapes)
    return snap


def changed_layers(before: dict[str, Any], model: Any) -> tuple[LayerChange, ...]:
    """The layers whose channel attributes or tensor shapes differ from ``before``."""
    after = snapshot(model)
    changes = []
    for name, (kind, attrs, shapes) in after.items():
        old = before.get(name)
        if old is None or old[1] != attrs or old[2] != shapes:
            changes.append(LayerChange(name, kind, dict(old[1]) if old else {}, dict(attrs)))
    return tuple(changes)


def attention_modules(model: Any) -> list[tuple[str, Any]]:
    """Modules with multi-head attention (a ``num_heads`` attribute), outermost only."""
    found: list[tuple[str, Any]] = []
    for name, mod in model.named_modules():
        if name and isinstance(getattr(mod, "num_heads", None), int):
            if not any(name.startswith(p + ".") for p, _ in found):
                found.append((name, mod))
    return found


RATIO_RULE = Rule(lambda v: not isinstance(v, bool) and isinstance(v, (int, float)) and 0.0 < float(v) < 1.0,
                  "strictly between 0 and 1 (the fraction of channels removed)",
                  hint="e.g. --ratio 0.3 removes 30% of the channels of each prunable group")
ROUND_TO_RULE = Rule(lambda v: not isinstance(v, bool) and isinstance(v, int) and 1 <= v <= 256,
                     "an integer from 1 to 256", hint="8 or 16 keep kernels on their fast paths; 1 disables rounding")


def check_ratio(ratio: float) -> None:
    if not RATIO_RULE.ok(ratio):
        raise UsageError(f"--ratio must be {RATIO_RULE.wants}, got {ratio!r}", hint=RATIO_RULE.hint)


def check_round_to(round_to: int) -> None:
    if not ROUND_TO_RULE.ok(round_to):
        raise UsageError(f"--round-to must be {ROUND_TO_RULE.wants}, got {round_to!r}", hint=ROUND_TO_RULE.hint)


def prune_structure(
    model: Any,
    entry: ModelEntry,
    *,
    ratio: float,
    round_to: int = 8,
    global_pruning: bool = False,
    input_size: tuple[int, int],
) -> StructureReport:
    """Prune ``model`` (an ``entry`` zoo architecture) in place; see the module docstring."""
    check_ratio(ratio)
    check_round_to(round_to)
    torch = require("torch", purpose="pruning")
    require("torch_pruning", purpose="structured pruning")
    model.eval()
    before = snapshot(model)
    params_before = builders.param_count(model)
    h, w = int(input_size[0]), int(input_size[1])
    example = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(0))
    hook = FAMILY_PRUNERS.get(entry.family)
    if hook is not None:
        module, _, name = hook.partition(":")
        prune_family = getattr(importlib.import_module(module), name)
        method, kept, notes = prune_family(model, example, ratio=ratio, round_to=round_to,
                                           global_pruning=global_pruning)
    else:
        method, kept, notes = _prune_depgraph(
            model, entry, example, ratio=ratio, round_to=round_to, global_pruning=global_pruning
        )
    model.eval()
    with torch.no_grad():
        out = model(example)
    check_consistency(model)
    if tuple(out.shape) != (1, _num_outputs(model, entry)):
        raise RuntimeError(f"pruned {entry.name} gives logits of shape {tuple(out.shape)}")  # pragma: no cover
    changes = changed_layers(before, model)
    return StructureReport(
        method=method,
        ratio=float(ratio),
        round_to=int(round_to),
        global_pruning=bool(global_pruning),
        importance=IMPORTANCE,
        params_before=params_before,
        params_after=builders.param_count(model),
        kept_whole=tuple(kept),
        changes=changes,
        notes=tuple(notes),
    )


def _num_outputs(model: Any, entry: ModelEntry) -> int:
    head = model.get_submodule(builders.classifier_name(entry))
    return int(getattr(head, "out_features", None) or head.out_channels)


def _prune_depgraph(
    model: Any, entry: ModelEntry, example: Any, *, ratio: float, round_to: int, global_pruning: bool
) -> tuple[str, list[str], list[str]]:
    head_name = builders.classifier_name(entry)
    ignored: list[Any] = [model.get_submodule(head_name)]
    kept = [f"{head_name} (classifier outputs)"]
    notes: list[str] = []
    attn = attention_modules(model)
    for name, mod in attn:
        ignored.append(mod)
        ignored.extend(mod.parameters())  # relative-position tables are parameters outside any layer
    if attn:
        kept.append(f"{len(attn)} attention module(s) (qkv, heads, projection, relative position): "
                    + ", ".join(n for n, _ in attn[:3]) + (", ..." if len(attn) > 3 else ""))
        notes.append("attention is kept whole, so the transformer stages' residual width is fixed; "
                     "their MLP hidden widths are pruned")
    with quiet_torch_pruning():
        pruner = make_pruner(model, example, ratio=ratio, round_to=round_to, global_pruning=global_pruning,
                             ignored=ignored)
        pruner.step()
    return "torch-pruning dependency graph", kept, notes


def check_consistency(model: Any) -> None:
    """Depthwise and grouped convolutions still divide their channels; BatchNorm matches its tensors."""
    torch = require("torch")
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Conv2d):
            g = mod.groups
            ok = mod.in_channels % g == 0 and mod.out_channels % g == 0
            ok = ok and tuple(mod.weight.shape) == (mod.out_channels, mod.in_channels // g, *mod.kernel_size)
            if not ok:
                raise RuntimeError(f"pruning left {name} inconsistent: {mod}")  # pragma: no cover
        elif isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
            if mod.running_mean is not None and mod.running_mean.shape[0] != mod.num_features:
                raise RuntimeError(f"pruning left {name} inconsistent: {mod}")  # pragma: no cover
