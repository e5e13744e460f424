"""The shape of ``course_lib``: the layers of the README's "How the code is organised" table hold.

- the table lists every module once, with its layer and the first chapter whose notebook imports it;
- a module imports only foundations and modules of its own or an earlier chapter (tools import anything),
  counting imports inside functions too, and there is no import cycle;
- no module is longer than 900 lines; the package's docstring names every module, and only modules;
- notebooks call no private (``_name``) function of the library.
"""
import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIB = ROOT / "course_lib"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
MAX_LINES = 900


def module_files() -> dict[str, Path]:
    """``{"ddpm": path, "demos/ch1": path, ...}`` for every module (package ``__init__`` files left out)."""
    out = {}
    for p in sorted(LIB.rglob("*.py")):
        if p.name == "__init__.py":
            continue
        out[p.relative_to(LIB).with_suffix("").as_posix()] = p
    return out


def imports_of(name: str, path: Path) -> set[str]:
    """The course_lib modules ``name`` imports, anywhere in the file (also inside functions)."""
    package = name.split("/")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
                parts = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "course_lib":
                parts = node.module.split(".")[1:]
            else:
                continue
            for alias in node.names:
                candidates = ["/".join(parts + [alias.name]), "/".join(parts)]
                found.update(c for c in candidates if c in MODULES)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("course_lib."):
                    found.add(alias.name.split(".", 1)[1].replace(".", "/"))
    return found - {name}


MODULES = module_files()
GRAPH = {name: imports_of(name, path) for name, path in MODULES.items()}


def readme_table() -> dict[str, tuple[str, str]]:
    """``{module: (layer, chapter)}`` from the README table (ranges like ``demos/ch1 .. demos/ch4`` expanded)."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## How the code is organised", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or not cells[0].startswith("`"):
            continue
        names = re.findall(r"`([^`]+)`", cells[0])
        if len(names) == 2 and ".." in cells[0]:                       # demos/ch1 .. demos/ch4
            stem = names[0][:-1]
            for n in range(int(names[0][-1]), int(names[1][-1]) + 1):
                rows[f"{stem}{n}"] = (str(n), str(n))
        else:
            rows[names[0]] = (cells[1], cells[3])
    return rows


TABLE = readme_table()


def chapter_imports() -> dict[str, int]:
    """The first chapter whose notebook imports each module directly."""
    first = {}
    for nb in NOTEBOOKS:
        for node in ast.walk(ast.parse(nb.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "course_lib":
                parts = node.module.split(".")[1:]
                for alias in node.names:
                    for name in ("/".join(parts + [alias.name]), "/".join(parts)):
                        if name in MODULES:
                            first.setdefault(name, int(nb.name[:2]))
    return first


def test_the_readme_table_lists_every_module_with_its_first_chapter():
    assert sorted(TABLE) == sorted(MODULES), (
        f"README table vs course_lib: missing {sorted(set(MODULES) - set(TABLE))}, "
        f"extra {sorted(set(TABLE) - set(MODULES))}")
    first = chapter_imports()
    for name, (layer, chapter) in TABLE.items():
        want = str(first[name]) if name in first else "—"
        assert chapter == want, f"{name}: the README says chapter {chapter}, the notebooks first import it in {want}"
        assert layer in ("foundation", "tools", "1", "2", "3", "4"), f"{name}: unknown layer {layer!r}"


def rank(layer: str) -> int:
    return {"foundation": 0, "tools": 9}.get(layer, None) if not layer.isdigit() else int(layer)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_respect_the_layers(name):
    mine = rank(TABLE[name][0])
    for dep in GRAPH[name]:
        theirs = rank(TABLE[dep][0])
        assert mine == 9 or theirs <= mine, (
            f"{name} (layer {TABLE[name][0]}) imports {dep} (layer {TABLE[dep][0]}): a module may import only "
            f"foundations and modules of its own or an earlier chapter")
        if mine == 0:
            assert theirs == 0, f"foundation {name} imports {dep}"


def test_no_import_cycle():
    state = {}

    def visit(n, path):
        state[n] = "open"
        for d in sorted(GRAPH[n]):
            if state.get(d) == "open":
                cycle = path[path.index(d):] + [d]
                raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
            if d not in state:
                visit(d, path + [d])
        state[n] = "done"

    for n in sorted(GRAPH):
        if n not in state:
            visit(n, [n])


def test_cycles_are_detected():
    """The cycle check itself can fail: a made-up graph with a cycle is caught."""
    global GRAPH
    saved = GRAPH
    GRAPH = {"a": {"b"}, "b": {"c"}, "c": {"a"}}
    try:
        with pytest.raises(AssertionError, match="a -> b -> c -> a"):
            test_no_import_cycle()
    finally:
        GRAPH = saved


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_size(name):
    n = len(MODULES[name].read_text().splitlines())
    assert n <= MAX_LINES, f"{name} has {n} lines (at most {MAX_LINES}): split it by concept"


def test_package_docstring_names_every_module():
    doc = ast.get_docstring(ast.parse((LIB / "__init__.py").read_text()))
    named = set(re.findall(r"``(\w+)``", doc))
    top = {n.split("/")[0] for n in MODULES}
    assert named == top, f"course_lib/__init__.py: missing {sorted(top - named)}, not modules {sorted(named - top)}"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_call_no_private_library_function(nb):
    modules = {n.split("/")[-1] for n in MODULES} | {"demos", "exercises"}
    private = [m.group(0) for m in re.finditer(r"\b(\w+)\._\w+", nb.read_text()) if m.group(1) in modules]
    assert not private, f"{nb.name} calls private names of course_lib: {private}"
