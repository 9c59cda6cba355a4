"""The Torch-Pruning driver edgekit uses: its channel rounding and its quiet mode.

Torch-Pruning (``BasePruner``) rounds the channels a layer keeps *down* to a multiple of ``round_to``
with no floor. edgekit rounds to the *nearest* multiple, keeps at least ``round_to`` channels, and under
global ranking keeps at least ``1 - GLOBAL_MAX_LAYER_RATIO`` of each layer (:func:`rounded_prune_count`).
Torch-Pruning 1.6 has no public hook for this (``round_to`` and ``pruning_ratio_dict`` fix counts before
ranking), so :func:`make_pruner` overrides the private ``BasePruner._round_to(n_pruned, current_channels,
round_to)``. The dependency is pinned below 1.7 in ``pyproject.toml``, and ``tests/test_prune.py`` checks the
method still exists with that signature, is called by ``_prune``, and that our rounding is what a real
pruning run applies: an upgrade that renames it fails the tests, not silently the channel counts.
"""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from collections.abc import Iterator
from typing import Any

from edgekit.core.lazy import require

log = logging.getLogger(__name__)

#: with global ranking, a layer keeps at least this fraction of its channels
GLOBAL_MAX_LAYER_RATIO = 0.9


def rounded_prune_count(current: int, n_pruned: int, round_to: int, *, min_keep_ratio: float = 0.0) -> int:
    """How many of ``current`` channels to remove when ranking asked for ``n_pruned``.

    The channels kept are rounded to the nearest multiple of ``round_to``
    (halves round up: keep more), never fewer than ``round_to`` and never
    fewer than ``ceil(current * min_keep_ratio)`` rounded up to ``round_to``.
    A layer of at most ``round_to`` channels is not pruned.
    """
    r = max(1, int(round_to))
    if current <= r or n_pruned <= 0:
        return 0
    keep = current - int(n_pruned)
    keep = int(math.floor(keep / r + 0.5)) * r
    floor_keep = int(math.ceil(current * min_keep_ratio / r)) * r if min_keep_ratio > 0 else 0
    keep = max(keep, r, floor_keep)
    if keep > current:
        keep = (current // r) * r
    return max(0, current - keep)


@contextlib.contextmanager
def quiet_torch_pruning() -> Iterator[None]:
    """Torch-Pruning warns about every unknown op; keep those in the debug log."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        log.debug("torch-pruning: %s", str(w.message)[:300])


def make_pruner(
    model: Any,
    example_inputs: Any,
    *,
    ratio: float,
    round_to: int,
    global_pruning: bool,
    ignored: list[Any],
) -> Any:
    """A Torch-Pruning ``BasePruner`` whose channel rounding is :func:`rounded_prune_count`."""
    tp = require("torch_pruning", purpose="structured pruning")
    min_keep = 1.0 - GLOBAL_MAX_LAYER_RATIO if global_pruning else 0.0

    class _RoundedPruner(tp.pruner.BasePruner):  # type: ignore[misc, name-defined]
        def _round_to(self, n_pruned: int, current_channels: int, round_to: int) -> int:
            return rounded_prune_count(current_channels, n_pruned, round_to, min_keep_ratio=min_keep)

    return _RoundedPruner(
        model,
        example_inputs,
        importance=tp.importance.GroupMagnitudeImportance(p=2),
        global_pruning=global_pruning,
        pruning_ratio=ratio,
        round_to=int(round_to),
        ignored_layers=ignored,
    )
