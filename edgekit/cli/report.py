"""``edgekit report``: tables, Markdown, CSV and a self-contained HTML page from results files (torch-free)."""

from __future__ import annotations

from pathlib import Path

import click

from edgekit.cli import ui
from edgekit.core.errors import OutputError, UsageError

STDOUT = "-"


def _output(value: str | None, flag: str, inputs: tuple[Path, ...]) -> Path | str | None:
    """``value`` as a path to write, STDOUT, or None; refuses to overwrite a results file."""
    if value is None or value == STDOUT:
        return value
    path = Path(value)
    if path.suffix.lower() == ".json" or any(path.resolve() == p.resolve() for p in inputs):
        raise UsageError(f"{flag} {path} looks like a results file; refusing to overwrite it",
                         hint=f"give {flag} a .md/.csv/.html FILE, or put {flag} after the RESULTS files")
    if path.is_dir():
        raise OutputError(f"{flag} {path} is a directory", hint="give a file name")
    return path


@click.command("report")
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--html", "html_out", default=None, metavar="FILE",
              help="Write a self-contained HTML page (tables, Pareto plot, comparisons, environment).")
@click.option("--md", "md_out", is_flag=False, flag_value=STDOUT, default=None, metavar="[FILE]",
              help="Markdown to FILE, or to stdout without FILE.")
@click.option("--csv", "csv_out", is_flag=False, flag_value=STDOUT, default=None, metavar="[FILE]",
              help="CSV (one row per result, every metric) to FILE, or to stdout without FILE.")
@click.option("--title", default=None, help="Title of the HTML page.")
def report_cmd(results: tuple[Path, ...], html_out: str | None, md_out: str | None, csv_out: str | None,
               title: str | None) -> None:
    """Report one or more RESULTS files written by 'edgekit bench -o'.

    Files of the same target are merged into one section. Without --md or
    --csv to stdout, prints the results table of each file. Every file is
    written atomically. Exit status: 0 written, 2 bad usage or input.
    """
    from edgekit.bench.results import load_report
    from edgekit.core.atomic import atomic_write_text
    from edgekit.report import bench_notes, bench_table
    from edgekit.report.html import write_html
    from edgekit.report.merge import group_by_target, merged_csv, merged_markdown

    html_path = _output(html_out, "--html", results)
    md = _output(md_out, "--md", results)
    csv = _output(csv_out, "--csv", results)
    if md == STDOUT and csv == STDOUT:
        raise UsageError("--md and --csv cannot both go to stdout", hint="give one of them a FILE")
    if html_path == STDOUT:
        raise UsageError("--html needs a FILE", hint="e.g. --html report.html")
    reports = [load_report(p) for p in results]
    names = [str(p) for p in results]
    groups = group_by_target(reports, names)
    written: list[Path] = []
    if isinstance(html_path, Path):
        written.append(write_html(reports, html_path, names=names, title=title))
    for out, text in ((md, merged_markdown), (csv, merged_csv)):
        if isinstance(out, Path):
            written.append(atomic_write_text(out, text(groups)))
        elif out == STDOUT:
            click.echo(text(groups), nl=False)
    if STDOUT in (md, csv):
        for path in written:
            click.echo(f"wrote {path}", err=True)
        return
    console = ui.table_console()
    for rep in reports:
        console.print(bench_table(rep, width=console.width if console.is_terminal else None))
        for note in bench_notes(rep):
            console.print(note, markup=False, highlight=False)
    for path in written:
        console.print(f"wrote {path}", markup=False, highlight=False)

