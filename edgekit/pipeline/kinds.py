"""The step kinds of ``edgekit run``: ONE table, kind -> tool, options, keys, cache sources, data, training.

A step kind names its tool (``module:function``) and the tool's options class (``module:Class``);
the keys its pipeline table accepts map onto that class's fields, so their types, ranges and
choices come from the options dataclass (:mod:`edgekit.core.options`), and the pipeline check
builds the tool's options and calls their ``check()``: the pipeline file, ``--dry-run`` and the
tool cannot disagree. ``sources`` are the edgekit files (globs under the package) whose content
makes a step's artifact; they are part of its cache key, and ``tests/test_pipeline.py`` proves they
cover the import closure of the tool and options modules. Adding a pass: its tool module and one
:class:`StepKind` here (see docs/architecture.md, "Adding a pass").
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.core.options import Rule, TomlRule, toml_rules

#: what every step's artifact depends on: the shared floors and this table
COMMON_SOURCES = ("core/*.py", "data/*.py", "zoo/*.py", "export/*.py", "runtime/**/*.py", "graph/*.py",
                  "pipeline/__init__.py", "pipeline/kinds.py")
#: the torch-free measurement core (``edgekit.bench`` imports all of it when any of it is imported)
BENCH_CORE = tuple(f"bench/{m}.py" for m in ("__init__", "accuracy", "environment", "harness", "memory", "paired",
                                              "stats"))
TRAIN_SOURCES = ("optimize/__init__.py", "optimize/train/*.py")
_TORCH = ("torch", "torchvision", "timm", "onnx", "onnxruntime", "onnxscript", "numpy", "Pillow")


@dataclass(frozen=True)
class StepInput:
    """What the pipeline hands a step: its table of keys and the run's context."""

    model: str
    weights: str
    params: Mapping[str, Any]
    data: str
    seed: int
    output: Path
    parent: Path | None = None
    overwrite: bool = False
    threads: int | None = None


def _never(params: Mapping[str, Any]) -> bool:
    return False


def _always(params: Mapping[str, Any]) -> bool:
    return True


@dataclass(frozen=True)
class StepKind:
    name: str
    #: "module:function" (called as ``tool(options, progress=...)``) and "module:Class" of its options
    tool: str
    options: str
    #: builds the options from a step's input
    make_options: Callable[[Any, StepInput], Any]
    #: pipeline-file key -> options field (the rule of each key is the field's)
    keys: Mapping[str, str]
    #: tool versions and edgekit source globs in the cache key
    tools: tuple[str, ...]
    sources: tuple[str, ...]
    #: a recipe kind ([[recipe]] table) or a model kind (what [[model]] makes)
    recipe: bool = True
    #: trains with torch: the result depends on the thread count
    trains: bool = False
    #: whether a step with these params reads the pipeline's data
    needs_data: Callable[[Mapping[str, Any]], bool] = _never
    #: keys only the pipeline has (not options fields), with their own types and rules
    extra_keys: Mapping[str, tuple[tuple[type, ...], Rule]] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    #: the tool takes a TrainProgress (else a ``Callable[[str], None]``)
    train_progress: bool = False


def _load(ref: str) -> Any:
    module, name = ref.split(":")
    return getattr(importlib.import_module(module), name)


def options_class(kind: StepKind) -> type:
    return _load(kind.options)  # type: ignore[no-any-return]


@functools.cache
def key_rules(name: str) -> dict[str, TomlRule]:
    """``key -> (types, check, wants)`` of a kind's pipeline table, from its options fields."""
    kind = KINDS[name]
    rules = toml_rules(options_class(kind), kind.keys)
    for key, (types, rule) in kind.extra_keys.items():
        rules[key] = (types, rule.ok, rule.wants)
    return rules


def make_options(kind: StepKind, step: StepInput) -> Any:
    return kind.make_options(options_class(kind), step)


def run_tool(kind: StepKind, step: StepInput, *, progress: Any) -> Any:
    """Make the artifact of a step at ``step.output`` (the tool stages it and renames it into place)."""
    return _load(kind.tool)(make_options(kind, step), progress=progress if kind.train_progress else progress.message)


# --- how each kind's table becomes its tool's options -----------------------------------------------------------------

def _finetune(cls: Any, s: StepInput) -> Any:
    ft = dict(s.params)
    threads = ft.pop("threads", s.threads)  # the file's training threads win over --threads
    return cls(model=s.model, output=s.output, data=s.data, weights=s.weights, seed=int(ft.pop("seed", s.seed)),
               overwrite=s.overwrite, threads=threads, **ft)


def _export(cls: Any, s: StepInput) -> Any:
    from edgekit.export.onnx_export import Exporter

    exp = dict(s.params)
    if "exporter" in exp:
        exp["exporter"] = Exporter(exp["exporter"])
    return cls(model=s.model, output=s.output, weights=s.weights, overwrite=s.overwrite, threads=s.threads,
               seed=s.seed, **exp)


def _calib_spec(data: str) -> str:
    return "embedded:train" if data in ("embedded", "embedded:heldout") else data


def _eval_spec(data: str) -> str | None:
    """The pipeline's own data for a quantize step's evaluation (its recorded validation/test splits are used);
    None for the embedded set (quantize's default: its validation and test splits)."""
    return None if data.split(":")[0] == "embedded" else data


def _quantize(cls: Any, s: StepInput) -> Any:
    q = {k: v for k, v in s.params.items() if k != "seed"}
    target = q.pop("for", None)
    return cls(artifact=s.parent, output=s.output, calib=_calib_spec(s.data), eval=_eval_spec(s.data),
               target=target, seed=s.seed, overwrite=s.overwrite, threads=s.threads, **q)


def _prune(cls: Any, s: StepInput) -> Any:
    p = {k: v for k, v in s.params.items() if k != "seed"}
    epochs = p.pop("finetune_epochs", 0)
    recover = {"finetune": s.data, "epochs": epochs} if epochs else {"finetune": None}
    return cls(source=str(s.parent), output=s.output, seed=s.seed, overwrite=s.overwrite, threads=s.threads,
               **recover, **p)


def _recovers(params: Mapping[str, Any]) -> bool:
    return bool(params.get("finetune_epochs"))


def _same(*names: str) -> dict[str, str]:
    return {n: n for n in names}


KINDS: dict[str, StepKind] = {k.name: k for k in (
    StepKind(
        "finetune", "edgekit.optimize.train.finetune:finetune", "edgekit.optimize.train.finetune:FinetuneOptions",
        _finetune, _same("epochs", "img_size", "batch_size", "lr", "weight_decay", "label_smoothing",
                         "freeze_backbone", "select", "seed", "train_limit", "opset", "threads"),
        _TORCH + ("safetensors",), COMMON_SOURCES + TRAIN_SOURCES,
        recipe=False, trains=True, needs_data=_always, train_progress=True,
    ),
    StepKind(
        "export", "edgekit.export.pipeline:export_model", "edgekit.export.pipeline:ExportOptions",
        _export, _same("img_size", "opset", "exporter", "dynamic_batch"), _TORCH, COMMON_SOURCES, recipe=False,
    ),
    StepKind(
        "quantize", "edgekit.optimize.quant.quantize:quantize", "edgekit.optimize.quant.quantize:QuantizeOptions",
        _quantize, {**_same("precision", "method", "preset", "calib_size", "max_drop", "eval_size", "batch",
                            "max_iterations"), "for": "target"},
        ("onnx", "onnxruntime", "openvino", "nncf", "numpy", "Pillow"),
        COMMON_SOURCES + BENCH_CORE + ("optimize/__init__.py", "optimize/quant/*.py", "targets/*.toml",
                                        "bench/budget.py"),
        needs_data=_always,
    ),
    StepKind(
        "prune", "edgekit.optimize.prune.prune:prune", "edgekit.optimize.prune.prune:PruneOptions",
        _prune, _same("ratio", "round_to", "global_pruning", "distill", "lr", "batch_size", "train_limit",
                      "min_gain", "bench_rounds", "bench_window_s"),
        ("torch", "torchvision", "timm", "torch-pruning", "onnx", "onnxruntime", "onnxscript", "numpy", "Pillow",
         "safetensors"),
        COMMON_SOURCES + TRAIN_SOURCES + BENCH_CORE + ("optimize/prune/*.py", "bench/paired_latency.py",
                                                       "bench/budget.py"),
        trains=True, needs_data=_recovers, train_progress=True,
        extra_keys={"finetune_epochs": ((int,), Rule(lambda v: v >= 0, ">= 0"))},
        required=("ratio",),
    ),
)}


def recipe_kinds() -> tuple[str, ...]:
    """The kinds a [[recipe]] table may name, in table order (read when a file is parsed, not at import)."""
    return tuple(k.name for k in KINDS.values() if k.recipe)
