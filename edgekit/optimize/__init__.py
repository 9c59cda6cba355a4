"""Make models smaller, faster or fitted to the user's data, in three wings.

``edgekit.optimize.quant`` (INT8 / FP16 quantization), ``edgekit.optimize.prune`` (structured
pruning), ``edgekit.optimize.train`` (fine-tuning and the shared training loop). The names below
import lazily: importing this package does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "QuantizeOptions": "edgekit.optimize.quant.quantize",
    "QuantizeResult": "edgekit.optimize.quant.quantize",
    "quantize": "edgekit.optimize.quant.quantize",
    "PruneOptions": "edgekit.optimize.prune.prune",
    "PruneResult": "edgekit.optimize.prune.prune",
    "FinetuneOptions": "edgekit.optimize.train.finetune",
    "FinetuneResult": "edgekit.optimize.train.finetune",
    "finetune": "edgekit.optimize.train.finetune",
    "load_finetuned": "edgekit.optimize.train.finetune",
    "kd_loss": "edgekit.optimize.train.distill",
    "train": "edgekit.optimize.train.distill",
    "TrainConfig": "edgekit.optimize.train.loop",
    "TrainRecord": "edgekit.optimize.train.loop",
    "EpochRecord": "edgekit.optimize.train.loop",
    "TrainProgress": "edgekit.optimize.train.loop",
    "deterministic": "edgekit.optimize.train.loop",
    "AugmentConfig": "edgekit.optimize.train.augment",
    "ImageCache": "edgekit.optimize.train.batches",
    "Loaders": "edgekit.optimize.train.batches",
    "build_cache": "edgekit.optimize.train.batches",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'edgekit.optimize' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
