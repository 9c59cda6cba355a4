"""Bring your own model: an edgekit artifact from any ONNX image classifier (``edgekit import``).

The zoo is the convenient path, not the only one. An ONNX file with one 4-D
image input and one ``(batch, classes)`` output becomes an artifact like the
ones ``export`` writes (model.onnx + edgekit.json with preprocessing, labels,
sha256 of every file), so bench, quantize, predict and gate take it. Checks:
``onnx.checker`` full check, strict shape inference, and one real inference in
ONNX Runtime (when installed) whose output must have the declared class count.
Torch-free.

Preprocessing comes from a named preset (:data:`PREPROCESS_PRESETS`) with any
field overridden; the input size and layout are read from the graph when its
dimensions are static.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from edgekit.core.atomic import check_output_dir, sha256_file, staged_dir
from edgekit.core.errors import ArtifactError, DataError, ExportError, UsageError
from edgekit.core.manifest import Artifact, Manifest, WeightsInfo, load_artifact
from edgekit.core.specs import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    INCEPTION_MEAN,
    INCEPTION_STD,
    Interpolation,
    PreprocessSpec,
    TensorSpec,
)
from edgekit.core.versions import tool_versions

#: named preprocessing presets (input size and layout come from the graph)
PREPROCESS_PRESETS: dict[str, PreprocessSpec] = {
    # torchvision / timm ImageNet eval: resize 256, crop 224, bilinear, ImageNet mean/std
    "imagenet": PreprocessSpec(),
    # Inception / many timm and TF-ported models: mean = std = 0.5, bicubic
    "inception": PreprocessSpec(crop_pct=0.875, interpolation=Interpolation.BICUBIC, mean=INCEPTION_MEAN,
                                std=INCEPTION_STD),
    # pixels / 255 only, resized straight to the input (no crop)
    "unit": PreprocessSpec(crop_pct=1.0, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)),
}


@dataclass(frozen=True)
class ImportOptions:
    """What :func:`import_onnx` needs besides the model file. ``None`` fields come from the preset / graph."""

    preset: str = "imagenet"
    input_size: tuple[int, int] | None = None  # (height, width); default: the graph's static H, W
    resize: int | None = None  # shorter side before the center crop; default: the preset's crop_pct
    crop_pct: float | None = None
    interpolation: str | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    channel_order: str | None = None  # RGB or BGR
    layout: str | None = None  # NCHW or NHWC; default: where the graph's 3-channel axis is
    labels: tuple[str, ...] | None = None
    name: str | None = None  # default: the file's stem
    overwrite: bool = False
    smoke_test: bool = True  # one inference in ONNX Runtime (skipped, and said so, when it is not installed)


def read_labels(path: str | os.PathLike[str]) -> tuple[str, ...]:
    """Class names from a text file (one per line, blank lines ignored) or a JSON list of strings."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read labels file {p}: {e}", hint="give a UTF-8 text file, one class per line") from None
    if p.suffix.lower() == ".json":
        import json

        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"labels file {p} is not valid JSON: {e}") from None
        if not isinstance(data, list) or not all(isinstance(s, str) for s in data):
            raise DataError(f"labels file {p} must hold a JSON list of strings")
        labels = [s.strip() for s in data]
    else:
        labels = [line.strip() for line in text.splitlines() if line.strip()]
    if not labels:
        raise DataError(f"labels file {p} holds no labels", hint="one class name per line, in output order")
    return tuple(labels)


def crop_pct_for(input_size: tuple[int, int], resize: int) -> float:
    """The crop_pct whose ``floor(min(input_size) / crop_pct)`` is exactly ``resize``."""
    short = min(input_size)
    if resize < short:
        raise UsageError(f"--resize {resize} is smaller than the input {short}", hint="resize to at least the crop size")
    pct = short / resize
    while math.floor(short / pct) < resize:  # float rounding: nudge until the resize comes out exact
        pct = math.nextafter(pct, 0.0)
    return pct


def _layout_and_size(spec: TensorSpec, options: ImportOptions) -> tuple[str, tuple[int, int]]:
    shape = spec.shape
    if len(shape) != 4:
        raise UsageError(f"input {spec.name!r} has shape {list(shape)}, not an image batch (N, C, H, W) or (N, H, W, C)")
    layout = options.layout
    if layout is None:
        layout = "NCHW" if shape[1] == 3 else "NHWC" if shape[3] == 3 else None
        if layout is None:
            raise UsageError(f"cannot tell the layout of input {spec.name!r} {list(shape)}", hint="pass --layout NCHW or NHWC")
    layout = layout.upper()
    if layout not in ("NCHW", "NHWC"):
        raise UsageError(f"unknown layout {options.layout!r}", hint="use NCHW or NHWC")
    c, h, w = (shape[1], shape[2], shape[3]) if layout == "NCHW" else (shape[3], shape[1], shape[2])
    if isinstance(c, int) and c != 3:
        raise UsageError(f"input {spec.name!r} has {c} channels in layout {layout}; edgekit feeds RGB images (3)")
    if options.input_size is not None:
        size = options.input_size
        for got, want, axis in ((h, size[0], "height"), (w, size[1], "width")):
            if isinstance(got, int) and got > 0 and got != want:
                raise UsageError(f"--input-size {size[0]}x{size[1]} does not match the graph's static {axis} {got}")
        return layout, size
    if not (isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0):
        raise UsageError(f"input {spec.name!r} {list(shape)} has a dynamic height or width", hint="pass --input-size H,W")
    return layout, (h, w)


def build_preprocess(spec: TensorSpec, options: ImportOptions) -> PreprocessSpec:
    """The artifact's preprocessing: the preset, the graph's size and layout, then every explicit flag."""
    key = options.preset.strip().lower()
    if key not in PREPROCESS_PRESETS:
        raise UsageError(f"unknown preprocessing preset {options.preset!r}",
                         hint=f"choose one of {', '.join(PREPROCESS_PRESETS)} and override fields with the flags")
    base = PREPROCESS_PRESETS[key]
    layout, size = _layout_and_size(spec, options)
    if options.resize is not None and options.crop_pct is not None:
        raise UsageError("--resize and --crop-pct exclude each other")
    crop = crop_pct_for(size, options.resize) if options.resize is not None else options.crop_pct or base.crop_pct
    try:
        interp = Interpolation(options.interpolation.lower()) if options.interpolation else base.interpolation
    except ValueError:
        raise UsageError(f"unknown interpolation {options.interpolation!r}",
                         hint="choose " + ", ".join(str(i) for i in Interpolation)) from None
    order = (options.channel_order or base.channel_order).upper()
    std = options.std or base.std
    if any(v <= 0 for v in std):
        raise UsageError(f"--std must be positive, got {list(std)}")
    try:
        return replace(base, input_size=size, crop_pct=crop, interpolation=interp, mean=options.mean or base.mean,
                       std=std, channel_order=order, layout=layout)
    except ValueError as e:
        raise UsageError(f"bad preprocessing: {e}") from None


def _num_classes(graph_outputs: Sequence[TensorSpec], labels: tuple[str, ...] | None) -> int:
    if not graph_outputs:
        raise UsageError("the graph has no outputs")
    out = graph_outputs[0]
    last = out.shape[-1] if out.shape else None
    if isinstance(last, int) and last > 0:
        if labels is not None and len(labels) != last:
            raise UsageError(f"{len(labels)} labels given for a model with {last} outputs ({out.name} {list(out.shape)})",
                             hint="one label per output class, in output order")
        return last
    if labels is None:
        raise UsageError(f"output {out.name!r} {list(out.shape)} has no static class count", hint="pass --labels FILE")
    return len(labels)


def _smoke_test(path: Path, inp: TensorSpec, pre: PreprocessSpec, num_classes: int) -> dict[str, Any]:
    """One inference on a real embedded image in ONNX Runtime; the output must have ``num_classes``."""
    from edgekit.core.lazy import available

    if not available("onnxruntime"):
        return {"status": "skipped", "reason": "onnxruntime is not installed"}
    import numpy as np

    from edgekit.data.embedded import load_embedded
    from edgekit.data.preprocess import preprocess_batch
    from edgekit.runtime.registry import create_runner

    ds = load_embedded()
    x = preprocess_batch([ds.image(0)], pre)
    b = inp.shape[0] if isinstance(inp.shape[0], int) and inp.shape[0] > 0 else 1
    x = np.repeat(x, b, axis=0).astype(inp.dtype, copy=False)
    with create_runner("onnxruntime", path, threads=1) as r:
        y = r.infer({inp.name: x})[r.outputs[0].name]
    if y.shape[-1] != num_classes or not np.all(np.isfinite(y)):
        raise ArtifactError(f"{path.name} ran in ONNX Runtime but gave output {list(y.shape)} "
                            f"(finite: {bool(np.all(np.isfinite(y)))}), not {num_classes} finite class scores")
    return {"status": "passed", "runtime": "onnxruntime", "output_shape": list(y.shape)}


def import_onnx(model: str | os.PathLike[str], *, output: str | os.PathLike[str],
                options: ImportOptions | None = None, **fields: Any) -> Artifact:
    """Make an artifact at ``output`` from the ONNX classifier ``model``; ``fields`` override ``options``.

    Checked before anything is written: the destination, the ONNX checker (full), strict shape inference,
    the input (one 4-D RGB image tensor) and output (class scores), the labels' count, and one inference.
    """
    opts = replace(options or ImportOptions(), **fields)
    src = Path(model)
    if not src.is_file():
        raise UsageError(f"ONNX file {src} does not exist", hint="give the path of a .onnx model")
    out = check_output_dir(output, overwrite=opts.overwrite)
    from edgekit.export.check import check_graph
    from edgekit.runtime.onnx_info import read_graph_info

    info = read_graph_info(src)
    if len(info.inputs) != 1:
        raise UsageError(f"{src} has {len(info.inputs)} inputs {[i.name for i in info.inputs]}; an image classifier takes one")
    inp = info.inputs[0]
    if inp.dtype not in ("float32", "float16"):
        raise UsageError(f"input {inp.name!r} is {inp.dtype}; edgekit feeds float32 (or float16) images")
    pre = build_preprocess(inp, opts)
    n = _num_classes(info.outputs, opts.labels)
    try:
        checks = check_graph(src)
    except ExportError as e:  # a broken file given by the user is bad input, not a failed export
        raise ArtifactError(e.message, hint="fix or re-export the model; edgekit imports only checked graphs") from None
    name = opts.name or src.stem
    with staged_dir(out, overwrite=opts.overwrite) as stage:
        dest = stage / "model.onnx"
        shutil.copyfile(src, dest)
        for ext in _external_files(src):
            shutil.copyfile(src.parent / ext, stage / ext)
        smoke = _smoke_test(dest, inp, pre, n) if opts.smoke_test else {"status": "skipped", "reason": "not asked"}
        manifest = Manifest(
            model=name, family="imported", source=f"onnx:{src.name}", num_classes=n,
            weights=WeightsInfo(origin="onnx", source=str(src.resolve()), sha256=sha256_file(src)),
            inputs=(replace(inp, layout=pre.layout),), outputs=tuple(info.outputs), preprocess=pre,
            labels=opts.labels, opset=info.opset, exporter="import", precision=info.precision,
            versions=tool_versions(),
            lineage=({"step": "import", "from": str(src.resolve()), "sha256": sha256_file(src)},),
            extra={"checks": {**checks, "smoke_test": smoke}, "preprocess_preset": opts.preset},
        ).with_files(stage)
        manifest.write(stage)
    return load_artifact(out)


def _external_files(src: Path) -> list[str]:
    """Relative names of the external-data files ``src`` references (copied along)."""
    from edgekit.core.lazy import require

    onnx = require("onnx", purpose="reading an ONNX graph")
    m = onnx.load(str(src), load_external_data=False)
    names = set()
    for t in m.graph.initializer:
        for kv in t.external_data:
            if kv.key == "location":
                names.add(kv.value)
    return sorted(names)
