"""ShuffleNetV2: prune through a traceable proxy, because the channel shuffle is not traceable.

torchvision's ``channel_shuffle`` is ``view(b, 2, c/2, h, w)``,
``transpose(1, 2)``, ``view(b, c, h, w)``; Torch-Pruning's reshape index
mapping cannot follow it and crashes (``ZeroDivisionError`` in
``update_reshape_index_mapping``; Torch-Pruning#45 advises handling the
shuffle by hand).

What is pruned here: the channels that never reach a shuffle.

* In every ``InvertedResidual``, ``branch2``'s internal width: the outputs of
  its first 1x1 convolution, its BatchNorm, the depthwise 3x3 convolution
  (channels and ``groups``) with its BatchNorm, and the inputs of the last
  1x1 convolution. The last 1x1 convolution's outputs (the half of the block
  output that is concatenated and shuffled), ``branch1`` and the identity
  half are untouched, so every block keeps its input and output width and the
  shuffle sees exactly the channels it saw before.
* ``conv5``'s outputs (1024 in x1.0) with its BatchNorm, and the classifier's
  input features; the classifier's outputs are kept.
* Not pruned: the stem (``conv1``) and every block's input/output width.

How: the ``branch2`` sequentials and ``conv5``+``fc`` are gathered into a
proxy module whose forward runs each on the input it sees in the real model
(captured with hooks), and that proxy is pruned with Torch-Pruning like any
CNN (the same importance, ratio, ``round_to`` and global ranking). The proxy
holds the model's own layers, so pruning the proxy prunes the model.
"""

from __future__ import annotations

import logging
from typing import Any

from edgekit.core.lazy import require
from edgekit.optimize.prune.pruner import make_pruner, quiet_torch_pruning

log = logging.getLogger(__name__)


def _blocks(model: Any) -> list[tuple[str, Any]]:
    out = []
    for name, mod in model.named_modules():
        branch2 = getattr(mod, "branch2", None)
        if branch2 is not None and hasattr(mod, "branch1") and hasattr(mod, "stride"):
            out.append((name, mod))
    return out


def prune(
    model: Any, example: Any, *, ratio: float, round_to: int, global_pruning: bool
) -> tuple[str, list[str], list[str]]:
    """Prune ``model`` (a torchvision ShuffleNetV2) in place; returns (method, kept whole, notes)."""
    torch = require("torch")

    blocks = _blocks(model)
    conv5, fc = getattr(model, "conv5", None), getattr(model, "fc", None)
    if not blocks or conv5 is None or fc is None:
        raise RuntimeError("not a torchvision ShuffleNetV2 layout (InvertedResidual blocks, conv5, fc)")
    captured: dict[str, Any] = {}

    def grab(key: str) -> Any:
        def hook(_mod: Any, args: tuple[Any, ...]) -> None:
            captured[key] = args[0].detach().clone()

        return hook

    hooks = [b.branch2.register_forward_pre_hook(grab(n)) for n, b in blocks]
    hooks.append(conv5.register_forward_pre_hook(grab("conv5")))
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in hooks:
            h.remove()

    class _Head(torch.nn.Module):
        def __init__(self, conv: Any, linear: Any) -> None:
            super().__init__()
            self.conv5 = conv
            self.fc = linear

        def forward(self, x: Any) -> Any:
            return self.fc(self.conv5(x).mean([2, 3]))

    class _Proxy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.branches = torch.nn.ModuleList([b.branch2 for _, b in blocks])
            self.head = _Head(conv5, fc)

        def forward(self, xs: list[Any]) -> list[Any]:
            outs = [branch(x) for branch, x in zip(self.branches, xs[:-1])]
            outs.append(self.head(xs[-1]))
            return outs

    proxy = _Proxy()
    inputs = [captured[n] for n, _ in blocks] + [captured["conv5"]]
    # the last 1x1 conv of each branch2 feeds the concat + shuffle: its outputs stay
    ignored = [b.branch2[5] for _, b in blocks] + [fc]
    with quiet_torch_pruning():
        pruner = make_pruner(proxy, (inputs,), ratio=ratio, round_to=round_to, global_pruning=global_pruning,
                             ignored=ignored)
        pruner.step()
    kept = [
        "fc (classifier outputs)",
        "conv1 (stem)",
        "every block's input/output width (branch1, branch2's last 1x1 outputs, the identity half): "
        "the channel shuffle sees the same channels",
    ]
    notes = [
        "ShuffleNetV2's channel shuffle is not traceable by Torch-Pruning; pruned through a proxy of the "
        f"{len(blocks)} blocks' branch2-internal layers and conv5 (see edgekit.optimize.prune.shufflenet)",
    ]
    return "torch-pruning on a proxy of the branch-internal layers (shufflenet)", kept, notes
