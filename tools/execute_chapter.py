"""Re-sync chapters from their py:percent source and re-execute them in place.

Usage (normally through ``./course run NN``, which forces the CPU):

    python tools/execute_chapter.py 01 [02 ...]
    python tools/execute_chapter.py notebooks/01_ddpm_score_matching.py
    python tools/execute_chapter.py all

For each chapter ``notebooks/NN_topic.py`` (the source of truth, paired through jupytext.toml):

1. read the ``.py`` with jupytext and build a fresh notebook from it (no stale cells, outputs or
   metadata; only the cell ids of the previous ``.ipynb`` are reused, to keep git diffs small);
2. execute it with nbclient (kernel ``python3``, cwd = the chapter's folder, 600 s per cell);
3. write the ``.ipynb`` with its outputs, and rewrite the ``.py`` from the same notebook so that
   both files carry the same jupytext metadata (this is what ``jupytext --sync`` would write);
4. check that the pair agrees, and print the wall time.

A cell that raises stops the chapter: the error (cell source and traceback) is printed, the
partly executed notebook is written to ``build/failed/`` for inspection, the chapter's files are
left untouched, and the script exits with status 1.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import jupytext
import nbformat
from jupytext.combine import map_outputs_to_inputs
from jupytext.config import load_jupytext_config
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
FAILED = ROOT / "build" / "failed"
CELL_TIMEOUT = 600
# ipykernel only selects the inline backend when MPLBACKEND is unset; a caller's MPLBACKEND=agg
# (common in CI and headless shells) would silently drop every figure from the kernel's outputs.
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


def chapter_sources() -> list[Path]:
    """All chapter sources ``notebooks/NN_*.py``, sorted."""
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))


def resolve(arg: str) -> list[Path]:
    """Turn ``NN``, a path to a ``.py``/``.ipynb``, or ``all`` into chapter ``.py`` paths."""
    if arg == "all":
        return chapter_sources()
    path = Path(arg)
    if path.suffix in (".py", ".ipynb"):
        path = path.with_suffix(".py").resolve()
        if not path.exists():
            raise SystemExit(f"error: {path} does not exist (the .py is the chapter's source)")
        return [path]
    if arg.isdigit():
        found = [p for p in chapter_sources() if p.name.startswith(f"{int(arg):02d}_")]
        if len(found) == 1:
            return found
    raise SystemExit(f"error: no single chapter matches {arg!r}; chapters: "
                     + ", ".join(p.stem for p in chapter_sources()))


def kernel_env() -> dict[str, str]:
    """Environment of the kernel: the caller's, with the CPU forced by default, a fixed hash
    seed and the inline matplotlib backend (what a student's JupyterLab gets)."""
    env = dict(os.environ)
    env.setdefault("COURSE_DEVICE", "cpu")
    env.setdefault("PYTHONHASHSEED", "0")
    env["MPLBACKEND"] = INLINE_BACKEND
    return env


def cell_signature(nb) -> list[tuple[str, str]]:
    """What must agree between the two files of a pair: each cell's type and stripped source."""
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


def notebook_from_source(py: Path, config):
    """A fresh notebook from the ``.py``; reuse cell ids of the existing ``.ipynb`` where a cell
    is unchanged, so that a re-run only changes what really changed."""
    nb = jupytext.read(py, config=config)
    old_path = py.with_suffix(".ipynb")
    if old_path.exists():
        old = nbformat.read(old_path, as_version=4)
        used = set()
        for cell, j in zip(nb.cells, map_outputs_to_inputs(nb.cells, old.cells)):
            old_id = old.cells[j].get("id") if j is not None else None
            if old_id and old_id not in used:
                cell["id"] = old_id
                used.add(old_id)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def execute(nb, cwd: Path, env: dict[str, str] | None = None, allow_errors: bool = False,
            record_timing: bool = False):
    """Execute ``nb`` in place with nbclient and return it (raises on the first error unless
    ``allow_errors``; ``record_timing`` keeps each cell's start and end in its metadata)."""
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3", allow_errors=allow_errors,
                            record_timing=record_timing, resources={"metadata": {"path": str(cwd)}})
    client.execute(env=env or kernel_env())
    return nb


def run_chapter(py: Path) -> bool:
    """Sync, execute and write one chapter; return True on success."""
    config = load_jupytext_config(str(py.parent))
    nb = notebook_from_source(py, config)
    t0 = time.perf_counter()
    try:
        execute(nb, py.parent)
    except Exception as e:  # CellExecutionError carries the cell's source and traceback
        FAILED.mkdir(parents=True, exist_ok=True)
        partial = FAILED / f"{py.stem}.ipynb"
        nbformat.write(nb, partial)
        print(f"{py.stem}: FAILED after {time.perf_counter() - t0:.1f} s\n{e}\n"
              f"(partly executed notebook: {partial.relative_to(ROOT)}; chapter files left unchanged)",
              file=sys.stderr)
        return False
    seconds = time.perf_counter() - t0
    ipynb = py.with_suffix(".ipynb")
    old_text = py.read_text()
    jupytext.write(nb, ipynb, fmt="ipynb", config=config)
    jupytext.write(nb, py, fmt="py:percent", config=config)
    if py.read_text() != old_text:
        print(f"{py.stem}: rewrote {py.name} in jupytext's normal form (header/metadata); review the diff")
    if cell_signature(jupytext.read(py)) != cell_signature(nbformat.read(ipynb, as_version=4)):
        print(f"{py.stem}: {py.name} and {ipynb.name} disagree after writing", file=sys.stderr)
        return False
    size_mb = ipynb.stat().st_size / 1e6
    print(f"{py.stem}: executed in {seconds:.1f} s ({size_mb:.2f} MB)")
    return True


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    chapters = [p for arg in argv for p in resolve(arg)]
    if not chapters:
        print("error: no chapter found in notebooks/", file=sys.stderr)
        return 1
    if os.environ.get("COURSE_DEVICE", "cpu") != "cpu":
        print(f"warning: COURSE_DEVICE={os.environ['COURSE_DEVICE']}; committed outputs are made on the CPU",
              file=sys.stderr)
    failed = [p.stem for p in chapters if not run_chapter(p)]
    if failed:
        print(f"error: {len(failed)} chapter(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
