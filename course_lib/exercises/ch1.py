"""Checkers of chapter 1's exercises (DDPM and score matching).

Use: ``exercises.check_...(my_function)`` in the chapter's "Your turn" cells; see :mod:`.base`.
"""
from __future__ import annotations

from typing import Callable

import torch

from .. import ddpm, schedules, score
from .base import compare, run


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
    got = run("1.1", fn, x0, t, eps, sch.alpha_bars)
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
    return compare("1.1", got, want, mistakes, "x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps")


def check_posterior_mean(fn: Callable) -> bool:
    """Exercise 2.1: ``fn(x0, xt, t, betas, alphas, alpha_bars) -> mu~_t(x_t, x_0)`` (eq. 7)."""
    g, sch, x0, t, eps = _setup(2)
    xt = ddpm.q_sample(x0, t, sch, noise=eps)
    got = run("2.1", fn, x0, xt, t, sch.betas, sch.alphas, sch.alpha_bars)
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
    return compare("2.1", got, want, mistakes,
                    "mu~ = sqrt(abar_{t-1}) beta_t/(1 - abar_t) x_0 + sqrt(alpha_t)(1 - abar_{t-1})/(1 - abar_t) x_t")


def check_ddim_step(fn: Callable) -> bool:
    """Exercise 5.1: ``fn(x_t, eps_hat, t, s, alpha_bars) -> x_s`` (deterministic DDIM, eta = 0)."""
    g, sch, x0, _, eps = _setup(3)
    t, s = 600, 550
    xt = ddpm.q_sample(x0, t, sch, noise=eps)
    eps_hat = eps + 0.1 * torch.randn(eps.shape, generator=g, dtype=eps.dtype)
    got = run("5.1", fn, xt, eps_hat, t, s, sch.alpha_bars)
    want, x0_hat = ddpm.ddim_step(xt, eps_hat, t, s, sch, eta=0.0)
    ab_s = float(sch.alpha_bars[s])
    mistakes = {
        "the noise direction is scaled by sqrt(1 - alpha_bar_s), the noise level at the *target* time s":
            ab_s ** 0.5 * x0_hat + float(1 - sch.alpha_bars[t]) ** 0.5 * eps_hat,
        "that is x0_hat itself: re-noise it to time s with the predicted eps": x0_hat,
    }
    return compare("5.1", got, want, mistakes,
                    "x_s = sqrt(abar_s) x0_hat + sqrt(1 - abar_s) eps_hat, x0_hat = (x_t - sqrt(1 - abar_t) eps_hat)/sqrt(abar_t)")


def check_langevin_step(fn: Callable) -> bool:
    """Exercise 6.1: ``fn(x, score, step_size, z) -> x'`` (one unadjusted Langevin step)."""
    g = torch.Generator().manual_seed(4)
    x = torch.randn(64, 2, generator=g, dtype=torch.float64)
    sc, z = -x, torch.randn(64, 2, generator=g, dtype=torch.float64)
    step = 0.05
    got = run("6.1", fn, x, sc, step, z)
    want = score.langevin_step(x, sc, step, z)
    mistakes = {
        "the drift is (step/2) * score, not step * score": x + step * sc + step ** 0.5 * z,
        "the noise is scaled by sqrt(step), not step": x + 0.5 * step * sc + step * z,
        "Langevin climbs the log-density: add the score, do not subtract it": x - 0.5 * step * sc + step ** 0.5 * z,
    }
    return compare("6.1", got, want, mistakes, "x' = x + (step/2) score + sqrt(step) z")
