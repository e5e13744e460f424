"""Fast decoding with key-value caches: autoregressive, Fast-dLLM's prefix and dual caches, and block diffusion.

Counting tokens per forward pass (TPF) says how many model calls a decoder makes, not how long it takes: one
autoregressive step with a KV cache runs the network on *one* position, one step of a masked-diffusion decoder
on the whole canvas. This module makes the decoders pay for what they compute, and counts it:

1. :func:`ar_decode`: an autoregressive model, one token per forward pass; with ``cache=True`` each step runs only
   the newest token and reads the earlier positions' keys and values from a :class:`course_lib.nn.KVCache`
   (exact: in a causal model an earlier position never sees a later one, so its keys never change).
2. :func:`diffusion_decode`: a bidirectional masked-diffusion model, decoded block by block with the confidence
   threshold of Fast-dLLM / LLaDA 2.0 (``threshold=1.0``: one token per step, LLaDA's low-confidence remasking),
   with Fast-dLLM's approximate caches (Wu et al. 2025, arXiv 2505.22618, section 3.2; NVlabs/Fast-dLLM
   ``llada/generate.py``, ``generate_with_prefix_cache`` and ``generate_with_dual_cache``):

   - ``cache="prefix"``: at the start of each block one full pass; its keys and values of the prefix (prompt and
     finished blocks) are kept, and the block's later steps run only the current block *and everything after
     it* against them;
   - ``cache="dual"``: the keys and values of the masked suffix (the blocks after the current one) are kept too,
     and later steps run only the current block.

   Both are approximate: in a bidirectional model the prefix attends to the block being decoded, so its keys
   and values change as the block fills; the cache keeps the ones computed when the block was all [MASK].
3. :func:`block_decode`: a block-causal model (BD3-LM's mask; LLaDA 2.0's serving), threshold decoding inside the
   block, and with ``cache=True`` an **exact** cache of the finished blocks: a block-causal position never sees
   a later block, so a finished block's keys and values are final.

Every decoder returns a :class:`SpeedResult` with the same bookkeeping, per row: ``tokens`` (generated tokens up
to and including the first [EOS], as :mod:`course_lib.decoding` counts them), ``forwards`` (model calls the row
took part in) and ``positions`` (query positions the network computed for the row: the work, which is what a
large batch pays for), plus ``commits`` (the model call that wrote each answer token: the race demo plays it back)
and ``times`` (wall-clock seconds after each model call).

Conventions as in :mod:`course_lib.decoding`: greedy at ``temperature=0``, else a Gumbel-max sample at
``temperature`` from a seeded generator; the confidence is the un-tempered softmax probability of the proposed
token; [MASK] is never proposed; a position is committed when its confidence is ``> threshold``, and at least
the most confident masked position per step. Rows are decoded together block by block (as Fast-dLLM batches
them): a row whose block is finished waits, taking no part in the model calls, until every row's block is done;
a row leaves the batch after the block holding its first [EOS].

Read top to bottom: 1. results -> 2. autoregressive -> 3. one threshold step -> 4. masked diffusion with
prefix and dual caches -> 5. block diffusion with an exact cache.
"""
from __future__ import annotations

import time
from typing import NamedTuple

import torch

from .blockdiff import inference_mask, next_token_aligned, shift_inputs
from .checks import check_int, check_scale
from .decoding import commit_mask
from .llada import gumbel_max
from .masked import exclude_mask
from .nn import Transformer

CACHES = (None, "prefix", "dual")


# =========================================================================== 1. results
class SpeedResult(NamedTuple):
    """What every decoder of this module returns (rows = prompts)."""
    x: torch.Tensor              # (B, P + G) final canvas; after a row's first [EOS] every position is [EOS]
    prompt_length: int           # P
    tokens: torch.Tensor         # (B,) generated tokens up to and including the first [EOS] (G if none)
    forwards: torch.Tensor       # (B,) model calls the row took part in
    positions: torch.Tensor      # (B,) query positions the network computed for the row, all calls summed
    commits: torch.Tensor        # (B, G) the model call (1, 2, ...) that wrote each answer position; 0 = never
    times: list                  # wall-clock seconds from the start to the end of each model call

    @property
    def answers(self) -> torch.Tensor:
        """``x[:, P:]``, the generated part."""
        return self.x[:, self.prompt_length:]

    def summary(self) -> dict:
        """Batch totals: tokens, forwards, positions, seconds, and the ratios the chapter tabulates."""
        tok, fw, pos = int(self.tokens.sum()), int(self.forwards.sum()), int(self.positions.sum())
        calls = len(self.times)
        seconds = self.times[-1] if self.times else 0.0
        return {"tokens": tok, "forwards": fw, "positions": pos, "model_calls": calls, "seconds": seconds,
                "tokens_per_second": tok / seconds if seconds > 0 else float("nan"),
                "forwards_per_token": fw / tok, "positions_per_token": pos / tok, "tpf": tok / fw}


def _finish(x, P, G, eos_id, forwards, positions, commits, times) -> SpeedResult:
    """Every position after a row's first [EOS] becomes [EOS]; count the tokens."""
    ans = x[:, P:]
    is_eos = ans == eos_id
    first = torch.where(is_eos.any(1), is_eos.long().argmax(1), torch.full_like(forwards, G))
    after = torch.arange(G, device=x.device)[None] > first[:, None]
    x[:, P:] = torch.where(after, torch.full_like(ans, eos_id), ans)
    commits = torch.where(after, torch.zeros_like(commits), commits)
    tokens = torch.clamp(first + 1, max=G)
    return SpeedResult(x, P, tokens, forwards, positions, commits, times)


def _check_common(model, prompt, gen_length, temperature, ids: dict):
    if not isinstance(model, Transformer):
        raise ValueError("the cached decoders need a course Transformer (course_lib.nn), which can run "
                         "on a part of the canvas against cached keys and values")
    if model.training:
        raise ValueError("call model.eval() first")
    if not isinstance(prompt, torch.Tensor) or prompt.ndim != 2 or prompt.dtype != torch.long or prompt.shape[0] < 1:
        raise ValueError(f"prompt must be a (B, P) long tensor with B >= 1, got "
                         f"{getattr(prompt, 'dtype', type(prompt).__name__)} {tuple(getattr(prompt, 'shape', ()))}")
    gen_length = check_int(gen_length, "gen_length", 1)
    if prompt.shape[1] + gen_length > model.config.seq_len:
        raise ValueError(f"prompt ({prompt.shape[1]}) + gen_length ({gen_length}) exceeds the model's "
                         f"{model.config.seq_len} positions")
    for name, value in ids.items():
        check_int(value, name, 0)
        if value >= model.config.vocab_size:
            raise ValueError(f"{name} {value} is outside the vocabulary of {model.config.vocab_size} tokens")
    return gen_length, check_scale(temperature, "temperature")


def _propose(logits, temperature, generator, banned):
    """Proposal and its un-tempered confidence at every position of ``logits`` (..., V), in float64."""
    logits = logits.double()
    for b in banned:
        logits = exclude_mask(logits, b)
    proposal = gumbel_max(logits, temperature, generator)
    conf = torch.softmax(logits, -1).gather(-1, proposal.unsqueeze(-1)).squeeze(-1)
    return proposal, conf


# =========================================================================== 2. autoregressive
@torch.no_grad()
def ar_decode(model: Transformer, prompt: torch.Tensor, gen_length: int, eos_id: int, cache: bool = True,
              temperature: float = 0.0, generator=None, banned=()) -> SpeedResult:
    """Autoregressive decoding of a causal model, one token per forward pass, until [EOS] or ``gen_length``.

    ``cache=True``: the first pass runs the whole prompt (the "prefill") and keeps every position's keys and
    values; each later pass runs only the newest token, whose query attends to the cache and to itself.
    ``cache=False`` recomputes the whole sequence at every step. Same tokens either way (the tests check it);
    the cache changes how many positions are computed: ``P + n - 1`` instead of ``sum_k (P + k)``.
    ``banned``: token ids never proposed (the AR model's [MASK] and [PAD])."""
    gen_length, temperature = _check_common(model, prompt, gen_length, temperature, {"eos_id": eos_id})
    if model.config.attention != "causal":
        raise ValueError("ar_decode needs a causal model")
    B, P = prompt.shape
    if P < 1:
        raise ValueError("the autoregressive model needs at least one prompt token (a BOS)")
    G, dev = gen_length, prompt.device
    x = torch.cat([prompt, torch.full((B, G), eos_id, dtype=torch.long, device=dev)], 1)
    forwards = torch.zeros(B, dtype=torch.long, device=dev)
    positions = torch.zeros_like(forwards)
    commits = torch.zeros((B, G), dtype=torch.long, device=dev)
    rows = torch.arange(B, device=dev)                  # rows still decoding
    causal = torch.ones(P, P, dtype=torch.bool, device=dev).tril()[None]
    times, t0 = [], time.perf_counter()
    kv = None
    for j in range(G):
        if j == 0 or not cache:                             # the whole sequence so far
            logits = model(x[rows, :P + j]) if not cache else None
            if cache:
                logits, kv = model.forward_cached(x[rows, :P], torch.arange(P, device=dev), None, causal)
            positions[rows] += P + j
        else:                                               # only the newest token, against the cache
            logits, new = model.forward_cached(x[rows, P + j - 1:P + j], torch.tensor([P + j - 1], device=dev), kv)
            kv = kv.cat(new)
            positions[rows] += 1
        forwards[rows] += 1
        times.append(time.perf_counter() - t0)
        token, _ = _propose(logits[:, -1], temperature, generator, banned)
        x[rows, P + j] = token
        commits[rows, j] = len(times)
        going = token != eos_id
        if not bool(going.all()):                           # drop the rows that just ended
            rows = rows[going]
            if cache:
                kv = kv.rows(going.nonzero().flatten())
            if not len(rows):
                break
    return _finish(x, P, G, eos_id, forwards, positions, commits, times)


# =========================================================================== 3. one threshold step
def _threshold_step(x_block, logits_block, threshold, mask_id, temperature, generator, banned):
    """Commit, in each row, the masked positions of the block whose confidence is > ``threshold`` (at least the most
    confident one): the M2T rule of :func:`course_lib.decoding.threshold_decode`. Returns the new block tokens and
    the bool mask of what was committed."""
    proposal, conf = _propose(logits_block, temperature, generator, (mask_id, *banned))
    masked = x_block == mask_id
    m2t = commit_mask(masked, conf, threshold)
    return torch.where(m2t, proposal, x_block), m2t


def _still_masked(x, sub, past, lo, hi, mask_id):
    """The rows of ``sub`` whose block ``lo:hi`` still holds a [MASK], and their rows of the cache ``past`` (None:
    no cache): a row whose block is finished waits for the others without taking part in the model calls."""
    need = (x[sub, lo:hi] == mask_id).any(1)
    if bool(need.all()):
        return sub, past
    keep = need.nonzero().flatten()
    return sub[keep], (past.rows(keep) if past is not None else None)


def _check_blocks(gen_length, block_length, threshold, cache):
    block_length = check_int(block_length, "block_length", 1)
    if gen_length % block_length:
        raise ValueError(f"block_length ({block_length}) must divide gen_length ({gen_length})")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be a probability in [0, 1], got {threshold!r}")
    if cache not in CACHES:
        raise ValueError(f"cache must be one of {CACHES}, got {cache!r}")
    return block_length, float(threshold)


# =========================================================================== 4. masked diffusion, prefix / dual cache
@torch.no_grad()
def diffusion_decode(model: Transformer, prompt: torch.Tensor, gen_length: int, block_length: int, threshold: float,
                     mask_id: int, eos_id: int, cache: str | None = None, temperature: float = 0.0, generator=None,
                     banned=(), on_step=None) -> SpeedResult:
    """Threshold decoding of a bidirectional masked-diffusion model, block by block, with Fast-dLLM's caches.

    For each block of ``block_length`` positions, until it holds no [MASK]:

    - ``cache=None``: every step is one pass over the whole canvas ``[prompt | answer]`` (later blocks all
      [MASK]): :func:`course_lib.decoding.threshold_decode`, token for token;
    - ``cache="prefix"``: the block's first step is a full pass, which also stores the keys and values of the
      positions before the block; later steps run positions ``block start .. end`` against that prefix cache;
    - ``cache="dual"``: the first step also stores the keys and values of the positions after the block; later
      steps run only the block's ``block_length`` positions against prefix and suffix caches.

    The cached keys and values are those of the block's first step (block all [MASK]); a full pass would
    recompute them with the tokens committed since, so the cached decoders are approximations (measured in
    chapter 4). ``threshold=1.0`` commits one token per step (no float64 confidence exceeds 1).

    ``on_step(canvas, lo, hi, logits, full_pass)``, if given, is called after every model call with the rows'
    canvases (before this step's commits), the block and the block's logits: chapter 4 compares a cached step's
    logits with a full pass on the same canvas."""
    gen_length, temperature = _check_common(model, prompt, gen_length, temperature,
                                            {"mask_id": mask_id, "eos_id": eos_id})
    block_length, threshold = _check_blocks(gen_length, block_length, threshold, cache)
    if model.config.attention != "bidirectional":
        raise ValueError("diffusion_decode needs a bidirectional model (block_decode takes block-causal ones)")
    B, P = prompt.shape
    G, L, dev = gen_length, prompt.shape[1] + gen_length, prompt.device
    x = torch.cat([prompt, torch.full((B, G), mask_id, dtype=torch.long, device=dev)], 1)
    forwards = torch.zeros(B, dtype=torch.long, device=dev)
    positions = torch.zeros_like(forwards)
    commits = torch.zeros((B, G), dtype=torch.long, device=dev)
    rows = torch.arange(B, device=dev)
    times, t0 = [], time.perf_counter()
    for lo in range(P, L, block_length):
        hi = lo + block_length
        first, past, sub = True, None, rows
        while True:
            sub, past = _still_masked(x, sub, past, lo, hi, mask_id)
            if not len(sub):
                break
            if first or cache is None:                      # a full pass over the canvas
                if cache is None:
                    logits = model(x[sub])[:, lo:hi]
                else:
                    full, kv = model.forward_cached(x[sub], torch.arange(L, device=dev))
                    logits = full[:, lo:hi]
                    past = kv.positions(0, lo) if cache == "prefix" else \
                        kv.positions(0, lo).cat(kv.positions(hi, L))
                positions[sub] += L
            elif cache == "prefix":                         # block and suffix, against the prefix cache
                logits = model.forward_cached(x[sub, lo:], torch.arange(lo, L, device=dev), past)[0][:, :block_length]
                positions[sub] += L - lo
            else:                                           # dual: the block alone, against prefix + suffix
                logits = model.forward_cached(x[sub, lo:hi], torch.arange(lo, hi, device=dev), past)[0]
                positions[sub] += block_length
            forwards[sub] += 1
            times.append(time.perf_counter() - t0)
            if on_step is not None:
                on_step(x[sub], lo, hi, logits, first or cache is None)
            first = False
            new, m2t = _threshold_step(x[sub, lo:hi], logits, threshold, mask_id, temperature, generator, banned)
            x[sub, lo:hi] = new
            commits[sub, lo - P:hi - P] = torch.where(m2t, len(times), commits[sub, lo - P:hi - P])
        rows = rows[~(x[rows, P:hi] == eos_id).any(1)]      # a row ends after the block holding its first [EOS]
        if not len(rows):
            break
    x[:, P:] = torch.where(x[:, P:] == mask_id, eos_id, x[:, P:])   # blocks never decoded (after an [EOS])
    return _finish(x, P, G, eos_id, forwards, positions, commits, times)


# =========================================================================== 5. block diffusion, exact cache
def _inputs(model, x, block_length):
    """What the network reads: the canvas, or for a next-token-aligned model (:func:`course_lib.blockdiff.
    shift_inputs`) the canvas shifted right by one."""
    return shift_inputs(x, None, block_length) if next_token_aligned(model) else x


@torch.no_grad()
def block_decode(model: Transformer, prompt: torch.Tensor, gen_length: int, block_length: int, threshold: float,
                 mask_id: int, eos_id: int, cache: bool = True, temperature: float = 0.0, generator=None,
                 banned=()) -> SpeedResult:
    """Threshold decoding of a block-causal model (BD3-LM; LLaDA 2.0), block by block, with an exact KV cache.

    Inside the block: threshold decoding as :func:`diffusion_decode`. Across blocks, the mask of
    :func:`course_lib.blockdiff.inference_mask`: a position sees its own block and the blocks before it.
    ``cache=False`` runs the whole canvas under that mask at every step. ``cache=True`` keeps the keys and values
    of the prompt and of every finished block: the first step of block k runs block k-1 (now final) together with
    block k, and appends block k-1's keys and values to the cache (the prompt's at block 0); later steps run only
    block k. Nothing cached ever changes, because no position sees a later block: the same tokens as
    ``cache=False`` (the tests check it)."""
    gen_length, temperature = _check_common(model, prompt, gen_length, temperature,
                                            {"mask_id": mask_id, "eos_id": eos_id})
    block_length, threshold = _check_blocks(gen_length, block_length, threshold, None)
    cache = bool(cache)
    if model.config.attention != "block_causal":
        raise ValueError("block_decode needs a block-causal model (attention='block_causal')")
    B, P = prompt.shape
    G, L, dev = gen_length, prompt.shape[1] + gen_length, prompt.device
    x = torch.cat([prompt, torch.full((B, G), mask_id, dtype=torch.long, device=dev)], 1)
    full_mask = inference_mask(L, block_length, P, dev)              # (1, L, L)
    forwards = torch.zeros(B, dtype=torch.long, device=dev)
    positions = torch.zeros_like(forwards)
    commits = torch.zeros((B, G), dtype=torch.long, device=dev)
    rows = torch.arange(B, device=dev)
    times, t0 = [], time.perf_counter()
    past, done_to = None, 0                                          # cached positions 0 .. done_to - 1
    for lo in range(P, L, block_length):
        hi = lo + block_length
        first, sub, past_sub = True, rows, past
        while True:
            sub, past_sub = _still_masked(x, sub, past_sub, lo, hi, mask_id)   # all rows at the block's first step
            if not len(sub):
                break
            if not cache:
                logits = model(_inputs(model, x[sub], block_length), mask=full_mask)[:, lo:hi]
                positions[sub] += L
            elif first:                                              # the newly finished positions + this block
                inp = _inputs(model, x[sub, :hi], block_length)
                mask = full_mask[:, done_to:hi, :hi]                 # queries: new; keys: [cached ; new]
                logits, kv = model.forward_cached(inp[:, done_to:], torch.arange(done_to, hi, device=dev),
                                                  past_sub, mask)
                logits = logits[:, lo - done_to:]
                final = kv.positions(0, lo - done_to)                # their keys and values never change again
                past = past_sub = final if past_sub is None else past_sub.cat(final)
                positions[sub] += hi - done_to
                done_to = lo
            else:                                                    # this block only, against the exact cache
                inp = _inputs(model, x[sub, :hi], block_length)
                logits = model.forward_cached(inp[:, lo:], torch.arange(lo, hi, device=dev), past_sub)[0]
                positions[sub] += block_length
            first = False
            forwards[sub] += 1
            times.append(time.perf_counter() - t0)
            new, m2t = _threshold_step(x[sub, lo:hi], logits, threshold, mask_id, temperature, generator, banned)
            x[sub, lo:hi] = new
            commits[sub, lo - P:hi - P] = torch.where(m2t, len(times), commits[sub, lo - P:hi - P])
        going = ~(x[rows, P:hi] == eos_id).any(1)
        rows = rows[going]
        if past is not None:
            past = past.rows(going.nonzero().flatten())
        if not len(rows):
            break
    x[:, P:] = torch.where(x[:, P:] == mask_id, eos_id, x[:, P:])
    return _finish(x, P, G, eos_id, forwards, positions, commits, times)
