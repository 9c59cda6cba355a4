"""``edgekit build ARTIFACT --target T`` (torch-free: engines are built on the device)."""

from __future__ import annotations

from pathlib import Path

import click

from edgekit.cli import ui
from edgekit.core.specs import Precision

PRECISION_CHOICES = tuple(str(p) for p in Precision)


@click.command("build")
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option("--target", "-t", required=True,
              help="Target profile: a built-in name (see 'edgekit targets'), 'jetson', or a .toml path.")
@click.option("--precision", "-p", type=click.Choice(PRECISION_CHOICES), default=None,
              help="Engine precision; the artifact's own precision when omitted. int8 needs a Q/DQ artifact.")
@click.option("--runtime", "-r", default=None,
              help="openvino (ov) or tensorrt (trt); default: the target's first runtime that builds the precision.")
@click.option("--runtime-device", "device", default=None,
              help="A device of the target's runtime (e.g. DLA on a Jetson AGX Orin); not an SSH device.")
@click.option("--device", "old_device", default=None, hidden=True,
              help="Deprecated spelling of --runtime-device (bench/run --device name an SSH device).")
@click.option("--batch", type=int, default=None,
              help="Static batch of the engine; default: the artifact's static batch, or 1 if it is dynamic.")
@click.option("--parity-images", type=int, default=4, show_default=True,
              help="Real images used to verify the engine against ONNX Runtime.")
@click.option("--rel-tol", type=float, default=None,
              help="Verification tolerance (max-abs error / output range); default depends on runtime and precision.")
@click.option("--threads", type=int, default=None, help="Threads for the verification runtimes.")
@click.option("--timing-cache-dir", type=click.Path(path_type=Path), default=None,
              help="TensorRT timing caches; default $EDGEKIT_CACHE/trt-timing or ~/.cache/edgekit/trt-timing.")
@click.option("--no-timing-cache", is_flag=True, help="Build TensorRT engines without a timing cache.")
@click.option("--overwrite", is_flag=True, help="Replace a non-empty output directory (only after success).")
@click.option("--json", "as_json", is_flag=True, help="Print the new manifest as JSON.")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Artifact directory to write; default <ARTIFACT>-<target>-<precision> beside ARTIFACT.")
def build_cmd(
    artifact: Path,
    target: str,
    precision: str | None,
    runtime: str | None,
    device: str | None,
    old_device: str | None,
    batch: int | None,
    parity_images: int,
    rel_tol: float | None,
    threads: int | None,
    timing_cache_dir: Path | None,
    no_timing_cache: bool,
    overwrite: bool,
    as_json: bool,
    output: Path | None,
) -> None:
    """Build the engine the target runs (OpenVINO IR or TensorRT engine) from an ONNX artifact.

    Writes the engine with its edgekit.json (precision, target, lineage back to
    the ONNX) after verifying it against ONNX Runtime on real images. If the
    verification fails, nothing is written (exit 1). When the target runs the
    ONNX with ONNX Runtime there is nothing to build (exit 2).
    """
    from edgekit.engines import BuildOptions, build_artifact

    device = _runtime_device(device, old_device)
    opts = BuildOptions(
        artifact=artifact,
        target=target,
        precision=precision,
        runtime=runtime,
        device=device,
        output=output,
        batch=batch,
        overwrite=overwrite,
        threads=threads,
        parity_images=parity_images,
        rel_tol=rel_tol,
        timing_cache_dir=timing_cache_dir,
        timing_cache=not no_timing_cache,
    )
    with ui.steps(f"build {artifact}", enabled=not as_json) as say:
        art = build_artifact(opts, progress=say)
    m = art.manifest
    if as_json:
        ui.print_json(m.to_json())
        return
    ex = m.extra
    hint = f", inference precision {ex['inference_precision']}" if ex.get("inference_precision") else ""
    ui.stdout.print(
        f"[bold]{m.model}[/] -> {art.model_path}  ({m.format}, {m.precision}, input {list(m.input.shape)}, "
        f"target {ex.get('target')}: {ex.get('runtime')}:{ex.get('device')}{hint})"
    )
    for r in (m.parity or {}).get("runtimes", []):
        ui.stdout.print(
            f"  verified {r['runtime']:<10} {r['status']} vs {m.parity['reference']}: max-abs {r['max_abs']:.2e}, "
            f"rel {r['rel']:.2e} (tol {m.parity['rel_tol']:g}), top-1 agreement {r['top1_agreement']:.1%}"
        )


def _runtime_device(device: str | None, old_device: str | None) -> str | None:
    """``--runtime-device``, or the deprecated ``--device`` with a one-line notice (both: they must agree)."""
    if old_device is None:
        return device
    from edgekit.core.errors import UsageError

    if device is not None and device != old_device:
        raise UsageError(f"--device {old_device} and --runtime-device {device} disagree",
                         hint="give --runtime-device only (--device is its deprecated spelling)")
    ui.stderr.print(f"edgekit build: --device is deprecated, use --runtime-device {old_device} (bench and run "
                    "--device name an SSH device)", markup=False, highlight=False)
    return old_device
