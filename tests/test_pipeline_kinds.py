"""The step-kind table of ``edgekit run``: cache sources cover each tool's import closure; keys are option fields.

The cache key of a step hashes the edgekit files its kind lists (``StepKind.sources``); a file that
makes the artifact but is not listed would give silently stale cache hits. The walk below follows
every ``import`` / ``from ... import`` of edgekit modules (top-level and lazy ones inside functions)
from the kind's tool and options modules and asserts each file reached is covered.
"""

from __future__ import annotations

import ast
import dataclasses
import fnmatch
import re
from pathlib import Path

import pytest

import edgekit
from edgekit.core.errors import UsageError
from edgekit.core.options import Rule, check_fields, opt
from edgekit.pipeline.kinds import KINDS, StepInput, StepKind, key_rules, make_options, options_class, recipe_kinds

PKG = Path(edgekit.__file__).resolve().parent


def module_file(name: str) -> Path | None:
    """The file of edgekit module ``name`` (a package's ``__init__.py``), or None if it is not one."""
    rel = Path(*name.split(".")[1:])
    for cand in (PKG / rel.with_suffix(".py"), PKG / rel / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def imported_modules(path: Path, own: str) -> set[str]:
    """Every edgekit module ``path`` imports anywhere in the file (relative imports resolved)."""
    out: set[str] = set()
    pkg = own if path.name == "__init__.py" else own.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "edgekit")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] != "edgekit":
                continue
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names if module_file(f"{base}.{a.name}"))
    return out


def closure(*roots: str) -> dict[str, Path]:
    """Files reached from ``roots`` (each module also pulls in its parent packages' ``__init__``)."""
    seen: dict[str, Path] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(2, len(parts)))  # parent packages run first
        f = module_file(name)
        if f is None or name in seen:
            continue
        seen[name] = f
        todo.extend(imported_modules(f, name))
    return seen


def covered(rel: str, patterns: tuple[str, ...]) -> bool:
    for p in patterns:
        if p.startswith("targets/"):
            continue
        if fnmatch.fnmatch(rel, p) or ("**/" in p and fnmatch.fnmatch(rel, p.replace("**/", ""))):
            return True
    return False


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_cache_sources_cover_the_import_closure(kind: str) -> None:
    k = KINDS[kind]
    files = closure(k.tool.split(":")[0], k.options.split(":")[0], "edgekit.pipeline.kinds")
    rels = sorted(f.relative_to(PKG).as_posix() for f in files.values())
    assert any(r.startswith("optimize/") or r.startswith("export/") for r in rels)  # the walk found the tool
    missing = [r for r in rels if r != "__init__.py" and not covered(r, k.sources)]
    assert not missing, f"{kind}: these files make its artifact but are not in its cache sources: {missing}"


def test_the_closure_walk_sees_lazy_imports() -> None:
    # quantize imports its method modules inside functions only; the walk must still reach them
    files = closure("edgekit.optimize.quant.quantize")
    assert "edgekit.optimize.quant.candidate" in files and "edgekit.optimize.quant.ort" in files


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_key_is_an_options_field_with_a_rule_or_a_plain_type(kind: str) -> None:
    k = KINDS[kind]
    fields = {f.name for f in dataclasses.fields(options_class(k))}
    assert set(k.keys.values()) <= fields
    rules = key_rules(kind)
    assert set(rules) == set(k.keys) | set(k.extra_keys)
    assert all(types for types, _, _ in rules.values())  # every key has a TOML type derived from its annotation


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_defaults_make_options_that_pass_their_own_check(kind: str) -> None:
    k = KINDS[kind]
    params = {"ratio": 0.3} if kind == "prune" else {}
    step = StepInput(model="mobilenetv3_small_100", weights="none", params=params, data="embedded", seed=0,
                     output=Path("out"), parent=Path("parent") if k.recipe else None)
    make_options(k, step).check()


def test_recipe_kinds_come_from_the_table() -> None:
    assert recipe_kinds() == tuple(n for n, k in KINDS.items() if k.recipe)
    assert set(recipe_kinds()) == {"quantize", "prune"}


@pytest.mark.parametrize("kind, key, bad", [
    ("finetune", "opset", 9), ("finetune", "train_limit", 1), ("export", "opset", 22),
    ("prune", "train_limit", 1), ("quantize", "calib_size", 8), ("prune", "ratio", 1.0),
])
def test_a_value_the_file_refuses_the_tool_refuses_too(kind: str, key: str, bad: object) -> None:
    """The same field rule decides both: the pipeline-file check and the tool's own ``check()``."""
    _, check, _ = key_rules(kind)[key]
    assert check is not None and not check(bad)
    k = KINDS[kind]
    params = {"ratio": 0.3} if kind == "prune" else {}
    step = StepInput(model="m", weights="none", params={**params, key: bad}, data="embedded", seed=0,
                     output=Path("out"), parent=Path("parent") if k.recipe else None)
    with pytest.raises(UsageError):
        make_options(k, step).check()


# --- adding a pass: an options class with field rules, a tool, and one StepKind ---------------------------------------

@dataclasses.dataclass(frozen=True)
class SparsifyOptions:
    """A pass that exists only in this test: what a new pass's options look like."""

    artifact: Path
    output: Path
    sparsity: float = opt(0.5, rule=Rule(lambda v: 0 < v < 1, "in (0, 1)"), help="Fraction of weights zeroed.")
    seed: int = 0

    def check(self) -> None:
        check_fields(self)


CALLS: list[SparsifyOptions] = []


def sparsify(options: SparsifyOptions, *, progress: object = None) -> None:
    CALLS.append(options)
    options.output.mkdir(parents=True)


def _sparsify_options(cls: type, s: StepInput) -> SparsifyOptions:
    return cls(artifact=s.parent, output=s.output, seed=s.seed, **s.params)  # type: ignore[no-any-return]


def test_a_new_pass_is_one_table_entry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Registered from the test suite (no library file touched): the file check, the plan and the run follow."""
    from edgekit.pipeline.cache import StepCache
    from edgekit.pipeline.config import parse_pipeline
    from edgekit.pipeline.plan import make_plan
    from edgekit.pipeline.run import run_step

    kind = StepKind("sparsify", f"{__name__}:sparsify", f"{__name__}:SparsifyOptions", _sparsify_options,
                    {"sparsity": "sparsity"}, ("numpy",), ("core/*.py",))
    monkeypatch.setitem(KINDS, "sparsify", kind)
    key_rules.cache_clear()
    try:
        doc = {"pipeline": {"name": "t"}, "model": [{"name": "mobilenetv3_small_100"}],
               "recipe": [{"name": "sparse", "sparsify": {"sparsity": 0.7}}]}
        pipeline = parse_pipeline(doc, origin="p.toml")
        for bad, where in (({"sparsity": 1.5}, "recipe[0].sparsify.sparsity: must be in (0, 1)"),
                           ({"sparsty": 0.5}, "did you mean 'sparsity'")):
            with pytest.raises(UsageError, match=re.escape(where)):
                parse_pipeline({**doc, "recipe": [{"name": "s", "sparsify": bad}]}, origin="p.toml")
        plan = make_plan(pipeline, StepCache(tmp_path / "cache"))
        step = next(s for s in plan.steps if s.kind == "sparsify")
        assert step.parent is not None and step.parent.kind == "export"
        run_step(step, pipeline, overwrite=False, threads=None, progress=type("P", (), {"message": print})())
        assert CALLS[-1] == SparsifyOptions(step.parent.path, step.path, 0.7, 0) and step.path.is_dir()
    finally:
        key_rules.cache_clear()
