"""LLaDA: semi-autoregressive sampling with remasking, likelihood estimates.

Follows Nie et al. (2025), "Large Language Diffusion Models" (LLaDA,
arXiv 2502.09992) and its official code (github.com/ML-GSAI/LLaDA): ``GUIDELINES.md`` for the two
losses, ``generate.py`` for the sampler, ``get_log_likelihood.py`` / ``eval_llada.py`` for the
likelihood. The unsupervised classifier-free guidance (CFG) comes from Nie et al. (2025, ICLR),
"Scaling up Masked Diffusion Models on Text" (SMDM).

Conventions, as in :mod:`course_lib.masked`:

- token ids are ``0..V-1``; ``mask_id`` is [MASK]. The default is the course tokenizer's id 1
  (``Tokenizer.mask_id``); a :class:`~course_lib.masked.ToyDistribution` uses ``toy.mask_id`` (= K);
- a *model* is any callable mapping ids (B, L) long to logits (B, L, V). It takes no time input
  (LLaDA's network never sees t: the [MASK]s tell it how noisy the input is);
- the [MASK] logit is always excluded (set to -inf) before any softmax: clean text never contains
  [MASK], so it is never a prediction (MDLM's "zero masking probability");
- likelihoods are in nats. Every ``elbo_*`` function returns an estimate of **log p(answer | prompt)**,
  i.e. *minus* LLaDA's loss (the official ``get_log_likelihood`` returns ``-mean(loss)`` too). The
  exact expectation (paper eq. 6) is a lower bound (ELBO) on the model's log-likelihood, tight for
  the exact denoiser of a toy distribution.

LLaDA's training objectives (pretraining and SFT losses) are masked-diffusion losses; they live with MDLM's
in :mod:`course_lib.masked`. Read top to bottom: 1. sampling -> 2. likelihood and multiple-choice scoring.
"""
from __future__ import annotations

import math
from fractions import Fraction
from typing import Callable, Iterator, NamedTuple, Sequence

import numpy as np
import torch

from .checks import check_eps, check_int, check_scale, check_tokens
from .masked import check_logits, check_mask_id, confidence_rank, exclude_mask, log_odds, masking_patterns
from .tokenizer import Tokenizer

LogitsFn = Callable[[torch.Tensor], torch.Tensor]
MASK_ID, EOS_ID = Tokenizer.mask_id, Tokenizer.eos_id        # 1, 2
REMASKING = ("low_confidence", "random")
_NEG_INF = float("-inf")


# =========================================================================== 1. sampling
def num_transfer_tokens(mask_count, steps: int) -> torch.Tensor:
    """How many tokens to commit at each of ``steps`` steps: (B, steps) long.

    ``generate.py``'s ``get_num_transfer_tokens``: with n masked tokens in a row, every step commits
    ``n // steps`` and the first ``n % steps`` steps one more. LLaDA's schedule is linear (alpha_t = 1 - t),
    so the expected number unmasked per step is constant. ``mask_count`` is a (B,) integer tensor of
    counts (or a bare integer), or a (B, L) bool mask whose rows are counted."""
    steps = check_int(steps, "steps")
    if isinstance(mask_count, torch.Tensor) and mask_count.dtype == torch.bool:
        if mask_count.ndim != 2:
            raise ValueError(f"a boolean mask must have shape (B, L), got {tuple(mask_count.shape)}")
        n = mask_count.sum(1)
    else:
        n = torch.as_tensor(mask_count)
        if n.ndim == 0:
            n = n[None]
        if n.ndim != 1 or n.is_floating_point() or n.dtype == torch.bool or bool((n < 0).any()):
            raise ValueError(f"mask_count must be non-negative integers of shape (B,), got {mask_count!r}")
    n = n.long()
    base, remainder = n // steps, n % steps
    return base[:, None] + (torch.arange(steps, device=n.device)[None] < remainder[:, None]).long()


def gumbel_max(logits: torch.Tensor, temperature: float, generator=None) -> torch.Tensor:
    """A sample from softmax(logits / temperature) at every position, by the Gumbel-max trick, in float64.

    ``generate.py`` computes ``argmax exp(l) / (-log u)^tau``; its log,
    ``l - tau log(-log u) = tau (l / tau + G)`` with G = -log(-log u) ~ Gumbel(0, 1), has the same argmax and
    cannot overflow. float64 because low-precision Gumbel noise lowers generation quality (the
    official docstring, citing arXiv 2409.02908). ``temperature == 0`` is greedy (no random draw)."""
    temperature = check_scale(temperature, "temperature")
    logits = logits.double()
    if temperature == 0:
        return logits.argmax(-1)
    u = torch.rand(logits.shape, generator=generator, dtype=torch.float64).to(logits.device)
    return (logits - temperature * torch.log(-torch.log(u))).argmax(-1)


def guided_logits(model: LogitsFn, x: torch.Tensor, prompt_index: torch.Tensor, cfg_scale: float = 0.0,
                  mask_id: int = MASK_ID) -> torch.Tensor:
    """The logits LLaDA samples from: float64, [MASK] column at -inf, with optional unsupervised CFG.

    With ``cfg_scale`` w > 0 the unconditional input is ``x`` with
    every prompt position (``prompt_index``, (L,) bool) replaced by [MASK], both go through the model in
    one batch, and  logits = un + (w + 1) (cond - un), i.e. p ~ p(.|prompt)^(1+w) / p(.|no prompt)^w
    (SMDM; in the LLaDA paper p ~ p(r0|p0,rt)^(1+w) / p(r0|m,rt)^w). Entries where that is undefined
    (-inf - -inf) become -inf."""
    cfg_scale = check_scale(cfg_scale, "cfg_scale")
    B, L = x.shape
    if cfg_scale > 0:
        un_x = torch.where(prompt_index[None], torch.full_like(x, mask_id), x)
        both = check_logits(model(torch.cat([x, un_x])), 2 * B, L, mask_id, x).double()
        cond, un = both[:B], both[B:]
        logits = un + (cfg_scale + 1) * (cond - un)
        logits = torch.where(torch.isnan(logits), torch.full((), _NEG_INF, dtype=logits.dtype), logits)
    else:
        logits = check_logits(model(x), B, L, mask_id, x).double()
    return exclude_mask(logits, mask_id)


def top_k_mask(score: torch.Tensor, eligible: torch.Tensor, k: torch.Tensor, generator=None,
               tie_break: bool = False) -> torch.Tensor:
    """(B, L) bool: the k[b] eligible positions of each row with the highest ``score``. With ``tie_break``,
    scores closer than 1e-5 tie and ties are broken by a draw from ``generator``
    (:func:`masked.confidence_rank`); without it, ties go to the leftmost."""
    if tie_break:
        rank = confidence_rank(score, generator)
    else:
        order = torch.argsort(score, dim=1, descending=True, stable=True)
        positions = torch.arange(score.shape[1], device=score.device).expand_as(order)
        rank = torch.empty_like(order).scatter_(1, order, positions)
    chosen = eligible & (rank < k[:, None])
    assert bool((chosen.sum(1) == k).all()), "fewer eligible positions than tokens to commit"
    return chosen


class LLaDAStep(NamedTuple):
    """One state of :func:`generate_steps`. ``step`` = steps done (0: the initial canvas)."""
    step: int
    block: int                           # index of the block being decoded
    x: torch.Tensor                      # (B, P + G) canvas after this step
    committed: torch.Tensor              # (B, P + G) bool: positions committed at this step
    proposal: torch.Tensor | None        # (B, P + G) the token proposed at every position (x0 in the code)
    confidence: torch.Tensor | None      # (B, P + G) float64 softmax(logits)[proposal] (no temperature)
    score: torch.Tensor | None           # (B, P + G) float64 ranking score; -inf where nothing may be committed


def _check_generate_args(model, prompt, steps, gen_length, block_length, temperature, cfg_scale, remasking, mask_id):
    if not callable(model):
        raise ValueError("model must be a callable mapping ids (B, L) to logits (B, L, V)")
    check_tokens(prompt, "prompt")
    if prompt.shape[0] < 1:
        raise ValueError("prompt must hold at least one row")
    mask_id = check_mask_id(mask_id)
    if bool((prompt == mask_id).any()):
        raise ValueError(f"the prompt contains the mask id {mask_id}")
    steps, gen_length = check_int(steps, "steps"), check_int(gen_length, "gen_length")
    block_length = check_int(block_length, "block_length")
    if gen_length % block_length:
        raise ValueError(f"gen_length ({gen_length}) must be a multiple of block_length ({block_length})")
    num_blocks = gen_length // block_length
    if steps % num_blocks:
        raise ValueError(f"steps ({steps}) must be a multiple of the number of blocks ({num_blocks})")
    check_scale(temperature, "temperature")
    check_scale(cfg_scale, "cfg_scale")
    if remasking not in REMASKING:
        raise ValueError(f"unknown remasking {remasking!r}; use one of {REMASKING}")
    context = getattr(getattr(model, "config", None), "seq_len", None)     # a course Transformer knows its context
    if context is not None and prompt.shape[1] + gen_length > context:
        raise ValueError(f"prompt ({prompt.shape[1]} tokens) + gen_length ({gen_length}) = "
                         f"{prompt.shape[1] + gen_length} exceeds the model's context of {context} positions")
    return num_blocks, steps // num_blocks


@torch.no_grad()
def generate_steps(model: LogitsFn, prompt: torch.Tensor, steps: int = 32, gen_length: int = 32,
                   block_length: int = 32, temperature: float = 0.0, cfg_scale: float = 0.0,
                   remasking: str = "low_confidence", mask_id: int = MASK_ID, generator=None) -> Iterator[LLaDAStep]:
    """LLaDA's sampler (``generate.py``) as a stream: yields the initial canvas, then the state after each of
    the ``steps`` steps. :func:`generate` is the usual entry point.

    1. canvas ``x = [prompt | MASK * gen_length]``; the answer is cut into ``gen_length / block_length``
       blocks, decoded left to right (semi-autoregressive when ``block_length < gen_length``), each with
       ``steps / num_blocks`` steps;
    2. each step: logits (:func:`guided_logits`), a proposal at every position by Gumbel-max at
       ``temperature`` (:func:`gumbel_max`), a score per position: its confidence softmax(logits)[proposal]
       (``"low_confidence"`` remasking) or U(0, 1) (``"random"``); positions outside the current block or
       already committed score -inf;
    3. the ``num_transfer_tokens`` highest scores are committed; the other proposals are discarded
       (re-masked). Committed tokens never change. Confidences that agree to within 1e-5 in log-odds count
       as ties, broken by a draw from ``generator`` (:func:`masked.confidence_rank`): the official code's
       ``topk`` leaves ties to the hardware, which would make the samples depend on the CPU.
    The defaults are sized for the course's short canvases (the official ones are 128)."""
    num_blocks, per_block = _check_generate_args(model, prompt, steps, gen_length, block_length,
                                                 temperature, cfg_scale, remasking, mask_id)
    B, P = prompt.shape
    x = torch.cat([prompt, torch.full((B, gen_length), mask_id, dtype=torch.long, device=prompt.device)], 1)
    positions = torch.arange(P + gen_length, device=x.device)
    prompt_index = positions < P
    # ties in confidence are broken by draws from the caller's generator, or from a fixed one (never from the
    # global random state, so greedy decoding stays a function of its inputs)
    tie_generator = generator if generator is not None else torch.Generator().manual_seed(0)
    yield LLaDAStep(0, 0, x.clone(), torch.zeros_like(x, dtype=torch.bool), None, None, None)
    step = 0
    for block in range(num_blocks):
        hi = P + (block + 1) * block_length
        in_block = (positions >= hi - block_length) & (positions < hi)
        transfer = num_transfer_tokens((x[:, in_block] == mask_id).sum(1), per_block)
        for i in range(per_block):
            logits = guided_logits(model, x, prompt_index, cfg_scale, mask_id)
            proposal = gumbel_max(logits, temperature, generator)
            confidence = torch.softmax(logits, -1).gather(-1, proposal.unsqueeze(-1)).squeeze(-1)
            eligible = (x == mask_id) & in_block[None]
            if remasking == "low_confidence":
                score = confidence
                key = log_odds(torch.log_softmax(logits, -1).gather(-1, proposal.unsqueeze(-1)).squeeze(-1))
                key = torch.where(eligible, key, torch.full_like(key, _NEG_INF))
                commit = top_k_mask(key, eligible, transfer[:, i], tie_generator, tie_break=True)
            else:
                score = torch.rand(x.shape, generator=generator, dtype=torch.float64).to(x.device)
                commit = top_k_mask(torch.where(eligible, score, torch.full_like(score, _NEG_INF)), eligible,
                                     transfer[:, i])
            score = torch.where(eligible, score, torch.full_like(score, _NEG_INF))
            x = torch.where(commit, proposal, x)
            step += 1
            yield LLaDAStep(step, block, x.clone(), commit, proposal, confidence, score)


@torch.no_grad()
def generate_one(model: LogitsFn, prompt: torch.Tensor, steps: int = 32, gen_length: int = 32, block_length: int = 32,
                 temperature: float = 0.0, mask_id: int = MASK_ID, generator=None) -> torch.Tensor:
    """LLaDA's generate loop with low-confidence remasking, written out for one prompt (1-D ids); returns the
    canvas ``[prompt | answer]``. Blocks are decoded left to right; in each of a block's steps the model proposes
    a token at every position, and the ``num_transfer_tokens`` most confident proposals at masked positions of
    the block are committed (confidences within 1e-5 in log-odds are ties, broken by a draw from ``generator``).

    :func:`generate` is the same loop for a batch (with classifier-free guidance, random remasking and a record);
    for one prompt and the same generator it draws the same random numbers and returns the same canvas."""
    tie_generator = generator if generator is not None else torch.Generator().manual_seed(0)
    x = torch.cat([prompt, torch.full((gen_length,), mask_id, dtype=torch.long)])[None]       # (1, P + G)
    P, per_block = len(prompt), steps // (gen_length // block_length)
    for start in range(P, P + gen_length, block_length):
        block = torch.zeros_like(x, dtype=torch.bool)
        block[:, start:start + block_length] = True
        transfer = num_transfer_tokens(int((x[block] == mask_id).sum()), per_block)[0]   # tokens per step
        for k in transfer.tolist():
            logits = exclude_mask(model(x).double(), mask_id)                            # (1, P + G, V)
            proposal = gumbel_max(logits, temperature, generator)                        # x0 in generate.py
            logp = torch.log_softmax(logits, -1).gather(-1, proposal[..., None])[..., 0]   # its log-probability
            eligible = (x == mask_id) & block
            key = torch.where(eligible, log_odds(logp), _NEG_INF)                        # confidence, as log-odds
            commit = eligible & (confidence_rank(key, tie_generator) < k)                # the k most confident
            x = torch.where(commit, proposal, x)
    return x[0]


@torch.no_grad()
def unconditional_samples(model: LogitsFn, n: int, steps: int, gen_length: int, block_length: int | None = None,
                          temperature: float = 1.0, remasking: str = "low_confidence", seed: int = 0,
                          batch_size: int = 500, mask_id: int = MASK_ID) -> torch.Tensor:
    """``n`` samples (n, gen_length) of :func:`generate` from an empty prompt, in batches drawn in turn from one
    generator seeded with ``seed`` (so the first ``batch_size`` samples are those of a run with that ``n``)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for b in range(0, n, batch_size):
        out.append(generate(model, torch.zeros((min(batch_size, n - b), 0), dtype=torch.long), steps=steps,
                            gen_length=gen_length, block_length=block_length or gen_length,
                            temperature=temperature, remasking=remasking, mask_id=mask_id, generator=g))
    return torch.cat(out)


class GenerationRecord(NamedTuple):
    """What :func:`generate` saw, for the chapter's trajectory demo (G = gen_length)."""
    canvases: torch.Tensor       # (steps + 1, B, P + G) canvas before any step, then after each step
    commit_step: torch.Tensor    # (B, G) long: the step (1..steps) that committed each answer position
    commit_conf: torch.Tensor    # (B, G) float64: softmax(logits)[token] when it was committed
    commit_score: torch.Tensor   # (B, G) float64: the score it was ranked by (= commit_conf, or U(0,1) if random)
    num_transfer: torch.Tensor   # (B, steps) long: tokens committed at each step
    block_of_step: torch.Tensor  # (steps,) long: the block each step worked on


@torch.no_grad()
def generate(model: LogitsFn, prompt: torch.Tensor, steps: int = 32, gen_length: int = 32, block_length: int = 32,
             temperature: float = 0.0, cfg_scale: float = 0.0, remasking: str = "low_confidence",
             mask_id: int = MASK_ID, generator=None, record: bool = False):
    """LLaDA generation (``generate.py``): the final canvas (B, P + gen_length), prompt included.

    See :func:`generate_steps` for the algorithm. ``prompt`` is a
    (B, P) long tensor (rows of equal length). All randomness comes from ``generator`` (a CPU
    ``torch.Generator``), so a seed fixes the result. With ``record=True`` returns
    ``(x, GenerationRecord)``. The answer is ``x[:, P:]``; cut it at the first EOS to read it."""
    states = list(generate_steps(model, prompt, steps, gen_length, block_length, temperature, cfg_scale,
                                 remasking, mask_id, generator))
    x = states[-1].x
    if not record:
        return x
    P = prompt.shape[1]
    commit_step = torch.zeros((x.shape[0], gen_length), dtype=torch.long, device=x.device)
    commit_conf = torch.full(commit_step.shape, math.nan, dtype=torch.float64, device=x.device)
    commit_score = commit_conf.clone()
    for s in states[1:]:
        new = s.committed[:, P:]
        commit_step[new] = s.step
        commit_conf[new] = s.confidence[:, P:][new]
        commit_score[new] = s.score[:, P:][new]
    rec = GenerationRecord(
        canvases=torch.stack([s.x for s in states]),
        commit_step=commit_step, commit_conf=commit_conf, commit_score=commit_score,
        num_transfer=torch.stack([s.committed.sum(1) for s in states[1:]], 1),
        block_of_step=torch.tensor([s.block for s in states[1:]], dtype=torch.long))
    return x, rec


# =========================================================================== 2. likelihood
class ELBOEstimate(NamedTuple):
    """A Monte-Carlo estimate of log p(answer | prompt) in nats (minus LLaDA's loss)."""
    elbo: float                  # the mean of ``samples``
    stderr: float                # std of the mini-batch means / sqrt(#mini-batches); nan with one mini-batch
    samples: torch.Tensor        # (mc,) float64: one estimate per masked copy
    batch_means: torch.Tensor    # (mc // batch_size,) float64


def _as_row(ids, name: str, allow_empty: bool) -> torch.Tensor:
    t = ids if isinstance(ids, torch.Tensor) else torch.as_tensor(list(ids), dtype=torch.long)
    if t.ndim == 2 and t.shape[0] == 1:
        t = t[0]
    if t.ndim != 1 or (t.numel() and (t.is_floating_point() or t.dtype == torch.bool)):
        raise ValueError(f"{name} must be a 1-D sequence of token ids (or shape (1, n)), got shape {tuple(t.shape)}")
    t = t.long()
    if t.numel() == 0 and not allow_empty:
        raise ValueError(f"{name} must hold at least one token")
    if t.numel() and int(t.min()) < 0:
        raise ValueError(f"{name} holds negative token ids")
    return t


def _pair(prompt, answer, mask_id):
    """The clean sequence [prompt | answer] (1-D), P and A; neither part may contain [MASK]."""
    p, a = _as_row(prompt, "prompt", True), _as_row(answer, "answer", False)
    seq = torch.cat([p, a.to(p.device)])
    if bool((seq == check_mask_id(mask_id)).any()):
        raise ValueError(f"prompt and answer must be clean text; they contain the mask id {mask_id}")
    return seq, p.numel(), a.numel()


def _answer_log_probs(model, seq, masks, P, mask_id, cfg_scale):
    """log p_theta(answer_i | copy) at the masked answer positions of each copy, 0 elsewhere: (n, A) float64.
    ``masks`` (n, A) bool says which answer tokens each copy hides; the prompt is never masked."""
    n, A = masks.shape
    x = seq[None].repeat(n, 1)
    x[:, P:] = torch.where(masks.to(x.device), torch.full_like(x[:, P:], mask_id), x[:, P:])
    prompt_index = torch.arange(P + A, device=x.device) < P
    logp = torch.log_softmax(guided_logits(model, x, prompt_index, cfg_scale, mask_id), -1)
    target = seq.to(x.device)[None].expand(n, -1)
    lp = logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)[:, P:].cpu()
    return torch.where(masks, lp, torch.zeros_like(lp))


def _check_mc(mc, batch_size):
    mc, batch_size = check_int(mc, "mc"), check_int(batch_size, "batch_size")
    if mc % batch_size:
        raise ValueError(f"mc ({mc}) must be a multiple of batch_size ({batch_size})")
    return mc // batch_size, batch_size


def _estimate(batches: list[torch.Tensor]) -> ELBOEstimate:
    samples = torch.cat(batches)
    means = torch.stack([b.mean() for b in batches])
    se = float(means.std() / math.sqrt(len(means))) if len(means) > 1 else math.nan
    return ELBOEstimate(float(samples.mean()), se, samples, means)


def _stratified_counts(k: int, L: int, b: int) -> torch.Tensor:
    """n_i = round(k + i L / b) wrapped into 1..L, i = 0..b-1, in exact arithmetic (ties half to even)."""
    return torch.tensor([(round(k + Fraction(i * L, b)) - 1) % L + 1 for i in range(b)], dtype=torch.long)


def stratified_mask_counts(L: int, b: int, generator=None) -> torch.Tensor:
    """LLaDA's numbers of masked answer tokens for a mini-batch of b copies: (b,) long in 1..L.

    As LLaDA's ``get_log_likelihood.py`` (``_forward_process``): draw k ~ U{1..L},
    take n_i = round(linspace(k, k + (b - 1) L / b, b)) and wrap into 1..L, so the b counts spread evenly
    over 1..L (stratified sampling). We compute k + i L / b exactly; ``torch.round`` rounds exact halves to
    even, which makes n_i always even for the copies i where i L / b is a half-integer. So the counts are
    exactly uniform on 1..L only when no such tie occurs (b odd, or b = L); otherwise the estimator has a
    small bias, which the official code shares (see :func:`stratified_count_probs`)."""
    L, b = check_int(L, "L"), check_int(b, "b")
    k = int(torch.randint(1, L + 1, (), generator=generator))
    return _stratified_counts(k, L, b)


def stratified_count_probs(L: int, b: int) -> torch.Tensor:
    """P(a copy masks n answer tokens), n = 0..L, under :func:`stratified_mask_counts`: (L + 1,) float64.

    Uniform 1/L (paper eq. 6) unless rounding ties occur: e.g.
    L = 4, b = 16 gives (3, 5, 3, 5) / 16 for n = 1..4."""
    L, b = check_int(L, "L"), check_int(b, "b")
    counts = torch.cat([_stratified_counts(k, L, b) for k in range(1, L + 1)])
    return torch.bincount(counts, minlength=L + 1).double() / (L * b)


def _random_subsets(n: torch.Tensor, L: int, generator=None) -> torch.Tensor:
    """(b, L) bool: row i marks n[i] positions drawn uniformly without replacement."""
    u = torch.rand((len(n), L), generator=generator, dtype=torch.float64)
    rank = torch.argsort(torch.argsort(u, dim=1), dim=1)
    return rank < n[:, None]


@torch.no_grad()
def elbo_llada(model: LogitsFn, prompt, answer, mc: int = 128, batch_size: int = 16, mask_id: int = MASK_ID,
               generator=None, cfg_scale: float = 0.0) -> ELBOEstimate:
    """LLaDA's lower-variance estimate of log p(answer | prompt) (paper eq. 6; ``get_log_likelihood.py``).

    With A answer tokens, each copy masks exactly l of them (uniform
    subset, the prompt never masked) and scores  (A / l) sum_{masked i} log p_theta(answer_i | prompt, copy).
    The counts l of a mini-batch of ``batch_size`` copies come from :func:`stratified_mask_counts`. Returns
    minus the official ``get_log_likelihood``'s loss, averaged over ``mc`` copies. CFG as in
    ``eval_llada.py`` when ``cfg_scale > 0``. Its exact expectation is ``exact_elbo_llada(...,
    mc_batch_size=batch_size)``: eq. 6 itself when no rounding tie occurs (e.g. ``batch_size`` odd or
    equal to A), slightly off otherwise (see :func:`stratified_mask_counts`)."""
    seq, P, A = _pair(prompt, answer, mask_id)
    n_batches, b = _check_mc(mc, batch_size)
    batches = []
    for _ in range(n_batches):
        n = stratified_mask_counts(A, b, generator)
        masks = _random_subsets(n, A, generator)
        batches.append(_answer_log_probs(model, seq, masks, P, mask_id, cfg_scale).sum(1) * A / n)
    return _estimate(batches)


@torch.no_grad()
def elbo_t_based(model: LogitsFn, prompt, answer, mc: int = 128, batch_size: int = 16, mask_id: int = MASK_ID,
                 generator=None, eps: float = 1e-3, cfg_scale: float = 0.0) -> ELBOEstimate:
    """The plain estimate of log p(answer | prompt), in the form of the SFT objective (t ~ U, weight 1/t).

    Each copy draws t = (1 - eps) u + eps with u ~ U(0, 1), masks every
    answer token independently with probability t, and scores (1/t) sum_{masked i} log p_theta(answer_i | prompt, copy).

    Its exact expectation is :func:`exact_elbo_t_based` with the same ``eps``. At eps = 0 that is the ELBO
    (equal to :func:`exact_elbo_llada`), but the variance is infinite (a single masked token at tiny t gets
    weight 1/t); eps > 0 makes it finite at the price of a small bias. LLaDA's :func:`elbo_llada` has
    neither problem, hence its eq. 6."""
    seq, P, A = _pair(prompt, answer, mask_id)
    eps = check_eps(eps)
    n_batches, b = _check_mc(mc, batch_size)
    batches = []
    for _ in range(n_batches):
        t = (1 - eps) * torch.rand(b, generator=generator, dtype=torch.float64) + eps
        masks = torch.rand((b, A), generator=generator, dtype=torch.float64) < t[:, None]
        lp = _answer_log_probs(model, seq, masks, P, mask_id, cfg_scale).sum(1)
        batches.append(torch.where(masks.any(1), lp / t, torch.zeros_like(lp)))
    return _estimate(batches)


_MAX_EXACT = 12


def _all_masks_log_probs(model, prompt, answer, mask_id, cfg_scale, batch_size):
    """For every non-empty set of masked answer positions: (patterns (2^A - 1, A) bool, summed log p (2^A - 1,))."""
    seq, P, A = _pair(prompt, answer, mask_id)
    if A > _MAX_EXACT:
        raise ValueError(f"exact enumeration is for short answers (at most {_MAX_EXACT} tokens), got {A}")
    pats = masking_patterns(A)[1:]
    sums = torch.cat([_answer_log_probs(model, seq, chunk, P, mask_id, cfg_scale).sum(1)
                      for chunk in pats.split(check_int(batch_size, "batch_size"))])
    return pats, sums


def t_based_mask_weights(A: int, eps: float = 0.0) -> torch.Tensor:
    """c_k = E_t[ t^k (1-t)^(A-k) / t ] for t = (1 - eps) u + eps, u ~ U(0, 1), k = 0..A: (A + 1,) float64.

    The total weight the t-based estimator gives one particular set of k
    masked answer tokens, (1/(1-eps)) int_eps^1 t^(k-1) (1-t)^(A-k) dt, by Gauss-Legendre quadrature (exact for
    these polynomials). At eps = 0 it is the Beta function B(k, A-k+1) = 1 / (k C(A, k)). c_0 = 0."""
    A, eps = check_int(A, "A"), check_eps(eps)
    nodes, w = np.polynomial.legendre.leggauss(A + 1)
    t = torch.as_tensor(eps + (1 - eps) * (nodes + 1) / 2, dtype=torch.float64)
    w = torch.as_tensor(w / 2, dtype=torch.float64)                   # (1 - eps) dt cancels the 1/(1 - eps)
    return torch.stack([torch.zeros((), dtype=torch.float64)] +
                       [(w * t ** (k - 1) * (1 - t) ** (A - k)).sum() for k in range(1, A + 1)])


@torch.no_grad()
def exact_elbo_t_based(model: LogitsFn, prompt, answer, mask_id: int = MASK_ID, eps: float = 0.0,
                       cfg_scale: float = 0.0, batch_size: int = 256) -> float:
    """The exact expectation of :func:`elbo_t_based`, by enumerating all 2^A sets of masked answer tokens:

        sum over masks M != {} of  c_|M| * sum_{i in M} log p_theta(answer_i | prompt, answer with M masked)

    with c_k from :func:`t_based_mask_weights`. For short answers only."""
    pats, sums = _all_masks_log_probs(model, prompt, answer, mask_id, cfg_scale, batch_size)
    c = t_based_mask_weights(pats.shape[1], eps)
    return float((c[pats.sum(1)] * sums).sum())


@torch.no_grad()
def exact_elbo_llada(model: LogitsFn, prompt, answer, mask_id: int = MASK_ID, cfg_scale: float = 0.0,
                     batch_size: int = 256, mc_batch_size: int | None = None) -> float:
    """The exact expectation of LLaDA's estimator (paper eq. 6), by enumerating all 2^A masks: a mask with k of
    A answer tokens has probability P(l = k) / C(A, k) = 1 / (A C(A, k)) and weight A / k.

    The product 1 / (k C(A, k)) is :func:`t_based_mask_weights` at eps = 0, so
    both forms are the same ELBO: a uniformly random unmasking order and the chain rule (masked diffusion is an
    any-order autoregressive model). For the exact denoiser it equals log p(answer | prompt).
    ``mc_batch_size=b`` uses instead the count distribution of the code's stratified mini-batches of b copies
    (:func:`stratified_count_probs`), i.e. the exact expectation of :func:`elbo_llada` with ``batch_size=b``."""
    pats, sums = _all_masks_log_probs(model, prompt, answer, mask_id, cfg_scale, batch_size)
    A = pats.shape[1]
    p_count = (torch.full((A + 1,), 1.0 / A, dtype=torch.float64) if mc_batch_size is None
               else stratified_count_probs(A, mc_batch_size))
    weight = torch.tensor([math.nan] + [float(p_count[j]) / math.comb(A, j) * (A / j) for j in range(1, A + 1)],
                          dtype=torch.float64)
    return float((weight[pats.sum(1)] * sums).sum())


class ChoiceScores(NamedTuple):
    best: int                    # index of the choice with the highest estimated log-likelihood
    log_likelihoods: torch.Tensor  # (n_choices,) float64 estimates of log p(choice | prompt)
    stderr: torch.Tensor         # (n_choices,) float64 (0 for the exact estimator)


ESTIMATORS = ("llada", "t_based", "exact")


def score_choices(model: LogitsFn, prompt, choices: Sequence, estimator: str = "llada", mc: int = 128,
                  batch_size: int = 16, mask_id: int = MASK_ID, generator=None, cfg_scale: float = 0.0) -> ChoiceScores:
    """Multiple-choice scoring as in LLaDA's lm-eval harness: the choice with the highest estimated
    log p(choice | prompt) wins.

    ``estimator``: ``"llada"`` (:func:`elbo_llada`), ``"t_based"`` (:func:`elbo_t_based`) or ``"exact"``
    (:func:`exact_elbo_llada`, short choices only). Choices may differ in length; scores are summed
    log-likelihoods, not normalised by length (lm-eval's ``acc``)."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; use one of {ESTIMATORS}")
    if len(choices) == 0:
        raise ValueError("choices must not be empty")
    ll, se = [], []
    for choice in choices:
        if estimator == "exact":
            ll.append(exact_elbo_llada(model, prompt, choice, mask_id, cfg_scale))
            se.append(0.0)
        else:
            fn = elbo_llada if estimator == "llada" else elbo_t_based
            est = fn(model, prompt, choice, mc=mc, batch_size=batch_size, mask_id=mask_id, generator=generator,
                     cfg_scale=cfg_scale)
            ll.append(est.elbo)
            se.append(est.stderr)
    ll_t = torch.tensor(ll, dtype=torch.float64)
    return ChoiceScores(int(ll_t.argmax()), ll_t, torch.tensor(se, dtype=torch.float64))
