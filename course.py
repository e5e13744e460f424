#!/usr/bin/env python3
"""The course's one entry point, in plain Python, so it works the same on Linux, macOS and Windows (no bash needed).

The README documents two commands:

    python course.py lab     set up the environment if needed, then open the course in JupyterLab
    python course.py test    set up the environment if needed, then run the whole test suite

and a few maintainer commands (``python course.py help``). ``./course CMD`` is the same thing on Linux and macOS.
Every command is idempotent: the virtual environment in .venv is built once and reused until
requirements-lock.txt or pyproject.toml change. Only the standard library is used here.
"""
from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("COURSE_VENV", ROOT / ".venv"))
WELCOME = "welcome.ipynb"
# what a student does not need to see in the lab's file browser: the notebooks' .py twins, test plumbing, caches
HIDDEN = ["*.py", "conftest.py", "__pycache__", "*.pyc", ".ipynb_checkpoints", ".pytest_cache", "*~"]

USAGE = """usage: python course.py COMMAND [ARGS]      (or ./course COMMAND [ARGS] on Linux and macOS)

  lab [--student]     set up (if needed) and open the course in JupyterLab at the welcome page; --student opens
                      the student notebooks (exercise solutions removed) instead of the full chapters
  test [PYTEST ARGS]  set up (if needed) and run everything: unit tests, nbval over every chapter (CPU forced),
                      repository checks, student-notebook checks; --tolerant compares the chapters' numbers to
                      their printed precision (the default off x86-64), --strict bit for bit (the default on x86-64)
  setup               only build or refresh the environment (.venv)
  run NN              re-sync NN_topic.py -> .ipynb and re-execute the chapter in place (CPU forced)
  students            write student notebooks (solutions removed) to build/student/
  gallery [--dark]    lecture mode: serve every chapter's demos with Voila on http://127.0.0.1:8866/
                      (preheated kernel, no network; --port N for another port, --dark for the dark theme,
                      --slides to open it one demo per screen)
  export              offline HTML pages of every chapter, with outputs and demo frame strips, to build/html/
  retrain NAME        retrain a shipped checkpoint with its recipe and update data/manifest.json
  artefacts NAME      remake a shipped artefact (the chapters' heavy sampling runs) in data/artefacts/
                      (--list; --check NAME redraws its first batch and compares)
  bench [PARTS]       time what tests must not assert: chapters, demo callbacks, the gallery in a browser
                      (tables, and build/bench/bench.json); run it on an idle machine. "bench decoding": chapter 4's
                      speed benchmark (trains three small models the first time), writes data/bench/decoding.json
  lock                re-freeze the environment into requirements-lock.txt and environment.yml
  help                this text

Environment variables: COURSE_VENV (where the venv lives, default .venv); COURSE_PYTHON (the interpreter that
builds it, e.g. python3.13; default: the first of python3.11, 3.12, 3.13, 3.10); COURSE_USE_CURRENT_PYTHON=1
(use the running interpreter, e.g. a conda env built from environment.yml, instead of .venv)."""


# --------------------------------------------------------------------------- the environment
def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def pick_python() -> str:
    """The interpreter that builds .venv: COURSE_PYTHON, else the first of 3.11, 3.12, 3.13, 3.10 (3.11 gets the
    CPU build of torch on Linux), else the one running this script."""
    names = [os.environ.get("COURSE_PYTHON", ""), "python3.11", "python3.12", "python3.13", "python3.10"]
    for name in filter(None, names):
        path = shutil.which(name)
        if path and subprocess.run([path, "-c", "import sys; sys.exit(sys.version_info < (3, 10))"]).returncode == 0:
            return path
    if sys.version_info >= (3, 10):
        return sys.executable
    sys.exit("error: Python 3.10 or newer is needed (python --version)")


def stamp() -> str:
    """The fingerprint of what the environment is built from (the same as the shell wrapper's)."""
    inputs = (ROOT / "requirements-lock.txt").read_bytes() + (ROOT / "pyproject.toml").read_bytes()
    return hashlib.sha256(inputs).hexdigest()


def setup() -> str:
    """Build or refresh the environment if needed; return the interpreter to run the course with."""
    if os.environ.get("COURSE_USE_CURRENT_PYTHON") == "1":
        if subprocess.run([sys.executable, "-c", "import course_lib"], capture_output=True).returncode != 0:
            subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-e", str(ROOT)], check=True)
        return sys.executable
    py, marker, want = venv_python(), VENV / ".course-stamp", stamp()
    if py.exists() and marker.exists() and marker.read_text().strip() == want:
        return str(py)
    print(f"== setting up the course environment in {VENV} (once; later runs reuse it)", flush=True)
    t0 = time.time()
    if not py.exists():
        subprocess.run([pick_python(), "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True)
    # -c pins every package to the version that produced the committed outputs; torch==2.13.0 is the CPU build
    # on Linux with Python 3.11 (see README, "CPU, GPU and Apple")
    subprocess.run([str(py), "-m", "pip", "install", "--quiet", "-c", "requirements-lock.txt", "-e",
                    ".[lab,test,lecture]"], check=True, cwd=ROOT)
    marker.write_text(want + "\n")
    print(f"== environment ready in {time.time() - t0:.0f} s", flush=True)
    return str(py)


def run(cmd: list[str], **env) -> int:
    """Run a command in the repository root with extra environment variables; return its exit code."""
    return subprocess.run(cmd, cwd=ROOT, env={**os.environ, **env}).returncode


# --------------------------------------------------------------------------- commands
def lab(py: str, args: list[str]) -> int:
    student = "--student" in args
    args = [a for a in args if a != "--student"]
    root = ROOT / "notebooks"
    if student:
        root = ROOT / "build" / "student"
        code = run([py, "tools/make_students.py", "--out", str(root)])
        if code:
            return code
        shutil.copy(ROOT / "notebooks" / WELCOME, root / WELCOME)
    options = [f"--ServerApp.root_dir={root}", f"--LabApp.default_url=/lab/tree/{WELCOME}",
               f"--ContentsManager.hide_globs={HIDDEN!r}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        options.append("--allow-root")                # as root (a container), Jupyter refuses to start without it
    return run([py, "-m", "jupyterlab", *options, *args])


def test(py: str, args: list[str]) -> int:
    """Everything, on the CPU, in two pytest workers; see the README's "Which machines reproduce the outputs"."""
    compare = os.environ.get("COURSE_COMPARE", "auto")
    rest = []
    for a in args:
        if a in ("--tolerant", "--strict"):
            compare = a[2:]
        else:
            rest.append(a)
    if compare == "auto":
        compare = "strict" if platform.machine().lower() in ("x86_64", "amd64") else "tolerant"
    print(f"== notebook outputs compared: {compare}", flush=True)
    # default: everything; if the user names test paths (python course.py test tests/test_ddpm.py), only those
    paths = [] if any((ROOT / a.split("::")[0]).exists() for a in rest) else ["tests", "notebooks"]
    env = {"COURSE_DEVICE": "cpu", "PYTHONHASHSEED": "0", "COURSE_COMPARE": compare}
    workers = os.environ.get("COURSE_TEST_WORKERS", "2")
    xdist = []
    if workers != "0":
        # one file per worker at a time, so each chapter's kernel stays in one worker; --max-worker-restart=0: a
        # dead worker (a crash, or the per-test time limit) stops the run with its tests reported instead of
        # hanging (pytest-xdist up to 3.8 can wait forever on a replaced worker)
        xdist = ["-n", workers, "--dist", "loadfile", "--max-worker-restart=0"]
        # each chapter sets two torch threads; two chapters side by side share two cores, and OpenMP's default
        # busy-waiting would make the four threads fight: let idle threads sleep instead
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    t0 = time.time()
    code = run([py, "-m", "pytest", *paths, *xdist, "--nbval", "--nbval-current-env",
                "--nbval-sanitize-with", "tests/nbval_sanitize.cfg", "--nbval-cell-timeout=600", "-q", *rest], **env)
    print(f"== test run took {time.time() - t0:.0f} s", flush=True)
    return code


def main(argv: list[str]) -> int:
    cmd, args = (argv[0], argv[1:]) if argv else ("help", [])
    if cmd in ("help", "-h", "--help"):
        print(USAGE)
        return 0
    simple = {  # commands that only run a tool in the environment
        "run": (["tools/execute_chapter.py"], {"COURSE_DEVICE": "cpu", "PYTHONHASHSEED": "0"}),
        "students": (["tools/make_students.py"], {}),
        "gallery": (["-m", "course_lib.gallery", "serve"], {}),
        "export": (["tools/export_html.py"], {}),
        "retrain": (["-m", "course_lib.recipes"], {"PYTHONHASHSEED": "0"}),
        "bench": (["tools/bench.py"], {"COURSE_DEVICE": "cpu", "PYTHONHASHSEED": "0"}),
        "artefacts": (["-m", "course_lib.recipes", "artefacts"], {"PYTHONHASHSEED": "0"}),
        "lock": (["tools/lock.py"], {}),
    }
    if cmd not in simple and cmd not in ("lab", "test", "setup"):
        print(f"unknown command: {cmd}\n\n{USAGE}", file=sys.stderr)
        return 2
    if cmd == "run" and not args:
        print("usage: python course.py run NN   (e.g. python course.py run 01)", file=sys.stderr)
        return 2
    py = setup()
    if cmd == "setup":
        return 0
    if cmd == "lab":
        return lab(py, args)
    if cmd == "test":
        return test(py, args)
    if cmd == "retrain" and not args:
        args = ["--list"]
    tool, env = simple[cmd]
    return run([py, *tool, *args], **env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
