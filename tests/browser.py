"""A real headless browser for tests: Debian's chromium, driven from the standard library.

* :func:`ensure_chromium` finds ``chromium``; when it is missing and we are root
  with apt, it runs ``apt-get update`` and ``apt-get install -y chromium``
  (the first time takes a while); otherwise the test is skipped with the reason.
* :func:`dump_dom` and :func:`screenshot` use chromium's own ``--dump-dom`` and
  ``--screenshot`` switches.
* :func:`load_page` drives chromium over the DevTools protocol on a pipe
  (``--remote-debugging-pipe``: NUL-terminated JSON on file descriptors 3 and
  4, so no websocket client is needed). It records every network request the
  page makes (``Network.requestWillBeSent``), every console / log entry (a
  Content-Security-Policy violation is one), uncaught exceptions, and can
  evaluate JavaScript in the page.

Every launch is isolated and offline: a fresh ``--user-data-dir``, background
networking, sync, component updates and QUIC off, and
``--host-resolver-rules=MAP * ~NOTFOUND`` so that no host name resolves even if
something tried.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
BASE_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--no-default-browser-check",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
    "--disable-default-apps", "--disable-domain-reliability", "--metrics-recording-only", "--mute-audio",
    "--hide-scrollbars", "--host-resolver-rules=MAP * ~NOTFOUND",
)


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def ensure_chromium(*, install_timeout_s: float = 900) -> str:
    """The chromium executable; installs Debian's package when missing and allowed, else pytest.skip."""
    path = find_chromium()
    if path:
        return path
    apt = shutil.which("apt-get")
    if apt is None:
        pytest.skip("chromium is not installed and apt-get is not available to install it")
    if os.geteuid() != 0:
        pytest.skip("chromium is not installed and installing it needs root (apt-get install chromium)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in ([apt, "update"], [apt, "install", "-y", "--no-install-recommends", "chromium"]):
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=install_timeout_s, env=env, check=False)
        except subprocess.TimeoutExpired:
            pytest.skip(f"'{' '.join(argv)}' did not finish within {install_timeout_s:.0f} s")
        if p.returncode != 0:
            tail = (p.stderr or p.stdout).strip().splitlines()[-1:] or [""]
            pytest.skip(f"'{' '.join(argv)}' failed (exit {p.returncode}): {tail[0]}")
    path = find_chromium()
    if path is None:
        pytest.skip("apt-get install chromium succeeded but no chromium executable is on PATH")
    return path


def _run(chromium: str, args: list[str], *, timeout_s: float) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="edgekit-chromium-") as profile:
        argv = [chromium, *BASE_FLAGS, f"--user-data-dir={profile}", *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)


def dump_dom(chromium: str, page: Path, *, timeout_s: float = 60) -> str:
    """The DOM after load, serialized by chromium (``--dump-dom``)."""
    p = _run(chromium, ["--dump-dom", page.resolve().as_uri()], timeout_s=timeout_s)
    if p.returncode != 0 or "<html" not in p.stdout:
        raise RuntimeError(f"chromium --dump-dom failed (exit {p.returncode}): {p.stderr[-2000:]}")
    return p.stdout


def screenshot(chromium: str, page: Path, png: Path, *, width: int = 1400, height: int = 2400,
               timeout_s: float = 60) -> Path:
    """A PNG of the page's first ``width`` x ``height`` pixels (``--screenshot``)."""
    p = _run(chromium, [f"--screenshot={png}", f"--window-size={width},{height}", page.resolve().as_uri()],
             timeout_s=timeout_s)
    if p.returncode != 0 or not png.is_file():
        raise RuntimeError(f"chromium --screenshot failed (exit {p.returncode}): {p.stderr[-2000:]}")
    return png


def png_size(png: Path) -> tuple[int, int]:
    data = png.read_bytes()[:24]
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{png} is not a PNG")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


# -- the DevTools protocol over a pipe ----------------------------------------------------------------------------

@dataclass
class PageLog:
    """What a page did while loading."""

    url: str
    requests: list[str] = field(default_factory=list)  # every URL the page requested, its own included
    blocked: dict[str, str] = field(default_factory=dict)  # URL -> why the browser blocked it (e.g. "csp")
    failed: dict[str, str] = field(default_factory=dict)  # URL -> network error (e.g. net::ERR_NAME_NOT_RESOLVED)
    messages: list[dict[str, Any]] = field(default_factory=list)  # Log.entryAdded entries and console calls
    exceptions: list[str] = field(default_factory=list)
    loaded: bool = False

    @property
    def remote_requests(self) -> list[str]:
        return [u for u in self.requests if not u.startswith(("file:", "data:", "about:", "chrome:"))]

    def csp_violations(self) -> list[str]:
        return [m["text"] for m in self.messages if "Content Security Policy" in m.get("text", "")]


class DevTools:
    """A chromium process driven over ``--remote-debugging-pipe``."""

    def __init__(self, chromium: str, *, width: int = 1400, height: int = 1000, timeout_s: float = 60) -> None:
        self.timeout_s = timeout_s
        self._profile = tempfile.TemporaryDirectory(prefix="edgekit-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        # the protocol wants the browser's end on fds 3 (it reads) and 4 (it writes): park both above them first
        hi_r = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 10)
        hi_w = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 10)
        os.close(to_child_r)
        os.close(from_child_w)

        def wire() -> None:  # in the child, before exec
            os.dup2(hi_r, 3)
            os.dup2(hi_w, 4)

        argv = [chromium, *BASE_FLAGS, f"--user-data-dir={self._profile.name}", "--remote-debugging-pipe",
                f"--window-size={width},{height}", "about:blank"]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, preexec_fn=wire, close_fds=False)
        os.close(hi_r)
        os.close(hi_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict[str, Any]] = []

    def __enter__(self) -> DevTools:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self._send({"id": 10**9, "method": "Browser.close"})
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(timeout=10)
        for fd in (self._to_child, self._from_child):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        self._profile.cleanup()

    def _send(self, msg: dict[str, Any]) -> None:
        os.write(self._to_child, json.dumps(msg).encode() + b"\0")

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("chromium did not answer in time")
            ready, _, _ = select.select([self._from_child], [], [], left)
            if ready:
                chunk = os.read(self._from_child, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"chromium closed the pipe (exit {self.proc.poll()})")
                self._buf += chunk
        raw, _, self._buf = self._buf.partition(b"\0")
        return json.loads(raw)

    def call(self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None) -> Any:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self._send(msg)
        deadline = time.monotonic() + self.timeout_s
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, *, timeout_s: float | None = None) -> dict[str, Any] | None:
        """Wait for an event (already received ones count); None on timeout."""
        for e in self.events:
            if e.get("method") == method:
                return e
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        while True:
            try:
                e = self._read(deadline)
            except TimeoutError:
                return None
            self.events.append(e)
            if e.get("method") == method:
                return e

    def open(self, url: str, *, settle_s: float = 0.5) -> tuple[str, PageLog]:
        """Open ``url`` in a new tab with Network/Log/Runtime recording on; (session id, what it did)."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Network", "Log", "Runtime", "Page"):
            self.call(f"{domain}.enable", session=session)
        self.events.clear()
        self.call("Page.navigate", {"url": url}, session=session)
        loaded = self.wait_for("Page.loadEventFired") is not None
        end = time.monotonic() + settle_s  # late requests and console messages
        while time.monotonic() < end:
            try:
                self.events.append(self._read(end))
            except TimeoutError:
                break
        log = PageLog(url=url, loaded=loaded)
        ids: dict[str, str] = {}
        for e in self.events:
            if e.get("sessionId") not in (None, session):
                continue
            m, p = e.get("method"), e.get("params", {})
            if m == "Network.requestWillBeSent":
                log.requests.append(p["request"]["url"])
                ids[p["requestId"]] = p["request"]["url"]
            elif m == "Network.loadingFailed":
                u = ids.get(p["requestId"], "?")
                if p.get("blockedReason"):
                    log.blocked[u] = p["blockedReason"]
                else:
                    log.failed[u] = p.get("errorText", "?")
            elif m == "Log.entryAdded":
                log.messages.append(dict(p["entry"]))
            elif m == "Runtime.consoleAPICalled":
                text = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
                log.messages.append({"source": "console-api", "level": p.get("type"), "text": text})
            elif m == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                log.exceptions.append(d.get("exception", {}).get("description") or d.get("text", "?"))
        return session, log

    def evaluate(self, session: str, expression: str) -> Any:
        r = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=session)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression!r} raised {r['exceptionDetails']}")
        return r["result"].get("value")

    def full_screenshot(self, session: str, png: Path, *, width: int = 1400) -> Path:
        """A PNG of the whole page at ``width`` CSS pixels."""
        metrics = self.call("Page.getLayoutMetrics", session=session)
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        height = int(min(size["height"], 16000))
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=session)
        shot = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True},
                         session=session)
        png.write_bytes(base64.b64decode(shot["data"]))
        return png


def load_page(chromium: str, page: Path, *, settle_s: float = 0.5) -> PageLog:
    with DevTools(chromium) as dt:
        return dt.open(page.resolve().as_uri(), settle_s=settle_s)[1]


# -- static check ---------------------------------------------------------------------------------------------------

_URL_ATTRS = {"src", "href", "xlink:href", "srcset", "action", "formaction", "poster", "data", "background",
              "manifest", "ping", "cite", "longdesc", "usemap", "codebase", "archive", "profile"}


class _RefFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.refs: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): v or "" for k, v in attrs}
        if tag == "link":
            self.refs.append(f"<link rel={a.get('rel')!r} href={a.get('href')!r}>")
        if tag in ("iframe", "object", "embed", "frame", "base"):
            self.refs.append(f"<{tag}>")
        if tag == "meta" and a.get("http-equiv", "").lower() == "refresh":
            self.refs.append("<meta http-equiv=refresh>")
        for k, v in a.items():
            if k in _URL_ATTRS and v.strip() and not v.strip().startswith(("#", "data:")):
                self.refs.append(f"<{tag} {k}={v!r}>")
            if k == "style":
                self._css(v)
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self._css(data)

    def _css(self, css: str) -> None:
        import re

        for m in re.finditer(r"url\(\s*['\"]?([^'\")]*)|@import\s+['\"]?([^'\";\s]*)", css, re.I):
            u = (m.group(1) or m.group(2) or "").strip()
            if m.group(2) is not None or not u.startswith(("#", "data:")):
                self.refs.append(f"css {m.group(0)!r}")


def remote_references(html_text: str) -> list[str]:
    """Everything in ``html_text`` that would make a browser fetch another resource (empty for a
    self-contained page): script src, link, iframes, src/href/... attributes other than #fragments and
    data: URLs, CSS url() and @import."""
    f = _RefFinder()
    f.feed(html_text)
    f.close()
    return f.refs
