"""``edgekit finetune``: transfer learning of a zoo model onto the user's classes.

Order of work: validate every option and the output directory; resolve the
model; build it with its base weights (ImageNet, a checkpoint, or none) so a
missing weight file fails before the data is read; decode the data once into
memory and split it into train / validation / test (see
:mod:`edgekit.optimize.train.splits`); give the model a new head, freeze what
is asked; train with a seeded, deterministic loop, keeping the epoch with the
best *validation* top-1; measure the kept model once on the *test* split (the
number that is reported; it chose nothing); save the weights as
safetensors; export a checked ONNX artifact (parity against the trained
model) whose ``edgekit.json`` records labels, preprocessing, the training
record, the dataset fingerprint and the lineage, with the checkpoint in the
same directory. Nothing is written to the output until the artifact is
complete (it is assembled in a staging directory).
"""

from __future__ import annotations

import json
import logging
import struct
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edgekit.core.atomic import check_output_dir, sha256_file
from edgekit.core.errors import ArtifactError, UsageError
from edgekit.core.lazy import require
from edgekit.core.manifest import Artifact, LineageStep, ParentRef, WeightsInfo, load_artifact
from edgekit.core.options import COUNT, Rule, at_least, between, check_fields, one_of, opt, positive
from edgekit.core.versions import package_version
from edgekit.data import EMBEDDED
from edgekit.export.onnx_export import OPSET_RULE
from edgekit.optimize.train.augment import AugmentConfig
from edgekit.optimize.train.batches import Loaders
from edgekit.optimize.train.loop import (
    TrainConfig,
    TrainProgress,
    TrainRecord,
    as_progress,
    deterministic,
    warmup_steps,
)
from edgekit.optimize.train.splits import check_val_split, is_embedded, prepare

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.safetensors"
#: input size used on the embedded 28x28 silhouettes when --img-size is not given
EMBEDDED_IMG_SIZE = 48
#: learning rates by starting point (AdamW), measured on the embedded dataset
LR_SCRATCH = 5e-3
LR_PRETRAINED = 1e-3
LR_HEAD_ONLY = 5e-3
#: from scratch without any normalization layer (SqueezeNet): 5e-3 leaves it stuck at chance
LR_SCRATCH_NO_NORM = 1e-3


@dataclass(frozen=True)
class FinetuneOptions:
    """What ``edgekit finetune`` takes; see the CLI help for each field."""

    model: str
    output: Path
    data: str | Path | None = "embedded"
    weights: str = "imagenet"
    epochs: int = opt(10, rule=COUNT, help="Training epochs.")
    freeze_backbone: bool = opt(False, help="Train the new head only.")
    unfreeze_from: str | None = None
    img_size: int | None = opt(None, rule=between(16, 1024), help="Input size (default: the model's own).")
    val_split: float | None = None
    test_split: float | None = None
    seed: int = opt(0, rule=at_least(0, ">= 0"), help="Seed of the split, the initialization and the batches.")
    batch_size: int = opt(64, rule=at_least(2), help="Training batch size.")
    lr: float | None = opt(None, rule=positive(), help="Peak learning rate (AdamW; default by starting point).")
    weight_decay: float = opt(0.05, rule=at_least(0, ">= 0"), help="AdamW weight decay.")
    label_smoothing: float = opt(0.1, rule=Rule(lambda v: 0 <= v < 1, "in [0, 1)"), help="Label smoothing.")
    #: an AugmentConfig, or True/False for the default augmentations / none
    augment: AugmentConfig | bool = True
    select: str = opt("best", rule=one_of(("best", "last")), help="Keep the best validation epoch or the last.")
    train_limit: int | None = opt(None, rule=at_least(2), help="Train on at most this many images.")
    threads: int | None = opt(None, rule=at_least(1, ">= 1"), help="Torch threads.")
    opset: int = opt(17, rule=OPSET_RULE, help="ONNX opset of the exported artifact.")
    overwrite: bool = False

    def validate(self) -> None:
        """Every value (:meth:`check`), then the output directory."""
        self.check()
        check_output_dir(self.output, overwrite=self.overwrite)

    def check(self) -> None:
        """The values alone (no file is touched): what ``edgekit run --dry-run`` checks."""
        check_fields(self)
        check_val_split(self.val_split, self.test_split)
        if is_embedded(self.data) and self.data not in (None, EMBEDDED):
            raise UsageError(
                f"--data {self.data!r}: fine-tuning uses the embedded set's own train / validation / test splits",
                hint="pass --data embedded",
            )
        if self.freeze_backbone and self.unfreeze_from:
            raise UsageError("--freeze-backbone and --unfreeze-from exclude each other",
                             hint="--freeze-backbone trains the head only; --unfreeze-from STAGE trains STAGE onward")
        if (self.freeze_backbone or self.unfreeze_from) and str(self.weights).strip().lower() == "none":
            flag = "--freeze-backbone" if self.freeze_backbone else "--unfreeze-from"
            raise UsageError(
                f"{flag} with --weights none would freeze randomly initialized layers",
                hint="start from pretrained weights (--weights imagenet or a checkpoint), or drop the flag",
            )
        self.train_config().validate()

    @property
    def augment_config(self) -> AugmentConfig:
        if isinstance(self.augment, AugmentConfig):
            return self.augment
        return AugmentConfig() if self.augment else AugmentConfig.off()

    def default_lr(self) -> float:
        if self.lr is not None:
            return float(self.lr)
        if self.freeze_backbone:
            return LR_HEAD_ONLY
        return LR_SCRATCH if str(self.weights).strip().lower() == "none" else LR_PRETRAINED

    def train_config(self) -> TrainConfig:
        return TrainConfig(
            epochs=self.epochs,
            lr=self.default_lr(),
            weight_decay=self.weight_decay,
            label_smoothing=self.label_smoothing,
            select=self.select,
            warmup_epochs=min(1.0, self.epochs / 5),
        )


@dataclass(frozen=True)
class FinetuneResult:
    """The written artifact and how it was trained."""

    artifact: Path
    checkpoint: Path
    model: str
    img_size: int
    base_weights: WeightsInfo
    record: TrainRecord
    dataset: dict[str, Any]
    recipe: dict[str, Any]
    seconds: float
    #: the trained torch model in memory (eval mode), the one the checkpoint holds
    model_object: Any = field(default=None, repr=False, compare=False)

    #: top-1 of the kept model on the test split (reported; the validation split chose the epoch)
    test_top1: float | None = None

    @property
    def heldout_top1(self) -> float:
        """Top-1 on the validation split (it selected the epoch: optimistic; see ``test_top1``)."""
        return self.record.heldout_top1

    def to_json(self) -> dict[str, Any]:
        return {
            "artifact": str(self.artifact),
            "checkpoint": str(self.checkpoint),
            "model": self.model,
            "img_size": self.img_size,
            "base_weights": self.base_weights.to_json(),
            "heldout_top1": self.heldout_top1,
            "validation_top1": self.heldout_top1,
            "test_top1": self.test_top1,
            "selected_epoch": self.record.selected_epoch,
            "training": self.record.to_json(),
            "dataset": self.dataset,
            "recipe": self.recipe,
            "seconds": self.seconds,
        }


def _img_size(options: FinetuneOptions, entry: Any) -> int:
    if options.img_size is not None:
        return int(options.img_size)
    return EMBEDDED_IMG_SIZE if is_embedded(options.data) else int(entry.preprocess.input_size[0])


def finetune(
    options: FinetuneOptions, *, progress: TrainProgress | Callable[[str], None] | None = None
) -> FinetuneResult:
    """Fine-tune ``options.model`` on ``options.data`` and write the artifact to ``options.output``."""
    t0 = time.perf_counter_ns()
    bar = as_progress(progress)
    options.validate()
    from edgekit.zoo.registry import get_model

    entry = get_model(options.model)
    require("torch", purpose="fine-tuning")
    require("safetensors", purpose="writing the fine-tuned checkpoint")
    size = _img_size(options, entry)
    spec = entry.preprocess.with_input_size(size)
    cfg = options.train_config()
    from edgekit.optimize.train import transfer
    from edgekit.optimize.train.distill import train

    with deterministic(options.seed, options.threads) as threads:
        bar.message(f"building {entry.name} with weights '{options.weights}'")
        # the classes are needed for a random-init head; read the class list cheaply first
        classes = _class_names(options.data)
        base = transfer.build_base(entry, options.weights, img_size=size, num_classes=len(classes))
        if options.unfreeze_from is not None:
            transfer.check_stage(base.model, entry, options.unfreeze_from)  # before the slow data step
        if options.lr is None and base.weights.random_init and not transfer.has_normalization(base.model):
            cfg = replace(cfg, lr=LR_SCRATCH_NO_NORM)
        bar.message(f"reading and caching {options.data or 'embedded'} at {size}x{size}")
        data = prepare(options.data, spec, val_split=options.val_split, test_split=options.test_split,
                       seed=options.seed,
                       train_limit=options.train_limit)
        classes = data.train.classes
        model = base.model
        head = "random init" if base.weights.random_init else "new"
        if base.num_classes == len(classes) and base.weights.origin == "path":
            head = "kept from the checkpoint"
        elif not (base.weights.random_init and base.num_classes == len(classes)):
            torch = require("torch")
            torch.manual_seed(options.seed)
            transfer.replace_head(model, entry, len(classes))
        trainable = transfer.apply_freeze(
            model, entry, freeze_backbone=options.freeze_backbone, unfreeze_from=options.unfreeze_from
        )
        loaders = Loaders.from_caches(data.train, data.validation, batch_size=options.batch_size,
                                      seed=options.seed, augment=options.augment_config)
        bar.message(
            f"training {entry.name} ({trainable}) on {len(data.train)} images, "
            f"validation {len(data.validation)} (selects), test {len(data.test)} (reports), {cfg.epochs} epoch(s), "
            f"{threads} thread(s)"
        )
        record = train(model, loaders, config=cfg, progress=bar)
        test_top1 = _test_top1(model, data.test)
        bar.message(f"test top-1 {test_top1:.2%} on {len(data.test)} images (validation chose epoch "
                    f"{record.selected_epoch}: {record.heldout_top1:.2%})")
    data.info["test_top1"] = test_top1
    data.info["validation_top1"] = record.heldout_top1
    chance = 1.0 / len(classes)
    if record.heldout_top1 <= 1.5 * chance:
        log.warning("%s", did_not_learn_advice(entry.name, record.heldout_top1, chance, cfg.lr,
                                               random_init=base.weights.random_init, n_train=len(data.train)))
    for p in model.parameters():
        p.requires_grad_(True)
    recipe = {
        "epochs": cfg.epochs,
        "img_size": size,
        "batch_size": loaders.train.batch_size,
        "optimizer": cfg.optimizer,
        "lr": cfg.lr,
        "weight_decay": cfg.weight_decay,
        "label_smoothing": cfg.label_smoothing,
        "warmup_epochs": cfg.warmup_epochs,
        "warmup_steps": warmup_steps(cfg, len(loaders.train)),
        "schedule": "linear warm-up, cosine",
        "select": cfg.select,
        "trainable": trainable,
        "head": head,
        "augment": options.augment_config.to_json() if options.augment_config.enabled else None,
        "seed": options.seed,
        "threads": threads,
        "train_limit": options.train_limit,
        "build_kwargs": dict(base.build_kwargs),
        "torch": package_version("torch"),
        "timm": package_version("timm"),
        "torchvision": package_version("torchvision"),
    }
    artifact = _write_artifact(options, entry, model, classes, spec, base, record, data.info, recipe, bar)
    return FinetuneResult(
        artifact=artifact.path,
        checkpoint=artifact.path / CHECKPOINT_NAME,
        model=entry.name,
        img_size=size,
        base_weights=base.weights,
        record=record,
        dataset=data.info,
        recipe=recipe,
        seconds=(time.perf_counter_ns() - t0) / 1e9,
        model_object=model,
        test_top1=test_top1,
    )


def _test_top1(model: Any, test: Any) -> float:
    """Top-1 of ``model`` on the test split (eval mode; the training mode is restored)."""
    from edgekit.optimize.train.batches import EvalBatches
    from edgekit.optimize.train.loop import evaluate

    return float(evaluate(model, EvalBatches(test, batch_size=256))[1])


def _class_names(data: str | Path | None) -> tuple[str, ...]:
    from edgekit.data import load_dataset

    if is_embedded(data):
        from edgekit.data import embedded_class_names

        return embedded_class_names()
    return tuple(load_dataset(data).classes)


def did_not_learn_advice(model: str, top1: float, chance: float, lr: float, *, random_init: bool,
                         n_train: int) -> str:
    """The warning for a model left at chance, with advice that fits how it started."""
    head = f"{model} did not learn: held-out top-1 {100 * top1:.1f}% is at chance ({100 * chance:.1f}%)"
    if random_init:
        return (f"{head}; trained from scratch on {n_train} images at --lr {lr:g}: try --lr {lr / 5:g}, more "
                "--epochs, or start from pretrained weights (--weights imagenet, or your checkpoint)")
    return (f"{head}, although it started from pretrained weights: try --lr {lr / 5:g} (a high rate destroys the "
            "pretrained features), --freeze-backbone to train the head alone first, and check that each class "
            "folder holds the right images")


def save_checkpoint(model: Any, path: Path, *, metadata: dict[str, Any] | None = None) -> str:
    """Write ``model.state_dict()`` as safetensors (no pickle); returns its sha256.

    ``metadata`` is stored as one sorted-JSON string under the header key
    ``edgekit``: safetensors writes several metadata keys in a random order,
    which would make two identical trainings give files with different hashes.
    """
    st = require("safetensors.torch", purpose="writing the fine-tuned checkpoint")
    sd = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    meta = {"edgekit": json.dumps(metadata or {}, sort_keys=True)}
    st.save_file(sd, str(path), metadata=meta)
    return sha256_file(path)


def checkpoint_metadata(path: str | Path) -> dict[str, Any]:
    """The ``edgekit`` metadata of a checkpoint written by :func:`save_checkpoint` (header only)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    return json.loads(header.get("__metadata__", {}).get("edgekit", "{}"))


def _write_artifact(
    options: FinetuneOptions,
    entry: Any,
    model: Any,
    classes: tuple[str, ...],
    spec: Any,
    base: Any,
    record: TrainRecord,
    dataset: dict[str, Any],
    recipe: dict[str, Any],
    bar: TrainProgress,
) -> Artifact:
    from edgekit.export import ExportOptions, export_model
    from edgekit.zoo.weights import LoadedModel

    final_ckpt = Path(options.output).resolve() / CHECKPOINT_NAME
    with tempfile.TemporaryDirectory(prefix="edgekit-finetune-") as tmp:
        ckpt = Path(tmp) / CHECKPOINT_NAME
        meta = {"model": entry.name, "labels": list(classes), "img_size": int(spec.input_size[0]),
                "build_kwargs": recipe["build_kwargs"]}
        digest = save_checkpoint(model, ckpt, metadata=meta)
        weights = WeightsInfo(origin="path", source=str(final_ckpt), sha256=digest)
        lineage = (LineageStep.made("finetune", parent=ParentRef(model=entry.name, weights=base.weights.to_json()),
                                    recipe=recipe),)
        extra = {
            "training": record.to_json(),
            "dataset": dataset,
            "checkpoint": {"file": CHECKPOINT_NAME, "sha256": digest, "format": "safetensors"},
            "build_kwargs": recipe["build_kwargs"],
        }
        bar.message("exporting to ONNX and checking parity")
        return export_model(
            ExportOptions(
                model=entry.name,
                output=Path(options.output),
                opset=options.opset,
                overwrite=options.overwrite,
                threads=options.threads,
                seed=options.seed,
                labels=classes,
                preprocess=spec,
                lineage=lineage,
                extra=extra,
                prebuilt=LoadedModel(model.eval(), weights, len(classes), classes),
                extra_files={CHECKPOINT_NAME: ckpt},
            ),
            progress=bar.message,
        )


def load_finetuned(artifact: str | Path | Artifact) -> Any:
    """The PyTorch model of a fine-tuned artifact, from its checkpoint (a LoadedModel).

    For the steps that need the torch model back (pruning, distillation):
    the checkpoint's sha256 is verified, the architecture rebuilt as it was
    trained (input-size-dependent models included) and the labels attached.
    """
    art = artifact if isinstance(artifact, Artifact) else load_artifact(artifact)
    m = art.manifest
    ck = m.checkpoint
    if ck is None:
        raise ArtifactError(f"{art.path} holds no fine-tuned checkpoint", hint="make it with 'edgekit finetune'")
    path = art.path / ck.file
    if not path.is_file() or sha256_file(path) != ck.sha256:
        raise ArtifactError(f"{path} is missing or does not match its recorded sha256", hint="re-run edgekit finetune")
    from edgekit.optimize.train import transfer
    from edgekit.zoo.registry import get_model
    from edgekit.zoo.weights import LoadedModel, load_model

    entry = get_model(m.model)
    kwargs = m.build_kwargs or {}
    if "img_size" in kwargs:
        base = transfer._sized_from_checkpoint(entry, path, int(kwargs["img_size"]))
        if base is None:  # pragma: no cover
            raise ArtifactError(f"cannot rebuild {entry.name} at {kwargs['img_size']} px")
        loaded = LoadedModel(base.model, base.weights, base.num_classes, m.labels)
    else:
        loaded = load_model(entry, path)
        loaded = replace(loaded, labels=m.labels)
    return loaded
