"""Classify images with an artifact: top-K labels and probabilities (``edgekit predict``).

Torch-free: the images are decoded and preprocessed exactly as the manifest
says (:mod:`edgekit.data.preprocess`), the model runs on any runtime that runs
the artifact's format, and the outputs become probabilities with a softmax
(unless the graph already ends in one: rows that are non-negative and sum to 1
are kept as they are). Typical use::

    import edgekit

    for p in edgekit.predict("out/mnv3", ["cat.jpg"], top=3):
        print(p.image, p.top[0].label, p.top[0].probability)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from edgekit.core.errors import UsageError
from edgekit.core.manifest import Artifact, load_artifact

#: precisions ``--precision`` may ask a runtime for (OpenVINO's inference precision); INT8 is a quantized artifact
RUNTIME_PRECISIONS = ("fp32", "fp16", "bf16")


@dataclass(frozen=True)
class Label:
    """One of the top-K classes of an image."""

    index: int
    label: str
    probability: float

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "label": self.label, "probability": self.probability}


@dataclass(frozen=True)
class Prediction:
    """The top-K classes of one image, best first, and what produced them."""

    image: str
    top: tuple[Label, ...]
    runtime: str
    precision: str

    @property
    def label(self) -> str:
        return self.top[0].label

    def to_json(self) -> dict[str, Any]:
        return {"image": self.image, "runtime": self.runtime, "precision": self.precision,
                "top": [t.to_json() for t in self.top]}


def _as_image(item: Any) -> tuple[str, Image.Image]:
    from edgekit.data.imagefolder import open_rgb

    if isinstance(item, Image.Image):
        return "<image>", item
    if isinstance(item, np.ndarray):
        if item.dtype != np.uint8 or item.ndim not in (2, 3):
            raise UsageError(f"an image array must be uint8 HxW or HxWxC, got {item.dtype} {item.shape}")
        return "<array>", Image.fromarray(item)
    if isinstance(item, (str, os.PathLike)):
        return os.fspath(item), open_rgb(item)
    raise UsageError(f"cannot read an image from a {type(item).__name__}",
                     hint="give a path, a PIL image or a uint8 array")


def preprocess(artifact: Artifact | str | os.PathLike[str], images: Sequence[Any]) -> np.ndarray:
    """Images (paths, PIL images or uint8 arrays) -> the float32 batch the artifact's model takes."""
    from edgekit.data.preprocess import preprocess_batch

    art = artifact if isinstance(artifact, Artifact) else load_artifact(artifact)
    return preprocess_batch([_as_image(i)[1] for i in images], art.manifest.preprocess)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise probabilities; rows that already are probabilities (>= 0, sum 1) are returned unchanged."""
    x = np.asarray(logits, dtype=np.float64).reshape(logits.shape[0], -1)
    sums = x.sum(axis=1)
    if np.all(x >= 0) and np.allclose(sums, 1.0, atol=1e-3):
        return x
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _runner_options(art: Artifact, runtime: str | None, precision: str | None, threads: int | None) -> dict[str, Any]:
    from edgekit.runtime.registry import FORMAT_RUNTIMES, resolve_runtime

    name = resolve_runtime(runtime).name if runtime else FORMAT_RUNTIMES.get(art.manifest.format, ("",))[0]
    opts: dict[str, Any] = {}
    if threads is not None:
        opts["threads"] = threads
    if precision is None:
        return opts
    p = str(precision).lower()
    if p not in (*RUNTIME_PRECISIONS, "int8"):
        raise UsageError(f"unknown precision {precision!r}", hint="choose fp32, fp16, bf16 or int8")
    if p == art.manifest.precision:
        return opts
    if name == "openvino" and p in RUNTIME_PRECISIONS:
        opts["precision"] = p
        return opts
    fix = "make an INT8 artifact with 'edgekit quantize'" if p == "int8" else "use --runtime openvino"
    raise UsageError(f"{name} runs {art.path} at its graph's precision {art.manifest.precision}, not {p}",
                     hint=fix if p != "fp32" else "give the FP32 artifact it came from")


def predict(
    artifact: Artifact | str | os.PathLike[str],
    images: Sequence[Any],
    *,
    top: int = 5,
    runtime: str | None = None,
    precision: str | None = None,
    threads: int | None = None,
) -> list[Prediction]:
    """Top-``top`` classes of each image through ``artifact`` (a directory or a loaded :class:`Artifact`).

    ``runtime`` is any runtime that runs the artifact's format (default: the format's first, ONNX Runtime
    for ONNX); ``precision`` asks OpenVINO for an inference precision (fp32, fp16, bf16). Images are
    paths, PIL images or uint8 HxWxC arrays; they run one at a time at the graph's batch size 1, or as one
    batch when the graph's batch is dynamic.
    """
    from edgekit.runtime.registry import runner_for_artifact

    art = artifact if isinstance(artifact, Artifact) else load_artifact(artifact)
    if not isinstance(top, int) or top < 1:
        raise UsageError(f"top must be a positive integer, got {top!r}")
    if not images:
        raise UsageError("no images given", hint="pass one or more image paths")
    named = [_as_image(i) for i in images]
    m = art.manifest
    from edgekit.data.preprocess import preprocess_batch

    batch = preprocess_batch([im for _, im in named], m.preprocess)
    opts = _runner_options(art, runtime, precision, threads)
    with runner_for_artifact(art, runtime=runtime, **opts) as runner:
        spec = runner.inputs[0]
        dim0 = spec.shape[0] if spec.shape else 1
        step = dim0 if isinstance(dim0, int) and dim0 > 0 else len(batch)
        if len(batch) % step:
            raise UsageError(f"{art.path} has a static batch of {step}; give a multiple of {step} images")
        chunks = [runner.infer({spec.name: batch[i : i + step].astype(spec.dtype, copy=False)})
                  for i in range(0, len(batch), step)]
        out_name = runner.outputs[0].name
        info = runner.info
    probs = softmax(np.concatenate([c[out_name] for c in chunks], axis=0))
    labels = m.labels
    k = min(top, probs.shape[1])
    results = []
    for (name, _), row in zip(named, probs):
        idx = np.argsort(-row, kind="stable")[:k]
        results.append(Prediction(
            image=name,
            top=tuple(Label(int(i), labels[i] if labels and i < len(labels) else str(int(i)), float(row[i]))
                      for i in idx),
            runtime=info.runtime, precision=info.precision,
        ))  # fmt: skip
    return results

