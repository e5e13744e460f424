"""Re-freeze the running environment into requirements-lock.txt and environment.yml.

Usage (normally through ``./course lock``):

    python tools/lock.py           # rewrite both files
    python tools/lock.py --check   # write nothing; exit 1 if either file would change

requirements-lock.txt: its header comment lines, then ``pip freeze --exclude-editable`` of this
interpreter, with torch's local version tag dropped (``torch==2.13.0``, not ``2.13.0+cpu``: the
plain pin is what pip resolves to the CPU build here) and the course's own package left out.

Python 3.10: the course supports Python 3.10+, so every pinned version must also install there.
After freezing, the pins (all but torch, whose wheel is platform-specific) are resolved once more
for Python 3.10 with ``pip install --dry-run --python-version 3.10``; a pin that has dropped 3.10
stops the lock with an error, and the backports that only 3.10 needs (tomli, exceptiongroup, ...)
are appended with a ``python_version < "3.11"`` marker.

environment.yml: the entries of its ``pip:`` list are replaced by one exact pin per direct
dependency of pyproject.toml ([project].dependencies and the extras, versions taken from the new lock), then
``-c requirements-lock.txt`` (the other packages at their locked versions, as in the pip route)
and ``-e .[lab,test,lecture]``; everything else in the file is kept.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
OWN_PACKAGE = canonicalize_name("course_lib")
DROP_LOCAL_TAG = {canonicalize_name(n) for n in ("torch", "torchvision", "torchaudio")}


def direct_dependencies(pyproject: Path) -> list[Requirement]:
    """The requirements listed in pyproject.toml: [project].dependencies, then every optional-dependency group."""
    with open(pyproject, "rb") as f:
        project = tomllib.load(f)["project"]
    reqs = list(project["dependencies"])
    for group in project.get("optional-dependencies", {}).values():
        reqs += group
    return [Requirement(r) for r in reqs]


def freeze() -> list[str]:
    """``pip freeze --exclude-editable`` of this interpreter, cleaned for the lock."""
    out = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
                         check=True, capture_output=True, text=True).stdout
    lines = []
    for line in out.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, sep, version = line.partition("==")
        if not sep:
            raise SystemExit(f"error: pip freeze gave {line!r}, not name==version; "
                             "install that package from an index, not from a path or URL")
        key = canonicalize_name(name)
        if key == OWN_PACKAGE:
            continue
        if key in DROP_LOCAL_TAG:
            version = version.split("+")[0]
        lines.append(f"{name}=={version}")
    return lines


def py310_backports(pins: list[str]) -> list[str]:
    """Resolve the pins for Python 3.10; return the extra packages 3.10 needs, with a marker."""
    names = {canonicalize_name(p.split("==")[0]) for p in pins}
    reqs = [p for p in pins if canonicalize_name(p.split("==")[0]) not in DROP_LOCAL_TAG]
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        proc = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
                               "--python-version", "3.10", "--only-binary=:all:", "--target", str(Path(tmp) / "t"),
                               "--report", str(report), "-q", *reqs], capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit("error: the locked versions do not all install on Python 3.10 (the course's "
                             "minimum); pin older releases in pyproject.toml.\n" + proc.stderr[-2000:])
        installed = json.loads(report.read_text())["install"]
    extra = sorted((i["metadata"]["name"], i["metadata"]["version"]) for i in installed
                   if canonicalize_name(i["metadata"]["name"]) not in names)
    return [f'{n}=={v} ; python_version < "3.11"' for n, v in extra]


def lock_text(old: str, pins: list[str]) -> str:
    """The new requirements-lock.txt: the old file's leading comment lines, then the pins."""
    header = []
    for line in old.splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    return "\n".join(header + pins) + "\n"


def pinned_direct(deps: list[Requirement], pins: list[str]) -> list[str]:
    """``name==version`` for each direct dependency, with the lock's version; checks ranges."""
    versions = {canonicalize_name(p.split("==")[0]): p.split("==")[1] for p in pins}
    out = []
    for req in deps:
        version = versions.get(canonicalize_name(req.name))
        if version is None:
            raise SystemExit(f"error: {req.name} (pyproject.toml) is not installed; run ./course setup")
        if not req.specifier.contains(version, prereleases=True):
            raise SystemExit(f"error: installed {req.name}=={version} is outside pyproject.toml's {req}")
        out.append(f"{req.name}=={version}")
    return out


def environment_text(old: str, pip_entries: list[str]) -> str:
    """``old`` (environment.yml) with the entries of its ``- pip:`` list replaced."""
    lines = old.splitlines()
    try:
        start = next(i for i, l in enumerate(lines) if l.strip() == "- pip:")
    except StopIteration:
        raise SystemExit("error: environment.yml has no '- pip:' list") from None
    pip_indent = len(lines[start]) - len(lines[start].lstrip())
    end = start + 1
    while end < len(lines) and (not lines[end].strip()
                                or len(lines[end]) - len(lines[end].lstrip()) > pip_indent):
        end += 1
    item = " " * (pip_indent + 4) + "- "
    new = [item + e for e in pip_entries + ["-c requirements-lock.txt", "-e .[lab,test,lecture]"]]
    return "\n".join(lines[:start + 1] + new + lines[end:]) + "\n"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    lock_path, env_path = ROOT / "requirements-lock.txt", ROOT / "environment.yml"
    pins = freeze()
    new_files = {
        lock_path: lock_text(lock_path.read_text(), pins + py310_backports(pins)),
        env_path: environment_text(env_path.read_text(),
                                   pinned_direct(direct_dependencies(ROOT / "pyproject.toml"), pins)),
    }
    changed = [p for p, text in new_files.items() if p.read_text() != text]
    for path in changed:
        print(f"{path.name}: {'would change' if check else 'updated'}")
    if not check:
        for path in changed:
            path.write_text(new_files[path])
    if not changed:
        print("requirements-lock.txt and environment.yml are up to date")
    return 1 if check and changed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
