"""``edgekit models [PATTERN] [--json]``: list the model zoo (torch-free)."""

from __future__ import annotations

import click
from rich.table import Table

from edgekit.cli import ui
from edgekit.core.errors import UnknownModelError
from edgekit.zoo.registry import ModelEntry, get_model, list_models


def _fmt(value: float | None, scale: float, digits: int) -> str:
    return "-" if value is None else f"{value / scale:.{digits}f}"


def _table(entries: list[ModelEntry]) -> Table:
    table = Table(title=f"edgekit model zoo ({len(entries)} models)", title_justify="left")
    table.add_column("name", no_wrap=True, style="bold")
    table.add_column("family", no_wrap=True)
    table.add_column("source", no_wrap=True)
    table.add_column("input", justify="right", no_wrap=True)
    table.add_column("params M", justify="right", no_wrap=True)
    table.add_column("GMACs", justify="right", no_wrap=True)
    table.add_column("top-1", justify="right", no_wrap=True)
    table.add_column("pretrained", no_wrap=True)
    table.add_column("aliases")
    for e in entries:
        pub = e.published
        h, w = e.preprocess.input_size
        table.add_row(
            e.name,
            e.family,
            e.source,
            str(h) if h == w else f"{h}x{w}",
            _fmt(pub.params, 1e6, 2),
            _fmt(pub.macs, 1e9, 3),
            _fmt(pub.top1, 1.0, 2),
            "yes" if e.pretrained else "no",
            ", ".join(e.aliases),
        )
    return table


def _no_match(pattern: str) -> UnknownModelError:
    try:
        get_model(pattern)  # reuse its close-match suggestions
    except UnknownModelError as e:
        return UnknownModelError(f"no model matches '{pattern}'" + _suggestions(e.message), hint=e.hint)
    return UnknownModelError(f"no model matches '{pattern}'")  # pragma: no cover - get_model found it


def _suggestions(message: str) -> str:
    marker = "; did you mean:"
    return message[message.index(marker) :] if marker in message else ""


@click.command("models")
@click.argument("pattern", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the entries as a JSON list.")
def models_cmd(pattern: str | None, as_json: bool) -> None:
    """List the model zoo: names, aliases, preprocessing and published numbers.

    PATTERN filters by name, alias or family (fnmatch, case-insensitive; a
    pattern without wildcards matches as a substring), e.g. 'mobilenetv3*'.
    """
    entries = list_models(pattern)
    if not entries:
        raise _no_match(pattern or "")
    if as_json:
        ui.print_json([e.to_json() for e in entries])
        return
    console = ui.table_console()
    console.print(_table(entries))
