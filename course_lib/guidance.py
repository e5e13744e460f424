"""Conditioning a diffusion model on a class, and classifier-free guidance (Ho & Salimans 2022).

A class-conditional noise predictor eps_theta(x_t, t, y) is trained as usual, except that with probability
``p_uncond`` the label is replaced by a *null* label (``model.null_label``, "no class"). One network then
predicts both the conditional eps(x_t, t, y) and the unconditional eps(x_t, t, null). Guidance with scale w
samples with

    eps_w = eps(x_t, t, null) + (1 + w) (eps(x_t, t, y) - eps(x_t, t, null))

(w = 0: the plain conditional model; w > 0: pushed further from the unconditional prediction). In score terms,
since s = -eps / sigma_t, this is grad log q_t(x) + (1 + w) grad log q_t(y | x): the conditional score with the
implicit classifier's gradient weighted (1 + w) times. Chapter 3's masked-diffusion language model uses the same
formula on logits (LLaDA's ``cfg_scale``), with the prompt as the condition and an all-[MASK] prompt as "none".
"""
from __future__ import annotations

import torch

from . import ddpm
from .schedules import NoiseSchedule
from .training import fit_ema_on_rows


def _check_conditional(model) -> None:
    if getattr(model, "label_emb", None) is None:
        raise ValueError("the model is not class-conditional: build an EpsMLP with n_classes > 0")


def conditional_eps_loss(model, x0: torch.Tensor, y: torch.Tensor, schedule: NoiseSchedule, p_uncond: float,
                         generator=None) -> torch.Tensor:
    """L_simple with labels: E || eps - eps_theta(x_t, t, y') ||^2, where y' is the null label with probability
    ``p_uncond`` and y otherwise (label dropout)."""
    t = ddpm.sample_timesteps(x0.shape[0], schedule, generator)
    eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
    xt = ddpm.q_sample(x0, t, schedule, noise=eps)
    drop = torch.rand(x0.shape[0], generator=generator) < p_uncond
    y_in = torch.where(drop, torch.full_like(y, model.null_label), y)
    return torch.mean((eps - model(xt, t.to(x0.dtype), y_in)) ** 2)


def train_conditional(model, data: torch.Tensor, labels: torch.Tensor, schedule: NoiseSchedule, steps: int,
                      p_uncond: float = 0.2, batch_size: int = 256, seed: int = 0, **fit_kw):
    """Train a class-conditional eps-model on ``data`` (N, D) with integer ``labels`` (N,) in 0..n_classes-1, the
    label dropped with probability ``p_uncond``; the rest of the recipe is :func:`course_lib.training.fit_ema`
    (``fit_kw``: lr, ema_decay, warmup, ...). Returns ``(ema_model, history)``."""
    _check_conditional(model)
    if labels.shape != (data.shape[0],):
        raise ValueError(f"need one label per row of data, got {tuple(labels.shape)} for {tuple(data.shape)}")
    if labels.min() < 0 or labels.max() >= model.null_label:
        raise ValueError(f"labels must lie in 0..{model.null_label - 1}")
    if not 0.0 < p_uncond < 1.0:
        raise ValueError(f"p_uncond must lie in (0, 1) so both the conditional and the unconditional model are "
                         f"trained, got {p_uncond}")
    return fit_ema_on_rows(model, data, lambda idx, g: conditional_eps_loss(model, data[idx], labels[idx], schedule,
                                                                            p_uncond, generator=g),
                           steps, batch_size, seed, **fit_kw)


class Guided:
    """The guided noise predictor eps_w(x, t) for fixed labels ``y`` (B,) and scale ``w``: a plain
    ``model(x, t)`` that every sampler of :mod:`course_lib.ddpm` accepts. Each call runs the network once on the
    conditional and the unconditional rows together. ``y=None`` gives the unconditional model (no guidance)."""

    def __init__(self, model, y: torch.Tensor | None, w: float = 0.0):
        _check_conditional(model)
        if y is not None:
            y = torch.as_tensor(y, dtype=torch.long)
            if y.ndim != 1 or y.min() < 0 or y.max() >= model.null_label:
                raise ValueError(f"y must be a 1-D tensor of labels in 0..{model.null_label - 1}")
        if not w >= 0.0:
            raise ValueError(f"the guidance scale w must be >= 0, got {w}")
        self.model, self.y, self.w = model, y, float(w)

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        B = x.shape[0]
        null = torch.full((B,), self.model.null_label, dtype=torch.long)
        if self.y is None:
            return self.model(x, t, null)
        if self.y.shape != (B,):
            raise ValueError(f"the guided model holds {self.y.shape[0]} labels but got a batch of {B}")
        if self.w == 0.0:
            return self.model(x, t, self.y)
        both = self.model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([self.y, null]))
        cond, uncond = both[:B], both[B:]
        return uncond + (1.0 + self.w) * (cond - uncond)
