"""``edgekit profile ARTIFACT [--json]``: parameters and MACs from the ONNX graph (torch-free)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from edgekit.cli import ui
from edgekit.core.errors import ArtifactError
from edgekit.core.manifest import MANIFEST_NAME, load_artifact
from edgekit.graph.profile import GraphProfile, profile_onnx


def resolve_model(path: Path) -> tuple[Path, str | None]:
    """The ONNX file to profile and the model's name (from the manifest) if known.

    ``path`` is an artifact directory (with ``edgekit.json``), its manifest,
    or a bare ONNX file.
    """
    if not path.exists():
        raise ArtifactError(f"{path} does not exist", hint="give an artifact directory or an .onnx file")
    if path.is_dir() or path.name == MANIFEST_NAME:
        artifact = load_artifact(path)
        fmt = artifact.manifest.format
        if fmt != "onnx":
            raise ArtifactError(
                f"artifact {artifact.path} holds a {fmt} model; profile reads ONNX graphs",
                hint="profile the ONNX artifact it was built from",
            )
        return artifact.model_path, artifact.manifest.model
    return path, None


def _count(n: int) -> str:
    if n >= 1_000_000:
        return f"{n:,} ({n / 1e6:.2f} M)"
    return f"{n:,}"


def _shape(spec: Any) -> str:
    return escape(f"{spec.name} [{', '.join(str(d) for d in spec.shape)}] {spec.dtype}")


def _table(prof: GraphProfile, model_path: Path, name: str | None) -> Table:
    title = escape(f"edgekit profile: {name or model_path.name}")
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column("what", style="bold", no_wrap=True)
    table.add_column("value")
    table.add_row("file", escape(str(model_path)))
    if prof.file_size_bytes is not None:
        table.add_row("size on disk", f"{prof.file_size_bytes / 2**20:.2f} MiB (model and external data)")
    table.add_row("params", _count(prof.params))
    if prof.params_stored != prof.params:
        table.add_row("values stored", _count(prof.params_stored))
    table.add_row("params by dtype", ", ".join(f"{k}: {v:,}" for k, v in prof.params_by_dtype.items()) or "-")
    table.add_row("weight bytes", f"{prof.weight_bytes / 2**20:.2f} MiB")
    macs = f"{prof.macs:,} ({prof.gmacs:.3f} G) at batch {prof.batch}"
    if not prof.macs_complete:
        macs += " [yellow](incomplete: some shapes unknown)[/yellow]"
    table.add_row("MACs", macs)
    by_op = ", ".join(f"{k}: {v / 1e6:.1f} M" for k, v in prof.macs_by_op_type.items())
    table.add_row("MACs by op", escape(by_op) or "-")
    top_ops = list(prof.op_counts.items())
    ops = ", ".join(f"{k} {v}" for k, v in top_ops[:12]) + (", ..." if len(top_ops) > 12 else "")
    table.add_row("nodes", escape(f"{prof.num_nodes}: {ops}"))
    table.add_row("opset", ", ".join(f"{k} {v}" for k, v in prof.opsets.items()))
    table.add_row("inputs", "\n".join(_shape(s) for s in prof.inputs))
    table.add_row("outputs", "\n".join(_shape(s) for s in prof.outputs))
    if prof.producer:
        table.add_row("producer", escape(prof.producer))
    for i, note in enumerate(prof.notes):
        table.add_row("notes" if i == 0 else "", escape(note))
    return table


@click.command("profile")
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True, help="Size of a dynamic batch dimension.")
@click.option("--per-node", is_flag=True, help="Add each node's MACs and parameters (JSON only).")
@click.option("--json", "as_json", is_flag=True, help="Print the profile as JSON.")
def profile_cmd(artifact: Path, batch: int, per_node: bool, as_json: bool) -> None:
    """Parameters and MACs of ARTIFACT, read from its ONNX graph.

    ARTIFACT is an artifact directory written by 'edgekit export' (or its
    edgekit.json) or a bare .onnx file. Works without torch, on FP32, FP16,
    INT8 (Q/DQ or QLinear*/ConvInteger) and pruned models. MACs count the
    dot products (Conv, Gemm, MatMul including attention) at the given batch.
    """
    model_path, name = resolve_model(artifact)
    prof = profile_onnx(model_path, batch=batch, per_node=per_node and as_json)
    if as_json:
        ui.print_json({"model": name, "path": str(model_path), **prof.to_json()})
        return
    console = ui.table_console()
    console.print(_table(prof, model_path, name))
