"""Sample validity against training compute, AR against MDLM (chapter 2).

A likelihood curve says how fast a model learns; validity (the exact validator's verdict on 1,000 samples) says
what it writes. This study retrains chapter 2's AR model (``lm_ar``) and its packed MDLM (``lm_mdlm_packed``) with
the same recipes cut to 1/8, 1/4 and 1/2 of their steps (each with its own full warmup and cosine schedule, so every
budget ends annealed), samples 1,000 sentences from each (AR: ancestral, temperature 1; MDLM: 41 steps, random
order), and grades them. The full budgets are the shipped models, graded from the chapter's sample bank. Compute is
counted as training *position passes*: steps x batch x canvas positions (both models: batch 64, 41 positions, the
same Transformer, so a position pass costs the same).

``python -m course_lib.compute_study`` runs it (about 20 minutes on 2 cores: the two models train side by side,
one thread each) and writes ``data/scaling/validity_compute.json``; the chapter reads that file. The models are not
kept.

**Shape.** Is the packed MDLM's shape (4 layers x 128 wide) the best use of its budget? ``--shapes`` trains the same
recipe with 8 layers x 96 (``DEEP``, 0.95M parameters against 0.88M) twice, graded the same way: with the shipped
steps (equal position passes; a deeper, narrower step costs about as many multiply-adds) and with the steps that
take the shipped run's training time on 2 threads (on a CPU its step takes longer: eight thin layers use the
cores less well than four wide ones; the step times are measured first and stored). It writes the two rows into the
same file (``shape_rows``; about 30 minutes: the step times first, on 2 threads, then both runs side by side on one
thread each).
"""
from __future__ import annotations

import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from . import language, textlm
from .tokenizer import Tokenizer

RESULTS = Path(__file__).resolve().parent.parent / "data" / "scaling" / "validity_compute.json"
FRACTIONS = (0.125, 0.25, 0.5)
MODELS = {"AR": "lm_ar", "MDLM": "lm_mdlm_packed"}
N_SAMPLES = 1000
CANVAS = 41


def passes(steps: int, batch_size: int) -> int:
    """Training position passes: steps x batch x canvas positions."""
    return steps * batch_size * CANVAS


DEEP = dict(n_layer=8, n_head=4, d_model=96)
TIMING_STEPS = 300                         # steps timed per shape, on 2 threads, to set the equal-time budget


def _train_and_grade(args) -> dict:
    """``args``: ``(family, fraction)``, or ``(family, fraction, model shape, threads)``."""
    family, fraction, model_shape, threads = args if len(args) == 4 else (*args, None, 1)
    name = MODELS[family]
    full = dict(textlm.TEXT_RECIPES[name], seed=0)                 # the shipped recipe (seed 0, as it was trained)
    recipe = dict(full, steps=int(round(full["steps"] * fraction)))
    if model_shape is not None:
        recipe["model"] = dict(model_shape)
    recipe["eval_every"] = recipe["steps"]                          # one validation, at the end
    tok = Tokenizer.for_language()
    train, valid = textlm.language_ids("train", tok), textlm.language_ids("valid", tok)
    if name in textlm.PACKED_RECIPES:                              # the shipped run's packed data pool
        train = textlm.pack_canvases(train, full["steps"] * full["batch_size"], seed=0)
        valid = textlm.pack_canvases(valid, full.get("eval_sentences", 500), seed=1)
    t0 = time.perf_counter()
    model, hist = textlm.train_text_model(recipe, train, valid, show_progress=False, desc=f"{name} x{fraction}",
                                          num_threads=threads)
    seconds = time.perf_counter() - t0
    torch.set_num_threads(1)
    if family == "AR":
        samples = textlm.sample_ar(model, N_SAMPLES, tok, seed=31, batch_size=20)
    else:
        samples = textlm.sample_mdlm(model, N_SAMPLES, tok, steps=CANVAS, seed=32, batch_size=20)
    v = textlm.sample_validity(samples, language.read_split("train"))
    return {"family": family, "model": name, "fraction": fraction, "steps": recipe["steps"],
            "position_passes": passes(recipe["steps"], recipe["batch_size"]), "train_seconds": round(seconds, 1),
            "valid_nll": round(hist["valid_nll"][-1], 4), "valid_fraction": v["valid_fraction"],
            "length_ratio": round(v["length_ratio"], 4), "n": v["n"],
            **({"shape": dict(model_shape), "n_params": model.n_params(), "threads": threads} if model_shape else {})}


def run(path: Path = RESULTS) -> dict:
    """Train and grade every (model, fraction) in two processes; write ``path``."""
    jobs = [(f, x) for x in FRACTIONS for f in MODELS]
    with ProcessPoolExecutor(max_workers=2) as pool:
        rows = list(pool.map(_train_and_grade, jobs))
    out = {"about": __doc__.split("\n\n")[0], "fractions": list(FRACTIONS), "n_samples": N_SAMPLES, "rows": rows}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(out, indent=1) + "\n")
    return out


def step_seconds(model_shape: dict | None, steps: int = TIMING_STEPS, threads: int = 2) -> float:
    """Seconds per training step of the packed MDLM recipe with this shape (None: the shipped one)."""
    full = dict(textlm.TEXT_RECIPES[MODELS["MDLM"]], seed=0)
    recipe = dict(full, steps=steps, eval_every=10 ** 9, **({"model": dict(model_shape)} if model_shape else {}))
    tok = Tokenizer.for_language()
    train = textlm.pack_canvases(textlm.language_ids("train", tok), steps * full["batch_size"], seed=0)
    _, hist = textlm.train_text_model(recipe, train, None, show_progress=False, num_threads=threads)
    return hist["seconds"] / steps


def run_shapes(path: Path = RESULTS) -> dict:
    """Time a training step of both shapes (2 threads, nothing else running), then train and grade ``DEEP`` with
    the shipped steps and with the steps of equal training time, side by side on one thread each; add the rows to
    ``path`` as ``shape_rows`` and the step times as ``step_seconds``."""
    shipped = textlm.TEXT_RECIPES[MODELS["MDLM"]]["steps"]
    t = {"4x128": step_seconds(None), "8x96": step_seconds(DEEP)}
    equal_time = int(round(shipped * t["4x128"] / t["8x96"], -1))
    jobs = [("MDLM", steps / shipped, DEEP, 1) for steps in (shipped, equal_time)]
    # fresh interpreters: a process forked after this one has run torch's thread pool can hang in it
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
        rows = list(pool.map(_train_and_grade, jobs))
    out = load(path)
    out["step_seconds"] = {k: round(v, 4) for k, v in t.items()}
    out["shape_rows"] = rows
    Path(path).write_text(json.dumps(out, indent=1) + "\n")
    return out


def load(path: Path = RESULTS) -> dict:
    """The stored study; ``ValueError`` naming the command if it is missing."""
    if not Path(path).exists():
        raise ValueError(f"{path} does not exist; make it with: python -m course_lib.compute_study")
    return json.loads(Path(path).read_text())


if __name__ == "__main__":
    import sys
    print(json.dumps(run_shapes() if sys.argv[1:] == ["--shapes"] else run(), indent=1))
