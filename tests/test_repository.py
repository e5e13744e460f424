"""Fast checks of the repository itself (no notebook is executed).

Chapters: every ``notebooks/NN_topic.ipynb`` must be the executed twin of its ``NN_topic.py``:
in sync, fully executed in order, without errors, small, with few ignored cells, PNG figures and
well-formed exercise solutions. Environment: pyproject.toml, requirements-lock.txt and
environment.yml agree. CI and README: they run the documented commands.

Every failure names the file, the cell and the fix (most often ``./course run NN``).
"""
import re
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from make_students import SolutionMarkupError, strip_notebook

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
CHAPTERS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
SOURCES = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))
MAX_IGNORED_FRACTION = 0.15
MAX_MB = 5
IGNORE_TAGS = {"nbval-ignore-output", "nbval-skip"}
IGNORE_COMMENTS = ("# NBVAL_IGNORE_OUTPUT", "# NBVAL_SKIP")


def _params(paths, what):
    """Parametrize over ``paths``; one clean skip when there is none yet."""
    if paths:
        return [pytest.param(p, id=p.stem) for p in paths]
    return [pytest.param(None, marks=pytest.mark.skip(reason=f"no {what} in notebooks/ yet"))]


def fix(path: Path) -> str:
    return f"fix: edit {path.stem}.py if needed, then run ./course run {path.name[:2]}"


def code_cells(nb):
    return [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]


chapter = pytest.mark.parametrize("path", _params(CHAPTERS, "executed chapter notebook"))


@pytest.mark.parametrize("py", _params(SOURCES, "chapter source NN_topic.py"))
def test_every_source_has_an_executed_notebook(py):
    ipynb = py.with_suffix(".ipynb")
    assert ipynb.exists(), (f"notebooks/{py.name} has no executed twin notebooks/{ipynb.name} "
                            f"(an unexecuted chapter is never checked): run ./course run {py.name[:2]}")


@chapter
def test_pair_in_sync(path):
    py = path.with_suffix(".py")
    assert py.exists(), f"notebooks/{path.name} has no source notebooks/{py.name}: run jupytext --to py:percent {path.name}"
    src, out = jupytext.read(py), jupytext.read(path)
    a = [(c.cell_type, c.source.strip()) for c in src.cells]
    b = [(c.cell_type, c.source.strip()) for c in out.cells]
    for i, (x, y) in enumerate(zip(a, b)):
        assert x == y, f"notebooks/{path.name}, cell {i} differs from {py.name} ({x[0]} vs {y[0]}): {fix(path)}"
    assert len(a) == len(b), f"notebooks/{path.name} has {len(b)} cells, {py.name} has {len(a)}: {fix(path)}"


@chapter
def test_executed_in_order_without_errors(path):
    nb = nbformat.read(path, as_version=4)
    previous = 0
    for i, cell in code_cells(nb):
        count = cell.execution_count
        if cell.source.strip():
            assert count is not None, f"notebooks/{path.name}, cell {i} was never executed: {fix(path)}"
        for out in cell.outputs:
            assert out.output_type != "error", (
                f"notebooks/{path.name}, cell {i} has an error output ({out.get('ename')}: {out.get('evalue')}): {fix(path)}")
            assert "image/svg+xml" not in out.get("data", {}), (
                f"notebooks/{path.name}, cell {i} has an SVG figure (SVG embeds a date): use PNG figures, then {fix(path)}")
        if count is not None:
            assert count > previous, (f"notebooks/{path.name}, cell {i}: execution count {count} after {previous}; "
                                      f"execute top to bottom in a fresh kernel: {fix(path)}")
            previous = count


@chapter
def test_ignored_cells_are_few_and_assert(path):
    nb = nbformat.read(path, as_version=4)
    cells = code_cells(nb)
    ignored = [(i, c) for i, c in cells
               if IGNORE_TAGS & set(c.metadata.get("tags", [])) or any(m in c.source for m in IGNORE_COMMENTS)]
    for i, cell in ignored:
        assert "assert" in cell.source, (f"notebooks/{path.name}, cell {i} is excluded from the output comparison "
                                         "but asserts nothing: add an assert on what matters (a bound, a shape)")
    limit = MAX_IGNORED_FRACTION * len(cells)
    assert len(ignored) <= limit, (f"notebooks/{path.name}: {len(ignored)} of {len(cells)} code cells are excluded from "
                                   f"the output comparison (at most {MAX_IGNORED_FRACTION:.0%}): cells "
                                   f"{[i for i, _ in ignored]}; make outputs stable instead (rounding, no live bars)")


@chapter
def test_notebook_is_small(path):
    mb = path.stat().st_size / 1e6
    assert mb < MAX_MB, (f"notebooks/{path.name} is {mb:.1f} MB (limit {MAX_MB} MB): lower the figure DPI or the "
                         f"number of animation frames, then {fix(path)}")


@chapter
def test_solutions_are_well_formed(path):
    nb = nbformat.read(path, as_version=4)
    try:
        _, exercises = strip_notebook(nb, f"notebooks/{path.name}")
    except SolutionMarkupError as e:
        pytest.fail(f"{e}; see tools/make_students.py for the marker format")
    # exercises are numbered by section, like the checks ("Check 7.2"): Exercise S.k is the k-th of section S
    section, section_of = None, {}
    for i, cell in enumerate(nb.cells):
        headings = re.findall(r"^## (\d+)\.", cell.source, re.M) if cell.cell_type == "markdown" else []
        section = int(headings[-1]) if headings else section
        section_of[i] = section
    numbers = [(i, m.split(":")[0]) for i, messages in exercises for m in messages]
    for i, number in numbers:
        assert number.startswith(f"Exercise {section_of[i]}."), (
            f"notebooks/{path.name}: {number!r} sits in section {section_of[i]}: number it 'Exercise {section_of[i]}.k'")
    assert len({n for _, n in numbers}) == len(numbers), f"notebooks/{path.name}: two exercises share a number"


# ----------------------------------------------------------------------------- environment

def _lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements-lock.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep, f"requirements-lock.txt: {line!r} is not name==version; regenerate with ./course lock"
            pins[canonicalize_name(name)] = version.strip()
    return pins


def _direct() -> list[Requirement]:
    from lock import direct_dependencies
    return direct_dependencies(ROOT / "pyproject.toml")


def _requires_closure(names) -> set[str]:
    """Every installed distribution that ``names`` pull in (their requirements without extras, recursively)."""
    from importlib import metadata
    seen, todo = set(), [canonicalize_name(n) for n in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            reqs = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for r in map(Requirement, reqs):
            if r.marker is None or r.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(r.name))
    return seen


def test_the_library_alone_installs_no_test_or_lecture_tools():
    """``pip install -e .`` (no extras) brings what the library imports; pytest, nbval, playwright and voila come
    only with the extras that ``./course`` installs."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    runtime = _requires_closure(Requirement(r).name for r in project["dependencies"])
    tools = {"pytest", "nbval", "playwright", "voila", "pytest-xdist", "jupyterlab"}
    assert not runtime & tools, f"the runtime dependencies pull in {sorted(runtime & tools)}"
    extras = project["optional-dependencies"]
    assert {"lab", "test", "lecture"} <= set(extras)
    for name in ("pytest", "nbval", "playwright"):
        assert any(canonicalize_name(Requirement(r).name) == name for r in extras["test"]), name
    assert any(canonicalize_name(Requirement(r).name) == "voila" for r in extras["lecture"])
    course = (ROOT / "course.py").read_text()
    assert '".[lab,test,lecture]"' in course, "python course.py setup must install every extra"


def _environment_pip() -> list[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip) == 1, "environment.yml: needs exactly one '- pip:' list"
    return pip[0]


def test_lock_pins_every_direct_dependency_within_range():
    lock = _lock()
    for req in _direct():
        version = lock.get(canonicalize_name(req.name))
        assert version, f"requirements-lock.txt has no pin for {req.name} (pyproject.toml): run ./course lock"
        assert re.fullmatch(r"[0-9][0-9A-Za-z.]*", version), f"requirements-lock.txt: {req.name}=={version} is not exact"
        assert req.specifier.contains(version, prereleases=True), (
            f"requirements-lock.txt pins {req.name}=={version}, outside pyproject.toml's '{req}': "
            "fix the range or reinstall, then ./course lock")
    assert re.fullmatch(r"\d+\.\d+\.\d+", lock.get("torch", "")), (
        f"requirements-lock.txt: torch=={lock.get('torch')} must be a plain X.Y.Z (no +cpu tag): run ./course lock")


def test_environment_yml_matches_lock():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["name"] == "dlm-course" and "conda-forge" in env["channels"], "environment.yml: name/channels"
    assert "python=3.11" in env["dependencies"], "environment.yml: needs python=3.11 (the lock was made on 3.11)"
    entries = _environment_pip()
    assert "-e .[lab,test,lecture]" in entries, (
        "environment.yml: the pip list must end with '-e .[lab,test,lecture]' (installs course_lib and its extras)")
    pins = {}
    for entry in entries:
        if "==" in entry:
            name, _, version = entry.partition("==")
            pins[canonicalize_name(name)] = version
    lock, direct = _lock(), {canonicalize_name(r.name) for r in _direct()}
    for name in direct:
        assert pins.get(name) == lock.get(name), (
            f"environment.yml pins {name}=={pins.get(name)}, requirements-lock.txt has {lock.get(name)}: run ./course lock")
    extra = set(pins) - direct
    assert not extra, f"environment.yml pins packages that are not direct dependencies: {sorted(extra)}: run ./course lock"


# ----------------------------------------------------------------------------- CI and README

def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^\s*\./course test\b", ci, re.MULTILINE), ".ci/run must call ./course test"


def test_readme_documents_the_two_commands():
    readme = ROOT / "README.md"
    if not readme.exists():
        pytest.skip("README.md does not exist yet")
    text = readme.read_text()
    for command in ("./course lab", "./course test"):
        assert command in text, f"README.md must document `{command}`"


def test_user_facing_text_names_no_internal_file_or_tracker():
    """The README, the chapters, the library and the shipped published-facts files cite papers and official
    repositories, never the team's internal files or its issue tracker."""
    pattern = re.compile(r"REFERENCE\.md|COURSE_GUIDE|reference sheet|\bissues? [0-9]", re.IGNORECASE)
    files = [ROOT / "README.md", *(ROOT / "notebooks").glob("*.py"), *(ROOT / "course_lib").rglob("*.py"),
             *(ROOT / "data" / "published").glob("*.json")]
    hits = [f"{p.relative_to(ROOT)}:{i}" for p in files
            for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not hits, hits


def test_the_welcome_page_lists_every_chapter_in_order_by_title():
    """The lab opens on notebooks/welcome.ipynb: it links each chapter, in order, under the chapter's own title."""
    welcome = nbformat.read(NOTEBOOKS / "welcome.ipynb", as_version=4)
    assert [c.cell_type for c in welcome.cells] == ["markdown"], "the welcome page is text only (nothing to run)"
    links = re.findall(r"\[([^\]]+)\]\(([0-9][0-9]_[a-z0-9_]+\.ipynb)\)", welcome.cells[0].source)
    assert [target for _, target in links] == [p.name for p in CHAPTERS]
    for (title, target), path in zip(links, CHAPTERS):
        heading = nbformat.read(path, as_version=4).cells[0].source.splitlines()[0]
        assert heading.endswith(title), f"welcome.ipynb calls {target} {title!r}; the chapter's title is {heading!r}"
