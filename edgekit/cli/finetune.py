"""``edgekit finetune``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from edgekit.cli import ui


class RichTrainProgress:
    """One rich progress bar per epoch on a terminal; nothing otherwise (the library logs)."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TimeElapsedColumn(),
            console=ui.stderr,
            transient=False,
        )
        self._task: Any = None
        self._epochs = 0

    def __enter__(self) -> RichTrainProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def message(self, text: str) -> None:
        self._progress.console.log(text)

    def epoch_start(self, epoch: int, epochs: int, steps: int) -> None:
        self._epochs = epochs
        self._task = self._progress.add_task(f"epoch {epoch}/{epochs}", total=steps, loss="-")

    def step(self, loss: float) -> None:
        self._progress.update(self._task, advance=1, loss=f"{loss:.3f}")

    def epoch_end(self, r: Any) -> None:
        self._progress.update(
            self._task,
            description=f"epoch {r.epoch}/{self._epochs} validation {r.heldout_top1:6.2%}",
            loss=f"{r.train_loss:.3f}",
        )


@click.command("finetune")
@click.option("--model", "-m", required=True, help="Zoo name or alias (see 'edgekit models').")
@click.option(
    "--data",
    default="embedded",
    show_default=True,
    help="'embedded' (the shipped animals set, its own train/validation/test splits), an ImageFolder DIR "
    "(<root>/<class>/<image>) or an .npz.",
)
@click.option(
    "--weights",
    default="imagenet",
    show_default=True,
    help="Starting point: 'imagenet' (published weights), a checkpoint PATH, or 'none' (train from scratch).",
)
@click.option("--epochs", type=int, default=10, show_default=True)
@click.option("--freeze-backbone", is_flag=True, help="Train the new head only.")
@click.option("--unfreeze-from", metavar="STAGE", default=None,
              help="Train STAGE (e.g. blocks.5, features.10) and everything after it; earlier layers stay frozen.")
@click.option("--img-size", type=int, default=None,
              help="Square training and deployment input size [default: 48 on the embedded set, else the model's].")
@click.option("--val-split", type=float, default=None,
              help="Validation fraction of each class (selects the epoch) for a folder/.npz [default: 0.1].")
@click.option("--test-split", type=float, default=None,
              help="Test fraction of each class (reported, never selects) for a folder/.npz [default: 0.2]; "
                   "the embedded set has its own splits.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split, initialization and batches.")
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--lr", type=float, default=None,
              help="Peak AdamW learning rate [default: 5e-3 from scratch (1e-3 without normalization layers, "
              "e.g. SqueezeNet), 1e-3 pretrained, 5e-3 head only].")
@click.option("--no-augment", is_flag=True, help="Train on the plain eval transform (no crop/shift/flip).")
@click.option("--train-limit", type=int, default=None, help="Train on a stratified subset of N images (quick trials).")
@click.option("--threads", type=int, default=None, help="torch intra-op threads (default: torch's).")
@ui.artifact_output("Print the result as JSON.")
def finetune_cmd(
    model: str,
    data: str,
    weights: str,
    epochs: int,
    freeze_backbone: bool,
    unfreeze_from: str | None,
    img_size: int | None,
    val_split: float | None,
    test_split: float | None,
    seed: int,
    batch_size: int,
    lr: float | None,
    no_augment: bool,
    train_limit: int | None,
    threads: int | None,
    overwrite: bool,
    as_json: bool,
    output: Path,
) -> None:
    """Fine-tune a zoo model on your classes (transfer learning).

    Replaces the classifier with one for the dataset's classes, trains with a
    seeded, deterministic loop, keeps the epoch with the best validation top-1,
    reports top-1 on the test split (never trained on, never selects), and writes OUTPUT/checkpoint.safetensors plus a checked ONNX artifact
    (OUTPUT/model.onnx, OUTPUT/edgekit.json with labels, preprocessing,
    training record, the three splits' id hashes).
    """
    from edgekit.optimize.train.augment import AugmentConfig
    from edgekit.optimize.train.finetune import FinetuneOptions, finetune

    opts = FinetuneOptions(
        model=model,
        output=output,
        data=data,
        weights=weights,
        epochs=epochs,
        freeze_backbone=freeze_backbone,
        unfreeze_from=unfreeze_from,
        img_size=img_size,
        val_split=val_split,
        test_split=test_split,
        seed=seed,
        batch_size=batch_size,
        lr=lr,
        augment=AugmentConfig.off() if no_augment else AugmentConfig(),
        train_limit=train_limit,
        threads=threads,
        overwrite=overwrite,
    )
    if not as_json and not ui.quiet() and ui.stderr.is_terminal:
        with RichTrainProgress() as bar:
            result = finetune(opts, progress=bar)
    else:
        result = finetune(opts)
    if as_json:
        ui.print_json(result.to_json())
        return
    rec = result.record
    ui.stdout.print(
        f"[bold]{result.model}[/] @ {result.img_size}px -> {result.artifact}  "
        f"test top-1 {result.test_top1:.2%} on {result.dataset.get('n_test')} test images (the validation split, "
        f"{rec.heldout_top1:.2%}, picked the model after {rec.selected_epoch}/{len(rec.epochs)} epochs; "
        f"{rec.n_train} train / {rec.n_heldout} validation images, {result.seconds:.0f} s)"
    )
    for e in rec.epochs:
        mark = "*" if e.epoch == rec.selected_epoch else " "
        ui.stdout.print(
            f" {mark} epoch {e.epoch:>3}  loss {e.train_loss:.4f}  train {e.train_top1:6.2%}  "
            f"validation {e.heldout_top1:6.2%}  {e.seconds:6.1f} s"
        )
