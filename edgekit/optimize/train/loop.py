"""Pieces of the training loop: config, records, progress, determinism, evaluation.

The loop itself is :func:`edgekit.optimize.train.distill.train` (fine-tuning is
distillation without a teacher). torch is imported inside the functions
that need it, so the records and the config read back without torch.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from edgekit.core.errors import UsageError
from edgekit.core.lazy import require

log = logging.getLogger(__name__)

OPTIMIZERS = ("adamw", "sgd")
SELECT = ("best", "last")
#: the shortest warm-up in optimizer steps (capped at half the run): an epoch of a small dataset is a
#: handful of steps, too few to reach the peak rate gently. Measured (mobilenetv3_small_100 from scratch, 48 px,
#: 6 epochs, batch 64, seeds 0-2): 200 images (3 steps an epoch, warm-up 3 -> 9 steps): the epoch-mean loss
#: peaked at 7.3 / 7.8 / 4.3 (seed 1 ended at chance) -> 3.6 / 2.6 / 3.3, validation top-1 16.7 / 10.0 / 12.4 %
#: -> 17.8 / 13.8 / 13.5 %. A floor of 20 also lengthened 1000 images' warm-up (15 -> 20 steps) and cost
#: 1.8-4.4 points on all three seeds; at 10, an epoch of 10 steps or more (640 images at batch 64) is unchanged.
MIN_WARMUP_STEPS = 10


@dataclass(frozen=True)
class TrainConfig:
    """How to train. ``kd_*`` apply only when a teacher is given.

    The learning rate warms up linearly for ``warmup_epochs`` (fractions
    allowed) but at least ``min_warmup_steps`` optimizer steps (see
    :func:`warmup_steps`), then follows a cosine to ``lr * min_lr_ratio``. ``select``
    keeps the epoch with the best validation top-1 (``best``, ties go to the
    earlier epoch) or the last one.
    """

    epochs: int = 10
    lr: float = 2e-3
    weight_decay: float = 0.05
    optimizer: str = "adamw"
    momentum: float = 0.9
    warmup_epochs: float = 1.0
    min_warmup_steps: int = MIN_WARMUP_STEPS
    min_lr_ratio: float = 0.01
    label_smoothing: float = 0.1
    grad_clip: float | None = 5.0
    kd_alpha: float = 0.5
    kd_temperature: float = 4.0
    select: str = "best"
    #: train in channels-last memory format (about 2x faster for depthwise CNNs on CPU)
    channels_last: bool = True

    def validate(self) -> None:
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise UsageError(f"--epochs must be a positive integer, got {self.epochs!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise UsageError(f"--lr must be a positive number, got {self.lr}")
        if not (self.weight_decay >= 0):
            raise UsageError(f"weight decay must be >= 0, got {self.weight_decay}")
        if self.optimizer not in OPTIMIZERS:
            raise UsageError(f"unknown optimizer {self.optimizer!r}", hint=f"use one of: {', '.join(OPTIMIZERS)}")
        if not (0.0 <= self.label_smoothing < 1.0):
            raise UsageError(f"label smoothing must be in [0, 1), got {self.label_smoothing}")
        if not (0.0 <= self.kd_alpha <= 1.0):
            raise UsageError(f"kd_alpha must be in [0, 1], got {self.kd_alpha}")
        if not (self.kd_temperature > 0):
            raise UsageError(f"kd_temperature must be positive, got {self.kd_temperature}")
        if self.warmup_epochs < 0 or not (0.0 <= self.min_lr_ratio <= 1.0):
            raise UsageError("warmup_epochs must be >= 0 and min_lr_ratio in [0, 1]")
        if isinstance(self.min_warmup_steps, bool) or not isinstance(self.min_warmup_steps, int) \
                or self.min_warmup_steps < 0:
            raise UsageError(f"min_warmup_steps must be an integer >= 0, got {self.min_warmup_steps!r}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise UsageError(f"grad_clip must be positive or None, got {self.grad_clip}")
        if self.select not in SELECT:
            raise UsageError(f"unknown selection {self.select!r}", hint=f"use one of: {', '.join(SELECT)}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class EpochRecord:
    """One epoch: mean training loss and top-1 (on augmented batches), held-out loss and top-1.

    ``seconds`` is wall time, ``cpu_seconds`` the process's CPU time (all
    threads): on a shared machine the second is the steadier measure of cost.
    """

    epoch: int
    lr: float
    train_loss: float
    train_top1: float
    heldout_loss: float
    heldout_top1: float
    seconds: float
    cpu_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> EpochRecord:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass(frozen=True)
class TrainRecord:
    """The history of one training run and which epoch's weights were kept."""

    epochs: tuple[EpochRecord, ...]
    selected_epoch: int
    select: str
    n_train: int
    n_heldout: int
    steps_per_epoch: int
    batch_size: int
    trainable_params: int
    total_params: int
    threads: int
    teacher: bool
    seconds: float
    cpu_seconds: float = 0.0

    @property
    def selected(self) -> EpochRecord:
        return next(e for e in self.epochs if e.epoch == self.selected_epoch)

    @property
    def heldout_top1(self) -> float:
        return self.selected.heldout_top1

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["epochs"] = [e.to_json() for e in self.epochs]
        d["heldout_top1"] = self.heldout_top1
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TrainRecord:
        fields = {k: d[k] for k in cls.__dataclass_fields__ if k != "epochs" and k in d}
        return cls(epochs=tuple(EpochRecord.from_json(e) for e in d["epochs"]), **fields)


@runtime_checkable
class TrainProgress(Protocol):
    """Receives training progress; the CLI draws rich bars, the library logs."""

    def message(self, text: str) -> None: ...

    def epoch_start(self, epoch: int, epochs: int, steps: int) -> None: ...

    def step(self, loss: float) -> None: ...

    def epoch_end(self, record: EpochRecord) -> None: ...


class LogProgress:
    """Progress as log lines (INFO), one per epoch."""

    def __init__(self, say: Callable[[str], None] | None = None) -> None:
        self._say = say or log.info
        self._epochs = 0

    def message(self, text: str) -> None:
        self._say(text)

    def epoch_start(self, epoch: int, epochs: int, steps: int) -> None:
        self._epochs = epochs

    def step(self, loss: float) -> None:
        pass

    def epoch_end(self, r: EpochRecord) -> None:
        self._say(
            f"epoch {r.epoch}/{self._epochs}: loss {r.train_loss:.4f}, train top-1 {r.train_top1:.2%}, "
            f"validation top-1 {r.heldout_top1:.2%} ({r.seconds:.1f} s, {r.cpu_seconds:.1f} CPU-s)"
        )


def as_progress(progress: TrainProgress | Callable[[str], None] | None) -> TrainProgress:
    """A :class:`TrainProgress` from one, from a ``say(str)`` callback, or from None (logging)."""
    if progress is None:
        return LogProgress()
    if isinstance(progress, TrainProgress):
        return progress
    if callable(progress):
        return LogProgress(progress)
    raise UsageError(f"progress must be a TrainProgress or a callable, got {type(progress).__name__}")


@contextlib.contextmanager
def deterministic(seed: int, threads: int | None = None) -> Iterator[int]:
    """Seed torch, use deterministic kernels and ``threads`` intra-op threads; restore on exit.

    Yields the thread count in effect. CPU results are reproducible for a
    given seed and thread count.
    """
    torch = require("torch", purpose="training")
    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be >= 1, got {threads}")
    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    old_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        if threads is not None:
            torch.set_num_threads(int(threads))
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.manual_seed(int(seed))
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det, warn_only=old_warn)


def frozen_batchnorms(model: Any) -> list[Any]:
    """BatchNorm modules whose affine parameters are all frozen: they must stay in eval mode."""
    torch = require("torch")
    out = []
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            params = list(m.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                out.append(m)
    return out


def set_train_mode(model: Any) -> None:
    """``model.train()``, except BatchNorm of frozen parts, whose running statistics stay put."""
    model.train()
    for m in frozen_batchnorms(model):
        m.eval()


def make_optimizer(params: Iterable[Any], config: TrainConfig) -> Any:
    """AdamW or SGD; biases and norm weights (1-D tensors) get no weight decay."""
    torch = require("torch")
    decay, no_decay = [], []
    for p in params:
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    if not decay and not no_decay:
        raise UsageError("nothing to train: every parameter is frozen")
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=True)
    return torch.optim.AdamW(groups, lr=config.lr)


def warmup_steps(config: TrainConfig, steps_per_epoch: int) -> int:
    """The warm-up in optimizer steps: ``warmup_epochs`` worth of them, but at least ``min_warmup_steps``
    (at most half of the run's steps); none when ``warmup_epochs`` is 0.

    Where an epoch-counted warm-up already spans ``min_warmup_steps`` (the embedded default: 0.8 of an epoch
    of 109 steps = 87), the schedule is the epoch-counted one, step for step.
    """
    if config.warmup_epochs == 0:
        return 0
    by_epochs = int(round(config.warmup_epochs * steps_per_epoch))
    return max(by_epochs, min(config.min_warmup_steps, steps_per_epoch * config.epochs // 2))


def lr_factor(step: int, *, total: int, warmup: int, min_ratio: float) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine from 1 to ``min_ratio`` at ``total``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    span = max(1, total - warmup)
    t = min(1.0, (step - warmup) / span)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))


def evaluate(model: Any, batches: Iterable[tuple[np.ndarray, np.ndarray]]) -> tuple[float, float, int]:
    """(mean cross-entropy, top-1, n) of ``model`` in eval mode; the mode is restored."""
    torch = require("torch")
    was_training = model.training
    model.eval()
    loss_sum, correct, n = 0.0, 0, 0
    try:
        with torch.no_grad():
            for x, y in batches:
                logits = model(torch.from_numpy(x))
                t = torch.from_numpy(y)
                loss_sum += float(torch.nn.functional.cross_entropy(logits, t, reduction="sum"))
                correct += int((logits.argmax(1) == t).sum())
                n += int(t.shape[0])
    finally:
        model.train(was_training)
    if n == 0:
        return float("nan"), float("nan"), 0
    return loss_sum / n, correct / n, n


def param_counts(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = trainable = 0
    for p in model.parameters():
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
    return int(trainable), int(total)
