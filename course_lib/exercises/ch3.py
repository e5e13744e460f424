"""Checkers of chapter 3's exercises (LLaDA).

Use: ``exercises.check_...(my_function)`` in the chapter's "Your turn" cells; see :mod:`.base`.
"""
from __future__ import annotations

from typing import Callable

import torch

from .. import llada, masked
from .base import call, compare, fail, not_mask, run


def check_forward_process(fn: Callable) -> bool:
    """Exercise 1.1: ``fn(x0, mask_id, generator, eps=1e-3) -> (noisy, masked, p_mask)``, LLaDA's forward
    process: t ~ U(0, 1) per row, p_mask = (1 - eps) t + eps, each token masked independently with
    probability p_mask. Random draws differ between correct implementations, so the checker tests the
    structure exactly and the distribution statistically, on 4000 rows (called with eps = 0.2, so that
    a forgotten eps shows)."""
    number = "1.1"
    B, L, V, m, eps = 4000, 50, 20, 7, 0.2
    x0 = not_mask(torch.randint(0, V - 1, (B, L), generator=torch.Generator().manual_seed(31)), m)
    x0_in = x0.clone()
    out = call(number, fn, x0_in, m, torch.Generator().manual_seed(310), eps)
    if not isinstance(out, (tuple, list)) or len(out) != 3 or not all(isinstance(o, torch.Tensor) for o in out):
        fail(number, f"return a tuple of three tensors (noisy, masked, p_mask), got {type(out).__name__}")
    noisy, msk, p = out
    if not torch.equal(x0_in, x0):
        fail(number, "do not modify x0 in place: build noisy = torch.where(masked, mask_id, x0), a new tensor")
    if noisy.shape != (B, L) or noisy.dtype != x0.dtype:
        fail(number, f"noisy must be token ids like x0: shape {(B, L)}, dtype {x0.dtype}; "
                      f"got shape {tuple(noisy.shape)}, dtype {noisy.dtype}")
    if msk.shape != (B, L) or msk.dtype != torch.bool:
        fail(number, f"masked must be a bool tensor of shape (B, L) = {(B, L)}, e.g. "
                      f"torch.rand(B, L, generator=generator) < p_mask[:, None]; got shape {tuple(msk.shape)}, "
                      f"dtype {msk.dtype}")
    frac = msk.double().mean(1)                       # fraction of masked tokens in each row
    fixed_15 = abs(float(frac.mean()) - 0.15) < 0.02
    hint_15 = ("LLaDA does not mask a fixed 15% of the tokens (that is BERT): each row draws its own t ~ U(0, 1) "
               "and masks each token with probability p_mask = (1 - eps) t + eps, anywhere from almost none to all")
    hint_single = ("draw one t per row, t = torch.rand(B, generator=generator), so p_mask has shape (B,): "
                   "a single t for the whole batch makes every sequence in it equally noisy")
    if p.numel() == 1:
        fail(number, hint_15 if fixed_15 else hint_single)
    if p.shape != (B,) or not p.is_floating_point():
        fail(number, f"p_mask must be a float tensor of shape (B,) = ({B},), one masking probability per row; "
                      f"got shape {tuple(p.shape)}, dtype {p.dtype}")
    if not bool(torch.isfinite(p).all()):
        fail(number, "p_mask has NaN or inf values")
    if not bool((noisy[msk] == m).all()):
        fail(number, f"noisy must hold mask_id (the argument, here {m}) wherever masked is True")
    if not bool((noisy[~msk] == x0[~msk]).all()):
        fail(number, "noisy must equal x0 wherever masked is False: only the masked tokens change")
    p = p.double()
    if float(p.max() - p.min()) < 1e-9:
        fail(number, hint_15 if fixed_15 else hint_single)
    pc = p - p.mean()
    slope = float((pc * (frac - frac.mean())).sum() / (pc * pc).sum())
    intercept = float(frac.mean()) - slope * float(p.mean())
    if fixed_15 and abs(slope) < 0.2:
        fail(number, hint_15)
    lo, hi = float(p.min()), float(p.max())
    if lo < eps - 1e-6 or hi > 1 + 1e-6:
        fail(number, f"p_mask = (1 - eps) t + eps must lie in [eps, 1], but with eps = {eps} it ranges from "
                      f"{lo:.3g} to {hi:.3g}: did you forget eps? It keeps p_mask away from 0, where the weight "
                      "1/p_mask of the loss explodes")
    if slope < -0.5:
        fail(number, "mask each token with probability p_mask (torch.rand(B, L) < p_mask[:, None]), not 1 - p_mask: "
                      "a row with p_mask near 1 must be almost entirely [MASK]")
    if abs(slope - 1) > 0.05 or abs(intercept) > 0.05:
        fail(number, f"the fraction of masked tokens in a row should be p_mask on average, but its regression on "
                      f"p_mask has slope {slope:.3f} and intercept {intercept:.3f} (expected 1 and 0)")
    counts = msk.double().sum(1)
    ratio = float(((counts - L * p) ** 2).sum() / (L * p * (1 - p)).sum())
    if not 0.7 < ratio < 1.4:
        fail(number, f"mask each token independently with probability p_mask: the number of masked tokens in a row "
                      f"should be Binomial(L, p_mask), but its variance is {ratio:.2f} times the binomial one "
                      "(masking exactly round(p_mask * L) tokens gives almost none)")
    u = ((p - eps) / (1 - eps)).sort().values
    i = torch.arange(1, B + 1, dtype=torch.float64)
    ks = float(torch.maximum(i / B - u, u - (i - 1) / B).max())
    if ks > 0.05:
        fail(number, f"p_mask is not uniform on [eps, 1] (Kolmogorov-Smirnov distance {ks:.3f}): draw "
                      "t = torch.rand(B, generator=generator), uniform on [0, 1), then p_mask = (1 - eps) t + eps")
    again = call(number, fn, x0.clone(), m, torch.Generator().manual_seed(310), eps)
    if not all(torch.equal(a, b) for a, b in zip(out, again)):
        fail(number, "two calls with generators of the same seed gave different results: draw all randomness from "
                      "`generator` (torch.rand(..., generator=generator)), so that a seed fixes the corruption")
    print(f"Exercise {number} passed: p_mask = (1 - eps) t + eps with t ~ U(0, 1) per row, each token masked "
          f"independently with probability p_mask (checked on {B} rows)")
    return True


def check_pretrain_loss(fn: Callable) -> bool:
    """Exercise 1.2: ``fn(logits, x0, noisy, masked, p_mask) -> scalar``, LLaDA's pretraining loss with
    mask_id = 1 (the course tokenizer's): sum over masked positions of CE / p_mask, divided by B * L, the
    [MASK] logit excluded. Compared with :func:`course_lib.masked.llada_pretrain_loss`."""
    number = "1.2"
    g = torch.Generator().manual_seed(32)
    B, L, V, m = 8, 16, 12, llada.MASK_ID
    x0 = not_mask(torch.randint(0, V - 1, (B, L), generator=g), m)
    noisy, msk, p = masked.llada_forward_process(x0, m, g, 1e-3)
    logits = torch.randn(B, L, V, generator=g, dtype=torch.float64)
    logits[..., m] += 2.0                             # a [MASK] logit large enough to matter if it is not excluded
    got = run(number, fn, logits.clone(), x0.clone(), noisy.clone(), msk.clone(), p.clone())
    if got.numel() != 1:
        fail(number, f"return one number (a scalar tensor), got shape {tuple(got.shape)}: sum the weighted "
                      "losses over the whole batch, then divide by B * L")
    got = got.reshape(())
    want = masked.llada_pretrain_loss(logits, x0, noisy, msk, p, mask_id=m)
    nll = -torch.log_softmax(masked.exclude_mask(logits, m), -1).gather(-1, x0[..., None])[..., 0]
    nll_raw = -torch.log_softmax(logits, -1).gather(-1, x0[..., None])[..., 0]
    w = 1 / p[:, None]
    mistakes = {
        "divide by B * L (all positions), not by the number of masked tokens: the 1/p_mask weight already "
        "accounts for how many are masked": (nll * w)[msk].sum() / msk.sum(),
        "weight each masked token's cross-entropy by 1/p_mask of its row (the 1/t of the ELBO)":
            nll[msk].sum() / (B * L),
        "that is the plain masked-LM average (BERT): weight each masked token by 1/p_mask and divide by B * L, "
        "not by the number of masked tokens": nll[msk].sum() / msk.sum(),
        "sum over masked positions only: an unmasked token is visible in the input, so it carries no loss":
            (nll * w).sum() / (B * L),
        "exclude the [MASK] logit (set it to -inf) before the log-softmax: clean text never contains [MASK], "
        "so it is never a valid prediction": (nll_raw * w)[msk].sum() / (B * L),
    }
    return compare(number, got, want, mistakes, "loss = sum_{masked} CE / p_mask / (B * L), [MASK] logit excluded")


def check_num_transfer_tokens(fn: Callable) -> bool:
    """Exercise 4.1: ``fn(mask_count, steps) -> (B, steps)`` long: how many tokens LLaDA's sampler commits
    at each step. ``mask_count`` is a (B,) long tensor. Compared with :func:`course_lib.llada.num_transfer_tokens`."""
    number = "4.1"
    n = torch.tensor([0, 1, 4, 5, 7, 12, 13, 29])
    steps = 5
    got = run(number, fn, n.clone(), steps)
    if got.shape != (len(n), steps):
        fail(number, f"expected shape (B, steps) = {(len(n), steps)}, got {tuple(got.shape)}: one row per "
                      "sequence, one column per step")
    want = llada.num_transfer_tokens(n, steps)
    base, rem = n // steps, n % steps
    if got.dtype != torch.long:
        if got.is_floating_point() and torch.allclose(got.double(), (n / steps)[:, None].expand(-1, steps).double()):
            fail(number, "a step commits whole tokens: use n // steps and give the remainder n % steps to the "
                          "first steps, not n / steps")
        if torch.equal(got.double(), want.double()):
            fail(number, f"close, but return integer counts as a LongTensor (dtype torch.long, got {got.dtype}): "
                          "they are numbers of tokens")
    mistakes = {
        "the remainder n % steps goes to the *first* steps (one extra token each), not the last":
            base[:, None] + (torch.arange(steps)[None] >= steps - rem[:, None]).long(),
        "n // steps per step leaves n % steps tokens masked at the end: each row must sum to mask_count, so the "
        "first n % steps steps commit one token more": base[:, None].expand(-1, steps),
    }
    if not torch.equal(got.double(), want.double()):
        for hint, wrong in mistakes.items():
            if torch.equal(got.double(), wrong.double()):
                fail(number, f"close, but {hint}")
        if not torch.equal(got.double().sum(1), n.double()):
            fail(number, "each row must sum to its mask_count: every masked token is committed by the last step")
        fail(number, f"wrong counts: for n = {n.tolist()} and steps = {steps}, each step commits n // steps "
                      "tokens and the first n % steps steps one more")
    if got.dtype != torch.long:
        fail(number, f"return a LongTensor (dtype torch.long), got {got.dtype}")
    print(f"Exercise {number} passed: n // steps tokens per step, the first n % steps steps one more")
    return True


def check_low_confidence_step(fn: Callable) -> bool:
    """Exercise 4.2: ``fn(x, logits, k, mask_id) -> new x``, one step of LLaDA's low-confidence remasking at
    temperature 0: x (B, L) a canvas with [MASK]s, logits (B, L, V), k (B,) long the number of tokens to
    commit in each row. Propose the argmax token at every masked position ([MASK] logit excluded), score it
    by its softmax probability, commit the k[b] most confident masked positions of row b, change nothing
    else. Compared with the step of :func:`course_lib.llada.generate_steps`."""
    number = "4.2"
    g = torch.Generator().manual_seed(34)
    B, L, V, m = 6, 14, 11, 4
    k = torch.tensor([1, 2, 3, 0, 4, 2])
    n_mask = torch.tensor([3, 5, 7, 4, 9, 6])         # always more masks than k: some stay masked
    x = not_mask(torch.randint(0, V - 1, (B, L), generator=g), m)
    rank = torch.argsort(torch.argsort(torch.rand(B, L, generator=g), 1), 1)
    x = torch.where(rank < n_mask[:, None], torch.full_like(x, m), x)
    is_mask = x == m
    logits = 2 * torch.randn(B, L, V, generator=g, dtype=torch.float64)
    logits[..., m] += 4.0 * (torch.rand(B, L, generator=g) < 0.5)   # [MASK] would often win if it were allowed
    decoy = (x + 1) % V
    decoy = torch.where(decoy == m, (x + 2) % V, decoy)          # != x, != mask_id
    logits += 5.0 * torch.nn.functional.one_hot(decoy, V) * (~is_mask)[..., None]   # confident, different token
    got = run(number, fn, x.clone(), logits.clone(), k.clone(), m)
    if got.shape != x.shape:
        fail(number, f"return the new canvas, of shape (B, L) = {tuple(x.shape)} like x; got {tuple(got.shape)}")
    if got.dtype != x.dtype:
        fail(number, f"return token ids with x's dtype ({x.dtype}), got {got.dtype}")

    def step(lg, eligible, score_sign=1.0, conf_logits=None):
        proposal = llada.gumbel_max(lg, 0.0)
        probs = torch.softmax(lg if conf_logits is None else conf_logits, -1)
        conf = probs.gather(-1, proposal[..., None])[..., 0] * score_sign
        score = torch.where(eligible, conf, torch.full_like(conf, float("-inf")))
        return torch.where(llada.top_k_mask(score, eligible, k), proposal, x)

    ex = masked.exclude_mask(logits, m)
    want = step(ex, is_mask)
    if torch.equal(got, want):
        print(f"Exercise {number} passed: commit the k most confident masked positions (argmax token, [MASK] "
              "excluded); everything else unchanged")
        return True
    proposal = llada.gumbel_max(ex, 0.0)
    leave = ("commit only the k[b] most confident masked positions and leave every other position unchanged")
    mistakes = {
        "only [MASK] positions may be committed: give already-decoded positions the score -inf before choosing "
        "the top k": step(ex, torch.ones_like(is_mask)),
        "commit the k *most* confident masked positions (the highest softmax probability): low-confidence "
        "remasking throws away the least confident proposals": step(ex, is_mask, -1.0),
        "exclude the [MASK] logit (set it to -inf) before the argmax and the softmax: [MASK] is never a valid "
        "prediction": step(logits, is_mask),
        "compute the confidence from the softmax with the [MASK] logit excluded too, the distribution the "
        "proposal comes from": step(ex, is_mask, conf_logits=logits),
        f"the other masked positions stay [MASK] (their proposals are discarded): {leave}":
            torch.where(is_mask, proposal, x),
        f"return the canvas x with the committed tokens written in, not the proposals: {leave}": proposal,
    }
    for hint, wrong in mistakes.items():
        if torch.equal(got, wrong):
            fail(number, f"close, but {hint}")
    changed = got != x
    if bool((changed & ~is_mask).any()):
        fail(number, "positions already decoded (not [MASK]) must stay unchanged: commit only at [MASK] positions")
    if not torch.equal(changed.sum(1), k):
        fail(number, f"row b must get exactly k[b] new tokens (k = {k.tolist()}), got {changed.sum(1).tolist()}; "
                      "never propose [MASK] itself, and leave the other masked positions as [MASK]")
    if not torch.equal(got[changed], proposal[changed]):
        fail(number, "a committed position takes the argmax token of its logits, the [MASK] logit excluded "
                      "(temperature 0)")
    fail(number, "you committed the wrong positions: choose the k[b] masked positions of row b with the highest "
                  "confidence softmax(logits)[argmax], the [MASK] logit excluded")
