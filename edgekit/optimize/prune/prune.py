"""``edgekit prune``: structured channel pruning, optional recovery, and a measured verdict.

Order of work: validate every option and the output directory; load the
model to prune (an FP32 artifact with its weights, or a zoo model; a
quantized artifact is refused); export the unpruned model to ONNX (the
"before" graph); if recovering, cache the data and score the unpruned model
on the held-out split; prune the channels (:mod:`edgekit.optimize.prune.structure`);
recover by fine-tuning with knowledge distillation from the unpruned model
(the shared loop in :mod:`edgekit.optimize.train.distill`); save the pruned
weights as safetensors plus the channel configuration, rebuild the model from
those files and check its logits equal the pruned model's; export that
rebuilt model through :func:`edgekit.export.export_model` (graph check,
parity); profile both ONNX graphs (params, MACs) and measure both in ONNX
Runtime on this CPU in alternating windows; write the verdict into the
manifest. Everything is assembled in a staging directory: the output holds a
complete artifact or nothing.

The latency verdict is information, not a failure: a pruned model that is
not measurably faster is still written, and says so (``slower`` / ``no
measurable gain`` / ``faster by X%``). :meth:`PruneResult.meets` turns a
required speed-up into a pass/fail.

Accuracy is checked like ``edgekit quantize``'s: with recovery data, the
unpruned and the recovered model are compared, paired, on the data's
**validation** split (recovery keeps its best validation epoch there) and
**test** split (reported). With ``--max-drop`` the recovered model is
accepted only when the upper ``--confidence`` bound of its validation drop is
within the budget (:mod:`edgekit.bench.budget`); a break on test is flagged.
Without it, a drop over ``accuracy.DEFAULT_BUDGET_PTS`` that the test split
confirms (the paired interval's lower end above it) fails. A failed verdict
writes the artifact, marked ``"verdict": "failed"`` in ``extra.prune.accuracy``,
and raises :class:`CheckFailed` (exit 1).
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edgekit.bench.paired_latency import DEFAULT_MIN_GAIN, NOT_MEASURED, PairedLatency, Verdict
from edgekit.core.atomic import check_output_dir, staged_dir
from edgekit.core.errors import CheckFailed, DataError, UsageError
from edgekit.core.lazy import require
from edgekit.core.manifest import MANIFEST_NAME, LineageStep, load_artifact
from edgekit.core.options import COUNT, Rule, at_least, check_fields, opt, positive
from edgekit.export.onnx_export import OPSET_RULE
from edgekit.optimize.prune import source as prune_source
from edgekit.optimize.prune.accuracy import check_accuracy, logits
from edgekit.optimize.prune.structure import RATIO_RULE, ROUND_TO_RULE, StructureReport, check_ratio, check_round_to
from edgekit.optimize.train.loop import TrainConfig, TrainProgress, TrainRecord, as_progress

log = logging.getLogger(__name__)

#: only the local CPU can be measured by prune itself
TARGETS = ("cpu",)
LR_RECOVERY = 1e-3
BENCH_SAMPLES = 16


@dataclass(frozen=True)
class PruneOptions:
    """What ``edgekit prune`` takes; see the CLI help for each field."""

    source: str | Path
    output: Path
    ratio: float = opt(0.3, rule=RATIO_RULE, help="Fraction of channels removed from each prunable group.")
    round_to: int = opt(8, rule=ROUND_TO_RULE, help="Round kept channel counts to a multiple of this.")
    global_pruning: bool = opt(False, help="Rank channels across layers (with a per-layer floor).")
    weights: str = "imagenet"
    num_classes: int | None = None
    img_size: int | None = None
    finetune: str | Path | None = None
    epochs: int = opt(5, rule=COUNT, help="Recovery epochs.")
    distill: bool | None = opt(None, help="Recover by distillation from the unpruned model.")
    lr: float | None = opt(None, rule=positive(), help="Recovery learning rate.")
    batch_size: int = opt(64, rule=at_least(2), help="Recovery batch size.")
    val_split: float | None = None
    test_split: float | None = None
    max_drop: float | None = opt(None, rule=Rule(lambda v: 0 < v <= 100, "in (0, 100] (points of top-1)"),
                                 help="Accuracy budget in top-1 points against the unpruned model.")
    confidence: float = opt(0.95, rule=Rule(lambda v: 0.5 <= v < 1, "in [0.5, 1)"),
                            help="One-sided confidence of the upper bound --max-drop is judged on.")
    train_limit: int | None = opt(None, rule=at_least(2), help="Recover on at most this many images.")
    target: str = "cpu"
    threads: int | None = opt(None, rule=at_least(1, ">= 1"), help="Torch and ONNX Runtime threads.")
    bench_rounds: int = opt(6, rule=at_least(0, ">= 0 (0 skips the measurement)"), help="Paired latency rounds.")
    bench_window_s: float = opt(0.5, rule=positive(), help="Seconds per latency window.")
    min_gain: float = opt(DEFAULT_MIN_GAIN, rule=Rule(lambda v: 0.0 <= v < 1.0, "in [0, 1)"),
                          help="Smallest latency gain called faster.")
    opset: int = opt(17, rule=OPSET_RULE, help="ONNX opset of the exported artifact.")
    seed: int = 0
    overwrite: bool = False

    @property
    def recover(self) -> bool:
        return self.finetune is not None

    @property
    def use_distill(self) -> bool:
        return self.recover and (self.distill is None or bool(self.distill))

    def validate(self) -> None:
        """Every value (:meth:`check`), then the output directory."""
        self.check()
        check_output_dir(self.output, overwrite=self.overwrite)

    def check(self) -> None:
        """The values alone (no file is touched): what ``edgekit run --dry-run`` checks."""
        check_ratio(self.ratio)
        check_round_to(self.round_to)
        check_fields(self)
        if str(self.target).strip().lower() not in TARGETS:
            from edgekit.core.targets import load_target

            load_target(str(self.target))  # an unknown name gets the close matches
            raise UsageError(
                f"prune measures latency on this host only (--target cpu), not on {self.target!r}",
                hint=f"prune with --target cpu, then run 'edgekit bench --target {self.target}' "
                "on the pruned and the original artifact",
            )
        if self.distill and not self.recover:
            raise UsageError("--distill needs --finetune DATA: distillation is how the pruned model recovers",
                             hint="add --finetune embedded (or your ImageFolder) and --epochs N")
        if self.max_drop is not None and not self.recover:
            raise UsageError("--max-drop needs --finetune DATA: the accuracy check runs on its validation and test "
                             "splits", hint="add --finetune with the data the model was trained on")

    def train_config(self) -> TrainConfig:
        return TrainConfig(epochs=self.epochs, lr=self.lr or LR_RECOVERY, select="best",
                           warmup_epochs=min(1.0, self.epochs / 5))


@dataclass(frozen=True)
class Recovery:
    """Held-out top-1 of the unpruned, the pruned and the recovered model (same images)."""

    unpruned_top1: float
    pruned_top1: float
    recovered_top1: float
    distill: bool
    record: TrainRecord
    dataset: dict[str, Any]
    same_split_as_parent: bool | None

    def to_json(self) -> dict[str, Any]:
        return {
            "heldout_top1": {"unpruned": self.unpruned_top1, "pruned": self.pruned_top1,
                             "recovered": self.recovered_top1},
            "distill": self.distill,
            "teacher": "the unpruned model" if self.distill else None,
            "epochs": len(self.record.epochs),
            "selected_epoch": self.record.selected_epoch,
            "selection": "best validation epoch; these top-1s are on the validation split (optimistic); the "
                         "reported ones are in prune.accuracy (test split)",
            "same_split_as_parent": self.same_split_as_parent,
            "dataset": self.dataset.get("source"),
            "dataset_fingerprint": self.dataset.get("fingerprint"),
        }


@dataclass(frozen=True)
class PruneResult:
    """The written artifact, what was pruned, what it measured and the verdict."""

    artifact: Path
    model: str
    structure: StructureReport
    params: tuple[int, int]
    macs: tuple[int, int]
    latency: PairedLatency | None
    verdict: Verdict
    recovery: Recovery | None
    reload_max_abs_diff: float
    seconds: float
    summary: dict[str, Any] = field(default_factory=dict)

    def meets(self, required_speedup_pct: float) -> bool:
        """True when the measured verdict is "faster" by at least ``required_speedup_pct`` percent."""
        pct = self.verdict.speedup_pct
        return bool(self.verdict) and pct is not None and pct >= float(required_speedup_pct)

    def to_json(self) -> dict[str, Any]:
        return {"artifact": str(self.artifact), "model": self.model, **self.summary, "seconds": self.seconds}


def _reduction(before: int, after: int) -> dict[str, Any]:
    return {"before": before, "after": after,
            "reduction_pct": 100.0 * (1 - after / before) if before else None}


def prune(options: PruneOptions, *, progress: TrainProgress | Callable[[str], None] | None = None) -> PruneResult:
    """Prune ``options.source`` and write the artifact to ``options.output``; see the module docstring."""
    t0 = time.perf_counter_ns()
    bar = as_progress(progress)
    options.validate()
    torch = require("torch", purpose="pruning")
    require("torch_pruning", purpose="structured pruning")
    require("safetensors", purpose="writing the pruned checkpoint")
    from edgekit.export.onnx_export import export_torch_to_onnx
    from edgekit.optimize.prune.structure import prune_structure
    from edgekit.optimize.train.loop import deterministic

    bar.message(f"loading {options.source}")
    src = prune_source.resolve(options.source, weights=options.weights, num_classes=options.num_classes,
                               img_size=options.img_size)
    model = src.loaded.model.eval()
    h, w = (int(v) for v in src.preprocess.input_size)
    with tempfile.TemporaryDirectory(prefix="edgekit-prune-") as tmp_name, \
            deterministic(options.seed, options.threads) as threads:
        tmp = Path(tmp_name)
        before_onnx = tmp / "before.onnx"
        bar.message("exporting the unpruned model (the 'before' graph)")
        export_torch_to_onnx(model, before_onnx, input_shape=(1, 3, h, w), opset=options.opset)
        loaders, data_info, data = _recovery_data(options, src) if options.recover else (None, None, None)
        from edgekit.optimize.train.loop import evaluate

        unpruned_top1 = evaluate(model, loaders.heldout)[1] if loaders is not None else None
        refs = (logits(model, data.validation), logits(model, data.test)) if data is not None else None
        teacher = copy.deepcopy(model).eval() if options.use_distill else None
        bar.message(f"pruning {src.entry.name}: ratio {options.ratio}, round to {options.round_to}, "
                    f"{'global' if options.global_pruning else 'per-group'} ranking")
        report = prune_structure(model, src.entry, ratio=options.ratio, round_to=options.round_to,
                                 global_pruning=options.global_pruning, input_size=(h, w))
        recovery = None
        if loaders is not None:
            recovery = _recover(options, model, teacher, loaders, data_info, src, unpruned_top1, bar)
        del teacher
        accuracy = check_accuracy(options, model, data, refs, bar) if data is not None and refs is not None else None
        reloaded, diff, files = _save_and_reload(model, src, report, tmp / "pruned", (h, w), torch)
        art, prof, latency = _export_and_measure(options, src, reloaded, report, recovery, files, before_onnx,
                                                  threads, bar, accuracy)
    verdict = latency.verdict if latency is not None else Verdict(NOT_MEASURED, "not measured (--bench-rounds 0)")
    summary = art.manifest.extra["prune"]
    result = PruneResult(
        artifact=art.path, model=src.entry.name, structure=report,
        params=(prof[0].params, prof[1].params), macs=(prof[0].macs, prof[1].macs),
        latency=latency, verdict=verdict, recovery=recovery, reload_max_abs_diff=diff,
        seconds=(time.perf_counter_ns() - t0) / 1e9, summary=summary,
    )
    bar.message(f"verdict: {verdict.text}")
    if accuracy is not None and accuracy["verdict"] == "failed":
        raise CheckFailed(accuracy["reason"], hint=f"the artifact was kept in {art.path}, marked \"verdict\": "
                                                   "\"failed\"; lower --ratio, recover longer, or raise --max-drop")
    return result


def _recovery_data(options: PruneOptions, src: prune_source.Source) -> tuple[Any, dict[str, Any], Any]:
    from edgekit.data.sampling import check_labels_match
    from edgekit.optimize.train.augment import AugmentConfig
    from edgekit.optimize.train.batches import Loaders
    from edgekit.optimize.train.splits import prepare

    data = prepare(options.finetune, src.preprocess, val_split=options.val_split, test_split=options.test_split,
                   seed=options.seed, train_limit=options.train_limit)
    classes = data.train.classes
    n = src.loaded.num_classes
    if len(classes) != n:
        raise DataError(f"--finetune data has {len(classes)} classes, the model {n} outputs",
                        hint="recover with the data the model was fine-tuned on")
    import numpy as np

    mapping = check_labels_match(classes, src.labels, num_classes=n)
    if not np.array_equal(mapping, np.arange(n)):
        raise DataError("the --finetune data's classes are not in the model's label order",
                        hint="use the dataset (and class folders) the model was trained on")
    loaders = Loaders.from_caches(data.train, data.validation, batch_size=options.batch_size, seed=options.seed,
                                  augment=AugmentConfig())
    return loaders, data.info, data


def _recover(options: PruneOptions, model: Any, teacher: Any, loaders: Any, data_info: dict[str, Any],
             src: prune_source.Source, unpruned_top1: float | None, bar: TrainProgress) -> Recovery:
    from edgekit.optimize.train.distill import train
    from edgekit.optimize.train.loop import evaluate

    pruned_top1 = evaluate(model, loaders.heldout)[1]
    same = None
    key = "heldout_ids_sha256"  # the same held-out images: none of them trained on, by the parent or now
    if src.dataset is not None and src.dataset.get(key):
        same = src.dataset.get(key) == data_info.get(key)
        if not same:
            log.warning("the recovery data's test split differs from the parent's: the test score "
                        "may include images the parent was trained on")
    bar.message(f"recovering: {options.epochs} epoch(s) on {len(loaders.train.cache)} images"
                f"{', distilling from the unpruned model' if teacher is not None else ''} "
                f"(validation top-1: unpruned {unpruned_top1:.2%}, pruned {pruned_top1:.2%})")
    for p in model.parameters():
        p.requires_grad_(True)
    record = train(model, loaders, teacher=teacher, config=options.train_config(), progress=bar)
    model.eval()
    return Recovery(float(unpruned_top1 or 0.0), float(pruned_top1), float(record.heldout_top1),
                    teacher is not None, record, data_info, same)


def _save_and_reload(model: Any, src: prune_source.Source, report: StructureReport, directory: Path,
                     size: tuple[int, int], torch: Any) -> tuple[Any, float, dict[str, Path]]:
    """Save safetensors + channel configuration, rebuild from them, check the logits are equal."""
    from edgekit.data.sampling import parity_inputs
    from edgekit.optimize.prune import config as pc

    cfg = pc.channel_config(model, src.entry, report, num_classes=src.loaded.num_classes,
                            build_kwargs=src.build_kwargs)
    pc.save_pruned(model, cfg, directory)
    reloaded, _ = pc.load_pruned_files(directory / pc.CONFIG_NAME, directory / pc.CHECKPOINT_NAME)
    x, _ = parity_inputs(src.preprocess, n_real=4, n_random=1, seed=0)
    with torch.no_grad():
        a, b = model(torch.from_numpy(x)), reloaded(torch.from_numpy(x))
    diff = float((a - b).abs().max())
    if diff > 1e-4:  # pragma: no cover - a rebuild bug, not a user error
        raise RuntimeError(f"the pruned model rebuilt from its files differs from the pruned model (max |diff| {diff})")
    files = {name: directory / name for name in (pc.CHECKPOINT_NAME, pc.CONFIG_NAME)}
    return reloaded, diff, files


def _export_and_measure(options: PruneOptions, src: prune_source.Source, reloaded: Any, report: StructureReport,
                        recovery: Recovery | None, files: dict[str, Path], before_onnx: Path, threads: int,
                        bar: TrainProgress, accuracy: dict[str, Any] | None = None,
                        ) -> tuple[Any, tuple[Any, Any], PairedLatency | None]:
    from edgekit.core.atomic import sha256_file
    from edgekit.core.manifest import WeightsInfo
    from edgekit.export import ExportOptions, export_model
    from edgekit.graph.profile import profile_onnx
    from edgekit.optimize.prune.config import CHECKPOINT_NAME, CONFIG_NAME
    from edgekit.zoo.weights import LoadedModel

    final = Path(options.output).resolve()
    ck_sha, cfg_sha = sha256_file(files[CHECKPOINT_NAME]), sha256_file(files[CONFIG_NAME])
    finetune = recovery.to_json() if recovery is not None else None
    if recovery is not None:
        finetune.update({"epochs_asked": options.epochs, "lr": options.train_config().lr,
                         "batch_size": options.batch_size, "seed": options.seed})
    step = LineageStep.made("prune", parent=src.parent, recipe={
        "ratio": options.ratio, "round_to": options.round_to, "global": options.global_pruning,
        "method": report.method, "importance": report.importance, "finetune": finetune})
    extra: dict[str, Any] = {
        "checkpoint": {"file": CHECKPOINT_NAME, "sha256": ck_sha, "format": "safetensors",
                       "architecture": f"pruned: rebuild with {CONFIG_NAME} "
                                       "(edgekit.optimize.prune.config.load_pruned)"},
        "prune_config": {"file": CONFIG_NAME, "sha256": cfg_sha, "build_kwargs": dict(src.build_kwargs)},
        "build_kwargs": dict(src.build_kwargs),
    }
    if recovery is not None:
        extra["training"] = recovery.record.to_json()
        extra["dataset"] = recovery.dataset
    # pruned random weights stay random weights: no accuracy claim
    random_init = bool(src.loaded.weights.random_init) and recovery is None
    weights = WeightsInfo(origin="path", source=str(final / CHECKPOINT_NAME), sha256=ck_sha, random_init=random_init)
    with staged_dir(options.output, overwrite=options.overwrite) as stage:
        inner = stage / "artifact"
        bar.message("exporting the pruned model (graph check, parity)")
        art = export_model(
            ExportOptions(
                model=src.entry.name, output=inner, opset=options.opset, threads=options.threads, seed=options.seed,
                labels=src.labels, preprocess=src.preprocess, lineage=(*src.lineage, step), extra=extra,
                prebuilt=LoadedModel(reloaded, weights, src.loaded.num_classes, src.labels),
                extra_files=dict(files),
            ),
            progress=bar.message,
        )
        prof = (profile_onnx(before_onnx), profile_onnx(art.model_path))
        latency = None
        if options.bench_rounds > 0:
            bar.message(f"measuring latency before/after on this CPU ({threads} thread(s), "
                        f"{options.bench_rounds} alternating rounds)")
            latency = _measure(options, src, before_onnx, art.model_path, threads, bar)
        verdict = latency.verdict if latency is not None else Verdict(NOT_MEASURED, "not measured")
        prune_extra = {
            **report.to_json(layers=True),
            "params": _reduction(prof[0].params, prof[1].params),
            "macs": _reduction(prof[0].macs, prof[1].macs),
            "profile_source": "edgekit.graph.profile on the before/after ONNX graphs (batch 1)",
            "latency": latency.to_json() if latency is not None else None,
            "verdict": verdict.to_json(),
            "target": "cpu",
            "recovery": recovery.to_json() if recovery is not None else None,
            "accuracy": accuracy if accuracy is not None else {
                "verdict": "not measured", "reason": "no labelled data: give --finetune DATA to recover and check"},
        }
        manifest = replace(art.manifest, extra={**art.manifest.extra, "prune": prune_extra})
        for f in inner.iterdir():
            if f.name != MANIFEST_NAME:
                os.replace(f, stage / f.name)
        shutil.rmtree(inner)
        manifest.with_files(stage).write(stage)
    return load_artifact(options.output), prof, latency


def _measure(options: PruneOptions, src: prune_source.Source, before: Path, after: Path, threads: int,
             bar: TrainProgress) -> PairedLatency:
    from edgekit.bench.paired_latency import paired_onnx_latency
    from edgekit.data.embedded import load_embedded
    from edgekit.data.sampling import calibration_indices

    ds = load_embedded(split="test")
    idx = calibration_indices(ds.labels, BENCH_SAMPLES, seed=options.seed)
    samples = [{"input": ds.load(int(i), src.preprocess)[None]} for i in idx]
    return paired_onnx_latency(before, after, samples, threads=threads, rounds=options.bench_rounds,
                               window_s=options.bench_window_s, min_gain=options.min_gain, progress=bar.message)
