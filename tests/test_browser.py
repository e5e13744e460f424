"""Lecture mode in a real browser (Playwright driving Debian's Chromium; README, "Lecture mode").

- **Gallery** (one Voila server and one browser for the whole file): the page is ready, every demo of the
  registry ``course_lib.gallery.DEMOS`` rendered, within 15 s of the start command; it makes no request
  off this machine; every control of every demo (sliders by keyboard, dropdowns, toggle buttons,
  checkboxes, buttons) changes the demo's image bytes or its caption; a screenshot of each demo goes
  to ``build/test-artifacts/``; key press -> updated image latency over 12 presses per demo, median
  <= 150 ms and worst <= 500 ms (table printed and written to ``build/test-artifacts/latency.md``);
  no JavaScript console error.
- **Offline export** (``tools/export_html.py``): the pages, opened from disk with every non-file request
  blocked, make zero failed requests and show each demo's static form (a loaded image).
- **Chapter 1 in JupyterLab** (marked ``slow``: about 90 s on 2 cores): the slides extension (RISE) is
  loaded; run all cells of a copy of the chapter; no error output, and its first demo renders and
  responds to its slider.

Without Chromium every test here is skipped with a message saying how to install it.
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from course_lib import gallery

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path(os.environ.get("COURSE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ARTIFACTS = ROOT / "build" / "test-artifacts"
READY_BAR_S, MEDIAN_BAR_MS, WORST_BAR_MS, PRESSES = 15.0, 150.0, 500.0, 12
LOCAL = re.compile(r"^(?:(?:https?|wss?)://(?:127\.0\.0\.1|localhost)(?::\d+)?/|data:|blob:|file:|about:)")

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"no Chromium at {CHROMIUM}: install it with `apt-get update && apt-get install -y chromium` "
           "(Debian/Ubuntu, as .ci/run does), or point COURSE_CHROMIUM at a Chromium or Chrome binary")

LATENCY: dict[str, tuple[float, float, int]] = {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    """Poll ``url`` until it answers (any HTTP status), or fail with the server's log."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            pytest.fail(f"the server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"{url} did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def wait_for_preheat(port: int, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    """Wait until Voila listens on ``port`` and has put its preheated kernel in the pool (it says "Kernel pool
    of gallery.ipynb is filled"; the kernel may still be running the notebook). A visit before that gets a
    cold kernel instead, and so would an HTTP request made to poll the page."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            pytest.fail(f"the server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0 and "Kernel pool of" in log.read_text():
                return
        time.sleep(0.05)
    pytest.fail(f"Voila did not preheat a kernel on port {port} within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


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


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def served(browser, tmp_path_factory):
    """Start the gallery exactly as ``./course gallery`` does (same Voila command), on a free port, and
    open it. The pool's refill (a second preheated kernel, executed right after the first is taken) is
    delayed so that it does not compete with the latency measurements."""
    port = free_port()
    log = tmp_path_factory.mktemp("voila") / "voila.log"
    cmd = gallery.voila_command(port, extra=["--VoilaKernelManager.fill_delay=3600"])
    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, env=gallery.voila_env(), stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_for_preheat(port, proc, log, 60)
        page = browser.new_page(viewport={"width": 1600, "height": 1900})   # tall: whole cards in screenshots
        watch = Watch(page)
        page.goto(url, wait_until="domcontentloaded", timeout=120_000)
        try:
            page.wait_for_function(
                """names => names.every(n => { const r = document.querySelector('.demo-' + n);
                     const img = r && r.querySelector('img.demo-image');
                     return img && img.src.startsWith('blob:') && img.complete && img.naturalWidth > 0; })""",
                arg=[d.name for d in gallery.DEMOS], timeout=120_000, polling=50)
        except Exception:
            pytest.fail(f"not every demo rendered; errors: {watch.errors[:5]}; Voila log:\n{log.read_text()[-3000:]}")
        ready = time.perf_counter() - t0
        assert "Using pre-heated kernel" in log.read_text(), "the page did not get the preheated kernel"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
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


def demo_state(page, root: str) -> dict:
    return page.evaluate(JS_STATE, root)


def wait_new_image(page, root: str, old_src: str, what: str) -> None:
    try:
        page.wait_for_function("([root, old]) => document.querySelector(root + ' img.demo-image').src !== old",
                               arg=[root, old_src], timeout=15_000, polling=10)
    except Exception:
        pytest.fail(f"{what}: the image was not re-rendered within 15 s")


def slider_step(page, handle, what: str) -> None:
    """Press the arrow key that moves a focused slider one step, away from the end it is at."""
    now, top = (float(handle.get_attribute(a)) for a in ("aria-valuenow", "aria-valuemax"))
    handle.focus()
    page.keyboard.press("ArrowLeft" if now >= top else "ArrowRight")


def move(page, root: str, control, what: str) -> None:
    """Operate one control the way a person would."""
    handles, selects = control.locator(".noUi-handle"), control.locator("select")
    toggles, boxes = control.locator(".widget-toggle-button"), control.locator("input[type=checkbox]")
    if handles.count():
        slider_step(page, handles.first, what)
    elif selects.count():
        options = selects.first.locator("option").all_text_contents()
        current = selects.first.evaluate("s => s.selectedIndex")
        assert len(options) > 1, f"{what}: a dropdown with one option cannot change anything"
        selects.first.select_option(index=(current + 1) % len(options))
    elif toggles.count():
        toggles.nth(next(i for i in range(toggles.count())
                         if "mod-active" not in (toggles.nth(i).get_attribute("class") or ""))).click()
    elif boxes.count():
        boxes.first.click()
    elif control.locator("button").count():
        control.locator("button").first.click()
    else:
        pytest.fail(f"{what}: no slider, dropdown, toggle button, checkbox or button inside the control")


# ------------------------------------------------------------------------------------------ gallery
def test_gallery_ready_offline_and_complete(served):
    page, watch = served["page"], served["watch"]
    shown = page.evaluate("[...document.querySelectorAll('[class*=\"gallery-card\"]')].length")
    print(f"\ngallery ready (every demo rendered) {served['ready']:.1f} s after the start command "
          f"(bar {READY_BAR_S:.0f} s); {shown} demo cards")
    assert shown == len(gallery.DEMOS)
    for d in gallery.DEMOS:
        text = page.locator(f".gallery-{d.key}").text_content()
        assert d.title in text and f"Chapter {d.chapter}" in text, f"demo {d.key}: title or chapter missing"
    assert not watch.remote, f"the gallery requested files from off this machine: {watch.remote[:5]}"
    assert page.locator(".jp-InputArea").count() == 0 or not page.locator(".jp-InputArea").first.is_visible(), \
        "the gallery shows code"
    assert served["ready"] <= READY_BAR_S, f"gallery took {served['ready']:.1f} s to render every demo"


@pytest.mark.parametrize("key", [d.key for d in gallery.DEMOS])
def test_every_control_changes_the_demo(served, key):
    d = gallery.entry(key)
    page, root = served["page"], f".demo-{d.name}"
    page.locator(root).scroll_into_view_if_needed()
    controls = page.locator(f"{root} [class*='demo-control-']")
    keys = [re.search(r"demo-control-(\w+)", c.get_attribute("class")).group(1) for c in controls.all()]
    assert keys, f"demo {key}: no control with a demo-control-<key> class"
    for ck in keys:
        what = f"demo {key} ({d.name}), control {ck!r}"
        before = demo_state(page, root)
        move(page, root, page.locator(f"{root} .demo-control-{ck}"), what)
        wait_new_image(page, root, before["src"], what)
        after = demo_state(page, root)
        assert after["image"] != before["image"] or after["caption"] != before["caption"], \
            f"{what}: neither the image bytes nor the caption changed"
    page.locator(f".gallery-{key}").screenshot(path=str(ARTIFACTS / f"gallery_{key}_{d.name}.png"))
    assert not served["watch"].errors, f"console errors: {served['watch'].errors[:5]}"


@pytest.mark.parametrize("key", [d.key for d in gallery.DEMOS])
def test_keypress_latency(served, key):
    """Time from a slider's key press (keydown in the page) to the new image's src in the page."""
    d = gallery.entry(key)
    page, root = served["page"], f".demo-{d.name}"
    handle = page.locator(f"{root} .noUi-handle").first
    assert handle.count(), f"demo {key} has no slider to time"
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
        for i in range(PRESSES):
            slider_step(page, handle, f"demo {key}")
            page.wait_for_function(f"window.__lat.up.length > {i}", timeout=15_000, polling=5)
            lat = page.evaluate(f"window.__lat.up[{i}] - window.__lat.down[{i}]")
            times.append(lat)
            page.wait_for_timeout(40)                  # a person's presses are this far apart at least
    finally:
        page.evaluate("() => { document.removeEventListener('keydown', window.__latKey, true); window.__latObs.disconnect(); }")
    med, worst = statistics.median(times), max(times)
    LATENCY[key] = (med, worst, len(times))
    print(f"\ndemo {key} ({d.name}): key press -> updated image, median {med:.0f} ms, worst {worst:.0f} ms "
          f"over {len(times)} presses")
    assert med <= MEDIAN_BAR_MS and worst <= WORST_BAR_MS, (
        f"demo {key}: median {med:.0f} ms (bar {MEDIAN_BAR_MS:.0f}), worst {worst:.0f} ms (bar {WORST_BAR_MS:.0f})")


def test_latency_table_and_no_console_errors(served):
    lines = ["| demo | median (ms) | worst (ms) | presses |", "| --- | ---: | ---: | ---: |"]
    for d in gallery.DEMOS:
        if d.key in LATENCY:
            med, worst, n = LATENCY[d.key]
            lines.append(f"| {d.key} {d.name} | {med:.0f} | {worst:.0f} | {n} |")
    table = "\n".join(lines)
    (ARTIFACTS / "latency.md").write_text(
        f"Gallery ready after {served['ready']:.1f} s.\n\nKey press to updated image in the page:\n\n{table}\n")
    print(f"\ngallery ready after {served['ready']:.1f} s; key press -> updated image:\n{table}")
    page = served["page"]
    page.screenshot(path=str(ARTIFACTS / "gallery_top.png"))
    assert not served["watch"].errors, f"console errors during the gallery tests: {served['watch'].errors[:5]}"
    assert not served["watch"].remote, f"requests off this machine: {served['watch'].remote[:5]}"


# ------------------------------------------------------------------------------------ offline export
def test_offline_export_needs_no_network(browser, tmp_path):
    from export_html import export
    out = tmp_path / "html"
    pages = export(out)
    chapters_with_demos = {int(p[:2]) for p in pages}
    page = browser.new_page()
    failed, remote, errors = [], [], []
    page.on("requestfailed", lambda r: failed.append(f"{r.url} ({r.failure})"))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    def route(r):
        if r.request.url.startswith(("file:", "data:", "blob:")):
            r.continue_()
        else:
            remote.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    math = {}
    for stem in pages:
        page.goto((out / f"{stem}.html").as_uri(), wait_until="load")
        page.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=30_000)
        page.evaluate("MathJax.startup.promise.then(() => true)")
        math[stem] = page.evaluate("[document.querySelectorAll('mjx-container').length, "
                                   "document.querySelectorAll('[data-mjx-error], mjx-merror').length]")
        for d in gallery.DEMOS:
            if d.chapter != int(stem[:2]):
                continue
            sizes = page.evaluate(f"[...document.querySelectorAll('.celltag_demo-static-{d.name} img')]"
                                  ".map(i => i.complete ? i.naturalWidth : 0)")
            assert sizes and all(w > 0 for w in sizes), f"{stem}.html: demo {d.key} ({d.name}) has no static form"
    page.close()
    print(f"\nexport: {len(pages)} pages, failed requests {len(failed)}, blocked remote requests {len(remote)}; "
          f"math (typeset, errors) per page {math}")
    missing = {d.chapter for d in gallery.DEMOS} - chapters_with_demos
    assert not missing, f"chapters {sorted(missing)} have gallery demos but no exported page"
    assert not failed and not remote, f"failed: {failed[:5]}; remote: {remote[:5]}"
    assert not errors, f"console errors on the exported pages: {errors[:5]}"


# ------------------------------------------------------------------------------- chapter 1 in JupyterLab
@pytest.mark.slow
def test_chapter1_runs_in_jupyterlab_and_its_first_demo_responds(browser, tmp_path):
    nb = "01_ddpm_score_matching.ipynb"
    shutil.copy(ROOT / "notebooks" / nb, tmp_path / nb)          # a copy: autosave must not touch the chapter
    port, token = free_port(), os.urandom(12).hex()
    env = dict(os.environ, COURSE_DEVICE="cpu", JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"), JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))
    env.pop("MPLBACKEND", None)                              # the kernel picks the inline backend, as in Lab
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")             # as ./course test: idle torch threads sleep
    log = tmp_path / "lab.log"
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--port={port}", "--ServerApp.ip=127.0.0.1",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}", "--LabApp.expose_app_in_browser=True",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/api/status?token={token}", proc, log, 90)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        watch = Watch(page)
        page.goto(f"http://127.0.0.1:{port}/lab/tree/{nb}?token={token}", timeout=120_000)
        page.wait_for_function("""() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
                                          return w && w.sessionContext && w.sessionContext.session
                                                 && w.sessionContext.session.kernel
                                                 && w.sessionContext.session.kernel.connectionStatus === 'connected'; }""",
                               timeout=120_000, polling=200)
        assert page.evaluate("window.jupyterapp.commands.hasCommand('RISE:slideshow')"), \
            "the slides extension (jupyterlab-rise) did not load in JupyterLab"
        t0 = time.perf_counter()
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        page.wait_for_function("""() => { const w = window.jupyterapp.shell.currentWidget;
            const cells = [...w.content.model.cells].filter(c => c.type === 'code' && c.sharedModel.getSource().trim());
            return w.sessionContext.session.kernel.status === 'idle'
                   && cells.every(c => c.executionCount !== null && c.executionState !== 'running'); }""",
                               timeout=900_000, polling=1000)
        took = time.perf_counter() - t0
        errors = page.evaluate("""() => [...window.jupyterapp.shell.currentWidget.content.model.cells]
            .filter(c => c.type === 'code').flatMap(c => c.outputs.toJSON())
            .filter(o => o.output_type === 'error').map(o => o.ename + ': ' + o.evalue)""")
        assert not errors, f"chapter 1 raised in JupyterLab: {errors[:3]}"
        root = ".demo-noising"
        page.locator(root).scroll_into_view_if_needed()
        page.wait_for_function(f"document.querySelector('{root} img.demo-image') && "
                               f"document.querySelector('{root} img.demo-image').naturalWidth > 0", timeout=60_000)
        before = demo_state(page, root)
        slider_step(page, page.locator(f"{root} .noUi-handle").first, "chapter 1, first demo")
        wait_new_image(page, root, before["src"], "chapter 1 in JupyterLab, first demo")
        after = demo_state(page, root)
        assert after["image"] != before["image"] and after["caption"] != before["caption"]
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.locator(root).screenshot(path=str(ARTIFACTS / "jupyterlab_chapter1_first_demo.png"))
        print(f"\nchapter 1 ran in JupyterLab in {took:.0f} s; its first demo responded")
        assert not watch.remote, f"JupyterLab requested files from off this machine: {watch.remote[:5]}"
        assert not watch.errors, f"console errors in JupyterLab: {watch.errors[:5]}"
    finally:
        stop(proc)
