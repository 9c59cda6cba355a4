"""How each step kind calls its tool: the pipeline's recipe tables -> the tools' options.

This mapping decides what a step's artifact is, so its source is part of the
step keys (:data:`edgekit.pipeline.plan.SOURCES`); the rest of the run loop is
not.
"""

from __future__ import annotations

from typing import Any

from edgekit.core.errors import UsageError
from edgekit.pipeline.config import Pipeline
from edgekit.pipeline.plan import Step


def _calib_spec(data: str) -> str:
    return "embedded:train" if data in ("embedded", "embedded:heldout") else data


def _preload_ort_quantization() -> None:
    """Import ``onnxruntime.quantization`` before any FP16 conversion runs in this process.

    ``edgekit.optimize.quant.fp16`` imports ``onnxruntime.transformers.float16`` and then restores ``sys.path``,
    which removes the directory that package's ``__init__`` appended; a later first import of
    ``onnxruntime.quantization`` (an INT8 step after an FP16 step) then fails on ``from fusion_utils
    import ...``. Importing it first avoids that until fp16.py is fixed.
    """
    import importlib.util

    if importlib.util.find_spec("onnxruntime") is not None:
        importlib.import_module("onnxruntime.quantization")


def run_step(step: Step, pipeline: Pipeline, *, overwrite: bool, threads: int | None, progress: Any) -> None:
    """Make the artifact of ``step`` at its cache path (the tool stages it and renames it into place)."""
    out = step.path
    if step.kind == "finetune":
        from edgekit.optimize.train.finetune import FinetuneOptions, finetune

        ft = dict(step.model.finetune or {})
        ft_threads = ft.pop("threads", threads)  # the file's training threads win over --threads
        finetune(
            FinetuneOptions(
                model=step.model.name, output=out, data=pipeline.data, weights=step.model.weights,
                seed=int(ft.pop("seed", pipeline.seed)), overwrite=overwrite, threads=ft_threads, **ft,
            ),
            progress=progress,
        )
    elif step.kind == "export":
        from edgekit.export import ExportOptions, export_model
        from edgekit.export.onnx_export import Exporter

        exp = dict(step.model.export)
        if "exporter" in exp:
            exp["exporter"] = Exporter(exp["exporter"])
        export_model(
            ExportOptions(model=step.model.name, output=out, weights=step.model.weights, overwrite=overwrite,
                          threads=threads, seed=pipeline.seed, **exp),
            progress=progress.message,
        )
    elif step.kind == "quantize":
        from edgekit.optimize.quant.quantize import QuantizeOptions, quantize

        _preload_ort_quantization()

        assert step.parent is not None  # make_plan gives every recipe step its model step
        q = {k: v for k, v in step.params.items() if k != "seed"}
        target = q.pop("for", None)
        quantize(
            QuantizeOptions(artifact=step.parent.path, output=out, calib=_calib_spec(pipeline.data), target=target,
                            seed=pipeline.seed, overwrite=overwrite, threads=threads, **q),
            progress=progress.message,
        )
    elif step.kind == "prune":
        from edgekit.optimize.prune.prune import PruneOptions, prune

        assert step.parent is not None
        p = {k: v for k, v in step.params.items() if k != "seed"}
        epochs = p.pop("finetune_epochs", 0)
        recover = {"finetune": pipeline.data, "epochs": epochs} if epochs else {"finetune": None}
        prune(
            PruneOptions(source=str(step.parent.path), output=out, seed=pipeline.seed, overwrite=overwrite,
                         threads=threads, **recover, **p),
            progress=progress,
        )
    else:  # pragma: no cover - make_plan only makes the kinds above
        raise UsageError(f"unknown step kind {step.kind!r}")
