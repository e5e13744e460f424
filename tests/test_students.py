"""Student notebooks: the solution stripper is exact, and every generated student notebook runs
with no error other than the ``NotImplementedError("Exercise S.k: ...")`` of its exercises."""
import ast
import os
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from execute_chapter import execute
from make_students import SolutionMarkupError, strip_notebook, strip_source, write_students

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
CHAPTERS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))

SOLUTION_CELL = '''\
def square(x):
    """Return x squared."""
    ### BEGIN SOLUTION Exercise 9.1: implement "square" (x times x)
    y = x * x
    return y
    ### END SOLUTION


### BEGIN SOLUTION Exercise 9.2: set the answer
answer = 42
### END SOLUTION
check(square)'''

STUDENT_CELL = '''\
def square(x):
    """Return x squared."""
    raise NotImplementedError("Exercise 9.1: implement \\"square\\" (x times x)")


raise NotImplementedError("Exercise 9.2: set the answer")
check(square)'''


def test_strip_notebook_exact():
    """On a synthetic notebook: exact student source, outputs cleared, everything else kept."""
    solution = new_code_cell(SOLUTION_CELL, metadata={"tags": ["solution"]}, execution_count=2,
                             outputs=[new_output("stream", name="stdout", text="Exercise 9.1 passed\n")])
    nb = new_notebook(cells=[new_markdown_cell("# Title"),
                             new_code_cell("x = 1\nprint(x)", execution_count=1,
                                           outputs=[new_output("stream", name="stdout", text="1\n")]),
                             solution],
                      metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}, "widgets": {"state": {}},
                                "jupytext": {"formats": "ipynb,py:percent"}})
    student, exercises = strip_notebook(nb)
    assert [c.source for c in student.cells] == ["# Title", "x = 1\nprint(x)", STUDENT_CELL]
    assert exercises == [(2, ['Exercise 9.1: implement "square" (x times x)', "Exercise 9.2: set the answer"])]
    assert all(c.outputs == [] and c.execution_count is None for c in student.cells if c.cell_type == "code")
    assert student.cells[2].metadata == {"tags": ["solution"]}
    assert student.metadata == {"kernelspec": {"name": "python3", "display_name": "Python 3"}, "jupytext": {}}
    assert nb.cells[2].source == SOLUTION_CELL, "the input notebook must not be modified"
    nbformat.validate(student)


def test_stripped_stub_raises_the_message():
    source, _ = strip_source(SOLUTION_CELL)
    namespace = {}
    with pytest.raises(NotImplementedError, match=r'^Exercise 9\.2: set the answer$'):
        exec(source, namespace)
    with pytest.raises(NotImplementedError, match=r'^Exercise 9\.1: implement "square"'):
        namespace["square"](3)


@pytest.mark.parametrize("source, error", [
    ("x = 1", "has no"),
    ("### BEGIN SOLUTION Exercise 1.1: a\nx = 1", "never closed"),
    ("x = 1\n### END SOLUTION", "without an open block"),
    ("### BEGIN SOLUTION Exercise 1.1: a\n### BEGIN SOLUTION Exercise 1.2: b\n### END SOLUTION", "inside an open"),
    ("### BEGIN SOLUTION implement it\nx = 1\n### END SOLUTION", "Exercise S.k"),
    ("### BEGIN SOLUTION Exercise 1: a\nx = 1\n### END SOLUTION", "Exercise S.k"),
    ("### BEGIN SOLUTION Exercise 1.1: a\nx = 1\n### END SOLUTION now", "exactly"),
])
def test_malformed_solution_cells_are_errors(source, error):
    nb = new_notebook(cells=[new_code_cell(source, metadata={"tags": ["solution"]})])
    with pytest.raises(SolutionMarkupError, match=error):
        strip_notebook(nb)


def test_markers_outside_a_solution_cell_are_errors():
    nb = new_notebook(cells=[new_code_cell("### BEGIN SOLUTION Exercise 1.1: a\nx = 1\n### END SOLUTION")])
    with pytest.raises(SolutionMarkupError, match="not a code cell tagged 'solution'"):
        strip_notebook(nb)


CHAPTER_PARAMS = ([pytest.param(p, id=p.stem) for p in CHAPTERS] or
                  [pytest.param(None, marks=pytest.mark.skip(reason="no executed chapter notebook yet"))])


def _bound_names(tree) -> set:
    """Names a cell binds at its top level (assignments, defs, imports, loop and with targets)."""
    names = set()
    for node in tree.body:
        for sub in ast.walk(node) if not isinstance(node, (ast.FunctionDef, ast.ClassDef)) else [node]:
            if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(sub.name)
            elif isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                names.add(sub.id)
            elif isinstance(sub, ast.alias):
                names.add((sub.asname or sub.name).split(".")[0])
    return names


def _loaded_names(tree) -> set:
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def solution_name_leaks(nb) -> list:
    """(cell index, names) for every non-solution cell that reads a name bound only in an earlier solution cell."""
    leaks, solution_only = [], {}
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        tree = ast.parse("\n".join(l for l in cell.source.splitlines() if not l.lstrip().startswith(("%", "!"))))
        if "solution" in cell.metadata.get("tags", []):
            solution_only.update({name: i for name in _bound_names(tree)})
            continue
        used = _loaded_names(tree) & set(solution_only)
        if used:
            leaks.append((i, sorted(used)))
        for name in _bound_names(tree):
            solution_only.pop(name, None)
    return leaks


def test_solution_name_leak_is_detected():
    nb = new_notebook(cells=[new_code_cell("import math"),
                             new_code_cell("def helper(x):\n    return x", metadata={"tags": ["solution"]}),
                             new_code_cell("y = helper(2)"),
                             new_code_cell("helper = len"),
                             new_code_cell("z = helper([1])")])
    assert solution_name_leaks(nb) == [(2, ["helper"])]


@pytest.mark.parametrize("path", CHAPTER_PARAMS)
def test_later_cells_do_not_use_solution_names(path):
    """Static check (fast): a name bound only inside a solution cell is never read by a later cell, so a
    student notebook, whose solution cells raise NotImplementedError, runs past every exercise."""
    leaks = solution_name_leaks(nbformat.read(path, as_version=4))
    assert not leaks, (f"notebooks/{path.name}: cells read names defined only in solution cells {leaks}; "
                       "the student notebook would fail there")


@pytest.mark.parametrize("path", CHAPTER_PARAMS)
def test_student_stubs_raise_their_exercise(path, tmp_path):
    """Each stripped exercise cell, run after the chapter's first code cell (its imports), raises exactly
    the NotImplementedError of its own exercise (the checkers generate their own inputs)."""
    exercises = dict(write_students([path], tmp_path)[path.stem])
    nb = nbformat.read(tmp_path / path.name, as_version=4)
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    namespace = {}
    exec(compile(nb.cells[code[0]].source, "imports", "exec"), namespace)
    assert exercises, f"{path.name} has no exercises"
    for i, messages in exercises.items():
        with pytest.raises(NotImplementedError) as err:
            exec(compile(nb.cells[i].source, f"cell {i}", "exec"), dict(namespace))
        assert str(err.value) in messages, f"cell {i} raised {err.value!r}, not one of {messages}"


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("COURSE_FULL_STUDENT_CHECK"),
                    reason="executes every student notebook top to bottom (minutes); "
                           "run with COURSE_FULL_STUDENT_CHECK=1 ./course test tests/test_students.py")
@pytest.mark.parametrize("path", CHAPTER_PARAMS)
def test_student_notebook_runs_to_the_exercises(path, tmp_path):
    """Each stripped cell raises exactly one of its own NotImplementedErrors; nothing else fails.
    So the rest of a chapter must not depend on names defined in solution cells. This executes whole
    chapters, so it is opt-in; the two fast tests above check the same two properties without running
    the chapters' experiments."""
    exercises = dict(write_students([path], tmp_path)[path.stem])
    nb = nbformat.read(tmp_path / path.name, as_version=4)
    execute(nb, NOTEBOOKS, allow_errors=True)
    errors = {i: [o for o in c.outputs if o.output_type == "error"]
              for i, c in enumerate(nb.cells) if c.cell_type == "code"}
    for i, errs in errors.items():
        where = f"student copy of notebooks/{path.name}, cell {i}"
        if i not in exercises:
            assert not errs, (f"{where} (not an exercise) raised {errs[0].ename}: {errs[0].evalue}; "
                              "later cells must not use names defined in solution cells")
            continue
        assert len(errs) == 1, f"{where}: expected the exercise's NotImplementedError, got no error"
        err = errs[0]
        assert err.ename == "NotImplementedError" and err.evalue.startswith("Exercise "), (
            f"{where} raised {err.ename}: {err.evalue}, not the exercise stub's NotImplementedError")
        assert err.evalue in exercises[i], f"{where}: {err.evalue!r} is not this cell's exercise {exercises[i]}"
