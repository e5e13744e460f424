"""Artefacts: the results of the chapters' heavy sampling and evaluation runs, shipped in ``data/artefacts/``.

A chapter that needs 1,000 samples of a model does not draw them while you read. It loads a *bank* that
``./course artefacts NAME`` drew with the course's own code and the shipped checkpoints, and grades it live (with
the language's exact validator, or the chapter's metrics). Each artefact is one ``.npz`` file: its arrays and a
small record of the checkpoints it was drawn from (their sha256), how long it took and on what machine. Loading
refuses an artefact whose checkpoints are no longer the shipped ones, and names the command that remakes it.

Every artefact is drawn in batches, one after the other from one seeded generator, so its first batch can be
drawn again cheaply: ``./course artefacts --check NAME`` (run by ``tests/test_artefacts.py`` for every artefact)
redraws the first batch with the shipped code and checkpoints and compares it with the stored one, bit for bit.
Artefacts are made and checked in the course's pinned numerical mode (:data:`runtime.PINNED_ENV`), in which every
x86-64 CPU with AVX2 computes the same floats; the command sets it up by itself.

    ./course artefacts --list
    ./course artefacts ch2_samples            # (re)make one artefact (or --chapter 2, or --all)
    ./course artefacts --check ch2_samples    # redraw its first batch and compare
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import (checkpoints, ddpm, decoding, editing, language, llada, mlp, recipes, runtime, schedules, sde,
               tasks, textlm, toy2d)

ARTEFACT_DIR = checkpoints.DATA_DIR / "artefacts"
TEXT_BATCH = 20            # rows per batch of the text-sample banks (the first batch is what --check redraws)


class ArtefactError(ValueError):
    """An artefact is unknown, missing, or was made from checkpoints that are no longer the shipped ones."""


@dataclass(frozen=True)
class Artefact:
    """A registered artefact. ``make(first_batch)`` returns its arrays; with ``first_batch=True`` only the first
    batch of every array (the rows that ``check`` compares with the stored ones)."""
    name: str
    chapter: int
    about: str
    checkpoints: tuple[str, ...]
    make: Callable[[bool], dict]


REGISTRY: dict[str, Artefact] = {}


def artefact(name: str, chapter: int, about: str, uses: tuple[str, ...]):
    """Register the decorated ``make(first_batch) -> {key: array}`` function as artefact ``name``."""
    def register(make):
        REGISTRY[name] = Artefact(name, chapter, about, tuple(uses), make)
        return make
    return register


class Bank(dict):
    """An artefact's arrays (a dict ``{key: np.ndarray}``) and its record ``meta``."""

    def __init__(self, arrays: dict, meta: dict):
        super().__init__(arrays)
        self.meta = meta

    def describe(self) -> str:
        """One line: what the artefact is and how it was made."""
        m = self.meta
        made = ", ".join(f"{k} (sha256 {v[:10]}...)" for k, v in m["checkpoints"].items())
        return (f"artefact {m['name']}: {m['about']}; made by `./course artefacts {m['name']}` in "
                f"{m['seconds']:.0f} s on {m['threads']} threads, from {made}")


def entry(name: str) -> Artefact:
    if name not in REGISTRY:
        raise ArtefactError(f"unknown artefact {name!r}; known: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def path_of(name: str) -> Path:
    return ARTEFACT_DIR / f"{name}.npz"


def load(name: str) -> Bank:
    """The shipped artefact ``name``, after checking that it was made from the shipped checkpoints."""
    e = entry(name)
    path = path_of(name)
    if not path.exists():
        raise ArtefactError(f"artefact file {path} is missing; make it with: ./course artefacts {name}")
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files if k != "__meta__"}
        meta = json.loads(str(z["__meta__"]))
    shipped = checkpoints.read_manifest()
    for ck in e.checkpoints:
        if meta["checkpoints"].get(ck) != shipped.get(ck, {}).get("sha256"):
            raise ArtefactError(f"artefact {name} was made from another {ck} checkpoint than the shipped one; "
                                f"remake it with: ./course artefacts {name}")
    return Bank(arrays, meta)


def _as_arrays(out: dict) -> dict:
    return {k: (v.cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)) for k, v in out.items()}


def make(name: str) -> Bank:
    """Run artefact ``name`` in full and write ``data/artefacts/<name>.npz``. Call it in the pinned mode
    (``./course artefacts NAME`` does)."""
    e = entry(name)
    if runtime.pinnable() and not runtime.pinned():
        raise ArtefactError("artefacts are made in the pinned numerical mode: run ./course artefacts NAME")
    torch.set_num_threads(runtime.PINNED_THREADS)
    t0 = time.perf_counter()
    arrays = _as_arrays(e.make(False))
    seconds = time.perf_counter() - t0
    shipped = checkpoints.read_manifest()
    meta = {"name": name, "chapter": e.chapter, "about": e.about, "seconds": round(seconds, 1),
            "threads": runtime.PINNED_THREADS, "pinned": runtime.pinned(),
            "checkpoints": {ck: shipped[ck]["sha256"] for ck in e.checkpoints},
            "made_on": f"{platform.machine()} CPU, torch {torch.__version__}", "date": time.strftime("%Y-%m-%d")}
    ARTEFACT_DIR.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path_of(name), __meta__=np.array(json.dumps(meta)), **arrays)
    return Bank(arrays, meta)


def check(name: str) -> list[str]:
    """Redraw the first batch of artefact ``name`` and compare it with the stored rows; return the problems
    (empty: identical). In the pinned mode the comparison is exact. Elsewhere (ARM, or an x86 CPU without AVX2)
    floats may differ in their last bits, which can change a rare sample: there at least 90% of the rows must be
    identical and floats must agree to 1e-4."""
    stored, fresh = load(name), _as_arrays(entry(name).make(True))
    exact = runtime.pinned()
    problems = []
    for key, a in fresh.items():
        if key not in stored:
            problems.append(f"{key}: not in the stored artefact")
            continue
        b = stored[key][:len(a)]
        if a.dtype.kind == b.dtype.kind == "U":                 # text: the width of the dtype does not matter
            a, b = a.astype(object), b.astype(object)
        if a.shape != b.shape or a.dtype != b.dtype:
            problems.append(f"{key}: shape/dtype {a.shape} {a.dtype} vs stored {b.shape} {b.dtype}")
        elif exact and not np.array_equal(a, b):
            rows = int((a.reshape(len(a), -1) != b.reshape(len(b), -1)).any(1).sum())
            problems.append(f"{key}: {rows} of {len(a)} rows differ")
        elif not exact and np.issubdtype(a.dtype, np.floating) and not np.allclose(a, b, rtol=1e-4, atol=1e-4):
            problems.append(f"{key}: floats differ by up to {float(np.abs(a - b).max()):.2e}")
        elif not exact and not np.issubdtype(a.dtype, np.floating):
            same = float((a.reshape(len(a), -1) == b.reshape(len(b), -1)).all(1).mean())
            if same < 0.9:
                problems.append(f"{key}: only {same:.0%} of the rows are identical")
    return problems


# ------------------------------------------------------------------------------------------- chapter 1
TOY_POINTS, TOY_BATCH = 2000, 250     # 2-D sample banks: 2,000 points in 8 batches of 250


def _toy_batches(run, seed: int, first_batch: bool) -> torch.Tensor:
    """``run(n, generator)`` for batches of TOY_BATCH points, drawn in turn from one generator seeded ``seed``."""
    g = torch.Generator().manual_seed(seed)
    return torch.cat([run(TOY_BATCH, g) for _ in range(1 if first_batch else TOY_POINTS // TOY_BATCH)])


@artefact("ch1_samplers", 1, "samples of the 2-D mixture model from four samplers and at several step counts",
          ("ddpm2d_gmm",))
def ch1_samplers(first_batch: bool) -> dict:
    """2,000 points per run, in batches of 250 (:func:`_toy_batches`): for DDPM (1,000 steps), DDIM (50), the
    reverse SDE (1,000) and the probability-flow ODE (100 Heun steps), the final samples with the shipped model's
    score (seed 31; and its trajectory, 51 frames in float16, ``(points, frames, 2)``) and with the mixture's exact
    score (seed 30); and DDIM at 10-250 steps with eta = 1 ("DDPM") and at 10-1,000 with eta = 0 ("DDIM"), seed 0."""
    model = checkpoints.load_model("ddpm2d_gmm", mlp.build)
    gmm, lin, vp, clip = toy2d.course_gmm(), schedules.linear_schedule(1000), sde.VPSDE(), recipes.TOY_CLIP
    exact = {"discrete": toy2d.exact_eps_model(gmm, lambda t: lin.alpha_bars[int(round(t))]),
             "continuous": toy2d.exact_eps_model(gmm, lambda t: vp.alpha_bar(t / 1000.0))}
    runs = {"DDPM": ("discrete", lambda m, n, g: ddpm.ddpm_sampler(m, (n, 2), lin, generator=g, clip_x0=clip)),
            "DDIM": ("discrete", lambda m, n, g: ddpm.ddim_sampler(m, (n, 2), lin, steps=50, generator=g, clip_x0=clip)),
            "reverse SDE": ("continuous", lambda m, n, g: sde.reverse_sde_sampler(m, (n, 2), vp, n_steps=1000, generator=g)),
            "PF-ODE": ("continuous", lambda m, n, g: sde.pf_ode_sampler(m, (n, 2), vp, n_steps=100, generator=g))}
    out = {}
    for name, (time_kind, make) in runs.items():
        out[f"exact/{name}"] = _toy_batches(lambda n, g: ddpm.final(make(exact[time_kind], n, g)), 30, first_batch)
        frames = _toy_batches(lambda n, g: ddpm.trajectory(make(model, n, g), keep=51)[1].transpose(0, 1), 31,
                              first_batch)
        out[f"learned/{name}"], out[f"trajectory/{name}"] = frames[:, -1], frames.to(torch.float16)
        out[f"times/{name}"] = torch.tensor(ddpm.trajectory(make(model, 1, torch.Generator()), keep=51)[0])
    for steps in (10, 20, 50, 100, 250, 1000):
        for name, eta in (("DDPM", 1.0), ("DDIM", 0.0)):
            if name == "DDPM" and steps == 1000:         # the chapter runs this one live
                continue
            out[f"steps/{name}/{steps}"] = _toy_batches(
                lambda n, g: ddpm.final(ddpm.ddim_sampler(model, (n, 2), lin, steps=steps, eta=eta, generator=g,
                                                          clip_x0=clip)), 0, first_batch)
    return out


# ------------------------------------------------------------------------------------------- chapter 2
@artefact("ch2_samples", 2, "samples of the chapter-2 text models (AR, MDLM, packed MDLM, MDLM sampler settings)",
          ("lm_ar", "lm_mdlm", "lm_mdlm_packed"))
def ch2_samples(first_batch: bool) -> dict:
    """Token canvases (n, 41), drawn in batches of 20 rows: 1,000 samples each from AR, MDLM and packed MDLM
    (41 steps, random order, temperature 1), and 200 per MDLM sampler setting (steps, order, temperature)."""
    def n(total):
        return TEXT_BATCH if first_batch else total

    ar, mdlm, packed = (textlm.load_text_model(k) for k in ("lm_ar", "lm_mdlm", "lm_mdlm_packed"))
    out = {"ar": textlm.sample_ar_tokens(ar, n(1000), seed=31, batch_size=TEXT_BATCH),
           "mdlm": textlm.sample_mdlm_tokens(mdlm, n(1000), steps=41, seed=32, batch_size=TEXT_BATCH),
           "mdlm_packed": textlm.sample_mdlm_tokens(packed, n(1000), steps=41, seed=32, batch_size=TEXT_BATCH)}
    for order, grid in (("random", (2, 5, 10, 20)), ("confidence", (10, 41))):
        for steps in grid:
            out[f"mdlm_{order}_{steps}"] = textlm.sample_mdlm_tokens(mdlm, n(200), steps=steps, order=order, seed=33,
                                                                     batch_size=TEXT_BATCH)
    for temp in (0.8, 0.6):
        out[f"mdlm_random_41_t{temp}"] = textlm.sample_mdlm_tokens(mdlm, n(200), steps=41, temperature=temp,
                                                                   seed=33, batch_size=TEXT_BATCH)
    return {k: v.to(torch.int16) for k, v in out.items()}


@artefact("ch2_bounds", 2, "per-sentence test NLL (AR) and Monte-Carlo bounds (MDLM, D3PM) of the chapter-2 models",
          ("lm_ar", "lm_mdlm", "lm_d3pm_absorbing", "lm_d3pm_uniform"))
def ch2_bounds(first_batch: bool) -> dict:
    """``textlm.evaluate_nll_terms`` of each model on the 2,000 test sentences (4 draws per sentence for the
    diffusion models, seed 21): (2000, S) nats per sentence. The first batch is the first 256 sentences."""
    ids = textlm.language_ids("test")[:256] if first_batch else textlm.language_ids("test")
    shipped = checkpoints.read_manifest()
    return {key: textlm.evaluate_nll_terms(textlm.load_text_model(key), ids, shipped[key]["config"], samples=4,
                                           seed=21)
            for key in ("lm_ar", "lm_mdlm", "lm_d3pm_absorbing", "lm_d3pm_uniform")}


# ------------------------------------------------------------------------------------------- chapter 3
@artefact("ch3_samples", 3, "unconditional samples of LLaDA's sampler from the chapter-3 models",
          ("lm_llada", "lm_bert15", "lm_mdlm"))
def ch3_samples(first_batch: bool) -> dict:
    """Answer regions (n, 41) of ``llada.unconditional_samples``, in batches of 20 rows: 200 each from the LLaDA
    and BERT-style models (random remasking, 20 steps); 1,000 from the MDM per remasking (41 steps, temperature
    1) and 100 per sweep setting (10 and 20 steps; temperature 0.7)."""
    def n(total):
        return TEXT_BATCH if first_batch else total

    def draw(model, total, steps, remasking, seed, temperature=1.0):
        return llada.unconditional_samples(model, n(total), steps, 41, remasking=remasking, temperature=temperature,
                                           seed=seed, batch_size=TEXT_BATCH, mask_id=textlm.MASK_ID)

    llada_model, bert, mdlm = (textlm.load_text_model(k) for k in ("lm_llada", "lm_bert15", "lm_mdlm"))
    out = {"llada_random_20": draw(llada_model, 200, 20, "random", 0), "bert_random_20": draw(bert, 200, 20, "random", 0)}
    for rm in ("low_confidence", "random"):
        out[f"mdlm_{rm}_41"] = draw(mdlm, 1000, 41, rm, 1)
        for steps in (10, 20):
            out[f"mdlm_{rm}_{steps}"] = draw(mdlm, 100, steps, rm, 2)
        out[f"mdlm_{rm}_41_t0.7"] = draw(mdlm, 100, 41, rm, 3, temperature=0.7)
    return {k: v.to(torch.int16) for k, v in out.items()}


COMPLETE_SETTINGS = {"low_confidence, block 32": dict(block_length=32), "low_confidence, block 8": dict(block_length=8),
                     "low_confidence, block 4": dict(block_length=4),
                     "random, block 32": dict(block_length=32, remasking="random"),
                     "random, block 8": dict(block_length=8, remasking="random"),
                     "low_confidence, block 32, cfg 0.5": dict(block_length=32, cfg_scale=0.5),
                     "low_confidence, block 32, cfg 1.5": dict(block_length=32, cfg_scale=1.5)}


def complete_prompts() -> list:
    """Chapter 3's prompted-generation set: the first 60 held-out sentences of 8 to 20 words, as ``[complete]``
    instructions that keep the first 7 words (a 9-token prompt, a 32-position answer)."""
    long_test = [s for s in language.read_split("test") if 8 <= len(s) <= tasks.MAX_COMPLETE_WORDS][:60]
    return [tasks.Instruction("complete", [tasks.COMPLETE, *s[:7], tasks.SEP], s[7:]) for s in long_test]


@artefact("ch3_complete", 3, "the SFT model's greedy answers to 60 [complete] prompts, per sampler setting",
          ("sft_mdm",))
def ch3_complete(first_batch: bool) -> dict:
    """``tasks.answer_instructions(sft_mdm, prompts, steps=32, **setting)`` for every setting of
    :data:`COMPLETE_SETTINGS`, on :func:`complete_prompts` in batches of 20 (each with seed 0): the answers as
    text ("" for an empty answer, "[no EOS]" for an answer without [EOS])."""
    sft = textlm.load_text_model("sft_mdm")
    prompts = complete_prompts()[:TEXT_BATCH] if first_batch else complete_prompts()
    out = {}
    for name, setting in COMPLETE_SETTINGS.items():
        answers = []
        for b in range(0, len(prompts), TEXT_BATCH):
            answers += tasks.answer_instructions(sft, prompts[b:b + TEXT_BATCH], steps=32, **setting)
        out[name] = np.array(["[no EOS]" if a is None else " ".join(a) for a in answers])
    return out


# ------------------------------------------------------------------------------------------- chapter 4
THRESHOLDS = (1.0, 0.99, 0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5, 0.3, 0.0)
EDIT_MODES = {"S-Mode": (0.5, 0.0, True), "S-Mode, T2T off": (0.5, 0.0, False), "Q-Mode": (0.95, 0.9, True)}


@artefact("ch4_language", 4, "free text decoded by threshold decoding (lm_mdlm) and by token editing (lm_edit)",
          ("lm_mdlm", "lm_edit"))
def ch4_language(first_batch: bool) -> dict:
    """300 sentences of 40 positions from one-word prompts (the first words of the first 300 test sentences),
    decoded in batches of 20 prompts with blocks of 8: ``decoding.threshold_decode`` with ``lm_mdlm`` at every
    threshold of :data:`THRESHOLDS`, and ``decoding.edit_decode`` with ``lm_edit`` in each mode of
    :data:`EDIT_MODES` (tau_mask, tau_edit, T2T on). Per run: the canvases, each row's forwards and generated
    tokens, and (editing) the number of T2T edits per batch."""
    prompts = textlm.language_ids("test")[:TEXT_BATCH if first_batch else 300, :1]
    mdlm, editor = textlm.load_text_model("lm_mdlm"), editing.load_editor("lm_edit")
    runs = {f"threshold {tau}": lambda p, tau=tau: decoding.threshold_decode(mdlm, p, 40, 8, tau, textlm.MASK_ID,
                                                                              textlm.EOS_ID) for tau in THRESHOLDS}
    for name, (tm, te, on) in EDIT_MODES.items():
        runs[name] = lambda p, tm=tm, te=te, on=on: decoding.edit_decode(editor, p, 40, 8, tm, te, textlm.MASK_ID,
                                                                         textlm.EOS_ID, editing=on)
    out = {}
    for name, run in runs.items():
        res = [run(prompts[b:b + TEXT_BATCH]) for b in range(0, len(prompts), TEXT_BATCH)]
        out[f"{name}/x"] = torch.cat([r.x for r in res]).to(torch.int16)
        out[f"{name}/forwards"] = torch.cat([r.forwards for r in res])
        out[f"{name}/tokens"] = torch.cat([r.tokens for r in res])
        out[f"{name}/t2t"] = torch.tensor([int(r.events["t2t"]) for r in res])
    return out


# ------------------------------------------------------------------------------------------- command line
def _ensure_pinned(argv: list[str]) -> None:
    """Re-run this command in the pinned mode if this process is not in it (the settings act at import)."""
    if runtime.pinnable() and not runtime.pinned():
        env = dict(os.environ, **runtime.PINNED_ENV)
        os.execve(sys.executable, [sys.executable, "-m", "course_lib.artefacts", *argv], env)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="./course artefacts", description="Make or check the shipped artefacts.")
    p.add_argument("names", nargs="*", help="artefacts to make (or check)")
    p.add_argument("--list", action="store_true", help="list the artefacts")
    p.add_argument("--all", action="store_true", help="every artefact")
    p.add_argument("--chapter", type=int, help="every artefact of one chapter")
    p.add_argument("--check", action="store_true", help="redraw the first batch and compare, instead of making")
    a = p.parse_args(argv)
    if a.list or not (a.names or a.all or a.chapter):
        for e in sorted(REGISTRY.values(), key=lambda e: (e.chapter, e.name)):
            print(f"{e.name:20s} chapter {e.chapter}: {e.about} (from {', '.join(e.checkpoints)})")
        return 0
    names = sorted(REGISTRY) if a.all else [n for n in sorted(REGISTRY) if REGISTRY[n].chapter == a.chapter] \
        if a.chapter else a.names
    for n in names:
        entry(n)
    _ensure_pinned(argv)
    torch.set_num_threads(runtime.PINNED_THREADS)
    failed = 0
    for n in names:
        t0 = time.perf_counter()
        if a.check:
            problems = check(n)
            mode = "exact (pinned mode)" if runtime.pinned() else "statistical (not the pinned mode)"
            print(f"{n}: first batch {'identical' if not problems else 'DIFFERS'} [{mode}] "
                  f"in {time.perf_counter() - t0:.1f} s" + "".join(f"\n  {q}" for q in problems))
            failed += bool(problems)
        else:
            bank = make(n)
            size = path_of(n).stat().st_size / 1e3
            print(f"{n}: made in {bank.meta['seconds']:.0f} s, {size:.0f} kB -> {path_of(n).relative_to(ARTEFACT_DIR.parent.parent)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
