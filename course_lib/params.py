"""A parameter calculator for dense and mixture-of-experts Transformers: total and *active* parameters.

What the names of LLaDA 2.0's models mean ("16B-A1B"). Given the
shape of a model (:class:`ModelShape`: layers, hidden size, heads and key/value heads, head size, dense
feed-forward size and how many layers are dense, experts, top-k, shared experts, expert size, vocabulary,
tied embeddings or not, router, norms), :func:`count_params` returns the number of parameters by component,
in total and *active per token*. A token runs through every component except the routed experts, of which
it uses ``top_k`` out of ``n_experts``:

    active = total - routed + routed * top_k / n_experts

(embeddings and LM head are counted in both, as the published "A1B" / "6.1B activated" figures do; a token
reads one row of the embedding, but the LM head is a full matrix product).

Conventions: SwiGLU feed-forward = 3 matrices (gate, up, down) of ``hidden x ffn``; no biases anywhere;
attention = W_q (hidden x heads*head_dim), W_k and W_v (hidden x kv_heads*head_dim each, grouped-query
attention), W_o (heads*head_dim x hidden); RMSNorm = one weight vector (two per layer, one final, and with
``qk_norm`` one of size head_dim for queries and one for keys per layer); router = ``n_experts x hidden``
(LLaDA 2.0's ``expert_bias`` is a buffer, not counted). :data:`LLADA2_MINI` and :data:`LLADA2_FLASH` are
the two published configurations (inclusionAI/dFactory ``configs/model_configs/llada2_{mini,flash}/config.json``;
LLaDA 2.0, arXiv 2512.15745), and :func:`from_transformer_config` maps the course's
:class:`course_lib.nn.TransformerConfig` to a shape, so the calculator can be checked against
``Transformer(config).n_params()``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple

from .nn import TransformerConfig

COMPONENTS = ("embedding", "lm_head", "attention", "dense_ffn", "routed_experts", "shared_experts", "router",
              "norms", "time_embedding")


@dataclass(frozen=True)
class ModelShape:
    """The shape of a dense or MoE Transformer, as far as parameter counts go.

    ``n_dense_layers`` layers have a dense SwiGLU of hidden size ``dense_ffn``; the other
    ``n_layers - n_dense_layers`` have ``n_experts`` routed experts of hidden size ``expert_ffn``
    (``top_k`` per token), ``n_shared_experts`` shared experts of the same size, and a router.
    ``time_embedding``: the course's optional noise-level embedding (two Linear layers with biases,
    :class:`course_lib.nn.TimeEmbedding`). ``router`` is informative ("softmax" or "sigmoid"): both have
    ``n_experts * hidden`` weights."""
    n_layers: int
    hidden: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    vocab_size: int
    dense_ffn: int
    n_dense_layers: int
    n_experts: int = 0
    top_k: int = 0
    n_shared_experts: int = 0
    expert_ffn: int = 0
    tied_embeddings: bool = False
    router: str | None = None
    qk_norm: bool = False
    ffn_matrices: int = 3
    time_embedding: bool = False
    name: str = ""

    def __post_init__(self):
        for f in ("n_layers", "hidden", "n_heads", "n_kv_heads", "head_dim", "vocab_size", "ffn_matrices"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{f} must be a positive integer, got {v!r}")
        for f in ("dense_ffn", "n_dense_layers", "n_experts", "top_k", "n_shared_experts", "expert_ffn"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{f} must be a non-negative integer, got {v!r}")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_heads ({self.n_heads}) must be divisible by n_kv_heads ({self.n_kv_heads})")
        if self.n_dense_layers > self.n_layers:
            raise ValueError(f"n_dense_layers ({self.n_dense_layers}) exceeds n_layers ({self.n_layers})")
        if self.n_dense_layers and self.dense_ffn < 1:
            raise ValueError("dense layers need a positive dense_ffn")
        if self.n_experts == 0:
            if self.n_dense_layers != self.n_layers:
                raise ValueError(f"a dense model (n_experts = 0) has n_dense_layers = n_layers = {self.n_layers}, "
                                 f"got {self.n_dense_layers}")
            if self.top_k or self.n_shared_experts or self.expert_ffn or self.router is not None:
                raise ValueError("top_k, n_shared_experts, expert_ffn and router need n_experts > 0")
        else:
            if not 1 <= self.top_k <= self.n_experts:
                raise ValueError(f"top_k must lie in [1, n_experts = {self.n_experts}], got {self.top_k}")
            if self.expert_ffn < 1:
                raise ValueError("a mixture of experts needs a positive expert_ffn")
            if self.router not in ("softmax", "sigmoid"):
                raise ValueError(f"router must be 'softmax' or 'sigmoid' for a MoE, got {self.router!r}")

    @property
    def n_moe_layers(self) -> int:
        return self.n_layers - self.n_dense_layers


class ParamCount(NamedTuple):
    """``total`` and ``active`` parameters, and both by component (dicts over :data:`COMPONENTS`)."""
    total: int
    active: int
    by_component: dict
    active_by_component: dict

    def table(self) -> str:
        """A text table: component, total, active (millions)."""
        rows = [f"{'component':16s} {'total (M)':>12s} {'active (M)':>12s}"]
        for k in COMPONENTS:
            if self.by_component[k]:
                rows.append(f"{k:16s} {self.by_component[k] / 1e6:12.3f} {self.active_by_component[k] / 1e6:12.3f}")
        rows.append(f"{'sum':16s} {self.total / 1e6:12.3f} {self.active / 1e6:12.3f}")
        return "\n".join(rows)


def _shape(config) -> ModelShape:
    if isinstance(config, ModelShape):
        return config
    if isinstance(config, dict):
        known = {f.name for f in dataclasses.fields(ModelShape)}
        unknown = set(config) - known
        if unknown:
            raise ValueError(f"unknown shape keys {sorted(unknown)}; known: {sorted(known)}")
        return ModelShape(**config)
    raise ValueError(f"config must be a ModelShape or a dict, got {type(config).__name__}")


def count_params(config) -> ParamCount:
    """Total and active parameters of a :class:`ModelShape` (or a dict of its fields), by component.

    See the module docstring for the conventions."""
    s = _shape(config)
    h, f3 = s.hidden, s.ffn_matrices
    attention = h * s.n_heads * s.head_dim * 2 + h * s.n_kv_heads * s.head_dim * 2     # W_q, W_o; W_k, W_v
    norms = 2 * h + (2 * s.head_dim if s.qk_norm else 0)
    per_expert = f3 * h * s.expert_ffn
    total = {
        "embedding": s.vocab_size * h,
        "lm_head": 0 if s.tied_embeddings else s.vocab_size * h,
        "attention": s.n_layers * attention,
        "dense_ffn": s.n_dense_layers * f3 * h * s.dense_ffn,
        "routed_experts": s.n_moe_layers * s.n_experts * per_expert,
        "shared_experts": s.n_moe_layers * s.n_shared_experts * per_expert,
        "router": s.n_moe_layers * s.n_experts * h,
        "norms": s.n_layers * norms + h,
        "time_embedding": 2 * (h * h + h) if s.time_embedding else 0,
    }
    active = dict(total, routed_experts=s.n_moe_layers * s.top_k * per_expert)
    return ParamCount(sum(total.values()), sum(active.values()), total, active)


def from_transformer_config(config) -> ModelShape:
    """The :class:`ModelShape` of a course :class:`course_lib.nn.TransformerConfig` (vanilla multi-head
    attention: kv heads = heads; head_dim = d_model / n_head; no QK-norm)."""
    if not isinstance(config, TransformerConfig):
        raise ValueError(f"expected a TransformerConfig, got {type(config).__name__}")
    c = config
    moe = c.n_experts > 0
    return ModelShape(n_layers=c.n_layer, hidden=c.d_model, n_heads=c.n_head, n_kv_heads=c.n_head,
                      head_dim=c.d_model // c.n_head, vocab_size=c.vocab_size, dense_ffn=c.d_ff,
                      n_dense_layers=c.n_dense_layers if moe else c.n_layer, n_experts=c.n_experts,
                      top_k=c.moe_top_k if moe else 0, n_shared_experts=c.n_shared_experts if moe else 0,
                      expert_ffn=c.d_expert if moe else 0, tied_embeddings=c.tie_embeddings,
                      router=c.router if moe else None, time_embedding=c.time_conditioning,
                      name="course Transformer")


# Published LLaDA 2.0 configurations (arXiv 2512.15745; inclusionAI/dFactory model configs, config.json).
# QK-norm: the official modelling code (inclusionAI/dFactory, models/llada2_moe/modeling_llada2_moe.py,
# LLaDA2MoeAttention.__init__) creates `query_layernorm` and `key_layernorm` (RMSNorm of size head_dim) in every
# layer unconditionally, so they are counted (2 * 128 weights per layer: 5,120 for mini, 8,192 for flash).
LLADA2_MINI = ModelShape(name="LLaDA2.0-mini", n_layers=20, hidden=2048, n_heads=16, n_kv_heads=4, head_dim=128,
                         vocab_size=157_184, dense_ffn=5120, n_dense_layers=1, n_experts=256, top_k=8,
                         n_shared_experts=1, expert_ffn=512, tied_embeddings=False, router="sigmoid", qk_norm=True)
LLADA2_FLASH = ModelShape(name="LLaDA2.0-flash", n_layers=32, hidden=4096, n_heads=32, n_kv_heads=4, head_dim=128,
                          vocab_size=157_184, dense_ffn=9216, n_dense_layers=1, n_experts=256, top_k=8,
                          n_shared_experts=1, expert_ffn=1024, tied_embeddings=False, router="sigmoid", qk_norm=True)
# Their published sizes (total, active): "16B-A1B" with 1.4B active (model card), "100BA6B" with 6.1B active.
PUBLISHED = {"LLaDA2.0-mini": (16e9, 1.4e9), "LLaDA2.0-flash": (100e9, 6.1e9)}
