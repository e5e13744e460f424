"""Recipes: one command retrains each shipped checkpoint and records it in ``data/manifest.json``.

Introduced in chapter 1, section 4. Usage (from the repository root):

    ./course retrain --list
    ./course retrain ddpm2d_gmm          # = python -m course_lib.recipes ddpm2d_gmm

Every recipe is deterministic (fixed seeds, CPU) and prints the metrics it stores in the manifest.
"""
from __future__ import annotations

import argparse
import sys
import time

import torch

from . import arith, blockdiff, checkpoints, ddpm, editing, facts, masked, metrics, mlp, nn, schedules, tasks, textlm, toy2d
from . import digits
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
RECIPES["toy_mdlm"] = _toy_denoiser_recipe
RECIPES["ddpm_digits"] = _digits_recipe("ddpm")
RECIPES["digits_classifier"] = _digits_recipe("classifier")


# ---------------------------------------------------------------------------- the text models (chapters 2-4)
def text_recipe_data(name: str) -> dict:
    """The data of the shipped text recipe ``name``: ``train`` and ``valid`` canvases, and for SFT the
    ``prompt_lengths`` and the pretrained ``init`` model. Introduced in chapter 2, section 7 (language models);
    the facts, few-shot and instruction data come with chapter 3."""
    if name not in textlm.TEXT_RECIPES:
        raise ValueError(f"unknown text recipe {name!r}; known: {sorted(textlm.TEXT_RECIPES)}")
    if name == "lm_mdlm_packed":                      # chapter 2, section 7: packed canvases (no [PAD])
        r = textlm.TEXT_RECIPES[name]
        return {"train": textlm.pack_canvases(textlm.language_ids("train"), r["steps"] * r["batch_size"], seed=0),
                "valid": textlm.pack_canvases(textlm.language_ids("valid"), r["eval_sentences"], seed=1)}
    if name.startswith(("lm_", "moe_")):              # chapter 4 MoE recipes: the same language data
        return {"train": textlm.language_ids("train"), "valid": textlm.language_ids("valid")}
    if name.startswith("facts_"):
        world = facts.reversal_world()
        ids = batchify(world.training_statements(), Tokenizer(world.vocabulary), textlm.FACTS_MODEL["seq_len"])
        return {"train": ids, "valid": ids}
    if name.startswith("icl_"):
        return {"train": tasks.episodes_to_ids(tasks.icl_episodes(50000, seed=0)),
                "valid": tasks.episodes_to_ids(tasks.icl_episodes(500, seed=1))}
    if name == "sft_mdm":
        x0, pl = tasks.instructions_to_ids(tasks.instruction_set("train", textlm.SFT_INSTRUCTIONS, seed=0))
        init = nn.grow_vocabulary(textlm.load_text_model("lm_mdlm"), len(tasks.instruction_tokenizer()))
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
    for :func:`course_lib.recipes.retrain`. Introduced in chapter 2, section 7."""
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
RECIPES["add_rl"] = arith.run_rl_recipe
RECIPES["lm_edit"] = editing.run_lm_edit_recipe


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
