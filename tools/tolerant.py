"""Tolerant comparison of notebook outputs: the regression check for machines that do not reproduce the committed
outputs bit for bit (ARM, Apple silicon; ``./course test --tolerant``).

The committed chapters are executed on x86-64 CPUs, and their printed outputs are built to come out the same on
every x86-64 machine: round-off residuals are printed as the bound they are checked against, values at the
precision their claim needs, and sampling decisions never depend on the last bits of a float. Other CPUs can still
differ in a last printed digit. The tolerant mode accepts exactly that and nothing more:

- the text must be the same once every number is taken out (a run of spaces counts as one space, so a column
  may shift when a number gains a digit);
- every number must agree with the committed one to within one unit of its last printed digit (1 for ``1000``,
  0.1 for ``91.5``, 1e-16 for ``1.0e-15``), so a rounding flip passes and any larger change fails;
- a statistic printed with its standard error, ``x ± s`` (or ``x +- s``), may move by up to ``s``, and ``s`` by
  half of itself.

:func:`texts_agree` compares two strings; :func:`outputs_agree` compares two lists of notebook outputs the way
nbval does (per output type, in order). ``notebooks/conftest.py`` uses it when ``COURSE_COMPARE=tolerant``.
"""
from __future__ import annotations

import re
from collections import defaultdict

NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
PLUS_MINUS = re.compile(r"\s*(?:±|\+-|\+/-)\s*")


def last_digit_unit(number: str) -> float:
    """The value of one unit in the last printed digit of ``number`` (``"91.5"`` -> 0.1, ``"1.2e-15"`` -> 1e-16)."""
    mantissa, _, exponent = number.lower().lstrip("+-").partition("e")
    decimals = len(mantissa.partition(".")[2])
    return 10.0 ** (int(exponent or 0) - decimals)


def split_numbers(text: str) -> tuple[list[str], list[str]]:
    """``(skeleton, numbers)``: the text between the numbers (whitespace runs collapsed) and the numbers."""
    skeleton, numbers, last = [], [], 0
    for m in NUMBER.finditer(text):
        skeleton.append(re.sub(r"\s+", " ", text[last:m.start()]))
        numbers.append(m.group())
        last = m.end()
    skeleton.append(re.sub(r"\s+", " ", text[last:]))
    return skeleton, numbers


def texts_agree(reference: str, fresh: str) -> list[str]:
    """The problems that stop ``fresh`` from matching ``reference`` under the tolerant rule (empty: it matches)."""
    if reference == fresh:
        return []
    sk_ref, num_ref = split_numbers(reference)
    sk_new, num_new = split_numbers(fresh)
    if sk_ref != sk_new:
        bad = next(i for i, (a, b) in enumerate(zip(sk_ref + [""], sk_new + [""])) if a != b)
        return [f"the text differs: {sk_ref[bad][:80]!r} vs {sk_new[bad][:80]!r}" if bad < min(len(sk_ref), len(sk_new))
                else f"the text has {len(sk_ref)} parts in the reference and {len(sk_new)} now"]
    problems = []
    i = 0
    while i < len(num_ref):
        a, b = float(num_ref[i]), float(num_new[i])
        tol = max(last_digit_unit(num_ref[i]), last_digit_unit(num_new[i])) * 1.001    # 0.1%: float slack
        has_se = i + 1 < len(num_ref) and PLUS_MINUS.fullmatch(sk_ref[i + 1]) is not None
        if has_se:                                   # "x ± s": x may move by s, s by half of itself
            s_ref, s_new = float(num_ref[i + 1]), float(num_new[i + 1])
            s_tol = max(last_digit_unit(num_ref[i + 1]), last_digit_unit(num_new[i + 1]), 0.5 * abs(s_ref)) * 1.001
            if abs(a - b) > max(tol, abs(s_ref)) or abs(s_ref - s_new) > s_tol:
                problems.append(f"{num_ref[i]} ± {num_ref[i + 1]} became {num_new[i]} ± {num_new[i + 1]} "
                                f"(allowed: one standard error)")
            i += 2
            continue
        if abs(a - b) > tol:
            problems.append(f"{num_ref[i]} became {num_new[i]} (allowed: one unit of the last digit, {tol:.3g})")
        i += 1
    return problems


def _flatten(outputs, skip, sanitize) -> dict[str, list]:
    """Outputs as nbval compares them: per stream name or MIME type, the list of (sanitized) values in order."""
    flat = defaultdict(list)
    for out in outputs:
        if out.get("output_type") == "stream":
            name = out.get("name", "stdout")
            if flat[name]:
                flat[name][-1] += sanitize(out.get("text", ""))
            else:
                flat[name].append(sanitize(out.get("text", "")))
        elif out.get("output_type") == "error":
            flat["error"].append(f"{out.get('ename')}: {out.get('evalue')}")
        else:
            for key, value in out.get("data", {}).items():
                if key not in skip:
                    flat[key].append(sanitize(value) if isinstance(value, str) else value)
    return flat


def outputs_agree(reference: list, fresh: list, skip=(), sanitize=lambda s: s) -> list[str]:
    """Compare two lists of notebook outputs (dicts as in an ``.ipynb``) under the tolerant rule."""
    ref, new = _flatten(reference, skip, sanitize), _flatten(fresh, skip, sanitize)
    if set(ref) != set(new):
        return [f"output types differ: {sorted(ref)} vs {sorted(new)}"]
    problems = []
    for key in ref:
        if len(ref[key]) != len(new[key]):
            problems.append(f"{key}: {len(ref[key])} outputs in the reference, {len(new[key])} now")
            continue
        for a, b in zip(ref[key], new[key]):
            if isinstance(a, str) and isinstance(b, str):
                problems += [f"{key}: {p}" for p in texts_agree(a, b)]
            elif a != b:
                problems.append(f"{key}: the values differ")
    return problems
