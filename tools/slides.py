"""Slide metadata for the chapters, so a lecturer can present a chapter as slides with live widgets.

Usage:  python tools/slides.py [--check] [NN ...]      (default: every chapter)

The slides are shown by the JupyterLab extension RISE (``jupyterlab-rise``, a pinned dependency): open a
chapter in ``./course lab``, run its cells, then press Alt+R (or the "Render as slides" toolbar button);
the demos stay live, since the slides are the notebook itself. RISE reads the standard
``slideshow.slide_type`` cell metadata, which this tool derives from the markdown:

- a ``#`` or ``##`` heading (the title, each numbered section) starts a **slide**;
- a ``###`` heading, a demo (markdown starting ``**Demo``) and an exercise (``**Your turn``) start a
  **subslide** (RISE's vertical slides: down arrow), so every demo gets a slide of its own;
- every other cell continues the current (sub)slide: it carries no slideshow metadata. A hand-made type
  other than slide/subslide (fragment, skip, notes) on such a cell is kept.

It changes only cell metadata, in the ``.ipynb`` and in its jupytext twin ``.py`` (written by jupytext,
whose header keeps ``slideshow`` in the ``# %%`` lines), and it checks that: any other difference stops it
before a file is written. Running it twice changes nothing. It never executes a notebook.
"""
from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
OURS = ("slide", "subslide")
_SLIDE = re.compile(r"^#{1,2}\s")
_SUBSLIDE = re.compile(r"^(###\s|\*\*Demo\b|\*\*Your turn\b)")


def slide_type(cell_type: str, source: str) -> str | None:
    """The slide type a cell starts (``"slide"``, ``"subslide"``) or None (it continues the current one)."""
    if cell_type != "markdown":
        return None
    first = source.lstrip("\n").split("\n", 1)[0]
    if _SLIDE.match(first):
        return "slide"
    if _SUBSLIDE.match(first):
        return "subslide"
    return None


def apply_slides(nb) -> int:
    """Set the derived slide types on ``nb``'s cells in place; return how many cells changed."""
    changed = 0
    for cell in nb.cells:
        want = slide_type(cell.cell_type, cell.source)
        have = cell.metadata.get("slideshow", {}).get("slide_type")
        if want is not None and have != want:
            cell.metadata["slideshow"] = {"slide_type": want}
            changed += 1
        elif want is None and have in OURS:
            del cell.metadata["slideshow"]
            changed += 1
    return changed


class MetadataOnlyError(ValueError):
    """Writing the slide metadata would change more than cell metadata."""


def _without_cell_metadata(nb: dict) -> dict:
    nb = copy.deepcopy(nb)
    for cell in nb["cells"]:
        cell["metadata"] = {}
    return nb


def _dump(nb) -> str:
    """The notebook's file text, as Jupyter and nbconvert write it (nbformat's layout, a final newline)."""
    return nbformat.writes(nb) + "\n"


def update(ipynb: Path, check: bool = False) -> int:
    """Apply the slide types to ``ipynb`` and its ``.py`` twin; return the number of cells changed
    (``check``: write nothing)."""
    py = ipynb.with_suffix(".py")
    raw = ipynb.read_text(encoding="utf-8")
    nb = nbformat.reads(raw, as_version=4)
    if _dump(nb) != raw:
        raise MetadataOnlyError(f"{ipynb.name} is not in nbformat's own layout; rewriting it would change more "
                                "than metadata")
    before = nbformat.from_dict(copy.deepcopy(nb))
    changed = apply_slides(nb)
    if _without_cell_metadata(before) != _without_cell_metadata(nb):
        raise MetadataOnlyError(f"{ipynb.name}: more than cell metadata would change")
    new_raw = _dump(nb)
    old_py = py.read_text(encoding="utf-8")
    new_py = jupytext.writes(nb, fmt="py:percent")          # the pairing's filters come from nb's metadata
    old_lines, new_lines = old_py.splitlines(), new_py.splitlines()
    if len(old_lines) != len(new_lines):
        raise MetadataOnlyError(f"{py.name}: jupytext would add or remove lines; sync the pair first "
                                f"(jupytext --sync notebooks/{ipynb.name})")
    for i, (a, b) in enumerate(zip(old_lines, new_lines)):
        if a != b and not (a.startswith("# %%") and b.startswith("# %%")):
            raise MetadataOnlyError(f"{py.name}, line {i + 1}: jupytext would change {a!r} into {b!r}; only "
                                    f"'# %%' cell lines may change")
    if not check and changed:
        ipynb.write_text(new_raw, encoding="utf-8")
        py.write_text(new_py, encoding="utf-8")
    if not check and not changed and new_py != old_py:
        py.write_text(new_py, encoding="utf-8")               # the .py lagged behind the .ipynb's metadata
        changed = sum(a != b for a, b in zip(old_lines, new_lines))
    return changed


def chapters(selected=()) -> list[Path]:
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if selected:
        wanted = {s.zfill(2) for s in selected}
        paths = [p for p in paths if p.name[:2] in wanted]
        if len(paths) != len(wanted):
            raise SystemExit(f"error: no such chapter among {sorted(wanted)}")
    return paths


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("chapters", nargs="*", help="chapter numbers (default: all)")
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if a chapter would change")
    args = ap.parse_args(argv)
    stale = 0
    for path in chapters(args.chapters):
        try:
            n = update(path, check=args.check)
        except MetadataOnlyError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        stale += n
        verb = "would change" if args.check else "changed"
        print(f"{path.name}: {n} cells {verb}" if n else f"{path.name}: slide metadata up to date")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
