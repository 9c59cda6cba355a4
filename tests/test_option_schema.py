"""One option schema per tool: the CLI's defaults are the options dataclass's, field rules apply everywhere.

The options dataclass (``edgekit.core.options``) is the single source of ranges and choices; the pipeline
file derives its rules from it (``tests/test_pipeline_kinds.py``). Here: a CLI flag whose parameter maps onto
an options field has the field's default, so ``edgekit quantize`` and ``quantize(QuantizeOptions(...))`` (and
``edgekit run``, which builds the options) do the same thing when a flag is left out.
"""

from __future__ import annotations

import dataclasses
import enum
from pathlib import Path

import pytest

from edgekit.core.errors import UsageError
from edgekit.core.options import Rule, check_fields, opt

#: CLI parameter -> options field where the names differ
RENAMES = {"bench_window": "bench_window_s", "eval_data": "eval", "finetune_data": "finetune"}


def _commands() -> list[tuple[object, type]]:
    from edgekit.cli.export import export_cmd
    from edgekit.cli.finetune import finetune_cmd
    from edgekit.cli.prune import prune_cmd
    from edgekit.cli.quantize import quantize_cmd
    from edgekit.export import ExportOptions
    from edgekit.optimize.prune.prune import PruneOptions
    from edgekit.optimize.quant.quantize import QuantizeOptions
    from edgekit.optimize.train.finetune import FinetuneOptions

    return [(export_cmd, ExportOptions), (finetune_cmd, FinetuneOptions), (quantize_cmd, QuantizeOptions),
            (prune_cmd, PruneOptions)]


@pytest.mark.parametrize("index", range(4))
def test_cli_defaults_are_the_option_defaults(index: int) -> None:
    cmd, cls = _commands()[index]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    compared = 0
    for p in cmd.params:  # type: ignore[attr-defined]
        f = fields.get(RENAMES.get(p.name, p.name))
        if f is None or f.default is dataclasses.MISSING or p.default is None and f.default is None:
            continue
        if type(p.default).__name__ == "Sentinel":  # click's UNSET: a flag or a required argument
            continue
        want = f.default.value if isinstance(f.default, enum.Enum) else f.default
        where = f"{cmd.name} --{p.name}"  # type: ignore[attr-defined]
        assert p.default == want, f"{where}: CLI default {p.default!r} != {cls.__name__}.{f.name} {want!r}"
        compared += 1
    assert compared >= 3  # the mapping found the flags


def test_a_field_rule_names_the_flag_and_the_hint() -> None:
    @dataclasses.dataclass(frozen=True)
    class Options:
        size: int = opt(8, rule=Rule(lambda v: v >= 16, "at least 16", hint="16 is the smallest"))
        target: str | None = opt(None, flag="--for", rule=Rule(lambda v: bool(v.strip()), "a non-empty string"))

    check_fields(Options(16))
    with pytest.raises(UsageError) as e:
        check_fields(Options(8))
    assert e.value.message == "--size must be at least 16, got 8" and e.value.hint == "16 is the smallest"
    with pytest.raises(UsageError, match="^--for must be a non-empty string, got ' '$"):
        check_fields(Options(16, " "))
    with pytest.raises(UsageError, match="--size must be at least 16, got 'x'"):  # a wrong type breaks the rule
        check_fields(Options("x"))  # type: ignore[arg-type]


def test_tools_check_values_without_touching_the_output(tmp_path: Path) -> None:
    """``check()`` is what ``edgekit run --dry-run`` calls: it must not refuse an existing cache entry."""
    from edgekit.optimize.quant.quantize import QuantizeOptions

    out = tmp_path / "full"
    out.mkdir()
    (out / "x").write_text("kept")
    opts = QuantizeOptions(artifact=tmp_path / "parent", output=out, calib="embedded")
    opts.check()
    with pytest.raises(UsageError, match="not empty"):
        opts.validate()


def test_export_refuses_an_unknown_exporter_from_python_too() -> None:
    from edgekit.export import ExportOptions

    ExportOptions("m", Path("out"), exporter="dynamo").check()  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="--exporter must be one of auto, dynamo, torchscript, got 'onnxscript'"):
        ExportOptions("m", Path("out"), exporter="onnxscript").check()  # type: ignore[arg-type]
