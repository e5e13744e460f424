"""Block diffusion (BD3-LM) and turning an autoregressive model into a diffusion model (LLaDA 2.0).

A block-diffusion language model cuts the canvas into blocks of
``block_size`` tokens: blocks are generated left to right (autoregressively), the tokens *inside* a
block by masked diffusion. ``block_size = 1`` is an AR model, ``block_size = L`` is MDLM / LLaDA.
Sources:

- BD3-LM: Arriola et al., "Block Diffusion", ICLR 2025 (github.com/kuleshov-group/bd3lms): the
  training trick of feeding ``[x_t ; x_0]`` (length 2L) through one Transformer with a special mask,
  the loss (eq. 8) with one noise level per block;
- LLaDA 2.0: Bie et al., arXiv 2512.15745, section 4: converting a pretrained AR model with a
  warmup-stable-decay (WSD) schedule of block sizes (section 4.1), the attention masks (section 4.2,
  eq. 3-4), and Gaussian noise on the [MASK] embedding for numerical stability.

Read top to bottom: 1. masks -> 2. the 48-position canvas -> 3. loss and bound -> 4. the WSD schedule
-> 5. conversion and training -> 6. sampling -> 7. the shipped recipes ``a2d_convert`` / ``a2d_scratch``.

Token conventions are those of :mod:`course_lib.textlm`: a canvas is ``[w_1..w_n, EOS, PAD..PAD]``,
the loss runs over every canvas position (PAD included: the model has to say where the sentence
ends) and every "per token" figure divides by the counted tokens ``n + 1`` (:func:`textlm.counted_tokens`).
"""
from __future__ import annotations

import json
import math
import time
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import torch

from . import llada, textlm
from .nn import Transformer, TransformerConfig
from .runtime import progress
from .tokenizer import Tokenizer
from .training import lr_factor, training_loop
from . import checkpoints

PAD_ID, MASK_ID, EOS_ID = Tokenizer.pad_id, Tokenizer.mask_id, Tokenizer.eos_id     # 0, 1, 2
BD_SEQ_LEN = 48       # the course's 41-position canvas padded to 48 = 2^4 * 3, which has many divisors
RESULTS_PATH = Path(__file__).resolve().parent.parent / "data" / "blockdiff" / "results.json"


def _check_int(value, name: str, lo: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
    return value


def _check_block(L, block_size) -> tuple[int, int]:
    L, block_size = _check_int(L, "L"), _check_int(block_size, "block_size")
    if L % block_size:
        raise ValueError(f"block_size ({block_size}) must divide the sequence length ({L}); "
                         f"possible sizes: {block_sizes(L)}")
    return L, block_size


def block_sizes(L: int) -> list[int]:
    """Every block size a canvas of ``L`` positions allows: the divisors of L (48 -> 1, 2, 3, 4, 6, 8,
    12, 16, 24, 48; the prime 41 -> only 1 and 41)."""
    L = _check_int(L, "L")
    return [b for b in range(1, L + 1) if L % b == 0]


# ==============================================================================================
# 1. Attention masks
# ==============================================================================================

class BlockDiffusionParts(NamedTuple):
    """The three parts of the (2L, 2L) training mask, each a (2L, 2L) bool tensor (False elsewhere)."""
    bd: torch.Tensor       # x_t -> x_t, same block (block-diagonal)
    obc: torch.Tensor      # x_t -> x_0, strictly earlier blocks (offset block-causal)
    bc: torch.Tensor       # x_0 -> x_0, same or earlier block (block-causal)


def block_diffusion_parts(L: int, block_size: int, device=None) -> BlockDiffusionParts:
    """The three parts of the block-diffusion training mask over ``[x_t ; x_0]`` (LLaDA 2.0
    section 4.2, eq. 3-4; BD3-LM's ``block_diff_mask``).

    Query index q and key index k run over 0..2L-1; ``q >= L`` means "in the clean copy x_0". With
    the block of each half ``b = (index mod L) // block_size``:

    - ``M_BD``  = 1[b_q == b_k] for q, k both in x_t: a noisy token sees its own noisy block;
    - ``M_OBC`` = 1[b_q >  b_k] for q in x_t, k in x_0: and the clean copies of all *earlier* blocks;
    - ``M_BC``  = 1[b_q >= b_k] for q, k both in x_0: the clean copy is block-causal;
    - and x_0 never looks at x_t. ``block_size`` must divide ``L``."""
    L, block_size = _check_block(L, block_size)
    idx = torch.arange(2 * L, device=device)
    clean = idx >= L                                   # BD3-LM's x0_flag
    block = (idx % L) // block_size
    q_clean, k_clean = clean[:, None], clean[None, :]
    q_block, k_block = block[:, None], block[None, :]
    bd = (q_block == k_block) & ~q_clean & ~k_clean
    obc = (q_block > k_block) & ~q_clean & k_clean
    bc = (q_block >= k_block) & q_clean & k_clean
    return BlockDiffusionParts(bd, obc, bc)


def block_diffusion_mask(L: int, block_size: int, device=None) -> torch.Tensor:
    """(2L, 2L) bool attention mask (True = may attend) for training on ``[x_t ; x_0]``: the union
    ``M_BD | M_OBC | M_BC`` of :func:`block_diffusion_parts`
    (LLaDA 2.0 eq. 3-4 = BD3-LM's ``block_diff_mask``).

    Limits: ``block_size = 1`` lets x_t position i see itself and exactly the clean positions < i (an
    AR model that predicts token i from x_0^{<i}); ``block_size = L`` makes x_t fully bidirectional with
    no access to x_0 (MDLM). Pass it to the model as ``mask=block_diffusion_mask(L, b)[None]``."""
    parts = block_diffusion_parts(L, block_size, device)
    return parts.bd | parts.obc | parts.bc


def inference_mask(L: int, block_size: int, prompt_length: int = 0, device=None) -> torch.Tensor:
    """(1, L, L) bool mask for *decoding* a canvas of ``L`` positions block by block, usable as
    ``model(x, mask=inference_mask(...))`` (LLaDA 2.0's ``generate``:
    ``tril(ones(n_blocks, n_blocks))`` repeated to token level).

    Bidirectional within a block, causal across blocks: position i sees position j iff
    ``block(j) <= block(i)``. The prompt's ``prompt_length`` positions are cut into blocks from position
    0 (the last one may be shorter) and the generated positions into blocks of ``block_size`` starting
    right after the prompt, as :func:`course_lib.llada.generate` decodes them; ``block_size`` must divide
    ``L - prompt_length``. With no prompt (or one that is a whole number of blocks) this is *exactly* what
    the training mask shows the model: finished blocks are clean and block-causal (``M_BC``), the block
    being decoded is a noisy block that sees itself and every earlier clean block (``M_BD`` + ``M_OBC``),
    and later all-[MASK] blocks are invisible to it. One L x L pass replaces the 2L x 2L training input."""
    L = _check_int(L, "L")
    block_size = _check_int(block_size, "block_size")
    if isinstance(prompt_length, bool) or not isinstance(prompt_length, int) or not 0 <= prompt_length < L:
        raise ValueError(f"prompt_length must be an integer in [0, {L}), got {prompt_length!r}")
    if (L - prompt_length) % block_size:
        raise ValueError(f"block_size ({block_size}) must divide the generated length L - prompt_length = "
                         f"{L - prompt_length}")
    pos = torch.arange(L, device=device)
    prompt_blocks = -(-prompt_length // block_size)                      # ceil(P / block_size)
    block = torch.where(pos < prompt_length, pos // block_size, prompt_blocks + (pos - prompt_length) // block_size)
    return (block[None, :] <= block[:, None])[None]


# ==============================================================================================
# 2. The 48-position canvas
# ==============================================================================================

def pad_canvas(ids: torch.Tensor, length: int = BD_SEQ_LEN) -> torch.Tensor:
    """Canvases ``(N, L)`` widened to ``(N, length)`` with extra [PAD] columns.

    The course canvas has 41 positions, a prime, so its only block sizes are 1 and 41. Padding to 48
    allows 1, 2, 3, 4, 6, 8, 12, 16, 24 and 48. The padding follows :func:`tokenizer.batchify`'s
    convention (one [EOS], then [PAD]); [PAD] is never a counted token (:func:`textlm.counted_tokens`), so
    the nats-per-token denominators are unchanged, while the numerator gains 7 always-[PAD] positions
    that the model learns to predict at almost no cost."""
    if not isinstance(ids, torch.Tensor) or ids.dtype != torch.long or ids.ndim != 2:
        raise ValueError(f"ids must be a (N, L) long tensor, got {getattr(ids, 'dtype', type(ids).__name__)} "
                         f"of shape {tuple(getattr(ids, 'shape', ()))}")
    length = _check_int(length, "length")
    if length < ids.shape[1]:
        raise ValueError(f"length ({length}) is shorter than the canvases ({ids.shape[1]} positions)")
    pad = torch.full((ids.shape[0], length - ids.shape[1]), PAD_ID, dtype=ids.dtype, device=ids.device)
    return torch.cat([ids, pad], 1)


def language_ids(split: str, length: int = BD_SEQ_LEN) -> torch.Tensor:
    """The course language's ``split`` as (N, 48) canvases: :func:`textlm.language_ids` + :func:`pad_canvas`."""
    return pad_canvas(textlm.language_ids(split), length)


# ==============================================================================================
# 3. The block-diffusion loss and bound
# ==============================================================================================

def _check_x0(x0, mask_id: int) -> torch.Tensor:
    if not isinstance(x0, torch.Tensor) or x0.dtype != torch.long or x0.ndim != 2 or x0.numel() == 0:
        raise ValueError(f"x0 must be a non-empty (B, L) long tensor, got {getattr(x0, 'dtype', type(x0).__name__)} "
                         f"of shape {tuple(getattr(x0, 'shape', ()))}")
    if int(x0.min()) < 0:
        raise ValueError("x0 holds negative token ids")
    if bool((x0 == mask_id).any()):
        raise ValueError(f"x0 contains the [MASK] id {mask_id}; data must be clean text")
    return x0


def sample_block_times(batch: int, n_blocks: int, generator=None, eps: float = 1e-3,
                       antithetic: bool = True) -> torch.Tensor:
    """(batch, n_blocks) noise levels t_b in [eps, 1], one per block.

    BD3-LM's vectorised training draws an independent t for every block of every sequence; with
    ``antithetic=True`` (BD3-LM's ``_sample_t``) the ``batch * n_blocks`` draws are stratified, one in
    each interval [i/n, (i+1)/n) of [0, 1), like :func:`course_lib.masked.sample_times` across a batch.
    Then t = (1 - eps) u + eps keeps the weight 1/t finite."""
    batch, n_blocks = _check_int(batch, "batch"), _check_int(n_blocks, "n_blocks")
    if not (isinstance(eps, (int, float)) and 0.0 <= eps < 1.0):
        raise ValueError(f"eps must lie in [0, 1), got {eps!r}")
    n = batch * n_blocks
    u = torch.rand(batch, n_blocks, generator=generator, dtype=torch.float64)
    if antithetic:
        u = (u / n + torch.arange(n, dtype=torch.float64).view(batch, n_blocks) / n) % 1
    return (1.0 - eps) * u + eps


def bd_forward_process(x0: torch.Tensor, block_size: int, t: torch.Tensor, mask_id: int = MASK_ID,
                       generator=None):
    """Corrupt ``x0`` block by block: token i of block b becomes [MASK] with probability ``t[:, b]`` (the
    linear schedule, alpha_t = 1 - t): BD3-LM eq. 8 with per-block t.

    ``t``: (B, L / block_size) floats in (0, 1]. Returns ``(x_t, masked)``, both (B, L)."""
    x0 = _check_x0(x0, mask_id)
    B, L = x0.shape
    _, block_size = _check_block(L, block_size)
    t = _check_block_times(t, B, L // block_size)
    u = torch.rand(x0.shape, generator=generator, dtype=torch.float64)
    masked = (u < t.repeat_interleave(block_size, dim=1)).to(x0.device)
    return torch.where(masked, torch.full_like(x0, mask_id), x0), masked


def _check_block_times(t, B: int, K: int) -> torch.Tensor:
    if not isinstance(t, torch.Tensor) or t.shape != (B, K) or not t.is_floating_point():
        raise ValueError(f"t must be a float tensor of shape (B, n_blocks) = ({B}, {K}), "
                         f"got {tuple(getattr(t, 'shape', ()))}")
    if not bool(torch.isfinite(t).all()) or bool((t <= 0).any()) or bool((t > 1).any()):
        raise ValueError("the noise levels t must lie in (0, 1]")
    return t.detach().double().cpu()


def next_token_aligned(model) -> bool:
    """True for a model that keeps an AR model's alignment: the output at position i predicts the token at
    position i from an input shifted right by one (:func:`shift_inputs`). Set by :func:`convert_ar_model` with
    ``keep_alignment=True`` and kept in a shipped model's recipe."""
    return bool(getattr(model, "next_token", False))


def shift_inputs(x_t: torch.Tensor, x0: torch.Tensor | None, block_size: int, bos_id: int = EOS_ID) -> torch.Tensor:
    """The input of a next-token-aligned denoiser (Dream, DiffuLLaMA): ``[BOS, x_t[:-1]]``, so that the output at
    position i, like an AR model's, is read where token i-1 sits. [EOS] is the BOS, as for the course's AR model.
    In block diffusion the first position of each block reads the *clean* last token of the previous block
    (``x0``; at decoding time the previous blocks are already clean, and ``x0=None`` uses ``x_t``). With
    ``block_size = 1`` the converted model computes exactly its AR parent's next-token logits."""
    B, L = x_t.shape
    out = torch.cat([torch.full((B, 1), bos_id, dtype=x_t.dtype, device=x_t.device), x_t[:, :-1]], 1)
    if x0 is not None:
        starts = torch.arange(block_size, L, block_size, device=x_t.device)
        out[:, starts] = x0[:, starts - 1]
    return out


def bd_logits(model: Transformer, x_t: torch.Tensor, x0: torch.Tensor, block_size: int) -> torch.Tensor:
    """The denoiser's logits (B, L, V) at the noisy positions.

    The model sees ``[x_t ; x_0]`` (length 2L) under :func:`block_diffusion_mask`, with RoPE positions
    ``[0..L-1, 0..L-1]`` so that a noisy token and its clean copy sit at the same position; only the
    x_t half of the output is returned. With ``block_size = L`` the x_t half never looks at x_0, so the
    model is run on x_t alone with full attention (the same numbers at half the cost: LLaDA 2.0 notes
    that the MDLM phase does not need the clean half). A next-token-aligned model
    (:func:`next_token_aligned`) reads both halves shifted right by one (:func:`shift_inputs`)."""
    B, L = x_t.shape
    _, block_size = _check_block(L, block_size)
    if x0.shape != x_t.shape:
        raise ValueError(f"x_t {tuple(x_t.shape)} and x0 {tuple(x0.shape)} must have the same shape")
    if L > model.config.seq_len:
        raise ValueError(f"the canvas has {L} positions, more than the model's seq_len {model.config.seq_len}")
    if next_token_aligned(model):
        x_t, x0 = shift_inputs(x_t, x0, block_size), shift_inputs(x0, None, block_size)
    if block_size == L:
        return model(x_t, mask=torch.ones(1, L, L, dtype=torch.bool, device=x_t.device))
    pos = torch.arange(L, device=x_t.device)
    out = model(torch.cat([x_t, x0], 1), mask=block_diffusion_mask(L, block_size, x_t.device)[None],
                positions=torch.cat([pos, pos]))
    return out[:, :L]


class BDLoss(NamedTuple):
    """A block-diffusion loss with the corruption it was computed on."""
    loss: torch.Tensor        # scalar: summed weighted NLL / counted tokens (differentiable)
    nelbo: torch.Tensor       # (B,) nats per sequence: sum over positions of 1[masked] CE / t_b
    tokens: torch.Tensor      # (B,) counted tokens (non-[PAD] positions, or all if pad_id is None)
    x_t: torch.Tensor         # (B, L)
    masked: torch.Tensor      # (B, L) bool
    t: torch.Tensor           # (B, L / block_size) float64, the noise level of every block


def bd_loss_from_logits(logits: torch.Tensor, x0: torch.Tensor, x_t: torch.Tensor, masked: torch.Tensor,
                        t: torch.Tensor, block_size: int, mask_id: int = MASK_ID,
                        pad_id: int | None = PAD_ID) -> BDLoss:
    """BD3-LM's loss (eq. 8) = LLaDA 2.0's BDLM loss (eq. 1) with the linear schedule, from the logits.
    The block-diffusion bound:

        NELBO(x) = sum_b E_{t_b} [ (1 / t_b) sum_{i in block b} 1[x_t^i = MASK] (-log p_theta(x0^i | x_t^b, x0^{<b})) ]

    The weight alpha'_t / (1 - alpha_t) of the paper is -1/t for alpha_t = 1 - t. The [MASK] logit is
    excluded before the softmax (MDLM's zero-masking-probability). ``loss`` divides the batch's summed
    NELBO by its counted tokens, as :mod:`course_lib.textlm`'s ``"mdlm"`` objective
    (``nelbo.sum() / counted tokens``): every canvas position is a term (PAD included), only non-PAD
    positions count in the denominator (``pad_id=None``: all positions count). With ``block_size = L``
    this is the MDLM loss :func:`course_lib.masked.mdlm_loss` (linear schedule), and ``loss * tokens.sum()
    / (B * L)`` is LLaDA's :func:`course_lib.masked.llada_pretrain_loss` with ``p_mask = t``."""
    x0 = _check_x0(x0, mask_id)
    B, L = x0.shape
    _, block_size = _check_block(L, block_size)
    if x_t.shape != x0.shape or not isinstance(masked, torch.Tensor) or masked.shape != x0.shape \
            or masked.dtype != torch.bool:
        raise ValueError("x0, x_t and masked (bool) must share the shape (B, L)")
    if not bool((masked == (x_t == mask_id)).all()) or not bool((x_t[~masked] == x0[~masked]).all()):
        raise ValueError("x_t must be x0 with [MASK] exactly at the masked positions")
    t = _check_block_times(t, B, L // block_size)
    if not isinstance(logits, torch.Tensor) or logits.shape[:2] != x0.shape or logits.ndim != 3:
        raise ValueError(f"logits must have shape (B, L, V) = {tuple(x0.shape)} + (V,), "
                         f"got {tuple(getattr(logits, 'shape', ()))}")
    V = logits.shape[-1]
    if not 0 <= mask_id < V or int(x0.max()) >= V:
        raise ValueError(f"mask_id and every token of x0 must lie in the vocabulary [0, {V})")
    is_mask_col = torch.arange(V, device=logits.device) == mask_id
    logp = torch.log_softmax(logits.masked_fill(is_mask_col, float("-inf")), dim=-1)
    nll = -logp.gather(-1, x0.unsqueeze(-1)).squeeze(-1)                       # -log p_theta(x0^i | ...)
    weight = (1.0 / t).repeat_interleave(block_size, dim=1).to(nll.device, nll.dtype)
    term = torch.where(masked, weight * nll, torch.zeros_like(nll))
    tokens = (x0 != pad_id).sum(1) if pad_id is not None else torch.full((B,), L, device=x0.device)
    if int(tokens.sum()) == 0:
        raise ValueError("the batch has no counted token (every position is [PAD])")
    nelbo = term.sum(1)
    return BDLoss(nelbo.sum() / tokens.sum(), nelbo, tokens, x_t, masked, t)


def bd_loss(model: Transformer, x0: torch.Tensor, block_size: int, mask_id: int = MASK_ID, generator=None,
            eps: float = 1e-3, pad_id: int | None = PAD_ID, t: torch.Tensor | None = None) -> BDLoss:
    """One block-diffusion training loss (BD3-LM eq. 8 / LLaDA 2.0 eq. 1, linear schedule, weight 1/t_b).

    1. per-block noise levels t_b ~ U[eps, 1] (BD3-LM's vectorised training: every block of every row its
       own t, stratified by :func:`sample_block_times`), unless ``t`` (B, L / block_size) is given;
    2. mask each token of block b with probability t_b (:func:`bd_forward_process`);
    3. logits of the x_t half of ``model([x_t ; x_0])`` under the block-diffusion mask (:func:`bd_logits`);
    4. :func:`bd_loss_from_logits`: masked-token cross-entropy weighted 1/t_b, per counted token."""
    x0 = _check_x0(x0, mask_id)
    B, L = x0.shape
    _, block_size = _check_block(L, block_size)
    if t is None:
        t = sample_block_times(B, L // block_size, generator, eps)
    x_t, masked = bd_forward_process(x0, block_size, t, mask_id, generator)
    return bd_loss_from_logits(bd_logits(model, x_t, x0, block_size), x0, x_t, masked, t, block_size,
                               mask_id, pad_id)


@torch.no_grad()
def bd_nelbo(model: Transformer, ids: torch.Tensor, block_size: int, samples: int = 4, seed: int = 0,
             batch_size: int = 256, eps: float = 1e-3, mask_id: int = MASK_ID) -> textlm.NLLResult:
    """The block-diffusion NELBO of ``ids`` in nats per counted token (a validation bound), by Monte Carlo.

    Each sentence gets ``samples`` draws; in draw k every block has its own t_b in the stratum
    [k/S, (k+1)/S) of [0, 1) (mapped to [eps, 1]), then one mask draw. Each block's term is an upper
    bound on -log p(block | earlier clean blocks), so the sum bounds -log p(canvas); with
    ``block_size = L`` it is MDLM's bound (:func:`course_lib.textlm.mdlm_nelbo`), with ``block_size = 1``
    its expectation is the exact AR negative log-likelihood (one token per block: weight 1/t times
    masking probability t). ``se`` is the Monte-Carlo standard error."""
    ids = _check_x0(ids, mask_id)
    samples = _check_int(samples, "samples", lo=2)
    N, L = ids.shape
    _, block_size = _check_block(L, block_size)
    K = L // block_size
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(N, samples, K, generator=g, dtype=torch.float64)
    t_all = (1 - eps) * (u + torch.arange(samples, dtype=torch.float64)[None, :, None]) / samples + eps
    dev = next(model.parameters()).device
    was = model.training
    model.eval()
    per_seq = torch.zeros(N, samples, dtype=torch.float64)
    for k in range(samples):
        for i in range(0, N, batch_size):
            x0, t = ids[i:i + batch_size], t_all[i:i + batch_size, k]
            x_t, masked = bd_forward_process(x0, block_size, t, mask_id, g)
            x_t, x0d = x_t.to(dev), x0.to(dev)
            out = bd_loss_from_logits(bd_logits(model, x_t, x0d, block_size).float(), x0d, x_t, masked.to(dev), t,
                                      block_size, mask_id)
            per_seq[i:i + batch_size, k] = out.nelbo.double().cpu()
    model.train(was)
    return textlm.nll_summary(per_seq, textlm.counted_tokens(ids))


# ==============================================================================================
# 4. The warmup-stable-decay (WSD) block-size schedule
# ==============================================================================================

def wsd_schedule(total_steps: int, seq_len: int, warmup_sizes=(1, 2, 4, 8, 16), stable_fraction: float = 0.5,
                 decay_sizes=(16, 4)) -> list[tuple[int, int]]:
    """LLaDA 2.0's warmup-stable-decay schedule of block sizes (section 4.1) as ``[(start_step, block_size)]``.

    - **warmup**: ``warmup_sizes`` in increasing order, starting from 1 (an AR model, the model we convert
      from); LLaDA 2.0 uses 1 -> 4 -> 32 -> 64;
    - **stable**: ``block_size = seq_len``, plain MDLM, for ``round(stable_fraction * total_steps)`` steps;
    - **decay**: ``decay_sizes`` in decreasing order, down to the small block used at inference (LLaDA 2.0:
      4096 -> 2048 -> ... -> 32).

    The remaining steps are shared equally by the warmup and decay stages (the first stages get the
    remainder). Every size must divide ``seq_len`` and be smaller than it."""
    total_steps, seq_len = _check_int(total_steps, "total_steps"), _check_int(seq_len, "seq_len")
    warmup_sizes, decay_sizes = [int(b) for b in warmup_sizes], [int(b) for b in decay_sizes]
    for b in warmup_sizes + decay_sizes:
        _check_block(seq_len, b)
        if b >= seq_len:
            raise ValueError(f"warmup and decay sizes must be smaller than seq_len = {seq_len} (the stable "
                             f"phase), got {b}")
    if any(a >= b for a, b in zip(warmup_sizes, warmup_sizes[1:])):
        raise ValueError(f"warmup_sizes must increase strictly, got {warmup_sizes}")
    if any(a <= b for a, b in zip(decay_sizes, decay_sizes[1:])):
        raise ValueError(f"decay_sizes must decrease strictly, got {decay_sizes}")
    if isinstance(stable_fraction, bool) or not isinstance(stable_fraction, (int, float)) \
            or not 0.0 <= stable_fraction <= 1.0:
        raise ValueError(f"stable_fraction must lie in [0, 1], got {stable_fraction!r}")
    n_stable = round(stable_fraction * total_steps)
    stages = len(warmup_sizes) + len(decay_sizes)
    if stable_fraction > 0 and n_stable == 0:
        raise ValueError(f"stable_fraction {stable_fraction} of {total_steps} steps leaves no stable step")
    if stages == 0:
        n_stable = total_steps
    rest = total_steps - n_stable
    if stages and rest < stages:
        raise ValueError(f"{rest} non-stable steps cannot cover {stages} warmup/decay stages: raise total_steps "
                         "or lower stable_fraction")
    lengths = [rest // stages + (i < rest % stages) for i in range(stages)] if stages else []
    sizes = warmup_sizes + ([seq_len] if n_stable else []) + decay_sizes
    lengths = lengths[:len(warmup_sizes)] + ([n_stable] if n_stable else []) + lengths[len(warmup_sizes):]
    out, start = [], 0
    for size, n in zip(sizes, lengths):
        out.append((start, size))
        start += n
    return out


def _check_schedule(schedule) -> list[tuple[int, int]]:
    if isinstance(schedule, int) and not isinstance(schedule, bool):
        schedule = [(0, schedule)]
    try:
        schedule = [(int(s), int(b)) for s, b in schedule]
    except (TypeError, ValueError) as e:
        raise ValueError(f"a schedule is a block size or a list of (start_step, block_size), got {schedule!r}") from e
    if not schedule or schedule[0][0] != 0 or any(a[0] >= b[0] for a, b in zip(schedule, schedule[1:])):
        raise ValueError(f"schedule start steps must begin at 0 and increase strictly, got {schedule}")
    return schedule


def block_size_at(schedule, step: int) -> int:
    """The block size of ``schedule`` (from :func:`wsd_schedule`) at training step ``step`` (0-based)."""
    schedule = _check_schedule(schedule)
    step = _check_int(step, "step", lo=0)
    return [b for s, b in schedule if s <= step][-1]


# ==============================================================================================
# 5. Conversion from AR and the training loop
# ==============================================================================================

def convert_ar_model(ar_model: Transformer, seq_len: int = BD_SEQ_LEN, block_size: int | None = 4,
                     keep_alignment: bool = False) -> Transformer:
    """A block-diffusion Transformer that starts from an AR model's weights (LLaDA 2.0
    section 4.1: continual training from an AR base).

    The architecture is the AR model's, with ``seq_len`` positions (RoPE tables are derived buffers,
    not weights, so a longer table loads the same state dict) and ``attention="block_causal"`` with
    ``block_size`` (the inference mask of :func:`inference_mask` when the model is called without a mask;
    ``None`` gives a bidirectional MDLM). Every weight is copied exactly, the [MASK] embedding included
    (it was never trained: an AR model never sees [MASK]). ``keep_alignment=True`` keeps the AR model's
    next-token alignment (Dream and DiffuLLaMA): position i is predicted from the output where token i-1
    sits (:func:`shift_inputs`), so the pretrained head is right from the first step."""
    c = ar_model.config.to_dict()
    seq_len = _check_int(seq_len, "seq_len")
    if block_size is None:
        c.update(seq_len=seq_len, attention="bidirectional", block_size=None)
    else:
        _check_block(seq_len, block_size)
        c.update(seq_len=seq_len, attention="block_causal", block_size=block_size)
    model = Transformer(TransformerConfig(**c))
    model.load_state_dict({k: v.clone() for k, v in ar_model.state_dict().items()})
    model.next_token = bool(keep_alignment)
    return model


@contextmanager
def mask_embedding_noise(model: Transformer, std: float, generator=None, mask_id: int = MASK_ID):
    """While active, add N(0, std^2) noise to the embedding output of every [MASK] token (LLaDA 2.0
    section 4.1, "numerical stability": an AR model's [MASK] embedding
    was never trained, which made gradients explode at high mask ratios; the fix is independent
    Gaussian noise on the masked tokens' embeddings during the first iterations). Implemented as a
    forward hook on ``model.tok_emb``, removed on exit."""
    if not (isinstance(std, (int, float)) and math.isfinite(std) and std >= 0):
        raise ValueError(f"std must be a finite number >= 0, got {std!r}")

    def hook(module, inputs, output):
        where = (inputs[0] == mask_id).unsqueeze(-1)
        noise = torch.randn(output.shape, generator=generator, dtype=torch.float32).to(output.device, output.dtype)
        return output + std * noise * where

    handle = model.tok_emb.register_forward_hook(hook)
    try:
        yield model
    finally:
        handle.remove()


def train_block_diffusion(model: Transformer, train_ids: torch.Tensor, valid_ids: torch.Tensor | None, schedule,
                          steps: int, batch_size: int = 64, lr: float = 1e-3, warmup: int = 50,
                          min_lr_ratio: float = 0.1, betas=(0.9, 0.98), weight_decay: float = 0.0,
                          grad_clip: float = 1.0, eps: float = 1e-3, embed_noise_std: float = 0.0,
                          embed_noise_steps: int = 0, eval_every: int = 100, eval_sentences: int = 200,
                          eval_samples: int = 2, eval_block_sizes=None, seed: int = 0, show_progress: bool = True,
                          desc: str = "block diffusion", num_threads: int | None = 1):
    """Train ``model`` with the block-diffusion loss under a block-size ``schedule``; returns
    ``(model, history)``.

    ``schedule``: a block size, or ``[(start_step, block_size)]`` from :func:`wsd_schedule`. Each step draws
    ``batch_size`` rows of ``train_ids`` (N, L) with replacement (seeded by ``seed``: two runs with the same
    seed, batch size and steps see the same batches), takes :func:`bd_loss` at the step's block size and one
    AdamW step with warmup + cosine lr (:func:`textlm.lr_factor`) and gradient clipping. During the first
    ``embed_noise_steps`` steps :func:`mask_embedding_noise` adds N(0, embed_noise_std^2) to the [MASK]
    embeddings (its own generator, so batches and masks do not change). Every ``eval_every`` steps and at
    the end, :func:`bd_nelbo` on the first ``eval_sentences`` validation rows at each of
    ``eval_block_sizes`` (default: the schedule's final block size and L), with the same seed every time.

    ``history``: ``step``, ``block_size``, ``train_loss`` (nats per counted token) and ``grad_norm`` (before
    clipping) of every step;
    ``eval_step``, ``valid_nll`` and ``valid_se`` (dicts keyed by block size), ``seconds`` (training
    only), ``eval_seconds``, ``grad_norm_max`` (the largest pre-clipping gradient norm) and ``n_params``."""
    schedule = _check_schedule(schedule)
    steps, batch_size = _check_int(steps, "steps"), _check_int(batch_size, "batch_size")
    eval_every, warmup = _check_int(eval_every, "eval_every"), _check_int(warmup, "warmup", lo=0)
    embed_noise_steps = _check_int(embed_noise_steps, "embed_noise_steps", lo=0)
    train_ids = _check_x0(train_ids, MASK_ID)
    L = train_ids.shape[1]
    if L > model.config.seq_len:
        raise ValueError(f"canvases of {L} positions exceed the model's seq_len {model.config.seq_len}")
    for _, b in schedule:
        _check_block(L, b)
    if int(train_ids.max()) >= model.config.vocab_size:
        raise ValueError(f"train_ids hold ids >= vocab_size {model.config.vocab_size}")
    if eval_block_sizes is None:
        eval_block_sizes = sorted({schedule[-1][1], L})
    for b in eval_block_sizes:
        _check_block(L, b)
    if valid_ids is not None:
        valid_ids = _check_x0(valid_ids, MASK_ID)[:eval_sentences]
        if valid_ids.shape[1] != L:
            raise ValueError(f"valid_ids have {valid_ids.shape[1]} positions, train_ids {L}")
    old_threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        dev = next(model.parameters()).device
        g = torch.Generator().manual_seed(seed)
        g_noise = torch.Generator().manual_seed(seed + 2)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=tuple(betas), weight_decay=weight_decay)
        hist = {"step": [], "block_size": [], "train_loss": [], "grad_norm": [], "eval_step": [],
                "valid_nll": {b: [] for b in eval_block_sizes}, "valid_se": {b: [] for b in eval_block_sizes},
                "seconds": 0.0, "eval_seconds": 0.0, "grad_norm_max": 0.0, "n_params": model.n_params()}

        def validate(step):
            if valid_ids is None:
                return
            t0 = time.perf_counter()
            hist["eval_step"].append(step)
            for b in eval_block_sizes:
                res = bd_nelbo(model, valid_ids, b, samples=eval_samples, seed=seed + 1, eps=eps)
                hist["valid_nll"][b].append(res.nll)
                hist["valid_se"][b].append(res.se)
            hist["eval_seconds"] += time.perf_counter() - t0

        def loss_fn(step):
            x0 = train_ids[torch.randint(0, len(train_ids), (batch_size,), generator=g)].to(dev)
            if step < embed_noise_steps and embed_noise_std > 0:
                with mask_embedding_noise(model, embed_noise_std, g_noise):
                    return bd_loss(model, x0, block_size_at(schedule, step), MASK_ID, g, eps).loss
            return bd_loss(model, x0, block_size_at(schedule, step), MASK_ID, g, eps).loss

        validate(0)
        bar = progress(range(steps), desc=desc) if show_progress else range(steps)
        t0 = time.perf_counter()
        for step, loss in training_loop(model, loss_fn, bar, opt, lambda s: lr_factor(s, steps, warmup, min_lr_ratio),
                                        grad_clip):
            b, norm = block_size_at(schedule, step), opt.last_grad_norm
            hist["seconds"] += time.perf_counter() - t0
            hist["grad_norm_max"] = max(hist["grad_norm_max"], norm)
            for k, v in (("step", step + 1), ("block_size", b), ("train_loss", loss), ("grad_norm", norm)):
                hist[k].append(v)
            if (step + 1) % eval_every == 0 or step == steps - 1:
                model.eval()
                validate(step + 1)
                model.train()
                if show_progress and valid_ids is not None:
                    bar.set_postfix(block=b, **{f"valid@{k}": f"{v[-1]:.3f}" for k, v in hist["valid_nll"].items()})
            t0 = time.perf_counter()
    finally:
        torch.set_num_threads(old_threads)
    model.eval()
    return model, hist


# ==============================================================================================
# 6. Sampling
# ==============================================================================================

def block_logits_fn(model: Transformer, block_size: int, prompt_length: int = 0):
    """``x -> model(x, mask=inference_mask(x.shape[1], block_size, prompt_length))``: a denoiser for
    :func:`course_lib.llada.generate` with ``block_length=block_size``."""
    def logits_fn(x):
        if next_token_aligned(model):
            x = shift_inputs(x, None, block_size)         # earlier blocks are clean on a decoding canvas
        return model(x, mask=inference_mask(x.shape[1], block_size, prompt_length, x.device))
    return logits_fn


@torch.no_grad()
def sample_block_diffusion(model: Transformer, n: int, tokenizer: Tokenizer, block_size: int, L: int = BD_SEQ_LEN,
                           steps: int | None = None, temperature: float = 1.0, remasking: str = "random",
                           seed: int = 0) -> list:
    """``n`` unconditional samples decoded block by block: :func:`course_lib.llada.generate` (semi-autoregressive,
    ``steps / (L / block_size)`` steps per block, default one token per step) with :func:`inference_mask`.
    ``remasking="random"`` commits random positions of the block
    (ancestral sampling); ``"low_confidence"`` is LLaDA's. Returns word lists (what precedes the first
    [EOS]), or None for a canvas without [EOS], as :func:`course_lib.textlm.sample_mdlm`."""
    n = _check_int(n, "n")
    L, block_size = _check_block(L, block_size)
    dev = next(model.parameters()).device
    was = model.training
    model.eval()
    x = llada.generate(block_logits_fn(model, block_size), torch.zeros((n, 0), dtype=torch.long, device=dev),
                       steps=steps or L, gen_length=L, block_length=block_size, temperature=temperature,
                       remasking=remasking, generator=torch.Generator().manual_seed(seed))
    model.train(was)
    out = []
    for row in x.cpu().tolist():
        out.append([tokenizer.itos[i] for i in row[:row.index(EOS_ID)]] if EOS_ID in row else None)
    return out


# ==============================================================================================
# 7. The shipped recipes: converted AR vs from scratch
# ==============================================================================================

_MODEL = dict(n_layer=4, n_head=4, d_model=128)               # lm_ar's size (0.88M parameters)
A2D_STEPS = 400
A2D_FINAL_BLOCK = 4
_TRAIN = dict(steps=A2D_STEPS, batch_size=64, lr=1e-3, warmup=50, min_lr_ratio=0.1, eval_every=50,
              eval_sentences=200, eval_samples=2, seed=0)
A2D_RECIPES = {
    # Chapter 4: lm_ar converted as practitioners do (Dream, DiffuLLaMA: the AR head's next-token alignment kept),
    # trained with a WSD block-size schedule, against the same model from random weights with the same alignment
    # and the same schedule. Same data, batches (seed), lr schedule, steps and final block size: only the
    # starting weights differ.
    # [MASK]-embedding noise is off: in an 80-step test (data/blockdiff/embed_noise.json, std 0.05 and 0.2) it
    # halved the peak gradient norm (700 -> 380, clipped to 1 anyway) but left the block-4 bound unchanged
    # within its error; lm_ar's [MASK] embedding kept its N(0, 0.02) init (no weight decay), not ~0 as in LLaDA 2.0.
    "a2d_convert": dict(_TRAIN, init="lm_ar",
                        schedule=dict(warmup_sizes=[1, 4, 16], stable_fraction=0.5, decay_sizes=[16, A2D_FINAL_BLOCK]),
                        embed_noise_std=0.0, embed_noise_steps=0, block_size=A2D_FINAL_BLOCK, keep_alignment=True),
    "a2d_scratch": dict(_TRAIN, init=None,
                        schedule=dict(warmup_sizes=[1, 4, 16], stable_fraction=0.5, decay_sizes=[16, A2D_FINAL_BLOCK]),
                        embed_noise_std=0.0, embed_noise_steps=0, block_size=A2D_FINAL_BLOCK, keep_alignment=True),
}
A2D_SAMPLES = 500                  # unconditional samples per model, graded by the exact validator


def a2d_schedule(name: str) -> list[tuple[int, int]]:
    """The block-size schedule of the shipped recipe ``name``."""
    r = A2D_RECIPES[name]
    if r["schedule"] is None:
        return [(0, BD_SEQ_LEN)]
    return wsd_schedule(r["steps"], BD_SEQ_LEN, **r["schedule"])


def _initial_model(recipe: dict) -> Transformer:
    if recipe["init"] is not None:
        return convert_ar_model(textlm.load_text_model(recipe["init"]), BD_SEQ_LEN, recipe["block_size"],
                                keep_alignment=recipe.get("keep_alignment", False))
    torch.manual_seed(recipe["seed"])
    attn = dict(attention="block_causal", block_size=recipe["block_size"]) if recipe["block_size"] else {}
    model = Transformer(TransformerConfig(vocab_size=353, seq_len=BD_SEQ_LEN, **_MODEL, **attn))
    model.next_token = recipe.get("keep_alignment", False)
    return model


def run_a2d_recipe(name: str, show_progress: bool = True):
    """Train the shipped recipe ``name`` (``a2d_convert`` or ``a2d_scratch``); returns ``(model, metrics,
    seconds)`` for :func:`course_lib.recipes.retrain`, and stores both validation curves in
    ``data/blockdiff/results.json`` (one entry per recipe) for the chapter's plots."""
    if name not in A2D_RECIPES:
        raise ValueError(f"unknown recipe {name!r}; known: {sorted(A2D_RECIPES)}")
    r = A2D_RECIPES[name]
    t0 = time.perf_counter()
    model = _initial_model(r)
    schedule = a2d_schedule(name)
    keys = ("steps", "batch_size", "lr", "warmup", "min_lr_ratio", "eval_every", "eval_sentences", "eval_samples",
            "seed", "embed_noise_std", "embed_noise_steps")
    model, hist = train_block_diffusion(model, language_ids("train"), language_ids("valid"), schedule,
                                        eval_block_sizes=[1, A2D_FINAL_BLOCK, BD_SEQ_LEN], show_progress=show_progress,
                                        desc=name, **{k: r[k] for k in keys})
    seconds = time.perf_counter() - t0
    tok = Tokenizer.for_language()
    sample_block = r["block_size"] or BD_SEQ_LEN
    samples = sample_block_diffusion(model, A2D_SAMPLES, tok, sample_block, seed=0)
    validity = textlm.sample_validity(samples)
    curve = {"eval_step": hist["eval_step"],
             **{f"valid_nll_block{b}": [round(v, 4) for v in hist["valid_nll"][b]] for b in hist["valid_nll"]},
             **{f"valid_se_block{b}": [round(v, 4) for v in hist["valid_se"][b]] for b in hist["valid_se"]}}
    metrics = {"steps": r["steps"], "n_params": hist["n_params"], "threads": 1,
               "train_seconds_only": round(hist["seconds"], 1), "eval_seconds": round(hist["eval_seconds"], 1),
               **{f"valid_nll_block{b}": round(v[-1], 4) for b, v in hist["valid_nll"].items()},
               "grad_norm_max": round(hist["grad_norm_max"], 3),
               f"sample_valid_fraction_block{sample_block}": round(validity["valid_fraction"], 3),
               "curve": curve}
    model.recipe = dict(r, schedule_steps=[list(s) for s in schedule], model=model.config.to_dict(),
                        seq_len=BD_SEQ_LEN)
    _write_results(name, dict(recipe=model.recipe, seconds=round(seconds, 1), metrics={
        k: v for k, v in metrics.items() if k != "curve"}, curve=curve,
        train={"step": hist["step"], "block_size": hist["block_size"],
               "train_loss": [round(v, 4) for v in hist["train_loss"]],
               "grad_norm": [round(v, 3) for v in hist["grad_norm"]]}))
    return model, metrics, seconds


def _write_results(name: str, entry: dict, path: Path = RESULTS_PATH) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(path.read_text()) if path.exists() else {}
    data[name] = entry
    path.write_text(json.dumps(dict(sorted(data.items())), indent=1) + "\n")


def load_bd_model(name: str) -> Transformer:
    """A shipped block-diffusion model (``a2d_convert`` or ``a2d_scratch``), verified against the manifest, in
    eval mode; its recipe is ``model.recipe``. A missing or corrupt
    file raises :class:`course_lib.checkpoints.CheckpointError` naming the retrain command."""
    model = checkpoints.load_model(name, lambda config: Transformer(TransformerConfig(**config["model"])))
    model.next_token = bool(model.recipe.get("keep_alignment", False))
    return model


def load_results(path: Path = RESULTS_PATH) -> dict:
    """The stored curves of ``a2d_convert`` and ``a2d_scratch`` (``data/blockdiff/results.json``), so the chapter
    plots "converted AR vs from scratch" without retraining."""
    if not Path(path).exists():
        raise ValueError(f"{path} does not exist; create it with: ./course retrain a2d_convert a2d_scratch")
    return json.loads(Path(path).read_text())


RECIPES = {name: (lambda name=name: run_a2d_recipe(name)) for name in A2D_RECIPES}
