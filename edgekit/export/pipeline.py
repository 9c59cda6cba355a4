"""``edgekit export``: model + weights -> checked ONNX artifact with a manifest.

Order of work: validate every input (model name, opset, output directory,
weights) before the slow steps; build the model; export into a staging
directory; check the graph; prove parity; hash the files; write the manifest
last; rename the staging directory into place. Any failure (including a
parity failure or Ctrl-C) removes the staging directory, so the output
directory never holds a half-written artifact.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.core.atomic import check_output_dir, staged_dir
from edgekit.core.errors import ParityError, UsageError
from edgekit.core.lazy import require
from edgekit.core.manifest import MANIFEST_NAME, Artifact, LineageStep, Manifest, load_artifact
from edgekit.core.specs import PreprocessSpec, TensorSpec
from edgekit.core.versions import tool_versions
from edgekit.data.sampling import parity_inputs
from edgekit.export.check import check_graph
from edgekit.core.options import at_least, between, check_fields, opt
from edgekit.export.onnx_export import (
    BATCH_DIM, INPUT_NAME, OPSET_RULE, OUTPUT_NAME, Exporter, check_opset, export_torch_to_onnx,
)
from edgekit.export.parity import DEFAULT_REL_TOL, check_parity

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ExportOptions:
    """What ``edgekit export`` takes; see the CLI help for each field."""

    model: str
    output: Path
    weights: str = "imagenet"
    num_classes: int | None = opt(None, rule=at_least(1, ">= 1"), help="Classes of a new head.")
    img_size: int | None = opt(None, rule=between(16, 2048), help="Input size (default: the model's own).")
    batch: int = opt(1, rule=at_least(1, ">= 1"), help="Static batch size of the graph.")
    dynamic_batch: bool = opt(False, help="Make the batch dimension dynamic.")
    opset: int = opt(17, rule=OPSET_RULE, help="ONNX opset.")
    exporter: Exporter = opt(Exporter.AUTO, help="torch.onnx exporter.")
    parity_images: int = 8
    parity_random: int = 2
    rel_tol: float = DEFAULT_REL_TOL
    overwrite: bool = False
    threads: int | None = None
    seed: int = 0
    #: overrides for models trained by edgekit (finetune, prune): class names,
    #: preprocessing, lineage records and extra manifest fields
    labels: tuple[str, ...] | None = None
    preprocess: PreprocessSpec | None = None
    lineage: tuple[LineageStep, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    #: a model already built in memory (e.g. a pruned one); skips the zoo loader
    prebuilt: Any = None
    #: files copied into the artifact beside model.onnx (name -> source), hashed in the manifest
    extra_files: dict[str, Path] = field(default_factory=dict)

    def validate(self) -> None:
        """Every value (:meth:`check`), then the output directory."""
        self.check()
        check_output_dir(self.output, overwrite=self.overwrite)

    def check(self) -> None:
        """The values alone (no output is touched): what ``edgekit run --dry-run`` checks."""
        check_opset(self.opset)
        check_fields(self)
        if str(self.exporter) not in {e.value for e in Exporter}:
            raise UsageError(f"--exporter must be one of {', '.join(e.value for e in Exporter)}, got {self.exporter!r}")
        if self.parity_images < 1:
            raise UsageError(f"parity needs at least one real image, got {self.parity_images}")
        for name, src in self.extra_files.items():
            if not name or Path(name).name != name or name.startswith(".") or name in ("model.onnx", MANIFEST_NAME):
                raise UsageError(f"extra file name {name!r} must be a plain file name other than the artifact's own")
            if not Path(src).is_file():
                raise UsageError(f"extra file {src} for {name!r} does not exist")


def export_model(options: ExportOptions, *, progress: Progress | None = None) -> Artifact:
    """Export, check and prove parity; returns the written artifact."""
    say = progress or (lambda msg: log.info(msg))
    options.validate()
    from edgekit.zoo.registry import get_model
    from edgekit.zoo.weights import load_model

    entry = get_model(options.model)
    require("torch", purpose="export needs the PyTorch model")
    if options.prebuilt is not None:
        loaded = options.prebuilt
    else:
        say(f"building {entry.name} with weights '{options.weights}'")
        loaded = load_model(entry, options.weights, num_classes=options.num_classes)
    preprocess = options.preprocess or entry.preprocess
    if options.img_size is not None:
        preprocess = preprocess.with_input_size(options.img_size)
    labels = options.labels if options.labels is not None else loaded.labels
    if labels is not None and len(labels) != loaded.num_classes:
        raise UsageError(f"{len(labels)} labels given for a model with {loaded.num_classes} outputs")
    h, w = preprocess.input_size
    static = None if options.dynamic_batch else options.batch
    in_shape: tuple[int | str, ...] = (BATCH_DIM if static is None else static, 3, h, w)

    torch = require("torch")
    model = loaded.model.eval()

    def reference(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return np.concatenate([model(torch.from_numpy(x[i : i + 16])).numpy() for i in range(0, len(x), 16)])

    with staged_dir(options.output, overwrite=options.overwrite) as stage:
        onnx_path = stage / "model.onnx"
        say(f"exporting to ONNX (opset {options.opset}, exporter {options.exporter})")
        graph = export_torch_to_onnx(
            model,
            onnx_path,
            input_shape=(options.batch, 3, h, w),
            opset=options.opset,
            exporter=options.exporter,
            dynamic_batch=options.dynamic_batch,
        )
        say("checking the graph (onnx.checker full check, strict shape inference)")
        checks = check_graph(onnx_path)
        say("checking parity against PyTorch on real images")
        x, data_name = parity_inputs(
            preprocess, n_real=options.parity_images, n_random=options.parity_random, seed=options.seed
        )
        report = check_parity(
            onnx_path,
            reference,
            x,
            n_real=options.parity_images,
            data=data_name,
            static_batch=static,
            rel_tol=options.rel_tol,
            threads=options.threads,
        )
        if not report:
            raise ParityError(
                f"exported {entry.name} does not match PyTorch: " + "; ".join(report.failures()),
                hint="nothing was written; try --exporter dynamo or another --opset, and report it",
            )
        for name, src in options.extra_files.items():
            shutil.copyfile(src, stage / name)
        out_shape: tuple[int | str, ...] = (in_shape[0], loaded.num_classes)
        manifest = Manifest(
            model=entry.name,
            family=entry.family,
            source=f"{entry.source}:{entry.builder}",
            num_classes=loaded.num_classes,
            weights=loaded.weights,
            inputs=(TensorSpec(INPUT_NAME, in_shape, "float32", "NCHW"),),
            outputs=(TensorSpec(OUTPUT_NAME, out_shape, "float32"),),
            preprocess=preprocess,
            labels=labels,
            opset=graph.opset,
            exporter=str(graph.exporter),
            parity=report.to_json(),
            versions=tool_versions(),
            lineage=options.lineage,
            extra={
                "checks": checks,
                "external_data": graph.external_data,
                "requested_opset": options.opset,
                **({"weights_converter": loaded.converter} if getattr(loaded, "converter", None) else {}),
                **options.extra,
            },
        ).with_files(stage)
        manifest.write(stage)
    say(f"wrote {options.output}")
    return load_artifact(options.output)
