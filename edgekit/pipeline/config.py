"""Pipeline files: which models, which optimization recipes, which target.

A pipeline is a TOML file::

    [pipeline]
    name = "embedded-default"
    target = "cpu"            # --target overrides it; or targets = ["cpu", "device:nano-01", ...]
    data = "embedded"         # fine-tune, calibration (its train split) and evaluation data
    seed = 0

    [bench]                   # edgekit bench settings for every artifact
    min_duration = 2.0
    min_iterations = 50
    warmup = 0.5
    eval_size = 400
    batch = [1]
    power = "auto"            # power source per latency window (energy per inference): auto | off | SOURCE

    [[model]]
    name = "mobilenetv3_small_100"
    weights = "none"          # imagenet | none | PATH (relative to this file)
    finetune = { epochs = 6, img_size = 48 }   # optional: fine-tune on `data` first

    [[recipe]]
    name = "fp32"             # the model's own artifact, no change
    [[recipe]]
    name = "int8-ort"
    quantize = { precision = "int8", method = "onnxruntime", preset = "auto", calib_size = 128 }
    [[recipe]]
    name = "pruned-30"
    prune = { ratio = 0.3, round_to = 8, finetune_epochs = 3 }

    [gate]                    # every derived artifact vs the FP32 row of its model, same run, same images
    max_top1_drop = 1.0       # points (or max_rel_drop, percent of the FP32 top-1)
    min_agreement = 0.97

Every model runs through every recipe; each resulting artifact is benched on
the target. Every table and key is checked when the file is read: an unknown
key, a wrong type or a value out of range is an error naming the file and the
field (with the close matches for a typo), so nothing passes silently and
``--dry-run`` catches it before any work.
"""

from __future__ import annotations

import difflib
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from edgekit.core.errors import UsageError
from edgekit.pipeline.kinds import KINDS, StepInput, key_rules, make_options, recipe_kinds
from edgekit.telemetry.detect import PowerChoice

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_PIPELINE = "embedded-default"
_NUM = (int, float)


@dataclass(frozen=True)
class ModelStep:
    name: str
    weights: str = "none"
    finetune: dict[str, Any] | None = None
    export: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Recipe:
    name: str
    kind: str | None = None  # None: the model's own artifact
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BenchSettings:
    min_duration: float = 2.0
    min_iterations: int = 50
    warmup: float = 0.5
    eval_size: int | None = 400
    batch: tuple[int, ...] = (1,)
    runtimes: tuple[str, ...] | None = None
    precisions: tuple[str, ...] | None = None
    power: str = "auto"  # as ``edgekit bench --power``: auto | off | a source (edgekit.telemetry.detect.PowerChoice)


@dataclass(frozen=True)
class GateSettings:
    """The run's own acceptance rule: each derived row vs its model's FP32 row on the same images."""

    max_top1_drop: float | None = None
    max_rel_drop: float | None = None
    min_agreement: float | None = None

    @property
    def enabled(self) -> bool:
        return any(v is not None for v in (self.max_top1_drop, self.max_rel_drop, self.min_agreement))


@dataclass(frozen=True)
class Pipeline:
    name: str
    origin: str
    target: str
    data: str
    seed: int
    models: tuple[ModelStep, ...]
    recipes: tuple[Recipe, ...]
    bench: BenchSettings
    gate: GateSettings = field(default_factory=GateSettings)
    #: every target the artifacts are benched on (``target`` is the first); ``device:NAME`` is a remote device
    targets: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "origin": self.origin,
            "target": self.target,
            "targets": list(self.targets or (self.target,)),
            "data": self.data,
            "seed": self.seed,
            "models": [dict(m.__dict__) for m in self.models],
            "recipes": [dict(r.__dict__) for r in self.recipes],
            "bench": {**self.bench.__dict__, "batch": list(self.bench.batch),
                      "runtimes": list(self.bench.runtimes) if self.bench.runtimes else None,
                      "precisions": list(self.bench.precisions) if self.bench.precisions else None},
            "gate": dict(self.gate.__dict__),
        }


# --- field rules: name -> (types, check or None, what the check wants) ------------------------------------------------

def _pos(v: Any) -> bool:
    return v > 0


def _nonneg(v: Any) -> bool:
    return v >= 0


def _rule(types: type | tuple[type, ...], check: Any = None, wants: str = "") -> tuple[Any, Any, str]:
    return types, check, wants


_POS_INT = _rule(int, _pos, "> 0")
_POS_NUM = _rule(_NUM, _pos, "> 0")
_STR = _rule(str, lambda v: bool(v.strip()), "a non-empty string")

PIPELINE_KEYS = {"name": _STR, "target": _STR, "targets": _rule(list), "data": _STR,
                 "seed": _rule(int, _nonneg, ">= 0")}
BENCH_KEYS = {
    "min_duration": _POS_NUM, "min_iterations": _POS_INT, "warmup": _rule(_NUM, _nonneg, ">= 0"),
    "eval_size": _POS_INT, "batch": _rule(list), "runtimes": _rule(list), "precisions": _rule(list),
    "power": _rule(str, lambda v: v in set(PowerChoice), "one of " + ", ".join(PowerChoice)),
}
MODEL_KEYS = {"name": _STR, "weights": _STR, "finetune": _rule(dict), "export": _rule(dict)}
GATE_KEYS = {
    "max_top1_drop": _rule(_NUM, lambda v: 0 <= v <= 100, "in [0, 100] points"),
    "max_rel_drop": _rule(_NUM, lambda v: 0 < v < 100, "in (0, 100) percent"),
    "min_agreement": _rule(_NUM, lambda v: 0 <= v <= 1, "a fraction in [0, 1]"),
}


def _bad(origin: str, path: str, msg: str) -> UsageError:
    return UsageError(f"{origin}: {path}: {msg}", hint="fix the pipeline file (see 'edgekit run --help')")


def _check(origin: str, path: str, d: Any, rules: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """``d`` must be a table of known keys whose values follow ``rules``; returns it."""
    if not isinstance(d, dict):
        raise _bad(origin, path, f"must be a table, got {type(d).__name__} {d!r}")
    for k in d:
        if k not in rules:
            close = difflib.get_close_matches(k, list(rules), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise _bad(origin, f"{path}.{k}" if path else k,
                       f"unknown key {k!r}{hint}; allowed: {', '.join(sorted(rules))}")
    for k in required:
        if k not in d:
            raise _bad(origin, path or "<top>", f"missing key {k!r}")
    for k, v in d.items():
        types, check, wants = rules[k]
        where = f"{path}.{k}" if path else k
        ok = isinstance(v, types) and not (isinstance(v, bool) and bool not in _tuple(types))
        if not ok:
            names = " or ".join(t.__name__ for t in _tuple(types))
            raise _bad(origin, where, f"must be {names.replace('list', 'an array').replace('dict', 'a table')}, "
                                      f"got {v!r}")
        if check is not None and not check(v):
            raise _bad(origin, where, f"must be {wants}, got {v!r}")
    return d


def _tuple(t: type | tuple[type, ...]) -> tuple[type, ...]:
    return t if isinstance(t, tuple) else (t,)


def _str_list(origin: str, path: str, v: list[Any]) -> tuple[str, ...]:
    if not v or not all(isinstance(x, str) and x.strip() for x in v):
        raise _bad(origin, path, f"must be a non-empty array of names, got {v!r}")
    return tuple(v)


def _resolve(value: str, base: Path | None) -> str:
    """A relative file path is relative to the pipeline file's directory."""
    p = Path(value).expanduser()
    return str(p if p.is_absolute() or base is None else base / p)


def parse_pipeline(data: dict[str, Any], *, origin: str, base_dir: Path | None = None) -> Pipeline:
    """Check and convert a parsed pipeline document (``base_dir``: where relative paths start)."""
    top = _check(origin, "", data, {"pipeline": _rule(dict), "bench": _rule(dict), "model": _rule(list),
                                    "recipe": _rule(list), "gate": _rule(dict)}, ("pipeline", "model"))
    p = _check(origin, "pipeline", top["pipeline"], PIPELINE_KEYS, ("name",))
    data_spec = p.get("data", "embedded")
    if not (data_spec == "embedded" or data_spec.startswith("embedded:")):
        data_spec = _resolve(data_spec, base_dir)
        if not Path(data_spec).exists():
            raise _bad(origin, "pipeline.data", f"{p['data']!r} does not exist (looked for {data_spec})")
    models = _models(origin, top["model"], base_dir)
    recipes = _recipes(origin, top.get("recipe", [{"name": "fp32"}]))
    b = _check(origin, "bench", top.get("bench", {}), BENCH_KEYS)
    batch = b.get("batch", [1])
    if not batch or not all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in batch):
        raise _bad(origin, "bench.batch", f"must be a non-empty array of positive integers, got {batch!r}")
    bench = BenchSettings(
        min_duration=float(b.get("min_duration", 2.0)),
        min_iterations=int(b.get("min_iterations", 50)),
        warmup=float(b.get("warmup", 0.5)),
        eval_size=b.get("eval_size", 400),
        batch=tuple(batch),
        runtimes=_str_list(origin, "bench.runtimes", b["runtimes"]) if "runtimes" in b else None,
        precisions=_str_list(origin, "bench.precisions", b["precisions"]) if "precisions" in b else None,
        power=b.get("power", "auto"),
    )
    g = _check(origin, "gate", top.get("gate", {}), GATE_KEYS)
    if "max_top1_drop" in g and "max_rel_drop" in g:
        raise _bad(origin, "gate", "give max_top1_drop or max_rel_drop, not both")
    gate = GateSettings(**{k: float(v) for k, v in g.items()})
    if "target" in p and "targets" in p:
        raise _bad(origin, "pipeline", "give target or targets, not both")
    targets = _str_list(origin, "pipeline.targets", p["targets"]) if "targets" in p else (p.get("target", "cpu"),)
    if len(set(targets)) != len(targets):
        raise _bad(origin, "pipeline.targets", f"each target once, got {list(targets)}")
    pipeline = Pipeline(name=p["name"], origin=origin, target=targets[0], data=data_spec,
                        seed=int(p.get("seed", 0)), models=models, recipes=recipes, bench=bench, gate=gate,
                        targets=tuple(targets))
    check_tool_options(pipeline)
    return pipeline


def check_tool_options(pipeline: Pipeline) -> None:
    """Build every step's tool options and call their ``check()`` (what each tool checks before it works).

    The key rules above come from the same option fields; this adds the tools' cross-field checks
    (e.g. prune's ``distill`` without recovery epochs), so ``--dry-run`` fails where the step would.
    """
    def check(kind: str, where: str, model: ModelStep, params: dict[str, Any]) -> None:
        step = StepInput(model=model.name, weights=model.weights, params=params, data=pipeline.data,
                         seed=pipeline.seed, output=Path("<step output>"),
                         parent=None if not KINDS[kind].recipe else Path("<parent artifact>"))
        try:
            make_options(KINDS[kind], step).check()
        except UsageError as e:
            raise _bad(pipeline.origin, where, e.message) from None

    for i, m in enumerate(pipeline.models):
        if m.finetune is not None:
            check("finetune", f"model[{i}].finetune", m, m.finetune)
        else:
            check("export", f"model[{i}].export", m, m.export)
        for j, r in enumerate(pipeline.recipes):
            if r.kind is not None and i == 0:  # a recipe's options do not depend on the model
                check(r.kind, f"recipe[{j}].{r.kind}", m, r.params)


def _models(origin: str, raw: list[Any], base_dir: Path | None) -> tuple[ModelStep, ...]:
    if not raw:
        raise _bad(origin, "model", "needs at least one [[model]] table")
    models = []
    for i, m in enumerate(raw):
        where = f"model[{i}]"
        m = _check(origin, where, m, MODEL_KEYS, ("name",))
        ft = _check(origin, f"{where}.finetune", m["finetune"], key_rules("finetune")) if "finetune" in m else None
        exp = _check(origin, f"{where}.export", m.get("export", {}), key_rules("export"))
        if ft is not None and set(exp) - {"opset"}:
            raise _bad(origin, f"{where}.export", f"{sorted(set(exp) - {'opset'})} do not apply to a fine-tuned "
                                                  "model: set them in finetune (e.g. finetune.img_size)")
        if ft is not None and "opset" in exp:
            ft = {**ft, "opset": ft.get("opset", exp["opset"])}
            exp = {}
        weights = m.get("weights", "none")
        if weights.lower() not in ("imagenet", "none"):
            weights = _resolve(weights, base_dir)
            if not Path(weights).is_file():
                raise _bad(origin, f"{where}.weights", f"{m['weights']!r} is not 'imagenet', 'none' or an existing "
                                                       f"file (looked for {weights})")
        models.append(ModelStep(m["name"], weights, ft, dict(exp)))
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise _bad(origin, "model", f"model names must be unique, got {names}")
    return tuple(models)


def _recipes(origin: str, raw: list[Any]) -> tuple[Recipe, ...]:
    if not raw:
        raise _bad(origin, "recipe", "needs at least one [[recipe]] table (name = \"fp32\" benches the model itself)")
    recipes = []
    for i, r in enumerate(raw):
        where = f"recipe[{i}]"
        r = _check(origin, where, r, {"name": _STR, **{k: _rule(dict) for k in recipe_kinds()}}, ("name",))
        kinds = [k for k in recipe_kinds() if k in r]
        if len(kinds) > 1:
            raise _bad(origin, where, f"has both {kinds}; make one recipe per step")
        kind = kinds[0] if kinds else None
        params: dict[str, Any] = {}
        if kind is not None:
            params = dict(_check(origin, f"{where}.{kind}", r[kind], key_rules(kind), KINDS[kind].required))
        if kind == "quantize":
            params.setdefault("precision", "int8")
        name = r["name"]
        if "/" in name or "\\" in name or name.startswith("."):
            raise _bad(origin, f"{where}.name", f"{name!r} must not contain '/' or '\\' or start with '.'")
        recipes.append(Recipe(name, kind, params))
    names = [r.name for r in recipes]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise _bad(origin, "recipe", f"recipe names must be unique; {dup} appear more than once in {names}")
    return tuple(recipes)


def load_pipeline(path: str | Path | None = None) -> Pipeline:
    """Load a pipeline file; None loads the embedded default shipped with edgekit."""
    base_dir: Path | None = None
    if path is None:
        text = resources.files("edgekit.pipeline").joinpath(f"{DEFAULT_PIPELINE}.toml").read_text(encoding="utf-8")
        origin = f"<embedded {DEFAULT_PIPELINE}>"
    else:
        p = Path(path)
        if not p.is_file():
            raise UsageError(f"pipeline file {p} does not exist",
                             hint="give a TOML pipeline file, or no argument for the embedded default")
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise UsageError(f"cannot read pipeline file {p}: {e}") from None
        origin = str(p)
        base_dir = p.resolve().parent
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{origin}: not valid TOML: {e}", hint="fix the pipeline file") from None
    return parse_pipeline(data, origin=origin, base_dir=base_dir)
