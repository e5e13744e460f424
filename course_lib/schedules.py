"""Noise schedules for DDPM: a schedule is a tiny object with one job, holding beta_t and alpha-bar_t.

Convention used throughout the course:
index ``t`` runs over ``0..T`` and arrays carry a leading entry for ``t = 0``
(``betas[0] = 0``, ``alpha_bars[0] = 1``), so code reads like the equations:

    alpha_t = 1 - beta_t,    alpha-bar_t = prod_{s=1..t} alpha_s          (Ho et al. 2020, eq. 4)

- linear:    beta_t from 1e-4 to 0.02 (Ho et al. 2020; tanelp/tiny-diffusion uses the same endpoints)
- cosine:    alpha-bar_t = f(t)/f(0), f(t) = cos^2(((t/T + s)/(1 + s)) pi/2), s = 0.008,
             betas clipped at 0.999 (Nichol & Dhariwal 2021, eq. 17)
- quadratic: beta_t = linspace(sqrt(1e-4), sqrt(0.02))^2 (tanelp/tiny-diffusion)
"""
from __future__ import annotations

import math

import torch

SCHEDULES = ("linear", "cosine", "quadratic")


class NoiseSchedule:
    """beta_t, alpha_t and alpha-bar_t for t = 0..T (float64), plus the signal-to-noise ratio."""

    def __init__(self, betas: torch.Tensor, name: str = "custom"):
        betas = torch.as_tensor(betas, dtype=torch.float64)
        if betas.ndim != 1 or len(betas) < 1:
            raise ValueError(f"betas must be a non-empty 1-D tensor, got shape {tuple(betas.shape)}")
        if not bool(((betas > 0) & (betas < 1)).all()):
            raise ValueError("every beta_t must lie in (0, 1)")
        self.name = name
        self.T = len(betas)
        self.betas = torch.cat([torch.zeros(1, dtype=torch.float64), betas])
        self.alphas = 1.0 - self.betas
        self.alpha_bars = torch.cumprod(self.alphas, dim=0)

    def snr(self) -> torch.Tensor:
        """SNR(t) = alpha-bar_t / (1 - alpha-bar_t) for t = 1..T (Kingma et al. 2021)."""
        ab = self.alpha_bars[1:]
        return ab / (1.0 - ab)

    def sigma(self, t) -> torch.Tensor:
        """Noise standard deviation sqrt(1 - alpha-bar_t) of q(x_t | x_0)."""
        return torch.sqrt(1.0 - self.alpha_bars[check_t(t, self)])

    def __repr__(self) -> str:
        return f"NoiseSchedule({self.name!r}, T={self.T})"


def check_t(t, schedule, lo: int = 0) -> torch.Tensor:
    """Validate integer time step(s) ``lo <= t <= T``; return a long tensor. Raises ValueError.

    ``schedule`` is anything with an integer ``T`` (also chapter 2's discrete schedules)."""
    tt = torch.as_tensor(t)
    if tt.is_floating_point():
        if not bool((tt == tt.round()).all()):
            raise ValueError(f"time steps must be integers, got {t!r}")
        tt = tt.round()
    tt = tt.long()
    if tt.numel() and (int(tt.min()) < lo or int(tt.max()) > schedule.T):
        raise ValueError(f"t must lie in [{lo}, {schedule.T}], got values in "
                         f"[{int(tt.min())}, {int(tt.max())}]")
    return tt


def linear_schedule(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> NoiseSchedule:
    """Ho et al. (2020): beta_t linear from 1e-4 to 0.02 (their T = 1000)."""
    _check_T(T)
    return NoiseSchedule(torch.linspace(beta_start, beta_end, T, dtype=torch.float64), "linear")


def quadratic_schedule(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> NoiseSchedule:
    """beta_t = linspace(sqrt(beta_start), sqrt(beta_end))^2 (tanelp/tiny-diffusion's option)."""
    _check_T(T)
    b = torch.linspace(math.sqrt(beta_start), math.sqrt(beta_end), T, dtype=torch.float64) ** 2
    return NoiseSchedule(b, "quadratic")


def cosine_schedule(T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> NoiseSchedule:
    """Nichol & Dhariwal (2021), eq. 17: alpha-bar_t = f(t)/f(0) with f(t) = cos^2(((t/T+s)/(1+s)) pi/2)."""
    _check_T(T)
    t = torch.arange(T + 1, dtype=torch.float64)
    f = torch.cos(((t / T + s) / (1 + s)) * math.pi / 2) ** 2
    ab = f / f[0]
    betas = (1 - ab[1:] / ab[:-1]).clamp(max=max_beta)
    return NoiseSchedule(betas, "cosine")


def make_schedule(name: str, T: int = 1000) -> NoiseSchedule:
    """Build a schedule by name: one of ``SCHEDULES``."""
    makers = {"linear": linear_schedule, "cosine": cosine_schedule, "quadratic": quadratic_schedule}
    if name not in makers:
        raise ValueError(f"unknown schedule {name!r}; choose one of {SCHEDULES}")
    return makers[name](T)


def _check_T(T) -> None:
    if not isinstance(T, int) or T < 1:
        raise ValueError(f"T must be a positive integer, got {T!r}")
