"""Masked (absorbing-state) diffusion: MDLM / LLaDA forward process, SUBS, NELBO, exact toy, samplers.

Equation numbers refer to Sahoo et al.
(2024), "Simple and Effective Masked Diffusion Language Models" (MDLM), and Nie et al. (2025),
"Large Language Diffusion Models" (LLaDA).

Conventions. Continuous time ``t`` lies in [0, 1]; ``alpha_t`` is the probability that a token is
still *unmasked* at time t (alpha_0 = 1: clean data, alpha_1 = 0: all [MASK]). Token ids are
``0..V-1`` and one of them, ``mask_id``, is [MASK]. A *denoiser* is any callable
``logits_fn(x_t) -> logits`` with ``x_t`` of shape (B, L) (long) and logits of shape (B, L, V); as in
MDLM (``time_conditioning: False``) and LLaDA, it takes no time input. Samplers are generators that
yield every intermediate state.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator, NamedTuple, Sequence

import numpy as np
import torch

from . import checkpoints
from .checks import check_eps, check_int, check_tokens
from .nn import Transformer, TransformerConfig
from .training import training_loop

LogitsFn = Callable[[torch.Tensor], torch.Tensor]


# --------------------------------------------------------------------------- masking schedules
class MaskSchedule:
    """alpha_t (keep probability) on t in [0, 1], its derivative, and the NELBO weight.

    MDLM eq. 10: w(t) = -alpha'_t / (1 - alpha_t) > 0."""
    name = "base"

    def alpha(self, t) -> torch.Tensor:
        raise NotImplementedError

    def dalpha(self, t) -> torch.Tensor:
        raise NotImplementedError

    def weight(self, t) -> torch.Tensor:
        """NELBO weight w(t) = -alpha'_t / (1 - alpha_t), MDLM eq. (10); needs t in (0, 1]."""
        t = _check_times(t, lo_open=True)
        return -self.dalpha(t) / (1.0 - self.alpha(t))

    def rate(self, t) -> torch.Tensor:
        """The forward jump rate sigma(t) = -alpha'_t / alpha_t of the continuous-time chain: a token still visible
        at t is masked in [t, t + dt] with probability sigma(t) dt, so alpha_t = exp(-int_0^t sigma); +inf where
        alpha_t = 0. The NELBO weight is w(t) = sigma(t) alpha_t / (1 - alpha_t)."""
        t = _check_times(t)
        return -self.dalpha(t) / self.alpha(t)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class LinearSchedule(MaskSchedule):
    """alpha_t = 1 - t, alpha'_t = -1, so w(t) = 1/t (LLaDA's 1/t weight)."""
    name = "linear"

    def alpha(self, t):
        return 1.0 - _check_times(t)

    def dalpha(self, t):
        return -torch.ones_like(_check_times(t))


class CosineSchedule(MaskSchedule):
    """alpha_t = cos(pi t / 2), alpha'_t = -(pi/2) sin(pi t / 2)."""
    name = "cosine"

    def alpha(self, t):
        t = _check_times(t)
        return torch.where(t == 1, torch.zeros_like(t), torch.cos(math.pi * t / 2))

    def dalpha(self, t):
        return -(math.pi / 2) * torch.sin(math.pi * _check_times(t) / 2)


class LogLinearSchedule(MaskSchedule):
    """MDLM's code schedule: sigma(t) = -log(1 - (1 - eps) t), so the move (mask) chance is
    1 - exp(-sigma) = (1 - eps) t, alpha_t = 1 - (1 - eps) t and w(t) = dsigma/expm1(sigma) = 1/t exactly.
    Note alpha_1 = eps > 0: the chain never reaches all-[MASK] exactly."""
    name = "loglinear"

    def __init__(self, eps: float = 1e-3):
        if not 0.0 <= eps < 1.0:
            raise ValueError(f"eps must lie in [0, 1), got {eps}")
        self.eps = float(eps)

    def alpha(self, t):
        return 1.0 - (1.0 - self.eps) * _check_times(t)

    def dalpha(self, t):
        return -(1.0 - self.eps) * torch.ones_like(_check_times(t))

    def __repr__(self) -> str:
        return f"LogLinearSchedule(eps={self.eps})"


MASK_SCHEDULES = {"linear": LinearSchedule, "cosine": CosineSchedule, "loglinear": LogLinearSchedule}


def get_schedule(schedule) -> MaskSchedule:
    """A schedule object from a name (``linear``, ``cosine``, ``loglinear``) or pass one through."""
    if isinstance(schedule, MaskSchedule):
        return schedule
    if schedule not in MASK_SCHEDULES:
        raise ValueError(f"unknown masking schedule {schedule!r}; use one of {sorted(MASK_SCHEDULES)}")
    return MASK_SCHEDULES[schedule]()


def _check_times(t, lo_open: bool = False) -> torch.Tensor:
    tt = t if isinstance(t, torch.Tensor) else torch.as_tensor(t, dtype=torch.float64)
    if not tt.is_floating_point():
        tt = tt.double()
    if not torch.isfinite(tt).all() or (tt.numel() and (float(tt.min()) < 0 or float(tt.max()) > 1)):
        raise ValueError(f"times must lie in [0, 1], got {t!r}")
    if lo_open and tt.numel() and float(tt.min()) <= 0:
        raise ValueError("the NELBO weight needs t > 0 (it diverges like 1/t at t = 0)")
    return tt


# --------------------------------------------------------------------------- time sampling
def sample_times(batch: int, generator=None, antithetic: bool = True, eps: float = 1e-3) -> torch.Tensor:
    """t of shape (batch,) in [eps, 1].

    Antithetic (low-discrepancy) sampling as in MDLM's ``_sample_t``: t_i = (u_i/B + i/B) mod 1, so
    exactly one t falls in each stratum [i/B, (i+1)/B) (MDLM draws one u_i per stratum; a shared u
    gives the same coverage). Then t = (1 - eps) t + eps keeps t away from 0 where w(t) = 1/t blows up."""
    if not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive integer, got {batch!r}")
    if not 0.0 <= eps < 1.0:
        raise ValueError(f"eps must lie in [0, 1), got {eps}")
    u = torch.rand(batch, generator=generator, dtype=torch.float64)
    if antithetic:
        u = (u / batch + torch.arange(batch, dtype=torch.float64) / batch) % 1
    return (1.0 - eps) * u + eps


# --------------------------------------------------------------------------- forward process
def check_mask_id(mask_id) -> int:
    return check_int(mask_id, "mask_id", lo=0)


def check_logits(logits, batch: int, length: int, mask_id: int, x: torch.Tensor) -> torch.Tensor:
    """A model's output must be (batch, length, V) with the mask id and every input id inside 0..V-1."""
    if not isinstance(logits, torch.Tensor) or logits.ndim != 3 or tuple(logits.shape[:2]) != (batch, length):
        raise ValueError(f"the model must return logits of shape (B, L, V) = ({batch}, {length}, V), "
                         f"got {tuple(getattr(logits, 'shape', ()))}")
    V = logits.shape[-1]
    if mask_id >= V:
        raise ValueError(f"mask_id {mask_id} is outside the vocabulary of size {V}")
    if x.numel() and int(x.max()) >= V:
        raise ValueError(f"the input holds token ids >= V = {V} (outside the model's vocabulary)")
    return logits


def exclude_mask(logits: torch.Tensor, mask_id: int) -> torch.Tensor:
    """The same logits with the [MASK] column set to -inf (a new tensor; the model's output is untouched): clean
    text never contains [MASK], so it is never a prediction (MDLM's "zero masking probability")."""
    is_mask = torch.arange(logits.shape[-1], device=logits.device) == mask_id
    return torch.where(is_mask, torch.full((), float("-inf"), dtype=logits.dtype, device=logits.device), logits)


def _batch_times(t, batch: int) -> torch.Tensor:
    """Times in [0, 1] as a (batch,) tensor: a scalar is broadcast; any other shape is an error."""
    tt = _check_times(t)
    if tt.ndim == 0:
        tt = tt.expand(batch)
    if tt.shape != (batch,):
        raise ValueError(f"t must be a scalar or have shape ({batch},), got {tuple(tt.shape)}")
    return tt


def forward_mask(x0: torch.Tensor, t, schedule, mask_id: int, generator=None):
    """Sample x_t ~ q(x_t | x_0): each token independently becomes [MASK] with probability 1 - alpha_t.

    MDLM: q(z_t | x) = Cat(z_t; alpha_t x + (1 - alpha_t) m).
    ``t`` is a scalar or shape (B,). Returns ``(x_t, masked)`` with ``masked`` a (B, L) bool tensor."""
    check_tokens(x0, "x0")
    if bool((x0 == mask_id).any()):
        raise ValueError(f"x0 already contains the mask id {mask_id}")
    schedule = get_schedule(schedule)
    tt = _batch_times(t, x0.shape[0])
    move = (1.0 - schedule.alpha(tt)).to(torch.float64)
    u = torch.rand(x0.shape, generator=generator, dtype=torch.float64)
    masked = (u < move[:, None]).to(x0.device)
    return torch.where(masked, torch.full_like(x0, mask_id), x0), masked


def llada_forward_process(x0: torch.Tensor, mask_id: int, generator=None, eps: float = 1e-3):
    """LLaDA's pretraining corruption: t ~ U(0, 1) per sequence, p_mask = (1 - eps) t + eps, each token
    masked with probability p_mask. Returns ``(x_t, masked, p_mask)``.

    LLaDA's loss, CE(masked) / p_mask summed and divided by B*L, equals :func:`mdlm_loss` with the
    linear schedule evaluated at t = p_mask (w = 1/p_mask) and no padding."""
    check_tokens(x0, "x0")
    p_mask = sample_times(x0.shape[0], generator, antithetic=False, eps=eps)
    x_t, masked = forward_mask(x0, p_mask, LinearSchedule(), mask_id, generator)
    return x_t, masked, p_mask


# --------------------------------------------------------------------------- SUBS parameterisation
def subs_log_probs(logits: torch.Tensor, x_t: torch.Tensor, mask_id: int) -> torch.Tensor:
    """log x_theta(z_t) under MDLM's SUBS parameterisation (eq. 7).

    1. zero masking probability: the [MASK] logit is set to -inf before the log-softmax;
    2. carry-over unmasking: where z_t^l != [MASK], the distribution is a point mass on z_t^l.
    Returns log-probabilities of shape (B, L, V). (Its callers check their inputs: :func:`check_logits`.)"""
    logp = torch.log_softmax(exclude_mask(logits, mask_id), dim=-1)
    neg_inf = torch.tensor(float("-inf"), dtype=logits.dtype, device=logits.device)
    carry = torch.where(torch.nn.functional.one_hot(x_t, logits.shape[-1]).bool(), torch.zeros_like(neg_inf), neg_inf)
    return torch.where((x_t == mask_id).unsqueeze(-1), logp, carry)


# --------------------------------------------------------------------------- training loss
class MDLMLoss(NamedTuple):
    loss: torch.Tensor      # scalar: sum of weighted masked-token NLLs / number of (non-pad) tokens
    nelbo: torch.Tensor     # (B,): per-sequence NELBO estimate in nats
    tokens: torch.Tensor    # (B,): number of (non-pad) tokens per sequence, for bits per token


def mdlm_loss(logits, x0: torch.Tensor, x_t: torch.Tensor, masked: torch.Tensor, t, schedule, *,
              mask_id: int, pad_mask: torch.Tensor | None = None) -> MDLMLoss:
    """Monte-Carlo estimate of MDLM's continuous-time NELBO (eq. 10-11), introduced in chapter 2:

        NELBO(x) = E_t E_{z_t} [ w(t) sum_{l: z_t^l = [MASK]} -log x_theta^l(z_t)[x^l] ],  w(t) = -alpha'_t/(1-alpha_t)

    ``logits`` is a (B, L, V) tensor or a denoiser ``logits_fn(x_t)``. ``pad_mask`` (B, L) bool is True at
    padding positions, which never count. Normalisation, as MDLM's code (``nll.sum() / attention_mask.sum()``)
    and LLaDA pretraining (``/ (b * l)``): ``loss`` divides the summed weighted NLL by the number of *all*
    non-pad token positions, not by the number of masked ones. ``nelbo`` is the per-sequence sum (nats);
    bits per token = nelbo.sum() / (tokens.sum() * ln 2)."""
    schedule = get_schedule(schedule)
    check_tokens(x0, "x0")
    if x_t.shape != x0.shape or masked.shape != x0.shape or masked.dtype != torch.bool:
        raise ValueError("x0, x_t and masked (bool) must share the shape (B, L)")
    if not bool((masked == (x_t == mask_id)).all()):
        raise ValueError("masked must be exactly the positions where x_t == mask_id")
    if not bool((x_t[~masked] == x0[~masked]).all()):
        raise ValueError("x_t must equal x0 at every unmasked position")
    if callable(logits):
        logits = logits(x_t)
    check_logits(logits, *x0.shape, mask_id, x_t)
    tt = _batch_times(t, x0.shape[0])
    if pad_mask is None:
        pad_mask = torch.zeros_like(masked)
    if pad_mask.shape != x0.shape or pad_mask.dtype != torch.bool:
        raise ValueError("pad_mask must be a bool tensor of shape (B, L), True at padding")
    logp = subs_log_probs(logits, x_t, mask_id)
    nll = -logp.gather(-1, x0.unsqueeze(-1)).squeeze(-1)                  # -log x_theta^l(z_t)[x^l]
    w = schedule.weight(tt).to(dtype=nll.dtype, device=nll.device)        # -alpha'_t / (1 - alpha_t)
    counted = masked & ~pad_mask
    token_loss = torch.where(counted, w[:, None] * nll, torch.zeros_like(nll))
    tokens = (~pad_mask).sum(1)
    if int(tokens.sum()) == 0:
        raise ValueError("every position is padding")
    return MDLMLoss(token_loss.sum() / tokens.sum(), token_loss.sum(1), tokens)


# --------------------------------------------------------------------------- LLaDA's objectives (chapter 3)
def _check_corruption(x0, noisy, masked, p_mask, mask_id) -> torch.Tensor:
    """Shared checks of (x0, noisy, masked, p_mask); returns p_mask as a (B,) tensor."""
    check_mask_id(mask_id)
    check_tokens(x0, "x0")
    check_tokens(noisy, "noisy")
    if x0.numel() == 0:
        raise ValueError("x0 is empty")
    if noisy.shape != x0.shape or not isinstance(masked, torch.Tensor) or masked.shape != x0.shape \
            or masked.dtype != torch.bool:
        raise ValueError("x0, noisy and masked (bool) must share the shape (B, L)")
    if bool((x0 == mask_id).any()):
        raise ValueError(f"x0 contains the mask id {mask_id}; training data must be clean text")
    if not bool((masked == (noisy == mask_id)).all()):
        raise ValueError("masked must be exactly the positions where noisy == mask_id")
    if not bool((noisy[~masked] == x0[~masked]).all()):
        raise ValueError("noisy must equal x0 at every unmasked position")
    if not isinstance(p_mask, torch.Tensor) or p_mask.shape != (x0.shape[0],) or not p_mask.is_floating_point():
        raise ValueError(f"p_mask must be a float tensor of shape (B,) = ({x0.shape[0]},), "
                         f"got {tuple(getattr(p_mask, 'shape', ()))}")
    if not bool(torch.isfinite(p_mask).all()) or bool((p_mask <= 0).any()) or bool((p_mask > 1).any()):
        raise ValueError("p_mask (the masking probability) must lie in (0, 1]")
    return p_mask


def masked_token_nll(logits, x0: torch.Tensor, noisy: torch.Tensor, masked: torch.Tensor,
                     mask_id: int = 1) -> torch.Tensor:
    """-log p_theta(x0^i | noisy) at every masked position i, 0 elsewhere: shape (B, L).

    The [MASK] logit is excluded before the log-softmax. ``logits``
    is a (B, L, V) tensor or a model, which is then called on ``noisy``. Keeps the logits' dtype (and
    their gradient), so a training loop can call it."""
    if callable(logits):
        logits = logits(noisy)
    check_logits(logits, *x0.shape, mask_id, torch.cat([x0, noisy]))
    logp = torch.log_softmax(exclude_mask(logits, mask_id), dim=-1)
    nll = -logp.gather(-1, x0.unsqueeze(-1)).squeeze(-1)
    return torch.where(masked, nll, torch.zeros_like(nll))


def llada_pretrain_loss(logits, x0: torch.Tensor, noisy: torch.Tensor, masked: torch.Tensor, p_mask: torch.Tensor,
                  *, mask_id: int = 1) -> torch.Tensor:
    """LLaDA's pretraining loss (``GUIDELINES.md``; the paper's objective L(theta)), a scalar.
    LLaDA pre-training:

        loss = sum_{b, i: masked} CE(logits[b, i], x0[b, i]) / p_mask[b]  /  (B * L)

    Normalised by *all* B*L positions, not by the number of masked ones. With p_mask = t this is a
    Monte-Carlo estimate of  E_t[ (1/t) sum_i 1[x_t^i = M] (-log p_theta(x0^i | x_t)) ] / L, an upper bound
    on the negative log-likelihood per token. ``(noisy, masked, p_mask)`` come from
    :func:`llada_forward_process`; ``logits`` is a (B, L, V) tensor or the model."""
    p_mask = _check_corruption(x0, noisy, masked, p_mask, mask_id)
    nll = masked_token_nll(logits, x0, noisy, masked, mask_id)
    token_loss = torch.where(masked, nll / p_mask.to(nll)[:, None], torch.zeros_like(nll))
    return token_loss.sum() / x0.numel()


class LLaDALoss(NamedTuple):
    """A training loss with the corruption it was computed on (for plots and checks)."""
    loss: torch.Tensor       # scalar, differentiable
    noisy: torch.Tensor      # (B, L) the corrupted input the model saw
    masked: torch.Tensor     # (B, L) bool
    p_mask: torch.Tensor     # (B,) masking probability of each row
    answer_lengths: torch.Tensor | None = None   # (B,) SFT only: tokens after the prompt, EOS padding included


def llada_pretrain_step_loss(model: LogitsFn, x0: torch.Tensor, mask_id: int = 1, generator=None,
                       eps: float = 1e-3) -> LLaDALoss:
    """One pretraining loss: corrupt ``x0`` with LLaDA's forward process, call the model, apply
    :func:`llada_pretrain_loss`.

    LLaDA also truncates 1% of batches to a random length U{1..4096}; that belongs to the data loader."""
    noisy, masked, p_mask = llada_forward_process(x0, check_mask_id(mask_id), generator, check_eps(eps))
    return LLaDALoss(llada_pretrain_loss(model(noisy), x0, noisy, masked, p_mask, mask_id=mask_id), noisy, masked, p_mask)


def _check_prompt_lengths(prompt_lengths, x0: torch.Tensor) -> torch.Tensor:
    pl = torch.as_tensor(prompt_lengths)
    if pl.ndim == 0:
        pl = pl.expand(x0.shape[0])
    if pl.shape != (x0.shape[0],) or pl.is_floating_point() or pl.dtype == torch.bool:
        raise ValueError(f"prompt_lengths must be integers of shape (B,) = ({x0.shape[0]},), got {prompt_lengths!r}")
    if bool((pl < 0).any()) or bool((pl >= x0.shape[1]).any()):
        raise ValueError(f"every prompt length must lie in [0, L - 1] = [0, {x0.shape[1] - 1}] "
                         "(an answer needs at least one token)")
    return pl.long().to(x0.device)


def prompt_positions(prompt_lengths: torch.Tensor, L: int) -> torch.Tensor:
    """(B, L) bool, True at the first ``prompt_lengths[b]`` positions of row b."""
    return torch.arange(L, device=prompt_lengths.device)[None] < prompt_lengths[:, None]


def sft_forward_process(x0: torch.Tensor, prompt_lengths, mask_id: int = 1, generator=None,
                        eps: float = 1e-3):
    """LLaDA's SFT corruption: the pretraining forward process, then every prompt position is restored
    (``noisy[prompt_mask] = input_ids[prompt_mask]``), so the prompt is never masked.
    Returns ``(noisy, masked, p_mask)``."""
    check_tokens(x0, "x0")
    pl = _check_prompt_lengths(prompt_lengths, x0)
    noisy, masked, p_mask = llada_forward_process(x0, check_mask_id(mask_id), generator, check_eps(eps))
    prompt = prompt_positions(pl, x0.shape[1])
    return torch.where(prompt, x0, noisy), masked & ~prompt, p_mask


def sft_loss(logits, x0: torch.Tensor, noisy: torch.Tensor, masked: torch.Tensor, p_mask: torch.Tensor,
             prompt_lengths, *, mask_id: int = 1) -> torch.Tensor:
    """LLaDA's SFT loss (``GUIDELINES.md``; the paper's SFT objective), a scalar.
    LLaDA SFT:

        loss = (1/B) sum_b  sum_{i masked in row b} CE(logits[b, i], x0[b, i]) / p_mask[b] / answer_length[b]

    ``answer_length[b] = L - prompt_lengths[b]`` counts every token after the prompt, **including the
    EOS tokens that pad short answers** (LLaDA treats EOS as a normal token, so the model learns to
    end its answer). Each row is normalised by its own answer length, then rows are averaged.
    ``logits`` is a (B, L, V) tensor or the model; the corruption comes from :func:`sft_forward_process`."""
    p_mask = _check_corruption(x0, noisy, masked, p_mask, mask_id)
    pl = _check_prompt_lengths(prompt_lengths, x0)
    if bool((masked & prompt_positions(pl, x0.shape[1])).any()):
        raise ValueError("a prompt position is masked; in SFT the prompt is never masked (use sft_forward_process)")
    nll = masked_token_nll(logits, x0, noisy, masked, mask_id)
    answer_lengths = (x0.shape[1] - pl).to(nll)
    token_loss = torch.where(masked, nll / (p_mask.to(nll) * answer_lengths)[:, None], torch.zeros_like(nll))
    return token_loss.sum() / x0.shape[0]


def sft_step_loss(model: LogitsFn, x0: torch.Tensor, prompt_lengths, mask_id: int = 1, generator=None,
                  eps: float = 1e-3) -> LLaDALoss:
    """One SFT loss: :func:`sft_forward_process`, the model, :func:`sft_loss`."""
    noisy, masked, p_mask = sft_forward_process(x0, prompt_lengths, mask_id, generator, eps)
    pl = _check_prompt_lengths(prompt_lengths, x0)
    loss = sft_loss(model(noisy), x0, noisy, masked, p_mask, pl, mask_id=mask_id)
    return LLaDALoss(loss, noisy, masked, p_mask, x0.shape[1] - pl)


def pad_sft_batch(prompts: Sequence[Sequence[int]], answers: Sequence[Sequence[int]], eos_id: int = 2,
                  length: int | None = None):
    """Build an SFT batch ``[prompt | answer | EOS ... EOS]`` (paper section 2.3: "|EOS| tokens appended to
    the end of short pairs ... to ensure equal lengths").

    Every row gets at least one EOS, so the model always sees where an answer ends. ``length`` defaults
    to the longest prompt + answer + 1. Returns ``(x0, prompt_lengths)``: (B, length) and (B,) long."""
    if len(prompts) != len(answers) or len(prompts) == 0:
        raise ValueError("prompts and answers must be non-empty lists of the same length")
    need = max(len(p) + len(a) for p, a in zip(prompts, answers)) + 1
    length = need if length is None else check_int(length, "length")
    if length < need:
        raise ValueError(f"length {length} is too short: the longest pair needs {need} (with one EOS)")
    rows = [list(p) + list(a) + [eos_id] * (length - len(p) - len(a)) for p, a in zip(prompts, answers)]
    return torch.tensor(rows, dtype=torch.long), torch.tensor([len(p) for p in prompts], dtype=torch.long)


# --------------------------------------------------------------------------- enumerable toy (chapter 2)
@dataclass
class ToyDistribution:
    """A distribution over all K**L sequences of length L on symbols 0..K-1; [MASK] is id K.

    ``probs[i]`` is the probability of ``sequences[i]`` (lexicographic order): a toy where everything
    (denoiser, NELBO, likelihood) can be computed exactly."""
    probs: torch.Tensor
    L: int
    K: int

    def __post_init__(self):
        if not (isinstance(self.L, int) and isinstance(self.K, int) and 1 <= self.L <= 6 and 2 <= self.K <= 4):
            raise ValueError(f"the toy needs 1 <= L <= 6 and 2 <= K <= 4, got L={self.L}, K={self.K}")
        p = torch.as_tensor(self.probs, dtype=torch.float64).flatten()
        if p.numel() != self.K ** self.L:
            raise ValueError(f"probs must have K**L = {self.K ** self.L} entries, got {p.numel()}")
        if not torch.isfinite(p).all() or bool((p < 0).any()) or abs(float(p.sum()) - 1) > 1e-9:
            raise ValueError("probs must be finite, non-negative and sum to 1")
        self.probs = p
        idx = torch.arange(self.K ** self.L)
        powers = self.K ** torch.arange(self.L - 1, -1, -1)
        self.sequences = (idx[:, None] // powers) % self.K                # (N, L)

    @property
    def mask_id(self) -> int:
        return self.K

    @property
    def vocab_size(self) -> int:
        return self.K + 1

    @classmethod
    def from_dict(cls, table: dict, L: int, K: int) -> "ToyDistribution":
        """From ``{(x_1, ..., x_L): prob}``; sequences not listed get probability 0."""
        p = torch.zeros(K ** L, dtype=torch.float64)
        for seq, prob in table.items():
            if len(seq) != L or any(not 0 <= int(s) < K for s in seq):
                raise ValueError(f"bad sequence {seq!r} for L={L}, K={K}")
            p[sum(int(s) * K ** (L - 1 - i) for i, s in enumerate(seq))] = float(prob)
        return cls(p, L, K)

    @classmethod
    def random(cls, L: int = 3, K: int = 2, seed: int = 0) -> "ToyDistribution":
        """Probabilities drawn from a flat Dirichlet (all positive, with probability 1)."""
        g = torch.Generator().manual_seed(seed)
        e = -torch.log(torch.rand(K ** L, generator=g, dtype=torch.float64))
        return cls(e / e.sum(), L, K)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p_data(x) for x of shape (N, L)."""
        powers = self.K ** torch.arange(self.L - 1, -1, -1)
        return torch.log(self.probs[(x * powers).sum(-1)])


def exact_denoiser(toy: ToyDistribution) -> LogitsFn:
    """The exact denoiser: logits whose softmax at a masked position l is p_data(x^l | visible tokens of x_t),
    the Bayes-optimal x_theta. Patterns with no compatible sequence of
    positive probability get a uniform distribution. The [MASK] logit is -inf."""
    seqs, p = toy.sequences, toy.probs
    onehot = torch.nn.functional.one_hot(seqs, toy.K).double()            # (N, L, K)

    def logits_fn(x_t: torch.Tensor) -> torch.Tensor:
        check_tokens(x_t, "x_t")
        if x_t.shape[1] != toy.L or int(x_t.max()) > toy.K:
            raise ValueError(f"x_t must have length {toy.L} and ids in 0..{toy.K}")
        visible_ok = (seqs[None] == x_t[:, None]) | (x_t[:, None] == toy.mask_id)   # (B, N, L)
        post = visible_ok.all(-1).double() * p[None]                                  # (B, N)
        marg = torch.einsum("bn,nlk->blk", post, onehot)
        tot = marg.sum(-1, keepdim=True)
        marg = torch.where(tot > 0, marg / tot.clamp_min(1e-300), torch.full_like(marg, 1.0 / toy.K))
        return torch.cat([torch.log(marg), torch.full_like(marg[..., :1], float("-inf"))], -1)

    return logits_fn


def smoothed_denoiser(toy: ToyDistribution, lam: float = 0.3) -> LogitsFn:
    """A deliberately imperfect denoiser: (1 - lam) * exact + lam * uniform over the K symbols."""
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must lie in [0, 1], got {lam}")
    exact = exact_denoiser(toy)

    def logits_fn(x_t):
        lg = exact(x_t)
        mix = (1 - lam) * torch.softmax(lg[..., :toy.K], -1) + lam / toy.K
        return torch.cat([torch.log(mix), lg[..., toy.K:]], -1)

    return logits_fn


def masking_patterns(L: int) -> torch.Tensor:
    """All 2**L masking patterns as a (P, L) bool tensor; pattern m masks position l iff bit l of m is 1."""
    return ((torch.arange(2 ** L)[:, None] >> torch.arange(L)) & 1).bool()


TOY = dict(L=4, K=2, seed=7)                 # chapter 2's enumerable toy: 16 sequences of 4 binary tokens


def course_toy() -> ToyDistribution:
    """The toy of chapter 2: :meth:`ToyDistribution.random` with :data:`TOY`."""
    return ToyDistribution.random(**TOY)


def train_toy_denoiser(toy: ToyDistribution, steps: int = 400, batch_size: int = 256, lr: float = 3e-3,
                       seed: int = 0):
    """A one-layer course Transformer (width 32, 2 heads, float64) trained as an MDLM denoiser of ``toy``:
    ``steps`` AdamW steps on :func:`mdlm_loss` (linear schedule) over batches of sequences drawn from the toy.
    Returns ``(model, losses)``, the model in eval mode. The shipped ``toy_mdlm`` (``./course retrain toy_mdlm``)
    is this function on :func:`course_toy`."""
    torch.manual_seed(seed)
    net = Transformer(TransformerConfig(vocab_size=toy.vocab_size, seq_len=toy.L, n_layer=1, n_head=2,
                                        d_model=32)).double()
    opt = torch.optim.AdamW(net.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)

    def loss_fn(step):
        x0 = toy.sequences[torch.multinomial(toy.probs, batch_size, replacement=True, generator=g)]
        t = sample_times(batch_size, g)
        xt, msk = forward_mask(x0, t, "linear", toy.mask_id, g)
        return mdlm_loss(net(xt), x0, xt, msk, t, "linear", mask_id=toy.mask_id).loss

    losses = [loss for _, loss in training_loop(net, loss_fn, range(steps), opt, grad_clip=None)]
    return net.eval(), losses


def load_toy_denoiser(name: str = "toy_mdlm") -> Transformer:
    """The shipped toy denoiser (float64), verified against the manifest."""
    return checkpoints.load_model(name, lambda config: Transformer(TransformerConfig(**config)).double())


def noisy_joint(toy: ToyDistribution, alpha, kind: str = "absorbing") -> tuple[torch.Tensor, torch.Tensor]:
    """Every noisy sequence z of the toy and the joint q_t(x_0, z) = p_data(x_0) prod_l q_t(z^l | x_0^l), enumerated.

    ``alpha`` is the keep probability alpha_t in [0, 1]. ``kind="absorbing"``: q(z | x) = alpha [z = x] +
    (1 - alpha) [z = [MASK]], over the K symbols and [MASK] ((K+1)**L noisy sequences); ``kind="uniform"``:
    q(z | x) = alpha [z = x] + (1 - alpha) / K, over the K symbols (K**L). Returns ``(z, joint)``: z (M, L) in
    lexicographic order, joint (N, M) float64 with one row per clean sequence of ``toy.sequences``. A column's
    sum is the noisy marginal p_t(z); the column divided by its sum is the posterior p(x_0 | z_t = z)."""
    if not isinstance(toy, ToyDistribution):
        raise ValueError(f"toy must be a ToyDistribution, got {type(toy).__name__}")
    if kind not in ("absorbing", "uniform"):
        raise ValueError(f"unknown kind {kind!r}; use 'absorbing' or 'uniform'")
    a = float(alpha)
    if not 0.0 <= a <= 1.0:                                                # also rejects NaN
        raise ValueError(f"alpha (the keep probability) must lie in [0, 1], got {alpha!r}")
    V = toy.K + 1 if kind == "absorbing" else toy.K
    z = (torch.arange(V ** toy.L)[:, None] // V ** torch.arange(toy.L - 1, -1, -1)) % V
    kernel = a * torch.eye(toy.K, V, dtype=torch.float64)                  # q(z^l = column | x^l = row)
    if kind == "absorbing":
        kernel[:, toy.mask_id] += 1 - a
    else:
        kernel += (1 - a) / toy.K
    per_token = kernel[toy.sequences[:, None, :], z[None]]                 # (N, M, L)
    return z, toy.probs[:, None] * per_token.prod(-1)


def concrete_score(toy: ToyDistribution, alpha, kind: str = "absorbing") -> torch.Tensor:
    """The concrete score of the noisy marginal p_t (Lou, Meng & Ermon 2024, SEDD), by enumeration: for every noisy z
    (the rows of :func:`noisy_joint`), position l and token v, the ratio p_t(y) / p_t(z) where y is z with y^l = v.

    Shape (M, L, V), V = K + 1 (absorbing) or K (uniform); 1 where v = z^l, NaN where p_t(z) = 0. For absorbing
    noise and a masked z^l it equals alpha_t / (1 - alpha_t) p_data(x^l = v | the visible tokens of z) (Ou et al.
    2024, RADD, Theorem 1)."""
    z, joint = noisy_joint(toy, alpha, kind)
    p = joint.sum(0)
    V = toy.K + 1 if kind == "absorbing" else toy.K
    powers = V ** torch.arange(toy.L - 1, -1, -1)
    v = torch.arange(V)
    neighbour = torch.arange(len(z))[:, None, None] + (v[None, None] - z[..., None]) * powers[None, :, None]
    ratio = p[neighbour] / p.clamp_min(1e-300)[:, None, None]
    return torch.where(p[:, None, None] > 0, ratio, torch.full_like(ratio, float("nan")))


def _pattern_probs(toy: ToyDistribution, logits_fn: LogitsFn) -> torch.Tensor:
    """x_theta^l(z)[x^l] for every sequence x, pattern M (z = x with M masked) and position l: (N, P, L)."""
    seqs, pats = toy.sequences, masking_patterns(toy.L)
    N, P = len(seqs), len(pats)
    z = torch.where(pats[None], toy.mask_id, seqs[:, None]).reshape(N * P, toy.L)
    logp = subs_log_probs(logits_fn(z).double(), z, toy.mask_id)
    x = seqs[:, None].expand(N, P, toy.L).reshape(N * P, toy.L)
    return logp.gather(-1, x.unsqueeze(-1)).squeeze(-1).exp().reshape(N, P, toy.L)


def _masked_nll(toy, logits_fn) -> torch.Tensor:
    """sum over masked l of -log x_theta^l(z_M)[x^l], for every sequence and pattern: (N, P)."""
    probs = _pattern_probs(toy, logits_fn)
    pats = masking_patterns(toy.L)[None]
    return torch.where(pats, -torch.log(probs), torch.zeros_like(probs)).sum(-1)


def nelbo_time_weights(schedule, L: int, nodes: int = 64) -> torch.Tensor:
    """c_k = int_0^1 w(t) (1 - alpha_t)^k alpha_t^(L-k) dt for k = 0..L, by Gauss-Legendre quadrature.

    A fixed pattern with k masked positions has probability (1-alpha_t)^k alpha_t^(L-k) at time t, so this
    is its total weight in the continuous NELBO. We integrate -alpha'_t (1-alpha_t)^(k-1) alpha_t^(L-k)
    (the 1/(1-alpha) cancelled). c_0 := 0 (no masked token, no loss). Compare :func:`beta_time_weights`."""
    schedule = get_schedule(schedule)
    x, wq = np.polynomial.legendre.leggauss(nodes)
    t = torch.as_tensor((x + 1) / 2, dtype=torch.float64)
    wq = torch.as_tensor(wq / 2, dtype=torch.float64)
    a, da = schedule.alpha(t), schedule.dalpha(t)
    c = [torch.zeros((), dtype=torch.float64)]
    for k in range(1, L + 1):
        c.append((wq * -da * (1 - a) ** (k - 1) * a ** (L - k)).sum())
    return torch.stack(c)


def beta_time_weights(L: int) -> torch.Tensor:
    """The closed form of :func:`nelbo_time_weights` for any schedule with alpha_0 = 1, alpha_1 = 0.

    Substituting u = 1 - alpha_t (du = -alpha'_t dt) removes the schedule:
        c_k = int_0^1 u^(k-1) (1-u)^(L-k) du = B(k, L-k+1) = (k-1)! (L-k)! / L! = 1 / (k * C(L, k)).
    Read as an any-order autoregressive model: with a uniformly random order, the k-masked pattern M is
    uniform among C(L, k) subsets and the next token to unmask is uniform among its k positions."""
    return torch.tensor([0.0] + [1.0 / (k * math.comb(L, k)) for k in range(1, L + 1)], dtype=torch.float64)


def exact_continuous_nelbo(toy: ToyDistribution, logits_fn: LogitsFn, schedule="linear",
                           analytic: bool = False) -> torch.Tensor:
    """The continuous-time NELBO (MDLM eq. 10) of every toy sequence, computed exactly (nats, shape (N,)):

        NELBO(x) = sum over masking patterns M of c_|M| * sum_{l in M} -log x_theta^l(x with M masked)[x^l]

    with c_k from :func:`nelbo_time_weights` (quadrature, uses the schedule) or, if ``analytic``,
    :func:`beta_time_weights`. With the exact denoiser this equals -log p_data(x): each random order
    gives the chain rule."""
    c = beta_time_weights(toy.L) if analytic else nelbo_time_weights(schedule, toy.L)
    k = masking_patterns(toy.L).sum(-1)
    return (_masked_nll(toy, logits_fn) * c[k][None]).sum(-1)


def _check_discrete(schedule, steps):
    schedule = get_schedule(schedule)
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if abs(float(schedule.alpha(1.0))) > 1e-12 or abs(float(schedule.alpha(0.0)) - 1) > 1e-12:
        raise ValueError("the discrete-time chain needs alpha_0 = 1 and alpha_1 = 0 (all [MASK] at t = 1); "
                         f"{schedule!r} has alpha_1 = {float(schedule.alpha(1.0))}")
    return schedule


def discrete_time_nelbo(toy: ToyDistribution, logits_fn: LogitsFn, steps: int, schedule="linear") -> torch.Tensor:
    """The T-step NELBO (MDLM eq. 8) of every toy sequence, exactly, with t_j = j/T, s = t_{j-1}:

        NELBO_T(x) = sum_{j=1..T} E_{z_t ~ q} [ (alpha_s - alpha_t)/(1 - alpha_t)
                                               * sum_{l: z_t^l = [MASK]} -log x_theta^l(z_t)[x^l] ]

    (each term is the KL between the absorbing posterior and p_theta; the prior and reconstruction
    terms vanish since alpha_1 = 0 and alpha_0 = 1)."""
    schedule = _check_discrete(schedule, steps)
    nll = _masked_nll(toy, logits_fn)
    k = masking_patterns(toy.L).sum(-1).double()
    total = torch.zeros(len(toy.sequences), dtype=torch.float64)
    for j in range(1, steps + 1):
        a_t, a_s = float(schedule.alpha(j / steps)), float(schedule.alpha((j - 1) / steps))
        q = (1 - a_t) ** k * a_t ** (toy.L - k)                           # q_t(pattern M | x)
        total += ((a_s - a_t) / (1 - a_t)) * torch.where(q > 0, q * nll, torch.zeros_like(nll)).sum(-1)
    return total


def discrete_time_log_likelihood(toy: ToyDistribution, logits_fn: LogitsFn, steps: int,
                                 schedule="linear") -> torch.Tensor:
    """Exact log p_theta(x) of every toy sequence under the T-step reverse chain, by dynamic programming.

    The chain starts from all [MASK]; from t to s every masked token independently stays masked with
    probability (1-alpha_s)/(1-alpha_t) or becomes v with probability (alpha_s-alpha_t)/(1-alpha_t) x_theta(z_t)[v]
    (SUBS + the absorbing posterior); unmasked tokens are copied. Since tokens never change once unmasked,
    the only states that can end at x are its 2**L masking patterns: we propagate their probabilities."""
    schedule = _check_discrete(schedule, steps)
    probs = _pattern_probs(toy, logits_fn)                                 # (N, P, L)
    pats = masking_patterns(toy.L)
    new = pats[:, None] & ~pats[None]                                      # (P from, P to, L) newly unmasked
    allowed = ~(pats[None] & ~pats[:, None]).any(-1)                       # no position may become masked again
    n_stay = pats.sum(-1).double()[None]                                   # masked count of the target pattern
    state = torch.zeros(probs.shape[:2], dtype=torch.float64)
    state[:, -1] = 1.0                                                     # all [MASK]
    for j in range(steps, 0, -1):
        a_t, a_s = float(schedule.alpha(j / steps)), float(schedule.alpha((j - 1) / steps))
        unmask, stay = (a_s - a_t) / (1 - a_t), (1 - a_s) / (1 - a_t)
        per_pos = torch.where(new[None], unmask * probs[:, :, None, :], torch.ones(()))
        trans = per_pos.prod(-1) * torch.tensor(stay, dtype=torch.float64) ** n_stay * allowed[None]
        state = torch.einsum("nm,nmk->nk", state, trans)
    return torch.log(state[:, 0])                                          # pattern 0: nothing masked


# --------------------------------------------------------------------------- samplers
def log_odds(logp: torch.Tensor) -> torch.Tensor:
    """log p - log(1 - p) from log-probabilities (float64): keeps probabilities near 1 apart (they are compared
    by their distance from 1). +inf where p == 1, -inf where p == 0."""
    return logp - torch.log(-torch.expm1(logp))


def confidence_rank(key: torch.Tensor, generator=None, tie: float = 1e-5) -> torch.Tensor:
    """The rank of every position in its row by ``key`` (B, L), 0 = the highest, with ties broken at random.

    Keys closer than ``tie`` to their neighbour in sorted order count as equal, and equal keys are ordered by a
    uniform draw from ``generator``. Why: float32 logits carry round-off of about 1e-6, whose last bits differ
    between CPUs (AVX-512, AVX2 and ARM code paths round differently). Positions the model cannot tell apart
    (on an all-[MASK] canvas every position gets the same logits) would otherwise be ordered by that round-off,
    and the same seed would give different samples on different machines. Used by every confidence-ordered
    sampler of the course, on the log-odds of the confidence (:func:`log_odds`)."""
    srt, order = key.sort(dim=1, descending=True)
    new_group = (srt[:, :-1] - srt[:, 1:]) > tie                   # inf - inf is nan: same group
    group_sorted = torch.cat([torch.zeros_like(new_group[:, :1]), new_group], 1).cumsum(1).double()
    group = torch.empty_like(group_sorted).scatter_(1, order, group_sorted)
    u = torch.rand(key.shape, generator=generator, dtype=torch.float64).to(key.device)
    ranked = torch.argsort(group + u, dim=1)                        # by group, then by the draw
    positions = torch.arange(key.shape[1], device=key.device).expand_as(ranked)
    return torch.empty_like(ranked).scatter_(1, ranked, positions)


class MaskedStep(NamedTuple):
    """One sampler state: ``x`` after the step, ``step`` steps left (0 = final sample)."""
    step: int
    x: torch.Tensor


class CallCounter:
    """Wrap a denoiser and count how many times the network is called (``.calls``)."""

    def __init__(self, fn: LogitsFn):
        self.fn, self.calls = fn, 0

    def __call__(self, x):
        self.calls += 1
        return self.fn(x)


@torch.no_grad()
def ancestral_sampler(logits_fn: LogitsFn, L: int, steps: int, mask_id: int, generator=None,
                      order: str = "random", schedule="linear", batch: int = 1, temperature: float = 1.0,
                      cache: bool = False, x_init: torch.Tensor | None = None) -> Iterator[MaskedStep]:
    """Reverse process from all [MASK] (or ``x_init``) to clean text over ``steps`` steps t_j = j/steps.

    MDLM eq. 6-7; LLaDA section 1.5. At each step from t to s:
    - ``order="random"``: each masked token is unmasked with probability (alpha_s - alpha_t)/(1 - alpha_t) to a
      token drawn from the SUBS distribution softmax(logits / temperature) (exactly p_theta(z_s | z_t) at T=1);
    - ``order="confidence"``: a token is proposed at every masked position, and the most confident ones
      (probability of the proposal under softmax(logits)) are committed, enough that round(n0 (1 - alpha_s))
      stay masked (n0 = masked at the start), LLaDA's low-confidence remasking.
    ``cache=True`` is MDLM's ``ddpm_cache``: the denoiser has no time input, so if the canvas did not change
    the previous output is reused instead of calling the network. In a batch this is done row by row: only
    the rows that changed since the last call go through the network (each row's output depends on that row
    alone). Random draws are the same either way, so for the same seed cached and uncached runs give the
    same samples (identical at batch 1; in a batch up to float rounding, which can differ with the number of
    rows in a call). Yields ``steps + 1`` states."""
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if order not in ("random", "confidence"):
        raise ValueError(f"unknown order {order!r}; use 'random' or 'confidence'")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    schedule = get_schedule(schedule)
    if x_init is None:
        if not isinstance(L, int) or L < 1 or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"L and batch must be positive integers, got L={L!r}, batch={batch!r}")
        x = torch.full((batch, L), mask_id, dtype=torch.long)
    else:
        check_tokens(x_init, "x_init")
        x = x_init.clone()
    n0 = (x == mask_id).sum(1)
    yield MaskedStep(steps, x.clone())
    cached_logits, cached_x = None, None
    for j in range(steps, 0, -1):
        if cache and cached_x is not None:
            changed = (x != cached_x).any(1)
            if bool(changed.any()):
                logits = cached_logits.clone()
                logits[changed] = logits_fn(x[changed]).to(logits.dtype)
                cached_logits, cached_x = logits, x.clone()
            else:
                logits = cached_logits
        else:
            logits = logits_fn(x)
            cached_logits, cached_x = logits, x.clone()
        if j == steps:                                   # the model's output, checked once
            check_logits(logits, *x.shape, mask_id, x)
        masked = x == mask_id
        # SUBS at the masked positions only: the others carry over and are never re-drawn
        if bool(masked.any()):
            logp = subs_log_probs(logits[masked].double().unsqueeze(0), x[masked].unsqueeze(0), mask_id)[0]
        else:                                    # nothing left to unmask (more steps than tokens)
            logp = torch.zeros(0, logits.shape[-1], dtype=torch.float64)
        u = torch.rand(x.shape, generator=generator, dtype=torch.float64)
        u_gumbel = torch.rand(x.shape + (logits.shape[-1],), generator=generator, dtype=torch.float64)[masked]
        gumbel = -torch.log(-torch.log(u_gumbel.clamp_min(1e-300)))
        proposal_m = (logp.argmax(-1) if temperature == 0 else (logp / temperature + gumbel).argmax(-1))
        proposal = x.clone()
        proposal[masked] = proposal_m
        a_t, a_s = float(schedule.alpha(j / steps)), float(schedule.alpha((j - 1) / steps))
        if order == "random":
            commit = masked & (u < (a_s - a_t) / (1 - a_t))
        else:
            key = torch.full(x.shape, float("-inf"), dtype=torch.float64)
            key[masked] = log_odds(logp.gather(-1, proposal_m.unsqueeze(-1)).squeeze(-1))
            k = masked.sum(1) - torch.round(n0 * (1 - a_s)).long()
            commit = masked & (confidence_rank(key, generator) < k[:, None])
        x = torch.where(commit, proposal, x)
        yield MaskedStep(j - 1, x.clone())


@torch.no_grad()
def sample_one(logits_fn: LogitsFn, L: int, steps: int, mask_id: int, generator=None,
               schedule="linear") -> torch.Tensor:
    """MDLM's ancestral sampler for one sequence, written out: from all [MASK] (t = 1) to text (t = 0) in ``steps``
    equal steps. From t to s = t - 1/steps, every masked token is unmasked with probability
    (alpha_s - alpha_t) / (1 - alpha_t), to a token drawn from x_theta(z_t) (MDLM eq. 6-7); unmasked tokens stay.

    :func:`ancestral_sampler` is the same loop for a batch, with more options; with ``order="random"``,
    ``batch=1`` and the same generator it draws the same random numbers and returns the same sample."""
    alpha = get_schedule(schedule).alpha
    z = torch.full((1, L), mask_id, dtype=torch.long)                    # z_1: everything masked
    for j in range(steps, 0, -1):
        a_t, a_s = float(alpha(j / steps)), float(alpha((j - 1) / steps))
        logp = subs_log_probs(logits_fn(z).double(), z, mask_id)          # log x_theta(z_t): (1, L, V)
        u = torch.rand(z.shape, generator=generator, dtype=torch.float64)
        u_gumbel = torch.rand(logp.shape, generator=generator, dtype=torch.float64).clamp_min(1e-300)
        proposal = (logp - torch.log(-torch.log(u_gumbel))).argmax(-1)     # a draw from x_theta (Gumbel-max)
        unmask = (z == mask_id) & (u < (a_s - a_t) / (1 - a_t))
        z = torch.where(unmask, proposal, z)
    return z[0]


def cached_sampler(logits_fn: LogitsFn, L: int, steps: int, mask_id: int, generator=None, **kw) -> Iterator[MaskedStep]:
    """MDLM's ``ddpm_cache`` sampler: :func:`ancestral_sampler` with ``cache=True``."""
    return ancestral_sampler(logits_fn, L, steps, mask_id, generator, cache=True, **kw)
