"""Knowledge distillation and the training loop shared by fine-tuning and pruning recovery.

:func:`train` trains a student on :class:`~edgekit.optimize.train.batches.Loaders`,
optionally against a teacher's logits with :func:`kd_loss` (Hinton et al.,
2015)::

    loss = alpha * CE(student, labels) + (1 - alpha) * T^2 * KL(softmax(teacher/T) || softmax(student/T))

Without a teacher the loss is the (label-smoothed) cross-entropy alone:
fine-tuning. After pruning, ``train(pruned, loaders, teacher=original)``
recovers accuracy from the unpruned model's soft targets.

The loop trains the parameters that have ``requires_grad`` (freeze by
turning it off), keeps BatchNorm of frozen parts in eval mode, evaluates on
the held-out split after every epoch and, with ``select="best"``, leaves the
student holding the weights of its best held-out epoch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from edgekit.core.errors import UsageError
from edgekit.core.lazy import require
from edgekit.optimize.train.batches import Loaders
from edgekit.optimize.train.loop import (
    EpochRecord,
    TrainConfig,
    TrainProgress,
    TrainRecord,
    as_progress,
    evaluate,
    lr_factor,
    make_optimizer,
    param_counts,
    set_train_mode,
    warmup_steps,
)

log = logging.getLogger(__name__)

#: a teacher: a torch module or any callable from an input tensor to logits
Teacher = Callable[[Any], Any]


def kd_loss(
    student_logits: Any,
    targets: Any,
    teacher_logits: Any | None = None,
    *,
    alpha: float = 0.5,
    temperature: float = 4.0,
    label_smoothing: float = 0.0,
) -> Any:
    """``alpha * CE + (1 - alpha) * T^2 * KL(teacher/T || student/T)``; plain CE without a teacher.

    The KL term is averaged over the batch (``batchmean``) and scaled by
    ``T^2`` so its gradients keep their size as ``T`` changes.
    """
    torch = require("torch")
    f = torch.nn.functional
    ce = f.cross_entropy(student_logits, targets, label_smoothing=label_smoothing)
    if teacher_logits is None:
        return ce
    if not (0.0 <= alpha <= 1.0) or temperature <= 0:
        raise UsageError(f"kd_loss needs alpha in [0, 1] and temperature > 0, got {alpha}, {temperature}")
    if tuple(teacher_logits.shape) != tuple(student_logits.shape):
        raise UsageError(
            f"teacher logits {tuple(teacher_logits.shape)} do not match the student's {tuple(student_logits.shape)}"
        )
    t = float(temperature)
    kl = f.kl_div(
        f.log_softmax(student_logits / t, dim=1),
        f.log_softmax(teacher_logits.detach() / t, dim=1),
        reduction="batchmean",
        log_target=True,
    )
    return alpha * ce + (1.0 - alpha) * (t * t) * kl


def train(
    student: Any,
    loaders: Loaders,
    teacher: Teacher | None = None,
    *,
    config: TrainConfig | None = None,
    progress: TrainProgress | Callable[[str], None] | None = None,
) -> TrainRecord:
    """Train ``student`` in place; returns the per-epoch record.

    Seeding, thread count and deterministic kernels are the caller's (see
    :func:`edgekit.optimize.train.loop.deterministic`); batches are a pure
    function of the loaders' seed and the epoch. A torch-module teacher is
    put in eval mode and never updated.
    """
    torch = require("torch", purpose="training")
    cfg = config or TrainConfig()
    cfg.validate()
    bar = as_progress(progress)
    if teacher is not None and isinstance(teacher, torch.nn.Module):
        teacher.eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    student.to(memory_format=fmt)
    if teacher is not None and isinstance(teacher, torch.nn.Module):
        teacher.to(memory_format=fmt)
    opt = make_optimizer(student.parameters(), cfg)
    steps = len(loaders.train)
    total = steps * cfg.epochs
    warmup = warmup_steps(cfg, steps)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, total=total, warmup=warmup, min_ratio=cfg.min_lr_ratio)
    )
    trainable = [p for p in student.parameters() if p.requires_grad]
    n_trainable, n_total = param_counts(student)
    history: list[EpochRecord] = []
    best_top1 = -1.0
    best_state: dict[str, Any] | None = None
    best_epoch = 0
    t_start, c_start = time.perf_counter_ns(), time.process_time_ns()
    for epoch in range(1, cfg.epochs + 1):
        t0, c0 = time.perf_counter_ns(), time.process_time_ns()
        bar.epoch_start(epoch, cfg.epochs, steps)
        set_train_mode(student)
        lr_at_start = float(opt.param_groups[0]["lr"])
        loss_sum, correct, seen = 0.0, 0, 0
        for x_np, y_np in loaders.train.epoch(epoch):
            x = torch.from_numpy(x_np).contiguous(memory_format=fmt)
            y = torch.from_numpy(y_np)
            t_logits = None
            if teacher is not None:
                with torch.no_grad():
                    t_logits = teacher(x)
            logits = student(x)
            loss = kd_loss(
                logits, y, t_logits,
                alpha=cfg.kd_alpha, temperature=cfg.kd_temperature, label_smoothing=cfg.label_smoothing,
            )
            if not torch.isfinite(loss):
                raise UsageError(
                    f"training diverged at epoch {epoch}: the loss is {float(loss)}",
                    hint="lower --lr",
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(trainable, cfg.grad_clip)
            opt.step()
            sched.step()
            b = int(y.shape[0])
            loss_sum += float(loss.detach()) * b
            correct += int((logits.detach().argmax(1) == y).sum())
            seen += b
            bar.step(float(loss.detach()))
        h_loss, h_top1, n_held = evaluate(student, loaders.heldout)
        rec = EpochRecord(
            epoch=epoch,
            lr=lr_at_start,
            train_loss=loss_sum / max(seen, 1),
            train_top1=correct / max(seen, 1),
            heldout_loss=h_loss,
            heldout_top1=h_top1,
            seconds=(time.perf_counter_ns() - t0) / 1e9,
            cpu_seconds=(time.process_time_ns() - c0) / 1e9,
        )
        history.append(rec)
        bar.epoch_end(rec)
        if cfg.select == "last" or h_top1 > best_top1:
            best_top1, best_epoch = h_top1, epoch
            if cfg.select == "best" and epoch < cfg.epochs:
                best_state = {k: v.detach().clone() for k, v in student.state_dict().items()}
            else:
                best_state = None  # the current weights are the ones to keep
    if best_state is not None:
        student.load_state_dict(best_state)
    student.to(memory_format=torch.contiguous_format)
    if teacher is not None and isinstance(teacher, torch.nn.Module):
        teacher.to(memory_format=torch.contiguous_format)
    student.eval()
    return TrainRecord(
        epochs=tuple(history),
        selected_epoch=best_epoch,
        select=cfg.select,
        n_train=len(loaders.train.cache),
        n_heldout=n_held,
        steps_per_epoch=steps,
        batch_size=loaders.train.batch_size,
        trainable_params=n_trainable,
        total_params=n_total,
        threads=int(torch.get_num_threads()),
        teacher=teacher is not None,
        seconds=(time.perf_counter_ns() - t_start) / 1e9,
        cpu_seconds=(time.process_time_ns() - c_start) / 1e9,
    )
