"""Mixture of experts (MoE): routers, the MoE feed-forward layer, load balancing and routing statistics.

Introduced in chapter 4, section 1 (LLaDA 2.0 is a mixture of experts). A MoE block replaces the one
dense SwiGLU of a Transformer block by ``n_experts`` smaller SwiGLU "experts" and a router that sends
each token to ``k`` of them, so the parameters grow with ``n_experts`` while the compute per token
grows only with ``k``. Two routers:

- ``"softmax"`` (Switch Transformer, Fedus et al. 2022; GShard, Lepikhin et al. 2021):
  ``p = softmax(W_r x)``, the ``k`` most probable experts, weights ``p_top / sum(p_top)`` (renormalised
  over the k chosen, as GShard's top-2 and Mixtral do; Switch's top-1 keeps ``p`` unnormalised), times
  ``routed_scaling``. Balanced by the Switch auxiliary loss (:func:`switch_aux_loss`)
  ``aux = E * sum_i f_i P_i``.
- ``"sigmoid"`` (LLaDA 2.0 = Ling 2.0, after DeepSeek-V3; REFERENCE.md section 4, "MoE configs"):
  ``s = sigmoid(W_r x)`` in fp32; experts are *chosen* by ``s + b`` (``b = expert_bias``, a buffer, not
  a parameter), group-limited (:func:`group_limited_topk`), but *weighted* by the unbiased ``s``
  renormalised over the k chosen, times ``routed_scaling`` (2.5 in LLaDA 2.0). Balanced without a loss:
  after each optimiser step ``b_i += gamma * sign(mean load - load_i)`` (:func:`bias_update`;
  DeepSeek-V3, Liu et al. 2024, section 2.1.2). ``n_shared_experts`` always-on experts are added.

:class:`MoEFeedForward` is the layer (built by :class:`course_lib.nn.Block` when
``TransformerConfig.n_experts > 0``); it records the last routing for plots. The statistics at the end
(:func:`load_fractions`, :func:`class_expert_counts`, :func:`word_class_map`) feed the chapter's figures,
and ``python -m course_lib.moe --write`` writes ``data/moe/results.json`` from the shipped MoE models.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

ROUTERS = ("softmax", "sigmoid")
RESULTS = Path(__file__).resolve().parent.parent / "data" / "moe" / "results.json"
MOE_RECIPES = ("moe_dense", "moe_switch", "moe_switch_nobal", "moe_llada2")


class Routing(NamedTuple):
    """A router's decision for T tokens: ``experts`` (T, k) chosen ids (best first), ``weights`` (T, k)
    combine weights, ``probs`` (T, E) the router's probabilities (softmax) or unbiased scores (sigmoid)."""
    experts: torch.Tensor
    weights: torch.Tensor
    probs: torch.Tensor


class RoutingRecord(NamedTuple):
    """What :class:`MoEFeedForward` keeps of its last forward pass (detached): ``experts`` (T, k),
    ``weights`` (T, k) and ``load`` (E,) token-assignments per expert, T = batch * length."""
    experts: torch.Tensor
    weights: torch.Tensor
    load: torch.Tensor


# ----------------------------------------------------------------------------------------------
# Routers (pure functions on router logits)
# ----------------------------------------------------------------------------------------------

def _check_logits(logits: torch.Tensor, k: int) -> None:
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[1] < 1:
        raise ValueError(f"router logits must be a (tokens, n_experts) tensor, got shape "
                         f"{tuple(getattr(logits, 'shape', ()))}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"top-k must be a positive integer, got {k!r}")
    if k > logits.shape[1]:
        raise ValueError(f"top-k ({k}) cannot exceed the number of experts ({logits.shape[1]})")


def softmax_topk_routing(logits: torch.Tensor, k: int, routed_scaling: float = 1.0) -> Routing:
    """Switch/GShard router: ``p = softmax(logits)`` (fp32), the ``k`` largest ``p``, weights renormalised over
    the k chosen and multiplied by ``routed_scaling``.

    Introduced in chapter 4, section 1. Switch Transformer (Fedus et al. 2022, section 2.1) routes top-1
    with weight ``p``; GShard (Lepikhin et al. 2021) top-2 with ``p / (p_1 + p_2)``; we renormalise for
    every k (so top-1 gets weight 1 and learns its router only through the balancing loss, as a pure
    top-1 argmax would)."""
    _check_logits(logits, k)
    probs = torch.softmax(logits.float(), dim=-1)
    top, experts = probs.topk(k, dim=-1)
    weights = top / top.sum(-1, keepdim=True) * routed_scaling
    return Routing(experts, weights, probs)


def group_limited_topk(scores: torch.Tensor, k: int, n_group: int = 1, topk_group: int = 1) -> torch.Tensor:
    """(T, k) ids of the experts chosen by group-limited top-k on ``scores`` (T, E).

    Introduced in chapter 4, section 1 (LLaDA 2.0 / DeepSeek-V3 node-limited routing; REFERENCE.md
    section 4: ``n_group=8``, ``topk_group=4``). The E experts form ``n_group`` consecutive groups; a
    group's score is the sum of its two best expert scores (its one score if a group has a single
    expert); only the ``topk_group`` best groups are kept, and the k best experts among them are
    chosen. ``n_group = topk_group = 1`` is plain top-k."""
    _check_logits(scores, k)
    T, E = scores.shape
    for name, v in (("n_group", n_group), ("topk_group", topk_group)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if E % n_group:
        raise ValueError(f"the number of experts ({E}) must be divisible by n_group ({n_group})")
    if topk_group > n_group:
        raise ValueError(f"topk_group ({topk_group}) cannot exceed n_group ({n_group})")
    per_group = E // n_group
    if k > topk_group * per_group:
        raise ValueError(f"top-k ({k}) exceeds the {topk_group * per_group} experts of the {topk_group} groups kept")
    if n_group == 1:
        return scores.topk(k, dim=-1).indices
    grouped = scores.view(T, n_group, per_group)
    group_score = grouped.topk(min(2, per_group), dim=-1).values.sum(-1)              # (T, n_group)
    kept = group_score.topk(topk_group, dim=-1).indices                                # (T, topk_group)
    group_mask = torch.zeros(T, n_group, dtype=torch.bool, device=scores.device).scatter_(1, kept, True)
    expert_mask = group_mask.repeat_interleave(per_group, dim=1)                       # (T, E)
    return scores.masked_fill(~expert_mask, -math.inf).topk(k, dim=-1).indices


def sigmoid_routing(logits: torch.Tensor, k: int, expert_bias: torch.Tensor | None = None, n_group: int = 1,
                    topk_group: int = 1, routed_scaling: float = 1.0) -> Routing:
    """LLaDA 2.0 router: ``s = sigmoid(logits)`` in fp32; choose by :func:`group_limited_topk` on
    ``s + expert_bias``; weights = the chosen *unbiased* ``s`` renormalised to sum 1, times ``routed_scaling``.

    Introduced in chapter 4, section 1 (REFERENCE.md section 4, "MoE configs"; DeepSeek-V3 section 2.1.1:
    the bias only decides *which* experts run, never *how much* they count)."""
    _check_logits(logits, k)
    scores = torch.sigmoid(logits.float())
    choice = scores
    if expert_bias is not None:
        if expert_bias.shape != (scores.shape[1],):
            raise ValueError(f"expert_bias must have shape ({scores.shape[1]},), got {tuple(expert_bias.shape)}")
        choice = scores + expert_bias.float()
    experts = group_limited_topk(choice, k, n_group, topk_group)
    top = scores.gather(-1, experts)
    weights = top / top.sum(-1, keepdim=True).clamp_min(torch.finfo(top.dtype).tiny) * routed_scaling
    return Routing(experts, weights, scores)


# ----------------------------------------------------------------------------------------------
# Load balancing
# ----------------------------------------------------------------------------------------------

def expert_load(experts: torch.Tensor, n_experts: int) -> torch.Tensor:
    """(E,) number of token-assignments of each expert in ``experts`` (T, k). Introduced in chapter 4, section 1."""
    if experts.numel() and (int(experts.min()) < 0 or int(experts.max()) >= n_experts):
        raise ValueError(f"expert ids must lie in [0, {n_experts})")
    return torch.bincount(experts.reshape(-1), minlength=n_experts)


def switch_aux_loss(probs: torch.Tensor, experts: torch.Tensor, n_experts: int | None = None) -> torch.Tensor:
    """Switch Transformer load-balancing loss ``E * sum_i f_i * P_i`` (Fedus et al. 2022, eq. 4-6).

    Introduced in chapter 4, section 1. ``f_i``: the fraction of the T*k token-assignments in ``experts``
    (T, k) that go to expert i (no gradient: counting is not differentiable); ``P_i``: the mean over
    tokens of ``probs`` (T, E), rows summing to 1 (the gradient flows through P). Its minimum under
    uniform routing is 1; sending everything to one expert that also gets all the probability gives E."""
    if probs.ndim != 2 or experts.ndim != 2 or probs.shape[0] != experts.shape[0]:
        raise ValueError(f"probs (T, E) and experts (T, k) must share T, got {tuple(probs.shape)} and "
                         f"{tuple(experts.shape)}")
    E = probs.shape[1] if n_experts is None else n_experts
    if probs.shape[1] != E:
        raise ValueError(f"probs has {probs.shape[1]} experts, expected {E}")
    f = expert_load(experts, E).to(probs.dtype) / experts.numel()
    return E * (f * probs.mean(0)).sum()


def bias_update(expert_bias: torch.Tensor, load: torch.Tensor, rate: float) -> torch.Tensor:
    """Aux-loss-free balancing (DeepSeek-V3, section 2.1.2): ``b_i + rate * sign(mean(load) - load_i)``.

    Introduced in chapter 4, section 1. An overloaded expert's bias goes down, so it is chosen less
    often; an underloaded one's goes up. Returns the new bias (``expert_bias`` is not changed)."""
    if expert_bias.shape != load.shape or expert_bias.ndim != 1:
        raise ValueError(f"expert_bias and load must both have shape (E,), got {tuple(expert_bias.shape)} "
                         f"and {tuple(load.shape)}")
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not (math.isfinite(rate) and rate >= 0):
        raise ValueError(f"rate must be a finite number >= 0, got {rate!r}")
    load = load.to(expert_bias.dtype)
    return expert_bias + rate * torch.sign(load.mean() - load)


# ----------------------------------------------------------------------------------------------
# The layer
# ----------------------------------------------------------------------------------------------

class MoEFeedForward(nn.Module):
    """Mixture-of-experts feed-forward: ``y = sum_{e in top-k(x)} w_e(x) * expert_e(x) + shared(x)``.

    Introduced in chapter 4, section 1. Each expert is a SwiGLU (:class:`course_lib.nn.SwiGLU`) of hidden
    size ``config.d_expert``; the ``n_shared_experts`` shared experts are one SwiGLU of hidden size
    ``n_shared_experts * d_expert`` (the same function as that many summed experts, as DeepSeek builds it).
    The router is ``config.router`` (see the module docstring); ``expert_bias`` exists (a persistent
    buffer, saved with the model) for the sigmoid router only.

    After each forward pass: ``aux_loss`` holds :func:`switch_aux_loss` (for the sigmoid router with the
    scores normalised per token, as DeepSeek-V3's sequence-wise loss does), ``last_routing`` a
    :class:`RoutingRecord`. In training mode the loads are also summed for :meth:`update_bias`.
    """

    def __init__(self, config):
        super().__init__()
        from .nn import SwiGLU
        c = config
        if c.n_experts < 1:
            raise ValueError(f"MoEFeedForward needs n_experts >= 1, got {c.n_experts}")
        self.n_experts, self.top_k, self.kind = c.n_experts, c.moe_top_k, c.router
        self.n_group, self.topk_group, self.routed_scaling = c.n_group, c.topk_group, c.routed_scaling
        self.bias_update_rate = c.bias_update_rate
        self.router = nn.Linear(c.d_model, c.n_experts, bias=False)
        self.experts = nn.ModuleList(SwiGLU(dataclasses.replace(c, d_ff=c.d_expert)) for _ in range(c.n_experts))
        self.shared = (SwiGLU(dataclasses.replace(c, d_ff=c.n_shared_experts * c.d_expert))
                       if c.n_shared_experts else None)
        if self.kind == "sigmoid":
            self.register_buffer("expert_bias", torch.zeros(c.n_experts))
        else:
            self.expert_bias = None
        self.register_buffer("load_since_update", torch.zeros(c.n_experts), persistent=False)
        self.aux_loss: torch.Tensor | None = None
        self.last_routing: RoutingRecord | None = None

    def route(self, x: torch.Tensor) -> Routing:
        """The router's decision for tokens ``x`` (T, d_model); logits in fp32."""
        logits = F.linear(x.float(), self.router.weight.float())
        if self.kind == "softmax":
            return softmax_topk_routing(logits, self.top_k, self.routed_scaling)
        return sigmoid_routing(logits, self.top_k, self.expert_bias, self.n_group, self.topk_group,
                               self.routed_scaling)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(-1, shape[-1])                                            # (T, D)
        r = self.route(flat)
        probs = r.probs if self.kind == "softmax" else r.probs / r.probs.sum(-1, keepdim=True)
        self.aux_loss = switch_aux_loss(probs, r.experts, self.n_experts)
        load = expert_load(r.experts, self.n_experts)
        if self.training:
            self.load_since_update += load.to(self.load_since_update.dtype)
        self.last_routing = RoutingRecord(r.experts.detach(), r.weights.detach(), load)
        out = torch.zeros_like(flat)
        weights = r.weights.to(flat.dtype)
        for e, expert in enumerate(self.experts):       # one batched matmul per expert over its tokens
            token, slot = (r.experts == e).nonzero(as_tuple=True)
            if token.numel():
                out.index_add_(0, token, expert(flat.index_select(0, token)) * weights[token, slot, None])
        if self.shared is not None:
            out = out + self.shared(flat)
        return out.view(shape)

    @torch.no_grad()
    def update_bias(self) -> None:
        """Apply :func:`bias_update` with the loads summed since the last call, then reset them. Nothing
        happens for the softmax router, for ``bias_update_rate = 0`` or when no training forward ran."""
        if self.expert_bias is not None and self.bias_update_rate > 0 and self.load_since_update.sum() > 0:
            self.expert_bias.copy_(bias_update(self.expert_bias, self.load_since_update, self.bias_update_rate))
        self.load_since_update.zero_()


def sync_expert_bias(dst, src) -> None:
    """Copy every MoE layer's ``expert_bias`` from model ``src`` to model ``dst`` (same config); used to keep
    an EMA copy routing with the live model's bias. Introduced in chapter 4, section 1."""
    pairs = list(zip(dst.moe_layers(), src.moe_layers()))
    if len(pairs) != len(src.moe_layers()) or len(pairs) != len(dst.moe_layers()):
        raise ValueError("the two models have different MoE layers")
    with torch.no_grad():
        for (_, a), (_, b) in pairs:
            if b.expert_bias is not None:
                a.expert_bias.copy_(b.expert_bias)


# ----------------------------------------------------------------------------------------------
# Routing statistics for the chapter
# ----------------------------------------------------------------------------------------------

def word_class_map(tokenizer=None) -> tuple[list[str], torch.Tensor]:
    """``(classes, class_of)``: the word classes of the course language and a (vocab_size,) long tensor
    mapping each token id to its class index. Introduced in chapter 4, section 1.

    Classes come from :mod:`course_lib.language`'s word lists: nouns (singular and plural), names, verbs
    (intransitive and transitive, every form), adjectives, adverbs, prepositions, determiners,
    conjunctions, wh-words (where/when/why/how/who/what/which; "which" also opens relative clauses),
    auxiliaries (does/do/is/are/be), other function words (that/please), punctuation, then the
    specials [EOS], [PAD] and [MASK]. Every token of ``tokenizer`` (default
    :meth:`Tokenizer.for_language`) must fall in exactly one class."""
    from . import language
    from .tokenizer import EOS, MASK, PAD, Tokenizer
    tok = tokenizer or Tokenizer.for_language()
    groups = {
        "noun": [w for pair in language.NOUNS for w in pair],
        "name": list(language.NAMES),
        "verb": [w for pair in language.INTRANSITIVE + language.TRANSITIVE for w in pair],
        "adjective": list(language.ADJECTIVES),
        "adverb": list(language.ADVERBS),
        "preposition": list(language.PREPOSITIONS),
        "determiner": list(language.DET_SG) + list(language.DET_PL),
        "conjunction": list(language.CONJUNCTIONS),
        "wh-word": list(language.WH_ADVERBS) + ["who", "what", "which"],
        "auxiliary": ["does", "do", "is", "are", "be"],
        "other function word": ["that", "please"],
        "punctuation": [".", "?", ","],
        "[EOS]": [EOS], "[PAD]": [PAD], "[MASK]": [MASK],
    }
    classes = list(groups)
    owner: dict[str, str] = {}
    for name, words in groups.items():
        for w in words:
            if owner.setdefault(w, name) != name:
                raise ValueError(f"word {w!r} is in two classes: {owner[w]!r} and {name!r}")
    missing = [t for t in tok.itos if t not in owner]
    if missing:
        raise ValueError(f"tokens without a word class: {missing[:10]} (is this the course language's tokenizer?)")
    class_of = torch.tensor([classes.index(owner[t]) for t in tok.itos], dtype=torch.long)
    return classes, class_of


@torch.no_grad()
def collect_routing(model, ids: torch.Tensor, batch_size: int = 256, show_progress: bool = False) -> list:
    """For each MoE block of ``model``, the (N * L, k) experts chosen for every position of ``ids`` (N, L).

    Introduced in chapter 4, section 1. Runs the model in eval mode (its bias is not touched) in batches;
    row ``n * L + j`` belongs to position j of sentence n."""
    from .runtime import progress
    layers = model.moe_layers()
    if not layers:
        raise ValueError("the model has no mixture-of-experts layers (config.n_experts = 0)")
    if not isinstance(ids, torch.Tensor) or ids.dtype != torch.long or ids.ndim != 2 or ids.shape[0] < 1:
        raise ValueError(f"ids must be an (N, L) long tensor, got {getattr(ids, 'dtype', type(ids))} "
                         f"{tuple(getattr(ids, 'shape', ()))}")
    if int(ids.min()) < 0 or int(ids.max()) >= model.config.vocab_size:
        raise ValueError(f"token ids must lie in [0, {model.config.vocab_size})")
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    out = [[] for _ in layers]
    starts = range(0, len(ids), batch_size)
    for s in (progress(starts, desc="routing") if show_progress else starts):
        model(ids[s:s + batch_size].to(dev))
        for j, (_, m) in enumerate(layers):
            out[j].append(m.last_routing.experts.cpu())
    model.train(was)
    return [torch.cat(o) for o in out]


def load_fractions(model, ids: torch.Tensor, keep: torch.Tensor | None = None, batch_size: int = 256) -> torch.Tensor:
    """(n_moe_layers, E): the fraction of token-assignments each expert receives on ``ids`` (rows sum to 1;
    perfect balance is 1/E everywhere). Introduced in chapter 4, section 1.

    ``keep``: optional (N, L) bool, the positions to count (e.g. ``x0 != PAD`` to leave out the padding of
    the canvas, which a model still routes); default all."""
    layers = model.moe_layers()
    routing = collect_routing(model, ids, batch_size)
    if keep is not None:
        if not isinstance(keep, torch.Tensor) or keep.dtype != torch.bool or keep.shape != ids.shape:
            raise ValueError(f"keep must be a bool tensor of shape {tuple(ids.shape)}")
        if not keep.any():
            raise ValueError("keep selects no position")
        routing = [r[keep.reshape(-1).cpu()] for r in routing]
    E = layers[0][1].n_experts
    return torch.stack([expert_load(r, E).double() / r.numel() for r in routing])


def max_min_ratio(fractions: torch.Tensor) -> list:
    """Per layer, the busiest expert's load over the idlest one's (1 = perfect balance; inf if an expert
    is never chosen). Introduced in chapter 4, section 1."""
    return [float(row.max() / row.min()) if row.min() > 0 else math.inf for row in fractions]


def class_expert_counts(model, ids: torch.Tensor, class_of: torch.Tensor, n_classes: int | None = None,
                        batch_size: int = 256) -> torch.Tensor:
    """(n_moe_layers, C, E) counts: how often a position whose *input* token has class c is sent to expert e
    (each position counts k times, once per chosen expert). Introduced in chapter 4, section 1.

    ``class_of``: (vocab_size,) long tensor from :func:`word_class_map`; normalise each row to read
    "where does this word class go"."""
    V = model.config.vocab_size
    if not isinstance(class_of, torch.Tensor) or class_of.dtype != torch.long or class_of.shape != (V,):
        raise ValueError(f"class_of must be a ({model.config.vocab_size},) long tensor")
    C = int(class_of.max()) + 1 if n_classes is None else n_classes
    if int(class_of.min()) < 0 or int(class_of.max()) >= C:
        raise ValueError(f"class indices must lie in [0, {C})")
    E = model.moe_layers()[0][1].n_experts if model.moe_layers() else 0
    routing = collect_routing(model, ids, batch_size)
    cls = class_of[ids.reshape(-1)]                                                  # (N * L,)
    out = []
    for r in routing:
        pair = cls[:, None] * E + r                                                  # (N * L, k)
        out.append(torch.bincount(pair.reshape(-1), minlength=C * E).view(C, E))
    return torch.stack(out)


# ----------------------------------------------------------------------------------------------
# The chapter's numbers: data/moe/results.json
# ----------------------------------------------------------------------------------------------

def mdlm_inputs(ids: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """The validation canvases as the MDLM denoiser sees them in training: each sentence masked at its own
    time t (one per stratum of [0, 1], linear schedule), seeded. Introduced in chapter 4, section 1."""
    from . import masked
    from .tokenizer import Tokenizer
    g = torch.Generator().manual_seed(seed)
    t = masked.sample_times(len(ids), g)
    return masked.forward_mask(ids, t, "linear", Tokenizer.mask_id, g)[0]


@torch.no_grad()
def nelbo_per_sentence(model, ids: torch.Tensor, samples: int = 8, seed: int = 0) -> torch.Tensor:
    """(N, samples) MDLM NELBO terms in nats per sentence: the draws of :func:`course_lib.textlm.mdlm_nelbo`
    (same seed, same times and masks, linear schedule) kept per sentence, so that two models evaluated with the
    same seed can be compared sentence by sentence (a paired difference). Introduced in chapter 4, section 1."""
    from .textlm import mdlm_nelbo_terms
    return mdlm_nelbo_terms(model, ids, "linear", samples, seed)


def paired_difference(a: torch.Tensor, b: torch.Tensor, tokens: torch.Tensor) -> tuple[float, float]:
    """``(d, se)``: the difference of two per-token bounds ``sum(a) / sum(tokens) - sum(b) / sum(tokens)`` from
    per-sentence values ``a``, ``b`` (N,), and its standard error over sentences (delta method, as
    :func:`course_lib.language.entropy_per_token`). Introduced in chapter 4, section 1."""
    if a.shape != b.shape or a.shape != tokens.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError("a, b and tokens must be (N,) tensors with N >= 2")
    d, n = (a - b).double(), tokens.double()
    mean = float(d.sum() / n.sum())
    return mean, float((d - mean * n).std() * math.sqrt(len(d)) / n.sum())


def chapter_results(names=MOE_RECIPES, n_sentences: int = 2000, samples: int = 8) -> dict:
    """Metrics of the shipped MoE recipes for chapter 4, section 1: validation NELBO (on ``n_sentences``
    validation sentences, ``samples`` Monte-Carlo draws, the same masks for every model) and its paired
    difference to the first model (``moe_dense``), the recipe's own 500-sentence value from the manifest, per-layer load fractions and max/min load ratios, and the
    class-by-expert count matrices, all on :func:`mdlm_inputs` of the validation sentences."""
    from .checkpoints import read_manifest
    from .textlm import PAD_ID, counted_tokens, language_ids, load_text_model, nll_summary
    valid = language_ids("valid")[:n_sentences]
    inputs = mdlm_inputs(valid)
    classes, class_of = word_class_map()
    manifest = read_manifest()
    out = {"inputs": f"first {len(valid)} validation sentences, each masked at its own t (stratified, linear "
                     "schedule, seed 0): the denoiser's training distribution; a position's class is its input "
                     "token's ([MASK] for masked positions). load_fractions count every canvas position (77% are "
                     "[PAD] in the clean text), load_fractions_words only positions whose clean token is not [PAD]; "
                     "a max/min load ratio of null means some expert was never chosen (infinite ratio)",
           "nelbo_samples": samples, "classes": classes, "models": {}}
    tokens, first = counted_tokens(valid), None
    for name in names:
        model = load_text_model(name)
        per = nelbo_per_sentence(model, valid, samples, seed=0)          # = textlm.mdlm_nelbo's draws
        res = nll_summary(per, tokens)
        first = per.mean(1) if first is None else first
        diff, diff_se = paired_difference(per.mean(1), first, tokens)
        entry = {"valid_nelbo": round(res.nll, 4), "valid_nelbo_mc_se": round(res.se, 4),
                 f"valid_nelbo_minus_{names[0]}": round(diff, 4),
                 f"valid_nelbo_minus_{names[0]}_se": round(diff_se, 4),
                 "valid_nelbo_500_manifest": manifest[name]["metrics"].get("valid_nll_500"),
                 "train_seconds": manifest[name]["train_seconds"], "n_params": model.n_params(),
                 "config": {k: v for k, v in model.config.to_dict().items()
                            if k in ("d_ff", "n_experts", "moe_top_k", "n_shared_experts", "d_expert", "router",
                                     "n_dense_layers", "n_group", "topk_group", "routed_scaling",
                                     "bias_update_rate", "aux_loss_coef")}}
        if model.moe_layers():
            entry["moe_layers"] = [i for i, _ in model.moe_layers()]
            for suffix, keep in (("", None), ("_words", valid != PAD_ID)):       # all positions; words + [EOS]
                frac = load_fractions(model, inputs, keep)
                entry["load_fractions" + suffix] = [[round(float(v), 5) for v in row] for row in frac]
                entry["max_min_load_ratio" + suffix] = [round(v, 3) if math.isfinite(v) else None   # None: an
                                                        for v in max_min_ratio(frac)]               # idle expert
            entry["class_expert_counts"] = class_expert_counts(model, inputs, class_of, len(classes)).tolist()
            if model.moe_layers()[0][1].expert_bias is not None:
                entry["expert_bias"] = [[round(float(v), 4) for v in m.expert_bias] for _, m in model.moe_layers()]
        out["models"][name] = entry
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m course_lib.moe", description="chapter 4 MoE results")
    p.add_argument("--write", action="store_true", help=f"write {RESULTS}")
    a = p.parse_args(argv)
    torch.set_num_threads(1)            # as the recipes: the same numbers on any machine
    res = chapter_results()
    for name, e in res["models"].items():
        print(f"{name:18s} NELBO {e['valid_nelbo']:.4f} +- {e['valid_nelbo_mc_se']:.4f} (vs dense "
              f"{e['valid_nelbo_minus_moe_dense']:+.4f} +- {e['valid_nelbo_minus_moe_dense_se']:.4f})  "
              f"max/min load {e.get('max_min_load_ratio')} (words only {e.get('max_min_load_ratio_words')})")
    if a.write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(res, indent=1) + "\n")
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
