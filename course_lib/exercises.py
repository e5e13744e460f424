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

from . import ddpm, schedules, score


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
