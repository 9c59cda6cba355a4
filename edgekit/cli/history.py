"""``edgekit history``: a metric over recorded bench runs, with the change vs the previous run (torch-free)."""

from __future__ import annotations

from pathlib import Path

import click

from edgekit.cli import ui
from edgekit.core.errors import UsageError

_HIGHER_IS_BETTER = ("top1", "top5", "agreement", "macro_", "_sps", "throughput", "inferences_per_j")


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.0f}"


def _change_cell(metric: str, change: float | None, pct: float | None) -> str:
    if change is None:
        return ""
    text = f"{change:+.4g}" + (f" ({pct:+.1f} %)" if pct is not None else "")
    if change == 0:
        return text
    better = (change > 0) == any(s in metric for s in _HIGHER_IS_BETTER)
    return f"[{'green' if better else 'red'}]{text}[/]"


@click.command("history")
@click.option("--model", "-m", default=None, help="Only rows of this model (fnmatch pattern).")
@click.option("--target", "-t", default=None, help="Only runs on this target (fnmatch pattern).")
@click.option("--device", "-d", default=None,
              help="Only runs on this device of a fleet run (fnmatch pattern on NAME of device:NAME).")
@click.option("--metric", default="latency.p50", show_default=True,
              help="Metric: a flat key (latency_p90_ms, top1, throughput_best_sps, ...) or latency.p90.")
@click.option("--last", type=int, default=None, help="Only the last N runs of each row.")
@click.option("--db", type=click.Path(path_type=Path), default=None,
              help="History database (default $EDGEKIT_HISTORY or ~/.local/share/edgekit/history.sqlite).")
@click.option("--metrics", "list_metrics", is_flag=True, help="List the recorded metric names.")
@click.option("--json", "as_json", is_flag=True, help="Print the points as JSON.")
def history_cmd(model: str | None, target: str | None, device: str | None, metric: str, last: int | None,
                db: Path | None, list_metrics: bool, as_json: bool) -> None:
    """Trends of a metric over the bench runs recorded in the history database.

    A fleet run records each target as its own run; a device's runs have the target ``device:NAME``, so
    ``--device nano-01`` (or ``--device 'rpi5-*'``) shows one device's trend.
    """
    from edgekit.history import HistoryStore, default_history_path

    if target is not None and device is not None:
        raise UsageError("give --target or --device, not both", hint="--device NAME is --target 'device:NAME'")
    if device is not None:
        target = f"device:{device}"
    if last is not None and last <= 0:
        raise UsageError(f"--last must be a positive integer, got {last}")
    path = db.expanduser() if db is not None else default_history_path()
    if not path.is_file():
        if as_json:
            ui.print_json([])
        else:
            ui.stdout.print(f"no history at {path} yet ('edgekit bench' records every run there)", markup=False,
                            highlight=False)
        return
    with HistoryStore(path, create=False) as store:
        if list_metrics:
            names = store.metric_names()
            if as_json:
                ui.print_json(names)
            else:
                for n in names:
                    click.echo(n)
            return
        points = store.series(metric, model=model, target=target, last=last)
    if as_json:
        ui.print_json([p.to_json() for p in points])
        return
    if not points:
        ui.stdout.print(f"no recorded values of {metric} match in {path}", markup=False, highlight=False)
        return
    from rich.table import Table

    name = points[0].metric
    t = Table(title=f"{name} over {len({p.run_id for p in points})} runs ({path})", title_justify="left")
    for col in ("time", "commit", "host", "target", "row", name, "change vs previous"):
        t.add_column(col, overflow="fold", justify="right" if col in (name, "change vs previous") else "left")
    for p in sorted(points, key=lambda p: (str(p.target), p.key, p.created)):
        t.add_row(p.created, (p.git_commit or "")[:10], p.host or "", p.target or "", p.key, _fmt(p.value),
                  _change_cell(name, p.change, p.change_pct))
    ui.stdout.print(t)
