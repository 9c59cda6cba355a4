"""A preprocessing canary that retraining cannot absorb.

CI retrains its model from scratch, so a preprocessing bug shared by training
and evaluation (a channel swap, a wrong mean/std, another resize) trains
itself away and the gate never sees it. The canary uses weights nobody
retrains, the ImageNet-pretrained EfficientNet-Lite0 of the ``dev`` extra,
on real colour photos from scikit-image:

* the cat photo (``chelsea``) must be a cat (tabby, tiger cat or Egyptian
  cat) and the coffee photo (``coffee``) an espresso, in every runtime and
  precision that runs here;
* the logits of the committed top-5 classes of every photo must equal the
  committed values (``ci/canary.json``, written once from a known-good
  commit by ``tools/make_canary.py``) within a tolerance per precision, so a
  change too small to flip a label (crop, interpolation) is caught too.

Torch-free: the artifacts are made by the caller; this module reads photos,
preprocesses them with HEAD's :func:`edgekit.data.preprocess.preprocess_image`
and judges logits.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.core.errors import UsageError
from edgekit.core.specs import PreprocessSpec

PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")
#: photo -> the ImageNet labels its top-1 must be one of
EXPECTED_LABELS: dict[str, tuple[str, ...]] = {
    "chelsea": ("tabby, tabby cat", "tiger cat", "Egyptian cat"),
    "coffee": ("espresso",),
}
#: max |logit - committed logit| over each photo's committed top-5, by executed precision
TOLERANCE = {"fp32": 0.05, "fp16": 0.5, "bf16": 1.5, "int8": 3.0}
CANARY_FILE = Path(__file__).resolve().parents[2] / "ci" / "canary.json"


def photos() -> dict[str, Any]:
    """The canary photos as PIL images (scikit-image's sample data, shipped with scikit-image)."""
    try:
        import skimage.data as skdata
    except ImportError:
        raise UsageError("the preprocessing canary needs scikit-image's sample photos",
                         hint="pip install 'edgekit[dev]'") from None
    from PIL import Image

    return {name: Image.fromarray(getattr(skdata, name)()) for name in PHOTOS}


def inputs(spec: PreprocessSpec) -> np.ndarray:
    """The photos preprocessed by HEAD's code for ``spec``: float32 (N, C, H, W), in :data:`PHOTOS` order."""
    from edgekit.data.preprocess import preprocess_image

    imgs = photos()
    return np.stack([preprocess_image(imgs[n], spec) for n in PHOTOS]).astype(np.float32)


def record(logits: np.ndarray, labels: Sequence[str], *, spec: PreprocessSpec, source: str) -> dict[str, Any]:
    """The committed expectation: each photo's top-5 class indices, names and logits."""
    out: dict[str, Any] = {"schema": "edgekit.canary", "model": "efficientnet_lite0", "weights": source,
                           "preprocess": spec.to_json(), "photos": {}}
    for name, z in zip(PHOTOS, np.asarray(logits, dtype=np.float64)):
        top = np.argsort(-z)[:5]
        out["photos"][name] = {"top5": [int(i) for i in top], "labels": [labels[int(i)] for i in top],
                               "logits": [round(float(z[i]), 5) for i in top]}
    return out


def load_expected(path: Path = CANARY_FILE) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def check(logits: np.ndarray, labels: Sequence[str], expected: Mapping[str, Any], *, precision: str,
          what: str) -> list[str]:
    """Failures (empty: the canary passed) of ``logits`` (rows in :data:`PHOTOS` order) from ``what``."""
    z = np.asarray(logits, dtype=np.float64)
    tol = TOLERANCE[precision]
    bad: list[str] = []
    for row, name in zip(z, PHOTOS):
        top1 = labels[int(row.argmax())]
        if name in EXPECTED_LABELS and top1 not in EXPECTED_LABELS[name]:
            bad.append(f"{what}: the {name} photo is classified {top1!r}, expected one of "
                       f"{', '.join(repr(x) for x in EXPECTED_LABELS[name])}")
        exp = expected["photos"][name]
        err = float(np.max(np.abs(row[exp["top5"]] - np.asarray(exp["logits"]))))
        if err > tol:
            bad.append(f"{what}: {name} logits of the committed top-5 differ by up to {err:.3f} (tolerance {tol:g} "
                       f"for {precision}): preprocessing or export changed")
    return bad
