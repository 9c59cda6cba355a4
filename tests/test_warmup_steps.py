"""The learning-rate warm-up is counted in optimizer steps: a small dataset's few-step epoch no longer gives a
few-step warm-up, and where the epoch-counted warm-up already spans enough steps (the embedded default that
produced ci/baseline.json) the schedule is unchanged, step for step."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from edgekit.core.errors import UsageError
from edgekit.optimize.train.loop import MIN_WARMUP_STEPS, TrainConfig, lr_factor, warmup_steps


def schedule(cfg: TrainConfig, steps_per_epoch: int, warmup: int) -> list[float]:
    total = steps_per_epoch * cfg.epochs
    return [lr_factor(s, total=total, warmup=warmup, min_ratio=cfg.min_lr_ratio) for s in range(total)]


def epoch_counted(cfg: TrainConfig, steps_per_epoch: int) -> int:
    """The warm-up before steps counted: ``warmup_epochs`` of an epoch's steps."""
    return int(round(cfg.warmup_epochs * steps_per_epoch))


def test_the_embedded_default_schedule_is_unchanged():
    """The pipeline that made ci/baseline.json trains on the embedded train split: same warm-up, same LR at
    every step as the epoch-counted rule."""
    from edgekit.data import load_embedded
    from edgekit.pipeline.config import load_pipeline
    from edgekit.pipeline.kinds import KINDS, StepInput, make_options

    (model,) = load_pipeline(None).models
    opts = make_options(KINDS["finetune"], StepInput(model=model.name, weights=model.weights,
                                                     params=model.finetune or {}, data="embedded", seed=0,
                                                     output=Path("unused")))
    assert opts.train_limit is None  # the whole train split
    cfg = opts.train_config()
    steps = len(load_embedded(split="train")) // opts.batch_size  # the train batches drop the last partial one
    old = epoch_counted(cfg, steps)
    assert old >= MIN_WARMUP_STEPS  # why nothing changes there
    assert warmup_steps(cfg, steps) == old
    assert schedule(cfg, steps, warmup_steps(cfg, steps)) == schedule(cfg, steps, old)


@pytest.mark.parametrize("epochs,steps", [(4, 109), (10, 30), (2, 500), (6, 20)])
def test_an_epoch_counted_warmup_of_enough_steps_is_kept(epochs, steps):
    cfg = TrainConfig(epochs=epochs, warmup_epochs=min(1.0, epochs / 5))
    if epoch_counted(cfg, steps) >= MIN_WARMUP_STEPS:
        assert warmup_steps(cfg, steps) == epoch_counted(cfg, steps)
    else:
        assert warmup_steps(cfg, steps) == min(MIN_WARMUP_STEPS, epochs * steps // 2)


def test_a_small_dataset_warms_up_over_more_steps_than_an_epoch():
    """200 images at batch 64: 3 steps an epoch; 6 epochs are 18 steps. Counted in epochs the LR hit its peak
    at step 3 (the loss rose in epoch 2); now it climbs over half the run, then decays."""
    cfg = TrainConfig(epochs=6, warmup_epochs=1.0)
    w = warmup_steps(cfg, 3)
    assert epoch_counted(cfg, 3) == 3 and w == min(MIN_WARMUP_STEPS, 9) > 3
    lrs = schedule(cfg, 3, w)
    assert all(a < b for a, b in zip(lrs[:w], lrs[1:w])) and lrs[w - 1] == 1.0
    assert all(a >= b for a, b in zip(lrs[w - 1:], lrs[w:]))
    assert math.isclose(lrs[0], 1 / w)


def test_no_warmup_stays_none_and_the_floor_can_be_turned_off():
    assert warmup_steps(TrainConfig(epochs=6, warmup_epochs=0.0), 3) == 0
    assert warmup_steps(TrainConfig(epochs=6, warmup_epochs=1.0, min_warmup_steps=0), 3) == 3


@pytest.mark.parametrize("bad", [-1, 2.5, True])
def test_min_warmup_steps_is_checked(bad):
    with pytest.raises(UsageError, match="min_warmup_steps"):
        TrainConfig(min_warmup_steps=bad).validate()
