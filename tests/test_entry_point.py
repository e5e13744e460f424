"""The entry point a student types, `python course.py lab` / `python course.py test`, works with no bash (Windows):
from a clean clone, with nothing but Python on the PATH, it sets up, runs tests, and opens JupyterLab at the welcome
page with the notebooks' .py twins hidden; student mode serves notebooks whose exercises raise NotImplementedError.
A browser (Chromium, skipped without it) then does what a new student does: the welcome page, the file list, chapter 1
run until its first exercise, its first demo moved.

The clone reuses this environment (COURSE_USE_CURRENT_PYTHON=1): building a fresh .venv is what `.ci/run` does.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "course-entry-point-test"


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """A clean copy of the repository (its tracked and unignored files), and an environment with no shell on PATH."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    dest = tmp_path_factory.mktemp("clone") / "course"
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, files):           # the working tree as a fresh clone would have it (no .venv, no build/)
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "COURSE_"))}
    # PATH: only this environment's own bin folder (python3, jupyter, ...; no shell)
    env.update(PATH=str(Path(sys.executable).parent), COURSE_USE_CURRENT_PYTHON="1",
               HOME=str(tmp_path_factory.mktemp("home")))
    return dest, env


def test_nothing_but_python_on_the_path(clone):
    dest, env = clone
    assert not any((Path(p) / name).exists() for p in env["PATH"].split(os.pathsep) for name in ("bash", "sh"))
    for args in (["help"], ["setup"]):
        proc = subprocess.run(["python3", "course.py", *args], cwd=dest, env=env, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr
    assert "python course.py lab" in proc.stdout or args == ["setup"]


def test_the_test_command_runs_pytest(clone):
    dest, env = clone
    proc = subprocess.run(["python3", "course.py", "test", "tests/test_schedules.py", "-p", "no:cacheprovider"],
                          cwd=dest, env={**env, "COURSE_TEST_WORKERS": "0"}, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "== test run took" in proc.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str):
    req = urllib.request.Request(url, headers={"Authorization": f"token {TOKEN}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.geturl(), r.read()


@pytest.fixture(scope="module")
def student_lab(clone):
    """``python course.py lab --student`` from the clean copy, on a free port: the address and the server."""
    dest, env = clone
    env = dict(env, COURSE_DEVICE="cpu")
    env.pop("MPLBACKEND", None)                                # the kernel picks the inline backend, as in Lab
    port = _free_port()
    args = ["python3", "course.py", "lab", "--student", "--no-browser", f"--port={port}",
            f"--IdentityProvider.token={TOKEN}", "--ServerApp.open_browser=False",
            "--LabApp.expose_app_in_browser=True", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    log = dest.parent / "lab.log"
    with open(log, "w") as f:
        # a session of its own: course.py runs JupyterLab as a child, which runs the kernels; all are stopped below
        proc = subprocess.Popen(args, cwd=dest, env=env, stdout=f, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(240):
            try:
                _get(f"{base}/api/status")
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"the lab exited: {log.read_text()[-3000:]}")
                time.sleep(0.5)
        else:
            pytest.fail(f"the lab did not answer within two minutes: {log.read_text()[-3000:]}")
        yield base
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):          # the whole group: course.py, the lab, its kernels
            try:
                os.killpg(proc.pid, sig)
                proc.wait(timeout=20)
                break
            except (ProcessLookupError, subprocess.TimeoutExpired):
                continue


def test_the_lab_opens_at_the_welcome_page_and_hides_the_py_twins(student_lab):
    """Student mode: the same server options as `lab` (welcome page, hidden twins), in build/student/."""
    base = student_lab
    landing, _ = _get(f"{base}/")
    assert landing.split("?")[0].endswith("/lab/tree/welcome.ipynb"), landing
    names = [item["name"] for item in json.loads(_get(f"{base}/api/contents")[1])["content"]]
    assert "welcome.ipynb" in names and "01_ddpm_score_matching.ipynb" in names, names
    assert not [n for n in names if n.endswith(".py")], f"the file browser shows {names}"
    nb = json.loads(_get(f"{base}/api/contents/01_ddpm_score_matching.ipynb")[1])["content"]
    exercise_cells = [c for c in nb["cells"] if "solution" in c.get("metadata", {}).get("tags", [])]
    assert exercise_cells and all("raise NotImplementedError" in "".join(c["source"]) for c in exercise_cells)


CURRENT = "window.jupyterapp.shell.currentWidget"
CELLS_DONE = f"""() => {{ const w = {CURRENT};
    const cells = [...w.content.model.cells].filter(c => c.type === 'code');
    return w.sessionContext.session.kernel.status === 'idle'
           && cells.some(c => c.outputs.toJSON().some(o => o.output_type === 'error'))
           && !cells.some(c => c.executionState === 'running'); }}"""


def test_a_new_student_in_the_browser(student_lab):
    """What a new student sees, in Chromium: the lab opens on the welcome notebook; the file browser lists notebooks
    and no .py twin; the slides extension is loaded; in chapter 1, Run All runs the first demo and stops at the
    first exercise with NotImplementedError; the demo there answers its slider. No console error, no request off
    this machine."""
    from browser import CHROMIUM, Watch, chromium, demo_state, slider_step, wait_new_image
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: install it with `apt-get install -y chromium` (as .ci/run does)")
    base = student_lab
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        watch = Watch(page)
        page.goto(f"{base}/?token={TOKEN}", timeout=120_000)
        page.wait_for_function(f"() => window.jupyterapp && {CURRENT} && {CURRENT}.context", timeout=120_000)
        assert page.evaluate(f"{CURRENT}.context.path") == "welcome.ipynb"
        page.wait_for_selector(".jp-DirListing-itemName", timeout=60_000)
        shown = page.locator(".jp-DirListing-itemName").all_text_contents()
        assert "welcome.ipynb" in shown and not [n for n in shown if n.endswith(".py")], shown
        assert page.evaluate("window.jupyterapp.commands.hasCommand('RISE:slideshow')"), \
            "the slides extension (jupyterlab-rise) did not load in JupyterLab"
        page.evaluate("window.jupyterapp.commands.execute('docmanager:open', {path: '01_ddpm_score_matching.ipynb'})")
        page.wait_for_function(f"""() => {{ const w = {CURRENT};
            return w && w.context && w.context.path === '01_ddpm_score_matching.ipynb' && w.sessionContext.session
                   && w.sessionContext.session.kernel
                   && w.sessionContext.session.kernel.connectionStatus === 'connected'; }}""",
                               timeout=120_000, polling=200)
        # started, not awaited: the command's promise resolves when the kernel stops, and the wait below bounds that
        page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); return true; }")
        page.wait_for_function(CELLS_DONE, timeout=300_000, polling=500)
        errors = page.evaluate(f"""() => [...{CURRENT}.content.model.cells].filter(c => c.type === 'code')
            .flatMap(c => c.outputs.toJSON()).filter(o => o.output_type === 'error').map(o => o.ename)""")
        assert errors == ["NotImplementedError"], f"Run All should stop at the first exercise: {errors}"
        root = ".demo-noising"
        page.wait_for_function(f"document.querySelector('{root} img.demo-image') && "
                               f"document.querySelector('{root} img.demo-image').naturalWidth > 0", timeout=60_000)
        before = demo_state(page, root)
        for _ in range(3):            # a key press that lands before the slider is ready is lost: press again
            slider_step(page, page.locator(f"{root} .noUi-handle").first)
            try:
                page.wait_for_function("([root, cap]) => document.querySelector(root + ' .demo-caption').textContent "
                                       "!== cap", arg=[root, before["caption"]], timeout=5_000, polling=50)
                break
            except Exception:
                continue
        wait_new_image(page, root, before["src"], "chapter 1's first demo in JupyterLab")
        assert demo_state(page, root)["image"] != before["image"]
        artifacts = ROOT / "build" / "test-artifacts"
        artifacts.mkdir(parents=True, exist_ok=True)
        page.locator(root).screenshot(path=str(artifacts / "jupyterlab_first_demo.png"))
        assert not watch.remote, f"JupyterLab requested files from off this machine: {watch.remote[:5]}"
        assert not watch.errors, f"console errors in JupyterLab: {watch.errors[:5]}"
