"""Training, evaluating and sampling the text models of chapters 2-4: AR, MDLM and D3PM on one Transformer.

One recipe dict
(:class:`TextLMConfig`) names the objective, the :class:`course_lib.nn.Transformer` size and the
optimiser; :func:`train_text_model` runs it with a progress bar and periodic validation, and the
evaluation functions report every model's negative log-likelihood (an exact value for AR, an upper
bound for the diffusion models) in the same unit, **nats per token**, so they can be compared with
each other and with the language's exact entropy (:func:`course_lib.language.entropy_per_token`).

Token convention (the same for every model, and the same as ``language.entropy_per_token``).
A sentence of ``n`` words is stored as a canvas of ``seq_len`` ids by :func:`tokenizer.batchify`::

    [w_1, ..., w_n, EOS, PAD, ..., PAD]

- **Counted tokens**: ``w_1 .. w_n`` and the one ``[EOS]``, i.e. ``n + 1`` per sentence. ``[PAD]``
  never counts as a token: every "per token" figure divides by the number of counted tokens.
- **AR** (causal attention): BOS-free convention with ``[EOS]`` doubling as BOS. The input is
  ``[EOS, w_1, ..., w_n]`` and the targets are ``[w_1, ..., w_n, EOS]``, so the first word is predicted
  from the bare start symbol and the sentence's probability is exactly
  ``prod_{i=1}^{n+1} p(x_i | x_<i)``. Targets at [PAD] positions are left out of the loss.
- **MDLM and D3PM** (bidirectional attention) model the whole canvas of ``seq_len`` positions,
  [PAD]s included: the model has to say where the sentence ends, and since the canvas is a fixed
  function of the sentence, ``-log p(canvas) >= -log p(sentence)``. Their bound therefore sums the
  terms of *all* canvas positions (PAD positions too) and divides by the ``n + 1`` counted tokens, so
  it is an upper bound on the same quantity AR reports exactly.
- **Samples**: AR samples until it emits ``[EOS]`` (at most ``seq_len`` tokens); MDLM fills a canvas
  of ``seq_len`` positions, and the sentence is everything before the *first* ``[EOS]`` (the rest of
  the canvas is ignored). A sample with no ``[EOS]`` is returned as ``None`` and counts as invalid.

Objectives (``TextLMConfig.objective``):

- ``"ar"``: next-token cross-entropy; :func:`ar_nll` is exact.
- ``"mdlm"``: MDLM's continuous-time NELBO (Sahoo et al. 2024, eq. 10-11) with antithetic times,
  through :func:`course_lib.masked.mdlm_loss`; :func:`mdlm_nelbo` estimates it by Monte Carlo.
- ``"llada"`` (chapter 3): LLaDA's pretraining loss exactly (:func:`course_lib.masked.llada_pretrain_step_loss`:
  ``t ~ U(0,1)`` per row, ``p_mask = (1 - eps) t + eps``, masked CE / p_mask, divided by B*L). Its
  expectation is the MDLM bound with the linear schedule, so :func:`mdlm_nelbo` evaluates it. With
  ``mask_ratio`` set (for example 0.15), every row is masked at that one fixed rate instead: BERT's
  masked-LM objective (without the 80/10/10 replacement), the comparison of chapter 3.
- ``"d3pm_uniform"`` / ``"d3pm_absorbing"``: D3PM's hybrid loss (Austin et al. 2021, eq. 5,
  lambda = 0.01) with the x0-parameterisation; :func:`d3pm_nelbo` estimates the T-step bound
  ``L_T + sum_{t=1}^T L_{t-1}`` by sampling t. The transition matrices of uniform and absorbing
  noise have closed forms (D3PM App. A.2), so we never build the (T+1, K, K) stacks of
  :class:`course_lib.d3pm.DiscreteSchedule` (2 GB at K = 353, T = 1000); the tests cross-check the
  closed-form terms against :func:`course_lib.d3pm.vb_term`.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from . import checkpoints, d3pm, ddpm, language, masked
from .nn import Transformer, TransformerConfig
from .runtime import progress
from .tokenizer import Tokenizer, batchify
from .training import EMA, lr_factor, training_loop

OBJECTIVES = ("ar", "mdlm", "llada", "d3pm_uniform", "d3pm_absorbing")
PAD_ID, MASK_ID, EOS_ID = Tokenizer.pad_id, Tokenizer.mask_id, Tokenizer.eos_id   # 0, 1, 2
SEQ_LEN = language.MAX_LEN + 1          # 41: the longest sentence (40 words) plus its [EOS]


# ----------------------------------------------------------------------------------------------
# The recipe
# ----------------------------------------------------------------------------------------------

@dataclass
class TextLMConfig:
    """A training recipe. Build one from a dict with
    :meth:`from_dict` (unknown keys raise ``ValueError``).

    ``model`` holds :class:`course_lib.nn.TransformerConfig` fields; ``vocab_size`` and ``seq_len``
    default to the course's language (353 ids, 41 positions) and ``attention`` is set by the
    objective (causal for AR, bidirectional otherwise). ``time_conditioning`` defaults to True for
    D3PM (its reverse step depends on t) and must be False for MDLM (as in MDLM and LLaDA).

    Learning rate: linear warmup over ``warmup`` steps to ``lr``, then cosine decay to
    ``min_lr_ratio * lr`` at ``steps``. AdamW(``betas``, ``weight_decay``), gradient clipping at
    ``grad_clip``; ``ema_decay=None`` turns the weight EMA off (otherwise the EMA model is returned).
    Every ``eval_every`` steps (and at the end) the validation bound is computed on the first
    ``eval_sentences`` validation sentences with ``eval_samples`` Monte-Carlo samples per sentence.
    """
    objective: str = "mdlm"
    model: dict = field(default_factory=dict)
    steps: int = 1000
    batch_size: int = 64
    lr: float = 1e-3
    warmup: int = 100
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.0
    betas: tuple = (0.9, 0.98)
    grad_clip: float = 1.0
    ema_decay: float | None = None
    eval_every: int = 500
    eval_sentences: int = 500
    eval_samples: int = 4
    schedule: str = "linear"           # MDLM masking schedule (masked.MASK_SCHEDULES)
    mask_ratio: float | None = None    # "llada" only: a fixed masking rate (BERT's 0.15) instead of t ~ U(0, 1)
    T: int = 1000                      # D3PM number of steps
    hybrid_lambda: float = 0.01        # D3PM eq. 5
    seed: int = 0

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        for name in ("steps", "batch_size", "eval_every", "eval_sentences", "eval_samples", "T"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if isinstance(self.warmup, bool) or not isinstance(self.warmup, int) or self.warmup < 0:
            raise ValueError(f"warmup must be a non-negative integer, got {self.warmup!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        for name in ("lr", "grad_clip"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive number, got {v!r}")
        if not (0.0 <= self.min_lr_ratio <= 1.0):
            raise ValueError(f"min_lr_ratio must lie in [0, 1], got {self.min_lr_ratio!r}")
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            raise ValueError(f"weight_decay must be a finite non-negative number, got {self.weight_decay!r}")
        if len(tuple(self.betas)) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        if self.ema_decay is not None and not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be None or lie in [0, 1), got {self.ema_decay!r}")
        if not (self.hybrid_lambda >= 0 and math.isfinite(self.hybrid_lambda)):
            raise ValueError(f"hybrid_lambda must be a finite non-negative number, got {self.hybrid_lambda!r}")
        masked.get_schedule(self.schedule)                                     # raises on an unknown name
        if self.mask_ratio is not None:
            if self.objective != "llada":
                raise ValueError("mask_ratio applies to the 'llada' objective only")
            if isinstance(self.mask_ratio, bool) or not isinstance(self.mask_ratio, (int, float)) \
                    or not 0.0 < self.mask_ratio <= 1.0:
                raise ValueError(f"mask_ratio must lie in (0, 1], got {self.mask_ratio!r}")
        if not isinstance(self.model, dict):
            raise ValueError(f"model must be a dict of TransformerConfig fields, got {type(self.model).__name__}")
        known = {f.name for f in fields(TransformerConfig)}
        unknown = set(self.model) - known
        if unknown:
            raise ValueError(f"unknown model settings {sorted(unknown)}; TransformerConfig has {sorted(known)}")
        if "attention" in self.model and self.model["attention"] != self.attention:
            raise ValueError(f"objective {self.objective!r} needs attention={self.attention!r}, "
                             f"got {self.model['attention']!r}")
        tc = self.model.get("time_conditioning", self.objective.startswith("d3pm"))
        if tc and self.objective in ("ar", "mdlm", "llada"):
            raise ValueError(f"objective {self.objective!r} takes no time input: time_conditioning must be False")
        self.transformer_config()                                              # raises on bad sizes

    @property
    def attention(self) -> str:
        return "causal" if self.objective == "ar" else "bidirectional"

    def transformer_config(self) -> TransformerConfig:
        kw = dict(vocab_size=353, seq_len=SEQ_LEN, attention=self.attention,
                  time_conditioning=self.objective.startswith("d3pm"))
        kw.update(self.model)
        return TransformerConfig(**kw)

    @classmethod
    def from_dict(cls, recipe) -> "TextLMConfig":
        if isinstance(recipe, cls):
            return recipe
        if not isinstance(recipe, dict):
            raise ValueError(f"a recipe is a dict or a TextLMConfig, got {type(recipe).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = set(recipe) - known
        if unknown:
            raise ValueError(f"unknown recipe keys {sorted(unknown)}; known keys are {sorted(known)}")
        return cls(**recipe)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["betas"] = list(self.betas)
        d["model"] = self.transformer_config().to_dict()
        return d


# ----------------------------------------------------------------------------------------------
# Data conventions
# ----------------------------------------------------------------------------------------------

def _check_ids(ids, name: str = "ids", seq_len: int | None = None) -> torch.Tensor:
    if not isinstance(ids, torch.Tensor) or ids.dtype != torch.long or ids.ndim != 2 or ids.shape[0] < 1:
        raise ValueError(f"{name} must be a (N, L) long tensor from tokenizer.batchify, got "
                         f"{getattr(ids, 'dtype', type(ids).__name__)} of shape {tuple(getattr(ids, 'shape', ()))}")
    if seq_len is not None and ids.shape[1] != seq_len:
        raise ValueError(f"{name} has {ids.shape[1]} positions but the model's seq_len is {seq_len} "
                         "(batchify with length=seq_len)")
    if bool((ids == MASK_ID).any()):
        raise ValueError(f"{name} contains the [MASK] id {MASK_ID}; data must be clean text")
    return ids


def counted_tokens(ids: torch.Tensor) -> torch.Tensor:
    """(N,) number of counted tokens per row: every position that is not [PAD] (the words and the [EOS]).

    The denominator of every "nats per token" in the course."""
    return (ids != PAD_ID).sum(1)


def _ar_batch(ids: torch.Tensor):
    """Inputs ``[EOS, x_1..x_{L-1}]`` and targets ``x`` (with -100 at [PAD]), trimmed to the longest row."""
    n = int(counted_tokens(ids).max())
    x = ids[:, :n]
    inp = torch.cat([torch.full_like(x[:, :1], EOS_ID), x[:, :-1]], dim=1)
    target = torch.where(x == PAD_ID, torch.full_like(x, -100), x)
    return inp, target


def pack_canvases(ids: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` packed canvases: sentences of ``ids`` drawn at random (with replacement), each followed by
    its [EOS], laid end to end until the canvas is full; the last sentence is cut at the canvas edge.

    This is MDLM's ``wrap`` data mode (the official
    repository wraps OpenWebText; LM1B is padded), except that every canvas starts at a sentence start,
    so the text before the first [EOS] of a canvas is distributed exactly like a sentence of the data.
    ``ids``: padded canvases from :func:`tokenizer.batchify`; the result has the same width and no [PAD]."""
    ids = _check_ids(ids)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    L = ids.shape[1]
    lengths = counted_tokens(ids).numpy()
    if (lengths < 1).any() or bool((ids[torch.arange(len(ids)), torch.as_tensor(lengths) - 1] != EOS_ID).any()):
        raise ValueError("every row of ids must be a sentence ending in [EOS] followed by [PAD]s")
    rows = ids.numpy()
    rng = np.random.default_rng(seed)
    out = np.empty((n, L), dtype=np.int64)
    draws = iter(rng.integers(0, len(rows), size=n * (L + 1)))       # more than enough: every sentence has >= 1 token
    for i in range(n):
        filled = 0
        while filled < L:
            r = next(draws)
            k = min(int(lengths[r]), L - filled)
            out[i, filled:filled + k] = rows[r, :k]
            filled += k
    return torch.from_numpy(out)


def packed_canvas(ids: torch.Tensor, first: int) -> torch.Tensor:
    """One packed canvas (1, L) that starts with sentence ``first`` of ``ids`` (padded canvases from
    :func:`tokenizer.batchify`): that sentence and its [EOS], then the sentences after it, in order, cut at the
    canvas edge. How a model pretrained on :func:`pack_canvases` reads one chosen sentence."""
    ids = _check_ids(ids)
    if isinstance(first, bool) or not isinstance(first, int) or not 0 <= first < len(ids):
        raise ValueError(f"first must be a row index of ids (0 to {len(ids) - 1}), got {first!r}")
    L, out, row = ids.shape[1], [], first
    while sum(len(r) for r in out) < L and row < len(ids):
        out.append(ids[row][ids[row] != PAD_ID])
        row += 1
    canvas = torch.cat(out)[:L]
    if len(canvas) < L:
        raise ValueError(f"the sentences from row {first} on do not fill a canvas of {L} positions")
    return canvas[None]


# ----------------------------------------------------------------------------------------------
# D3PM with closed-form transition matrices (uniform and absorbing noise)
# ----------------------------------------------------------------------------------------------

class D3PMNoise:
    """Closed-form uniform or absorbing D3PM noise over ``K`` tokens (D3PM App. A.2).

    ``Q_t = (1 - beta_t) I + beta_t 1 pi^T`` and
    ``Q-bar_t = alpha-bar_t I + (1 - alpha-bar_t) 1 pi^T`` with ``pi`` uniform (1/K) or the [MASK]
    one-hot. The betas are D3PM's (those of :func:`d3pm.uniform_schedule` /
    :func:`d3pm.absorbing_schedule`, which do not depend on K), so this agrees with
    ``d3pm.make_discrete_schedule(kind, K, T)`` without its (T+1, K, K) matrices."""

    def __init__(self, kind: str, K: int, T: int = 1000, mask_id: int = MASK_ID):
        if kind not in ("uniform", "absorbing"):
            raise ValueError(f"kind must be 'uniform' or 'absorbing', got {kind!r}")
        ref = d3pm.make_discrete_schedule(kind, 2, T, mask_id=1 if kind == "absorbing" else None)
        self.kind, self.K, self.T, self.mask_id = kind, int(K), int(T), mask_id
        self.betas, self.alpha_bars = ref.betas.clone(), ref.alpha_bars.clone()   # (T+1,), float64

    def pi(self, device=None) -> torch.Tensor:
        if self.kind == "uniform":
            return torch.full((self.K,), 1.0 / self.K, dtype=torch.float64, device=device)
        return F.one_hot(torch.tensor(self.mask_id), self.K).double().to(device)

    def sample(self, x0: torch.Tensor, t: torch.Tensor, generator=None) -> torch.Tensor:
        """x_t ~ Cat(x0 Q-bar_t): keep x0 with prob alpha-bar_t, else a draw from pi. ``t``: (B,) ints."""
        ab = self.alpha_bars[t.cpu()]                   # random draws on the CPU (CPU generator), then moved
        keep = torch.rand(x0.shape, generator=generator, dtype=torch.float64) < ab[:, None]
        if self.kind == "uniform":
            noise = torch.randint(0, self.K, x0.shape, generator=generator).to(x0.device)
        else:
            noise = torch.full_like(x0, self.mask_id)
        return torch.where(keep.to(x0.device), x0, noise)

    def _posterior(self, x_t, p0, t):
        """p(x_{t-1} | x_t, x0 ~ p0) ∝ (x_t Q_t^T) ⊙ (p0 Q-bar_{t-1}), eq. 3-4; float64 (B, L, K)."""
        pi = self.pi(x_t.device)
        beta = self.betas[t.cpu()].to(x_t.device)[:, None, None]
        ab = self.alpha_bars[t.cpu() - 1].to(x_t.device)[:, None, None]
        fact1 = (1 - beta) * F.one_hot(x_t, self.K).double() + beta * pi[x_t][..., None]
        fact2 = ab * p0 + (1 - ab) * pi
        unnorm = fact1 * fact2
        return unnorm / unnorm.sum(-1, keepdim=True)

    def vb_terms(self, logits: torch.Tensor, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Per-position ``L_{t-1}`` in nats, (B, L), as :func:`course_lib.d3pm.vb_term`:
        KL(q(x_{t-1}|x_t,x0) || p_theta(x_{t-1}|x_t)) for t >= 2 and -log p_theta(x0|x_1) for t = 1."""
        p = self._posterior(x_t, torch.softmax(logits.double(), -1), t)
        q = self._posterior(x_t, F.one_hot(x0, self.K).double(), t)
        pos = q > 0
        one = torch.ones((), dtype=torch.float64, device=x_t.device)
        kl = torch.where(pos, q * (torch.log(torch.where(pos, q, one)) - torch.log(torch.where(pos, p, one))),
                         torch.zeros((), dtype=torch.float64, device=x_t.device)).sum(-1)
        nll = -torch.log(p.gather(-1, x0[..., None])[..., 0])
        return torch.where((t.to(x_t.device) == 1)[:, None], nll, kl)

    def prior_kl(self, x0: torch.Tensor) -> torch.Tensor:
        """``L_T = KL(q(x_T | x0) || pi)`` per position, (B, L)."""
        ab = float(self.alpha_bars[self.T])
        if self.kind == "absorbing":                # alpha-bar_T = 0: q(x_T | x0) = pi exactly
            return torch.zeros(x0.shape, dtype=torch.float64, device=x0.device)
        K = self.K
        hit, miss = ab + (1 - ab) / K, (1 - ab) / K
        kl = hit * math.log(hit * K) + (K - 1) * (miss * math.log(miss * K) if miss > 0 else 0.0)
        return torch.full(x0.shape, kl, dtype=torch.float64, device=x0.device)


def _noise_for(cfg: TextLMConfig, K: int) -> D3PMNoise:
    return D3PMNoise(cfg.objective.removeprefix("d3pm_"), K, cfg.T)


def d3pm_logits(model, x_t, t, T):
    """A D3PM text model's x0-logits at integer times ``t`` (of ``T``), with [MASK] excluded: the model sees t / T
    if it was trained with a time input."""
    tc = model.config.time_conditioning
    logits = model(x_t, (t.float() / T).to(x_t.device)) if tc else model(x_t)
    return masked.exclude_mask(logits, MASK_ID)            # clean text never contains [MASK]


# ----------------------------------------------------------------------------------------------
# Training losses: each returns (loss to minimise, counted tokens)
# ----------------------------------------------------------------------------------------------

def _training_loss(model, cfg: TextLMConfig, x0: torch.Tensor, g: torch.Generator, noise=None,
                   prompt_lengths: torch.Tensor | None = None) -> torch.Tensor:
    if prompt_lengths is not None:                                   # LLaDA SFT: the prompt is never masked
        return masked.sft_step_loss(model, x0, prompt_lengths, MASK_ID, g).loss
    tokens = counted_tokens(x0).sum()
    if cfg.objective == "ar":
        inp, target = _ar_batch(x0)
        logits = model(inp)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                               ignore_index=-100, reduction="sum") / tokens
    if cfg.objective == "llada":
        if cfg.mask_ratio is None:
            return masked.llada_pretrain_step_loss(model, x0, MASK_ID, g).loss
        p_mask = torch.full((x0.shape[0],), float(cfg.mask_ratio), dtype=torch.float64)
        x_t, m = masked.forward_mask(x0, p_mask, "linear", MASK_ID, g)      # linear schedule: mask prob = t
        return masked.llada_pretrain_loss(model(x_t), x0, x_t, m, p_mask, mask_id=MASK_ID)
    if cfg.objective == "mdlm":
        t = masked.sample_times(x0.shape[0], g)                                        # antithetic
        x_t, m = masked.forward_mask(x0, t, cfg.schedule, MASK_ID, g)
        out = masked.mdlm_loss(model(x_t), x0, x_t, m, t, cfg.schedule, mask_id=MASK_ID)
        return out.nelbo.sum() / tokens                          # every canvas position, per counted token
    # D3PM hybrid loss (eq. 5): L_{t-1} at one t ~ U{1..T} per sequence, plus lambda * CE(x0-prediction)
    t = torch.randint(1, noise.T + 1, (x0.shape[0],), generator=g)
    x_t = noise.sample(x0, t, g)
    logits = d3pm_logits(model, x_t, t, noise.T)
    vb = noise.vb_terms(logits, x0, x_t, t)
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), x0.reshape(-1), reduction="sum")
    return (vb.sum().float() + cfg.hybrid_lambda * ce) / tokens


# ----------------------------------------------------------------------------------------------
# Evaluation: NLL (bound) in nats per counted token
# ----------------------------------------------------------------------------------------------

class NLLResult(NamedTuple):
    """``nll``: nats per counted token; ``se``: Monte-Carlo standard error of ``nll`` (0 for AR: exact);
    ``se_data``: standard error from the finite set of sentences (delta method, as
    ``language.entropy_per_token``); ``tokens``/``sentences``: counted; ``samples``: MC samples per sentence."""
    nll: float
    se: float
    se_data: float
    tokens: int
    sentences: int
    samples: int

    @property
    def perplexity(self) -> float:
        return math.exp(self.nll)


def nll_summary(per_seq, tokens) -> NLLResult:
    """Nats per counted token, with standard errors, from ``per_seq`` (N, S): nats per sentence for each of S
    Monte-Carlo draws (S = 1 for an exact NLL), and ``tokens`` (N,), the counted tokens of each sentence."""
    per_seq, tokens = torch.as_tensor(per_seq), torch.as_tensor(tokens)
    samples = per_seq.shape[1] if per_seq.shape[1] > 1 else 0
    a = per_seq.detach().double().cpu().mean(1)          # statistics on the CPU, whatever the model's device
    b = tokens.detach().double().cpu()
    per_seq = per_seq.detach().cpu()
    h = float(a.sum() / b.sum())
    n = len(a)
    se_data = float((a - h * b).std(unbiased=True) / (math.sqrt(n) * b.mean())) if n > 1 else float("nan")
    if samples > 1:   # variance of the mean of S samples, per sentence; conservative for stratified t
        se = float(torch.sqrt((per_seq.double().var(1, unbiased=True) / samples).sum()) / b.sum())
    else:
        se = 0.0 if samples == 0 else float("nan")
    return NLLResult(h, se, se_data, int(b.sum()), n, samples)


def _batches(n: int, batch_size: int):
    for i in range(0, n, batch_size):
        yield slice(i, min(n, i + batch_size))


def ar_nll(model: Transformer, ids: torch.Tensor, batch_size: int = 256) -> NLLResult:
    """Exact NLL of an AR model, nats per counted token: ``-sum_i log p(x_i | x_<i)`` over the words and
    [EOS] (first word predicted from the [EOS]-as-BOS input), divided by the number of those tokens."""
    return nll_summary(ar_nll_terms(model, ids, batch_size), counted_tokens(ids))


@torch.no_grad()
def ar_nll_terms(model: Transformer, ids: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """The per-sentence NLLs behind :func:`ar_nll`: (N, 1) float64, nats per sentence."""
    ids = _check_ids(ids, seq_len=model.config.seq_len)
    was = model.training
    model.eval()
    out = []
    for sl in _batches(len(ids), batch_size):
        inp, target = _ar_batch(ids[sl])
        logits = model(inp).double()
        nll = F.cross_entropy(logits.transpose(1, 2), target, ignore_index=-100, reduction="none")
        out.append(nll.sum(1))
    model.train(was)
    return torch.cat(out)[:, None]


def _stratified_u(n: int, samples: int, g) -> torch.Tensor:
    """(n, samples) in [0, 1): for each row, one uniform draw in each stratum [k/S, (k+1)/S)."""
    u = torch.rand(n, samples, generator=g, dtype=torch.float64)
    return (u + torch.arange(samples, dtype=torch.float64)) / samples


def mdlm_nelbo(model: Transformer, ids: torch.Tensor, schedule="linear", samples: int = 8, seed: int = 0,
               batch_size: int = 256, eps: float = 1e-3) -> NLLResult:
    """MDLM's continuous-time NELBO (eq. 10-11), nats per counted token, by Monte Carlo.

    Each sentence gets ``samples`` times, one in each stratum
    [k/S, (k+1)/S) of [0, 1) (antithetic/stratified sampling, as :func:`masked.sample_times` does
    across a batch), mapped to [eps, 1]; one mask draw per time. The per-sentence NELBO sums the
    weighted masked-token NLL over all canvas positions (PAD included, see the module docstring).
    ``se`` is the Monte-Carlo standard error (conservative: it treats the S draws as independent)."""
    return nll_summary(mdlm_nelbo_terms(model, ids, schedule, samples, seed, batch_size, eps), counted_tokens(ids))


@torch.no_grad()
def mdlm_nelbo_terms(model: Transformer, ids: torch.Tensor, schedule="linear", samples: int = 8, seed: int = 0,
                     batch_size: int = 256, eps: float = 1e-3) -> torch.Tensor:
    """The Monte-Carlo draws behind :func:`mdlm_nelbo`: (N, samples) float64, nats per sentence. Batches of
    sentences are drawn in turn from one generator (their times, then their masks), so the first ``batch_size``
    rows of a run are the rows of a run on ``ids[:batch_size]``."""
    ids = _check_ids(ids, seq_len=model.config.seq_len)
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 2:
        raise ValueError(f"samples must be an integer >= 2 (for a standard error), got {samples!r}")
    schedule = masked.get_schedule(schedule)
    g = torch.Generator().manual_seed(seed)
    was = model.training
    model.eval()
    per_seq = torch.zeros(len(ids), samples, dtype=torch.float64)
    for sl in _batches(len(ids), batch_size):
        x0 = ids[sl]
        t_all = (1 - eps) * _stratified_u(len(x0), samples, g) + eps
        for k in range(samples):
            x_t, m = masked.forward_mask(x0, t_all[:, k], schedule, MASK_ID, g)
            per_seq[sl, k] = masked.mdlm_loss(model(x_t), x0, x_t, m, t_all[:, k], schedule,
                                              mask_id=MASK_ID).nelbo.double()
    model.train(was)
    return per_seq


def d3pm_nelbo(model: Transformer, ids: torch.Tensor, kind: str, T: int = 1000, samples: int = 8,
               seed: int = 0, batch_size: int = 256) -> NLLResult:
    """D3PM's T-step bound ``L_T + sum_{t=1}^T L_{t-1}``, nats per counted token, estimated by sampling t.

    The sum over t is ``T * E_{t ~ U{1..T}} L_{t-1}``; each sentence
    gets ``samples`` values of t, one in each stratum of {1..T} (stratified sampling), and one draw of
    x_t per t. ``L_T`` (the prior term) is exact. All canvas positions count, divided by counted tokens."""
    return nll_summary(d3pm_nelbo_terms(model, ids, kind, T, samples, seed, batch_size), counted_tokens(ids))


@torch.no_grad()
def d3pm_nelbo_terms(model: Transformer, ids: torch.Tensor, kind: str, T: int = 1000, samples: int = 8,
                     seed: int = 0, batch_size: int = 256) -> torch.Tensor:
    """The Monte-Carlo draws behind :func:`d3pm_nelbo`: (N, samples) float64, nats per sentence, drawn batch by
    batch like :func:`mdlm_nelbo_terms`."""
    ids = _check_ids(ids, seq_len=model.config.seq_len)
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 2:
        raise ValueError(f"samples must be an integer >= 2 (for a standard error), got {samples!r}")
    noise = D3PMNoise(kind, model.config.vocab_size, T)
    g = torch.Generator().manual_seed(seed)
    was = model.training
    model.eval()
    per_seq = torch.zeros(len(ids), samples, dtype=torch.float64)
    for sl in _batches(len(ids), batch_size):
        x0 = ids[sl]
        t_all = (1 + (_stratified_u(len(x0), samples, g) * T).floor().long()).clamp(1, T)
        prior = noise.prior_kl(x0).sum(1)
        for k in range(samples):
            x_t = noise.sample(x0, t_all[:, k], g)
            vb = noise.vb_terms(d3pm_logits(model, x_t, t_all[:, k], T), x0, x_t, t_all[:, k])
            per_seq[sl, k] = T * vb.sum(1) + prior
    model.train(was)
    return per_seq


def evaluate_nll(model: Transformer, ids: torch.Tensor, recipe, samples: int | None = None,
                 seed: int = 0) -> NLLResult:
    """The objective's NLL (bound) on ``ids`` in nats per counted token: :func:`ar_nll` (exact),
    :func:`mdlm_nelbo` or :func:`d3pm_nelbo` (Monte Carlo, ``samples`` per sentence; default the
    recipe's ``eval_samples``, at least 2)."""
    return nll_summary(evaluate_nll_terms(model, ids, recipe, samples, seed), counted_tokens(ids))


def evaluate_nll_terms(model: Transformer, ids: torch.Tensor, recipe, samples: int | None = None,
                       seed: int = 0) -> torch.Tensor:
    """The per-sentence values behind :func:`evaluate_nll`: (N, S) float64 nats per sentence (S = 1 for AR)."""
    cfg = TextLMConfig.from_dict(recipe)
    s = max(2, cfg.eval_samples if samples is None else samples)
    if cfg.objective == "ar":
        return ar_nll_terms(model, ids)
    if cfg.objective in ("mdlm", "llada"):
        return mdlm_nelbo_terms(model, ids, cfg.schedule, samples=s, seed=seed)
    return d3pm_nelbo_terms(model, ids, cfg.objective.removeprefix("d3pm_"), cfg.T, samples=s, seed=seed)


# ----------------------------------------------------------------------------------------------
# The training loop
# ----------------------------------------------------------------------------------------------

def build_model(recipe) -> Transformer:
    """The recipe's Transformer (freshly initialised, seeded by ``recipe.seed``)."""
    cfg = TextLMConfig.from_dict(recipe)
    torch.manual_seed(cfg.seed)
    return Transformer(cfg.transformer_config())


def train_text_model(recipe, train_ids: torch.Tensor, valid_ids: torch.Tensor | None = None,
                     model: Transformer | None = None, show_progress: bool = True, desc: str | None = None,
                     max_seconds: float | None = None, num_threads: int | None = 1,
                     prompt_lengths: torch.Tensor | None = None):
    """Train a text model; returns ``(model, history)``.

    ``train_ids``/``valid_ids``: (N, seq_len) canvases from :func:`tokenizer.batchify`. Each step draws
    ``batch_size`` random rows (with replacement, from a generator seeded by ``recipe.seed``), takes
    one AdamW step on the objective's loss (nats per counted token) with warmup + cosine lr and
    gradient clipping, and updates the EMA if any. Every ``eval_every`` steps and at the end the
    validation bound (:func:`evaluate_nll` on the first ``eval_sentences`` validation sentences)
    is recorded. The returned model is the EMA copy when ``ema_decay`` is set, in eval mode.

    ``history``: ``step``, ``tokens`` (counted tokens seen so far), ``train_loss`` (mean over each
    logging window of ``max(1, eval_every // 10)`` steps); ``eval_step``, ``eval_tokens``,
    ``valid_nll`` and ``valid_se`` (nats/token); ``seconds`` (training time, evaluation excluded),
    ``eval_seconds``, ``tokens_per_second``, ``n_params`` and ``recipe`` (the full dict).

    ``max_seconds`` stops early once that much training time has passed (the lr schedule still
    assumes ``steps``). ``num_threads`` sets ``torch.set_num_threads`` during training (1 by default:
    on a 2-core machine two threads oversubscribe as soon as anything else runs); None leaves it.

    ``prompt_lengths`` (N,) turns a ``"llada"`` recipe into LLaDA's SFT (chapter 3): row i of
    ``train_ids`` is ``[prompt | answer | EOS ...]`` with a prompt of ``prompt_lengths[i]`` tokens, and the
    loss is :func:`course_lib.masked.sft_step_loss`. ``model`` may then be a pretrained model to fine-tune."""
    cfg = TextLMConfig.from_dict(recipe)
    tc = cfg.transformer_config()
    train_ids = _check_ids(train_ids, "train_ids", tc.seq_len)
    if valid_ids is not None:
        valid_ids = _check_ids(valid_ids, "valid_ids", tc.seq_len)[:cfg.eval_sentences]
    if int(train_ids.max()) >= tc.vocab_size:
        raise ValueError(f"train_ids hold ids >= vocab_size = {tc.vocab_size}")
    if prompt_lengths is not None:
        if cfg.objective != "llada" or cfg.mask_ratio is not None:
            raise ValueError("prompt_lengths (SFT) need the 'llada' objective with a variable masking rate")
        prompt_lengths = torch.as_tensor(prompt_lengths)
        if prompt_lengths.shape != (len(train_ids),):
            raise ValueError(f"prompt_lengths must have shape ({len(train_ids)},), got {tuple(prompt_lengths.shape)}")
    old_threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        if model is None:
            model = build_model(cfg)
        elif model.config.to_dict() != tc.to_dict():
            raise ValueError("the model's config differs from the recipe's model config")
        g = torch.Generator().manual_seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        noise = _noise_for(cfg, tc.vocab_size) if cfg.objective.startswith("d3pm") else None
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=tuple(cfg.betas),
                                weight_decay=cfg.weight_decay)
        ema = EMA(model, cfg.ema_decay) if cfg.ema_decay is not None else None
        history = {"step": [], "tokens": [], "train_loss": [], "eval_step": [], "eval_tokens": [],
                   "valid_nll": [], "valid_se": [], "seconds": 0.0, "eval_seconds": 0.0,
                   "n_params": model.n_params(), "recipe": cfg.to_dict()}
        log_every = max(1, cfg.eval_every // 10)
        tokens_seen, window, train_s, eval_s = 0, [], 0.0, 0.0

        def validate(step):
            nonlocal eval_s
            if valid_ids is None:
                return
            t0 = time.perf_counter()
            res = evaluate_nll(ema.model if ema else model, valid_ids, cfg, seed=cfg.seed + 1)
            eval_s += time.perf_counter() - t0
            for k, v in (("eval_step", step), ("eval_tokens", tokens_seen), ("valid_nll", res.nll),
                         ("valid_se", res.se)):
                history[k].append(v)

        batch = {}

        def loss_fn(step):
            rows = torch.randint(0, len(train_ids), (cfg.batch_size,), generator=g)
            batch["x0"] = train_ids[rows]
            loss = _training_loss(model, cfg, batch["x0"], g, noise,
                                  None if prompt_lengths is None else prompt_lengths[rows])
            if model.moe_layers():               # chapter 4: + the Switch balancing loss (the logged loss excludes it)
                return loss + model.moe_aux_loss(), loss.item()
            return loss, loss.item()

        bar = progress(range(cfg.steps), desc=desc or cfg.objective) if show_progress else range(cfg.steps)
        t_start = t_step = time.perf_counter()
        step = 0
        for step, loss_value in training_loop(model, loss_fn, bar, opt,
                                              lambda s: lr_factor(s, cfg.steps, cfg.warmup, cfg.min_lr_ratio),
                                              cfg.grad_clip):
            model.moe_update_bias()              # chapter 4: aux-loss-free balancing; a no-op for dense models
            if ema is not None:
                ema.update(model)                # buffers too: the EMA copy routes with the live router bias
            tokens_seen += int(counted_tokens(batch["x0"]).sum())
            window.append(loss_value)
            train_s += time.perf_counter() - t_step
            last = step == cfg.steps - 1 or (max_seconds is not None and train_s >= max_seconds)
            if (step + 1) % log_every == 0 or last:
                history["step"].append(step + 1)
                history["tokens"].append(tokens_seen)
                history["train_loss"].append(sum(window) / len(window))
                window = []
            if (step + 1) % cfg.eval_every == 0 or last:
                model.eval()
                validate(step + 1)
                model.train()
                if show_progress and history["valid_nll"]:
                    bar.set_postfix(loss=f"{history['train_loss'][-1]:.3f}", valid=f"{history['valid_nll'][-1]:.3f}")
            elif show_progress and (step + 1) % log_every == 0:
                bar.set_postfix(loss=f"{history['train_loss'][-1]:.3f}")
            if last:
                break
            t_step = time.perf_counter()
        history.update(seconds=train_s, eval_seconds=eval_s, wall_seconds=time.perf_counter() - t_start,
                       steps_done=step + 1, tokens_per_second=tokens_seen / max(train_s, 1e-9))
    finally:
        torch.set_num_threads(old_threads)
    out = ema.model if ema is not None else model
    out.eval()
    return out, history


# ----------------------------------------------------------------------------------------------
# Sampling
# ----------------------------------------------------------------------------------------------

def to_sentence(row, tokenizer: Tokenizer):
    """Tokens before the first [EOS] as strings (specials by name), or None if there is no [EOS]."""
    row = [int(i) for i in row]
    if EOS_ID not in row:
        return None
    return [tokenizer.itos[i] for i in row[:row.index(EOS_ID)]]


def to_sentences(rows, tokenizer: Tokenizer) -> list:
    """:func:`to_sentence` of every row of a (n, L) array of token ids."""
    return [to_sentence(r, tokenizer) for r in rows]


@torch.no_grad()
def sample_ar_tokens(model: Transformer, n: int, temperature: float = 1.0, seed: int = 0,
                     max_tokens: int | None = None, batch_size: int = 500) -> torch.Tensor:
    """``n`` ancestral samples from an AR model as token ids (n, seq_len): start from [EOS] (as BOS) and draw
    tokens until [EOS]; [PAD] after it.

    At most ``max_tokens`` (default seq_len) tokens, [EOS] included. [PAD] and [MASK] get probability zero
    (AR never sees them as targets). Batches are drawn in turn from one generator seeded with ``seed``, so the
    first ``batch_size`` samples of a run are the samples of a run with ``n = batch_size``."""
    if model.config.attention != "causal":
        raise ValueError("sample_ar needs a causal (AR) model")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    L = max_tokens or model.config.seq_len
    if L > model.config.seq_len:
        raise ValueError(f"max_tokens {L} exceeds the model's seq_len {model.config.seq_len}")
    g = torch.Generator().manual_seed(seed)          # random draws on the CPU: the same samples on any device
    dev = next(model.parameters()).device
    was = model.training
    model.eval()
    out = torch.full((n, model.config.seq_len), PAD_ID, dtype=torch.long)
    for sl in _batches(n, batch_size):
        B = sl.stop - sl.start
        x = torch.full((B, 1), EOS_ID, dtype=torch.long)
        done = torch.zeros(B, dtype=torch.bool)
        for _ in range(L):           # no KV cache: the sequences are short
            logits = model(x.to(dev))[:, -1].double().cpu() / temperature
            logits[:, MASK_ID] = -math.inf
            logits[:, PAD_ID] = -math.inf
            nxt = torch.multinomial(torch.softmax(logits, -1), 1, generator=g)[:, 0]
            nxt = torch.where(done, torch.full_like(nxt, PAD_ID), nxt)
            x = torch.cat([x, nxt[:, None]], 1)
            done |= nxt == EOS_ID
            if bool(done.all()):
                break
        out[sl, :x.shape[1] - 1] = x[:, 1:]
    model.train(was)
    return out


def sample_ar(model: Transformer, n: int, tokenizer: Tokenizer, temperature: float = 1.0, seed: int = 0,
              max_tokens: int | None = None, batch_size: int = 500) -> list:
    """:func:`sample_ar_tokens` as sentences: lists of word strings (without [EOS]), None where a sample
    never emitted [EOS]."""
    return to_sentences(sample_ar_tokens(model, n, temperature, seed, max_tokens, batch_size), tokenizer)


@torch.no_grad()
def sample_mdlm_tokens(model: Transformer, n: int, steps: int | None = None, order: str = "random",
                       schedule="linear", temperature: float = 1.0, seed: int = 0,
                       batch_size: int = 500) -> torch.Tensor:
    """``n`` samples from an MDLM as token canvases (n, seq_len): :func:`masked.ancestral_sampler` over a canvas
    of seq_len positions.

    ``steps`` defaults to seq_len (one token per step on average); ``order`` is ``"random"`` (MDLM) or
    ``"confidence"`` (LLaDA's low-confidence remasking). The sampler runs with MDLM's cache (row by row): a
    canvas row that a step left unchanged is not sent through the network again, which saves about a third of
    the work at ``steps = seq_len``. Batches are drawn in turn from one generator seeded with ``seed``, so the
    first ``batch_size`` samples of a run are the samples of a run with ``n = batch_size``."""
    L = model.config.seq_len
    g = torch.Generator().manual_seed(seed)          # the sampler runs on the CPU; only the network on its device
    dev = next(model.parameters()).device
    was = model.training
    model.eval()
    out = []
    for sl in _batches(n, batch_size):
        out.append(ddpm.final(masked.ancestral_sampler(lambda z: model(z.to(dev)).float().cpu(), L, steps or L,
                                                         MASK_ID, g, order=order, schedule=schedule,
                                                         batch=sl.stop - sl.start, temperature=temperature,
                                                         cache=True)))
    model.train(was)
    return torch.cat(out)


def sample_mdlm(model: Transformer, n: int, tokenizer: Tokenizer, steps: int | None = None,
                order: str = "random", schedule="linear", temperature: float = 1.0, seed: int = 0,
                batch_size: int = 500) -> list:
    """:func:`sample_mdlm_tokens` as sentences: what precedes the first [EOS] of each canvas (the rest is
    ignored), None where a canvas has no [EOS]."""
    return to_sentences(sample_mdlm_tokens(model, n, steps, order, schedule, temperature, seed, batch_size),
                        tokenizer)


def sample_validity(samples, data=None, grammar=None) -> dict:
    """Validity of samples by the language's exact validator, and their lengths against the data's.

    ``samples``: lists of words (None = no [EOS], invalid).
    ``data``: reference sentences (default: the train split) for the mean length. Returns a dict:
    ``n``, ``valid_fraction``, ``no_eos_fraction``, ``mean_length`` (words, over samples with an
    [EOS]), ``data_mean_length`` and ``length_ratio`` (sample / data)."""
    samples = list(samples)
    if not samples:
        raise ValueError("no samples given")
    if data is None:
        data = language.read_split("train")
    ended = [s for s in samples if s is not None]
    valid = sum(1 for s in ended if language.is_valid(s, grammar))
    mean_len = float(np.mean([len(s) for s in ended])) if ended else float("nan")
    data_len = float(np.mean([len(s) for s in data]))
    return {"n": len(samples), "valid_fraction": valid / len(samples),
            "no_eos_fraction": 1 - len(ended) / len(samples), "mean_length": mean_len,
            "data_mean_length": data_len, "length_ratio": mean_len / data_len}


# ----------------------------------------------------------------------------------------------
# Shipped text models: recipes and loading
# ----------------------------------------------------------------------------------------------

_SMALL = dict(n_layer=4, n_head=4, d_model=128)        # 0.88M parameters (0.90M with time conditioning)
TEXT_RECIPES = {
    # Chapter 2: one Transformer size for every objective. Step counts are chosen so that
    # each recipe trains in at most about 14 minutes on a 2-core CPU (AR and D3PM on one thread, so two
    # can train side by side; MDLM, the most compute-hungry, on both cores: TEXT_RECIPE_THREADS). The two
    # D3PM models see the same batches (same seed, batch size and steps): their bounds compare at equal tokens.
    "lm_ar": dict(objective="ar", model=_SMALL, steps=5000, batch_size=64, lr=1.5e-3, warmup=200,
                  ema_decay=0.999, eval_every=500),
    "lm_mdlm": dict(objective="mdlm", model=_SMALL, steps=6500, batch_size=64, lr=1.5e-3, warmup=200,
                    ema_decay=0.999, eval_every=500),
    "lm_d3pm_absorbing": dict(objective="d3pm_absorbing", model=_SMALL, steps=2500, batch_size=64, lr=1.5e-3,
                              warmup=200, ema_decay=0.999, eval_every=500),
    "lm_d3pm_uniform": dict(objective="d3pm_uniform", model=_SMALL, steps=2500, batch_size=64, lr=1.5e-3,
                            warmup=200, ema_decay=0.999, eval_every=500),
    # Chapter 2 (packing): lm_mdlm's recipe on packed canvases (pack_canvases), MDLM's wrap mode.
    # Same size, steps and batch (so the same compute); each canvas holds about 4 sentences, not one plus 32 [PAD]s.
    "lm_mdlm_packed": dict(objective="mdlm", model=_SMALL, steps=6500, batch_size=64, lr=1.5e-3, warmup=200,
                           ema_decay=0.999, eval_every=500, eval_sentences=500),
}
TEXT_RECIPES.update({
    # Chapter 3: LLaDA's loss with a variable masking rate against BERT's fixed 15%, same model,
    # packed data, batches (same seed) and steps; one thread each so the pair trains side by side in ~14 minutes.
    "lm_llada": dict(objective="llada", model=_SMALL, steps=4000, batch_size=64, lr=1.5e-3, warmup=200,
                     ema_decay=0.999, eval_every=500),
    "lm_bert15": dict(objective="llada", mask_ratio=0.15, model=_SMALL, steps=4000, batch_size=64, lr=1.5e-3,
                      warmup=200, ema_decay=0.999, eval_every=500),
})
FACTS_MODEL = dict(n_layer=4, n_head=4, d_model=128, seq_len=8)          # vocab_size: set from the world's names
_ICL = dict(n_layer=4, n_head=4, d_model=128, seq_len=36, vocab_size=33)
TEXT_RECIPES.update({
    # Chapter 3 (reversal curse): AR and MDM twins, same size, same statements, same batches.
    "facts_ar": dict(objective="ar", model=FACTS_MODEL, steps=12000, batch_size=64, lr=1.5e-3, warmup=200,
                     weight_decay=0.1, eval_every=2000, eval_sentences=500),
    "facts_mdm": dict(objective="llada", model=FACTS_MODEL, steps=12000, batch_size=64, lr=1.5e-3, warmup=200,
                      weight_decay=0.1, eval_every=2000, eval_sentences=500),
    # Chapter 3 (in-context learning): twins trained on fresh few-shot episodes with a loss on the answer only
    # (tasks.train_icl_model), the same episodes for both; no EMA.
    "icl_ar": dict(objective="ar", model=_ICL, steps=5000, batch_size=64, lr=1.5e-3, warmup=200, eval_every=1000),
    "icl_mdm": dict(objective="llada", model=_ICL, steps=5000, batch_size=64, lr=1.5e-3, warmup=200, eval_every=1000),
    # Chapter 3 (SFT): the packed MDM lm_mdlm_packed, grown by the three instruction tokens, fine-tuned on
    # instructions (answers padded with [EOS]).
    "sft_mdm": dict(objective="llada", model=dict(_SMALL, vocab_size=356), steps=2500, batch_size=64, lr=5e-4,
                    warmup=100, ema_decay=0.999, eval_every=2500),
})
TEXT_RECIPE_THREADS = {"lm_ar": 1, "lm_mdlm": 2, "lm_mdlm_packed": 2, "lm_d3pm_absorbing": 1, "lm_d3pm_uniform": 1,
                       "lm_llada": 1, "lm_bert15": 1, "facts_ar": 1, "facts_mdm": 1, "icl_ar": 1, "icl_mdm": 1,
                       "sft_mdm": 1}
# Chapter 4 (mixture of experts): lm_mdlm's size and objective on packed canvases, 750 steps (about 3 minutes each on one
# thread), same data, batches and seed. Blocks 0-1 stay dense (LLaDA 2.0's first_k_dense_replace; 2 of 4 keeps
# every checkpoint under 8 MB), blocks 2-3 are MoE. Equal ACTIVE feed-forward width per token: the dense SwiGLU
# has d_ff = 344 (3 * 128 * 344 = 132,096 weights); Switch runs 2 of 8 experts of 172 (2 * 172 = 344); the
# LLaDA-2.0 analogue runs 1 shared + 3 of 16 routed experts of 86 ((1 + 3) * 86 = 344), in 4 groups of 4 of which
# 2 are searched, with LLaDA 2.0's routed scaling 2.5; both MoEs hold 8 * 172 = 16 * 86 = 1,376 routed hidden
# units per block. Bias rate 3e-3: at DeepSeek-V3's 1e-3 the biases of a 250-step trial were still drifting
# one way (capped at 250 * 1e-3 = 0.25) with loads 60x apart; 3e-3 brought them within 2.4x. No EMA: 0.999 would
# still weigh the initial weights by 0.999^750 = 0.47.
_MOE = dict(_SMALL, n_dense_layers=2)
_MOE_RUN = dict(objective="mdlm", steps=750, batch_size=64, lr=1.5e-3, warmup=75, eval_every=250)
_SWITCH = dict(_MOE, n_experts=8, moe_top_k=2, d_expert=172, router="softmax")
TEXT_RECIPES.update({
    "moe_dense": dict(_MOE_RUN, model=_SMALL),
    "moe_switch": dict(_MOE_RUN, model=dict(_SWITCH, aux_loss_coef=0.01)),
    "moe_switch_nobal": dict(_MOE_RUN, model=dict(_SWITCH, aux_loss_coef=0.0)),
    "moe_llada2": dict(_MOE_RUN, model=dict(_MOE, n_experts=16, moe_top_k=3, n_shared_experts=1, d_expert=86,
                                            router="sigmoid", n_group=4, topk_group=2, routed_scaling=2.5,
                                            bias_update_rate=3e-3)),
})
TEXT_RECIPE_THREADS.update({"moe_dense": 1, "moe_switch": 1, "moe_switch_nobal": 1, "moe_llada2": 1})
# The recipes that pretrain on packed canvases (pack_canvases: sentences joined by their [EOS], no [PAD]), as
# LLaDA pretrains: every position is a real token, so a loss per position is a loss per token. Chapter 2 keeps
# its padded models (lm_ar, lm_mdlm, the D3PMs) beside lm_mdlm_packed to show what packing changes; from
# chapter 3 on every pretrained MDM is packed, and SFT pads only the answer, with [EOS] (LLaDA's recipe).
PACKED_RECIPES = ("lm_mdlm_packed", "lm_llada", "lm_bert15", "moe_dense", "moe_switch", "moe_switch_nobal",
                  "moe_llada2")
SFT_INSTRUCTIONS = 20000           # training instructions of sft_mdm (tasks.instruction_set("train", ...))


def language_ids(split: str, tokenizer: Tokenizer | None = None) -> torch.Tensor:
    """The course language's ``split`` ("train", "valid" or "test") as (N, 41) canvases
    (:func:`tokenizer.batchify`)."""
    return batchify(language.read_split(split), tokenizer or Tokenizer.for_language(), SEQ_LEN)


def load_text_model(name: str) -> Transformer:
    """A shipped text model (``lm_ar``, ``lm_mdlm``, ``lm_d3pm_absorbing``, ``lm_d3pm_uniform``), verified
    against the manifest, in eval mode; its recipe is ``model.recipe``.
    A missing or corrupt file raises :class:`course_lib.checkpoints.CheckpointError` naming the retrain command."""
    return checkpoints.load_model(name, lambda config: Transformer(TextLMConfig.from_dict(config).transformer_config()))
