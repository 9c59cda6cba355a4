"""The device side of a remote run: ``python -m edgekit.remote.agent COMMAND`` in the provisioned venv.

These are the only commands edgekit runs on a device once it is provisioned (standard library only):

* ``seal TMP FINAL SHA256S_JSON``: verify every file of a pushed directory against the host's sha256s, write
  them next to it, and rename it into place (a killed push leaves only a ``.tmp-*`` directory, never a
  half-used artifact);
* ``have DIR...``: which content-addressed directories are complete (one JSON object on stdout);
* ``run --timeout S --pidfile F [--verify DIR]... -- ARGV``: verify the directories again (a runtime loads
  native code: nothing unverified is loaded), then run ARGV in its own process group and stream its output.
  The group is killed when the wall-clock limit passes (exit 124), when the host's connection closes
  (stdin EOF: Ctrl-C on the host, a dropped connection; exit 125) or when the agent is signalled;
* ``kill PIDFILE``: kill a run's process group (the host's cleanup after a fault);
* ``clean DIR``: remove a run directory.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

SEALED = ".edgekit-sha256.json"
EXIT_TIMEOUT, EXIT_HANGUP, EXIT_BAD_HASH = 124, 125, 65


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(directory: Path, expected: dict[str, str]) -> list[str]:
    """Files whose content is not what the host sent (missing ones included), and unexpected extra files."""
    bad = []
    for rel, digest in sorted(expected.items()):
        p = directory / rel
        if not p.is_file() or sha256_file(p) != digest:
            bad.append(rel)
    present = {str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file()} - {SEALED}
    bad += sorted(present - set(expected))
    return bad


def cmd_seal(tmp: str, final: str, sums: str) -> int:
    src, dst = Path(tmp), Path(final)
    expected = json.loads(sums)
    bad = verify(src, expected)
    if bad:
        shutil.rmtree(src, ignore_errors=True)
        print(f"sha256 mismatch after the push: {', '.join(bad[:5])}", file=sys.stderr)
        return EXIT_BAD_HASH
    (src / SEALED).write_text(json.dumps(expected, sort_keys=True))
    if dst.exists():  # pushed concurrently by another run: keep the first, drop ours
        shutil.rmtree(src, ignore_errors=True)
        return 0
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.rename(src, dst)
    return 0


def cmd_have(dirs: list[str]) -> int:
    print(json.dumps({d: (Path(d) / SEALED).is_file() for d in dirs}))
    return 0


def _check_sealed(dirs: list[str]) -> str | None:
    for d in dirs:
        marker = Path(d) / SEALED
        if not marker.is_file():
            return f"{d} is not a complete push"
        bad = verify(Path(d), json.loads(marker.read_text()))
        if bad:
            return f"{d}: sha256 mismatch in {', '.join(bad[:5])} (refusing to load it)"
    return None


def _killpg(pgid: int, grace_s: float = 3.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)


def cmd_run(timeout_s: float, pidfile: str, verify_dirs: list[str], argv: list[str]) -> int:
    problem = _check_sealed(verify_dirs)
    if problem:
        print(f"edgekit-agent: {problem}", file=sys.stderr)
        return EXIT_BAD_HASH
    env = dict(os.environ, EDGEKIT_PROGRESS="lines", PYTHONUNBUFFERED="1")  # progress as lines, streamed live
    child = subprocess.Popen(argv, start_new_session=True, stdin=subprocess.DEVNULL, env=env)
    Path(pidfile).write_text(str(child.pid))
    hangup = threading.Event()

    def watch_stdin() -> None:  # the host's ssh session: EOF means it is gone
        try:  # os.read: no buffered-reader lock for a daemon thread to hold at interpreter exit
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        hangup.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    signalled: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        signalled.append(signum)

    for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(s, on_signal)
    deadline = time.monotonic() + timeout_s
    code: int | None = None
    try:
        while code is None:
            rc = child.poll()
            if rc is not None:
                code = rc if rc >= 0 else 128 - rc
            elif time.monotonic() > deadline:
                print(f"edgekit-agent: timed out after {timeout_s:g} s; process group killed", file=sys.stderr)
                _killpg(child.pid)
                code = EXIT_TIMEOUT
            elif hangup.is_set() or signalled:
                print("edgekit-agent: host connection closed; process group killed", file=sys.stderr)
                _killpg(child.pid)
                code = EXIT_HANGUP
            else:
                time.sleep(0.05)
    finally:
        _killpg(child.pid, grace_s=1.0)  # anything the bench left in its group
        try:
            os.unlink(pidfile)
        except OSError:
            pass
    return code


def cmd_kill(pidfile: str) -> int:
    try:
        pid = int(Path(pidfile).read_text().strip())
    except (OSError, ValueError):
        return 0
    _killpg(pid)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="edgekit.remote.agent")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("seal")
    p.add_argument("tmp")
    p.add_argument("final")
    p.add_argument("sums")
    p = sub.add_parser("have")
    p.add_argument("dirs", nargs="*")
    p = sub.add_parser("run")
    p.add_argument("--timeout", type=float, required=True)
    p.add_argument("--pidfile", required=True)
    p.add_argument("--verify", action="append", default=[])
    p.add_argument("argv", nargs=argparse.REMAINDER)
    p = sub.add_parser("kill")
    p.add_argument("pidfile")
    p = sub.add_parser("clean")
    p.add_argument("dir")
    a = ap.parse_args(argv)
    if a.cmd == "seal":
        return cmd_seal(a.tmp, a.final, a.sums)
    if a.cmd == "have":
        return cmd_have(a.dirs)
    if a.cmd == "run":
        rest = a.argv[1:] if a.argv[:1] == ["--"] else a.argv
        return cmd_run(a.timeout, a.pidfile, a.verify, rest)
    if a.cmd == "kill":
        return cmd_kill(a.pidfile)
    shutil.rmtree(a.dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
