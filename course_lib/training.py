"""The training loop that every model of the course goes through, with its two companions: an exponential moving
average (EMA) of the weights and the learning-rate schedule.

The loop is a generator, in the spirit of smalldiffusion's ``training_loop``: you give it the model, a
``loss_fn(step)`` that draws a batch and returns the loss, the optimiser and a learning-rate multiplier, and it
takes one optimiser step per step and yields after each one. Logging, EMA updates, evaluation and early stops stay
in the caller's ``for`` loop, visible::

    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ema = EMA(model, 0.999)
    for step, loss in training_loop(model, loss_fn, range(steps), opt, lambda s: lr_factor(s, steps, 100, 0.1)):
        ema.update(model)

Used by chapter 1's noise predictors and digit classifier, the text models of chapters 2-4, the addition models,
the editor and block diffusion of chapter 4; chapter 4's RL takes its inner steps with :func:`optimizer_step`.
"""
from __future__ import annotations

import copy
import math
import time
from typing import Callable, Iterable, Iterator

import torch

from .runtime import progress


def lr_factor(step: int, steps: int, warmup: int, min_lr_ratio: float = 0.0) -> float:
    """Multiplier of the base lr at optimiser step ``step`` (0-based): linear warmup over ``warmup`` steps, then
    cosine decay from 1 to ``min_lr_ratio`` at ``steps``."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    progress_ = min(1.0, (step - warmup) / max(1, steps - warmup))
    return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress_))


class EMA:
    """An exponential moving average of a model: ``theta_ema <- decay * theta_ema + (1 - decay) * theta`` after
    every optimiser step, for the parameters; buffers (for example a mixture-of-experts router's bias, which
    training changes outside the optimiser) are copied from the live model. ``ema.model`` is the averaged copy."""

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
        for be, b in zip(self.model.buffers(), model.buffers()):
            be.copy_(b)


class PassCounter:
    """Counts the work models of one class do, as *position passes*: every forward call of a ``model_class``
    module adds (rows x positions) of its input ids, times 3 when gradients are on (the backward pass costs about
    two forwards). Copies of the model (RL's frozen old policy) count too. The unit of "equal compute" when
    training runs of different kinds (SFT, RL) are compared. Use as a context manager::

        with PassCounter(Transformer) as count:
            ...train...
        count.passes
    """

    def __init__(self, model_class: type):
        self.model_class, self.passes, self._hook, self.counting = model_class, 0, None, True

    def _count(self, module, args):
        if self.counting and type(module) is self.model_class:
            self.passes += args[0].numel() * (3 if torch.is_grad_enabled() else 1)

    def __enter__(self) -> "PassCounter":
        self._hook = torch.nn.modules.module.register_module_forward_pre_hook(self._count)
        return self

    def __exit__(self, *exc) -> None:
        self._hook.remove()

    def not_counting(self, fn: Callable) -> Callable:
        """``fn`` wrapped so that the forward calls it makes are not counted (an evaluation inside training)."""
        def wrapped(*args, **kwargs):
            self.counting = False
            try:
                return fn(*args, **kwargs)
            finally:
                self.counting = True
        return wrapped


def optimizer_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, loss: torch.Tensor,
                   grad_clip: float | None = 1.0) -> float | None:
    """One optimiser step on ``loss``: zero the gradients, backpropagate, clip the gradient norm at ``grad_clip``
    (None: no clipping), step. Returns the gradient norm before clipping (None without clipping)."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)) if grad_clip is not None else None
    optimizer.step()
    return norm


def training_loop(model: torch.nn.Module, loss_fn: Callable, steps: Iterable[int], optimizer: torch.optim.Optimizer,
                  lr_lambda: Callable[[int], float] | None = None, grad_clip: float | None = 1.0,
                  ) -> Iterator[tuple[int, object]]:
    """Train ``model``: for each ``step`` of ``steps`` (a ``range``, or a progress bar over one), call
    ``loss_fn(step)``, which returns the loss to minimise, or a pair ``(loss, report)`` where ``report`` is what
    the step yields instead of ``loss.item()`` (for example the loss without an auxiliary term); take
    :func:`optimizer_step`; advance the learning-rate multiplier ``lr_lambda`` (None: constant); yield
    ``(step, report)``. The model is in training mode on entry; ``grad_norm`` of the last step is kept in
    ``optimizer.last_grad_norm``."""
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda) if lr_lambda is not None else None
    model.train()
    for step in steps:
        out = loss_fn(step)
        loss, report = out if isinstance(out, tuple) else (out, None)
        optimizer.last_grad_norm = optimizer_step(model, optimizer, loss, grad_clip)
        if scheduler is not None:
            scheduler.step()
        yield step, (loss.item() if report is None else report)


def fit_ema(model: torch.nn.Module, loss_fn: Callable[[int], torch.Tensor], steps: int, lr: float = 1e-3,
            weight_decay: float = 0.0, ema_decay: float = 0.999, warmup: int = 100, seed: int = 0,
            log_every: int = 50, desc: str = "training", show_progress: bool = True):
    """The recipe of chapter 1's small networks, whatever they predict: AdamW, the learning rate warmed up over
    ``warmup`` steps and decayed by a cosine over the whole run, gradient clipping at 1 (as tanelp/tiny-diffusion),
    and an exponential moving average of the weights, which is the model returned. ``loss_fn(step)`` draws a batch
    and returns its loss; ``seed`` seeds torch's global generator (set it before the caller builds ``loss_fn``'s
    own generator if that matters).

    Returns ``(ema_model, history)``; history holds ``step``, ``loss`` (mean over each ``log_every`` window)
    and ``seconds``."""
    if steps < 1:
        raise ValueError(f"steps must be positive, got {steps}")
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    ema = EMA(model, ema_decay)

    def lr_lambda(s):
        return min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))

    history = {"step": [], "loss": [], "seconds": 0.0}
    t0, window = time.perf_counter(), []
    bar = progress(range(steps), desc=desc) if show_progress else range(steps)
    for step, loss in training_loop(model, loss_fn, bar, opt, lr_lambda):
        ema.update(model)
        window.append(loss)
        if (step + 1) % log_every == 0 or step == steps - 1:
            history["step"].append(step + 1)
            history["loss"].append(sum(window) / len(window))
            window = []
            if show_progress:
                bar.set_postfix(loss=f"{history['loss'][-1]:.4f}")
    history["seconds"] = time.perf_counter() - t0
    model.eval()
    return ema.model, history


def fit_ema_on_rows(model: torch.nn.Module, data: torch.Tensor, batch_loss: Callable, steps: int,
                    batch_size: int = 1024, seed: int = 0, **fit_kw):
    """:func:`fit_ema` on minibatches of the rows of ``data`` (N, D): each step draws ``batch_size`` row indices with
    a generator seeded by ``seed`` and minimises ``batch_loss(idx, generator)`` (the same generator then draws the
    noise). ``fit_kw``: lr, weight_decay, ema_decay, warmup, log_every, desc, show_progress."""
    if data.ndim != 2 or data.shape[0] < 2:
        raise ValueError(f"data must have shape (N, D) with N >= 2, got {tuple(data.shape)}")
    if steps < 1 or batch_size < 1:
        raise ValueError("steps and batch_size must be positive")
    g = torch.Generator().manual_seed(seed)

    def loss_fn(step):
        idx = torch.randint(0, data.shape[0], (batch_size,), generator=g)
        return batch_loss(idx, g)

    return fit_ema(model, loss_fn, steps, seed=seed, **fit_kw)
