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
"""
from __future__ import annotations

import json
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


def _train_and_grade(args) -> dict:
    family, fraction = args
    name = MODELS[family]
    full = dict(textlm.TEXT_RECIPES[name], seed=0)                 # the shipped recipe (seed 0, as it was trained)
    recipe = dict(full, steps=int(round(full["steps"] * fraction)))
    recipe["eval_every"] = recipe["steps"]                          # one validation, at the end
    tok = Tokenizer.for_language()
    train, valid = textlm.language_ids("train", tok), textlm.language_ids("valid", tok)
    if name in textlm.PACKED_RECIPES:                              # the shipped run's packed data pool
        train = textlm.pack_canvases(train, full["steps"] * full["batch_size"], seed=0)
        valid = textlm.pack_canvases(valid, full.get("eval_sentences", 500), seed=1)
    t0 = time.perf_counter()
    model, hist = textlm.train_text_model(recipe, train, valid, show_progress=False, desc=f"{name} x{fraction}",
                                          num_threads=1)
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
            "length_ratio": round(v["length_ratio"], 4), "n": v["n"]}


def run(path: Path = RESULTS) -> dict:
    """Train and grade every (model, fraction) in two processes; write ``path``."""
    jobs = [(f, x) for x in FRACTIONS for f in MODELS]
    with ProcessPoolExecutor(max_workers=2) as pool:
        rows = list(pool.map(_train_and_grade, jobs))
    out = {"about": __doc__.split("\n\n")[0], "fractions": list(FRACTIONS), "n_samples": N_SAMPLES, "rows": rows}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(out, indent=1) + "\n")
    return out


def load(path: Path = RESULTS) -> dict:
    """The stored study; ``ValueError`` naming the command if it is missing."""
    if not Path(path).exists():
        raise ValueError(f"{path} does not exist; make it with: python -m course_lib.compute_study")
    return json.loads(Path(path).read_text())


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
