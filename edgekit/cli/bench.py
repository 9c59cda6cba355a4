"""``edgekit bench``: latency, throughput, memory and accuracy of artifacts on a target (torch-free
for artifact paths; ``--model`` exports first and needs the torch extra)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from edgekit.cli import ui
from edgekit.core.errors import CheckFailed, OutputError, UsageError


def _split(values: tuple[str, ...], what: str) -> tuple[str, ...] | None:
    out = [v.strip() for raw in values for v in raw.split(",") if v.strip()]
    if values and not out:
        raise UsageError(f"{what} is empty")
    return tuple(out) or None


def _ints(values: tuple[str, ...], what: str) -> tuple[int, ...] | None:
    items = _split(values, what)
    if items is None:
        return None
    try:
        return tuple(int(v) for v in items)
    except ValueError:
        raise UsageError(f"{what} takes comma-separated positive integers, got {','.join(items)!r}",
                         hint="e.g. --batch 1,8,32") from None


def _check_output_file(path: Path | None, flag: str) -> None:
    """Refuse an output path that cannot be written, before a long run."""
    if path is None:
        return
    if path.is_dir():
        raise OutputError(f"{flag} {path} is a directory", hint="give a file name")
    from edgekit.core.atomic import probe_writable

    probe_writable(path.resolve().parent, what=f"{flag} {path}")


@contextmanager
def _progress(enabled: bool) -> Iterator[Any]:
    """A rich progress bar on stderr, or a no-op callback when not a TTY / --quiet / --json."""
    if enabled and os.environ.get("EDGEKIT_PROGRESS") == "lines":  # a remote bench streams these to the host
        last: list[str] = []

        def line(what: str, frac: float) -> None:
            if not last or last[0] != what:
                last[:] = [what]
                print(f"progress {frac * 100:3.0f}% {what}", file=sys.stderr, flush=True)

        yield line
        return
    if not enabled or ui.quiet() or not ui.stderr.is_terminal:
        yield lambda what, frac: None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]bench[/]"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeElapsedColumn(), TextColumn("{task.description}"), console=ui.stderr, transient=True) as bar:
        task = bar.add_task("starting", total=1.0)

        def update(what: str, frac: float) -> None:
            bar.update(task, completed=frac, description=what)

        yield update


@click.command("bench")
@click.argument("artifacts", nargs=-1, type=click.Path(path_type=Path))
@click.option("--target", "-t", default=None, help="Built-in target name, 'jetson', or a .toml profile path (with --device: default the device's).")
@click.option("--device", "-d", default=None, help="Run on this registered device over SSH (see 'edgekit devices').")
@click.option("--host", "ssh_host", default=None, help="Run on [USER@]HOST[:PORT] over SSH without registering it (one-off).")
@click.option("--accept-new-host-key", is_flag=True, help="With --device/--host: trust a first-seen host key (OpenSSH accept-new); a changed key is always refused.")
@click.option("--timeout", "remote_timeout", type=float, default=None, help="With --device/--host: wall-clock limit of the bench on the device in seconds (default 3600).")
@click.option("--wheelhouse", type=click.Path(path_type=Path, file_okay=False), default=None, help="With --device/--host: a directory of wheels for a device without internet.")
@click.option("--fetch-engines", type=click.Path(path_type=Path, file_okay=False), default=None, help="With --device/--host: bring the engines built on the device (and their keys) back here.")
@click.option("--model", "-m", default=None, help="Export this zoo model first (host only; needs the torch extra).")
@click.option("--weights", default="imagenet", show_default=True, help="Weights for --model: imagenet, none or a PATH.")
@click.option("--img-size", type=int, default=None, help="Input size for --model (default: the model's).")
@click.option("--runtime", "runtimes", multiple=True, help="Runtimes to use (comma-separated; ort, ov, trt, or runtime:device). Default: the target's installed ones.")
@click.option("--precision", "precisions", multiple=True, help="Precisions to run (comma-separated: fp32,fp16,bf16,int8).")
@click.option("--batch", "batches", multiple=True, help="Throughput batch sizes (comma-separated). Default: the target's.")
@click.option("--data", default=None, help="ImageFolder DIR, .npz, or 'embedded'. Default: the embedded held-out set (accuracy only if the model's labels match).")
@click.option("--allow-selection-split", is_flag=True,
              help="Evaluate on every image of --data even when some trained or selected the model. Default: the "
                   "model's recorded test split of its own training data, and a selection split is refused.")
@click.option("--no-accuracy", is_flag=True, help="Measure speed and memory only.")
@click.option("--eval-size", type=int, default=None, help="Evaluate on a stratified N images (default: all).")
@click.option("--tier", type=click.Choice(["quick", "ci", "dev", "publish"]), default="quick", show_default=True, help="Stopping-rule tier: quick 3 s (batch sweep 1 and 8, 500 eval images), ci 10 s, dev 60 s, publish 600 s per window, >= 100 iterations.")
@click.option("--min-duration", type=float, default=None, help="Seconds per measured window (overrides the tier).")
@click.option("--min-iterations", type=int, default=None, help="Iterations per window (overrides the tier).")
@click.option("--max-duration", type=float, default=None, help="Cap per window; a window cut short is flagged.")
@click.option("--warmup", type=float, default=None, help="Warm-up seconds before each window (default: the target's).")
@click.option("--threads", type=int, default=None, help="CPU threads (default: the target's, else the physical cores).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sample order and the eval subset.")
@click.option("--budget", type=float, default=None, help="Accuracy budget in top-1 points vs FP32 (default: 1 percent of the FP32 top-1).")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None, help="Write the results JSON here (atomically).")
@click.option("--json", "as_json", is_flag=True, help="Print the results JSON to stdout instead of the table.")
@click.option("--csv", "csv_path", type=click.Path(path_type=Path), default=None, help="Also write a CSV (one row per result).")
@click.option("--md", "md_path", type=click.Path(path_type=Path), default=None, help="Also write a Markdown table.")
@click.option("--emulate", is_flag=True, help="Run a profile whose hardware this host is not (a Jetson, a Pi) with its settings here; results are named after this host.")
@click.option("--no-history", is_flag=True, help="Do not append the results to the run history ('edgekit history').")
@click.option("--history-db", type=click.Path(path_type=Path), default=None, help="History database (default $EDGEKIT_HISTORY or ~/.local/share/edgekit/history.sqlite).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--power", default="auto", show_default=True, type=click.Choice(["auto", "off", "ina3221", "tegrastats", "rapl", "rpi-pmic", "nvml"]), help="Power source sampled during each latency window (energy per inference); auto picks the first readable one and says why the others are not.")
@click.option("--power-rate", type=float, default=20.0, show_default=True, help="Power samples per second during a window.")
@click.option("--idle", "idle_s", type=float, default=2.0, show_default=True, help="Seconds of idle baseline before the first window (when a power source or --cooldown needs it).")
@click.option("--allow-throttle", is_flag=True, help="Keep a window measured while the device throttled as ok (with a warning) instead of 'throttled'.")
@click.option("--sustained", type=float, default=None, help="Run each latency window for MINUTES and report latency, power and temperature per interval.")
@click.option("--cooldown", is_flag=True, help="Before each window, wait until the temperature is back within 3 °C of idle (at most --cooldown-max s).")
@click.option("--cooldown-max", type=float, default=300.0, show_default=True, help="Longest wait of --cooldown, in seconds.")
def bench_cmd(artifacts: tuple[Path, ...], target: str | None, device: str | None, ssh_host: str | None,
              accept_new_host_key: bool, remote_timeout: float | None, wheelhouse: Path | None,
              fetch_engines: Path | None, model: str | None, weights: str, img_size: int | None,
              runtimes: tuple[str, ...], precisions: tuple[str, ...], batches: tuple[str, ...], data: str | None,
              allow_selection_split: bool, no_accuracy: bool, eval_size: int | None, tier: str, min_duration: float | None,
              min_iterations: int | None, max_duration: float | None, warmup: float | None, threads: int | None,
              seed: int, budget: float | None, output: Path | None, as_json: bool, csv_path: Path | None,
              md_path: Path | None, emulate: bool, no_history: bool, history_db: Path | None, quiet: bool,
              power: str, power_rate: float, idle_s: float, allow_throttle: bool, sustained: float | None,
              cooldown: bool, cooldown_max: float) -> None:
    """Benchmark ARTIFACTS (or --model) on a target: latency, throughput, memory, accuracy.

    Every runtime of the target that is installed runs every precision the
    target lists and the artifact allows; rows it cannot run say why. Exit
    status: 0 measured, 1 a measurement failed, 2 bad usage or input.
    """
    from edgekit.bench.results import write_report
    from edgekit.bench.runner import BenchOptions, run_bench
    from edgekit.report import bench_notes, bench_table, write_csv, write_markdown
    from edgekit.telemetry import TelemetryOptions

    for path, flag in ((output, "-o"), (csv_path, "--csv"), (md_path, "--md")):
        _check_output_file(path, flag)
    opts = BenchOptions(
        target=target or "", artifacts=tuple(artifacts), model=model, weights=weights, img_size=img_size,
        runtimes=_split(runtimes, "--runtime"), precisions=_split(precisions, "--precision"),
        batch_sizes=_ints(batches, "--batch"), data=data, selection_splits=allow_selection_split, accuracy=not no_accuracy, eval_size=eval_size, tier=tier,
        min_duration_s=min_duration, min_iterations=min_iterations, max_duration_s=max_duration, warmup_s=warmup,
        threads=threads, seed=seed, accuracy_budget_pts=budget, command=tuple(sys.argv), emulate=emulate,
        telemetry=TelemetryOptions(power=power, rate_hz=power_rate, idle_s=idle_s, allow_throttle=allow_throttle,
                                   sustained_min=sustained, cooldown=cooldown, cooldown_max_s=cooldown_max),
    )
    if device or ssh_host:
        report = _remote(opts, device, ssh_host, accept_new_host_key, remote_timeout, wheelhouse, fetch_engines,
                         verbose=not (quiet or as_json))
    elif target is None:
        raise UsageError("--target is required (or --device NAME / --host HOST to bench on a device over SSH)",
                         hint="e.g. 'edgekit bench --target cpu ARTIFACT'; 'edgekit targets' lists them")
    else:
        with _progress(enabled=not (quiet or as_json)) as progress:
            report = run_bench(opts, progress=progress)
    if output is not None:
        write_report(report, output)
    run_id = None
    if not no_history:
        from edgekit.history.store import record_bench_run  # best effort: a broken history never fails a bench

        run_id = record_bench_run(report, db=history_db)
    if csv_path is not None:
        write_csv(report, csv_path)
    if md_path is not None:
        write_markdown(report, md_path)
    if as_json:
        click.echo(report.to_json_text(), nl=False)
    else:
        console = ui.table_console()
        console.print(bench_table(report, width=console.width if console.is_terminal else None))
        for note in bench_notes(report):
            console.print(note, markup=False, highlight=False)
        from edgekit.report.speed import slower_than_fp32

        for line in slower_than_fp32(report):
            console.print(line, markup=False, highlight=False)
        for path in (output, csv_path, md_path):
            if path is not None:
                console.print(f"wrote {path}", markup=False, highlight=False)
        if run_id is not None:
            console.print(f"recorded in the run history as {run_id} ('edgekit history'; --no-history to skip)",
                          markup=False, highlight=False)
    throttled = report.find(status="throttled")
    if throttled and not report.failed:
        raise CheckFailed(f"{len(throttled)} of {len(report.results)} benchmark rows were measured while the device "
                          "throttled: " + "; ".join(f"{r.key}: {r.reason}" for r in throttled[:2]),
                          hint="let it cool (--cooldown), improve cooling, or accept it with --allow-throttle")
    failed = report.failed
    if failed:
        raise CheckFailed(f"{len(failed)} of {len(report.results)} benchmark rows failed: "
                          + "; ".join(f"{r.key}: {r.reason}" for r in failed[:3]))


def _remote(opts: Any, device: str | None, ssh_host: str | None, accept_new: bool, timeout: float | None,
            wheelhouse: Path | None, fetch_engines: Path | None, *, verbose: bool) -> Any:
    """The same bench on a device over SSH (edgekit.remote); progress lines from the device go to stderr."""
    from edgekit.remote.devices import Device, get_device
    from edgekit.remote.remote_bench import RemoteOptions, run_remote_bench
    from edgekit.remote.ssh import SshTarget

    if device and ssh_host:
        raise UsageError("give --device NAME or --host HOST, not both")
    if device:
        dev = get_device(device)
    else:
        t = SshTarget.parse(str(ssh_host))
        dev = Device(name=t.host, host=t.host, user=t.user, port=t.port)

    def say(line: str) -> None:
        if verbose:
            click.echo(line, err=True)

    return run_remote_bench(opts, RemoteOptions(dev, accept_new_host_key=accept_new, timeout_s=timeout,
                                                wheelhouse=wheelhouse, fetch_engines=fetch_engines), on_line=say)
