"""``edgekit prune``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from edgekit.cli import ui

if TYPE_CHECKING:
    from edgekit.optimize.prune.prune import PruneResult


def _fmt_count(n: int) -> str:
    return f"{n / 1e9:.3f} G" if n >= 1e9 else f"{n / 1e6:.3f} M"


@click.command("prune")
@click.argument("source", metavar="ARTIFACT_OR_MODEL")
@click.option("--ratio", type=float, required=True,
              help="Fraction of channels removed from each prunable group, strictly between 0 and 1.")
@click.option("--global", "global_pruning", is_flag=True,
              help="Rank channels across all layers (each layer keeps at least 10%) instead of per group.")
@click.option("--round-to", type=int, default=8, show_default=True,
              help="Round the channels a layer keeps to a multiple of this (1 disables); 8 or 16 keep kernels fast.")
@click.option("--weights", default="imagenet", show_default=True,
              help="For a zoo model: 'imagenet', a checkpoint PATH, or 'none' (random init, structure only).")
@click.option("--num-classes", type=int, default=None, help="For a zoo model with --weights none: classifier outputs.")
@click.option("--img-size", type=int, default=None, help="For a zoo model: square input size [default: the model's].")
@click.option("--finetune", "finetune_data", default=None, metavar="DATA",
              help="Recover on DATA after pruning: 'embedded', an ImageFolder DIR or an .npz.")
@click.option("--epochs", type=int, default=5, show_default=True, help="Recovery epochs (with --finetune).")
@click.option("--distill/--no-distill", default=None,
              help="Distill from the unpruned model while recovering [default: on with --finetune].")
@click.option("--lr", type=float, default=None, help="Recovery learning rate (AdamW) [default: 1e-3].")
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--val-split", type=float, default=None,
              help="Validation fraction of a folder/.npz (recovery selects on it) [default: 0.1].")
@click.option("--test-split", type=float, default=None,
              help="Test fraction of a folder/.npz (the accuracy check reports it) [default: 0.2].")
@click.option("--max-drop", type=float, default=None, metavar="PTS",
              help="Top-1 budget in points vs the unpruned model: accepted only when the upper --confidence bound "
                   "of the drop on the validation split fits; the test split is reported; else exit 1 (kept, "
                   "marked failed). Needs --finetune.")
@click.option("--confidence", type=float, default=0.95, show_default=True,
              help="One-sided confidence of the upper bound --max-drop is judged on.")
@click.option("--train-limit", type=int, default=None, help="Recover on a stratified subset of N images.")
@click.option("--target", default="cpu", show_default=True,
              help="Where latency is measured: only this host's CPU (ONNX Runtime) for now.")
@click.option("--threads", type=int, default=None, help="Threads for torch and for both ONNX Runtime sessions.")
@click.option("--bench-rounds", type=int, default=6, show_default=True,
              help="Alternating before/after latency windows (0 skips the measurement).")
@click.option("--bench-window", type=float, default=0.5, show_default=True, help="Seconds per latency window.")
@click.option("--require-speedup", type=float, default=None, metavar="PCT",
              help="Exit 1 unless the measured latency improved by at least PCT percent.")
@click.option("--seed", type=int, default=0, show_default=True)
@ui.artifact_output("Print the result as JSON.")
def prune_cmd(
    source: str,
    ratio: float,
    global_pruning: bool,
    round_to: int,
    weights: str,
    num_classes: int | None,
    img_size: int | None,
    finetune_data: str | None,
    epochs: int,
    distill: bool | None,
    lr: float | None,
    batch_size: int,
    val_split: float | None,
    test_split: float | None,
    max_drop: float | None,
    confidence: float,
    train_limit: int | None,
    target: str,
    threads: int | None,
    bench_rounds: int,
    bench_window: float,
    require_speedup: float | None,
    seed: int,
    overwrite: bool,
    as_json: bool,
    output: Path,
) -> None:
    """Prune channels of ARTIFACT_OR_MODEL (structured), recover, and measure whether it got faster.

    ARTIFACT_OR_MODEL is an FP32 artifact directory with PyTorch weights (from
    'edgekit finetune', 'edgekit export' or an earlier prune) or a zoo model
    name with --weights. Quantized artifacts are refused: prune first, then
    quantize.

    Writes OUTPUT/model.onnx (checked, parity-tested), OUTPUT/checkpoint.safetensors
    and OUTPUT/prune_config.json (the pruned model rebuilds from these without
    pickle) and OUTPUT/edgekit.json with the lineage and params / MACs /
    measured latency before and after. MACs are not latency: the verdict is
    the measured one ("faster by X%", "no measurable gain" or "slower") and
    a pruned model that is not faster is still written (exit 0) unless
    --require-speedup asks for a minimum. With --finetune, the recovered
    model's accuracy is checked against the unpruned model's on the data's
    test split (--max-drop: accepted on the validation upper bound); a
    failed accuracy verdict exits 1 with the artifact kept, marked failed.
    """
    from edgekit.core.errors import CheckFailed, UsageError
    from edgekit.optimize.prune.prune import PruneOptions, prune

    if require_speedup is not None and bench_rounds == 0:
        raise UsageError("--require-speedup needs a latency measurement; drop --bench-rounds 0")
    if require_speedup is not None and not (0 <= require_speedup < 100):
        raise UsageError(f"--require-speedup must be a percentage in [0, 100), got {require_speedup}")
    opts = PruneOptions(
        source=source, output=output, ratio=ratio, round_to=round_to, global_pruning=global_pruning,
        weights=weights, num_classes=num_classes, img_size=img_size, finetune=finetune_data, epochs=epochs,
        distill=distill, lr=lr, batch_size=batch_size, val_split=val_split, test_split=test_split,
        max_drop=max_drop, confidence=confidence, train_limit=train_limit,
        target=target, threads=threads, bench_rounds=bench_rounds, bench_window_s=bench_window, seed=seed,
        overwrite=overwrite,
    )
    if not as_json and not ui.quiet() and ui.stderr.is_terminal:
        from edgekit.cli.finetune import RichTrainProgress

        with RichTrainProgress() as bar:
            result = prune(opts, progress=bar)
    else:
        result = prune(opts)  # a failed accuracy verdict raises CheckFailed (exit 1) after writing the artifact
    failed = require_speedup is not None and not result.meets(require_speedup)
    if as_json:
        ui.print_json(result.to_json())
    else:
        _print(result)
    if failed:
        raise CheckFailed(
            f"pruning did not meet --require-speedup {require_speedup:g}%: {result.verdict.text}",
            hint=f"the artifact was written to {result.artifact}; try --round-to 16, another --ratio, or keep the "
            "unpruned model",
        )


def _print(result: PruneResult) -> None:
    s = result.summary
    out = ui.stdout
    out.print(f"[bold]{result.model}[/] pruned -> {result.artifact}  (ratio {s['ratio']}, round to {s['round_to']}, "
              f"{'global' if s['global'] else 'per-group'}; {s['method']})")
    p, m = s["params"], s["macs"]
    out.print(f"  params  {_fmt_count(p['before'])} -> {_fmt_count(p['after'])}  (-{p['reduction_pct']:.1f}%)")
    out.print(f"  MACs    {_fmt_count(m['before'])} -> {_fmt_count(m['after'])}  (-{m['reduction_pct']:.1f}%)")
    lat = s.get("latency")
    if lat:
        st = lat["settings"]
        out.print(f"  latency {lat['before_p50_ms']:.2f} ms -> {lat['after_p50_ms']:.2f} ms p50 "
                  f"(ONNX Runtime CPU, batch 1, {st.get('threads')} thread(s), {lat['rounds']} alternating rounds)")
    rec = s.get("recovery")
    if rec:
        t = rec["heldout_top1"]
        out.print(f"  validation top-1 (selects): unpruned {t['unpruned']:.2%}, pruned {t['pruned']:.2%}, "
                  f"recovered {t['recovered']:.2%}{' (distilled)' if rec['distill'] else ''}")
    acc = s.get("accuracy") or {}
    if acc.get("unpruned_test_top1") is not None:
        out.print(f"  test top-1 (reported): unpruned {acc['unpruned_test_top1']:.2%} -> "
                  f"{acc['pruned_test_top1']:.2%} on {acc['n_test']} images; accuracy {acc['verdict']}: "
                  f"{acc['statement']}")
    v = result.verdict
    style = "bold green" if v else "bold red" if v.kind == "slower" else "bold yellow"
    out.print(f"  [{style}]verdict: {v.text}[/]")
    if not v:
        out.print("  MACs are not latency: this pruned model is not an improvement on this CPU.")
