"""The training and held-out splits of a fine-tuning run, cached in memory.

* ``embedded`` (the default): the embedded dataset's own deterministic
  train / held-out split (see :mod:`edgekit.data.embedded`); the held-out
  split is never trained on and ``--val-split`` does not apply.
* A folder (ImageFolder) or an ``.npz``: every image is decoded once at the
  training size; exact duplicates (identical pixels after resizing) are
  grouped so that a group never straddles the split; then a stratified,
  seeded ``--val-split`` fraction of each class is held out (the embedded
  split's rule, keys ``blake2b(seed:group)``, independent of numpy's RNG).

``--train-limit N`` trains on a stratified seeded subset of N training
images (quick trials, tests); the held-out split stays whole.

The record of the split (:attr:`DataSplit.info`) goes into the artifact's
manifest: classes, sizes, the held-out ids (or, for the embedded set, their
sha256 and how to get them) and a fingerprint, sha256 of the class names and
every sample's id and label.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.core.errors import DataError, UsageError
from edgekit.core.specs import PreprocessSpec
from edgekit.data import EMBEDDED, load_dataset
from edgekit.data.embedded import EMBEDDED_NAME, HELDOUT_FRACTION, SPLIT_SEED, load_embedded, split_indices
from edgekit.data.sampling import calibration_indices
from edgekit.optimize.train.batches import ImageCache, Tick, build_cache, duplicate_groups

log = logging.getLogger(__name__)

#: held-out ids are listed in the manifest up to this many (always hashed)
MAX_LISTED_IDS = 10_000
DEFAULT_VAL_SPLIT = 0.2


@dataclass(frozen=True, eq=False)
class DataSplit:
    train: ImageCache
    heldout: ImageCache
    info: dict[str, Any]


def is_embedded(data: str | Path | None) -> bool:
    return data is None or (isinstance(data, str) and (data == EMBEDDED or data.startswith(EMBEDDED + ":")))


def check_val_split(val_split: float | None) -> None:
    if val_split is not None and not (0.0 < float(val_split) < 1.0):
        raise UsageError(f"--val-split must be strictly between 0 and 1, got {val_split}",
                         hint="e.g. --val-split 0.2 holds out 20% of each class")


def _ids_sha256(ids: tuple[str, ...]) -> str:
    return hashlib.sha256("\n".join(ids).encode("utf-8")).hexdigest()


def fingerprint(classes: tuple[str, ...], train: ImageCache, heldout: ImageCache) -> str:
    """sha256 of the class names and every sample's split, id and label."""
    h = hashlib.sha256()
    h.update(("\n".join(classes) + "\n--\n").encode("utf-8"))
    for split, cache in (("train", train), ("heldout", heldout)):
        for i, lab in zip(cache.ids, cache.labels.tolist()):
            h.update(f"{split}\t{i}\t{lab}\n".encode())
    return h.hexdigest()


def _limit(cache: ImageCache, limit: int | None, seed: int) -> ImageCache:
    if limit is None or limit >= len(cache):
        return cache
    return cache.subset(np.sort(calibration_indices(cache.labels, limit, seed=seed)))


def prepare(
    data: str | Path | None,
    spec: PreprocessSpec,
    *,
    val_split: float | None = None,
    seed: int = 0,
    train_limit: int | None = None,
    tick: Tick | None = None,
) -> DataSplit:
    """Load, split and cache ``data`` at ``spec``'s size."""
    check_val_split(val_split)
    if train_limit is not None and train_limit < 2:
        raise UsageError(f"--train-limit must be at least 2, got {train_limit}")
    if is_embedded(data):
        if isinstance(data, str) and data != EMBEDDED:
            raise UsageError(
                f"--data {data!r}: fine-tuning uses the embedded train split and holds out its held-out split",
                hint="pass --data embedded",
            )
        return _prepare_embedded(spec, val_split=val_split, seed=seed, train_limit=train_limit, tick=tick)
    return _prepare_split(data, spec, val_split=val_split, seed=seed, train_limit=train_limit, tick=tick)


def _prepare_embedded(
    spec: PreprocessSpec, *, val_split: float | None, seed: int, train_limit: int | None, tick: Tick | None
) -> DataSplit:
    if val_split is not None:
        log.warning("--val-split %s is ignored: the embedded dataset has its own held-out split", val_split)
    tr_ds = load_embedded(split="train")
    he_ds = load_embedded(split="heldout")
    rows = np.arange(len(tr_ds))
    if train_limit is not None and train_limit < len(tr_ds):
        rows = np.sort(calibration_indices(tr_ds.labels, train_limit, seed=seed))
    n_total = len(rows) + len(he_ds)

    def tick_tr(k: int, n: int) -> None:
        if tick:
            tick(k, n_total)

    def tick_he(k: int, n: int) -> None:
        if tick:
            tick(len(rows) + k, n_total)

    train = build_cache(tr_ds, rows, spec, tick=tick_tr)
    heldout = build_cache(he_ds, np.arange(len(he_ds)), spec, tick=tick_he)
    if set(train.ids) & set(heldout.ids):  # pragma: no cover - the split is disjoint by construction
        raise DataError("the embedded train and held-out splits overlap; reinstall edgekit")
    info = {
        "name": EMBEDDED_NAME,
        "source": f"{EMBEDDED}:{EMBEDDED_NAME}",
        "classes": list(train.classes),
        "n_train": len(train),
        "n_heldout": len(heldout),
        "train_limit": train_limit,
        "split": {
            "kind": "embedded",
            "heldout_fraction": HELDOUT_FRACTION,
            "split_seed": SPLIT_SEED,
            "duplicates": "near-duplicate groups kept on one side (see the dataset README)",
        },
        "heldout_ids_sha256": _ids_sha256(heldout.ids),
        "heldout_from": (
            f"edgekit.data.load_embedded(split='heldout', heldout_fraction={HELDOUT_FRACTION}, seed={SPLIT_SEED}).ids"
        ),
        "fingerprint": fingerprint(train.classes, train, heldout),
        "content_sha256": _content(train, heldout),
        "skipped": 0,
    }
    return DataSplit(train, heldout, info)


def _content(train: ImageCache, heldout: ImageCache) -> str:
    return hashlib.sha256((train.content_sha256() + heldout.content_sha256()).encode()).hexdigest()


def _prepare_split(
    data: str | Path | None,
    spec: PreprocessSpec,
    *,
    val_split: float | None,
    seed: int,
    train_limit: int | None,
    tick: Tick | None,
) -> DataSplit:
    fraction = DEFAULT_VAL_SPLIT if val_split is None else float(val_split)
    ds = load_dataset(data)
    if len(ds) < 2:
        raise DataError(f"{ds.name} holds {len(ds)} image(s); fine-tuning needs several per class")
    cache = build_cache(ds, np.arange(len(ds)), spec, tick=tick)
    groups = duplicate_groups(cache)
    n_dups = int(len(cache) - np.unique(groups).size)
    tr_pos, he_pos = split_indices(cache.labels, groups, heldout_fraction=fraction, seed=seed)
    if he_pos.size == 0:
        raise DataError(
            f"--val-split {fraction} holds out no image of {ds.name} ({len(cache)} images)",
            hint="raise --val-split or add images",
        )
    classes = tuple(ds.classes)
    no_train = [classes[c] for c in range(len(classes)) if not np.any(cache.labels[tr_pos] == c)]
    if no_train:
        raise DataError(
            f"class(es) without training images after the split: {', '.join(no_train[:8])}",
            hint="add images to them or lower --val-split",
        )
    no_held = [classes[c] for c in range(len(classes)) if not np.any(cache.labels[he_pos] == c)]
    if no_held:
        log.warning("class(es) without held-out images: %s (too few images)", ", ".join(no_held[:8]))
    train = _limit(cache.subset(tr_pos), train_limit, seed)
    heldout = cache.subset(he_pos)
    src = Path(data) if data is not None else None
    info: dict[str, Any] = {
        "name": ds.name,
        "source": str(src.resolve()) if src is not None else None,
        "classes": list(classes),
        "n_train": len(train),
        "n_heldout": len(heldout),
        "train_limit": train_limit,
        "split": {
            "kind": "stratified",
            "val_split": fraction,
            "seed": seed,
            "duplicates": f"exact duplicates kept on one side ({n_dups} duplicate images found)",
        },
        "heldout_ids_sha256": _ids_sha256(heldout.ids),
        "fingerprint": fingerprint(classes, train, heldout),
        "content_sha256": _content(train, heldout),
        "skipped": len(cache.skipped),
    }
    if len(heldout) <= MAX_LISTED_IDS:
        info["heldout_ids"] = list(heldout.ids)
    return DataSplit(train, heldout, info)
