"""The SDE view (Song et al. 2021, "Score-Based Generative Modeling through SDEs").

DDPM with the linear schedule is a discretisation of the
variance-preserving SDE on s in [0, 1]:

    dx = -1/2 beta(s) x ds + sqrt(beta(s)) dw,      beta(s) = beta_min + s (beta_max - beta_min),

with beta_min = 0.1, beta_max = 20 (so beta(t/T)/T matches the discrete 1e-4..0.02 for T = 1000) and
the marginal q(x_s | x_0) = N(sqrt(abar(s)) x_0, (1 - abar(s)) I), abar(s) = exp(-int_0^s beta).
Anderson's reverse-time SDE and the probability-flow ODE share the marginals:

    reverse SDE:  dx = [f(x, s) - g(s)^2 grad log q_s(x)] ds + g(s) dw_bar   (integrated s: 1 -> 0)
    PF-ODE:       dx/ds = f(x, s) - 1/2 g(s)^2 grad log q_s(x)

with f = -1/2 beta x, g^2 = beta. The course's eps-model, trained at discrete steps, is queried at
the continuous time t = s T (its time input is a float).
"""
from __future__ import annotations

import math
from typing import Iterator

import torch

from .ddpm import Model, Step


class VPSDE:
    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, T: int = 1000):
        if not 0 < beta_min < beta_max:
            raise ValueError("need 0 < beta_min < beta_max")
        self.beta_min, self.beta_max, self.T = beta_min, beta_max, T

    def beta(self, s):
        return self.beta_min + s * (self.beta_max - self.beta_min)

    def alpha_bar(self, s):
        """exp(-int_0^s beta(u) du) = exp(-(beta_min s + (beta_max - beta_min) s^2 / 2))."""
        s = torch.as_tensor(s, dtype=torch.float64)
        if ((s < 0) | (s > 1)).any():
            raise ValueError("s must lie in [0, 1]")
        return torch.exp(-(self.beta_min * s + 0.5 * (self.beta_max - self.beta_min) * s ** 2))

    def drift(self, x, s):
        return -0.5 * self.beta(s) * x

    @torch.no_grad()
    def score(self, model: Model, x: torch.Tensor, s: float) -> torch.Tensor:
        """s_theta(x, s) = -eps_theta(x, s T) / sqrt(1 - abar(s))."""
        t = torch.full((x.shape[0],), s * self.T, dtype=x.dtype, device=x.device)
        return -model(x, t) / math.sqrt(1 - float(self.alpha_bar(s)))


def _grid(n_steps: int, eps: float):
    if not isinstance(n_steps, int) or n_steps < 1:
        raise ValueError(f"n_steps must be a positive integer, got {n_steps!r}")
    if not 0 < eps < 1:
        raise ValueError(f"eps must lie in (0, 1), got {eps}")
    return torch.linspace(1.0, eps, n_steps + 1, dtype=torch.float64).tolist()


@torch.no_grad()
def reverse_sde_sampler(model: Model, shape, sde: VPSDE, n_steps: int = 1000, eps: float = 1e-3,
                        generator=None) -> Iterator[Step]:
    """Euler-Maruyama on the reverse-time SDE from s = 1 to s = eps; yields n_steps + 1 states.
    The last step adds no noise (it returns the mean, as DDPM's last step)."""
    grid = _grid(n_steps, eps)
    x = torch.randn(tuple(shape), generator=generator)
    yield Step(grid[0] * sde.T, x)
    for i, (s, s_next) in enumerate(zip(grid[:-1], grid[1:])):
        h = s - s_next
        drift = sde.drift(x, s) - sde.beta(s) * sde.score(model, x, s)
        x = x - drift * h
        if i < n_steps - 1:
            x = x + math.sqrt(sde.beta(s) * h) * torch.randn(x.shape, generator=generator)
        yield Step(s_next * sde.T, x)


def _integrate(model: Model, x: torch.Tensor, sde: VPSDE, grid: list, method: str) -> Iterator[Step]:
    """Euler or Heun (2nd order) on the probability-flow ODE along the times ``grid`` (either direction)."""
    if method not in ("euler", "heun"):
        raise ValueError(f"method must be 'euler' or 'heun', got {method!r}")

    def v(x, s):
        return sde.drift(x, s) - 0.5 * sde.beta(s) * sde.score(model, x, s)

    yield Step(grid[0] * sde.T, x)
    for s, s_next in zip(grid[:-1], grid[1:]):
        h = s_next - s                      # negative from noise to data, positive from data to noise
        d = v(x, s)
        x_euler = x + h * d
        if method == "heun":
            x = x + 0.5 * h * (d + v(x_euler, s_next))
        else:
            x = x_euler
        yield Step(s_next * sde.T, x)


@torch.no_grad()
def pf_ode_sampler(model: Model, shape, sde: VPSDE, n_steps: int = 100, eps: float = 1e-3,
                   method: str = "heun", generator=None, x_T=None) -> Iterator[Step]:
    """Probability-flow ODE from s = 1 to s = eps with Euler or Heun (2nd order); deterministic given x_T."""
    grid = _grid(n_steps, eps)
    x = x_T.clone() if x_T is not None else torch.randn(tuple(shape), generator=generator)
    yield from _integrate(model, x, sde, grid, method)


@torch.no_grad()
def pf_ode_encode(model: Model, x0: torch.Tensor, sde: VPSDE, n_steps: int = 100, eps: float = 1e-3,
                  method: str = "heun") -> Iterator[Step]:
    """The same ODE run forwards, from data at s = eps to noise at s = 1: the inverse of :func:`pf_ode_sampler`
    (up to the solver's error). Encoding then decoding returns the data, which is what DDIM inversion and ODE
    likelihoods rely on."""
    return _integrate(model, x0.clone(), sde, _grid(n_steps, eps)[::-1], method)
