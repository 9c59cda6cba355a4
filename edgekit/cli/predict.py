"""``edgekit predict``: top-K labels of images through an artifact (torch-free)."""

from __future__ import annotations

from pathlib import Path

import click

from edgekit.cli import ui


@click.command("predict")
@click.argument("artifact", type=click.Path(path_type=Path))
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--top", "-k", type=int, default=5, show_default=True, help="How many classes to show per image.")
@click.option("--runtime", "-r", default=None, help="ort, ov (or trt for an engine). Default: the artifact format's first.")
@click.option("--precision", "-p", default=None, help="Inference precision to ask the runtime for (OpenVINO: fp32, fp16, bf16).")
@click.option("--threads", type=int, default=None, help="CPU threads of the runtime.")
@click.option("--json", "as_json", is_flag=True, help="Print the predictions as JSON.")
def predict_cmd(artifact: Path, images: tuple[Path, ...], top: int, runtime: str | None, precision: str | None,
                threads: int | None, as_json: bool) -> None:
    """Classify IMAGES with ARTIFACT: top-K labels with probabilities.

    Images are preprocessed exactly as the artifact's manifest says.
    """
    from edgekit.classify import predict

    preds = predict(artifact, list(images), top=top, runtime=runtime, precision=precision, threads=threads)
    if as_json:
        ui.print_json([p.to_json() for p in preds])
        return
    for p in preds:
        click.echo(f"{p.image}  ({p.runtime}, {p.precision})")
        for t in p.top:
            click.echo(f"  {t.probability:7.2%}  {t.label}")
