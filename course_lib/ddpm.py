"""DDPM: forward process, Gaussian posterior, training loss, ELBO, and samplers.

Equation numbers refer to Ho, Jain & Abbeel (2020),
"Denoising Diffusion Probabilistic Models", and Song, Meng & Ermon (2021), "Denoising Diffusion
Implicit Models" (DDIM). Time steps are integers ``t`` in ``1..T`` (``0`` is the data), see
:mod:`course_lib.schedules`.

A model is any callable ``model(x_t, t) -> eps_hat`` with ``x_t`` of shape ``(B, D)`` and ``t`` a
float tensor of shape ``(B,)`` holding the time step. Samplers are *generators* that yield every
intermediate state, so one stream feeds the final sample, the trajectory demo and the frame strip.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from . import runtime
from .schedules import NoiseSchedule, check_t
from .training import fit_ema_on_rows

Model = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def coef(arr: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """arr[t] reshaped to broadcast against x (batch first), in x's dtype and device."""
    c = arr[t].to(dtype=x.dtype, device=x.device)
    return c.reshape(c.shape + (1,) * (x.ndim - c.ndim))


def check_x(x: torch.Tensor, name: str) -> None:
    """``ValueError`` unless ``x`` is a finite tensor with a batch dimension."""
    if not isinstance(x, torch.Tensor) or x.ndim < 1:
        raise ValueError(f"{name} must be a tensor with a batch dimension, got {type(x).__name__}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf")


def check_t_batch(t, schedule: NoiseSchedule, x: torch.Tensor, lo: int) -> torch.Tensor:
    """Integer times in ``lo..T``, one per row of ``x`` (a scalar is broadcast to the batch)."""
    tt = check_t(t, schedule, lo=lo).to(x.device)
    if tt.ndim == 0:
        tt = tt.expand(x.shape[0])
    if tt.ndim != 1 or tt.shape[0] != x.shape[0]:
        raise ValueError(f"t must be a scalar or have shape ({x.shape[0]},), got {tuple(tt.shape)}")
    return tt


def _noise_like(x: torch.Tensor, noise, generator) -> torch.Tensor:
    if noise is None:
        return torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    if noise.shape != x.shape:
        raise ValueError(f"noise has shape {tuple(noise.shape)} but x has {tuple(x.shape)}")
    return noise


# --------------------------------------------------------------------------- forward process
def q_step(x_prev: torch.Tensor, t, schedule: NoiseSchedule, noise=None, generator=None) -> torch.Tensor:
    """One forward step, eq. (2): x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) eps."""
    check_x(x_prev, "x_prev")
    t = check_t_batch(t, schedule, x_prev, lo=1)
    eps = _noise_like(x_prev, noise, generator)
    return torch.sqrt(coef(schedule.alphas, t, x_prev)) * x_prev + torch.sqrt(coef(schedule.betas, t, x_prev)) * eps


def q_mean_var(x0: torch.Tensor, t, schedule: NoiseSchedule):
    """Mean and variance of q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I), eq. (4)."""
    check_x(x0, "x0")
    t = check_t_batch(t, schedule, x0, lo=0)
    ab = coef(schedule.alpha_bars, t, x0)
    return torch.sqrt(ab) * x0, (1 - ab).expand_as(x0)


def q_sample(x0: torch.Tensor, t, schedule: NoiseSchedule, noise=None, generator=None) -> torch.Tensor:
    """Closed-form forward process, eq. (4): x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps."""
    check_x(x0, "x0")
    t = check_t_batch(t, schedule, x0, lo=0)
    eps = _noise_like(x0, noise, generator)
    ab = coef(schedule.alpha_bars, t, x0)
    return torch.sqrt(ab) * x0 + torch.sqrt(1 - ab) * eps


# --------------------------------------------------------------------------- reverse process
def q_posterior(x0: torch.Tensor, xt: torch.Tensor, t, schedule: NoiseSchedule):
    """Mean and variance of q(x_{t-1} | x_t, x_0), eqs. (6)-(7), for t >= 1:

    mu~_t = sqrt(abar_{t-1}) beta_t / (1 - abar_t) x_0 + sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t) x_t
    beta~_t = (1 - abar_{t-1}) / (1 - abar_t) beta_t
    """
    check_x(x0, "x0")
    check_x(xt, "xt")
    if x0.shape != xt.shape:
        raise ValueError(f"x0 and xt must have the same shape, got {tuple(x0.shape)} and {tuple(xt.shape)}")
    t = check_t_batch(t, schedule, xt, lo=1)
    ab_t, ab_prev = coef(schedule.alpha_bars, t, xt), coef(schedule.alpha_bars, t - 1, xt)
    beta, alpha = coef(schedule.betas, t, xt), coef(schedule.alphas, t, xt)
    mean = torch.sqrt(ab_prev) * beta / (1 - ab_t) * x0 + torch.sqrt(alpha) * (1 - ab_prev) / (1 - ab_t) * xt
    var = ((1 - ab_prev) / (1 - ab_t) * beta).expand_as(xt)
    return mean, var


def predict_x0(xt: torch.Tensor, t, eps: torch.Tensor, schedule: NoiseSchedule) -> torch.Tensor:
    """Invert eq. (4): x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)."""
    t = check_t_batch(t, schedule, xt, lo=1)
    ab = coef(schedule.alpha_bars, t, xt)
    return (xt - torch.sqrt(1 - ab) * eps) / torch.sqrt(ab)


PREDICTIONS = ("eps", "x0", "v")


def convert_prediction(pred: torch.Tensor, xt: torch.Tensor, t, schedule: NoiseSchedule, src: str,
                       dst: str) -> torch.Tensor:
    """Re-express a network's output for x_t = a x_0 + sigma eps (a = sqrt(abar_t), sigma = sqrt(1 - abar_t)) as
    another of the three usual targets (Salimans & Ho 2022): the noise ``"eps"``, the clean data ``"x0"``, or the
    velocity ``"v"`` = a eps - sigma x_0. Given x_t, any one determines the others:

        x0 = (x_t - sigma eps) / a,  eps = (x_t - a x0) / sigma,  x0 = a x_t - sigma v,  eps = sigma x_t + a v."""
    if src not in PREDICTIONS or dst not in PREDICTIONS:
        raise ValueError(f"predictions are one of {PREDICTIONS}, got {src!r} -> {dst!r}")
    t = check_t_batch(t, schedule, xt, lo=1)
    a, sigma = coef(schedule.alpha_bars.sqrt(), t, xt), coef((1 - schedule.alpha_bars).sqrt(), t, xt)
    if src == "eps":
        eps = pred
    elif src == "x0":
        eps = (xt - a * pred) / sigma
    else:
        eps = sigma * xt + a * pred
    if dst == "eps":
        return eps
    x0 = (xt - sigma * eps) / a
    return x0 if dst == "x0" else a * eps - sigma * x0


def prediction_weight(t, schedule: NoiseSchedule, target: str) -> torch.Tensor:
    """How a squared error on ``target`` weighs the noise error: ||target - target_hat||^2 = w_t ||eps - eps_hat||^2
    with w = 1 (eps), 1 / SNR_t (x0) and 1 + 1 / SNR_t (v), SNR_t = abar_t / (1 - abar_t). So L_simple, an x0 loss
    and a v loss train the same minimiser and differ only in how they weigh the noise levels."""
    if target not in PREDICTIONS:
        raise ValueError(f"target must be one of {PREDICTIONS}, got {target!r}")
    t = check_t(t, schedule, lo=1)
    inv_snr = (1 - schedule.alpha_bars[t]) / schedule.alpha_bars[t]
    return {"eps": torch.ones_like(inv_snr), "x0": inv_snr, "v": 1 + inv_snr}[target]


def reverse_variance(t: torch.Tensor, schedule: NoiseSchedule, kind: str = "posterior") -> torch.Tensor:
    """sigma_t^2 of p_theta(x_{t-1} | x_t): ``posterior`` (beta~_t, with beta_1 at t = 1, where beta~_1 = 0)
    or ``beta`` (beta_t). Ho et al. (2020, section 3.2) report both give similar samples."""
    if kind == "beta":
        return schedule.betas[t]
    if kind != "posterior":
        raise ValueError(f"unknown reverse variance {kind!r}; use 'posterior' or 'beta'")
    ab_t, ab_prev = schedule.alpha_bars[t], schedule.alpha_bars[t - 1]
    var = (1 - ab_prev) / (1 - ab_t) * schedule.betas[t]
    return torch.where(t == 1, schedule.betas[t], var)


def eval_eps(model: Model, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """model(x, t), run in the network's own dtype (a float32 network accepts float64 maths around it)
    and returned in x's dtype."""
    dtype = x.dtype
    if isinstance(model, torch.nn.Module):
        p = next(model.parameters(), None)
        dtype = p.dtype if p is not None else dtype
    eps = model(x.to(dtype), t.to(dtype))
    if eps.shape != x.shape:
        raise ValueError(f"model returned shape {tuple(eps.shape)} for input {tuple(x.shape)}")
    return eps.to(x.dtype)


def p_mean_var(model: Model, xt: torch.Tensor, t, schedule: NoiseSchedule, var_kind: str = "posterior",
               clip_x0: float | None = None):
    """p_theta(x_{t-1} | x_t) = N(mu_theta, sigma_t^2 I) with mu_theta = mu~_t(x0_hat(x_t, eps_theta), x_t), eq. (11)."""
    t = check_t_batch(t, schedule, xt, lo=1)
    eps = eval_eps(model, xt, t)
    x0_hat = predict_x0(xt, t, eps, schedule)
    if clip_x0 is not None:
        x0_hat = x0_hat.clamp(-clip_x0, clip_x0)
    mean, _ = q_posterior(x0_hat, xt, t, schedule)
    var = reverse_variance(t.cpu(), schedule, var_kind).to(dtype=xt.dtype, device=xt.device)
    var = var.reshape(var.shape + (1,) * (xt.ndim - 1)).expand_as(xt)
    return mean, var, eps


# --------------------------------------------------------------------------- training objective
def sample_timesteps(batch: int, schedule: NoiseSchedule, generator=None) -> torch.Tensor:
    """t ~ Uniform{1..T} (Algorithm 1, line 3)."""
    return torch.randint(1, schedule.T + 1, (batch,), generator=generator)


def eps_loss(model: Model, x0: torch.Tensor, schedule: NoiseSchedule, generator=None) -> torch.Tensor:
    """L_simple, eq. (14): E_{t, x_0, eps} || eps - eps_theta(sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, t) ||^2.

    Mean over batch and dimensions (the usual MSE normalisation)."""
    check_x(x0, "x0")
    t = sample_timesteps(x0.shape[0], schedule, generator).to(x0.device)
    eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
    xt = q_sample(x0, t, schedule, noise=eps)
    return torch.mean((eps - eval_eps(model, xt, t)) ** 2)


def gaussian_kl(m1, v1, m2, v2) -> torch.Tensor:
    """KL(N(m1, v1) || N(m2, v2)) elementwise (diagonal Gaussians), in nats."""
    return 0.5 * (torch.log(v2 / v1) + (v1 + (m1 - m2) ** 2) / v2 - 1.0)


def gaussian_nll(x, mean, var) -> torch.Tensor:
    """-log N(x; mean, var) elementwise, in nats."""
    return 0.5 * (math.log(2 * math.pi) + torch.log(var) + (x - mean) ** 2 / var)


def eps_weight(t, schedule: NoiseSchedule, var_kind: str = "posterior") -> torch.Tensor:
    """lambda_t = beta_t^2 / (2 sigma_t^2 alpha_t (1 - abar_t)), eq. (12): L_{t-1} = lambda_t ||eps - eps_theta||^2
    (per dimension, summed over dimensions) when sigma_t^2 is fixed. Valid for t >= 2."""
    t = check_t(t, schedule, lo=2)
    s2 = reverse_variance(t, schedule, var_kind)
    return schedule.betas[t] ** 2 / (2 * s2 * schedule.alphas[t] * (1 - schedule.alpha_bars[t]))


@torch.no_grad()
def elbo_terms(model: Model, x0: torch.Tensor, schedule: NoiseSchedule, generator=None,
               var_kind: str = "posterior", progress: bool = False) -> dict:
    """All terms of the variational bound, eq. (5), in nats per example (summed over dimensions):

    L_T     = KL(q(x_T | x_0) || N(0, I))
    L_{t-1} = KL(q(x_{t-1} | x_t, x_0) || p_theta(x_{t-1} | x_t)),  t = 2..T  (one x_t draw per t)
    L_0     = -log p_theta(x_0 | x_1),  a Gaussian decoder N(mu_theta(x_1, 1), beta_1 I) (continuous data)

    Returns a dict with ``L_T`` (B,), ``L_t`` (B, T-1; column j holds t = j + 2), ``L_0`` (B,) and ``total`` (B,).
    """
    check_x(x0, "x0")
    B, T = x0.shape[0], schedule.T
    dims = tuple(range(1, x0.ndim))
    mT, vT = q_mean_var(x0, T, schedule)
    L_T = gaussian_kl(mT, vT, torch.zeros_like(mT), torch.ones_like(vT)).sum(dims)
    L_t = torch.zeros(B, max(T - 1, 0), dtype=x0.dtype)
    steps = range(2, T + 1)
    if progress:
        steps = runtime.progress(steps, desc="ELBO terms")
    for t in steps:
        xt = q_sample(x0, t, schedule, generator=generator)
        mq, vq = q_posterior(x0, xt, t, schedule)
        mp, vp, _ = p_mean_var(model, xt, t, schedule, var_kind)
        L_t[:, t - 2] = gaussian_kl(mq, vq, mp, vp).sum(dims).cpu()
    x1 = q_sample(x0, 1, schedule, generator=generator)
    mp, vp, _ = p_mean_var(model, x1, 1, schedule, var_kind)
    L_0 = gaussian_nll(x0, mp, vp).sum(dims)
    total = L_T.cpu() + L_t.sum(1) + L_0.cpu()
    return {"L_T": L_T.cpu(), "L_t": L_t, "L_0": L_0.cpu(), "total": total}


# --------------------------------------------------------------------------- training (Algorithm 1)
def train_eps_model(model: torch.nn.Module, data: torch.Tensor, schedule: NoiseSchedule, steps: int,
                    batch_size: int = 1024, lr: float = 1e-3, weight_decay: float = 0.0,
                    ema_decay: float = 0.999, warmup: int = 100, seed: int = 0, log_every: int = 50,
                    desc: str = "training", show_progress: bool = True):
    """Algorithm 1 of Ho et al. (2020) on rows of ``data`` (N, D) for ``steps`` steps: draw x_0, t ~ U{1..T} and
    eps ~ N(0, I), take a step on :func:`eps_loss`, with :func:`course_lib.training.fit_ema`'s recipe (AdamW,
    warmup and cosine decay, clipping, and an exponential moving average of the weights, which is what we sample
    from; Ho et al. use a decay of 0.9999).

    Returns ``(ema_model, history)``; history holds ``step``, ``loss`` (mean over each ``log_every`` window)
    and ``seconds``."""
    return fit_ema_on_rows(model, data, lambda idx, g: eps_loss(model, data[idx], schedule, generator=g), steps,
                           batch_size, seed, lr=lr, weight_decay=weight_decay, ema_decay=ema_decay, warmup=warmup,
                           log_every=log_every, desc=desc, show_progress=show_progress)


# --------------------------------------------------------------------------- samplers
@dataclass
class Step:
    """One state of a sampler: ``x`` is x_t at integer time ``t`` (0 = final sample)."""
    t: int
    x: torch.Tensor
    x0_hat: torch.Tensor | None = None


def _start(shape, generator, device, x_T):
    if x_T is not None:
        return x_T.clone()
    if len(shape) < 1 or any(int(s) < 1 for s in shape):
        raise ValueError(f"shape must be a tuple of positive sizes, got {shape!r}")
    return torch.randn(tuple(shape), generator=generator).to(device)


@torch.no_grad()
def ddpm_sampler(model: Model, shape, schedule: NoiseSchedule, generator=None, device="cpu",
                 var_kind: str = "posterior", clip_x0: float | None = None, x_T=None) -> Iterator[Step]:
    """Ancestral sampling, Algorithm 2: x_{t-1} = mu_theta(x_t, t) + sigma_t z, z = 0 at the last step.

    Yields T + 1 states, from x_T down to x_0."""
    x = _start(shape, generator, device, x_T)
    yield Step(schedule.T, x)
    for t in range(schedule.T, 0, -1):
        tt = torch.full((x.shape[0],), t, device=x.device)
        mean, var, eps = p_mean_var(model, x, tt, schedule, var_kind, clip_x0)
        x0_hat = predict_x0(x, tt, eps, schedule)
        z = torch.randn(x.shape, generator=generator).to(x.device) if t > 1 else torch.zeros_like(x)
        x = mean + torch.sqrt(var) * z
        yield Step(t - 1, x, x0_hat)


def ddim_timesteps(T: int, steps: int) -> list[int]:
    """``steps + 1`` evenly spaced integer times from T down to 0 (DDIM's "uniform" sub-sequence)."""
    if not isinstance(steps, int) or not 1 <= steps <= T:
        raise ValueError(f"steps must be an integer in [1, {T}], got {steps!r}")
    return [int(round(T - i * T / steps)) for i in range(steps + 1)]


def ddim_step(x: torch.Tensor, eps: torch.Tensor, t: int, s: int, schedule: NoiseSchedule,
              eta: float = 0.0, noise=None, clip_x0: float | None = None):
    """One DDIM update from time t to s < t, Song et al. (2021), eq. (12):

    x_s = sqrt(abar_s) x0_hat + sqrt(1 - abar_s - sigma^2) eps + sigma z,
    sigma = eta sqrt((1 - abar_s)/(1 - abar_t)) sqrt(1 - abar_t/abar_s).
    eta = 0 is deterministic (DDIM); eta = 1 is DDPM's ancestral step on the sub-sequence.
    Returns (x_s, x0_hat)."""
    if not 0 <= s < t <= schedule.T:
        raise ValueError(f"need 0 <= s < t <= T, got t={t}, s={s}")
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must lie in [0, 1], got {eta}")
    ab_t, ab_s = float(schedule.alpha_bars[t]), float(schedule.alpha_bars[s])
    x0_hat = (x - math.sqrt(1 - ab_t) * eps) / math.sqrt(ab_t)
    if clip_x0 is not None:
        x0_hat = x0_hat.clamp(-clip_x0, clip_x0)
        eps = (x - math.sqrt(ab_t) * x0_hat) / math.sqrt(1 - ab_t)
    sigma = eta * math.sqrt((1 - ab_s) / (1 - ab_t)) * math.sqrt(1 - ab_t / ab_s)
    x_s = math.sqrt(ab_s) * x0_hat + math.sqrt(max(1 - ab_s - sigma ** 2, 0.0)) * eps
    if sigma > 0:
        x_s = x_s + sigma * (noise if noise is not None else torch.randn_like(x))
    return x_s, x0_hat


@torch.no_grad()
def ddim_sampler(model: Model, shape, schedule: NoiseSchedule, steps: int = 50, eta: float = 0.0,
                 generator=None, device="cpu", clip_x0: float | None = None, x_T=None) -> Iterator[Step]:
    """DDIM sampling over ``steps`` evenly spaced times (eta = 0: deterministic). Yields steps + 1 states."""
    x = _start(shape, generator, device, x_T)
    times = ddim_timesteps(schedule.T, steps)
    yield Step(times[0], x)
    for t, s in zip(times[:-1], times[1:]):
        eps = eval_eps(model, x, torch.full((x.shape[0],), t, device=x.device))
        z = torch.randn(x.shape, generator=generator).to(x.device) if eta > 0 else None
        x, x0_hat = ddim_step(x, eps, t, s, schedule, eta, z, clip_x0)
        yield Step(s, x, x0_hat)


def final(sampler: Iterator[Step]) -> torch.Tensor:
    """Run a sampler to the end; return the last state's x."""
    last = None
    for last in sampler:
        pass
    if last is None:
        raise ValueError("the sampler yielded nothing")
    return last.x


def trajectory(sampler: Iterator[Step], keep: int | None = None):
    """Run a sampler, keeping ``keep`` evenly spaced states (all if None).

    Returns ``(times, states)`` with ``states`` of shape (K, *x.shape); first is x_T, last is x_0."""
    steps = list(sampler)
    if keep is not None and keep < len(steps):
        idx = torch.linspace(0, len(steps) - 1, keep).round().long().tolist()
        steps = [steps[i] for i in idx]
    return [s.t for s in steps], torch.stack([s.x.cpu() for s in steps])
