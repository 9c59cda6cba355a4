"""``edgekit targets [--json]`` and ``edgekit targets show NAME [--json]`` (torch-free)."""

from __future__ import annotations

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from edgekit.cli import ui
from edgekit.core.targets import TargetProfile, list_targets, load_target


def _console() -> Console:
    return ui.table_console()


def _peak(t: TargetProfile) -> str:
    if not t.peak_compute:
        return "-"
    return ", ".join(f"{p.value:g} {p.unit} {p.precision}{' sparse' if p.sparsity == 'sparse' else ''}"
                     for p in t.peak_compute)


def _memory(t: TargetProfile) -> str:
    m = t.memory
    parts = [f"{m.size_gb:g} GB" if m.size_gb else None, m.type,
             f"{m.bandwidth_gbps:g} GB/s" if m.bandwidth_gbps else None]
    return " ".join(p for p in parts if p) or "-"


def _table(targets: tuple[TargetProfile, ...]) -> Table:
    table = Table(title=f"edgekit targets ({len(targets)})", title_justify="left")
    table.add_column("name", no_wrap=True, style="bold")
    table.add_column("runtimes (preference order)")
    table.add_column("peak", no_wrap=True)
    table.add_column("memory", no_wrap=True)
    table.add_column("description")
    for t in targets:
        table.add_row(*(escape(s) for s in (t.name, ", ".join(r.key for r in t.runtimes), _peak(t), _memory(t),
                                            t.description)))
    return table


def _details(t: TargetProfile) -> list[object]:
    out: list[object] = [f"{t.name}: {t.description}", f"source: {t.source}",
                         f"family: {t.family}; arch: {', '.join(t.arch) or '-'}"]
    hw = t.hardware
    for label, value in (("cpu", hw.cpu), ("cpu cores", hw.cpu_cores), ("accelerator", hw.accelerator),
                         ("CUDA compute capability", hw.cuda_compute_capability), ("DLA cores", hw.dla_cores)):
        if value is not None:
            out.append(f"{label}: {value}")
    runtimes = Table(title="runtimes, in preference order", title_justify="left")
    for col in ("#", "runtime", "device", "precisions", "provider", "note"):
        runtimes.add_column(col)
    for i, r in enumerate(t.runtimes, 1):
        runtimes.add_row(*(escape(s) for s in (str(i), r.runtime, r.device, ", ".join(r.precisions), r.provider or "-",
                                               r.note)))
    out.append(runtimes)
    out.append(f"defaults: threads {t.threads or 'physical cores'}, streams {t.streams}, "
               f"batch sizes {', '.join(map(str, t.batch_sizes))}; warm-up {t.warmup_s:g} s, "
               f"unstable above CV {t.cv_threshold:.1%}")
    if t.peak_compute:
        for p in t.peak_compute:
            out.append(f"peak {p.precision}: {p.value:g} {p.unit} ({p.sparsity}) [source: {p.source}]")
    if t.peak_note:
        out.append(f"peak compute: {t.peak_note}")
    m = t.memory
    out.append(f"memory: {_memory(t)}" + (f" [source: {m.source}]" if m.source else "")
               + (f"; {m.note}" if m.note else ""))
    if t.power_modes:
        modes = Table(title="power modes (nvpmodel)", title_justify="left")
        for col in ("id", "name", "watts", "verified", "source"):
            modes.add_column(col)
        for pm in t.power_modes:
            name = pm.name + (" (default)" if pm.name == t.default_power_mode else "")
            modes.add_row(*(escape(s) for s in ("-" if pm.id is None else str(pm.id), name,
                                                "-" if pm.watts is None else f"{pm.watts:g}",
                                                "yes" if pm.verified else "no", pm.source)))
        out.append(modes)
    out.extend(f"note: {n}" for n in t.notes)
    return out


@click.group("targets", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print the profiles as a JSON list.")
@click.pass_context
def targets_cmd(ctx: click.Context, as_json: bool) -> None:
    """List the built-in target profiles (devices, runtimes, peak figures).

    A target is named with --target on other commands: a built-in name, 'jetson'
    (the Jetson this host is) or a path to your own TOML profile.
    """
    if ctx.invoked_subcommand is not None:
        return
    targets = list_targets()
    if as_json:
        ui.print_json([t.to_json() for t in targets])
        return
    _console().print(_table(targets))


@targets_cmd.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the profile as JSON.")
def show_cmd(name: str, as_json: bool) -> None:
    """Show one target: NAME is a built-in name, 'jetson' or a path to a .toml profile."""
    target = load_target(name)
    if as_json:
        ui.print_json(target.to_json())
        return
    console = _console()
    for item in _details(target):
        console.print(item, markup=False, highlight=False)
