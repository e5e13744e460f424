"""The score function, denoising score matching and (annealed) Langevin dynamics.

The bridge between DDPM and score-based models:

    grad_x log q_t(x_t)  =  -E[eps | x_t] / sqrt(1 - abar_t)       (Tweedie / Vincent 2011)

so a trained noise predictor gives a score estimate s_theta(x, t) = -eps_theta(x, t) / sqrt(1 - abar_t).
Denoising score matching (Vincent 2011) trains s_theta without knowing q_t:

    E || s_theta(x_t) - grad log q(x_t | x_0) ||^2 = E || s_theta(x_t) - grad log q_t(x_t) ||^2 + const,

and grad log q(x_t | x_0) = -eps / sqrt(1 - abar_t), which is why L_simple is score matching
weighted by (1 - abar_t). Langevin dynamics samples from a density using only its score
(Song & Ermon 2019, Algorithm 1 for the annealed version).
"""
from __future__ import annotations

from typing import Callable, Iterator, Sequence

import torch

from .ddpm import Model, Step, check_t_batch, check_x, coef, eval_eps
from .schedules import NoiseSchedule

ScoreFn = Callable[[torch.Tensor], torch.Tensor]


def score_from_eps(eps: torch.Tensor, t, schedule: NoiseSchedule) -> torch.Tensor:
    """s = -eps / sigma_t with sigma_t = sqrt(1 - abar_t)."""
    t = check_t_batch(t, schedule, eps, lo=1)
    return -eps / torch.sqrt(1 - coef(schedule.alpha_bars, t, eps))


@torch.no_grad()
def model_score(model: Model, x: torch.Tensor, t, schedule: NoiseSchedule) -> torch.Tensor:
    """s_theta(x, t) = -eps_theta(x, t) / sqrt(1 - abar_t)."""
    tt = check_t_batch(t, schedule, x, lo=1)
    return score_from_eps(eval_eps(model, x, tt), tt, schedule)


def tweedie_x0(xt: torch.Tensor, score: torch.Tensor, t, schedule: NoiseSchedule) -> torch.Tensor:
    """Tweedie's formula: E[x_0 | x_t] = (x_t + (1 - abar_t) grad log q_t(x_t)) / sqrt(abar_t)."""
    t = check_t_batch(t, schedule, xt, lo=1)
    ab = coef(schedule.alpha_bars, t, xt)
    return (xt + (1 - ab) * score) / torch.sqrt(ab)


def dsm_loss(score_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x0: torch.Tensor, t,
             schedule: NoiseSchedule, noise=None, generator=None) -> torch.Tensor:
    """Denoising score matching at time t: E || s(x_t, t) + eps / sigma_t ||^2 (sum over dims, mean over batch)."""
    check_x(x0, "x0")
    t = check_t_batch(t, schedule, x0, lo=1)
    eps = noise if noise is not None else torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
    ab = coef(schedule.alpha_bars, t, x0)
    xt = torch.sqrt(ab) * x0 + torch.sqrt(1 - ab) * eps
    target = -eps / torch.sqrt(1 - ab)
    return ((score_fn(xt, t) - target) ** 2).sum(tuple(range(1, x0.ndim))).mean()


def relative_error(learned: torch.Tensor, exact: torch.Tensor) -> float:
    """mean_i || s_theta(x_i) - s(x_i) || / || s(x_i) || over the rows x_i."""
    if learned.shape != exact.shape:
        raise ValueError(f"shapes differ: {tuple(learned.shape)} vs {tuple(exact.shape)}")
    num = (learned.double() - exact.double()).norm(dim=-1)
    return float((num / exact.double().norm(dim=-1).clamp_min(1e-12)).mean())


def langevin_step(x: torch.Tensor, score: torch.Tensor, step_size: float, noise: torch.Tensor) -> torch.Tensor:
    """Unadjusted Langevin: x' = x + (step/2) grad log p(x) + sqrt(step) z, z ~ N(0, I)."""
    if step_size <= 0:
        raise ValueError(f"step_size must be positive, got {step_size}")
    if not (x.shape == score.shape == noise.shape):
        raise ValueError("x, score and noise must have the same shape")
    return x + 0.5 * step_size * score + step_size ** 0.5 * noise


@torch.no_grad()
def langevin(score_fn: ScoreFn, x: torch.Tensor, step_size: float, n_steps: int, generator=None) -> Iterator[torch.Tensor]:
    """Plain Langevin dynamics for a fixed density; yields every state."""
    yield x
    for _ in range(n_steps):
        x = langevin_step(x, score_fn(x), step_size, torch.randn(x.shape, generator=generator))
        yield x


@torch.no_grad()
def annealed_langevin(model: Model, shape, schedule: NoiseSchedule, levels: Sequence[int] | int = 100,
                      steps_per_level: int = 10, delta: float = 0.1, denoise: bool = True,
                      generator=None) -> Iterator[Step]:
    """Annealed Langevin dynamics with the learned score (Song & Ermon 2019, Algorithm 1, in VP form).

    For each noise level t (from T down to small), run ``steps_per_level`` Langevin steps targeting
    q_t with step size alpha_t = delta * sigma_t^2, sigma_t^2 = 1 - abar_t (the "step proportional to
    the noise variance" rule). If ``denoise``, finish with one Tweedie step to E[x_0 | x_t].
    Yields a Step after every level.
    """
    if isinstance(levels, int):
        levels = torch.linspace(schedule.T, 1, levels).round().long().unique_consecutive().tolist()
    if not levels or any(not 1 <= int(t) <= schedule.T for t in levels):
        raise ValueError(f"levels must lie in [1, {schedule.T}]")
    x = torch.randn(tuple(shape), generator=generator)
    yield Step(schedule.T, x)
    for t in levels:
        sigma2 = float(1 - schedule.alpha_bars[t])
        for _ in range(steps_per_level):
            s = model_score(model, x, t, schedule)
            x = langevin_step(x, s, delta * sigma2, torch.randn(x.shape, generator=generator))
        yield Step(int(t), x)
    if denoise:
        t = int(levels[-1])
        x = tweedie_x0(x, model_score(model, x, t, schedule), t, schedule)
        yield Step(0, x)
