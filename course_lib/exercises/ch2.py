"""Checkers of chapter 2's exercises (discrete diffusion).

Use: ``exercises.check_...(my_function)`` in the chapter's "Your turn" cells; see :mod:`.base`.
"""
from __future__ import annotations

from typing import Callable

import torch

from .. import d3pm, masked
from .base import compare, run


def check_qbar(fn: Callable) -> bool:
    """Exercise 1.1: ``fn(alpha_bar, K, kind, mask_id) -> Q-bar_t`` (K, K), the closed form of the cumulative
    transition matrix for ``kind`` "uniform" or "absorbing" (D3PM App. A.2), as float64."""
    K, m = 7, 6
    for kind in ("uniform", "absorbing"):
        sch = d3pm.make_discrete_schedule(kind, K, T=50, mask_id=m if kind == "absorbing" else None)
        t = 17
        ab = float(sch.alpha_bars[t])
        got = run("1.1", fn, ab, K, kind, m)
        want = sch.Qbar(t)
        eye, ones = torch.eye(K, dtype=torch.float64), torch.ones(K, K, dtype=torch.float64)
        e_m = torch.zeros(K, K, dtype=torch.float64)
        e_m[:, m] = 1
        mistakes = {
            "the uniform part spreads (1 - alpha_bar) over K tokens: divide by K so every row sums to 1":
                ab * eye + (1 - ab) * ones,
            "alpha_bar is the probability of *keeping* the token: it goes on the diagonal, 1 - alpha_bar off it":
                (1 - ab) * eye + ab * (ones / K if kind == "uniform" else e_m),
            "rows are 'from', columns are 'to': the mass of absorbing noise goes to the [MASK] *column*":
                ab * eye + (1 - ab) * e_m.T,
        }
        compare("1.1", got, want, mistakes, f"{kind}: Q-bar_t = explicit product Q_1...Q_t (checked at t = {t})")
    return True


def check_d3pm_posterior(fn: Callable) -> bool:
    """Exercise 2.1: ``fn(x_t, x0, Q_t, Qbar_tm1, Qbar_t) -> q(x_{t-1} | x_t, x_0)`` of shape (B, K):
    x_t, x0 are (B,) token ids; the matrices are (K, K) row-stochastic (D3PM eq. 3)."""
    K = 6
    sch = d3pm.gaussian_schedule(K, T=20, beta_start=0.05, beta_end=0.3)   # noisy enough that every term matters
    g = torch.Generator().manual_seed(22)
    t = 9
    x0 = torch.randint(0, K, (64,), generator=g)
    xt = d3pm.q_sample(x0[:, None], t, sch, generator=g)[:, 0]
    Qt, Qa, Qb = sch.Q(t), sch.Qbar(t - 1), sch.Qbar(t)
    got = run("2.1", fn, xt, x0, Qt, Qa, Qb)
    want = d3pm.q_posterior(xt[:, None], x0[:, None], t, sch)[:, 0]
    unnorm = Qt[:, xt].T * Qa[x0]
    mistakes = {
        "q(x_t | x_{t-1}) as a function of x_{t-1} is the *column* x_t of Q_t (Q_t[:, x_t]), not its row":
            (Qt[xt] * Qa[x0]) / (Qt[xt] * Qa[x0]).sum(-1, keepdim=True),
        "normalise: divide by q(x_t | x_0) = Q-bar_t[x_0, x_t] so each row sums to 1": unnorm,
        "the prior over x_{t-1} is Q-bar_{t-1}[x_0], not Q-bar_t[x_0]":
            (Qt[:, xt].T * Qb[x0]) / (Qt[:, xt].T * Qb[x0]).sum(-1, keepdim=True),
    }
    return compare("2.1", got, want, mistakes, "q(x_{t-1} | x_t, x_0) = Q_t[:, x_t] * Q-bar_{t-1}[x_0] / Q-bar_t[x_0, x_t]")


def check_subs(fn: Callable) -> bool:
    """Exercise 5.1: ``fn(logits, x_t, mask_id) -> log-probabilities`` (B, L, V) under MDLM's SUBS
    parameterisation (eq. 7). Compared as probabilities (exp), so -inf and a large negative number agree."""
    g = torch.Generator().manual_seed(23)
    B, L, V, m = 8, 10, 9, 8
    logits = torch.randn(B, L, V, generator=g, dtype=torch.float64)
    x0 = torch.randint(0, V - 1, (B, L), generator=g)
    xt = torch.where(torch.rand(B, L, generator=g) < 0.5, torch.full_like(x0, m), x0)
    got = run("5.1", fn, logits, xt, m)
    want = masked.subs_log_probs(logits, xt, m).exp()
    plain = torch.softmax(logits, -1)
    no_mask = torch.softmax(logits.masked_fill(torch.arange(V) == m, float("-inf")), -1)
    mistakes = {
        "rule 1, zero masking probability: set the [MASK] logit to -inf before the softmax":
            torch.where((xt == m)[..., None], plain, torch.nn.functional.one_hot(xt, V).double()),
        "rule 2, carry-over unmasking: at an unmasked position the distribution is a point mass on x_t": no_mask,
    }
    return compare("5.1", got.exp() if got.dtype.is_floating_point else got, want, mistakes,
                    "SUBS: [MASK] gets probability 0; unmasked positions copy x_t")


def check_mdlm_loss(fn: Callable) -> bool:
    """Exercise 5.2: ``fn(logits, x0, x_t, t, mask_id) -> (B,)`` per-sequence NELBO estimate of MDLM with the
    linear schedule alpha_t = 1 - t (eq. 10-11): sum over masked positions of (1/t) * -log p(x0 | x_t)."""
    g = torch.Generator().manual_seed(24)
    B, L, V, m = 16, 12, 9, 8
    logits = torch.randn(B, L, V, generator=g, dtype=torch.float64)
    x0 = torch.randint(0, V - 1, (B, L), generator=g)
    t = masked.sample_times(B, g).double()
    xt, msk = masked.forward_mask(x0, t, "linear", m, g)
    got = run("5.2", fn, logits, x0, xt, t, m)
    want = masked.mdlm_loss(logits, x0, xt, msk, t, "linear", mask_id=m).nelbo
    logp = masked.subs_log_probs(logits, xt, m)
    nll = torch.where(msk, -logp.gather(-1, x0[..., None])[..., 0], torch.zeros(()))
    mistakes = {
        "weight each masked token's loss by w(t) = -alpha'_t / (1 - alpha_t) = 1/t": nll.sum(1),
        "the NELBO sums over masked positions; do not divide by how many are masked":
            nll.sum(1) / t / msk.sum(1).clamp(min=1),
        "the weight is 1/t, not t": nll.sum(1) * t,
    }
    return compare("5.2", got, want, mistakes, "NELBO_t(x) = (1/t) sum_{masked l} -log x_theta^l(z_t)[x^l]")
