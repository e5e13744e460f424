"""Copying a list: chapter 4's long answer with a single right answer, for the speed benchmark.

The prompt is a list of 16 to 31 symbols; the answer is the same list, then [EOS]. Every answer token is fixed by
the prompt and by nothing else (low entropy, and no dependence between answer tokens: the best case for parallel
decoding, as Fast-dLLM's Theorem 1 says), the answer is long (17 to 32 tokens), and :func:`grade` checks it
exactly. Layout (P = G = 32, one canvas of 64 positions, blocks of 8 aligned to position 0, so the course's and
LLaDA 2.x's block layouts coincide)::

    prompt   c a b ... f [SEP] [PAD] ... [PAD]        (the n symbols, [SEP], 31 - n pads)
    answer   c a b ... f [EOS] [EOS] ...              (the n symbols, [EOS] up to 32)

Answer position 32 + j copies prompt position j, a fixed distance back, which rotary position embeddings
express directly. (Reversing the list, tried first, needs the distance to grow with j; a bidirectional model
had not learned it after 600 steps while the AR model had, so copying keeps the comparison about decoding, not
about what each model could learn.)

Three models of one size (lm_ar's: 4 layers, 4 heads, d_model 128), trained on the same stream of lists for the
same number of steps, differ only in their attention and objective (:data:`RECIPES`):

- ``copy_ar``: causal, next-token loss on the answer up to its first [EOS];
- ``copy_mdm``: bidirectional, LLaDA's SFT loss (answer masked at a random ratio, prompt clean);
- ``copy_bd``: block-causal with blocks of 8, BD3-LM's loss on the answer blocks (prompt clean).

They are not shipped (the checkpoints' budget is spent on the chapters' models): ``./course bench decoding``
trains them once, deterministically, into ``build/bench/models/`` (a few minutes) and reuses them.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from . import blockdiff
from .checks import check_int
from .masked import sft_step_loss
from .nn import Transformer, TransformerConfig
from .runtime import progress
from .training import lr_factor, training_loop

PAD_ID, MASK_ID, EOS_ID, SEP_ID = 0, 1, 2, 3             # the course tokenizer's first ids, plus a separator
SYMBOLS = "abcdefghijklmnopqrstuvwx"                     # 24 symbols, ids 4..27
VOCAB_SIZE = 4 + len(SYMBOLS)
MIN_LEN, MAX_LEN = 16, 31
PROMPT_LENGTH = GEN_LENGTH = 32
SEQ_LEN = PROMPT_LENGTH + GEN_LENGTH
BLOCK = 8
MODEL_DIR = Path(__file__).resolve().parent.parent / "build" / "bench" / "models"

_MODEL = dict(vocab_size=VOCAB_SIZE, seq_len=SEQ_LEN, n_layer=4, n_head=4, d_model=128)
_TRAIN = dict(steps=600, batch_size=64, lr=1e-3, warmup=50, min_lr_ratio=0.1, seed=0, threads=1)
RECIPES = {
    "copy_ar": dict(_TRAIN, attention="causal", objective="ar"),
    "copy_mdm": dict(_TRAIN, attention="bidirectional", objective="sft"),
    "copy_bd": dict(_TRAIN, attention="block_causal", block_size=BLOCK, objective="bd"),
}


# ------------------------------------------------------------------------------------------- data
def problems(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random problems as ``(prompts (n, 32), answers (n, 32))``: lengths uniform in [16, 31], symbols uniform.
    Training draws with seeds from 1,000 on, the benchmark's test prompts with seed 0: different lists (there are
    24^16 or more of each length)."""
    n = check_int(n, "n")
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(MIN_LEN, MAX_LEN + 1, (n,), generator=g)
    symbols = torch.randint(4, VOCAB_SIZE, (n, PROMPT_LENGTH), generator=g)
    pos = torch.arange(PROMPT_LENGTH)[None]
    n_ = lengths[:, None]
    prompts = torch.where(pos < n_, symbols, torch.where(pos == n_, SEP_ID, PAD_ID))
    answers = torch.where(pos < n_, symbols, torch.full_like(symbols, EOS_ID))
    return prompts, answers


def grade(answers: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """(B,) bool: the generated answer up to and including its first [EOS] equals the reference (the list and its
    [EOS]); an answer without [EOS] is wrong."""
    if answers.shape != reference.shape:
        raise ValueError(f"answers {tuple(answers.shape)} and reference {tuple(reference.shape)} differ in shape")
    pos = torch.arange(answers.shape[1])[None]
    ref_end = (reference == EOS_ID).long().argmax(1)[:, None]      # every reference has an [EOS]
    upto = pos <= ref_end
    return ((answers == reference) | ~upto).all(1)


def to_text(ids) -> str:
    """Token ids as a readable string (pads left out)."""
    names = {MASK_ID: "_", EOS_ID: "[EOS]", SEP_ID: "|"}
    return " ".join(names.get(i, SYMBOLS[i - 4] if i >= 4 else "") for i in map(int, ids) if i != PAD_ID)


# ------------------------------------------------------------------------------------------- training
def _loss(model: Transformer, recipe: dict, prompts, answers, g: torch.Generator) -> torch.Tensor:
    x0 = torch.cat([prompts, answers], 1)
    B, P = prompts.shape
    if recipe["objective"] == "ar":                          # next token, on the answer up to its first [EOS]
        logits = model(x0[:, :-1])
        target = x0[:, 1:]
        first_eos = (answers == EOS_ID).long().argmax(1)
        j = torch.arange(SEQ_LEN - 1)[None]
        weight = (j >= P - 1) & (j <= P - 1 + first_eos[:, None])
        nll = F.cross_entropy(logits.transpose(1, 2), target, reduction="none")
        return (nll * weight).sum() / weight.sum()
    if recipe["objective"] == "sft":                         # LLaDA's SFT: prompt clean, answer at a random ratio
        return sft_step_loss(model, x0, P, MASK_ID, g).loss
    # block diffusion: every answer block its own ratio; the prompt stays clean in both halves
    t = blockdiff.sample_block_times(B, SEQ_LEN // BLOCK, g)
    x_t, masked = blockdiff.bd_forward_process(x0, BLOCK, t, MASK_ID, g)
    prompt = torch.arange(SEQ_LEN)[None] < P
    x_t, masked = torch.where(prompt, x0, x_t), masked & ~prompt
    logits = blockdiff.bd_logits(model, x_t, x0, BLOCK)
    return blockdiff.bd_loss_from_logits(logits, x0, x_t, masked, t, BLOCK, MASK_ID, pad_id=None).loss


def build_model(name: str) -> Transformer:
    r = RECIPES[name]
    torch.manual_seed(r["seed"])
    attn = dict(attention=r["attention"], block_size=r.get("block_size"))
    return Transformer(TransformerConfig(**_MODEL, **attn))


def train(name: str, show_progress: bool = True) -> tuple[Transformer, dict]:
    """Train the recipe ``name`` from scratch; returns ``(model in eval mode, info)`` with the seconds it took."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; known: {sorted(RECIPES)}")
    r = RECIPES[name]
    threads = torch.get_num_threads()
    torch.set_num_threads(r["threads"])
    try:
        model = build_model(name)
        opt = torch.optim.AdamW(model.parameters(), lr=r["lr"], betas=(0.9, 0.95), weight_decay=0.0)
        g = torch.Generator().manual_seed(r["seed"])
        steps = progress(range(r["steps"]), desc=name) if show_progress else range(r["steps"])
        losses, t0 = [], time.perf_counter()

        def loss_fn(step):
            prompts, answers = problems(r["batch_size"], 1000 + step)
            return _loss(model, r, prompts, answers, g)

        for _, loss in training_loop(model, loss_fn, steps, opt,
                                     lambda s: lr_factor(s, r["steps"], r["warmup"], r["min_lr_ratio"])):
            losses.append(loss)
        seconds = time.perf_counter() - t0
    finally:
        torch.set_num_threads(threads)
    model.eval()
    tail = losses[-100:]
    return model, {"recipe": r, "model": model.config.to_dict(), "n_params": model.n_params(),
                   "train_seconds": round(seconds, 1), "final_loss": round(sum(tail) / len(tail), 4)}


def recipe_hash(name: str) -> str:
    """A short hash of the recipe and model shape: a stored model is reused only if both are unchanged."""
    text = json.dumps({"recipe": RECIPES[name], "model": _MODEL}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def load_or_train(name: str, directory: Path = MODEL_DIR, show_progress: bool = True) -> tuple[Transformer, dict]:
    """The model ``name`` from ``build/bench/models/`` if it was trained with today's recipe, else trained now and
    stored there. Returns ``(model, info)``."""
    path = Path(directory) / f"{name}-{recipe_hash(name)}.pt"
    if path.exists():
        blob = torch.load(path, map_location="cpu", weights_only=True)
        model = build_model(name)
        model.load_state_dict(blob["state_dict"])
        return model.eval(), json.loads(blob["info"])
    model, info = train(name, show_progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": model.state_dict(), "info": json.dumps(info)}, path)
    return model, info
