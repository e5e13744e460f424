"""The entry point a student types, `python course.py lab` / `python course.py test`, works with no bash (Windows):
from a clean clone, with nothing but Python on the PATH, it sets up, runs tests, and opens JupyterLab at the welcome
page with the notebooks' .py twins hidden; student mode serves notebooks whose exercises raise NotImplementedError.

The clone reuses this environment (COURSE_USE_CURRENT_PYTHON=1): building a fresh .venv is what `.ci/run` does.
"""
import json
import os
import shutil
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


def test_the_lab_opens_at_the_welcome_page_and_hides_the_py_twins(clone):
    """Student mode: the same server options as `lab` (welcome page, hidden twins), in build/student/."""
    dest, env = clone
    port = _free_port()
    args = ["python3", "course.py", "lab", "--student", "--no-browser", f"--port={port}",
            f"--IdentityProvider.token={TOKEN}", "--ServerApp.open_browser=False"]
    proc = subprocess.Popen(args, cwd=dest, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(120):
            try:
                _get(f"{base}/api/status")
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"the lab exited: {proc.stdout.read()[-3000:]}")
                time.sleep(0.5)
        else:
            pytest.fail("the lab did not answer within a minute")
        landing, _ = _get(f"{base}/")
        assert landing.split("?")[0].endswith("/lab/tree/welcome.ipynb"), landing
        names = [item["name"] for item in json.loads(_get(f"{base}/api/contents")[1])["content"]]
        assert "welcome.ipynb" in names and "01_ddpm_score_matching.ipynb" in names, names
        assert not [n for n in names if n.endswith(".py")], f"the file browser shows {names}"
        nb = json.loads(_get(f"{base}/api/contents/01_ddpm_score_matching.ipynb")[1])["content"]
        exercise_cells = [c for c in nb["cells"] if "solution" in c.get("metadata", {}).get("tags", [])]
        assert exercise_cells and all("raise NotImplementedError" in "".join(c["source"]) for c in exercise_cells)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
