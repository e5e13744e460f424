"""The tolerant comparison of notebook outputs (``tools/tolerant.py``; ``./course test --tolerant``).

It must accept exactly what another CPU can change, a last printed digit (or a statistic within its standard
error), and nothing more: a number changed beyond its printed precision, or any changed word, fails. Tested on
strings, on every committed chapter (each number moved by one unit of its last digit passes, one number moved by
two units fails), and end to end through nbval on a small notebook in both modes.
"""
import random
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tolerant import NUMBER, last_digit_unit, outputs_agree, texts_agree

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("ref, new", [
    ("valid 91.5% of 1000", "valid 91.6% of 1000"),          # a rounding flip in the last digit
    ("ratio 9.9", "ratio 10.0"),                              # ... that adds a digit (and shifts a column)
    ("x   1.2e-15 y", "x 1.1e-15 y"),                         # runs of spaces count as one
    ("NELBO = 3.0888 ± 0.0372", "NELBO = 3.1200 ± 0.0400"),   # a statistic within its standard error
    ("loss 2.70 +- 0.05", "loss 2.66 +- 0.06"),
    ("-0.00 and +0.00", "+0.00 and -0.00"),
])
def test_accepts_what_another_cpu_can_change(ref, new):
    assert texts_agree(ref, new) == []


@pytest.mark.parametrize("ref, new, why", [
    ("valid 91.5%", "valid 91.7%", "91.5 became 91.7"),       # two units of the last digit
    ("steps 1000", "steps 1002", "1000 became 1002"),
    ("gap 1.2e-15", "gap 1.5e-15", "1.2e-15 became 1.5e-15"),
    ("NELBO = 3.0888 ± 0.0372", "NELBO = 3.1300 ± 0.0372", "one standard error"),
    ("NELBO = 3.0888 ± 0.0372", "NELBO = 3.0888 ± 0.0900", "one standard error"),
    ("the cat sat", "the dog sat", "the text differs"),
    ("a 1 b", "a 1 b 2", "differs"),
])
def test_rejects_anything_more(ref, new, why):
    problems = texts_agree(ref, new)
    assert problems and why in " ".join(problems)


def test_last_digit_unit():
    assert last_digit_unit("91.5") == pytest.approx(0.1) and last_digit_unit("1000") == 1
    assert last_digit_unit("1.2e-15") == pytest.approx(1e-16) and last_digit_unit("-3.") == 1


def _nudge(text: str, rng: random.Random, units: int = 1) -> str:
    """Move every number of ``text`` by ``units`` units of its last printed digit (one unit: up or down at
    random; more: up), keeping its format (sign, leading and trailing dot, exponent)."""
    def repl(m):
        num = m.group()
        mant, e, exp = re.split(r"([eE])", num) if re.search(r"[eE]", num) else (num, "", "")
        sign = mant[0] if mant[0] in "+-" else ""
        body = mant.lstrip("+-")
        decimals = len(body.partition(".")[2])
        step = units * 10.0 ** -decimals
        value = float(body) + (step if units > 1 or float(body) < step else rng.choice((-1, 1)) * step)
        if body.startswith(".") and value >= 1:        # ".9" must not become "1.0": keep the printed format
            value = float(body) - step
        out = f"{value:.{decimals}f}"
        if body.endswith("."):
            out += "."
        if body.startswith(".") and out.startswith("0."):
            out = out[1:]
        return sign + out + e + exp
    return NUMBER.sub(repl, text)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_committed_number_tolerates_its_last_digit_and_no_more(path):
    nb = nbformat.read(path, as_version=4)
    rng = random.Random(0)
    checked = 0
    for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        texts = [o for o in cell.outputs if o.output_type == "stream" and NUMBER.search(o.get("text", ""))]
        if not texts:
            continue
        nudged = [dict(o, text=_nudge(o["text"], rng)) for o in cell.outputs if o.output_type == "stream"]
        others = [o for o in cell.outputs if o.output_type != "stream"]
        assert outputs_agree(cell.outputs, nudged + others) == [], f"code cell {i}: a last-digit change was rejected"
        first = texts[0]
        pm = r"\s*(?:±|\+-)\s*"                                  # neither a statistic nor its standard error
        m = next(m for m in NUMBER.finditer(first["text"]) if not re.match(pm + r"\d", first["text"][m.end():])
                 and not re.search(pm + "$", first["text"][:m.start()]))
        moved = first["text"][:m.start()] + _nudge(m.group(), rng, units=3) + first["text"][m.end():]
        changed = [dict(o, text=moved) if o is first else o for o in cell.outputs]
        assert outputs_agree(cell.outputs, changed), f"code cell {i}: a number moved by 3 units was accepted"
        checked += 1
    assert checked >= 10, f"{path.name}: only {checked} cells print numbers"


NOTEBOOK = """{"cells": [{"cell_type": "code", "execution_count": 1, "id": "a", "metadata": {}, "source": "print('x =', 1.23)",
  "outputs": [{"name": "stdout", "output_type": "stream", "text": "x = REFERENCE\\n"}]}],
 "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
 "nbformat": 4, "nbformat_minor": 5}"""


@pytest.mark.parametrize("reference, mode, passes", [
    ("1.23", "strict", True), ("1.24", "strict", False), ("1.24", "tolerant", True), ("1.26", "tolerant", False)])
def test_both_modes_through_nbval(tmp_path, reference, mode, passes):
    """The chapters' own conftest, on a one-cell notebook whose committed output is ``x = <reference>``."""
    (tmp_path / "nb.ipynb").write_text(NOTEBOOK.replace("REFERENCE", reference))
    (tmp_path / "conftest.py").write_text((ROOT / "notebooks" / "conftest.py").read_text())
    env = {"PATH": "/usr/bin:/bin", "COURSE_COMPARE": mode, "PYTHONPATH": str(ROOT / "tools"),
           "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "pytest", "--nbval", "--nbval-current-env", "-p", "no:cacheprovider",
                           "-q", "nb.ipynb"], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert (proc.returncode == 0) == passes, proc.stdout[-2000:] + proc.stderr[-2000:]
