"""Driving the lecture gallery in a real browser: Playwright with Debian's Chromium.

Shared by the browser tests (``tests/test_browser.py``: does every demo render and respond, with no request off
the machine and no console error?) and the benchmark (``tools/bench.py``: how long until the page is ready, how
long from a key press to the updated image?). Nothing here asserts a time.
"""
from __future__ import annotations

import os
import re
import socket
import statistics
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from course_lib import gallery

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path(os.environ.get("COURSE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
LOCAL = re.compile(r"^(?:(?:https?|wss?)://(?:127\.0\.0\.1|localhost)(?::\d+)?/|data:|blob:|file:|about:)")


class BrowserError(RuntimeError):
    """A server did not start, or a page did not do what it should."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    """Poll ``url`` until it answers (any HTTP status), or raise with the server's log."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise BrowserError(f"the server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise BrowserError(f"{url} did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def wait_for_preheat(port: int, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    """Wait until Voila listens on ``port`` and has put its preheated kernel in the pool (it says "Kernel pool
    of gallery.ipynb is filled"). A visit before that gets a cold kernel, and so would an HTTP poll."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise BrowserError(f"the server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0 and "Kernel pool of" in log.read_text():
                return
        time.sleep(0.05)
    raise BrowserError(f"Voila did not preheat a kernel on port {port} within {timeout:.0f} s:\n"
                       f"{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


class Watch:
    """Console errors, uncaught page errors, and requests that would leave this machine (blocked)."""

    def __init__(self, page):
        self.errors, self.remote = [], []
        page.on("console", lambda m: self.errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        page.route("**/*", self._route)

    def _route(self, route):
        url = route.request.url
        if LOCAL.match(url):
            route.continue_()
        else:
            self.remote.append(url)
            route.abort()


@contextmanager
def chromium():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@contextmanager
def served_gallery(browser, log: Path, viewport=(1600, 1900)):
    """Start the gallery exactly as ``./course gallery`` does, on a free port, and open it once every demo has
    rendered. Yields ``{"page", "watch", "ready", "log"}``; ``ready`` is the time from the start command to the
    last demo's first image. The pool's refill (a second preheated kernel, run right after the first is taken)
    is delayed so that it does not compete with what the caller measures."""
    port = free_port()
    cmd = gallery.voila_command(port, extra=["--VoilaKernelManager.fill_delay=3600"])
    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, env=gallery.voila_env(), stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        wait_for_preheat(port, proc, log, 60)
        page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
        watch = Watch(page)
        page.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded", timeout=120_000)
        try:
            page.wait_for_function(
                """names => names.every(n => { const r = document.querySelector('.demo-' + n);
                     const img = r && r.querySelector('img.demo-image');
                     return img && img.src.startsWith('blob:') && img.complete && img.naturalWidth > 0; })""",
                arg=[d.name for d in gallery.DEMOS], timeout=120_000, polling=50)
        except Exception as e:
            raise BrowserError(f"not every demo rendered; errors: {watch.errors[:5]}; Voila log:\n"
                               f"{log.read_text()[-3000:]}") from e
        ready = time.perf_counter() - t0
        if "Using pre-heated kernel" not in log.read_text():
            raise BrowserError("the page did not get the preheated kernel")
        yield {"page": page, "watch": watch, "ready": ready, "log": log}
    finally:
        stop(proc)


JS_STATE = """async root => {
  const r = document.querySelector(root), img = r.querySelector('img.demo-image');
  const a = new Uint8Array(await (await fetch(img.src)).arrayBuffer());
  let h = 2166136261;
  for (const x of a) { h = Math.imul(h ^ x, 16777619) >>> 0; }
  return {src: img.src, image: h + ':' + a.length, caption: (r.querySelector('.demo-caption') || {}).textContent || ''};
}"""


def evaluate_within(page, js_function: str, arg=None, timeout_ms: int = 30_000):
    """``page.evaluate`` of an (async) JavaScript function, rejected after ``timeout_ms``. Playwright's own
    ``evaluate`` waits for a promise without any time limit, so a page that stops answering (a stuck fetch, a
    command that never resolves) would hang the caller."""
    bounded = (f"async arg => Promise.race([({js_function})(arg), new Promise((_, reject) => setTimeout("
               f"() => reject(new Error('no answer within {timeout_ms} ms')), {timeout_ms}))])")
    try:
        return page.evaluate(bounded, arg)
    except Exception as e:
        raise BrowserError(f"the page did not answer: {e}") from e


def demo_state(page, root: str) -> dict:
    """The demo's image (a hash of its bytes), its blob URL and its caption."""
    return evaluate_within(page, JS_STATE, root, 15_000)


def wait_new_image(page, root: str, old_src: str, what: str) -> None:
    try:
        page.wait_for_function("([root, old]) => document.querySelector(root + ' img.demo-image').src !== old",
                               arg=[root, old_src], timeout=15_000, polling=10)
    except Exception as e:
        raise BrowserError(f"{what}: the image was not re-rendered within 15 s") from e


def slider_step(page, handle) -> None:
    """Press the arrow key that moves a focused slider one step, away from the end it is at."""
    now, top = (float(handle.get_attribute(a)) for a in ("aria-valuenow", "aria-valuemax"))
    handle.focus()
    page.keyboard.press("ArrowLeft" if now >= top else "ArrowRight")


def move(page, control, what: str) -> None:
    """Operate one control the way a person would."""
    handles, selects = control.locator(".noUi-handle"), control.locator("select")
    toggles, boxes = control.locator(".widget-toggle-button"), control.locator("input[type=checkbox]")
    if handles.count():
        slider_step(page, handles.first)
    elif selects.count():
        options = selects.first.locator("option").all_text_contents()
        current = selects.first.evaluate("s => s.selectedIndex")
        if len(options) < 2:
            raise BrowserError(f"{what}: a dropdown with one option cannot change anything")
        selects.first.select_option(index=(current + 1) % len(options))
    elif toggles.count():
        toggles.nth(next(i for i in range(toggles.count())
                         if "mod-active" not in (toggles.nth(i).get_attribute("class") or ""))).click()
    elif boxes.count():
        boxes.first.click()
    elif control.locator("button").count():
        control.locator("button").first.click()
    else:
        raise BrowserError(f"{what}: no slider, dropdown, toggle button, checkbox or button inside the control")


def keypress_latency(page, key: str, presses: int = 12) -> list[float]:
    """Milliseconds from a slider's key press (keydown in the page) to the new image's src, ``presses`` times
    (at least 40 ms apart, as a person's presses are)."""
    d = gallery.entry(key)
    root = f".demo-{d.name}"
    handle = page.locator(f"{root} .noUi-handle").first
    if not handle.count():
        raise BrowserError(f"demo {key} has no slider to time")
    handle.scroll_into_view_if_needed()
    page.evaluate("""root => {
      const img = document.querySelector(root + ' img.demo-image');
      window.__lat = {down: [], up: []};
      window.__latKey = e => window.__lat.down.push(performance.now());
      document.addEventListener('keydown', window.__latKey, true);
      window.__latObs = new MutationObserver(() => window.__lat.up.push(performance.now()));
      window.__latObs.observe(img, {attributes: true, attributeFilter: ['src']});
    }""", root)
    times = []
    try:
        for i in range(presses):
            slider_step(page, handle)
            page.wait_for_function(f"window.__lat.up.length > {i}", timeout=15_000, polling=5)
            times.append(page.evaluate(f"window.__lat.up[{i}] - window.__lat.down[{i}]"))
            page.wait_for_timeout(40)
    finally:
        page.evaluate("() => { document.removeEventListener('keydown', window.__latKey, true); "
                      "window.__latObs.disconnect(); }")
    return times


def summary(times: list[float]) -> dict:
    return {"median_ms": round(statistics.median(times), 1), "worst_ms": round(max(times), 1), "n": len(times)}
