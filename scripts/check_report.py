"""Loads an HTML page in headless Chromium over the Chrome DevTools Protocol and checks it as a
person would see it: it loads with no console error, no uncaught exception and no error log
entry; it has charts (`svg.chart`), each holding data points (`.pt` elements, as many as its
`data-points` says), laid out with a width, and marked (`.marker`); then it saves a screenshot.

Used by scripts/check-report.sh (which installs Chromium and this script's venv):
    python check_report.py PAGE [--screenshot PNG] [--expect-series a,b,c] [--chromium PATH]
Exit status: 0 the page passed, 1 it failed a check, 2 the browser could not be driven.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import websocket  # websocket-client, pinned in tests/report/requirements.txt

# Without the background-networking flags Chromium dials out at start (updates, field trials,
# sync): refused on a closed network, and noise in the log on any other.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
]
LISTENING = re.compile(r"DevTools listening on (ws://\S+)")
# Every wait is bounded: a page that never loads fails the check instead of hanging CI.
START_TIMEOUT = 30.0
LOAD_TIMEOUT = 30.0
WIDTH = 1100

# What the page's charts hold, read in the page itself.
CHARTS_JS = """(() => [...document.querySelectorAll('svg.chart')].map(svg => ({
  series: svg.dataset.series || '',
  declared: Number(svg.dataset.points || 0),
  points: svg.querySelectorAll('.pt').length,
  markers: svg.querySelectorAll('.marker').length,
  width: svg.getBoundingClientRect().width,
})))()"""


class Failure(Exception):
    """The browser could not be driven (not a finding about the page)."""


class Browser:
    """A headless Chromium this script started, and its DevTools websocket."""

    def __init__(self, binary: str) -> None:
        self.profile = tempfile.mkdtemp(prefix="check-report-")
        self.proc = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group: ended with it, by its id
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.stderr: list[str] = []
        # Drains stderr for the whole run (a full pipe would stall the browser).
        threading.Thread(target=self._drain, daemon=True).start()
        url = self._devtools_url()
        try:
            self.ws = websocket.create_connection(url, timeout=LOAD_TIMEOUT, suppress_origin=True)
        except (OSError, websocket.WebSocketException) as e:
            self.close()
            raise Failure(f"cannot connect to {url}: {e}") from e
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line.rstrip())
            self.lines.put(line)

    def _devtools_url(self) -> str:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            found = LISTENING.search(line)
            if found:
                return found.group(1)
        self.close()
        raise Failure("Chromium printed no `DevTools listening on ws://...` line; its stderr:\n" + "\n".join(self.stderr[-20:]))

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        """Sends one command and returns its result; events that arrive meanwhile are kept."""
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        deadline = time.monotonic() + LOAD_TIMEOUT
        while True:
            reply = self._receive(deadline, method)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise Failure(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, event: str, session: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for e in self.events:
                if e.get("method") == event and e.get("sessionId") == session:
                    return e
            self.events.append(self._receive(deadline, event))

    def _receive(self, deadline: float, waiting_for: str) -> dict[str, Any]:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Failure(f"timed out waiting for {waiting_for}")
        self.ws.settimeout(left)
        try:
            return json.loads(self.ws.recv())
        except websocket.WebSocketTimeoutException as e:
            raise Failure(f"timed out waiting for {waiting_for}") from e
        except (OSError, websocket.WebSocketException, ValueError) as e:
            raise Failure(f"DevTools connection lost waiting for {waiting_for}: {e}") from e

    def close(self) -> None:
        try:
            if getattr(self, "ws", None):
                try:
                    self.ws.send(json.dumps({"id": 0, "method": "Browser.close"}))
                except (OSError, websocket.WebSocketException):
                    pass
                self.ws.close()
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)


def errors_of(events: list[dict[str, Any]], session: str) -> list[str]:
    """The page's console errors, uncaught exceptions and error log entries."""
    found = []
    for e in events:
        if e.get("sessionId") != session:
            continue
        method, params = e.get("method"), e.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text", "")
            found.append(f"uncaught exception: {text.splitlines()[0] if text else details}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            args = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            found.append(f"console.{params['type']}: {args}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            found.append(f"error log entry ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}".rstrip())
    return found


def check(page: Path, screenshot: Path | None, expect_series: list[str], binary: str) -> list[str]:
    """Loads `page` and returns what is wrong with it (empty: it passed)."""
    browser = Browser(binary)
    try:
        target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            browser.call(f"{domain}.enable", session=session)
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": WIDTH, "height": 900, "deviceScaleFactor": 1, "mobile": False},
            session,
        )
        navigated = browser.call("Page.navigate", {"url": page.resolve().as_uri()}, session)
        if navigated.get("errorText"):
            return [f"navigation failed: {navigated['errorText']}"]
        browser.wait_for("Page.loadEventFired", session, LOAD_TIMEOUT)
        # Two animation frames: the page has run its scripts and laid out its charts.
        browser.call(
            "Runtime.evaluate",
            {"expression": "new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))", "awaitPromise": True},
            session,
        )
        evaluated = browser.call("Runtime.evaluate", {"expression": CHARTS_JS, "returnByValue": True}, session)
        charts = evaluated.get("result", {}).get("value") or []
        problems = errors_of(browser.events, session)
        if not charts:
            problems.append("no chart (svg.chart) on the page")
        for c in charts:
            name = c["series"] or "(unnamed)"
            if c["points"] == 0:
                problems.append(f"chart {name}: no data points")
            elif c["points"] != c["declared"]:
                problems.append(f"chart {name}: {c['points']} data points, but data-points={c['declared']}")
            if c["markers"] == 0:
                problems.append(f"chart {name}: no marker")
            if c["width"] <= 0:
                problems.append(f"chart {name}: not laid out (width {c['width']})")
        for name in expect_series:
            n = sum(1 for c in charts if c["series"] == name)
            if n != 1:
                problems.append(f"chart {name}: {n} on the page, expected one")
        print(f"   {page}: loaded; charts: " + ", ".join(f"{c['series']} {c['points']} points, {c['markers']} markers" for c in charts))
        if screenshot:
            size = browser.call("Page.getLayoutMetrics", session=session)["cssContentSize"]
            shot = browser.call(
                "Page.captureScreenshot",
                {
                    "format": "png",
                    "captureBeyondViewport": True,
                    "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
                },
                session,
            )
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            screenshot.write_bytes(base64.b64decode(shot["data"]))
            print(f"   screenshot {screenshot} ({int(size['width'])}x{int(size['height'])})")
        return problems
    finally:
        browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("page", type=Path)
    parser.add_argument("--screenshot", type=Path)
    parser.add_argument("--expect-series", default="", help="comma-separated data-series names, one chart each")
    parser.add_argument("--chromium", default=os.environ.get("CHROMIUM", "chromium"))
    args = parser.parse_args()
    if not args.page.is_file():
        print(f"check-report: no such page: {args.page}", file=sys.stderr)
        return 2
    try:
        problems = check(args.page, args.screenshot, [s for s in args.expect_series.split(",") if s], args.chromium)
    except Failure as e:
        print(f"check-report: {e}", file=sys.stderr)
        return 2
    for p in problems:
        print(f"   FAIL {p}")
    print(f"   {args.page}: {'FAILED' if problems else 'passed'} ({len(problems)} problem(s))")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
