"""What a remote bench costs over a local one: provision, push, bench, fetch, on the loopback device.

A real OpenSSH server on 127.0.0.1 (the tests' tests/sshd.py: private host key, client key, known_hosts)
stands in for the device; the same artifact and settings are benched locally, then remotely on a fresh
device workdir (edgekit builds its wheel, makes a venv there with only the onnxruntime extra, pushes the
artifact), then remotely again with everything cached. Wall-clock seconds per phase, the commit, machine
and versions go to results/remote_overhead.{json,md}. The loopback device shares this machine's CPU, disk
and pip cache: the network cost of a real device (and its slower CPU) is not in these numbers.

    python benchmarks/remote_overhead.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the loopback sshd of the tests

from common import write_results  # noqa: E402
from sshd import ensure_sshd, start_sshd  # noqa: E402

from edgekit.bench.runner import BenchOptions, run_bench  # noqa: E402
from edgekit.core.host import read_host_facts  # noqa: E402
from edgekit.core.targets import resolve_target  # noqa: E402
from edgekit.remote.devices import Device  # noqa: E402
from edgekit.remote.remote_bench import RemoteOptions, run_remote_bench  # noqa: E402

SETTINGS = {"runtimes": ("onnxruntime",), "precisions": ("fp32",), "min_duration_s": 1.0, "min_iterations": 50,
            "warmup_s": 0.2, "batch_sizes": (1, 4), "seed": 0}


def _artifact(dest: Path) -> Path:
    from edgekit.data.embedded import embedded_class_names
    from edgekit.export import ExportOptions, export_model

    names = embedded_class_names()
    out = dest / "mobilenetv3_small_100"
    export_model(ExportOptions(model="mobilenetv3_small_100", output=out, weights="none", img_size=96,
                               dynamic_batch=True, num_classes=len(names), labels=names))
    return out


def main() -> None:
    if ensure_sshd() is None:
        sys.exit("needs /usr/sbin/sshd (apt-get install openssh-server)")
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                                capture_output=True, text=True).stdout.strip())
    with tempfile.TemporaryDirectory(prefix="ek-remote-bench-") as tmp:
        t = Path(tmp)
        os.environ["EDGEKIT_CACHE"] = str(t / "cache")  # the wheel is built in this run, not taken from a cache
        art = _artifact(t)
        target = resolve_target(read_host_facts()).profile.name
        opts = BenchOptions(target=target, artifacts=(art,), **SETTINGS)
        t0 = time.perf_counter_ns()
        local = run_bench(opts)
        local_s = (time.perf_counter_ns() - t0) / 1e9
        server = start_sshd(t / "sshd")
        try:
            dev = Device(name="loopback", workdir=str(t / "device"), **server.device_kwargs())
            runs = []
            for label in ("first (fresh device)", "second (cached)"):
                t0 = time.perf_counter_ns()
                rep = run_remote_bench(BenchOptions(target="", artifacts=(art,), **SETTINGS), RemoteOptions(dev))
                wall = (time.perf_counter_ns() - t0) / 1e9
                r = rep.extra["remote"]
                (row,) = rep.results
                runs.append({"run": label, "wall_s": wall, "timings_s": r["timings_s"],
                             "installed": r["environment"]["installed"], "pushed_bytes": r["bytes_put"],
                             "commands": r["commands"], "status": row.status,
                             "top1": row.accuracy.top1 if row.accuracy else None,
                             "p50_ms": row.latency.stats.p50 if row.latency else None,
                             "same_predictions_as_local": bool(
                                 row.accuracy is not None and local.results[0].accuracy is not None
                                 and (row.accuracy.predictions == local.results[0].accuracy.predictions).all())})
        finally:
            server.stop()
    lrow = local.results[0]
    payload = {"commit": commit, "dirty_worktree": dirty, "target": target, "settings": {k: list(v) if isinstance(v, tuple)
               else v for k, v in SETTINGS.items()},
               "local": {"wall_s": local_s, "p50_ms": lrow.latency.stats.p50 if lrow.latency else None,
                         "top1": lrow.accuracy.top1 if lrow.accuracy else None},
               "remote": runs}
    md = ["| run | wall s | connect+probe s | provision s | push s | bench s | fetch s | pushed bytes | installed | "
          "p50 ms | top-1 | same predictions as local |", "|---|---|---|---|---|---|---|---|---|---|---|---|",
          f"| local bench | {local_s:.1f} | - | - | - | {local_s:.1f} | - | - | - | {payload['local']['p50_ms']:.3f} | "
          f"{payload['local']['top1']:.4f} | - |"]
    for r in runs:
        ts = r["timings_s"]
        md.append(f"| remote, {r['run']} | {r['wall_s']:.1f} | {ts['connect_probe_s']:.1f} | {ts['provision_s']:.1f} | "
                  f"{ts['push_s']:.1f} | {ts['bench_s']:.1f} | {ts.get('fetch_s', 0):.2f} | {r['pushed_bytes']} | "
                  f"{r['installed']} | {r['p50_ms']:.3f} | {r['top1']:.4f} | {r['same_predictions_as_local']} |")
    notes = (f"\n\nCommit {commit}{' (worktree had uncommitted changes)' if dirty else ''}; target {target}. "
             "The device is a loopback sshd on this machine (same CPU, disk and pip cache): a real device adds its "
             "network transfer time and runs the bench on its own, slower CPU. 'bench s' of a remote run includes "
             "starting the device's Python and edgekit; provisioning installs numpy, onnx and onnxruntime into a "
             "fresh venv from pip's cache.\n")
    write_results("remote_overhead", payload, "\n".join(md) + notes)
    print("\n".join(md))


if __name__ == "__main__":
    main()
