"""Write student notebooks: the executed chapters with their exercise solutions removed.

Usage (normally through ``./course students``):

    python tools/make_students.py [--out build/student] [NN ...]

In every code cell tagged ``solution``, each block

        ### BEGIN SOLUTION Exercise 1.1: implement q_sample (closed-form forward process)
        ...the solution...
        ### END SOLUTION

(markers included) becomes one line, at the BEGIN marker's indentation:

        raise NotImplementedError("Exercise 1.1: implement q_sample (closed-form forward process)")

The message must start with ``Exercise S.k:`` (the k-th exercise of section S). A solution cell without a block, a block that is
not closed, nested or stray markers, or markers outside a ``solution`` cell are errors. All
outputs, execution counts and the saved widget state are cleared, and the jupytext pairing is
dropped (so saving a student copy does not create a ``.py`` beside it); everything else is kept.
"""
from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
MESSAGE = re.compile(r"Exercise \d+\.\d+: \S.*")


class SolutionMarkupError(ValueError):
    """A solution cell whose markers cannot be stripped safely."""


def strip_source(source: str, where: str = "cell") -> tuple[str, list[str]]:
    """Replace each BEGIN/END SOLUTION block of ``source``; return the new source and the
    blocks' messages, in order. ``where`` names the cell in error messages."""
    out, messages, inside = [], [], False
    for n, line in enumerate(source.splitlines(), 1):
        text = line.strip()
        if text.startswith(BEGIN):
            if inside:
                raise SolutionMarkupError(f"{where}, line {n}: BEGIN SOLUTION inside an open block")
            message = text[len(BEGIN):].strip()
            if not MESSAGE.fullmatch(message):
                raise SolutionMarkupError(f"{where}, line {n}: the BEGIN SOLUTION message must read "
                                          f"'Exercise S.k: what to do', got {message!r}")
            indent = line[:len(line) - len(line.lstrip())]
            out.append(f"{indent}raise NotImplementedError({json.dumps(message, ensure_ascii=False)})")
            messages.append(message)
            inside = True
        elif text.startswith(END):
            if text != END:
                raise SolutionMarkupError(f"{where}, line {n}: the END marker must read exactly '{END}'")
            if not inside:
                raise SolutionMarkupError(f"{where}, line {n}: END SOLUTION without an open block")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise SolutionMarkupError(f"{where}: BEGIN SOLUTION is never closed by '{END}'")
    return "\n".join(out), messages


def strip_notebook(nb, name: str = "notebook"):
    """Return ``(student_nb, exercises)``: a stripped, output-free copy of ``nb`` and a list of
    ``(cell_index, [messages])`` for every solution cell."""
    student = copy.deepcopy(nb)
    exercises = []
    for i, cell in enumerate(student.cells):
        where = f"{name}, cell {i}"
        is_solution = cell.cell_type == "code" and "solution" in cell.metadata.get("tags", [])
        if is_solution:
            cell.source, messages = strip_source(cell.source, where)
            if not messages:
                raise SolutionMarkupError(f"{where}: tagged 'solution' but has no '{BEGIN} Exercise S.k: ...' block")
            exercises.append((i, messages))
        elif BEGIN in cell.source or END in cell.source:
            raise SolutionMarkupError(f"{where}: has SOLUTION markers but is not a code cell tagged 'solution'")
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    student.metadata.pop("widgets", None)
    student.metadata.get("jupytext", {}).pop("formats", None)
    return student, exercises


def chapter_notebooks(selection: list[str]) -> list[Path]:
    """The executed chapter notebooks ``notebooks/NN_*.ipynb`` (all, or those numbered in
    ``selection``)."""
    found = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if not selection:
        return found
    wanted = {f"{int(s):02d}" for s in selection}
    chosen = [p for p in found if p.name[:2] in wanted]
    missing = wanted - {p.name[:2] for p in chosen}
    if missing:
        raise SystemExit(f"error: no executed chapter notebook for {', '.join(sorted(missing))} "
                         "(run ./course run NN first)")
    return chosen


def write_students(paths: list[Path], out: Path) -> dict[str, list]:
    """Write a student copy of each notebook into ``out``; return ``{stem: exercises}``."""
    out.mkdir(parents=True, exist_ok=True)
    result = {}
    for path in paths:
        student, exercises = strip_notebook(nbformat.read(path, as_version=4), path.name)
        nbformat.write(student, out / path.name)
        result[path.stem] = exercises
        n = sum(len(m) for _, m in exercises)
        print(f"{path.stem}: {n} exercise(s) stripped -> {out / path.name}")
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="build/student", help="output folder (default: build/student)")
    parser.add_argument("chapters", nargs="*", help="chapter numbers, e.g. 01 (default: all)")
    args = parser.parse_args(argv)
    paths = chapter_notebooks(args.chapters)
    if not paths:
        print("error: no executed chapter notebook in notebooks/ (run ./course run NN first)", file=sys.stderr)
        return 1
    try:
        write_students(paths, Path(args.out))
    except SolutionMarkupError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
