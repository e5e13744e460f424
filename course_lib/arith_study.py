"""Chapter 4's fair controls on addition: every mechanism against the comparison a reviewer would ask for.

- **Speed/accuracy fronts.** A decoder setting is a point (tokens per forward, accuracy). A mechanism is faster
  only if its *front* (the points no other point beats on both axes) lies to the right of the control's front,
  not if one of its points beats one chosen control point. :func:`pareto_front`, :func:`tpf_at_accuracy` and
  :func:`speedup_at_equal_accuracy` read fronts.
- **CAP against SFT with the same steps.** LLaDA 2.0's confidence term (:mod:`course_lib.cap`) is trained for
  150 steps from ``add_base``; the control is ``add_sft``, the same 150 steps with the same batches and no
  confidence term. :func:`cap_sweep` trains the CAP weights of :data:`CAP_LAMBDAS` and measures every model's
  front on the same held-out prompts (``python -m course_lib.arith_study cap-sweep`` writes
  ``data/arith/cap_sweep.json``; the shipped ``add_sft`` and ``add_cap`` are two of its rows, so a chapter can
  recompute those rows and check the file).
"""
from __future__ import annotations

import argparse
import time

import torch

from . import arith, checkpoints, decoding
from .runtime import progress

CAP_LAMBDAS = (0.5, 1.0, 2.0, 4.0, 8.0)        # 2.0 is the shipped add_cap (dFactory's recommended beta)
FRONT_THRESHOLDS = (1.0, 0.99, 0.98, 0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.0)
CAP_SWEEP_PATH = arith.GRID_PATH.with_name("cap_sweep.json")


def _check_points(points) -> list[tuple[float, float]]:
    pts = [(float(t), float(a)) for t, a in points]
    if not pts:
        raise ValueError("need at least one (tpf, accuracy) point")
    return pts


def pareto_front(points) -> list[tuple[float, float]]:
    """The points ``(tpf, accuracy)`` that no other point beats on both axes (at least as fast and at least as
    accurate, better on one), sorted by TPF: accuracy falls as TPF rises along the front."""
    pts = sorted(set(_check_points(points)), key=lambda p: (-p[0], -p[1]))
    front, best = [], -float("inf")
    for tpf, acc in pts:                   # from the fastest down: keep a point only if it is more accurate
        if acc > best:
            front.append((tpf, acc))
            best = acc
    return front[::-1]


def tpf_at_accuracy(points, accuracy: float) -> float | None:
    """The highest TPF among the points with accuracy >= ``accuracy`` (None if no point is that accurate): the
    front read as a step function."""
    fast = [t for t, a in _check_points(points) if a >= accuracy]
    return max(fast) if fast else None


def speedup_at_equal_accuracy(points, control, tolerance: float = 1.0) -> list[dict]:
    """For each point of ``points``' front: its TPF against the control's best TPF at an accuracy within
    ``tolerance`` points below it (``ratio`` > 1: faster at equal accuracy; None where the control never gets
    that close)."""
    out = []
    for tpf, acc in pareto_front(points):
        ref = tpf_at_accuracy(control, acc - tolerance)
        out.append({"accuracy": acc, "tpf": tpf, "control_tpf": ref, "ratio": None if ref is None else tpf / ref})
    return out


def threshold_points(model, thresholds=FRONT_THRESHOLDS, n: int = 1000) -> list[list[float]]:
    """``[threshold, accuracy %, TPF]`` of threshold decoding (one block of the whole answer) at each threshold,
    on the first ``n`` held-out pairs, the same prompts for every threshold."""
    pairs = arith.problems("test")[:n]
    prompts, _ = arith.to_ids(pairs)
    rows = []
    for tau in thresholds:
        res = decoding.threshold_decode(model, prompts, arith.GEN_LENGTH, arith.GEN_LENGTH, tau, arith.MASK_ID,
                                        arith.EOS_ID)
        rows.append([tau, 100 * arith.grade(res.x, pairs).float().mean().item(), res.tpf])
    return rows


def cap_recipe(cap_lambda: float) -> dict:
    """The recipe of the CAP model with weight ``cap_lambda``: ``add_cap``'s with the weight changed; weight 0
    is ``add_sft``, the equal-steps control."""
    if cap_lambda == 0:
        return dict(arith.ARITH_RECIPES["add_sft"])
    return dict(arith.ARITH_RECIPES["add_cap"], cap_lambda=float(cap_lambda))


def cap_sweep(lambdas=CAP_LAMBDAS, n: int = 1000, show_progress: bool = True) -> dict:
    """Train one CAP model per weight (the shipped ``add_cap`` for 2.0) and measure the front of each, and of
    ``add_sft`` (weight 0), on the same ``n`` held-out prompts. Training: one thread, as the shipped recipes."""
    rows = {}
    for lam in progress([0.0, *lambdas], desc="CAP sweep") if show_progress else [0.0, *lambdas]:
        t0 = time.perf_counter()
        if lam == 0:
            model, source = arith.load_arith_model("add_sft"), "add_sft"
        elif cap_recipe(lam) == arith.ARITH_RECIPES["add_cap"]:
            model, source = arith.load_arith_model("add_cap"), "add_cap"
        else:
            model, _ = arith.train_arith(cap_recipe(lam), show_progress=False)
            source = "trained by cap_sweep"
        points = [[tau, round(acc, 2), round(tpf, 4)] for tau, acc, tpf in threshold_points(model, n=n)]
        rows[str(lam)] = {"cap_lambda": lam, "model": source, "seconds": round(time.perf_counter() - t0, 1),
                          "points": points}
    return {"n": n, "thresholds": list(FRONT_THRESHOLDS), "steps": arith.ARITH_RECIPES["add_cap"]["steps"],
            "runs": rows}


def main(argv=None) -> int:
    """``python -m course_lib.arith_study cap-sweep``: write data/arith/cap_sweep.json."""
    p = argparse.ArgumentParser(prog="python -m course_lib.arith_study", description=main.__doc__)
    p.add_argument("what", choices=["cap-sweep"])
    p.parse_args(argv)
    torch.set_num_threads(1)
    checkpoints.write_json(CAP_SWEEP_PATH, cap_sweep())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
