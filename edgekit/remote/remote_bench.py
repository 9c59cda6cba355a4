"""``edgekit bench --device NAME``: the same bench, run on the device, one results file back on the host.

Steps (each timed and recorded in ``results.json`` under ``extra.remote``): connect (strict host key,
BatchMode), probe the device's facts, resolve its target, provision the venv (:mod:`~edgekit.remote.provision`),
push the artifacts and the eval data content-addressed (:mod:`~edgekit.remote.push`), run ``edgekit bench``
there under the agent (hash check, process group, wall-clock limit, hangup on a lost host), fetch the results
file, clean the run directory.

Setup faults raise (exit 2). A fault during the measurement (the bench killed, timed out, the connection
dropped, Ctrl-C) gives a report whose rows are ``invalid`` with the reason (exit 1), never a complete one;
the device's process group is killed and its run directory removed.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import secrets
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit import __version__
from edgekit.bench.results import BenchReport, BenchResult, load_report
from edgekit.bench.runner import BenchOptions
from edgekit.core.errors import UsageError
from edgekit.core.host import HostFacts
from edgekit.core.target_schema import TargetProfile
from edgekit.core.targets import load_target, resolve_target
from edgekit.core.versions import tool_versions
from edgekit.remote.agent import EXIT_BAD_HASH, EXIT_HANGUP, EXIT_TIMEOUT
from edgekit.remote.devices import Device
from edgekit.remote.errors import RemoteError, RemoteTimeout
from edgekit.remote.probe import probe
from edgekit.remote.provision import Provisioned, clean_stale, plan_env, provision
from edgekit.remote.push import Pushed, push_dirs
from edgekit.remote.ssh import Connection

log = logging.getLogger(__name__)

#: host-side slack over the device's own wall-clock limit before the connection itself is cut
HOST_GRACE_S = 30.0


@dataclass(frozen=True)
class RemoteOptions:
    device: Device
    accept_new_host_key: bool = False
    timeout_s: float | None = None  # wall-clock limit of the bench on the device (None: the device's)
    wheelhouse: Path | None = None  # wheels for a device without internet
    fetch_engines: Path | None = None


def resolve_device_target(options: BenchOptions, device: Device, facts: HostFacts) -> tuple[str, TargetProfile, str]:
    """(name to pass to the device's bench, profile, why): --target, the device's, else from its facts."""
    chosen = options.target if options.target not in (None, "") else device.target
    if isinstance(chosen, TargetProfile):
        return chosen.name, chosen, "given"
    if chosen:
        text = str(chosen)
        prof = load_target(text, facts=facts) if text.strip().lower() == "jetson" else load_target(text)
        return text, prof, "given" if options.target else "set for the device"
    res = resolve_target(facts)
    if res.profile is None:
        raise UsageError(f"{device.name}: {res.reason}",
                         hint=f"pass --target PROFILE (or 'edgekit devices add {device.name} --target ... --replace')")
    return res.profile.name, res.profile, res.reason


def bench_flags(o: BenchOptions) -> list[str]:
    """The device's ``edgekit bench`` flags for the same settings (artifacts, target, data, output apart)."""
    f: list[str] = ["--tier", o.tier, "--seed", str(o.seed)]
    pairs: list[tuple[str, Any]] = [
        ("--runtime", ",".join(o.runtimes) if o.runtimes else None),
        ("--precision", ",".join(o.precisions) if o.precisions else None),
        ("--batch", ",".join(map(str, o.batch_sizes)) if o.batch_sizes else None),
        ("--eval-size", o.eval_size), ("--min-duration", o.min_duration_s), ("--min-iterations", o.min_iterations),
        ("--max-duration", o.max_duration_s), ("--warmup", o.warmup_s), ("--threads", o.threads),
        ("--budget", o.accuracy_budget_pts)]
    for flag, v in pairs:
        if v is not None:
            f += [flag, str(v)]
    if not o.accuracy:
        f.append("--no-accuracy")
    if getattr(o, "emulate", False):
        f.append("--emulate")
    t = getattr(o, "telemetry", None)  # power / thermal sampling happens on the device, as asked here
    if t is not None:
        f += ["--power", t.power, "--power-rate", f"{t.rate_hz:g}", "--idle", f"{t.idle_s:g}",
              "--cooldown-max", f"{t.cooldown_max_s:g}"]
        f += (["--allow-throttle"] if t.allow_throttle else []) + (["--cooldown"] if t.cooldown else [])
        f += ["--sustained", f"{t.sustained_min:g}"] if t.sustained_min is not None else []
    return f


def _local_artifacts(options: BenchOptions, say: Callable[[str], None]) -> list[Path]:
    if options.model:
        from edgekit.bench.model_cache import cached_export  # host side: needs torch

        return [cached_export(options.model, weights=options.weights, img_size=options.img_size,
                              cache_dir=options.cache_dir, progress=say)]
    paths = [Path(p) for p in options.artifacts]
    from edgekit.core.manifest import load_artifact

    for p in paths:
        load_artifact(p)  # a bad artifact is a usage error here, before anything is pushed
    return paths


def _data_to_push(data: Any) -> Path | None:
    if data in (None, "", "embedded"):
        return None  # the embedded set ships in the wheel
    p = Path(data)
    if not p.exists():
        raise UsageError(f"--data {p} does not exist", hint="give an ImageFolder directory, a .npz file or 'embedded'")
    return p


def run_remote_bench(options: BenchOptions, remote: RemoteOptions, *,
                     on_line: Callable[[str], None] | None = None) -> BenchReport:
    """Bench ``options`` on ``remote.device``; the report carries ``extra['remote']``."""
    options.validate()
    dev = remote.device
    say = on_line or (lambda line: None)
    timings: dict[str, float] = {}
    t_all = time.perf_counter_ns()
    local_arts = _local_artifacts(options, say)
    data_local = _data_to_push(options.data)
    with Connection(dev.ssh_target(accept_new_host_key=remote.accept_new_host_key)) as conn:
        t = time.perf_counter_ns()
        facts = probe(conn, python=dev.python, workdir=dev.workdir, device=dev.name)
        workdir = facts.disk_path or dev.workdir
        target_arg, profile, why = resolve_device_target(options, dev, facts)
        timings["connect_probe_s"] = (time.perf_counter_ns() - t) / 1e9
        say(f"{dev.name}: {facts.arch} {facts.os}, Python {facts.python}; target {profile.name} ({why})")
        plan = plan_env(profile, options.runtimes)
        env = provision(conn, facts, plan, device=dev.name, python=dev.python, workdir=workdir,
                        wheelhouse=remote.wheelhouse)
        timings["provision_s"] = env.seconds
        say(f"{dev.name}: environment {env.key} {'installed' if env.installed else 'reused'} "
            f"(extras: {', '.join(env.extras) or 'none'}) in {env.seconds:.1f} s")
        t = time.perf_counter_ns()
        to_push = list(local_arts) + ([data_local] if data_local else [])
        if target_arg.endswith(".toml"):
            to_push.append(Path(target_arg))
        pushed = push_dirs(conn, to_push, workdir=workdir, python=env.python)
        timings["push_s"] = (time.perf_counter_ns() - t) / 1e9
        say(f"{dev.name}: pushed {sum(p.copied for p in pushed)} of {len(pushed)} item(s) "
            f"({sum(p.bytes for p in pushed if p.copied)} bytes) in {timings['push_s']:.1f} s")
        by_local = {p.local: p for p in pushed}
        if target_arg.endswith(".toml"):
            target_arg = by_local[str(Path(target_arg))].remote
        remote_data = by_local[str(data_local)].remote if data_local else (options.data or None)
        report = _bench_on_device(conn, options, remote, env, pushed, local_arts, target_arg, remote_data, workdir,
                                  timings, say)
    timings["total_s"] = (time.perf_counter_ns() - t_all) / 1e9
    record = {
        "device": dev.name, "host": dev.address, "registry": dev.source, "target": profile.name, "target_reason": why,
        "facts": facts.to_json(), "workdir": workdir,
        "edgekit": {"host": __version__, "device": report.edgekit_version or None},
        "versions": {"host": tool_versions(), "device": dict(report.environment.versions) if report.environment else None},
        "environment": {"key": env.key, "installed": env.installed, "extras": list(env.extras),
                        "system_site_packages": env.system_site_packages},
        "pushed": [dataclasses.asdict(p) for p in pushed], "timings_s": timings,
        "commands": conn.commands_run, "bytes_put": conn.bytes_put,
    }
    return dataclasses.replace(report, extra={**report.extra, "remote": record}, command=options.command or report.command)


def _bench_on_device(conn: Connection, options: BenchOptions, remote: RemoteOptions, env: Provisioned,
                     pushed: list[Pushed], local_arts: list[Path], target_arg: str, remote_data: Any, workdir: str,
                     timings: dict[str, float], say: Callable[[str], None]) -> BenchReport:
    dev = remote.device
    run_dir = f"{workdir}/runs/{_dt.datetime.now(_dt.timezone.utc).strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(4)}"
    limit = float(remote.timeout_s or dev.timeout_s)
    by_local = {p.local: p for p in pushed}
    arts_remote = [by_local[str(p)].remote for p in local_arts]
    argv = [env.python, "-m", "edgekit.remote.agent", "run", "--timeout", f"{limit:g}", "--pidfile", f"{run_dir}/pid",
            *[a for p in pushed for a in ("--verify", p.remote.rsplit("/", 1)[0])], "--",
            env.python, "-m", "edgekit.cli.main", "bench", "--target", target_arg, *bench_flags(options),
            *(["--data", str(remote_data)] if remote_data else []), "--no-history", "-o", f"{run_dir}/results.json", *arts_remote]  # the host records the run
    clean_stale(conn, env.python, f"{workdir}/runs", prefix="")  # runs of a host killed hard (hours old)
    conn.run([env.python, "-c", "import os,sys; os.makedirs(sys.argv[1], mode=0o700)", run_dir], timeout_s=60)
    say(f"{dev.name}: $ {shlex.join(argv[argv.index('--') + 1:][2:])}")
    t = time.perf_counter_ns()
    reason: str | None = None
    try:
        done = conn.run(argv, timeout_s=limit + HOST_GRACE_S, check=False,
                        on_line=lambda line: say(f"[{dev.name}] {line}"))
        rc = done.returncode
        if rc == EXIT_TIMEOUT:
            reason = f"timed out on {dev.name} after {limit:g} s (process group killed)"
        elif rc == EXIT_HANGUP:
            reason = f"the connection to {dev.name} closed during the bench (process group killed)"
        elif rc == EXIT_BAD_HASH:
            reason = f"an artifact on {dev.name} failed its sha256 check: {done.stderr.strip()[-200:]}"
        elif rc not in (0, 1):
            tail = " | ".join(done.stderr.strip().splitlines()[-2:])
            reason = f"the bench on {dev.name} exited {rc}" + (f" ({tail})" if tail else "")
    except RemoteTimeout as e:
        reason = e.one_line()
    except KeyboardInterrupt:
        _cleanup(conn, env.python, run_dir)
        raise
    except RemoteError as e:  # the connection broke mid-run (ssh itself failed)
        reason = f"connection lost during the bench: {e.one_line()}"
    timings["bench_s"] = (time.perf_counter_ns() - t) / 1e9
    report: BenchReport | None = None
    if reason is None:
        t = time.perf_counter_ns()
        with tempfile.TemporaryDirectory(prefix="edgekit-remote-") as tmp:
            try:
                conn.get(f"{run_dir}/results.json", Path(tmp) / "results.json", timeout_s=300)
                report = load_report(Path(tmp) / "results.json")
            except (RemoteError, UsageError) as e:
                tail = " | ".join(done.stderr.strip().splitlines()[-2:])
                reason = (f"no results came back from {dev.name} (its bench exited {rc}"
                          + (f": {tail}" if tail else "") + f"): {e.one_line()}")
        timings["fetch_s"] = (time.perf_counter_ns() - t) / 1e9
        if report is not None and remote.fetch_engines is not None:
            verify = [p.remote.rsplit("/", 1)[0] for p in pushed]
            notes = _fetch_engines(conn, env, report, arts_remote, verify, target_arg, run_dir, remote.fetch_engines,
                                   limit)
            report = dataclasses.replace(report, warnings=(*report.warnings, *notes))
    _cleanup(conn, env.python, run_dir)
    if report is None:
        return invalid_report(options, local_arts, dev.name, target_arg, reason or "unknown failure")
    arts = tuple(dataclasses.replace(a, path=str(local_arts[i])) if i < len(local_arts) else a
                 for i, a in enumerate(report.artifacts))
    return dataclasses.replace(report, artifacts=arts)


def _cleanup(conn: Connection, python: str, run_dir: str) -> None:
    """Kill whatever the run left (its process group) and remove its directory; best effort, bounded."""
    for cmd in (["kill", f"{run_dir}/pid"], ["clean", run_dir]):
        try:
            conn.run([python, "-m", "edgekit.remote.agent", *cmd], timeout_s=30, check=False)
        except (RemoteError, KeyboardInterrupt) as e:
            log.warning("cleanup on the device failed: %s", e)


#: runtimes whose engines must be built on the device itself (not portable across GPU / TensorRT / JetPack)
DEVICE_BUILT = ("tensorrt",)


def _fetch_engines(conn: Connection, env: Provisioned, report: BenchReport, arts_remote: list[str], verify: list[str],
                   target_arg: str, run_dir: str, dest: Path, limit: float) -> list[str]:
    """Build the engines of the benched TensorRT rows on the device with ``edgekit build`` (the same build code
    and engine keys as a local build) and copy each engine directory, sidecar key included, into ``dest``."""
    by_name = {a.name: arts_remote[i] for i, a in enumerate(report.artifacts) if i < len(arts_remote)}
    wanted = sorted({(r.artifact, r.precision, r.device) for r in report.results
                     if r.ok and r.runtime in DEVICE_BUILT and r.artifact in by_name})
    if not wanted:
        return ["--fetch-engines: no TensorRT row ran on the device, so there is no device-built engine to fetch"]
    dest.mkdir(parents=True, exist_ok=True)
    notes = []
    for art, prec, device in wanted:
        name = f"{Path(art).name}-{prec}" + (f"-{device.lower()}" if device.upper() == "DLA" else "")
        out = f"{run_dir}/engines/{name}"
        argv = [env.python, "-m", "edgekit.remote.agent", "run", "--timeout", f"{limit:g}", "--pidfile",
                f"{run_dir}/pid", *[a for v in verify for a in ("--verify", v)], "--", env.python, "-m",
                "edgekit.cli.main", "build", by_name[art], "--target", target_arg, "--runtime", "tensorrt",
                "--precision", prec, *(["--runtime-device", device] if device.upper() == "DLA" else []), "-o", out]
        done = conn.run(argv, timeout_s=limit + HOST_GRACE_S, check=False)
        if done.returncode != 0:
            notes.append(f"--fetch-engines: building {name} on the device failed (exit {done.returncode}): "
                         + " | ".join(done.stderr.strip().splitlines()[-2:]))
            continue
        conn.get(out, dest / name, timeout_s=600)
        notes.append(f"--fetch-engines: {name} -> {dest / name}")
    return notes


def invalid_report(options: BenchOptions, local_arts: list[Path], device: str, target: str, reason: str) -> BenchReport:
    """A report that says the measurement did not complete: one ``invalid`` row per artifact, with the reason."""
    from edgekit.bench.runner import _artifact_info, _unique_names
    from edgekit.core.manifest import load_artifact

    loaded = [load_artifact(p) for p in local_arts]
    names = _unique_names(loaded)
    infos = tuple(_artifact_info(a, n) for a, n in zip(loaded, names, strict=True))
    rows = tuple(BenchResult(key=f"{n}/remote:{device}/{','.join(options.precisions or ()) or 'all'}", artifact=n,
                             model=a.manifest.model, runtime=",".join(options.runtimes or ()) or "remote", device=device,
                             precision=",".join(options.precisions or ()) or "all", status="invalid", reason=reason)
                 for a, n in zip(loaded, names, strict=True))
    return BenchReport(target={"name": target}, settings={"device": device, "tier": options.tier}, environment=None,
                       artifacts=infos, results=rows, created=_dt.datetime.now(_dt.timezone.utc).isoformat(),
                       edgekit_version=__version__, command=options.command or tuple(sys.argv),
                       warnings=(f"incomplete: {reason}",))
