"""Is the model hub reachable? Asked once, in about a second, before any download is tried.

Offline, huggingface_hub retries every request five times with back-off (two
files, ~50 s, 40 warnings) before failing; the torch hub waits on its own
timeouts. One TCP connection to the hub host (or to the HTTPS proxy, when one
is set) with a short timeout answers the question first; the DNS lookup runs in
a daemon thread so a resolver that hangs cannot stretch it. Standard library only.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from urllib.parse import urlparse

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 1.5
_memo: dict[tuple[str, int], str | None] = {}


def _target(url: str) -> tuple[str, int]:
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    u = urlparse(proxy if proxy and url.startswith("https") else url)
    port = u.port or (443 if u.scheme == "https" else 80)
    return u.hostname or "", port


def unreachable(url: str, *, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """None when a TCP connection to ``url``'s host (or the HTTPS proxy) opens within ``timeout_s``,
    else why not, in a few words. Answers are remembered for the process."""
    host, port = _target(url)
    if not host:
        return f"no host in {url!r}"
    key = (host, port)
    if key in _memo:
        return _memo[key]
    result: list[str | None] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                result.append(None)
        except OSError as e:
            result.append(f"{host}:{port}: {e.strerror or type(e).__name__}")

    t0 = time.perf_counter_ns()
    th = threading.Thread(target=probe, name="edgekit-hub-probe", daemon=True)
    th.start()
    th.join(timeout_s + 0.2)
    answer = result[0] if result else f"{host}:{port}: no answer in {timeout_s:g} s"
    log.debug("hub probe %s:%d -> %s in %.0f ms", host, port, answer or "reachable", (time.perf_counter_ns() - t0) / 1e6)
    _memo[key] = answer
    return answer


def hf_endpoint() -> str:
    """The Hugging Face endpoint huggingface_hub will use (``HF_ENDPOINT`` or huggingface.co)."""
    return os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
