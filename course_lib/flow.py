"""Flow matching: the probability-flow ODE trained directly (Lipman et al. 2023; Liu et al. 2023, rectified flow).

Instead of noising by a schedule and reading a velocity off a noise predictor, draw a point on the straight line
between a data point x_0 and Gaussian noise eps,

    x_tau = (1 - tau) x_0 + tau eps,      tau ~ U(0, 1),

and regress a network v_theta(x_tau, tau) on the line's velocity d x_tau / d tau = eps - x_0:

    L_FM = E || (eps - x_0) - v_theta(x_tau, tau) ||^2.

Its minimiser is v*(x, tau) = E[eps - x_0 | x_tau = x] = (x - E[x_0 | x_tau = x]) / tau, and the ODE
dx/dtau = v*(x, tau), integrated from tau = 1 (noise) to 0, carries N(0, I) to the data, marginal by marginal. The
path is a Gaussian noising, x_tau = a x_0 + b eps with a = 1 - tau, b = tau; in the coordinates x / a and b / a every
such path, DDPM's variance-preserving one included, has the same ODE, d(x/a) / d(b/a) = E[eps | x] (chapter 1,
section 7): flow matching changes the time grid and what the network outputs, not the flow.

The network is chapter 1's :class:`course_lib.mlp.EpsMLP`; its time input is tau T with T = 1000, the same scale as
DDPM's step index. Samplers yield :class:`course_lib.ddpm.Step` states with ``t = tau T``.
"""
from __future__ import annotations

import math
from typing import Callable, Iterator

import torch

from .ddpm import Step
from .training import fit_ema_on_rows

T_SCALE = 1000.0     # tau in [0, 1] is fed to the network as tau * T_SCALE, like DDPM's steps 0..1000

Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]   # v(x, tau * T_SCALE) -> (B, D)


def interpolate(x0: torch.Tensor, eps: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """x_tau = (1 - tau) x_0 + tau eps, ``tau`` of shape (B,)."""
    tau = tau.reshape(-1, *([1] * (x0.ndim - 1))).to(x0.dtype)
    return (1 - tau) * x0 + tau * eps


def fm_loss(model: Velocity, x0: torch.Tensor, generator=None) -> torch.Tensor:
    """The flow-matching loss on a batch: tau ~ U(0, 1), eps ~ N(0, I), mean of ((eps - x_0) - v_theta)^2."""
    tau = torch.rand(x0.shape[0], generator=generator, dtype=x0.dtype)
    eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
    x_tau = interpolate(x0, eps, tau)
    return torch.mean(((eps - x0) - model(x_tau, tau * T_SCALE)) ** 2)


def train_flow(model: torch.nn.Module, data: torch.Tensor, steps: int, batch_size: int = 1024, seed: int = 0,
               **fit_kw):
    """Flow matching on rows of ``data`` (N, D): each step draws a batch and takes a step on :func:`fm_loss`, with
    the recipe of :func:`course_lib.training.fit_ema` (``fit_kw``: lr, ema_decay, warmup, ...), exactly as
    :func:`course_lib.ddpm.train_eps_model` trains a noise predictor. Returns ``(ema_model, history)``."""
    return fit_ema_on_rows(model, data, lambda idx, g: fm_loss(model, data[idx], generator=g), steps, batch_size,
                           seed, **fit_kw)


def _check_solver(n_steps, method: str, tau_start: float, tau_end: float) -> None:
    if not isinstance(n_steps, int) or n_steps < 1:
        raise ValueError(f"n_steps must be a positive integer, got {n_steps!r}")
    if method not in ("euler", "heun"):
        raise ValueError(f"method must be 'euler' or 'heun', got {method!r}")
    if not 0.0 <= tau_end < tau_start <= 1.0:
        raise ValueError(f"need 0 <= tau_end < tau_start <= 1, got {tau_start}, {tau_end}")


@torch.no_grad()
def flow_sampler(model: Velocity, shape, n_steps: int = 50, method: str = "heun", generator=None, x_T=None,
                 tau_start: float = 1.0, tau_end: float = 0.0) -> Iterator[Step]:
    """Integrate dx/dtau = v(x, tau) from ``tau_start`` (noise) to ``tau_end`` over ``n_steps`` uniform steps, with
    Euler (one network call a step) or Heun (two), as :func:`course_lib.sde.pf_ode_sampler` does for the
    probability-flow ODE. Yields n_steps + 1 states; deterministic given ``x_T``."""
    _check_solver(n_steps, method, tau_start, tau_end)
    x = x_T.clone() if x_T is not None else torch.randn(tuple(shape), generator=generator)
    grid = torch.linspace(tau_start, tau_end, n_steps + 1, dtype=torch.float64).tolist()

    def v(x, tau):
        return model(x, torch.full((x.shape[0],), tau * T_SCALE, dtype=x.dtype))

    yield Step(grid[0] * T_SCALE, x)
    for tau, tau_next in zip(grid[:-1], grid[1:]):
        h = tau_next - tau                       # negative: from noise to data
        d = v(x, tau)
        x_euler = x + h * d
        x = x + 0.5 * h * (d + v(x_euler, tau_next)) if method == "heun" else x_euler
        yield Step(tau_next * T_SCALE, x)


def exact_velocity(gmm) -> Velocity:
    """The minimiser of the flow-matching loss for Gaussian-mixture data (:class:`course_lib.toy2d.GaussianMixture`):
    v*(x, tau) = (x - E[x_0 | x_tau = x]) / tau. The posterior mean comes from the variance-preserving point
    x / c with c = sqrt((1 - tau)^2 + tau^2), which is x_0 scaled by sqrt(abar) = (1 - tau) / c plus noise of
    standard deviation tau / c. Valid for 0 < tau < 1; the time input is tau * T_SCALE as for a network."""
    def v(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        tau = float(torch.as_tensor(t).reshape(-1)[0]) / T_SCALE
        if not 0.0 < tau < 1.0:
            raise ValueError(f"the exact velocity needs 0 < tau < 1, got {tau}")
        c = math.sqrt((1 - tau) ** 2 + tau ** 2)
        x0_hat = gmm.posterior_mean_x0(x.double() / c, ((1 - tau) / c) ** 2)
        return ((x.double() - x0_hat) / tau).to(x.dtype)
    return v
