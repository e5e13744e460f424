"""Token editing, the training side: LLaDA 2.1's mixed M2T + T2T objective.

LLaDA 2.1 (arXiv 2602.08676, section 3.1) trains one model on two
streams at once: the drafting stream (M2T, mask-to-token: predict the tokens at [MASK] positions, the usual
masked-diffusion loss) and the editing stream (T2T, token-to-token: "recover original tokens from random
noise perturbations"). The report does not give the corruption distribution or the mix; the choices here
are ours and stated:

- the answer is masked as in LLaDA's SFT (chapter 3): rate t ~ U[eps, 1], the prompt never masked;
- each *visible* answer token is then replaced, with probability ``edit_rate``, by a different token drawn
  uniformly from ``edit_vocab`` (uniform perturbations, the reading of a follow-up paper on Token-to-Mask
  remasking, arXiv 2604.18738);
- with ``draft_rate > 0`` the model also drafts: one extra forward pass (no gradient) proposes its argmax at the
  masked positions, and each masked position is filled with that draft with probability ``draft_rate``.
  Uniform noise is easy to spot; the model's *own* mistakes (a carry it got wrong) are plausible-looking and
  are exactly what T2T must repair at decoding time. This is our reading of LLaDA 2.1's Multi-turn Forward
  (MTF) augmentation, which "exposes the model to more editing scenarios"; its details are not published;
- the M2T term is LLaDA's SFT loss on the positions still masked; the T2T term is the cross-entropy of the
  original token at *every* visible answer position (drafted, replaced or untouched), per answer token. Replaced
  positions teach the repair; untouched ones teach the model to keep a right token, which is what stops
  the editing decoder from "repairing" correct text. Our model has no carry-over rule for visible tokens
  (unlike MDLM's SUBS), so without this term its predictions at visible positions would be untrained.

The decoder that uses these predictions (M2T and T2T sets, S and Q modes) is :mod:`course_lib.decoding`.
"""
from __future__ import annotations

import time

import torch

from .runtime import progress
from .training import lr_factor, training_loop
from .masked import exclude_mask, prompt_positions, sft_forward_process
from . import checkpoints, textlm
from .textlm import TextLMConfig
from .nn import Transformer
from .tokenizer import Tokenizer


def perturb(x0: torch.Tensor, noisy: torch.Tensor, editable: torch.Tensor, edit_rate: float, edit_vocab,
            generator=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace each ``editable`` position of ``noisy`` with probability ``edit_rate`` by a token of
    ``edit_vocab`` different from ``x0`` there. Returns ``(corrupted, replaced)``."""
    if not 0.0 <= float(edit_rate) <= 1.0:
        raise ValueError(f"edit_rate must lie in [0, 1], got {edit_rate!r}")
    vocab = torch.as_tensor(list(edit_vocab), dtype=torch.long)
    if vocab.ndim != 1 or len(vocab) < 2 or len(set(vocab.tolist())) != len(vocab):
        raise ValueError("edit_vocab must hold at least two distinct token ids")
    if editable.shape != x0.shape or editable.dtype != torch.bool or noisy.shape != x0.shape:
        raise ValueError("x0, noisy and editable (bool) must share the shape (B, L)")
    if bool((~torch.isin(x0[editable], vocab)).any()):
        raise ValueError("every editable token of x0 must belong to edit_vocab")
    u = torch.rand(x0.shape, generator=generator)
    replaced = editable & (u < edit_rate)
    # a uniform draw among the other len(vocab) - 1 tokens: shift the token's index by 1..len-1 (mod len)
    index = torch.searchsorted(vocab.sort().values, x0)                     # position of x0 in sorted vocab
    shift = torch.randint(1, len(vocab), x0.shape, generator=generator)
    other = vocab.sort().values[(index.clamp(max=len(vocab) - 1) + shift) % len(vocab)]
    return torch.where(replaced, other, noisy), replaced


def m2t_t2t_loss(model, x0: torch.Tensor, prompt_lengths, mask_id: int, edit_rate: float, edit_vocab,
                 generator=None, eps: float = 1e-3, draft_rate: float = 0.0):
    """LLaDA 2.1's unified M2T + T2T loss for one batch (module docstring): returns ``(loss, parts)`` with
    ``parts = {"m2t": ..., "t2t": ...}`` (floats).

        loss = (1/B) sum_b [ sum_{i still masked} CE_i / t_b + sum_{i visible answer} CE_i ] / answer_length_b
    """
    if not 0.0 <= float(draft_rate) <= 1.0:
        raise ValueError(f"draft_rate must lie in [0, 1], got {draft_rate!r}")
    if int(mask_id) in [int(v) for v in edit_vocab]:
        raise ValueError(f"edit_vocab must not contain the mask id {mask_id}: a replaced token would look masked")
    noisy, masked, p_mask = sft_forward_process(x0, prompt_lengths, mask_id, generator, eps)
    pl = torch.as_tensor(prompt_lengths).long()
    answer = ~prompt_positions(pl, x0.shape[1])
    corrupted, _ = perturb(x0, noisy, answer & ~masked, edit_rate, edit_vocab, generator)
    if draft_rate > 0:
        with torch.no_grad():
            draft = exclude_mask(model(noisy), mask_id).argmax(-1)
        filled = masked & (torch.rand(x0.shape, generator=generator) < draft_rate)
        corrupted = torch.where(filled, draft, corrupted)
        masked = masked & ~filled
    logits = model(corrupted)
    logp = torch.log_softmax(exclude_mask(logits, mask_id), dim=-1)
    nll = -logp.gather(-1, x0.unsqueeze(-1)).squeeze(-1)
    length = (x0.shape[1] - pl).to(nll)[:, None]
    m2t = torch.where(masked, nll / (p_mask.to(nll)[:, None] * length), torch.zeros_like(nll)).sum() / x0.shape[0]
    t2t = torch.where(answer & ~masked, nll / length, torch.zeros_like(nll)).sum() / x0.shape[0]
    return m2t + t2t, {"m2t": m2t.item(), "t2t": t2t.item()}


# ----------------------------------------------------------------------------------------------
# An editor for the course language (chapter 4: editing on free text)
# ----------------------------------------------------------------------------------------------

LM_EDIT_RECIPE = dict(init="lm_mdlm_packed", steps=400, batch_size=64, lr=3e-4, warmup=20, min_lr_ratio=0.1,
                      edit_rate=0.1, draft_rate=0.5, seed=0)


def train_editor(model, ids: torch.Tensor, steps: int, batch_size: int, lr: float, warmup: int, min_lr_ratio: float,
                 edit_rate: float, draft_rate: float, edit_vocab, mask_id: int, prompt_lengths=None, seed: int = 0,
                 show_progress: bool = True, desc: str = "M2T + T2T"):
    """Fine-tune ``model`` on rows of ``ids`` (N, L) with :func:`m2t_t2t_loss` (AdamW, warmup + cosine, clipping at 1);
    ``prompt_lengths`` (N,) or None (no prompt). Returns ``(model, losses)``."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    pl_all = torch.zeros(len(ids), dtype=torch.long) if prompt_lengths is None else torch.as_tensor(prompt_lengths)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.0)

    def loss_fn(step):
        rows = torch.randint(0, len(ids), (batch_size,), generator=g)
        return m2t_t2t_loss(model, ids[rows], pl_all[rows], mask_id, edit_rate, edit_vocab, g, draft_rate=draft_rate)[0]

    losses, t0 = [], time.perf_counter()
    bar = progress(range(steps), desc=desc) if show_progress else range(steps)
    for _, loss in training_loop(model, loss_fn, bar, opt, lambda s: lr_factor(s, steps, warmup, min_lr_ratio)):
        losses.append(loss)
    model.eval()
    return model, {"loss": losses, "seconds": time.perf_counter() - t0}


def run_lm_edit_recipe(show_progress: bool = True):
    """``lm_edit``: chapter 2's packed MDLM (lm_mdlm_packed) fine-tuned with the mixed M2T + T2T objective on packed
    canvases of the course language
    (recipe :data:`LM_EDIT_RECIPE`; no prompt, every canvas position is "answer"; uniform perturbations over every
    token but [MASK]). Returns ``(model, metrics, seconds)`` for :func:`course_lib.recipes.retrain`."""
    r = LM_EDIT_RECIPE
    t0 = time.perf_counter()
    model = textlm.load_text_model(r["init"])
    recipe = model.recipe
    ids = textlm.pack_canvases(textlm.language_ids("train"), r["steps"] * r["batch_size"], seed=0)
    vocab = [i for i in range(model.config.vocab_size) if i != Tokenizer.mask_id]
    model, hist = train_editor(model, ids, r["steps"], r["batch_size"], r["lr"], r["warmup"], r["min_lr_ratio"],
                               r["edit_rate"], r["draft_rate"], vocab, Tokenizer.mask_id, seed=r["seed"],
                               show_progress=show_progress, desc="lm_edit")
    seconds = time.perf_counter() - t0
    model.recipe = dict(recipe, editing=r)
    return model, {"steps": r["steps"], "final_loss": round(sum(hist["loss"][-20:]) / 20, 4), "threads": 1}, seconds


def load_editor(name: str = "lm_edit"):
    """The shipped language editor (``lm_edit``), verified against the manifest, in eval mode."""

    def build(config):
        return Transformer(TextLMConfig.from_dict({k: v for k, v in config.items() if k != "editing"}).transformer_config())
    return checkpoints.load_model(name, build)
