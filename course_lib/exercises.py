"""Checkers for the chapters' exercises: each compares a student's function with the course's
reference on random inputs and explains what is wrong, recognising the usual mistakes.

Introduced in chapter 1 ("Your turn" cells). A checker prints one line and returns True when the
function is right; otherwise it raises :class:`ExerciseError` (an ``AssertionError``) with a hint.
A stub that still raises ``NotImplementedError`` is let through unchanged, so student notebooks
show exactly which exercises are left.
"""
from __future__ import annotations

from typing import Callable

import torch

from . import d3pm, ddpm, masked, schedules, score


class ExerciseError(AssertionError):
    """A student's answer is wrong; the message says how."""


def _run(number: str, fn: Callable, *args):
    try:
        out = fn(*args)
    except NotImplementedError:
        raise
    except Exception as e:  # show the student's own error with context
        raise ExerciseError(f"Exercise {number}: your function raised {type(e).__name__}: {e}") from e
    if not isinstance(out, torch.Tensor):
        raise ExerciseError(f"Exercise {number}: return a torch.Tensor, got {type(out).__name__}")
    return out


def _compare(number: str, got: torch.Tensor, want: torch.Tensor, mistakes: dict, what: str) -> bool:
    if got.shape != want.shape:
        raise ExerciseError(f"Exercise {number}: expected shape {tuple(want.shape)}, got {tuple(got.shape)}. "
                            "Check how the per-example coefficient broadcasts against x (reshape it to (B, 1)).")
    if not torch.isfinite(got).all():
        raise ExerciseError(f"Exercise {number}: your result has NaN or inf values")
    if torch.allclose(got.double(), want.double(), rtol=1e-4, atol=1e-5):
        print(f"Exercise {number} passed: {what}")
        return True
    for hint, wrong in mistakes.items():
        if torch.allclose(got.double(), wrong.double(), rtol=1e-4, atol=1e-5):
            raise ExerciseError(f"Exercise {number}: close, but {hint}")
    err = float((got.double() - want.double()).abs().max())
    raise ExerciseError(f"Exercise {number}: wrong values (max abs error {err:.3g}). Expected {what}")


def _setup(seed: int = 0, B: int = 64, D: int = 2):
    g = torch.Generator().manual_seed(seed)
    sch = schedules.linear_schedule(1000)
    x0 = torch.randn(B, D, generator=g, dtype=torch.float64)
    t = torch.randint(2, sch.T + 1, (B,), generator=g)
    eps = torch.randn(B, D, generator=g, dtype=torch.float64)
    return g, sch, x0, t, eps


def check_q_sample(fn: Callable) -> bool:
    """Exercise 1.1: ``fn(x0, t, eps, alpha_bars) -> x_t`` (closed-form forward process, eq. 4)."""
    _, sch, x0, t, eps = _setup(1)
    got = _run("1.1", fn, x0, t, eps, sch.alpha_bars)
    ab = sch.alpha_bars[t][:, None]
    want = ddpm.q_sample(x0, t, sch, noise=eps)
    mistakes = {
        "use sqrt(alpha_bar_t) and sqrt(1 - alpha_bar_t), not alpha_bar_t and 1 - alpha_bar_t (those are the variances)":
            ab * x0 + (1 - ab) * eps,
        "the noise is scaled by sqrt(1 - alpha_bar_t), not sqrt(beta_t) (that is one step, eq. 2)":
            torch.sqrt(ab) * x0 + torch.sqrt(sch.betas[t][:, None]) * eps,
        "index alpha_bars with t, not t - 1": torch.sqrt(sch.alpha_bars[t - 1][:, None]) * x0
            + torch.sqrt(1 - sch.alpha_bars[t - 1][:, None]) * eps,
    }
    return _compare("1.1", got, want, mistakes, "x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps")


def check_posterior_mean(fn: Callable) -> bool:
    """Exercise 1.2: ``fn(x0, xt, t, betas, alphas, alpha_bars) -> mu~_t(x_t, x_0)`` (eq. 7)."""
    g, sch, x0, t, eps = _setup(2)
    xt = ddpm.q_sample(x0, t, sch, noise=eps)
    got = _run("1.2", fn, x0, xt, t, sch.betas, sch.alphas, sch.alpha_bars)
    want, _ = ddpm.q_posterior(x0, xt, t, sch)
    ab, abp = sch.alpha_bars[t][:, None], sch.alpha_bars[t - 1][:, None]
    b, a = sch.betas[t][:, None], sch.alphas[t][:, None]
    mistakes = {
        "the x_0 coefficient uses sqrt(alpha_bar_{t-1}), not sqrt(alpha_bar_t)":
            torch.sqrt(ab) * b / (1 - ab) * x0 + torch.sqrt(a) * (1 - abp) / (1 - ab) * xt,
        "the x_t coefficient uses sqrt(alpha_t), not alpha_t":
            torch.sqrt(abp) * b / (1 - ab) * x0 + a * (1 - abp) / (1 - ab) * xt,
        "the coefficients swap: x_0 goes with beta_t, x_t with (1 - alpha_bar_{t-1})":
            torch.sqrt(abp) * (1 - abp) / (1 - ab) * x0 + torch.sqrt(a) * b / (1 - ab) * xt,
    }
    return _compare("1.2", got, want, mistakes,
                    "mu~ = sqrt(abar_{t-1}) beta_t/(1 - abar_t) x_0 + sqrt(alpha_t)(1 - abar_{t-1})/(1 - abar_t) x_t")


def check_ddim_step(fn: Callable) -> bool:
    """Exercise 1.3: ``fn(x_t, eps_hat, t, s, alpha_bars) -> x_s`` (deterministic DDIM, eta = 0)."""
    g, sch, x0, _, eps = _setup(3)
    t, s = 600, 550
    xt = ddpm.q_sample(x0, t, sch, noise=eps)
    eps_hat = eps + 0.1 * torch.randn(eps.shape, generator=g, dtype=eps.dtype)
    got = _run("1.3", fn, xt, eps_hat, t, s, sch.alpha_bars)
    want, x0_hat = ddpm.ddim_step(xt, eps_hat, t, s, sch, eta=0.0)
    ab_s = float(sch.alpha_bars[s])
    mistakes = {
        "the noise direction is scaled by sqrt(1 - alpha_bar_s), the noise level at the *target* time s":
            ab_s ** 0.5 * x0_hat + float(1 - sch.alpha_bars[t]) ** 0.5 * eps_hat,
        "that is x0_hat itself: re-noise it to time s with the predicted eps": x0_hat,
    }
    return _compare("1.3", got, want, mistakes,
                    "x_s = sqrt(abar_s) x0_hat + sqrt(1 - abar_s) eps_hat, x0_hat = (x_t - sqrt(1 - abar_t) eps_hat)/sqrt(abar_t)")


def check_langevin_step(fn: Callable) -> bool:
    """Exercise 1.4: ``fn(x, score, step_size, z) -> x'`` (one unadjusted Langevin step)."""
    g = torch.Generator().manual_seed(4)
    x = torch.randn(64, 2, generator=g, dtype=torch.float64)
    sc, z = -x, torch.randn(64, 2, generator=g, dtype=torch.float64)
    step = 0.05
    got = _run("1.4", fn, x, sc, step, z)
    want = score.langevin_step(x, sc, step, z)
    mistakes = {
        "the drift is (step/2) * score, not step * score": x + step * sc + step ** 0.5 * z,
        "the noise is scaled by sqrt(step), not step": x + 0.5 * step * sc + step * z,
        "Langevin climbs the log-density: add the score, do not subtract it": x - 0.5 * step * sc + step ** 0.5 * z,
    }
    return _compare("1.4", got, want, mistakes, "x' = x + (step/2) score + sqrt(step) z")


# ------------------------------------------------------------------ chapter 2
def check_qbar(fn: Callable) -> bool:
    """Exercise 2.1: ``fn(alpha_bar, K, kind, mask_id) -> Q-bar_t`` (K, K), the closed form of the cumulative
    transition matrix for ``kind`` "uniform" or "absorbing" (D3PM App. A.2), as float64."""
    K, m = 7, 6
    for kind in ("uniform", "absorbing"):
        sch = d3pm.make_discrete_schedule(kind, K, T=50, mask_id=m if kind == "absorbing" else None)
        t = 17
        ab = float(sch.alpha_bars[t])
        got = _run("2.1", fn, ab, K, kind, m)
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
        _compare("2.1", got, want, mistakes, f"{kind}: Q-bar_t = explicit product Q_1...Q_t (checked at t = {t})")
    return True


def check_d3pm_posterior(fn: Callable) -> bool:
    """Exercise 2.2: ``fn(x_t, x0, Q_t, Qbar_tm1, Qbar_t) -> q(x_{t-1} | x_t, x_0)`` of shape (B, K):
    x_t, x0 are (B,) token ids; the matrices are (K, K) row-stochastic (D3PM eq. 3)."""
    K = 6
    sch = d3pm.gaussian_schedule(K, T=20, beta_start=0.05, beta_end=0.3)   # noisy enough that every term matters
    g = torch.Generator().manual_seed(22)
    t = 9
    x0 = torch.randint(0, K, (64,), generator=g)
    xt = d3pm.q_sample(x0[:, None], t, sch, generator=g)[:, 0]
    Qt, Qa, Qb = sch.Q(t), sch.Qbar(t - 1), sch.Qbar(t)
    got = _run("2.2", fn, xt, x0, Qt, Qa, Qb)
    want = d3pm.q_posterior(xt[:, None], x0[:, None], t, sch)[:, 0]
    unnorm = Qt[:, xt].T * Qa[x0]
    mistakes = {
        "q(x_t | x_{t-1}) as a function of x_{t-1} is the *column* x_t of Q_t (Q_t[:, x_t]), not its row":
            (Qt[xt] * Qa[x0]) / (Qt[xt] * Qa[x0]).sum(-1, keepdim=True),
        "normalise: divide by q(x_t | x_0) = Q-bar_t[x_0, x_t] so each row sums to 1": unnorm,
        "the prior over x_{t-1} is Q-bar_{t-1}[x_0], not Q-bar_t[x_0]":
            (Qt[:, xt].T * Qb[x0]) / (Qt[:, xt].T * Qb[x0]).sum(-1, keepdim=True),
    }
    return _compare("2.2", got, want, mistakes, "q(x_{t-1} | x_t, x_0) = Q_t[:, x_t] * Q-bar_{t-1}[x_0] / Q-bar_t[x_0, x_t]")


def check_subs(fn: Callable) -> bool:
    """Exercise 2.3: ``fn(logits, x_t, mask_id) -> log-probabilities`` (B, L, V) under MDLM's SUBS
    parameterisation (eq. 7). Compared as probabilities (exp), so -inf and a large negative number agree."""
    g = torch.Generator().manual_seed(23)
    B, L, V, m = 8, 10, 9, 8
    logits = torch.randn(B, L, V, generator=g, dtype=torch.float64)
    x0 = torch.randint(0, V - 1, (B, L), generator=g)
    xt = torch.where(torch.rand(B, L, generator=g) < 0.5, torch.full_like(x0, m), x0)
    got = _run("2.3", fn, logits, xt, m)
    want = masked.subs_log_probs(logits, xt, m).exp()
    plain = torch.softmax(logits, -1)
    no_mask = torch.softmax(logits.masked_fill(torch.arange(V) == m, float("-inf")), -1)
    mistakes = {
        "rule 1, zero masking probability: set the [MASK] logit to -inf before the softmax":
            torch.where((xt == m)[..., None], plain, torch.nn.functional.one_hot(xt, V).double()),
        "rule 2, carry-over unmasking: at an unmasked position the distribution is a point mass on x_t": no_mask,
    }
    return _compare("2.3", got.exp() if got.dtype.is_floating_point else got, want, mistakes,
                    "SUBS: [MASK] gets probability 0; unmasked positions copy x_t")


def check_mdlm_loss(fn: Callable) -> bool:
    """Exercise 2.4: ``fn(logits, x0, x_t, t, mask_id) -> (B,)`` per-sequence NELBO estimate of MDLM with the
    linear schedule alpha_t = 1 - t (eq. 10-11): sum over masked positions of (1/t) * -log p(x0 | x_t)."""
    g = torch.Generator().manual_seed(24)
    B, L, V, m = 16, 12, 9, 8
    logits = torch.randn(B, L, V, generator=g, dtype=torch.float64)
    x0 = torch.randint(0, V - 1, (B, L), generator=g)
    t = masked.sample_times(B, g).double()
    xt, msk = masked.forward_mask(x0, t, "linear", m, g)
    got = _run("2.4", fn, logits, x0, xt, t, m)
    want = masked.mdlm_loss(logits, x0, xt, msk, t, "linear", mask_id=m).nelbo
    logp = masked.subs_log_probs(logits, xt, m)
    nll = torch.where(msk, -logp.gather(-1, x0[..., None])[..., 0], torch.zeros(()))
    mistakes = {
        "weight each masked token's loss by w(t) = -alpha'_t / (1 - alpha_t) = 1/t": nll.sum(1),
        "the NELBO sums over masked positions; do not divide by how many are masked":
            nll.sum(1) / t / msk.sum(1).clamp(min=1),
        "the weight is 1/t, not t": nll.sum(1) * t,
    }
    return _compare("2.4", got, want, mistakes, "NELBO_t(x) = (1/t) sum_{masked l} -log x_theta^l(z_t)[x^l]")
