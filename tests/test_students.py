"""Student notebooks: the solution stripper is exact, and every generated student notebook runs
with no error other than the ``NotImplementedError("Exercise N.M: ...")`` of its exercises."""
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
    ("### BEGIN SOLUTION implement it\nx = 1\n### END SOLUTION", "Exercise N.M"),
    ("### BEGIN SOLUTION Exercise 1: a\nx = 1\n### END SOLUTION", "Exercise N.M"),
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


@pytest.mark.slow
@pytest.mark.parametrize("path", [pytest.param(p, id=p.stem) for p in CHAPTERS] or
                         [pytest.param(None, marks=pytest.mark.skip(reason="no executed chapter notebook yet"))])
def test_student_notebook_runs_to_the_exercises(path, tmp_path):
    """Each stripped cell raises exactly one of its own NotImplementedErrors; nothing else fails.
    So the rest of a chapter must not depend on names defined in solution cells."""
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
