"""Scaling at small scale: AR and masked-diffusion learning curves at three model sizes (chapter 3).

"Scaling up Masked Diffusion Models on Text" (Nie et al., ICLR 2025) fits scaling laws to AR models and MDMs and finds
the MDM needs about 16x the compute of the AR model to reach the same validation loss. We redo the measurement in
miniature: three Transformer sizes, each trained as an AR model and as an MDLM/LLaDA-style masked model on the course
language with the recipes of chapter 2 (same steps, batch and learning rate as ``lm_ar`` / ``lm_mdlm``), recording the
validation loss (nats per counted token: exact for AR, the NELBO upper bound for the MDM) against training compute.

Compute is counted as in Kaplan et al. (2020) and the SMDM paper: ``C = 6 N D`` FLOPs, ``N`` the
non-embedding parameters and ``D`` the tokens processed, in two ways: ``flops`` counts every position the
network reads (41 per canvas for the MDM, which reads its whole canvas, [PAD]s included; the AR reads up to the
longest sentence of each batch): what the hardware computes here. ``flops_tokens`` counts the real tokens only
(the words and the [EOS] of each training sentence), the same for both objectives: what a packed canvas, as
LLaDA and SMDM train on, would cost.

The largest size is the chapter 2 models ``lm_ar`` and ``lm_mdlm`` themselves (their learning curves are in
the manifest); the two smaller sizes are trained by :func:`run` (``python -m course_lib.scaling NAME``, one
thread each, at most about 8 minutes) and shipped as ``data/scaling/NAME.json``.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import numpy as np
import torch

from . import textlm
from .checkpoints import DATA_DIR, read_manifest
from .nn import Transformer

CURVES_DIR = DATA_DIR / "scaling"
SIZES = {                       # the two smaller sizes; "d128" is lm_ar / lm_mdlm (textlm._SMALL)
    "d64": dict(n_layer=2, n_head=2, d_model=64),
    "d96": dict(n_layer=3, n_head=3, d_model=96),
}
OBJECTIVES = {"ar": "lm_ar", "mdm": "lm_mdlm"}     # each size uses the recipe of its chapter-2 twin
RUNS = tuple(f"{k}_{s}" for s in SIZES for k in OBJECTIVES)


def _recipe(size: str, kind: str) -> dict:
    base = textlm.TEXT_RECIPES[OBJECTIVES[kind]]
    return dict(base, model=SIZES[size], seed=0)


def _positions_per_step(kind: str, batch_size: int, ids) -> float:
    """Mean number of positions the network reads per training step (see the module docstring)."""
    if kind == "mdm":
        return float(batch_size * ids.shape[1])
    lengths = (ids != textlm.PAD_ID).sum(1).numpy()
    rng = np.random.RandomState(0)             # E[max length of a batch], by simulation
    return float(batch_size * np.mean([lengths[rng.randint(0, len(lengths), batch_size)].max() for _ in range(2000)]))


def _curve(kind, hist_tokens, valid_nll, n_params, steps_per_eval, batch_size, ids):
    pos = _positions_per_step(kind, batch_size, ids)
    steps = np.arange(1, len(valid_nll) + 1) * steps_per_eval
    return {"n_params": int(n_params), "eval_steps": steps.tolist(), "tokens": list(map(int, hist_tokens)),
            "flops": (6.0 * n_params * pos * steps).tolist(), "valid_nll": [round(float(v), 4) for v in valid_nll],
            "flops_tokens": (6.0 * n_params * np.asarray(hist_tokens, dtype=float)).tolist()}


def run(name: str, directory: Path = CURVES_DIR, show_progress: bool = True) -> dict:
    """Train one smaller-size twin ``name`` (``"ar_d64"``, ``"mdm_d64"``, ``"ar_d96"`` or ``"mdm_d96"``) and
    write its curve to ``directory/<name>.json``."""
    kind, size = name.split("_") if name.count("_") == 1 else (None, None)
    if kind not in OBJECTIVES or size not in SIZES:
        raise ValueError(f"unknown scaling run {name!r}; known: {RUNS}")
    train, valid = textlm.language_ids("train"), textlm.language_ids("valid")
    r = _recipe(size, kind)
    model, hist = textlm.train_text_model(r, train, valid, show_progress=show_progress, desc=name)
    c = _curve(kind, hist["eval_tokens"], hist["valid_nll"], model.n_params(non_embedding=True),
               r["eval_every"], r["batch_size"], train)
    c.update(seconds=round(hist["seconds"], 1), command=f"python -m course_lib.scaling {name}",
             machine=f"{platform.machine()}, Python {platform.python_version()}, 1 thread", recipe=hist["recipe"])
    path = Path(directory) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(c, indent=1) + "\n")
    return c


def load_curves(directory: Path = CURVES_DIR) -> dict:
    """Every size's curves: ``{"ar_d64": {...}, "mdm_d64": ..., "ar_d128": ...}``; each has ``n_params``
    (non-embedding), ``flops``, ``tokens`` and ``valid_nll`` per evaluation. The d64 and d96 runs are read
    from ``directory``; d128 are the chapter 2 models, from their manifest entries."""
    out = {}
    for name in RUNS:
        path = Path(directory) / f"{name}.json"
        if not path.exists():
            raise ValueError(f"no scaling curve at {path}; make it with: python -m course_lib.scaling {name}")
        try:
            out[name] = c = json.loads(path.read_text())
            c["flops"], c["valid_nll"]
            c["flops_tokens"] = (6.0 * c["n_params"] * np.asarray(c["tokens"], dtype=float)).tolist()
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"{path} is not a scaling curve ({e}); remake it with: "
                             f"python -m course_lib.scaling {name}") from e
    manifest = read_manifest()
    train = textlm.language_ids("train")
    for kind, recipe_name in OBJECTIVES.items():
        if recipe_name not in manifest:
            raise ValueError(f"{recipe_name} is not in the manifest; retrain it with: ./course retrain {recipe_name}")
        entry, r = manifest[recipe_name], textlm.TEXT_RECIPES[recipe_name]
        n = Transformer(textlm.TextLMConfig.from_dict(dict(r)).transformer_config()).n_params(non_embedding=True)
        curve = entry["metrics"]["curve"]
        out[f"{kind}_d128"] = _curve(kind, curve["tokens"], curve["valid_nll"], n, r["eval_every"],
                                     r["batch_size"], train)
    return out


def frontier(curves: dict, kind: str, grid, key: str = "flops") -> np.ndarray:
    """The compute frontier of ``kind`` ("ar" or "mdm"): at each compute in ``grid``, the lowest loss any
    size reached with at most that compute (log-log interpolation along each curve); NaN where no curve
    reaches that compute. ``key``: the compute count, ``"flops"`` (positions processed) or ``"flops_tokens"``
    (real tokens)."""
    grid = np.asarray(grid, dtype=float)
    best = np.full(grid.shape, np.nan)
    for name, c in curves.items():
        if not name.startswith(kind + "_"):
            continue
        f, v = np.log(c[key]), np.log(c["valid_nll"])
        lg = np.log(grid)
        inside = (lg >= f[0]) & (lg <= f[-1])
        val = np.exp(np.interp(lg, f, v))
        val = np.where(inside, val, np.nan)
        best = np.fmin(best, val)
    ok = ~np.isnan(best)
    best[ok] = np.minimum.accumulate(best[ok])       # what was reached with at most that compute stays reached
    return best


def compute_factor(curves: dict, points: int = 200, key: str = "flops") -> dict:
    """How much more compute the MDM frontier needs to reach each loss that both frontiers reach, compute counted
    by ``key`` (:func:`frontier`).

    Returns ``losses``, ``factor`` (C_MDM(loss) / C_AR(loss), log-interpolated) and ``median``."""
    if key not in ("flops", "flops_tokens"):
        raise ValueError(f"key must be 'flops' or 'flops_tokens', got {key!r}")
    lo = min(min(c[key]) for c in curves.values())
    hi = max(max(c[key]) for c in curves.values())
    grid = np.geomspace(lo, hi, points)
    fa, fm = frontier(curves, "ar", grid, key), frontier(curves, "mdm", grid, key)

    def compute_at(front, loss):
        ok = ~np.isnan(front)
        g, f = grid[ok], np.minimum.accumulate(front[ok])          # best-so-far: non-increasing in compute
        if loss < f[-1] or loss > f[0]:
            return np.nan
        i = int(np.argmax(f <= loss))
        if i == 0:
            return g[0]
        # log-linear interpolation between the grid points that bracket the loss
        w = (np.log(f[i - 1]) - np.log(loss)) / max(np.log(f[i - 1]) - np.log(f[i]), 1e-12)
        return float(np.exp(np.log(g[i - 1]) + w * (np.log(g[i]) - np.log(g[i - 1]))))

    lo_loss = max(np.nanmin(fa), np.nanmin(fm))
    hi_loss = min(np.nanmax(fa), np.nanmax(fm))
    losses = np.linspace(lo_loss, hi_loss, 25)[1:-1]
    factor = np.array([compute_at(fm, L) / compute_at(fa, L) for L in losses])
    return {"losses": losses, "factor": factor, "median": float(np.nanmedian(factor))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m course_lib.scaling", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", default=list(RUNS), help=f"runs to train (default all: {', '.join(RUNS)})")
    torch.set_num_threads(1)
    for name in p.parse_args(argv).names:
        c = run(name)
        print(f"{name}: {c['seconds']:.0f} s, final valid NLL {c['valid_nll'][-1]:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
