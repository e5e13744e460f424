"""Parallel decoders of masked diffusion LMs: confidence thresholds (Fast-dLLM, LLaDA 2.0) and token
editing (LLaDA 2.1), plus a numerical check of Fast-dLLM's Theorem 1.

Parallel decoding and token editing. Sources:

- Wu et al. (2025), "Fast-dLLM" (arXiv 2505.22618; NVlabs/Fast-dLLM ``llada/generate.py``): inside the
  current block, commit every masked position whose confidence passes a threshold, and always at least
  the most confident one; Theorem 1 says when committing several tokens from their marginals is safe;
- Bie et al. (2025), "LLaDA 2.0" (arXiv 2512.15745, section 5.4): the same threshold decoding, block by
  block, with a fallback of one token per step;
- LLaDA 2.1 (arXiv 2602.08676, section 2, eq. 1-3; the official HF ``generate``): Mask-to-Token (M2T)
  unmasking *and* Token-to-Token (T2T) editing of tokens already committed.

Conventions (as in :mod:`course_lib.llada`):

- a *model* is any callable mapping ids (B, L) long to logits (B, L, V); it is called under
  ``torch.no_grad()``, on the whole canvas ``[prompt | answer]``, where the blocks after the current one
  are still [MASK] (LLaDA's semi-autoregressive layout);
- the [MASK] logit is set to -inf before any softmax, so [MASK] is never proposed;
- ``temperature == 0`` proposes the argmax; ``temperature > 0`` samples from softmax(logits / T) with
  the Gumbel-max trick and a seeded ``torch.Generator`` (:func:`course_lib.llada.gumbel_max`);
- **confidence** of position i = softmax(logits_i)[v_i], the probability of the proposed token v_i under
  the *un-tempered* distribution (LLaDA's ``generate.py`` and Fast-dLLM's choice: temperature changes which
  token is proposed, not how its confidence is measured). LLaDA 2.x's samplers (inclusionAI/dFactory, the
  LLaDA 2.1 ``generate``) measure it under softmax(logits / T) after top-k / top-p filtering instead; the two
  agree at temperature 0, where every decoder of chapter 4 runs, and at T = 1 without filtering;
- a position is committed when its confidence is **strictly** above the threshold (:func:`commit_mask`), as in
  LLaDA 2.x's code; Fast-dLLM's ``get_transfer_index`` uses ``>=``, which differs only on exact ties;
- **block layout**: blocks start at the first generated position, as in LLaDA's ``generate.py``. LLaDA 2.x
  aligns blocks to absolute positions instead (the prompt's tail shares the first decoded block, and the canvas
  is rounded up to whole blocks), so answers can differ when the prompt length is not a multiple of the block
  length. Chapter 4's tasks have prompts of 8 and 32 tokens and blocks of 8: the two layouts coincide;
- rows of a batch are decoded independently: each row has its own current block and stops on its own,
  and a row only pays for (is only counted in) the model calls it takes part in. At temperature 0 a row's
  result does not depend on the rest of the batch; at temperature > 0 the rows share one random stream.

Accounting: ``forwards[b]`` counts the model calls in which row b was decoded; ``tokens[b]`` counts the
generated tokens up to and including the first [EOS] (``gen_length`` if there is none). The headline
**TPF** (tokens per forward pass, the LLaDA 2.x papers' speed measure) is ``sum(tokens) / sum(forwards)``
over the batch; ``row_tpf`` is the per-row ratio. The model calls dominate the cost; a progress bar (in blocks
decoded) appears when a decode runs longer than 2 s (``COURSE_NO_PROGRESS=1`` silences it).

Read top to bottom: 1. results -> 2. validation -> 3. the decoding loop -> 4. the two decoders, the
repair count and the playback frames -> 5. Fast-dLLM Theorem 1.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np
import torch

from .checks import check_int, check_scale
from .llada import gumbel_max
from .masked import exclude_mask
from .runtime import progress

LogitsFn = Callable[[torch.Tensor], torch.Tensor]


# =========================================================================== 1. results
class DecodeStep(NamedTuple):
    """One batched model call of a decoder (kept when ``record=True``).

    Canvas-shaped tensors are (B, P + G). Rows that took no part in the call (``active[b]`` False: already
    finished) have ``block = -1``, no M2T/T2T, NaN confidence and proposal -1. Confidence and proposal are
    given at every *generated* position (NaN / -1 on the prompt), including the masked later blocks.
    Replaying a decode: start from ``x_before`` of step 1, apply each step's ``x_after``; colour ``m2t``
    (fresh unmaskings) and ``t2t`` (edits) differently; :meth:`edits` lists one row's edits."""
    step: int                    # 1, 2, ... (the number of batched model calls so far)
    active: torch.Tensor         # (B,) bool: rows decoded in this call (each counted one forward)
    block: torch.Tensor          # (B,) long: the block each active row worked on (-1 if inactive)
    post: torch.Tensor           # (B,) bool: a post-completion (edit-only) step of that row's block
    x_before: torch.Tensor       # canvas before the step
    x_after: torch.Tensor        # canvas after the step
    proposal: torch.Tensor       # v_i, the proposed token at every generated position
    confidence: torch.Tensor     # softmax(logits)[v_i] (float64, no temperature)
    m2t: torch.Tensor            # bool: positions unmasked at this step (Mask-to-Token)
    t2t: torch.Tensor            # bool: committed positions re-written at this step (Token-to-Token)

    def edits(self, row: int) -> list[tuple[int, int, int]]:
        """``[(position, old token, new token), ...]`` of the T2T edits of ``row`` at this step."""
        pos = torch.nonzero(self.t2t[row]).flatten().tolist()
        return [(p, int(self.x_before[row, p]), int(self.x_after[row, p])) for p in pos]


class DecodeResult(NamedTuple):
    """What a decoder returns.

    ``x[:, prompt_length:]`` is the answer; after a row's first [EOS] block every later position is
    ``eos_id`` (those blocks were never decoded). ``drafts`` and ``edits`` are always kept (they are small)
    and feed :func:`edit_repairs`; ``steps`` (every :class:`DecodeStep`) only with ``record=True``."""
    x: torch.Tensor              # (B, P + G) final canvas
    prompt_length: int           # P
    forwards: torch.Tensor       # (B,) long: model calls in which the row was decoded
    tokens: torch.Tensor         # (B,) long: generated tokens up to and including the first EOS (else G)
    tpf: float                   # headline TPF = sum(tokens) / sum(forwards)
    row_tpf: torch.Tensor        # (B,) float64: tokens[b] / forwards[b]
    blocks: torch.Tensor         # (B,) long: blocks decoded (the rest were skipped after an EOS)
    events: dict                 # totals: m2t, t2t, post_steps, model_calls
    drafts: torch.Tensor         # (B, G) long: the token M2T committed at each position (-1: never)
    edits: torch.Tensor          # (E, 5) long: one row per T2T edit: step, row, canvas position, old, new
    steps: list | None           # [DecodeStep, ...] with record=True, else None


class EditRepairs(NamedTuple):
    """Drafting errors and what T2T editing did about them (see :func:`edit_repairs`)."""
    drafted_errors: int          # M2T commits that differ from the reference
    repaired: int                # T2T edits that replaced a wrong token by the reference token
    introduced: int              # T2T edits that replaced the reference token by a wrong one


# =========================================================================== 2. validation
def _check_threshold(value, name: str) -> float:
    """A probability threshold: a real number in [0, 1] (NaN and booleans are refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
            or not (0.0 <= float(value) <= 1.0):           # NaN fails both comparisons
        raise ValueError(f"{name} must be a probability threshold in [0, 1], got {value!r}")
    return float(value)


def _check_model(model) -> None:
    if not callable(model):
        raise ValueError("model must be a callable mapping ids (B, L) to logits (B, L, V)")
    if isinstance(model, torch.nn.Module) and model.training and any(
            isinstance(m, torch.nn.Dropout) and m.p > 0 for m in model.modules()):
        raise ValueError("the model is in training mode with dropout active, so decoding would be random: "
                         "call model.eval() first")


def _check_prompt(prompt, mask_id: int, gen_length: int, model) -> None:
    if not isinstance(prompt, torch.Tensor) or prompt.ndim != 2 or prompt.dtype != torch.long:
        kind, shape = getattr(prompt, "dtype", type(prompt).__name__), tuple(getattr(prompt, "shape", ()))
        raise ValueError(f"prompt must be a 2-D (B, P) long tensor, got {kind} of shape {shape}")
    if prompt.shape[0] < 1:
        raise ValueError("prompt must hold at least one row")
    if prompt.numel() and int(prompt.min()) < 0:
        raise ValueError("prompt holds negative token ids")
    if bool((prompt == mask_id).any()):
        raise ValueError(f"the prompt contains the mask id {mask_id}")
    context = getattr(getattr(model, "config", None), "seq_len", None)     # a course Transformer knows its context
    if context is not None and prompt.shape[1] + gen_length > context:
        raise ValueError(f"prompt ({prompt.shape[1]} tokens) + gen_length ({gen_length}) = "
                         f"{prompt.shape[1] + gen_length} exceeds the model's context of {context} positions")


def _check_logits(logits, rows: int, length: int, ids: dict, prompt: torch.Tensor) -> int:
    """The model's output must be float (rows, length, V) and every id we use must lie in 0..V-1."""
    if not isinstance(logits, torch.Tensor) or logits.ndim != 3 or tuple(logits.shape[:2]) != (rows, length) \
            or not logits.is_floating_point():
        raise ValueError(f"the model must return float logits of shape (B, L, V) = ({rows}, {length}, V), got "
                         f"{getattr(logits, 'dtype', type(logits).__name__)} {tuple(getattr(logits, 'shape', ()))}")
    return _check_ids(logits.shape[-1], ids, prompt)


def _check_ids(V: int, ids: dict, prompt: torch.Tensor) -> int:
    for name, value in ids.items():
        if value >= V:
            raise ValueError(f"{name} {value} is outside the model's vocabulary of size V = {V} (the logits' width)")
    if prompt.numel() and int(prompt.max()) >= V:
        raise ValueError(f"the prompt holds token id {int(prompt.max())}, outside the model's vocabulary "
                         f"of size V = {V} (the logits' width)")
    return V


# =========================================================================== 3. the decoding loop
def commit_mask(masked: torch.Tensor, conf: torch.Tensor, threshold: float) -> torch.Tensor:
    """The M2T rule, per row: commit the ``masked`` positions whose confidence is ``> threshold``, and in a row that
    has a masked position but none above the threshold, the most confident one (the leftmost on a tie).

    Strictly greater, as LLaDA 2.x's code (``confidence > threshold``); Fast-dLLM's ``get_transfer_index`` keeps
    ``>=``. The two differ only on an exact tie: at ``threshold = 1.0`` a float64 confidence that saturates to
    1.0 is not committed here (so 1.0 means one token per step), while Fast-dLLM would commit it."""
    m2t = masked & (conf > threshold)
    fallback = masked.any(1) & ~m2t.any(1)
    best = torch.where(masked, conf, torch.full_like(conf, float("-inf"))).argmax(1)
    m2t[fallback.nonzero().flatten(), best[fallback]] = True
    return m2t


@torch.no_grad()
def _decode(model: LogitsFn, prompt: torch.Tensor, gen_length, block_length, tau_mask, tau_edit, mask_id, eos_id,
            max_post_steps, multi_block, temperature, generator, record, desc) -> DecodeResult:
    """The shared loop. ``tau_edit=None`` switches T2T off *and* skips the post-completion steps (they could
    only edit), which makes the loop exactly Fast-dLLM / LLaDA 2.0 threshold decoding."""
    _check_model(model)
    gen_length = check_int(gen_length, "gen_length", 1)
    block_length = check_int(block_length, "block_length", 1)
    if gen_length % block_length:
        raise ValueError(f"block_length ({block_length}) must divide gen_length ({gen_length})")
    tau_mask = _check_threshold(tau_mask, "the M2T threshold (threshold / tau_mask)")
    if tau_edit is not None:
        tau_edit = _check_threshold(tau_edit, "tau_edit")
    mask_id, eos_id = check_int(mask_id, "mask_id", 0), check_int(eos_id, "eos_id", 0)
    if mask_id == eos_id:
        raise ValueError(f"mask_id and eos_id must differ, both are {mask_id}")
    max_post_steps = check_int(max_post_steps, "max_post_steps", 0)
    temperature = check_scale(temperature, "temperature")
    _check_prompt(prompt, mask_id, gen_length, model)
    vocab = getattr(getattr(model, "config", None), "vocab_size", None)   # a course Transformer: check before calling
    if isinstance(vocab, int):
        _check_ids(vocab, {"mask_id": mask_id, "eos_id": eos_id}, prompt)

    B, P = prompt.shape
    G, num_blocks, dev = gen_length, gen_length // block_length, prompt.device
    x = torch.cat([prompt, torch.full((B, G), mask_id, dtype=torch.long, device=dev)], 1)
    g = torch.arange(G, device=dev)[None]                         # (1, G) generated positions
    rows = torch.arange(B, device=dev)
    block = torch.zeros(B, dtype=torch.long, device=dev)          # current block of each row
    post = torch.zeros(B, dtype=torch.long, device=dev)           # post-completion steps of that block
    done = torch.zeros(B, dtype=torch.bool, device=dev)
    forwards = torch.zeros(B, dtype=torch.long, device=dev)
    drafts = torch.full((B, G), -1, dtype=torch.long, device=dev)
    edit_log, steps = [], [] if record else None
    events = {"m2t": 0, "t2t": 0, "post_steps": 0, "model_calls": 0}
    bar = progress(total=B * num_blocks, desc=desc, unit="block", delay=2.0)

    while not bool(done.all()):
        act = ~done
        idx = rows[act]
        xs = x[idx, P:]                                           # (n, G) the active rows' answers
        lo = (block[idx] * block_length)[:, None]
        in_block = (g >= lo) & (g < lo + block_length)
        masked = (xs == mask_id) & in_block
        had_mask = masked.any(1)
        is_post = ~had_mask                                       # the pseudocode's "if no active: post_steps += 1"
        post[idx] += is_post.long()

        # one forward pass for every active row
        logits = model(x[idx])
        _check_logits(logits, len(idx), P + G, {"mask_id": mask_id, "eos_id": eos_id}, prompt)
        logits = exclude_mask(logits[:, P:].double(), mask_id)  # (n, G, V), [MASK] never proposed
        proposal = logits.argmax(-1) if temperature == 0 else gumbel_max(logits, temperature, generator)
        conf = torch.softmax(logits, -1).gather(-1, proposal.unsqueeze(-1)).squeeze(-1)   # un-tempered p(v_i)
        if bool(torch.isnan(conf).any()) or bool((proposal == mask_id).any()):   # else a block might never fill
            raise ValueError("the model returned NaN logits, or no finite logit besides [MASK] at some position")
        forwards[idx] += 1
        events["model_calls"] += 1
        events["post_steps"] += int(is_post.sum())

        # M2T (LLaDA 2.1 eq. 1; Fast-dLLM): masked positions of the block with p(v_i) > tau_mask, at least one
        m2t = commit_mask(masked, conf, tau_mask)
        # T2T (LLaDA 2.1 eq. 2): committed generated positions whose confident proposal differs
        if tau_edit is not None:
            scope = (g < lo + block_length) if multi_block else in_block
            t2t = scope & (xs != mask_id) & (proposal != xs) & (conf > tau_edit)
        else:
            t2t = torch.zeros_like(m2t)
        new = torch.where(m2t | t2t, proposal, xs)               # eq. 3

        drafts[idx] = torch.where(m2t, proposal, drafts[idx])
        if bool(t2t.any()):
            r, p = t2t.nonzero(as_tuple=True)
            step_col = torch.full_like(r, events["model_calls"])
            edit_log.append(torch.stack([step_col, idx[r], P + p, xs[r, p], new[r, p]], 1))
        events["m2t"] += int(m2t.sum())
        events["t2t"] += int(t2t.sum())
        if record:
            steps.append(_step_record(events["model_calls"], x, idx, block, is_post, P, proposal, conf, m2t, t2t, new))
        x[idx, P:] = new

        # is the row's block finished?  (pseudocode: break if no mask and no edit; or post_steps > max)
        has_mask = ((new == mask_id) & in_block).any(1)       # later blocks are still [MASK]: ignore them
        if tau_edit is None:
            finished = ~has_mask
        else:
            finished = (is_post & ~t2t.any(1)) | (~has_mask & (post[idx] + 1 > max_post_steps))
        fin = idx[finished]
        if len(fin):
            end = ((block[fin] + 1) * block_length)[:, None]
            eos_seen = ((x[fin, P:] == eos_id) & (g < end)).any(1)
            block[fin] += 1
            post[fin] = 0
            stop = eos_seen | (block[fin] == num_blocks)
            done[fin[stop]] = True
            bar.update(int(len(fin)) + int(((num_blocks - block[fin[stop]]) * eos_seen[stop]).sum()))
    bar.close()

    # rows stopped by an EOS: their undecoded blocks become EOS
    x[:, P:] = torch.where(g >= block[:, None] * block_length, torch.full_like(x[:, P:], eos_id), x[:, P:])
    is_eos = x[:, P:] == eos_id
    tokens = torch.where(is_eos.any(1), is_eos.long().argmax(1) + 1, torch.full_like(forwards, G))
    edits = torch.cat(edit_log) if edit_log else torch.zeros((0, 5), dtype=torch.long, device=dev)
    return DecodeResult(x=x, prompt_length=P, forwards=forwards, tokens=tokens,
                        tpf=float(tokens.sum()) / float(forwards.sum()),
                        row_tpf=tokens.double() / forwards.double(), blocks=block.clone(), events=events,
                        drafts=drafts, edits=edits, steps=steps)


def _step_record(step, x, idx, block, is_post, P, proposal, conf, m2t, t2t, new) -> DecodeStep:
    """Scatter the active rows' tensors of one step into full (B, P + G) tensors."""
    B, L = x.shape
    active = torch.zeros(B, dtype=torch.bool, device=x.device)
    active[idx] = True
    full_block = torch.full((B,), -1, dtype=torch.long, device=x.device)
    full_block[idx] = block[idx]
    full_post = torch.zeros(B, dtype=torch.bool, device=x.device)
    full_post[idx] = is_post
    full_prop = torch.full((B, L), -1, dtype=torch.long, device=x.device)
    full_prop[idx, P:] = proposal
    full_conf = torch.full((B, L), math.nan, dtype=torch.float64, device=x.device)
    full_conf[idx, P:] = conf
    full_m2t = torch.zeros((B, L), dtype=torch.bool, device=x.device)
    full_m2t[idx, P:] = m2t
    full_t2t = torch.zeros_like(full_m2t)
    full_t2t[idx, P:] = t2t
    after = x.clone()
    after[idx, P:] = new
    return DecodeStep(step, active, full_block, full_post, x.clone(), after, full_prop, full_conf, full_m2t, full_t2t)


# =========================================================================== 4. the decoders
def threshold_decode(model: LogitsFn, prompt: torch.Tensor, gen_length: int, block_length: int, threshold: float,
                     mask_id: int, eos_id: int, temperature: float = 0.0, generator=None,
                     record: bool = False) -> DecodeResult:
    """Confidence-threshold parallel decoding, block by block.

    Fast-dLLM's confidence-aware parallel decoding (Wu et al. 2025, arXiv 2505.22618; NVlabs/Fast-dLLM
    ``llada/generate.py``) as used by LLaDA 2.0 (Bie et al. 2025, section 5.4: "accept all tokens with confidence
    > threshold"; fallback = one token per step, as ``steps == block_length`` by default):

    1. canvas ``x = [prompt | MASK * gen_length]``, cut into ``gen_length / block_length`` blocks decoded left
       to right; the blocks after the current one stay [MASK] and are fed to the model;
    2. each step (one model call): propose v_i at every position (argmax, or a sample at ``temperature``),
       confidence c_i = softmax(logits_i)[v_i] (un-tempered); among the masked positions of the current block
       commit every i with c_i > ``threshold``, and always at least the most confident one;
    3. a block is finished when it holds no [MASK]; a row stops after the block holding its first [EOS].

    ``threshold = 1.0`` commits exactly one token per step (LLaDA's low-confidence remasking, one token per
    forward pass: no confidence is strictly above 1, while Fast-dLLM's ``>=`` would also commit confidences that
    saturate to 1.0); ``threshold = 0.0`` commits a whole block per step. Committed tokens never change.
    Returns a :class:`DecodeResult`; its ``tpf`` is sum(tokens) / sum(forwards)."""
    return _decode(model, prompt, gen_length, block_length, threshold, None, mask_id, eos_id, 0, False,
                   temperature, generator, record, "threshold decoding")


# The two decoding modes of LLaDA 2.1 as (tau_mask, tau_edit). The report names S-Mode (speed) and Q-Mode (quality)
# without giving their thresholds; the official HF ``generate`` defaults to 0.95 / 0.9 and SGLang's recommended
# "full editing" setting is 0.5 / 0.0, so the course takes those two ends.
EDIT_MODES = {"S-Mode": (0.5, 0.0), "Q-Mode": (0.95, 0.9)}


def edit_decode(model: LogitsFn, prompt: torch.Tensor, gen_length: int, block_length: int, tau_mask: float,
                tau_edit: float, mask_id: int, eos_id: int, max_post_steps: int = 16, editing: bool = True,
                multi_block: bool = False, temperature: float = 0.0, generator=None,
                record: bool = False) -> DecodeResult:
    """LLaDA 2.1 decoding with token editing (arXiv 2602.08676, section 2, eq. 1-3; the official HF
    ``generate`` of the LLaDA2.1 models' remote code on Hugging Face).

    Each step (one model call) proposes v_i = argmax p(. | x_t) (or a sample at ``temperature``) with
    confidence p(v_i) (un-tempered softmax), then updates x_i <- v_i on the union of

    - **M2T** (eq. 1): masked positions of the current block with p(v_i) > ``tau_mask``; if there are none,
      the single most confident masked position (the official ``num_to_transfer = 1``);
    - **T2T** (eq. 2): committed (not masked, not prompt) positions of the current block -- or, with
      ``multi_block=True`` (LLaDA 2.1's Multiple Block Editing), of the current or any earlier generated
      block -- where x_i != v_i and p(v_i) > ``tau_edit``.

    Post-completion steps follow the official loop exactly, per block::

        post_steps = 0
        loop:
            if the block has no [MASK]: post_steps += 1
            if post_steps > max_post_steps: break          # no model call
            one model call, M2T + T2T update
            if the block had no [MASK] before this call and nothing was edited: break

    So the step that fills the last [MASK] is followed by up to ``max_post_steps`` edit-only model calls;
    the run stops early at the first one that edits nothing (that call is still counted), and
    ``max_post_steps = 0`` means no post-completion call. Edits made while masks remain do not count as post
    steps. Each post call counts in ``forwards``.

    ``editing=False`` turns T2T off and skips the post-completion calls (they could only edit), which is
    exactly :func:`threshold_decode` with ``threshold = tau_mask`` (same canvas, same ``forwards``).
    A row stops after the block holding its first [EOS], checked when that block is finished (an edit may
    create or remove an EOS). Returns a :class:`DecodeResult`."""
    if not isinstance(editing, bool) or not isinstance(multi_block, bool):
        raise ValueError(f"editing and multi_block must be booleans, got {editing!r} and {multi_block!r}")
    _check_threshold(tau_edit, "tau_edit")
    return _decode(model, prompt, gen_length, block_length, tau_mask, tau_edit if editing else None, mask_id,
                   eos_id, max_post_steps, multi_block, temperature, generator, record,
                   "edit decoding" if editing else "threshold decoding")


@torch.no_grad()
def decode_one(model: LogitsFn, prompt: torch.Tensor, gen_length: int, block_length: int, tau_mask: float,
               tau_edit: float | None, mask_id: int, eos_id: int, max_post_steps: int = 16) -> torch.Tensor:
    """Threshold decoding and LLaDA 2.1's M2T + T2T editing, written out for one prompt (1-D ids), greedy; returns
    the answer. ``tau_edit=None`` switches editing off, which is Fast-dLLM / LLaDA 2.0 threshold decoding.

    Each step, one forward pass proposes v_i = argmax p(. | x) at every position. M2T: commit the masked positions
    of the block with p(v_i) > tau_mask (at least the most confident one). T2T: overwrite committed positions of
    the block whose proposal differs, if p(v_i) > tau_edit. A block ends when it has no [MASK] left (without
    editing), or when a step after the last [MASK] edits nothing (or after ``max_post_steps`` such steps). An
    [EOS] in a finished block ends the answer. :func:`threshold_decode` and :func:`edit_decode` run the same
    loop on a batch; row by row they return the same answers."""
    P, G = len(prompt), gen_length
    x = torch.cat([prompt, torch.full((G,), mask_id, dtype=torch.long)])
    for start in range(P, P + G, block_length):
        block = torch.zeros(P + G, dtype=torch.bool)
        block[start:start + block_length] = True
        post_steps = 0
        while True:
            masked = block & (x == mask_id)
            post_steps += int(not masked.any())                    # a step after the block's last [MASK]
            logits = exclude_mask(model(x[None])[0].double(), mask_id)
            proposal = logits.argmax(-1)
            conf = torch.softmax(logits, -1).gather(-1, proposal[:, None])[:, 0]             # p(v_i)
            m2t = masked & (conf > tau_mask)
            if masked.any() and not m2t.any():                     # always commit at least the most confident
                m2t[torch.where(masked, conf, -math.inf).argmax()] = True
            t2t = torch.zeros_like(m2t)
            if tau_edit is not None:                               # a confident, different token: edit
                t2t = block & ~masked & (proposal != x) & (conf > tau_edit)
            x = torch.where(m2t | t2t, proposal, x)
            mask_left = bool((block & (x == mask_id)).any())
            if tau_edit is None and not mask_left:
                break
            if tau_edit is not None and ((not masked.any() and not t2t.any())
                                         or (not mask_left and post_steps + 1 > max_post_steps)):
                break
        if bool((x[P:start + block_length] == eos_id).any()):     # an [EOS]: the rest of the answer is [EOS]
            x[start + block_length:] = eos_id
            break
    return x[P:]


def edit_repairs(result: DecodeResult, reference: torch.Tensor) -> EditRepairs:
    """How many drafting errors T2T editing repaired, against a reference answer (LLaDA 2.1's
    "Draft Fast, Fix Later").

    - ``drafted_errors``: M2T commits (each position's first commit) whose token differs from the reference;
    - ``repaired``: T2T edits old -> new with old != reference and new == reference;
    - ``introduced``: T2T edits with old == reference and new != reference.
    Edits are counted one by one (a position edited wrong -> right -> wrong counts one of each; an edit
    wrong -> other wrong counts in neither). Only decoded positions count (blocks skipped after an EOS were
    never drafted). ``reference`` is the answer (B, gen_length) or the whole canvas (B, P + gen_length)."""
    if not isinstance(result, DecodeResult):
        raise ValueError("result must be a DecodeResult from threshold_decode or edit_decode")
    B, G, P = result.drafts.shape[0], result.drafts.shape[1], result.prompt_length
    if not isinstance(reference, torch.Tensor) or reference.ndim != 2 or reference.dtype != torch.long \
            or reference.shape[0] != B or reference.shape[1] not in (G, P + G):
        raise ValueError(f"reference must be a long tensor of shape ({B}, {G}) (the answer) or ({B}, {P + G}) "
                         f"(the canvas), got {getattr(reference, 'dtype', type(reference).__name__)} "
                         f"{tuple(getattr(reference, 'shape', ()))}")
    ref = reference[:, -G:].to(result.drafts.device)
    drafted = result.drafts >= 0                                # -1: never committed by M2T
    drafted_errors = int((drafted & (result.drafts != ref)).sum())
    e = result.edits
    if e.numel() == 0:
        return EditRepairs(drafted_errors, 0, 0)
    target = ref[e[:, 1], e[:, 2] - P]
    repaired = int(((e[:, 3] != target) & (e[:, 4] == target)).sum())
    introduced = int(((e[:, 3] == target) & (e[:, 4] != target)).sum())
    return EditRepairs(drafted_errors, repaired, introduced)


def playback_frames(result: DecodeResult, row: int = 0, reference=None) -> list[dict]:
    """One row's decode as frames for the "editing playback" demo (:func:`course_lib.demos.ch4.editing_playback_demo`).
    Needs a result decoded with ``record=True``.

    One dict per model call in which the row took part: ``tokens`` (the canvas *after* the step, P + G ids),
    ``m2t`` (positions unmasked at this step), ``t2t`` (``(position, old id, new id)`` edits), ``conf`` (the
    confidence of every position, NaN on the prompt), ``block`` and ``post`` (an edit-only step after the block
    was full). With ``reference`` (the right answer, G ids, or the whole canvas) frame 0 also holds
    ``reference`` = the answer part, so the demo can mark wrong tokens."""
    if not isinstance(result, DecodeResult) or result.steps is None:
        raise ValueError("playback_frames needs a DecodeResult decoded with record=True")
    B, G, P = result.x.shape[0], result.drafts.shape[1], result.prompt_length
    if isinstance(row, bool) or not isinstance(row, (int, np.integer)) or not 0 <= row < B:
        raise ValueError(f"row must be an integer in [0, {B - 1}], got {row!r}")
    frames = []
    for s in result.steps:
        if not bool(s.active[row]):
            continue
        frames.append({"tokens": s.x_after[row].tolist(),
                       "m2t": torch.nonzero(s.m2t[row]).flatten().tolist(),
                       "t2t": s.edits(row),
                       "conf": s.confidence[row].tolist(),
                       "block": int(s.block[row]), "post": bool(s.post[row])})
    if reference is not None:
        ref = torch.as_tensor(reference)
        if ref.ndim == 2 and ref.shape[0] == B:
            ref = ref[row]
        if ref.ndim != 1 or ref.shape[0] not in (G, P + G) or ref.is_floating_point():
            raise ValueError(f"reference must hold {G} (answer) or {P + G} (canvas) token ids, got shape "
                             f"{tuple(ref.shape)}")
        frames[0]["reference"] = ref[-G:].tolist()
    return frames


# =========================================================================== 5. Fast-dLLM Theorem 1
class ParallelDecodingCheck(NamedTuple):
    """Fast-dLLM's Theorem 1 evaluated on one joint distribution (see :func:`parallel_decoding_check`)."""
    n: int                       # number of positions decoded together
    V: int                       # values per position (|V|)
    marginals: torch.Tensor      # (n, V) float64: p_j(x_j)
    epsilon: float               # max_j (1 - max_x p_j(x)): the smallest eps with every marginal >= 1 - eps
    joint_argmax: tuple          # the most likely sequence under the joint
    product_argmax: tuple        # the sequence parallel (greedy, per-position) decoding commits
    same_argmax: bool
    tv: float                    # total variation  1/2 sum |p - q|,  q = product of marginals
    kl: float                    # KL(p || q) in nats
    condition: bool              # the theorem's premise: (n + 1) eps < 1 (see the docstring for "<")
    tv_bound: float              # (3n - 1) / 2 * eps
    kl_bound: float              # (n - 1) (H_b(eps) + eps ln(|V| - 1))
    tv_within_bound: bool        # tv <= tv_bound (relative tolerance 1e-9)
    kl_within_bound: bool        # kl <= kl_bound (relative tolerance 1e-9)


_MAX_JOINT = 2 ** 20


def _binary_entropy(eps: float) -> float:
    """H_b(eps) = -eps ln eps - (1 - eps) ln(1 - eps) in nats, with 0 ln 0 = 0."""
    e = torch.tensor([eps, 1 - eps], dtype=torch.float64)
    return float(-torch.special.xlogy(e, e).sum())


def parallel_decoding_check(joint) -> ParallelDecodingCheck:
    """Fast-dLLM Theorem 1, numerically (Wu et al. 2025, arXiv 2505.22618, Theorem 1).

    ``joint`` is p(x_1, ..., x_n) as a tensor of shape (V,) * n (non-negative, summing to 1). Parallel decoding
    commits every position from its own marginal p_j, i.e. it samples from the product q = prod_j p_j. The
    theorem: if every marginal puts more than 1 - eps on one value and (n + 1) eps <= 1, then

    1. argmax p = argmax q (greedy parallel decoding returns the joint's most likely sequence; tight);
    2. TV(p, q) < (3n - 1) / 2 * eps;
    3. KL(p || q) < (n - 1) (H_b(eps) + eps ln(|V| - 1)),  H_b the binary entropy in nats.

    Here ``epsilon`` is the *smallest* admissible eps, max_j (1 - max p_j), reached with equality by the worst
    marginal, whereas the theorem assumes strictly more than 1 - eps. Some eps' > epsilon with
    (n + 1) eps' <= 1 exists iff (n + 1) epsilon < 1, so ``condition`` is that strict inequality (at equality the
    joint can tie, see ``example_joint(kind="one_off")``); a tolerance of 1e-9 absorbs rounding. The bounds
    are evaluated at ``epsilon`` (their infimum over admissible eps), so they hold with "<=". The bounds
    themselves need no condition: TV <= n eps and KL = sum_j H(X_j) - H(X) <= (n - 1) max_j H(X_j) hold for any
    joint (Fano's bound on each H(X_j))."""
    p = torch.as_tensor(joint)
    if not p.is_floating_point() or p.ndim < 1:
        raise ValueError(f"joint must be a float tensor of shape (V,) * n, got {p.dtype} {tuple(p.shape)}")
    p = p.detach().to("cpu", torch.float64)
    n, V = p.ndim, p.shape[0]
    if V < 2 or any(s != V for s in p.shape):
        raise ValueError(f"joint must have shape (V,) * n with V >= 2 values at every position, got {tuple(p.shape)}")
    if p.numel() > _MAX_JOINT:
        raise ValueError(f"joint has {p.numel()} entries; keep V ** n <= {_MAX_JOINT}")
    if not bool(torch.isfinite(p).all()) or bool((p < 0).any()) or abs(float(p.sum()) - 1) > 1e-6:
        raise ValueError(f"joint must be a probability table: finite, >= 0, summing to 1 (sum = {float(p.sum())})")
    p = p / p.sum()
    marginals = torch.stack([p.sum(dim=tuple(d for d in range(n) if d != j)) for j in range(n)])   # (n, V)
    q = marginals[0]
    for j in range(1, n):                                  # q = p_1 (x) p_2 (x) ... (x) p_n
        q = q[..., None] * marginals[j]
    eps = float((1 - marginals.max(1).values).max().clamp(min=0.0))
    joint_argmax = tuple(int(i) for i in np.unravel_index(int(p.argmax()), p.shape))
    product_argmax = tuple(int(i) for i in marginals.argmax(1))
    tv = 0.5 * float((p - q).abs().sum())
    support = p > 0
    kl = float((p[support] * (p[support].log() - q[support].log())).sum())
    tv_bound = (3 * n - 1) / 2 * eps
    kl_bound = (n - 1) * (_binary_entropy(eps) + eps * math.log(V - 1))
    return ParallelDecodingCheck(n=n, V=V, marginals=marginals, epsilon=eps, joint_argmax=joint_argmax,
                                 product_argmax=product_argmax, same_argmax=joint_argmax == product_argmax,
                                 tv=tv, kl=kl, condition=(n + 1) * eps < 1 - 1e-9, tv_bound=tv_bound,
                                 kl_bound=kl_bound, tv_within_bound=tv <= tv_bound * (1 + 1e-9) + 1e-12,
                                 kl_within_bound=kl <= kl_bound * (1 + 1e-9) + 1e-12)


def example_joint(n: int, V: int, eps: float, seed: int = 0, kind: str = "correlated") -> torch.Tensor:
    """A small joint distribution (shape (V,) * n, float64) whose every marginal puts exactly 1 - eps on its
    most likely value, for sweeping eps through Fast-dLLM's Theorem 1.

    A random "right answer" x* is drawn from ``seed``; then

    - ``kind="correlated"``: p = (1 - eps) delta_{x*} + eps R, with R a random (uniform Dirichlet) distribution over the
      sequences that differ from x* at *every* position: the errors are perfectly correlated (when one position
      is wrong, all are), so the product of marginals misjudges every mixed sequence. With V = 2 the KL bound
      is reached exactly (KL = (n - 1) H_b(eps)): the theorem's "<" is a "<=" at the smallest eps.
      Needs 0 <= eps < 1/2 (then x*_j stays each marginal's maximum);
    - ``kind="one_off"``: p(x*) = 1 - n eps, and for each position j a mass eps on the sequence equal to x*
      except at j (a random wrong value). The product's argmax is always x*, but the joint's argmax is x*
      only while 1 - n eps > eps, i.e. (n + 1) eps < 1: the construction that shows the theorem's condition
      is tight. Needs 0 <= eps < 1/2 and n eps <= 1."""
    n, V = check_int(n, "n", 1), check_int(V, "V", 2)
    seed = check_int(seed, "seed", 0)
    if V ** n > _MAX_JOINT:
        raise ValueError(f"V ** n = {V ** n} entries is too large; keep it <= {_MAX_JOINT}")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not (0 <= eps < 0.5):
        raise ValueError(f"eps must lie in [0, 1/2), got {eps!r}")
    if kind not in ("correlated", "one_off"):
        raise ValueError(f"kind must be 'correlated' or 'one_off', got {kind!r}")
    gen = torch.Generator().manual_seed(seed)
    star = torch.randint(V, (n,), generator=gen)
    p = torch.zeros((V,) * n, dtype=torch.float64)
    if kind == "correlated":
        # every sequence y with y_j != x*_j for all j: offset o_j in 1..V-1, y_j = (x*_j + o_j) mod V
        offsets = torch.cartesian_prod(*[torch.arange(1, V)] * n).reshape(-1, n)
        weights = -torch.log1p(-torch.rand(len(offsets), generator=gen, dtype=torch.float64))   # Exp(1) draws
        weights = weights / weights.sum()                  # normalised: a uniform (Dirichlet(1)) distribution
        others = (star[None] + offsets) % V
        p[tuple(others.T)] = eps * weights
        p[tuple(star)] += 1 - eps
    else:
        if n * eps > 1:
            raise ValueError(f"kind='one_off' needs n * eps <= 1, got {n} * {eps} = {n * eps}")
        p[tuple(star)] = 1 - n * eps
        for j in range(n):
            y = star.clone()
            y[j] = (star[j] + torch.randint(1, V, (1,), generator=gen)) % V
            p[tuple(y)] += eps
    return p

