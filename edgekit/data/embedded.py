"""The embedded default dataset: 10,000 real 28x28 animal silhouettes.

``animals.npz`` ships inside the package (see ``embedded/README.md`` for its
source, licence and duplicate analysis): 10 classes x 1,000 greyscale images
from the MIT-licensed ``animal-mnist`` 0.4. It is read with
``allow_pickle=False``.

The held-out split is deterministic and independent of numpy's random
streams: every duplicate group (exact copies and near-copies, computed at
build time and stored as ``group``) gets a key ``blake2b(seed:group)``; in
each class the groups are taken in key order into the held-out side until it
holds ``round(heldout_fraction * class size)`` images (a group that would
overshoot is passed over). A group never straddles the split, so held-out
accuracy is not inflated by copies of training images.

Three splits (the same rule twice, with independent keys): **test** (20 %,
everything that is *reported*; ``heldout`` is its older name and yields the
same images), then, out of the rest, **validation** (10 % of the whole:
everything that *selects*: the best epoch, accuracy control's fallbacks,
pruning recovery, presets) and **train** (70 %). No image and no duplicate
group is on two sides.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from pathlib import Path

import numpy as np
from PIL import Image

from edgekit.core.atomic import staged_dir
from edgekit.core.errors import DataError, UsageError
from edgekit.data.dataset import ArrayDataset
from edgekit.data.sampling import per_class_indices

log = logging.getLogger(__name__)

EMBEDDED_NAME = "animals"
EMBEDDED_DIR = Path(__file__).resolve().parent / "embedded"
EMBEDDED_FILE = EMBEDDED_DIR / f"{EMBEDDED_NAME}.npz"
SPLITS = ("all", "train", "validation", "test", "heldout")
#: the splits that choose something (never reported as a result) and the one that reports
SELECTION_SPLITS = ("train", "validation")
HELDOUT_FRACTION = 0.2  # the test split
VALIDATION_FRACTION = 0.1  # of the whole dataset, taken out of the non-test part
SPLIT_SEED = 0
#: salt of the validation keys (independent of the test split's)
_VALIDATION_SALT = 7919


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


@functools.lru_cache(maxsize=1)
def _arrays() -> dict[str, np.ndarray]:
    if not EMBEDDED_FILE.is_file():
        raise DataError(
            f"the embedded dataset {EMBEDDED_FILE} is missing from this installation",
            hint="reinstall edgekit, or rebuild it with tools/make_embedded_dataset.py",
        )
    try:
        with np.load(EMBEDDED_FILE, allow_pickle=False) as z:
            out = {k: _readonly(np.array(z[k])) for k in ("images", "labels", "class_names", "group")}
    except (OSError, ValueError, KeyError, EOFError) as e:
        raise DataError(
            f"the embedded dataset {EMBEDDED_FILE} is unreadable: {type(e).__name__}: {e}",
            hint="reinstall edgekit, or rebuild it with tools/make_embedded_dataset.py",
        ) from None
    n = out["labels"].shape[0]
    if out["images"].shape[0] != n or out["group"].shape != (n,) or out["images"].dtype != np.uint8:
        raise DataError(f"the embedded dataset {EMBEDDED_FILE} is inconsistent", hint="reinstall edgekit")
    return out


def embedded_class_names() -> tuple[str, ...]:
    """The class names of the embedded dataset, in label order."""
    return tuple(str(c) for c in _arrays()["class_names"].tolist())


def _group_key(seed: int, group: int) -> bytes:
    return hashlib.blake2b(f"edgekit-split:{seed}:{group}".encode(), digest_size=8).digest()


def split_indices(
    labels: np.ndarray,
    groups: np.ndarray,
    *,
    heldout_fraction: float = HELDOUT_FRACTION,
    seed: int = SPLIT_SEED,
) -> tuple[np.ndarray, np.ndarray]:
    """(train, heldout) sorted index arrays; stratified, group-aware, deterministic.

    ``groups[i]`` names the duplicate group of sample ``i``; all members of a
    group land on the same side. A group counts toward the class of its
    first member.
    """
    if not 0.0 < heldout_fraction < 1.0:
        raise UsageError(f"heldout_fraction must be in (0, 1), got {heldout_fraction}")
    labels = np.asarray(labels)
    groups = np.asarray(groups)
    if labels.shape != groups.shape or labels.ndim != 1:
        raise UsageError(f"labels {labels.shape} and groups {groups.shape} must be 1-D of one length")
    gids, first, sizes = np.unique(groups, return_index=True, return_counts=True)
    gclass = labels[first]
    chosen: list[int] = []
    for c in np.unique(gclass):
        mine = np.nonzero(gclass == c)[0]
        target = int(np.floor(heldout_fraction * sizes[mine].sum() + 0.5))
        taken = 0
        for g in sorted(mine.tolist(), key=lambda g: (_group_key(seed, int(gids[g])), int(gids[g]))):
            if taken == target:
                break
            if taken + sizes[g] <= target:
                chosen.append(int(gids[g]))
                taken += int(sizes[g])
    held = np.isin(groups, np.array(chosen, dtype=groups.dtype))
    return np.nonzero(~held)[0].astype(np.int64), np.nonzero(held)[0].astype(np.int64)


def embedded_split_indices(
    split: str = "all", *, heldout_fraction: float = HELDOUT_FRACTION, seed: int = SPLIT_SEED
) -> np.ndarray:
    """Indices into the full embedded dataset for ``split`` (sorted)."""
    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r} of the embedded dataset", hint=f"use one of: {', '.join(SPLITS)}")
    a = _arrays()
    if split == "all":
        return np.arange(a["labels"].shape[0], dtype=np.int64)
    pool, test = split_indices(a["labels"], a["group"], heldout_fraction=heldout_fraction, seed=seed)
    if split in ("heldout", "test"):
        return test
    rel = VALIDATION_FRACTION / (1.0 - heldout_fraction)
    if not 0.0 < rel < 1.0:
        raise UsageError(f"heldout_fraction {heldout_fraction} leaves no room for a validation split")
    tr, va = split_indices(a["labels"][pool], a["group"][pool], heldout_fraction=rel, seed=seed + _VALIDATION_SALT)
    return pool[va] if split == "validation" else pool[tr]


def load_embedded(
    *, split: str = "all", heldout_fraction: float = HELDOUT_FRACTION, seed: int = SPLIT_SEED
) -> ArrayDataset:
    """The embedded dataset (or its ``train`` / ``validation`` / ``test`` split) as an ArrayDataset.

    ``ids`` of the result are indices into the full dataset, so samples keep
    their names (``animals#01234``) across splits.
    """
    idx = embedded_split_indices(split, heldout_fraction=heldout_fraction, seed=seed)
    a = _arrays()
    name = EMBEDDED_NAME if split == "all" else f"{EMBEDDED_NAME}:{split}"
    return ArrayDataset(
        images=a["images"][idx],
        labels=a["labels"][idx].astype(np.int64),
        class_names=embedded_class_names(),
        name=name,
        ids=idx,
    )


def materialize_imagefolder(
    dest: str | Path,
    *,
    split: str = "heldout",
    per_class: int | None = None,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write the embedded images as PNGs in an ImageFolder tree ``dest/<class>/<id>.png``.

    ``per_class`` keeps that many images per class (a seeded stratified pick).
    The tree is assembled in a staging directory and renamed into place, so
    ``dest`` is either complete or untouched; a non-empty ``dest`` is refused
    unless ``overwrite``. ``dest/README.md`` carries the source and licence.
    """
    ds = load_embedded(split=split)
    if per_class is not None:
        if per_class <= 0:
            raise UsageError(f"per_class must be positive, got {per_class}")
        rows = per_class_indices(ds.labels, per_class, seed=seed)
    else:
        rows = np.arange(len(ds), dtype=np.int64)
    with staged_dir(dest, overwrite=overwrite) as stage:
        for name in ds.class_names:
            (stage / name).mkdir()
        for r in rows.tolist():
            cls = ds.class_names[ds.label(r)]
            Image.fromarray(ds.images[r]).save(stage / cls / f"{int(ds.ids[r]):05d}.png")  # type: ignore[index]
        readme = (EMBEDDED_DIR / "README.md").read_text(encoding="utf-8")
        header = (
            f"<!-- written by edgekit.data.materialize_imagefolder: split={split}, "
            f"per_class={per_class}, {len(rows)} images; file names are indices into animals.npz -->\n\n"
        )
        (stage / "README.md").write_text(header + readme, encoding="utf-8")
    log.info("wrote %d embedded images (%s) to %s", len(rows), split, dest)
    return Path(dest)
