"""tegrastats lines (JetPack 4 to 7) parsed into numbers, and a fallback power source that reads them.

Grammar: ``[MM-DD-YYYY HH:MM:SS ]RAM u/tMB (lfb ...) [SWAP ...] CPU [p%@f,...|off]
[EMC_FREQ ...] GR3D_FREQ ... [engines] temps... rails...``. The parser accepts
1-3 slash-separated rail values with or without ``mW`` (JetPack 4 has no unit,
JetPack 7 a third value), temperatures with one or two values in any case
(``-256C`` = sensor disabled, dropped), GR3D as ``p%``, ``p%@f``,
``p%@[f,...]`` or ``@[f,...]``, ``off`` CPU cores, an optional timestamp and
``NC`` rails (ignored). Every parse keeps the raw line (bounded) and a status:
``ok``, ``partial`` (some fields missing or not understood, e.g. a non-root
line with only ``VDD_IN``) or ``malformed`` (nothing usable).
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from edgekit.telemetry.base import PowerReading, Scope, SourceName, Unavailable
from edgekit.telemetry.rails import total_of

log = logging.getLogger(__name__)

MAX_LINE = 4096
_TS = re.compile(r"^(\d{2}-\d{2}-\d{4} \d{2}:\d{2}:\d{2})\s+")
_PAREN = re.compile(r"\([^)]*\)")
_MEM = re.compile(r"^(\d+)/(\d+)([kKMG]B)$")
_CPU = re.compile(r"^\[(.*)\]$")
_CORE = re.compile(r"^(\d+)%@(\d+)$")
_LOADFREQ = re.compile(r"^(?:(\d+)%)?(?:@(?:\[([\d,]*)\]|(\d+)))?$")
_TEMP = re.compile(r"^([A-Za-z][\w]*)@(-?\d+(?:\.\d+)?)C(?:/(-?\d+(?:\.\d+)?)C)?$", re.IGNORECASE)
_RAIL = re.compile(r"^(\d+(?:\.\d+)?)(?:mW)?(?:/(\d+(?:\.\d+)?)(?:mW)?)?(?:/(\d+(?:\.\d+)?)(?:mW)?)?$")
_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
DISABLED_C = -256.0


@dataclass(frozen=True)
class TegrastatsSample:
    """One parsed line. Rails in mW (first value = instantaneous); temperatures in °C."""

    raw: str
    status: str  # ok | partial | malformed
    problems: tuple[str, ...] = ()
    timestamp: str | None = None
    ram_used_mb: int | None = None
    ram_total_mb: int | None = None
    cpu: tuple[tuple[int, int] | None, ...] = ()  # (load %, MHz) per core; None = off
    gpu_load_pct: int | None = None
    gpu_freq_mhz: tuple[int, ...] = ()
    emc: tuple[int, int] | None = None  # (load %, MHz)
    temps_c: dict[str, float] = field(default_factory=dict)
    rails_mw: dict[str, float] = field(default_factory=dict)
    rails_avg_mw: dict[str, float] = field(default_factory=dict)
    total_mw: float | None = None
    scope: Scope | None = None
    total_rule: str = ""


def _load_freq(token: str) -> tuple[int | None, tuple[int, ...]] | None:
    m = _LOADFREQ.match(token)
    if not m or token in ("", "@"):
        return None
    load = int(m.group(1)) if m.group(1) else None
    if m.group(2) is not None:
        freqs = tuple(int(f) for f in m.group(2).split(",") if f)
    elif m.group(3) is not None:
        freqs = (int(m.group(3)),)
    else:
        freqs = ()
    return load, freqs


def parse_line(line: str) -> TegrastatsSample:
    """Parse one tegrastats line (see the module docstring); never raises."""
    raw = line.rstrip("\r\n")
    if len(raw) > MAX_LINE:
        return TegrastatsSample(raw=raw[:MAX_LINE], status="malformed",
                                problems=(f"line longer than {MAX_LINE} characters",))
    text = raw.strip()
    kw: dict = {}
    problems: list[str] = []
    m = _TS.match(text)
    if m:
        kw["timestamp"] = m.group(1)
        text = text[m.end():]
    tokens = _PAREN.sub(" ", text).split()
    temps: dict[str, float] = {}
    rails: dict[str, float] = {}
    avgs: dict[str, float] = {}
    understood = 0
    i = 0
    while i < len(tokens):
        tok, nxt = tokens[i], tokens[i + 1] if i + 1 < len(tokens) else None
        if tok in ("RAM", "SWAP", "IRAM") and nxt and _MEM.match(nxt):
            if tok == "RAM":
                used, total, _ = _MEM.match(nxt).groups()  # type: ignore[union-attr]
                kw["ram_used_mb"], kw["ram_total_mb"] = int(used), int(total)
            understood += 1
            i += 2
            continue
        if tok == "CPU" and nxt and _CPU.match(nxt):
            cores: list[tuple[int, int] | None] = []
            for c in _CPU.match(nxt).group(1).split(","):  # type: ignore[union-attr]
                cm = _CORE.match(c.strip())
                if c.strip() == "off":
                    cores.append(None)
                elif cm:
                    cores.append((int(cm.group(1)), int(cm.group(2))))
                else:
                    problems.append(f"CPU entry {c!r} not understood")
            kw["cpu"] = tuple(cores)
            understood += 1
            i += 2
            continue
        if tok.startswith("GR3D") and tok.endswith("_FREQ") and nxt is not None:
            lf = _load_freq(nxt)
            if lf is not None:
                if tok == "GR3D_FREQ":
                    kw["gpu_load_pct"], kw["gpu_freq_mhz"] = lf
                    if not lf[1]:
                        problems.append("GR3D_FREQ without a frequency")
                understood += 1
                i += 2
                continue
        if tok == "EMC_FREQ" and nxt is not None:
            lf = _load_freq(nxt)
            if lf is not None:
                kw["emc"] = (lf[0], lf[1][0]) if lf[0] is not None and lf[1] else None
                understood += 1
                i += 2
                continue
        tm = _TEMP.match(tok)
        if tm:
            value = float(tm.group(2))
            if value != DISABLED_C:
                temps[tm.group(1)] = value
            understood += 1
            i += 1
            continue
        if _NAME.match(tok) and nxt is not None:
            rm = _RAIL.match(nxt)
            if rm and ("mW" in nxt or "/" in nxt):
                if tok != "NC":
                    rails[tok] = float(rm.group(1))
                    if rm.group(2) is not None:
                        avgs[tok] = float(rm.group(2))
                understood += 1
                i += 2
                continue
            if nxt == "off" or re.match(r"^\d+$", nxt) or _load_freq(nxt) is not None:  # engines: VIC off, APE 150
                understood += 1
                i += 2
                continue
        problems.append(f"token {tok!r} not understood")
        i += 1
    if understood == 0:
        return TegrastatsSample(raw=raw, status="malformed", problems=tuple(problems) or ("empty line",), **kw)
    total, scope, rule = total_of(rails)
    if not rails:
        problems.append("no power rail in the line (tegrastats prints rails only on modules with INA3221 "
                        "monitors, some releases only as root)")
    if "ram_used_mb" not in kw:
        problems.append("no RAM field")
    if "cpu" not in kw:
        problems.append("no CPU field (printed only as root on some releases)")
    return TegrastatsSample(raw=raw, status="partial" if problems else "ok", problems=tuple(problems),
                            temps_c=temps, rails_mw=rails, rails_avg_mw=avgs, total_mw=total, scope=scope,
                            total_rule=rule, **kw)


class TegrastatsSource:
    """Power from a running ``tegrastats --interval MS`` (the fallback when hwmon is not readable).

    ``lines`` is injectable: any iterable of lines (a recorded file in tests); by default a tegrastats
    process is started. A background thread keeps the latest parsed line; :meth:`read` returns it.
    """

    name = SourceName.TEGRASTATS
    kind = "power"

    def __init__(self, *, interval_ms: int = 100, lines: Iterable[str] | None = None,
                 clock: Callable[[], int] = time.perf_counter_ns) -> None:
        self._proc: subprocess.Popen[str] | None = None
        if lines is None:
            self._proc = subprocess.Popen(["tegrastats", "--interval", str(int(interval_ms))],
                                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            lines = self._proc.stdout  # type: ignore[assignment]
            weakref.finalize(self, _stop_process, self._proc)  # never left running, even after an error
        self._clock = clock
        self._latest: TegrastatsSample | None = None
        self._seen = threading.Event()
        self._lock = threading.Lock()
        self.scope: Scope = Scope.MODULE_INPUT
        self.detail = "tegrastats"
        self._thread = threading.Thread(target=self._pump, args=(lines,), daemon=True, name="tegrastats")
        self._thread.start()

    def _pump(self, lines: Iterable[str]) -> None:
        for line in lines:
            s = parse_line(line)
            if s.total_mw is None:
                log.debug("tegrastats line without a total: %s", "; ".join(s.problems))
                continue
            with self._lock:
                self._latest = s
                self.scope, self.detail = s.scope or self.scope, f"tegrastats, {s.total_rule}"
            self._seen.set()

    def wait_first(self, timeout_s: float) -> bool:
        return self._seen.wait(timeout_s)

    def read(self) -> PowerReading:
        with self._lock:
            s = self._latest
        if s is None:
            return PowerReading(t_ns=self._clock())
        return PowerReading(t_ns=self._clock(), power_mw=s.total_mw, rails_mw=dict(s.rails_mw))

    def close(self) -> None:
        if self._proc is not None:
            _stop_process(self._proc)


def _stop_process(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            proc.kill()


def probe_tegrastats(*, interval_ms: int = 100, timeout_s: float = 3.0) -> TegrastatsSource | Unavailable:
    """A started tegrastats source, or why not (not a Jetson, or no rail readable without root)."""
    if shutil.which("tegrastats") is None:
        return Unavailable(SourceName.TEGRASTATS, "tegrastats is not on PATH (not a Jetson)")
    try:
        src = TegrastatsSource(interval_ms=interval_ms)
    except OSError as e:
        return Unavailable(SourceName.TEGRASTATS, f"tegrastats did not start: {e}")
    if not src.wait_first(timeout_s):
        src.close()
        return Unavailable(SourceName.TEGRASTATS, f"tegrastats printed no line with a power rail in {timeout_s:g} s",
                           fix="run as root (some releases print rails only as root)")
    return src
