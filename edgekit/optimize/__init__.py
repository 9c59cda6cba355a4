"""Make models smaller, faster or fitted to the user's data.

``edgekit.optimize.finetune`` (transfer learning), ``edgekit.optimize.distill``
(the shared training loop and the knowledge-distillation loss). The names
below import lazily: importing this package does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "FinetuneOptions": "edgekit.optimize.finetune",
    "FinetuneResult": "edgekit.optimize.finetune",
    "finetune": "edgekit.optimize.finetune",
    "load_finetuned": "edgekit.optimize.finetune",
    "kd_loss": "edgekit.optimize.distill",
    "train": "edgekit.optimize.distill",
    "TrainConfig": "edgekit.optimize.train_loop",
    "TrainRecord": "edgekit.optimize.train_loop",
    "EpochRecord": "edgekit.optimize.train_loop",
    "TrainProgress": "edgekit.optimize.train_loop",
    "deterministic": "edgekit.optimize.train_loop",
    "AugmentConfig": "edgekit.optimize.augment",
    "ImageCache": "edgekit.optimize.batches",
    "Loaders": "edgekit.optimize.batches",
    "build_cache": "edgekit.optimize.batches",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'edgekit.optimize' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
