"""``edgekit export``."""

from __future__ import annotations

from pathlib import Path

import click

from edgekit.cli import ui


@click.command("export")
@click.option("--model", "-m", required=True, help="Zoo name or alias (see 'edgekit models').")
@click.option(
    "--weights",
    default="imagenet",
    show_default=True,
    help="'imagenet' (published weights), a checkpoint PATH (.pth/.pt/.safetensors), or 'none' (random init).",
)
@click.option("--labels", "labels_file", type=click.Path(path_type=Path), default=None,
              help="Class names (one per line, or a JSON list) in output order; default: the checkpoint's own.")
@click.option("--num-classes", type=int, default=None, help="Classifier outputs; inferred from the checkpoint when omitted.")
@click.option("--img-size", type=int, default=None, help="Square input size; the model's default when omitted.")
@click.option("--batch", type=int, default=1, show_default=True, help="Static batch size of the graph.")
@click.option("--dynamic-batch", is_flag=True, help="Symbolic batch dimension instead of a static one.")
@click.option("--opset", type=int, default=17, show_default=True, help="ONNX opset (13-21).")
@click.option(
    "--exporter",
    type=click.Choice(["auto", "dynamo", "torchscript"]),
    default="auto",
    show_default=True,
    help="auto: TorchScript (fast, keeps the opset), dynamo if it fails.",
)
@click.option("--parity-images", type=int, default=8, show_default=True, help="Real images used for the parity check.")
@click.option("--threads", type=int, default=None, help="Threads for the parity runtimes.")
@ui.artifact_output("Print the manifest as JSON.")
def export_cmd(
    model: str,
    weights: str,
    labels_file: Path | None,
    num_classes: int | None,
    img_size: int | None,
    batch: int,
    dynamic_batch: bool,
    opset: int,
    exporter: str,
    parity_images: int,
    threads: int | None,
    overwrite: bool,
    as_json: bool,
    output: Path,
) -> None:
    """Export a model to ONNX, check the graph and prove parity with PyTorch.

    Writes OUTPUT/model.onnx and OUTPUT/edgekit.json. If the export or the
    parity check fails, nothing is written (exit 1).
    """
    from edgekit.export import ExportOptions, export_model
    from edgekit.export.onnx_export import Exporter

    if batch != 1 and dynamic_batch:
        raise click.UsageError("--batch and --dynamic-batch exclude each other")
    labels = None
    if labels_file is not None:
        from edgekit.export.import_onnx import read_labels

        labels = read_labels(labels_file)
    opts = ExportOptions(
        labels=labels,
        model=model,
        output=output,
        weights=weights,
        num_classes=num_classes,
        img_size=img_size,
        batch=batch,
        dynamic_batch=dynamic_batch,
        opset=opset,
        exporter=Exporter(exporter),
        parity_images=parity_images,
        overwrite=overwrite,
        threads=threads,
    )
    with ui.steps(f"export {model}", enabled=not as_json) as say:
        artifact = export_model(opts, progress=say)
    m = artifact.manifest
    if as_json:
        ui.print_json(m.to_json())
        return
    if m.extra.get("weights_converter"):
        ui.stdout.print(f"weights {m.weights.source}: converted with {m.extra['weights_converter']}", markup=False,
                        highlight=False)
    parity = m.parity or {}
    ui.stdout.print(f"[bold]{m.model}[/] -> {artifact.model_path}  (opset {m.opset}, {m.exporter}, input {list(m.input.shape)})")
    for r in parity.get("runtimes", []):
        if r["status"] == "skipped":
            ui.stdout.print(f"  parity {r['runtime']:<12} skipped: {r['reason']}")
        else:
            ui.stdout.print(
                f"  parity {r['runtime']:<12} {r['status']}: max-abs {r['max_abs']:.2e}, "
                f"rel {r['rel']:.2e}, top-1 agreement {r['top1_agreement']:.1%} (precision {r['precision']})"
            )
