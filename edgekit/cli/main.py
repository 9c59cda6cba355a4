"""``edgekit``: the command-line entry point.

Each command lives in its own module and is imported only when it runs, so
``edgekit --help`` and the device-side commands never import torch.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

import click

from edgekit import __version__
from edgekit.core.errors import EdgekitError

#: command name -> (module, attribute, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "models": ("edgekit.cli.models", "models_cmd", "List the model zoo."),
    "export": ("edgekit.cli.export", "export_cmd", "Export a model to ONNX and prove parity."),
    "finetune": ("edgekit.cli.finetune", "finetune_cmd", "Fine-tune a zoo model on your classes; write checkpoint + ONNX."),
    "prune": ("edgekit.cli.prune", "prune_cmd", "Structured channel pruning, recovery, measured before/after."),
    "quantize": ("edgekit.cli.quantize", "quantize_cmd", "INT8 (or FP16) from an FP32 artifact, measured against it."),
    "build": ("edgekit.cli.build", "build_cmd", "Build an OpenVINO IR or TensorRT engine for a target."),
    "bench": ("edgekit.cli.bench", "bench_cmd", "Latency, throughput, memory and accuracy on a target."),
    "predict": ("edgekit.cli.predict", "predict_cmd", "Top-K labels of images through an artifact."),
    "import": ("edgekit.cli.import_onnx", "import_cmd", "Make an artifact from any ONNX classifier."),
    "profile": ("edgekit.cli.profile", "profile_cmd", "Parameters and MACs of an ONNX artifact."),
    "report": ("edgekit.cli.report", "report_cmd", "Tables, Markdown, CSV and an HTML page from bench results."),
    "targets": ("edgekit.cli.targets", "targets_cmd", "List or show target profiles."),
    "gate": ("edgekit.cli.gate", "gate_cmd", "Fail CI when accuracy or latency regressed against a baseline."),
    "history": ("edgekit.cli.history", "history_cmd", "Trends of a metric over recorded bench runs."),
    "run": ("edgekit.cli.run", "run_cmd", "Run a pipeline (default: the embedded one) end to end."),
    "devices": ("edgekit.cli.devices", "devices_cmd", "Register SSH devices (Jetson, Pi, Intel box) and check them."),
}


class LazyGroup(click.Group):
    """A group that imports a command's module only when that command runs,
    and maps :class:`EdgekitError` to a one-line message and its exit code."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EdgekitError as e:
            click.echo(f"edgekit: error: {e.one_line()}", err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("edgekit: interrupted; nothing partial was left behind", err=True)
            ctx.exit(130)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgekit")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """edgekit: trained image classifiers in, measured edge engines out."""
    ctx.obj = {"verbose": verbose, "quiet": quiet}
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def main() -> None:
    cli(prog_name="edgekit")


if __name__ == "__main__":  # pragma: no cover
    main()
