"""Recipes: how every shipped file is made. One command retrains each shipped checkpoint and records it in
``data/manifest.json``; another (re)draws each artefact (:mod:`course_lib.artefacts`: the chapters' heavy sampling
and evaluation runs) from those checkpoints.

Usage (from the repository root):

    ./course retrain --list
    ./course retrain ddpm2d_gmm          # = python -m course_lib.recipes ddpm2d_gmm
    ./course artefacts --list            # = python -m course_lib.recipes artefacts --list

Every recipe is deterministic (fixed seeds, CPU) and prints the metrics it stores in the manifest.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

from . import (arith, artefacts, blockdiff, checkpoints, ddpm, decoding, digits, editing, entities, facts, flow,
               language, llada, masked, memorise, metrics, mlp, nn, runtime, schedules, sde, tasks, textlm, toy2d)
from .tokenizer import Tokenizer, batchify

# The 2-D toy recipe, shared by all toys (tanelp/tiny-diffusion's model, trained longer with an EMA).
TOY_CONFIG = dict(dim=2, hidden=128, n_blocks=3, emb_size=128, input_emb=True, input_scale=5.0, T=1000)
TOY_TRAIN = dict(steps=20_000, batch_size=1024, lr=2e-3, ema_decay=0.999, seed=0)
TOY_TRAIN_SIZE = 100_000   # points drawn once (seed 1); held-out sets use other seeds
# Samplers that predict x0_hat clip it to the toys' data range, as Ho et al. clip images to [-1, 1]:
# every toy lies inside [-3, 3]^2, so the clip only ever acts on trajectories that left the data.
TOY_CLIP = 3.5


def toy_schedule() -> schedules.NoiseSchedule:
    return schedules.linear_schedule(TOY_CONFIG["T"])


def train_toy(name: str, steps: int | None = None, show_progress: bool = True, ema_decay: float | None = None):
    """Train the epsilon-MLP on a 2-D toy. Returns (ema_model, history).

    ``steps`` and ``ema_decay`` override the recipe for a short live run (an EMA of decay d averages
    over about 1/(1-d) steps, so a 1,500-step run wants 0.99 rather than the recipe's 0.999)."""
    torch.manual_seed(0)
    data = toy2d.make_toy(name, TOY_TRAIN_SIZE, seed=1)
    model = mlp.EpsMLP(mlp.EpsMLPConfig(**TOY_CONFIG))
    kw = dict(TOY_TRAIN, steps=steps or TOY_TRAIN["steps"])
    if ema_decay is not None:
        kw["ema_decay"] = ema_decay
    return ddpm.train_eps_model(model, data, toy_schedule(), desc=f"ddpm2d_{name}",
                                 show_progress=show_progress, **kw)


def _toy_recipe(name: str):
    def run():
        t0 = time.perf_counter()
        model, hist = train_toy(name)
        seconds = time.perf_counter() - t0
        sch = toy_schedule()
        g = torch.Generator().manual_seed(0)
        draw = lambda n, s: toy2d.make_toy(name, n, seed=s)  # noqa: E731
        x = ddpm.final(ddpm.ddpm_sampler(model, (2000, 2), sch, generator=g))
        rep = metrics.swd_report(x, draw)
        m = {"final_loss": round(hist["loss"][-1], 4), "swd_ratio_ddpm1000": round(rep["ratio"], 3),
             "train_steps": TOY_TRAIN["steps"]}
        return model, m, seconds
    return run


def train_toy_flow(name: str = "gmm", steps: int | None = None, show_progress: bool = True):
    """Flow matching on a 2-D toy with the noise predictor's network, data, steps, batch, learning rate and EMA
    (only the loss differs). Returns (ema_model, history)."""
    torch.manual_seed(0)
    data = toy2d.make_toy(name, TOY_TRAIN_SIZE, seed=1)
    model = mlp.EpsMLP(mlp.EpsMLPConfig(**TOY_CONFIG))
    return flow.train_flow(model, data, desc=f"flow2d_{name}", show_progress=show_progress,
                           **dict(TOY_TRAIN, steps=steps or TOY_TRAIN["steps"]))


def _toy_flow_recipe():
    t0 = time.perf_counter()
    model, hist = train_toy_flow("gmm")
    seconds = time.perf_counter() - t0
    draw = lambda n, s: toy2d.make_toy("gmm", n, seed=s)  # noqa: E731
    x = ddpm.final(flow.flow_sampler(model, (2000, 2), n_steps=50, generator=torch.Generator().manual_seed(0)))
    m = {"final_loss": round(hist["loss"][-1], 4), "swd_ratio_heun50": round(metrics.swd_report(x, draw)["ratio"], 3),
         "train_steps": TOY_TRAIN["steps"]}
    return model, m, seconds


def _digits_recipe(kind: str):
    def run():
        return digits.run_recipe(kind)
    return run


def _toy_denoiser_recipe():
    """``toy_mdlm``: chapter 2's denoiser of the enumerable toy (:func:`masked.train_toy_denoiser`)."""
    t0 = time.perf_counter()
    toy = masked.course_toy()
    model, losses = masked.train_toy_denoiser(toy)
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        nelbo = float((toy.probs * masked.exact_continuous_nelbo(toy, model, analytic=True)).sum())
    return model, {"steps": len(losses), "final_loss": round(sum(losses[-20:]) / 20, 4),
                   "expected_nelbo": round(nelbo, 4)}, seconds


RECIPES = {f"ddpm2d_{n}": _toy_recipe(n) for n in toy2d.TOYS}
RECIPES["flow2d_gmm"] = _toy_flow_recipe
RECIPES["toy_mdlm"] = _toy_denoiser_recipe
RECIPES["ddpm_digits"] = _digits_recipe("ddpm")
RECIPES["digits_classifier"] = _digits_recipe("classifier")


# ---------------------------------------------------------------------------- the text models (chapters 2-4)
def text_recipe_data(name: str) -> dict:
    """The data of the shipped text recipe ``name``: ``train`` and ``valid`` canvases, and for SFT the
    ``prompt_lengths`` and the pretrained ``init`` model."""
    if name not in textlm.TEXT_RECIPES:
        raise ValueError(f"unknown text recipe {name!r}; known: {sorted(textlm.TEXT_RECIPES)}")
    if name in textlm.PACKED_RECIPES:                 # packed canvases (no [PAD]), one per training row
        r = textlm.TEXT_RECIPES[name]
        return {"train": textlm.pack_canvases(textlm.language_ids("train"), r["steps"] * r["batch_size"], seed=0),
                "valid": textlm.pack_canvases(textlm.language_ids("valid"), r.get("eval_sentences", 500), seed=1)}
    if name.startswith(("lm_", "moe_")):              # chapter 4 MoE recipes: the same language data
        return {"train": textlm.language_ids("train"), "valid": textlm.language_ids("valid")}
    if name.startswith("facts_"):
        world = facts.reversal_world()
        ids = batchify(world.training_statements(), Tokenizer(world.vocabulary), textlm.FACTS_MODEL["seq_len"])
        return {"train": ids, "valid": ids}
    if name == "sft_mdm":
        x0, pl = tasks.instructions_to_ids(tasks.instruction_set("train", textlm.SFT_INSTRUCTIONS, seed=0))
        init = nn.grow_vocabulary(textlm.load_text_model("lm_mdlm_packed"), len(tasks.instruction_tokenizer()))
        return {"train": x0, "valid": None, "prompt_lengths": pl, "init": init}
    raise ValueError(f"unknown text recipe {name!r}; known: {sorted(textlm.TEXT_RECIPES)}")


def text_recipe(name: str) -> dict:
    """The full recipe dict of ``name`` (with the data-dependent model sizes filled in)."""
    if name not in textlm.TEXT_RECIPES:
        raise ValueError(f"unknown text recipe {name!r}; known: {sorted(textlm.TEXT_RECIPES)}")
    r = dict(textlm.TEXT_RECIPES[name], seed=0)
    if name.startswith("facts_"):
        r["model"] = dict(r["model"], vocab_size=len(facts.reversal_world().vocabulary) + 3)
    return r


def run_text_recipe(name: str, show_progress: bool = True):
    """Train the shipped text model ``name`` from :data:`TEXT_RECIPES`; returns ``(model, metrics, seconds)``
    for :func:`course_lib.recipes.retrain`."""
    recipe = text_recipe(name)
    t0 = time.perf_counter()
    data = text_recipe_data(name)
    if data.get("init") is not None:
        data["init"].recipe = None
    model, hist = textlm.train_text_model(recipe, data["train"], data["valid"], model=data.get("init"),
                                   prompt_lengths=data.get("prompt_lengths"), show_progress=show_progress,
                                   desc=name, num_threads=textlm.TEXT_RECIPE_THREADS[name])
    seconds = time.perf_counter() - t0
    metrics = {"steps": hist["steps_done"], "tokens": hist["tokens"][-1], "n_params": hist["n_params"],
               "threads": textlm.TEXT_RECIPE_THREADS[name],
               "tokens_per_second": round(hist["tokens_per_second"], 1),
               "final_train_loss": round(hist["train_loss"][-1], 4),
               "valid_nll_500": round(hist["valid_nll"][-1], 4) if hist["valid_nll"] else None,
               "curve": {"tokens": hist["eval_tokens"], "valid_nll": [round(v, 4) for v in hist["valid_nll"]],
                         "valid_se": [round(v, 4) for v in hist["valid_se"]]}}
    model.recipe = hist["recipe"]
    return model, metrics, seconds



def _text_recipe(name: str):
    def run():
        return run_text_recipe(name)
    return run


RECIPES.update({name: _text_recipe(name) for name in textlm.TEXT_RECIPES})
# chapter 4: AR-to-diffusion conversion (blockdiff) and the addition models (arith)
RECIPES.update(blockdiff.RECIPES)
RECIPES.update({name: (lambda name=name: arith.run_arith_recipe(name)) for name in arith.ARITH_RECIPES})
RECIPES.update({name: (lambda name=name: arith.run_rl_recipe(name)) for name in arith.RL_RECIPES})
RECIPES.update({name: (lambda name=name: entities.train(name)) for name in entities.RECIPES})
RECIPES.update({name: (lambda name=name: memorise.train(name)) for name in memorise.MODELS})
RECIPES["lm_edit"] = editing.run_lm_edit_recipe
RECIPES.update({name: (lambda name=name: tasks.train_icl_model(name)) for name in ("icl_ar", "icl_mdm")})


# ============================================================================ artefacts
TEXT_BATCH = 20            # rows per batch of the text-sample banks (the first batch is what --check redraws)


# ------------------------------------------------------------------------------------------- chapter 1
TOY_POINTS, TOY_BATCH = 2000, 250     # 2-D sample banks: 2,000 points in 8 batches of 250


def _toy_batches(run, seed: int, first_batch: bool) -> torch.Tensor:
    """``run(n, generator)`` for batches of TOY_BATCH points, drawn in turn from one generator seeded ``seed``."""
    g = torch.Generator().manual_seed(seed)
    return torch.cat([run(TOY_BATCH, g) for _ in range(1 if first_batch else TOY_POINTS // TOY_BATCH)])


@artefacts.artefact("ch1_samplers", 1, "samples of the 2-D mixture model from four samplers and at several step counts",
          ("ddpm2d_gmm",))
def ch1_samplers(first_batch: bool) -> dict:
    """2,000 points per run, in batches of 250 (:func:`_toy_batches`): for DDPM (1,000 steps), DDIM (50), the
    reverse SDE (1,000) and the probability-flow ODE (100 Heun steps), the final samples with the shipped model's
    score (seed 31; and its trajectory, 51 frames in float16, ``(points, frames, 2)``) and with the mixture's exact
    score (seed 30); and DDIM at 10-250 steps with eta = 1 ("DDPM") and at 10-1,000 with eta = 0 ("DDIM"), seed 0."""
    model = checkpoints.load_model("ddpm2d_gmm", mlp.build)
    gmm, lin, vp, clip = toy2d.course_gmm(), schedules.linear_schedule(1000), sde.VPSDE(), TOY_CLIP
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
@artefacts.artefact("ch2_samples", 2, "samples of the chapter-2 text models (AR, MDLM, packed MDLM, MDLM sampler settings)",
          ("lm_ar", "lm_mdlm", "lm_mdlm_packed"))
def ch2_samples(first_batch: bool) -> dict:
    """Token canvases (n, 41), drawn in batches of 20 rows: 1,000 samples each from AR, MDLM and packed MDLM
    (41 steps, random order, temperature 1), and 200 per MDLM sampler setting (steps, order, temperature); and
    1,000 from each MDLM with T = 1000 steps (batches of 5)."""
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
    # T = 1000 steps (almost never two tokens in one step): 1,000 samples from each MDLM, in batches of 5 rows (a
    # step costs the same for any batch size, so the check of the first batch stays short)
    for key, model in (("mdlm", mdlm), ("mdlm_packed", packed)):
        out[f"{key}_1000"] = textlm.sample_mdlm_tokens(model, 5 if first_batch else 1000, steps=1000, seed=34,
                                                       batch_size=5)
    return {k: v.to(torch.int16) for k, v in out.items()}


@artefacts.artefact("ch2_bounds", 2, "per-sentence test NLL (AR) and Monte-Carlo bounds (MDLM, D3PM) of the chapter-2 models",
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
@artefacts.artefact("ch3_samples", 3, "unconditional samples of LLaDA's sampler from the chapter-3 models",
          ("lm_llada", "lm_bert15", "lm_mdlm_packed"))
def ch3_samples(first_batch: bool) -> dict:
    """Answer regions (n, 41) of ``llada.unconditional_samples``, in batches of 20 rows: 200 each from the LLaDA
    and BERT-style models (random remasking, 20 steps); 1,000 from the packed MDM (``lm_mdlm_packed``, the
    chapter's pretrained MDM) per remasking (41 steps, temperature 1) and 100 per sweep setting (10 and 20 steps;
    temperature 0.7)."""
    def n(total):
        return TEXT_BATCH if first_batch else total

    def draw(model, total, steps, remasking, seed, temperature=1.0):
        return llada.unconditional_samples(model, n(total), steps, 41, remasking=remasking, temperature=temperature,
                                           seed=seed, batch_size=TEXT_BATCH, mask_id=textlm.MASK_ID)

    llada_model, bert, mdlm = (textlm.load_text_model(k) for k in ("lm_llada", "lm_bert15", "lm_mdlm_packed"))
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


COMPLETE_PROMPTS = 500       # enough for a standard error of about 2 points on a validity near 50%


def complete_prompts() -> list:
    """Chapter 3's prompted-generation set: the first 500 held-out sentences of 8 to 20 words, as ``[complete]``
    instructions that keep the first 7 words (a 9-token prompt, a 32-position answer)."""
    long_test = [s for s in language.read_split("test") if 8 <= len(s) <= tasks.MAX_COMPLETE_WORDS][:COMPLETE_PROMPTS]
    return [tasks.Instruction("complete", [tasks.COMPLETE, *s[:7], tasks.SEP], s[7:]) for s in long_test]


@artefacts.artefact("ch3_complete", 3, "the SFT model's greedy answers to 500 [complete] prompts, per sampler setting",
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
EDIT_RUNS = {"S-Mode": (*decoding.EDIT_MODES["S-Mode"], True),
             "S-Mode, T2T off": (*decoding.EDIT_MODES["S-Mode"], False),
             "Q-Mode": (*decoding.EDIT_MODES["Q-Mode"], True)}


@artefacts.artefact("ch4_language", 4, "free text decoded by threshold decoding (lm_mdlm_packed) and by token editing "
                    "(lm_edit)", ("lm_mdlm_packed", "lm_edit"))
def ch4_language(first_batch: bool) -> dict:
    """300 sentences of 40 positions from one-word prompts (the first words of the first 300 test sentences),
    decoded in batches of 20 prompts with blocks of 8: ``decoding.threshold_decode`` with ``lm_mdlm_packed`` at every
    threshold of :data:`THRESHOLDS`, and ``decoding.edit_decode`` with ``lm_edit`` in each mode of
    :data:`EDIT_RUNS` (tau_mask, tau_edit, T2T on). Per run: the canvases, each row's forwards and generated
    tokens, and (editing) the number of T2T edits per batch."""
    prompts = textlm.language_ids("test")[:TEXT_BATCH if first_batch else 300, :1]
    mdlm, editor = textlm.load_text_model("lm_mdlm_packed"), editing.load_editor("lm_edit")
    runs = {f"threshold {tau}": lambda p, tau=tau: decoding.threshold_decode(mdlm, p, 40, 8, tau, textlm.MASK_ID,
                                                                              textlm.EOS_ID) for tau in THRESHOLDS}
    for name, (tm, te, on) in EDIT_RUNS.items():
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


RL_MODELS = ("add_base", "add_sft_long", "add_rl", "add_sloppy", "add_sloppy_sft", "add_sloppy_rl")
RL_SAMPLES, RL_BATCH = 4, 100        # answers per held-out prompt; prompts per batch


@artefacts.artefact("ch4_rewards", 4,
                    "sampled and greedy answers of the RL models and their equal-compute SFT controls", RL_MODELS)
def ch4_rewards(first_batch: bool) -> dict:
    """The first 1,000 held-out addition prompts, in batches of 100, answered by each model of :data:`RL_MODELS`:
    ``arith.sample_answers`` at temperature 1, :data:`RL_SAMPLES` times per prompt (batch b, sample s drawn with
    seed ``1000 * s + b``), and greedily. Per model: ``MODEL/sampled`` (prompts, samples, answer length) and
    ``MODEL/greedy`` (prompts, answer length), the generated tokens only."""
    n = RL_BATCH if first_batch else 1000
    prompts, _ = arith.to_ids(arith.problems("test")[:n])
    out = {}
    for name in RL_MODELS:
        model = arith.load_arith_model(name)
        sampled = [torch.cat([arith.sample_answers(model, prompts[b:b + RL_BATCH],
                                                   torch.Generator().manual_seed(1000 * s + b // RL_BATCH))
                              for b in range(0, n, RL_BATCH)]) for s in range(RL_SAMPLES)]
        out[f"{name}/sampled"] = torch.stack([x[:, arith.PROMPT_LENGTH:] for x in sampled], 1).to(torch.int8)
        greedy = [arith.sample_answers(model, prompts[b:b + RL_BATCH], None, 0.0) for b in range(0, n, RL_BATCH)]
        out[f"{name}/greedy"] = torch.cat(greedy)[:, arith.PROMPT_LENGTH:].to(torch.int8)
    return out


# ------------------------------------------------------------------------------------------- command line
def _ensure_pinned(argv: list[str]) -> None:
    """Re-run this command in the pinned mode if this process is not in it (the settings act at import)."""
    if runtime.pinnable() and not runtime.pinned():
        env = dict(os.environ, **runtime.PINNED_ENV)
        os.execve(sys.executable, [sys.executable, "-m", "course_lib.recipes", "artefacts", *argv], env)


def artefacts_main(argv: list[str]) -> int:
    """``./course artefacts ARGS`` (= ``python -m course_lib.recipes artefacts ARGS``)."""
    p = argparse.ArgumentParser(prog="./course artefacts", description="Make or check the shipped artefacts.")
    p.add_argument("names", nargs="*", help="artefacts to make (or check)")
    p.add_argument("--list", action="store_true", help="list the artefacts")
    p.add_argument("--all", action="store_true", help="every artefact")
    p.add_argument("--chapter", type=int, help="every artefact of one chapter")
    p.add_argument("--check", action="store_true", help="redraw the first batch and compare, instead of making")
    a = p.parse_args(argv)
    if a.list or not (a.names or a.all or a.chapter):
        for e in sorted(artefacts.REGISTRY.values(), key=lambda e: (e.chapter, e.name)):
            print(f"{e.name:20s} chapter {e.chapter}: {e.about} (from {', '.join(e.checkpoints)})")
        return 0
    registry = artefacts.REGISTRY
    names = sorted(registry) if a.all else [n for n in sorted(registry) if registry[n].chapter == a.chapter] \
        if a.chapter else a.names
    for n in names:
        artefacts.entry(n)
    _ensure_pinned(argv)
    torch.set_num_threads(runtime.PINNED_THREADS)
    failed = 0
    for n in names:
        t0 = time.perf_counter()
        if a.check:
            problems = artefacts.check(n)
            mode = "exact (pinned mode)" if runtime.pinned() else "statistical (not the pinned mode)"
            print(f"{n}: first batch {'identical' if not problems else 'DIFFERS'} [{mode}] "
                  f"in {time.perf_counter() - t0:.1f} s" + "".join(f"\n  {q}" for q in problems))
            failed += bool(problems)
        else:
            bank = artefacts.make(n)
            size = artefacts.path_of(n).stat().st_size / 1e3
            print(f"{n}: made in {bank.meta['seconds']:.0f} s, {size:.0f} kB -> data/artefacts/{n}.npz")
    return 1 if failed else 0


# ============================================================================ command line
def retrain(name: str) -> dict:
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; known: {', '.join(sorted(RECIPES))}")
    torch.set_num_threads(1)   # one thread: the same numbers on any machine, and no slowdown when the other core is busy
    model, m, seconds = RECIPES[name]()
    config = getattr(model, "recipe", None) or model.config.to_dict()   # text models store their whole recipe
    entry = checkpoints.save_checkpoint(name, model.state_dict(), config, m, seconds)
    print(f"{name}: trained in {seconds:.1f} s; metrics {m}; sha256 {entry['sha256'][:12]}...")
    return entry


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["artefacts"]:
        return artefacts_main(argv[1:])
    p = argparse.ArgumentParser(prog="./course retrain", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", help="recipes to run ('all' for every one)")
    p.add_argument("--list", action="store_true", help="list the recipes")
    a = p.parse_args(argv)
    if a.list or not a.names:
        for n in sorted(RECIPES):
            print(f"  {n}")
        return 0
    names = sorted(RECIPES) if a.names == ["all"] else a.names
    for n in names:
        retrain(n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
