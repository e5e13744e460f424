"""Mixture of experts (MoE): routers, the MoE feed-forward layer and load balancing.

LLaDA 2.0 is a mixture of experts. A MoE block replaces the one dense SwiGLU of a Transformer block by
``n_experts`` smaller SwiGLU "experts" and a router that sends each token to ``k`` of them, so the parameters
grow with ``n_experts`` while the compute per token grows only with ``k``. Two routers:

- ``"softmax"`` (Switch Transformer, Fedus et al. 2022; GShard, Lepikhin et al. 2021):
  ``p = softmax(W_r x)``, the ``k`` most probable experts, weights ``p_top / sum(p_top)`` (renormalised
  over the k chosen, as GShard's top-2 and Mixtral do; Switch's top-1 keeps ``p`` unnormalised), times
  ``routed_scaling``. Balanced by the Switch auxiliary loss (:func:`switch_aux_loss`)
  ``aux = E * sum_i f_i P_i``.
- ``"sigmoid"`` (LLaDA 2.0 = Ling 2.0, after DeepSeek-V3; arXiv 2512.15745 and the inclusionAI/dFactory model
  configs):
  ``s = sigmoid(W_r x)`` in fp32; experts are *chosen* by ``s + b`` (``b = expert_bias``, a buffer, not
  a parameter), group-limited (:func:`group_limited_topk`), but *weighted* by the unbiased ``s``
  renormalised over the k chosen, times ``routed_scaling`` (2.5 in LLaDA 2.0). Balanced without a loss:
  after each optimiser step ``b_i += gamma * sign(mean load - load_i)`` (:func:`bias_update`;
  DeepSeek-V3, Liu et al. 2024, section 2.1.2). ``n_shared_experts`` always-on experts are added.

:class:`MoEFeedForward` is the layer (built by :class:`course_lib.nn.Block` when
``TransformerConfig.n_experts > 0``); it records the last routing for plots. The routing statistics of the
chapter (load per expert, per word class) are in :mod:`course_lib.moe_study`.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

ROUTERS = ("softmax", "sigmoid")


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

    Switch Transformer (Fedus et al. 2022, section 2.1) routes top-1
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

    LLaDA 2.0 / DeepSeek-V3 node-limited routing (the dFactory model configs: ``n_group=8``,
    ``topk_group=4``). The E experts form ``n_group`` consecutive groups; a
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

    As in the dFactory model configs and DeepSeek-V3 (arXiv 2412.19437, section 2.1.1): the bias only decides
    *which* experts run, never *how much* they count."""
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
    """(E,) number of token-assignments of each expert in ``experts`` (T, k)."""
    if experts.numel() and (int(experts.min()) < 0 or int(experts.max()) >= n_experts):
        raise ValueError(f"expert ids must lie in [0, {n_experts})")
    return torch.bincount(experts.reshape(-1), minlength=n_experts)


def switch_aux_loss(probs: torch.Tensor, experts: torch.Tensor, n_experts: int | None = None) -> torch.Tensor:
    """Switch Transformer load-balancing loss ``E * sum_i f_i * P_i`` (Fedus et al. 2022, eq. 4-6).

    ``f_i``: the fraction of the T*k token-assignments in ``experts``
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

    An overloaded expert's bias goes down, so it is chosen less
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

    Each expert is ``expert(config with d_ff = d_expert)``, a SwiGLU in the
    course Transformer (:class:`course_lib.nn.Block` passes :class:`course_lib.nn.SwiGLU`); the
    ``n_shared_experts`` shared experts are one such expert of hidden size ``n_shared_experts * d_expert`` (the
    same function as that many summed experts, as DeepSeek builds it).
    The router is ``config.router`` (see the module docstring); ``expert_bias`` exists (a persistent
    buffer, saved with the model) for the sigmoid router only.

    After each forward pass: ``aux_loss`` holds :func:`switch_aux_loss` (for the sigmoid router with the
    scores normalised per token, as DeepSeek-V3's sequence-wise loss does), ``last_routing`` a
    :class:`RoutingRecord`. In training mode the loads are also summed for :meth:`update_bias`.
    """

    def __init__(self, config, expert: Callable[[object], nn.Module]):
        super().__init__()
        c = config
        if c.n_experts < 1:
            raise ValueError(f"MoEFeedForward needs n_experts >= 1, got {c.n_experts}")
        self.n_experts, self.top_k, self.kind = c.n_experts, c.moe_top_k, c.router
        self.n_group, self.topk_group, self.routed_scaling = c.n_group, c.topk_group, c.routed_scaling
        self.bias_update_rate = c.bias_update_rate
        self.router = nn.Linear(c.d_model, c.n_experts, bias=False)
        self.experts = nn.ModuleList(expert(dataclasses.replace(c, d_ff=c.d_expert)) for _ in range(c.n_experts))
        self.shared = (expert(dataclasses.replace(c, d_ff=c.n_shared_experts * c.d_expert))
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
