"""Headless Chromium driven over the Chrome DevTools Protocol (websocket-client), for page tests.

    with Browser.launch() as browser:          # pytest.skip if chromium or websocket-client is missing
        page = browser.open("file:///.../index.html")
        page.eval("document.title")            # a JS expression's value (promises awaited)
        page.click("th:nth-child(3)")          # a real mouse click at the element's centre
        page.key("1")                          # a real key press
        page.errors                            # console errors, uncaught exceptions, failed loads

Under CI=1 a skip fails the test (tests/conftest.py), so CI must install chromium (.ci/run does).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest


def chromium_binary() -> str | None:
    for name in (os.environ.get("HIFICODEC_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


class Page:
    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.errors: list[str] = []
        self.events: list[dict] = []

    def call(self, method: str, timeout: float = 20.0, **params: Any) -> dict:
        msg_id = next(self.ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            self.ws.settimeout(max(0.01, deadline - time.monotonic()))
            msg = json.loads(self.ws.recv())
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self._event(msg)

    def _event(self, msg: dict) -> None:
        method, params = msg.get("method"), msg.get("params", {})
        self.events.append(msg)
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            text = " ".join(str(a.get("value", a.get("description"))) for a in params["args"])
            self.errors.append("console: " + text)
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.errors.append("exception: " + details.get("exception", {}).get("description", details.get("text", "")))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            self.errors.append(f"log: {params['entry']['text']} {params['entry'].get('url', '')}")

    def wait_event(self, name: str, timeout: float = 20.0) -> dict:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == name for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(name)
            self.ws.settimeout(max(0.01, deadline - time.monotonic()))
            self._event(json.loads(self.ws.recv()))
        return next(e for e in self.events if e.get("method") == name)

    def eval(self, expression: str, timeout: float = 20.0) -> Any:
        result = self.call(
            "Runtime.evaluate", timeout=timeout, expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def click(self, selector: str) -> None:
        x, y = self.eval(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def key(self, key: str) -> None:
        code = f"Digit{key}" if key.isdigit() else f"Key{key.upper()}"
        vk = ord(key.upper())
        self.call("Input.dispatchKeyEvent", type="keyDown", key=key, code=code, text=key, windowsVirtualKeyCode=vk)
        self.call("Input.dispatchKeyEvent", type="keyUp", key=key, code=code, windowsVirtualKeyCode=vk)


class Browser:
    def __init__(self, proc: subprocess.Popen, profile: str, port: int) -> None:
        self.proc, self.profile, self.port = proc, profile, port
        self.sockets: list[Any] = []

    @classmethod
    def launch(cls, timeout: float = 30.0) -> Browser:
        websocket = pytest.importorskip("websocket", reason="websocket-client is needed to drive chromium")
        del websocket
        binary = chromium_binary()
        if binary is None:
            pytest.skip("chromium is not installed (apt-get install chromium)")
        profile = tempfile.mkdtemp(prefix="hificodec-chromium-")
        args = [
            binary,
            "--headless=new",
            "--no-sandbox",  # root in containers; the page is our own
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--mute-audio",
            "--autoplay-policy=no-user-gesture-required",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "about:blank",
        ]
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(profile) / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not (port_file.is_file() and len(port_file.read_text().splitlines()) >= 2):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                shutil.rmtree(profile, ignore_errors=True)
                raise RuntimeError(f"chromium did not start ({binary}, exit {proc.poll()})")
            time.sleep(0.05)
        return cls(proc, profile, int(port_file.read_text().splitlines()[0]))

    def open(self, url: str) -> Page:
        import websocket

        target = _put_json(f"http://127.0.0.1:{self.port}/json/new?about:blank")
        ws = websocket.create_connection(target["webSocketDebuggerUrl"], timeout=20, suppress_origin=True)
        self.sockets.append(ws)
        page = Page(ws)
        for domain in ("Page", "Runtime", "Log"):
            page.call(f"{domain}.enable")
        page.call("Emulation.setDeviceMetricsOverride", width=1300, height=900, deviceScaleFactor=1, mobile=False)
        page.call("Page.navigate", url=url)
        page.wait_event("Page.loadEventFired")
        return page

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        for ws in self.sockets:
            ws.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


def _put_json(url: str) -> dict:
    """`/json/new` must be a PUT in current Chromium."""
    import urllib.request

    with urllib.request.urlopen(urllib.request.Request(url, method="PUT"), timeout=20) as r:
        return json.loads(r.read())
