"""``edgekit quantize``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from edgekit.cli import ui
from edgekit.optimize.quant.presets import preset_names


@click.command("quantize")
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option("--calib", default=None,
              help="Real calibration images: a <class>/<image> folder, an .npz, or 'embedded' (its train split). "
                   "Required for INT8.")
@click.option("--precision", type=click.Choice(["int8", "fp16"]), default="int8", show_default=True)
@click.option("--method", type=click.Choice(["nncf", "onnxruntime"]), default=None,
              help="Quantizer; default: nncf for OpenVINO, onnxruntime otherwise.")
@click.option("--for", "target", default=None, metavar="TARGET|RUNTIME",
              help="onnxruntime, openvino, tensorrt, or a target profile (its first runtime with the precision). "
                   "Sets the Q/DQ layout. Default: onnxruntime on this host.")
@click.option("--preset", type=click.Choice(preset_names()), default="auto", show_default=True,
              help="Recipe (docs/quantization-presets.md); auto picks by the model family.")
@click.option("--calib-size", type=int, default=300, show_default=True, help="Calibration images (at least 32).")
@click.option("--max-drop", type=float, default=None, metavar="PTS",
              help="Top-1 budget in points: keep layers in float until the upper --confidence bound of the drop on "
                   "the validation split fits; report the test split; else exit 1 (artifact kept, marked failed).")
@click.option("--confidence", type=float, default=0.95, show_default=True,
              help="One-sided confidence of the upper bound --max-drop is judged on.")
@click.option("--eval", "eval_data", default=None,
              help="Labelled images with the model's classes (the folder it was fine-tuned on: its recorded "
                   "validation/test splits are used); default: the embedded validation/test splits.")
@click.option("--eval-size", type=int, default=1000, show_default=True, help="Eval images (stratified sample).")
@click.option("--batch", type=int, default=None, help="Static batch for OpenVINO (default: the parent's, else 1).")
@click.option("--max-iterations", type=int, default=8, show_default=True, help="Accuracy-control evaluations.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the calibration/eval selection.")
@click.option("--threads", type=int, default=None, help="Threads for the runtimes.")
@ui.artifact_output("Print the manifest as JSON.")
def quantize_cmd(artifact: Path, calib: str | None, precision: str, method: str | None, target: str | None,
                 preset: str, calib_size: int, max_drop: float | None, confidence: float, eval_data: str | None, eval_size: int,
                 batch: int | None, max_iterations: int, seed: int, threads: int | None, overwrite: bool,
                 as_json: bool, output: Path) -> None:
    """Quantize an FP32 ONNX artifact to INT8 (or convert it to FP16) and measure it.

    The FP32 parent and the result run on the same real images; the top-1
    drop (with its 95% CI), the disagreements and McNemar's p go into the
    manifest. Exit 2 on bad input; 1 on a failed accuracy verdict (the
    artifact is written and marked failed) or when the budget cannot be met
    in INT8 at all (nothing is written).
    """
    from edgekit.optimize.quant.quantize import QuantizeOptions, quantize

    opts = QuantizeOptions(
        artifact=artifact, output=output, calib=calib, precision=precision, method=method, target=target,
        preset=preset, calib_size=calib_size, max_drop=max_drop, confidence=confidence, eval=eval_data, eval_size=eval_size, batch=batch,
        max_iterations=max_iterations, seed=seed, threads=threads, overwrite=overwrite,
    )
    with ui.steps(f"quantize {artifact}", enabled=not as_json) as say:
        result = quantize(opts, progress=say)
    m = result.artifact.manifest
    if as_json:
        ui.print_json(m.to_json())
        return
    print_report(m.model, result.artifact.model_path, m.extra["quantization"])


def _pct(v: Any) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def print_report(model: str, path: Path, q: dict[str, Any]) -> None:
    out = ui.stdout.print
    layout = q.get("layout") or {}
    preset = q.get("preset") or {}
    what = f"{q['precision']}, {layout.get('name')}"
    if q.get("method"):
        what += f", {q['method']}, preset {preset.get('name')} ({preset.get('chosen')})"
    target = f" / {q['target']}" if q.get("target") else ""
    out(f"[bold]{model}[/] -> {path}  ({what}, for {q['runtime']}{target})")
    if q.get("calib"):
        c = q["calib"]
        out(f"  calibration: {c['n']} images of {c['dataset']} (seed {c['seed']}, sha256 {c['sources_sha256'][:12]})")
    for kind, names in (q.get("excluded_nodes") or {}).items():
        if names:
            out(f"  kept in float ({kind}): {len(names)} node(s)")
    acc = q["accuracy"]
    e = q["eval"]
    out(f"  eval: {acc['n']} images of {e['dataset']} ({'labelled' if e['labelled'] else 'agreement only'})")
    if acc.get("paired"):
        pr = acc["paired"]
        lo, hi = pr["ci_pts"]
        out(f"  top-1: FP32 {_pct(pr['reference_top1'])} -> {q['precision'].upper()} {_pct(pr['candidate_top1'])}, "
            f"drop {pr['drop_pts']:+.2f} pts (95% CI [{lo:+.2f}, {hi:+.2f}]), {pr['disagreements']} disagreement(s), "
            f"McNemar p={pr['mcnemar_p']:.3g}")
    out(f"  {acc['statement']}")
    if acc.get("flips"):
        out(f"  {acc['flips']} top-1 flip(s), all at FP32 top-1/top-2 margins <= {acc['fp32_margin_max_flipped']:.3g} "
            f"(median margin {acc['fp32_margin_median']:.3g}; median per-image max-abs error "
            f"{acc['median_image_max_abs']:.3g})")
    for r in q.get("runtimes", []):
        if r["status"] != "passed":
            out(f"  {r['runtime']:<12} {r['status']}: {r.get('reason', '')}")
            continue
        top1 = f", top-1 {_pct(r['top1'])}" if r.get("top1") is not None else ""
        out(f"  {r['runtime']:<12} batch {r['batch']}: agreement with FP32 {_pct(r['top1_agreement'])}, "
            f"max-abs {r['max_abs']:.3g}{top1}")
    if q.get("budget"):
        out(f"  budget: {q['budget']['statement']}")
    ctrl = q.get("accuracy_control")
    if ctrl:
        out(f"  accuracy control: {len(ctrl.get('kept_float', []))} layer(s) back in float, drop "
            f"{ctrl.get('drop_pts', ctrl.get('upper_pts')) or 0:.2f} pts on validation "
            f"({'fits' if ctrl.get('fits') else 'does NOT fit'} the budget)")
