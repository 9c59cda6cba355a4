"""``edgekit import``: an artifact from any ONNX image classifier (torch-free)."""

from __future__ import annotations

from pathlib import Path

import click

from edgekit.cli import ui
from edgekit.core.errors import UsageError


def _floats3(value: str | None, flag: str) -> tuple[float, float, float] | None:
    if value is None:
        return None
    try:
        items = tuple(float(v) for v in value.replace(" ", "").split(","))
    except ValueError:
        items = ()
    if len(items) != 3:
        raise UsageError(f"{flag} takes three comma-separated numbers (R,G,B), got {value!r}", hint=f"e.g. {flag} 0.485,0.456,0.406")
    return items  # type: ignore[return-value]


def _size(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    parts = value.lower().replace("x", ",").split(",")
    try:
        nums = [int(p) for p in parts if p.strip()]
    except ValueError:
        nums = []
    if len(nums) == 1:
        nums = nums * 2
    if len(nums) != 2 or min(nums) <= 0:
        raise UsageError(f"--input-size takes S or H,W (positive integers), got {value!r}")
    return nums[0], nums[1]


@click.command("import")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Artifact directory to write.")
@click.option("--preprocess", "preset", default="imagenet", show_default=True,
              help="Preset: imagenet (resize 256/crop 224 ratio, bilinear, ImageNet mean/std), inception (mean=std=0.5, bicubic) or unit (/255 only, no crop); the flags below override it.")
@click.option("--input-size", default=None, help="H,W (or S) when the graph's height/width are dynamic.")
@click.option("--resize", type=int, default=None, help="Shorter side before the center crop (e.g. 256 for a 224 crop).")
@click.option("--crop-pct", type=float, default=None, help="Crop fraction (timm's crop_pct); excludes --resize.")
@click.option("--interpolation", type=click.Choice(["nearest", "bilinear", "bicubic"]), default=None)
@click.option("--mean", default=None, help="Per-channel mean R,G,B on [0,1] pixels.")
@click.option("--std", default=None, help="Per-channel std R,G,B on [0,1] pixels.")
@click.option("--channel-order", type=click.Choice(["RGB", "BGR"], case_sensitive=False), default=None)
@click.option("--layout", type=click.Choice(["NCHW", "NHWC"], case_sensitive=False), default=None,
              help="Default: where the graph's 3-channel axis is.")
@click.option("--labels", "labels_file", type=click.Path(path_type=Path), default=None,
              help="Class names: one per line (or a JSON list), in output order.")
@click.option("--name", default=None, help="Model name in the manifest (default: the file's stem).")
@click.option("--overwrite", is_flag=True, help="Replace a non-empty output directory (only after success).")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def import_cmd(model: Path, output: Path, preset: str, input_size: str | None, resize: int | None,
               crop_pct: float | None, interpolation: str | None, mean: str | None, std: str | None,
               channel_order: str | None, layout: str | None, labels_file: Path | None, name: str | None,
               overwrite: bool, as_json: bool) -> None:
    """Make an artifact from MODEL (any ONNX image classifier) that bench, quantize, predict and gate take.

    The graph is checked (onnx.checker full check, strict shape inference, one
    real inference); the preprocessing you give is recorded in the manifest.
    """
    from edgekit.export.import_onnx import ImportOptions, import_onnx, read_labels

    opts = ImportOptions(
        preset=preset, input_size=_size(input_size), resize=resize, crop_pct=crop_pct, interpolation=interpolation,
        mean=_floats3(mean, "--mean"), std=_floats3(std, "--std"), channel_order=channel_order, layout=layout,
        labels=read_labels(labels_file) if labels_file is not None else None, name=name, overwrite=overwrite,
    )
    art = import_onnx(model, output=output, options=opts)
    m = art.manifest
    if as_json:
        ui.print_json(m.to_json())
        return
    p = m.preprocess
    click.echo(f"{m.model} -> {art.model_path}  (input {list(m.input.shape)} {p.layout}, {m.num_classes} classes, "
               f"{'labels' if m.labels else 'no labels'}, precision {m.precision})")
    click.echo(f"  preprocess: resize {p.resize_size} {p.interpolation}, crop {p.input_size[0]}x{p.input_size[1]}, "
               f"mean {list(p.mean)}, std {list(p.std)}, {p.channel_order}")
