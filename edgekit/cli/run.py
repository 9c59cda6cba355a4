"""``edgekit run``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from edgekit.cli import ui
from edgekit.pipeline.run import RunProgress
from edgekit.telemetry.detect import PowerChoice


class RichRunProgress(RunProgress):
    """On a terminal: an overall bar over the steps, a bar for the current epoch or benchmark, a log line per event."""

    def __init__(self, title: str, total_steps: int) -> None:
        super().__init__()
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                                  TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=ui.stderr)
        self._total = total_steps + 1
        self._overall = self._progress.add_task(title, total=self._total, info="")
        self._sub: Any = None
        self._label = ""

    def __enter__(self) -> RichRunProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def _new_sub(self, description: str, total: float) -> None:
        if self._sub is not None:
            self._progress.remove_task(self._sub)
        self._sub = self._progress.add_task(description, total=total, info="")

    def _log(self, text: str) -> None:
        self._progress.console.print(f"[{time.strftime('%H:%M:%S')}] {text}", markup=False, highlight=False)

    def message(self, text: str) -> None:
        self._log(f"{self._label}: {text}" if self._label else text)

    def step_start(self, index: int, total: int, step: Any, action: str) -> None:
        self._label = f"{step.kind} {step.label}"
        self._progress.update(self._overall, info=f"[{index}/{total}] {self._label}")
        self._log(f"[{index}/{total}] {self._label}: {action}")

    def step_end(self, outcome: Any) -> None:
        self._progress.advance(self._overall)
        if self._sub is not None:
            self._progress.remove_task(self._sub)
            self._sub = None
        self._label = ""

    def epoch_start(self, epoch: int, epochs: int, steps: int) -> None:
        super().epoch_start(epoch, epochs, steps)
        self._new_sub(f"  epoch {epoch}/{epochs}", steps)

    def step(self, loss: float) -> None:
        self._progress.update(self._sub, advance=1, info=f"loss {loss:.3f}")

    def epoch_end(self, record: Any) -> None:
        self._progress.update(self._sub, info=f"validation top-1 {record.heldout_top1:.2%}")
        self.message(f"epoch {record.epoch}/{self._epochs}: loss {record.train_loss:.4f}, "
                     f"validation top-1 {record.heldout_top1:.2%} ({record.seconds:.1f} s)")

    def bench(self, what: str, fraction: float) -> None:
        if self._sub is None:
            self._label = "bench"
            self._progress.update(self._overall, info="bench")
            self._new_sub("  bench", 1.0)
        self._progress.update(self._sub, completed=fraction, info=what)
        if fraction >= 1.0:
            self._progress.update(self._overall, completed=self._total, info="reports")


@click.command("run")
@click.argument("pipeline_file", required=False, type=click.Path(path_type=Path))
@click.option("--target", "targets", multiple=True,
              help="Target profile or device:NAME (overrides the pipeline's); give it several times for a fleet.")
@click.option("--device", default=None, help="Bench on this registered SSH device (host steps still run here; see 'edgekit devices').")
@click.option("--force", is_flag=True, help="Redo every step instead of using the cache.")
@click.option("--dry-run", is_flag=True, help="Print the plan (steps, cache hits, what would run) and exit.")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=Path("edgekit-run"), show_default=True,
              help="Where results.json, report.md, report.html and run.json go.")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
              help="Step cache (default $EDGEKIT_CACHE/steps or ~/.cache/edgekit/steps).")
@click.option("--threads", type=int, default=None,
              help="Threads for training, export checks and runtimes (part of the training steps' cache key).")
@click.option("--no-history", is_flag=True, help="Do not append the results to the history database.")
@click.option("--history-db", type=click.Path(path_type=Path), default=None, help="History database path.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan or the outcome as JSON.")
@click.option("--power", default=None, type=click.Choice([str(c) for c in PowerChoice]),
              help="Power source sampled during each latency window (energy per inference), as 'edgekit bench "
                   "--power' (default: the pipeline's [bench] power, else auto).")
@click.option("--verdict-metric", type=click.Choice(["p50", "p90"]), default="p50", show_default=True,
              help="Latency the verdict ranks configurations by.")
@click.option("--executor", type=click.Choice(["threads", "ray"]), default="threads", show_default=True,
              help="How a run over several targets dispatches its benches: a thread per device, or a Ray actor "
                   "per device (pip install 'edgekit[ray]').")
@click.option("--ray-address", default=None,
              help="With --executor ray: join this cluster ('auto': the running one) instead of a local instance.")
@click.option("--job-timeout", type=float, default=None,
              help="Seconds one bench may take on a device before it is killed and recorded invalid (default 1800).")
def run_cmd(pipeline_file: Path | None, targets: tuple[str, ...], device: str | None, force: bool, dry_run: bool,
            output: Path,
            cache_dir: Path | None, threads: int | None, no_history: bool, history_db: Path | None,
            as_json: bool, verdict_metric: str, executor: str, ray_address: str | None,
            job_timeout: float | None, power: str | None) -> None:
    """Run a pipeline: models x recipes -> artifacts -> bench -> reports.

    With no PIPELINE_FILE, runs the embedded default: a MobileNetV3-small
    trained on the embedded animals dataset, exported with parity, FP16 and
    INT8 variants, benched on this CPU with every runtime installed. Steps are
    cached by content: a rerun skips what is done; an interrupted run resumes.

    Exit status: 0 done (and the pipeline's [gate] passed), 1 a [gate] check
    or a step failed, 2 bad input (pipeline file, options).
    """
    from edgekit.core.errors import CheckFailed, UsageError
    from edgekit.pipeline.config import load_pipeline
    from edgekit.pipeline.run import run_pipeline

    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be >= 1, got {threads}")
    if job_timeout is not None and not job_timeout > 0:
        raise UsageError(f"--job-timeout must be > 0 seconds, got {job_timeout}")
    from edgekit.pipeline.targets import FleetOptions

    fleet = FleetOptions(targets=tuple(t for spec in targets for t in spec.split(",") if t.strip()),
                         executor=executor, ray_address=ray_address,
                         **({"job_timeout_s": job_timeout} if job_timeout is not None else {}))
    target = fleet.targets[0] if len(fleet.targets) == 1 else None
    pipeline = load_pipeline(pipeline_file)
    if dry_run:
        _dry_run(pipeline, target, force, cache_dir, threads, as_json, fleet)
        return
    show = not as_json and not ui.quiet() and ui.stderr.is_terminal
    n_steps = len(pipeline.models) * (1 + sum(1 for r in pipeline.recipes if r.kind))
    kw = dict(output=output, target=target, force=force, cache_root=cache_dir, threads=threads,
              history=not no_history, history_db=history_db, verdict_metric=verdict_metric, fleet=fleet,
              device=device, power=power)
    if show:
        with RichRunProgress(f"edgekit run {pipeline.name}", n_steps) as bar:
            result = run_pipeline(pipeline, progress=bar, **kw)  # type: ignore[arg-type]
    else:
        # off a terminal (a log, CI): one plain line per step and epoch on stderr, so a long run is not silent
        lines = not as_json and not ui.quiet()
        say = (lambda m: ui.stderr.print(m, markup=False, highlight=False)) if lines else (lambda _m: None)
        result = run_pipeline(pipeline, progress=RunProgress(say), **kw)  # type: ignore[arg-type]
    if as_json:
        ui.print_json({"steps": [o.to_json() for o in result.outcomes], "reports": result.report_paths,
                       "history_run_id": result.history_run_id, "gate_passed": result.passed,
                       "checks": [c.to_json() for c in result.checks], "seconds": result.seconds,
                       "timings": result.timings, "artifacts": [str(p) for p in result.artifacts],
                       "verdict": [v.to_json() for v in result.verdicts], "targets": list(result.targets),
                       "invalid_jobs": list(result.invalid_jobs)})
    else:
        _print_result(result)
    if result.failed_steps:
        bad = [o for o in result.failed_steps if o.status == "failed"]
        raise CheckFailed(f"{len(bad)} step(s) failed ({'; '.join(f'{o.label}: {o.note}' for o in bad[:2])}"
                          + (" ..." if len(bad) > 2 else "") + "); the rest of the matrix was benched",
                          hint=f"see {result.report_paths.get('run')}; rerun after fixing them (done steps are cached)")
    if result.invalid_jobs:
        bad = result.invalid_jobs
        raise CheckFailed(f"{len(bad)} bench job(s) did not run ({'; '.join(bad[:2])}"
                          + (" ..." if len(bad) > 2 else "") + "); the other targets finished",
                          hint="fix or reconnect the device and rerun: finished jobs are kept, only these run again")
    if not result.passed:
        fails = result.failures
        raise CheckFailed(f"the pipeline's [gate] failed: {len(fails)} check(s): "
                          + "; ".join(f"{c.row} {c.name}: {c.outcome}" for c in fails[:3])
                          + (" ..." if len(fails) > 3 else ""),
                          hint=f"see {result.report_paths.get('run')} and report.md; the artifacts and reports "
                               "were written")


def _dry_run(pipeline: Any, target: str | None, force: bool, cache_dir: Path | None, threads: int | None,
             as_json: bool, fleet: Any = None) -> None:
    from edgekit.pipeline.dry_run import plan_only

    rows = plan_only(pipeline, target=target, force=force, cache_root=cache_dir, threads=threads, fleet=fleet)
    target = target or ", ".join(fleet.targets) if fleet is not None and fleet.targets else target
    if as_json:
        ui.print_json(rows)
        return
    from rich.table import Table

    where = target or ", ".join(pipeline.targets or (pipeline.target,))
    t = Table(title=f"plan: {pipeline.name} ({pipeline.origin}) on {where}",
              title_justify="left")
    for col in ("step", "label", "key", "action"):
        t.add_column(col, overflow="fold")
    for r in rows:
        t.add_row(r["step"], r["label"], r["key"], r["action"])
    ui.table_console().print(t)
    todo = sum(1 for r in rows if r["step"] != "bench" and not r["cached"])
    ui.stdout.print(f"{todo} of {sum(1 for r in rows if r['step'] != 'bench')} step(s) to run, "
                    f"{sum(1 for r in rows if r['step'] == 'bench')} artifact(s) to bench; nothing was run",
                    markup=False, highlight=False)


def _print_result(result: Any) -> None:
    out = ui.stdout
    for o in result.outcomes:
        out.print(f"  {o.kind:<9} {o.label:<40} {o.status:<7} {o.seconds:7.1f} s {o.cpu_seconds:7.1f} CPU-s"
                  + (f"  ({o.note})" if o.note else ""), markup=False, highlight=False)
    from edgekit.bench.results import load_report
    from edgekit.report.table import bench_notes

    from edgekit.report.speed import slower_than_fp32

    for path in (result.target_results.values() or [result.results_path]):
        report = load_report(path)
        ui.table_console().print(_summary_table(report))
        for note in bench_notes(report):
            out.print(note, markup=False, highlight=False)
        for line in slower_than_fp32(report):
            out.print(line, markup=False, highlight=False)
    if result.checks:
        for c in result.checks:
            if c.outcome not in ("pass", "info") or not c.passed:
                out.print(f"{'ok' if c.passed else 'FAIL'} {c.row} {c.name}: {c.message}", markup=False,
                          highlight=False)
        n, bad = len(result.checks), len(result.failures)
        out.print(f"[gate] {'passed' if result.passed else 'FAILED'}: {n - bad} of {n} checks passed",
                  markup=False, highlight=False)
    from edgekit.verdict.render import terminal_lines

    for line in terminal_lines(result.verdicts):
        out.print(line, markup=False, highlight=False)
    for k, v in result.report_paths.items():
        out.print(f"{k}: {v}", markup=False, highlight=False)
    tm = result.timings
    out.print(f"took {result.seconds:.1f} s ({tm.get('cpu_seconds', 0):.1f} CPU-s): steps "
              f"{tm.get('steps_seconds', 0):.1f} s, bench {tm.get('bench_seconds', 0):.1f} s", markup=False,
              highlight=False)


#: the columns of the run's terminal summary (the full table is in report.md / report.html)
_SUMMARY = ("artifact", "runtime", "precision", "status", "p50", "throughput", "top1", "agreement", "drop")


def _summary_table(report: Any) -> Any:
    """A narrow table that fits a terminal: who ran what, p50, throughput, accuracy and the paired drop."""
    from rich.table import Table

    from edgekit.report.formats import COLUMNS, summary_rows

    t = Table(title=f"edgekit run: bench on {report.target_name} (full table: report.md, report.html)",
              title_justify="left")
    for key in _SUMMARY:
        t.add_column(COLUMNS[key], justify="left" if key in _SUMMARY[:4] else "right", overflow="fold")
    for row in summary_rows(report):
        t.add_row(*(row[k] for k in _SUMMARY))
    return t
