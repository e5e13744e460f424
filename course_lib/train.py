"""Training loop for chapter 1's epsilon-models (2-D toys and digits).

Introduced in chapter 1, section 4. Algorithm 1 of Ho et al. (2020): draw x_0 from the data,
t ~ U{1..T}, eps ~ N(0, I); take a gradient step on || eps - eps_theta(x_t, t) ||^2.
AdamW, cosine learning-rate decay, gradient clipping at 1.0 (as tanelp/tiny-diffusion), and an
exponential moving average (EMA) of the weights, which is what we sample from (Ho et al. use 0.9999).
"""
from __future__ import annotations

import copy
import math
import time

import torch

from . import ddpm
from .runtime import progress
from .schedules import NoiseSchedule


class EMA:
    """theta_ema <- decay * theta_ema + (1 - decay) * theta after every optimiser step."""

    def __init__(self, model: torch.nn.Module, decay: float = 0.999):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must lie in [0, 1), got {decay}")
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        for pe, p in zip(self.model.parameters(), model.parameters()):
            pe.mul_(self.decay).add_(p.detach(), alpha=1 - self.decay)


def train_eps_model(model: torch.nn.Module, data: torch.Tensor, schedule: NoiseSchedule, steps: int,
                    batch_size: int = 1024, lr: float = 1e-3, weight_decay: float = 0.0,
                    ema_decay: float = 0.999, warmup: int = 100, seed: int = 0, log_every: int = 50,
                    desc: str = "training", show_progress: bool = True):
    """Train ``model`` on rows of ``data`` (N, D) for ``steps`` steps.

    Returns ``(ema_model, history)`` where history holds ``step``, ``loss`` (mean over each
    ``log_every`` window) and ``seconds``.
    """
    if data.ndim != 2 or data.shape[0] < 2:
        raise ValueError(f"data must have shape (N, D) with N >= 2, got {tuple(data.shape)}")
    if steps < 1 or batch_size < 1:
        raise ValueError("steps and batch_size must be positive")
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    ema = EMA(model, ema_decay)
    history = {"step": [], "loss": [], "seconds": 0.0}
    t0, window = time.perf_counter(), []
    bar = progress(range(steps), desc=desc) if show_progress else range(steps)
    model.train()
    for step in bar:
        idx = torch.randint(0, data.shape[0], (batch_size,), generator=g)
        loss = ddpm.eps_loss(model, data[idx], schedule, generator=g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        ema.update(model)
        window.append(loss.item())
        if (step + 1) % log_every == 0 or step == steps - 1:
            history["step"].append(step + 1)
            history["loss"].append(sum(window) / len(window))
            window = []
            if show_progress:
                bar.set_postfix(loss=f"{history['loss'][-1]:.4f}")
    history["seconds"] = time.perf_counter() - t0
    model.eval()
    return ema.model, history
