"""Open a report in headless Chromium: what a reader's browser shows, and a PNG of it.

Debian's `chromium` (installed by scripts/setup.sh) is driven over the DevTools protocol on
`--remote-debugging-pipe` (the browser reads JSON commands, each ended by a NUL byte, on fd 3 and
writes answers and events on fd 4), so no driver binary or Python package is needed. Why the
protocol rather than `--dump-dom`: the report forbids scripts (its Content-Security-Policy), so no
script inside the page can report what it rendered; a DevTools `Runtime.evaluate` runs outside the
page's policy and reads the laid-out page directly (image decode sizes, table widths), while
the page's own scripts, if any had slipped through, would run as in any browser and be caught: a
JavaScript dialog (alert) opened, a console message, an uncaught exception, all recorded.

`inspect_page(path)` loads a file at a 1280-px-wide window and returns a `PageReport`; `screenshot`
writes the full page as a PNG. `find_chromium()` is None when no browser is installed.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

WIDTH_PX = 1280
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# What the page looks like once loaded (run by DevTools, not by the page).
PROBE_JS = """(() => {
  const doc = document.documentElement, body = document.body;
  const bodyRight = body.getBoundingClientRect().right;
  const onAttrs = [];
  for (const el of document.querySelectorAll('*'))
    for (const a of el.attributes) if (a.name.toLowerCase().startsWith('on')) onAttrs.push(el.tagName + ' ' + a.name);
  return {
    title: document.title,
    viewport_width: window.innerWidth,
    page_width: doc.scrollWidth,
    page_height: Math.max(doc.scrollHeight, body.scrollHeight),
    body_right: bodyRight,
    content_right: bodyRight - parseFloat(getComputedStyle(body).paddingRight || '0'),
    images: Array.from(document.images).map(i => ({alt: i.alt, complete: i.complete,
        natural_width: i.naturalWidth, natural_height: i.naturalHeight,
        right: i.getBoundingClientRect().right})),
    tables: Array.from(document.querySelectorAll('table')).map((t, k) => ({index: k,
        width: t.getBoundingClientRect().width, right: t.getBoundingClientRect().right,
        scroll_width: t.scrollWidth, header: (t.querySelector('th') || {}).textContent || ''})),
    scripts: document.querySelectorAll('script').length,
    on_attributes: onAttrs,
    text: body.innerText,
  };
})()"""


class BrowserError(RuntimeError):
    """The browser could not be started or did not answer."""


def find_chromium() -> str | None:
    """The Chromium executable ($INFERCOST_CHROMIUM, else the first of CANDIDATES on PATH), or None."""
    env = os.environ.get("INFERCOST_CHROMIUM")
    if env:
        return env if shutil.which(env) else None
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageReport:
    probe: dict  # PROBE_JS's answer
    dialogs: list[str] = field(default_factory=list)  # messages of JavaScript dialogs the page opened
    console: list[str] = field(default_factory=list)  # console messages the page logged
    exceptions: list[str] = field(default_factory=list)  # uncaught script exceptions
    values: dict = field(default_factory=dict)  # the extra expressions' values
    png: bytes | None = None

    @property
    def scripted(self) -> bool:
        """Did anything in the page run a script (or try to)?"""
        return bool(self.dialogs or self.console or self.exceptions or self.probe["scripts"]
                    or self.probe["on_attributes"])


class _Pipe:
    """One DevTools session over the browser's pipe (fd 3 in, fd 4 out of the browser)."""

    def __init__(self, to_browser: int, from_browser: int, timeout_s: float):
        self.w, self.r, self.timeout_s = to_browser, from_browser, timeout_s
        self.buf = b""
        self.next_id = 0
        self.events: list[dict] = []

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.r], [], [], left)[0]:
                raise BrowserError(f"chromium did not answer within {self.timeout_s:g} s")
            chunk = os.read(self.r, 1 << 20)
            if not chunk:
                raise BrowserError("chromium closed the DevTools pipe (crashed or exited)")
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        m = json.loads(msg)
        if m.get("method") == "Page.javascriptDialogOpening":  # a dialog blocks the page: dismiss it
            self.next_id += 1  # (its answer arrives later and is kept as an event)
            os.write(self.w, json.dumps({"id": self.next_id, "method": "Page.handleJavaScriptDialog",
                                         "params": {"accept": False}, "sessionId": m.get("sessionId")}).encode() + b"\0")
        return m

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout_s
        while True:
            m = self._read_message(deadline)
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise BrowserError(f"{method}: {m['error'].get('message')}")
                return m.get("result", {})
            self.events.append(m)

    def wait_event(self, method: str, session: str | None = None) -> dict:
        deadline = time.monotonic() + self.timeout_s
        for i, m in enumerate(self.events):
            if m.get("method") == method and m.get("sessionId") == session:
                return self.events.pop(i)
        while True:
            m = self._read_message(deadline)
            if m.get("method") == method and m.get("sessionId") == session:
                return m
            self.events.append(m)


def _start(exe: str, profile_dir: str, width: int) -> tuple[subprocess.Popen, int, int]:
    to_r, to_w = os.pipe()  # we write, the browser reads (its fd 3)
    from_r, from_w = os.pipe()  # the browser writes (its fd 4), we read

    def fds():  # in the child, before exec: put the pipe ends on fds 3 and 4
        a, b = fcntl.fcntl(to_r, fcntl.F_DUPFD, 10), fcntl.fcntl(from_w, fcntl.F_DUPFD, 10)
        os.dup2(a, 3)
        os.dup2(b, 4)
        os.close(a)
        os.close(b)

    args = [exe, "--headless", "--disable-gpu", "--no-sandbox", "--remote-debugging-pipe", "--no-first-run",
            "--no-default-browser-check", "--disable-extensions", "--disable-dev-shm-usage", "--hide-scrollbars",
            "--mute-audio", f"--user-data-dir={profile_dir}", f"--window-size={width},900", "about:blank"]
    log = open(Path(profile_dir) / "stderr.log", "wb")
    try:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, preexec_fn=fds,
                                close_fds=False)
    except OSError as exc:
        raise BrowserError(f"cannot start {exe}: {exc.strerror or exc}") from None
    finally:
        log.close()
        os.close(to_r)
        os.close(from_w)
    return proc, to_w, from_r


def inspect_page(path: str | Path, *, width: int = WIDTH_PX, screenshot: bool = False,
                 expressions: dict[str, str] | None = None, timeout_s: float = 60.0,
                 exe: str | None = None) -> PageReport:
    """Load the file in headless Chromium at `width` CSS px, wait for its load event, probe it."""
    exe = exe or find_chromium()
    if exe is None:
        raise BrowserError("no chromium on PATH (scripts/setup.sh installs Debian's chromium)")
    url = Path(path).resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="infercost-chromium-") as profile_dir:
        proc, w, r = _start(exe, profile_dir, width)
        try:
            return _session(_Pipe(w, r, timeout_s), url, width, screenshot, expressions or {})
        except BrowserError as exc:
            tail = (Path(profile_dir) / "stderr.log").read_text(errors="replace")[-400:].strip()
            raise BrowserError(f"{exc}{'; chromium said: ' + tail if tail else ''}") from None
        finally:
            try:
                os.write(w, json.dumps({"id": 10**9, "method": "Browser.close"}).encode() + b"\0")
            except OSError:
                pass
            os.close(w)
            os.close(r)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _session(p: _Pipe, url: str, width: int, shot: bool, expressions: dict[str, str]) -> PageReport:
    target = p.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    s = p.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Page", "Runtime"):
        p.send(f"{domain}.enable", session=s)
    p.send("Emulation.setDeviceMetricsOverride",
           {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session=s)
    p.send("Page.navigate", {"url": url}, session=s)
    p.wait_event("Page.loadEventFired", session=s)
    report = PageReport(probe=_evaluate(p, s, PROBE_JS))
    report.values = {k: _evaluate(p, s, js) for k, js in expressions.items()}
    for m in p.events:
        method, params = m.get("method"), m.get("params", {})
        if method == "Page.javascriptDialogOpening":
            report.dialogs.append(str(params.get("message")))
        elif method == "Runtime.consoleAPICalled":
            report.console.append(" ".join(str(a.get("value", a.get("description"))) for a in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            report.exceptions.append(str(params.get("exceptionDetails", {}).get("text")))
    if shot:
        height = max(1, int(report.probe["page_height"]))
        data = p.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True,
                                                 "clip": {"x": 0, "y": 0, "width": width, "height": height,
                                                          "scale": 1}}, session=s)["data"]
        import base64

        report.png = base64.b64decode(data)
    return report


def _evaluate(p: _Pipe, session: str, js: str):
    res = p.send("Runtime.evaluate", {"expression": js, "returnByValue": True}, session=session)
    if "exceptionDetails" in res:
        raise BrowserError(f"probe failed: {res['exceptionDetails'].get('text')}")
    return res["result"].get("value")


def screenshot(html_path: str | Path, png_path: str | Path, *, width: int = WIDTH_PX) -> Path:
    """Write the full page of `html_path` as rendered at `width` px to `png_path`."""
    rep = inspect_page(html_path, width=width, screenshot=True)
    Path(png_path).write_bytes(rep.png)
    return Path(png_path)
