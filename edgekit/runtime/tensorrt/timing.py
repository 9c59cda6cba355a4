"""One TensorRT inference, timed the way trtexec names its numbers (TensorRT "Command-Line Programs").

Four CUDA events on the runner's stream bracket the H2D copies, ``execute_async_v3`` and the D2H copies:

* ``h2d_ms``: trtexec's H2D Latency (event before the first input copy -> event after the last);
* ``gpu_compute_ms``: trtexec's GPU Compute Time (events right around ``execute_async_v3``);
* ``d2h_ms``: trtexec's D2H Latency;
* ``host_latency_ms`` = h2d + compute + d2h: trtexec's Host Latency ("the summation of H2D Latency,
  GPU Compute Time, and D2H Latency");
* ``python_end_to_end_ms``: ``perf_counter_ns`` around the whole call (shape setting, the copy into the pinned
  buffer, the synchronize and the copy of the outputs): what a Python caller waits, not a trtexec number.

trtexec also enqueues one inference ahead of the next; edgekit's loop is synchronous (one call waits for its
result), so trtexec's throughput is not comparable with edgekit's latency loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class TensorRTTiming:
    """One inference in ms: H2D, GPU compute and D2H from CUDA events, their sum, and the Python wall time."""

    h2d_ms: float
    gpu_compute_ms: float
    d2h_ms: float
    python_end_to_end_ms: float

    DEFINITIONS: ClassVar[dict[str, str]] = {
        "h2d_ms": "CUDA events around the input copies (trtexec H2D Latency)",
        "gpu_compute_ms": "CUDA events around execute_async_v3 (trtexec GPU Compute Time)",
        "d2h_ms": "CUDA events around the output copies (trtexec D2H Latency)",
        "host_latency_ms": "h2d_ms + gpu_compute_ms + d2h_ms (trtexec Host Latency)",
        "python_end_to_end_ms": "perf_counter_ns around infer(): Python wall time, not a trtexec number",
    }

    @property
    def host_latency_ms(self) -> float:
        return self.h2d_ms + self.gpu_compute_ms + self.d2h_ms

    def to_json(self) -> dict[str, float]:
        return {"h2d_ms": self.h2d_ms, "gpu_compute_ms": self.gpu_compute_ms, "d2h_ms": self.d2h_ms,
                "host_latency_ms": self.host_latency_ms, "python_end_to_end_ms": self.python_end_to_end_ms}


class EventTimer:
    """Four events on one stream; :meth:`timing` reads them after the stream was synchronized."""

    def __init__(self, cuda: Any, stream: int) -> None:
        self.cuda, self.stream = cuda, stream
        self.events: list[int] = []
        try:
            for _ in range(4):
                self.events.append(cuda.event_create())
        except BaseException:
            self.close()
            raise

    def mark(self, i: int) -> None:
        self.cuda.event_record(self.events[i], self.stream)

    def timing(self, *, python_end_to_end_ms: float) -> TensorRTTiming:
        e, ms = self.events, self.cuda.elapsed_ms
        return TensorRTTiming(h2d_ms=ms(e[0], e[1]), gpu_compute_ms=ms(e[1], e[2]), d2h_ms=ms(e[2], e[3]),
                              python_end_to_end_ms=python_end_to_end_ms)

    def close(self) -> None:
        events, self.events = self.events, []
        for ev in events:
            self.cuda.event_destroy(ev)
