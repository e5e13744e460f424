"""One small Transformer for chapters 2-4: autoregressive (AR) and diffusion language models.

The same class is the AR baseline (causal
attention), the masked-diffusion denoiser (bidirectional attention, as in MDLM and LLaDA) and the
block-diffusion model (block-causal attention, as in BD3-LM); only ``TransformerConfig.attention``
changes.

Architecture, following LLaDA (Nie et al. 2025, arXiv 2502.09992; restated in LLaDA 1.5, Table 3):
RMSNorm, rotary position embeddings (RoPE), SwiGLU feed-forward, vanilla multi-head attention,
no biases, pre-norm residual blocks, and no time conditioning (the masked tokens themselves tell
the network how noisy the input is). Time conditioning is available as an option for comparisons.

Style model: karpathy/nanoGPT ``model.py`` -- one readable file, a config dataclass, GPT-2-style
initialisation, no framework magic. Read it top to bottom:

    TransformerConfig -> attention_mask -> RMSNorm -> RoPE -> SelfAttention -> SwiGLU
    -> Block -> TimeEmbedding -> KVCache -> Transformer (forward; forward_cached for chapter 4's fast decoding)
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .moe import ROUTERS, MoEFeedForward

ATTENTION_MODES = ("causal", "bidirectional", "block_causal")


# ----------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------

@dataclass
class TransformerConfig:
    """Hyperparameters of :class:`Transformer`.

    ``d_ff=None`` picks the SwiGLU hidden size 8/3 * d_model rounded up to a multiple of 8, which
    keeps the feed-forward parameter count (3 * d_model * d_ff) close to a GELU MLP of width
    4 * d_model (LLaMA's convention; LLaDA's 12,288 = 3 * 4096 is a deliberate, smaller choice).
    """
    vocab_size: int = 256
    seq_len: int = 64                    # maximum number of positions (RoPE table length)
    n_layer: int = 4
    n_head: int = 4
    d_model: int = 128
    d_ff: int | None = None              # SwiGLU hidden size; None -> ceil8(8/3 * d_model)
    attention: str = "bidirectional"     # "causal" (AR) | "bidirectional" (MDLM, LLaDA) | "block_causal" (BD3-LM)
    block_size: int | None = None        # block length L' for "block_causal"
    time_conditioning: bool = False      # MDLM and LLaDA use none
    rope_theta: float = 10000.0          # LLaDA uses 500000 at 4096 positions; 10000 suits short sequences
    norm_eps: float = 1e-5
    tie_embeddings: bool = False         # LLaDA: weight_tying False; nanoGPT/GPT-2 tie
    dropout: float = 0.0
    # Mixture of experts (chapter 4, course_lib.moe). The defaults give the dense model, unchanged.
    n_experts: int = 0                   # routed experts per MoE layer; 0 = dense SwiGLU in every block
    moe_top_k: int = 2                   # experts chosen per token
    n_shared_experts: int = 0            # always-on experts (LLaDA 2.0 / DeepSeek: 1)
    d_expert: int | None = None          # hidden size of each expert; None -> d_ff // (moe_top_k + n_shared_experts)
    router: str = "softmax"              # "softmax" (Switch/GShard) | "sigmoid" (LLaDA 2.0 / DeepSeek-V3)
    n_dense_layers: int = 0              # the first k blocks keep a dense FFN (LLaDA 2.0 first_k_dense_replace)
    n_group: int = 1                     # group-limited routing: experts split into n_group groups ...
    topk_group: int = 1                  # ... of which the topk_group best are searched (LLaDA 2.0: 8 and 4)
    routed_scaling: float = 1.0          # routed weights are multiplied by this (LLaDA 2.0: 2.5)
    bias_update_rate: float = 0.0        # gamma of aux-loss-free balancing (sigmoid router only); 0 = off
    aux_loss_coef: float = 0.0           # alpha of the Switch load-balancing loss; 0 = off

    def __post_init__(self):
        if self.d_ff is None:
            self.d_ff = 8 * math.ceil(8 * self.d_model / 3 / 8)
        for name in ("vocab_size", "seq_len", "n_layer", "n_head", "d_model", "d_ff"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.d_model % self.n_head:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_head ({self.n_head})")
        if (self.d_model // self.n_head) % 2:
            raise ValueError(f"head dimension d_model / n_head = {self.d_model // self.n_head} must be even "
                             "(RoPE rotates pairs of coordinates)")
        if self.attention not in ATTENTION_MODES:
            raise ValueError(f"attention must be one of {ATTENTION_MODES}, got {self.attention!r}")
        if self.attention == "block_causal":
            if not isinstance(self.block_size, int) or self.block_size < 1:
                raise ValueError(f"block_causal attention needs a positive integer block_size, got {self.block_size!r}")
            if self.seq_len % self.block_size:
                raise ValueError(f"block_size ({self.block_size}) must divide seq_len ({self.seq_len})")
        elif self.block_size is not None:
            raise ValueError(f"block_size is only used with attention='block_causal', not {self.attention!r}")
        if not self.rope_theta > 0:
            raise ValueError(f"rope_theta must be positive, got {self.rope_theta}")
        if not self.norm_eps > 0:
            raise ValueError(f"norm_eps must be positive, got {self.norm_eps}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")
        self._check_moe()

    def _check_moe(self):
        """Validate the mixture-of-experts fields (chapter 4); fills in ``d_expert`` when it is None."""
        for name in ("n_experts", "moe_top_k", "n_shared_experts", "n_dense_layers", "n_group", "topk_group"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        for name in ("routed_scaling", "bias_update_rate", "aux_loss_coef"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if self.router not in ROUTERS:
            raise ValueError(f"router must be one of {ROUTERS}, got {self.router!r}")
        if self.n_experts == 0:
            moe_fields = dict(moe_top_k=2, n_shared_experts=0, d_expert=None, router="softmax", n_dense_layers=0,
                              n_group=1, topk_group=1, routed_scaling=1.0, bias_update_rate=0.0, aux_loss_coef=0.0)
            changed = sorted(k for k, v in moe_fields.items() if getattr(self, k) != v)
            if changed:
                raise ValueError(f"{changed} only apply to a mixture of experts: set n_experts > 0")
            return
        if self.moe_top_k < 1:
            raise ValueError(f"moe_top_k must be a positive integer, got {self.moe_top_k}")
        if self.moe_top_k > self.n_experts:
            raise ValueError(f"moe_top_k ({self.moe_top_k}) cannot exceed n_experts ({self.n_experts})")
        if self.d_expert is None:
            self.d_expert = self.d_ff // (self.moe_top_k + self.n_shared_experts)
        if not isinstance(self.d_expert, int) or isinstance(self.d_expert, bool) or self.d_expert < 1:
            raise ValueError(f"d_expert must be a positive integer, got {self.d_expert!r}")
        if self.n_dense_layers >= self.n_layer:
            raise ValueError(f"n_dense_layers ({self.n_dense_layers}) must be below n_layer ({self.n_layer}): "
                             "a mixture of experts needs at least one MoE block")
        if self.n_group < 1 or self.topk_group < 1:
            raise ValueError(f"n_group and topk_group must be positive, got {self.n_group} and {self.topk_group}")
        if self.n_experts % self.n_group:
            raise ValueError(f"n_experts ({self.n_experts}) must be divisible by n_group ({self.n_group})")
        if self.topk_group > self.n_group:
            raise ValueError(f"topk_group ({self.topk_group}) cannot exceed n_group ({self.n_group})")
        searched = self.topk_group * (self.n_experts // self.n_group)
        if self.moe_top_k > searched:
            raise ValueError(f"moe_top_k ({self.moe_top_k}) exceeds the {searched} experts "
                             f"in the topk_group = {self.topk_group} groups kept")
        if not self.routed_scaling > 0:
            raise ValueError(f"routed_scaling must be positive, got {self.routed_scaling}")
        if self.bias_update_rate < 0 or self.aux_loss_coef < 0:
            raise ValueError(f"bias_update_rate and aux_loss_coef must be >= 0, got {self.bias_update_rate} "
                             f"and {self.aux_loss_coef}")
        if self.bias_update_rate > 0 and self.router != "sigmoid":
            raise ValueError("bias_update_rate (aux-loss-free balancing) needs router='sigmoid'")

    def to_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------------------------
# Attention masks
# ----------------------------------------------------------------------------------------------

def attention_mask(mode: str, L: int, block_size: int | None = None, device=None) -> torch.Tensor:
    """(L, L) boolean mask, ``mask[i, j] = True`` when query i may attend to key j.

    - ``"causal"``: j <= i (lower triangular; an AR model).
    - ``"bidirectional"``: every pair (MDLM, LLaDA: "no causal mask").
    - ``"block_causal"``: block(j) <= block(i) with block(i) = i // block_size: a query sees its
      whole block and all earlier blocks. This is the clean-context part ``M_BC`` of BD3-LM's
      training mask (Arriola et al., ICLR 2025); block_size = 1 recovers ``"causal"`` and
      block_size >= L recovers ``"bidirectional"``.
    """
    if L < 1:
        raise ValueError(f"L must be a positive integer, got {L}")
    pos = torch.arange(L, device=device)
    if mode == "causal":
        return pos[:, None] >= pos[None, :]
    if mode == "bidirectional":
        return torch.ones(L, L, dtype=torch.bool, device=device)
    if mode == "block_causal":
        if block_size is None or block_size < 1:
            raise ValueError(f"block_causal needs a positive block_size, got {block_size!r}")
        block = pos // block_size
        return block[:, None] >= block[None, :]
    raise ValueError(f"unknown attention mode {mode!r}; expected one of {ATTENTION_MODES}")


# ----------------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------------

class RMSNorm(nn.Module):
    """y = x / sqrt(mean(x^2) + eps) * w  (Zhang & Sennrich 2019; used by LLaMA and LLaDA).

    Unlike LayerNorm it neither subtracts the mean nor adds a bias."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps) * self.weight


def rope_cache(head_dim: int, seq_len: int, theta: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables, each (seq_len, head_dim / 2), of the angles  m * theta^(-2k / head_dim).

    (RoPE: Su et al. 2021; used by LLaDA.)"""
    if head_dim % 2:
        raise ValueError(f"RoPE needs an even head dimension, got {head_dim}")
    inv_freq = theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)   # (head_dim/2,)
    angles = torch.arange(seq_len, dtype=torch.float64)[:, None] * inv_freq[None, :]     # (seq_len, head_dim/2)
    return angles.cos().float(), angles.sin().float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each pair (x_k, x_{k + d/2}) of ``x`` (..., L, d) by the angle of its position.

    With the rotation R_m at position m, <R_m q, R_n k> = <q, R_{n-m} k>: attention scores
    depend on positions only through their difference n - m. ``cos``/``sin``: (L, d/2)."""
    x1, x2 = x.chunk(2, dim=-1)
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class SelfAttention(nn.Module):
    """Multi-head self-attention with RoPE on queries and keys, via ``F.scaled_dot_product_attention``.

    Vanilla MHA as in LLaDA (as many key/value
    heads as query heads), no biases."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.n_head, self.head_dim = config.n_head, config.d_model // config.n_head
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model, bias=False)
        self.proj = nn.Linear(config.d_model, config.d_model, bias=False)   # residual projection
        self.dropout = config.dropout

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor | None,
                past: tuple[torch.Tensor, torch.Tensor] | None = None):
        """``past=None``: the output (B, L, D). With ``past = (k, v)``, the cached keys and values (B, H, m, hd) of
        m earlier positions (already rotated), the L new queries attend to those m keys and to the L new ones
        (``mask`` is then (B or 1, 1, L, m + L)), and the result is ``(output, (k_new, v_new))``: the new
        positions' keys and values, for the caller to keep or drop (:class:`KVCache`)."""
        B, L, D = x.shape
        q, k, v = self.qkv(x).split(D, dim=-1)
        q, k, v = (z.view(B, L, self.n_head, self.head_dim).transpose(1, 2) for z in (q, k, v))  # (B, H, L, hd)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        new = (k, v)
        if past is not None:
            k, v = torch.cat([past[0], k], 2), torch.cat([past[1], v], 2)   # keys: [cached ; new]
        # softmax(q k^T / sqrt(hd) + log mask) v; mask (B or 1, 1, L, keys) broadcasts over heads, None = all True
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           dropout_p=self.dropout if self.training else 0.0)
        y = self.proj(y.transpose(1, 2).reshape(B, L, D))
        return y if past is None else (y, new)


class SwiGLU(nn.Module):
    """FFN(x) = W_down( silu(W_gate x) * (W_up x) )  (Shazeer 2020; used by LLaMA and LLaDA)."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.gate = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.up = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.down = nn.Linear(config.d_ff, config.d_model, bias=False)   # residual projection

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))


class Block(nn.Module):
    """Pre-norm residual block: x + attn(norm(x)), then x + ffn(norm(x)).

    ``moe=True`` (chapter 4) puts a mixture of experts (:class:`course_lib.moe.MoEFeedForward`) in
    place of the dense SwiGLU."""

    def __init__(self, config: TransformerConfig, moe: bool = False):
        super().__init__()
        self.attn_norm = RMSNorm(config.d_model, config.norm_eps)
        self.attn = SelfAttention(config)
        self.ffn_norm = RMSNorm(config.d_model, config.norm_eps)
        if moe:
            self.ffn = MoEFeedForward(config, expert=SwiGLU)
        else:
            self.ffn = SwiGLU(config)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x, cos, sin, mask, past=None):
        """``past=None``: the block's output. With cached keys and values ``past`` (see
        :meth:`SelfAttention.forward`): ``(output, (k_new, v_new))``."""
        if past is None:
            x = x + self.drop(self.attn(self.attn_norm(x), cos, sin, mask))
            return x + self.drop(self.ffn(self.ffn_norm(x)))
        a, new = self.attn(self.attn_norm(x), cos, sin, mask, past)
        x = x + self.drop(a)
        return x + self.drop(self.ffn(self.ffn_norm(x))), new


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal features [cos(1000 t w_k), sin(1000 t w_k)], w_k = max_period^(-k / (dim/2)), of t (B,) -> (B, dim).

    t in [0, 1] is scaled by 1000 so that the features resolve small differences in t, as for
    integer DDPM steps in chapter 1."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    arg = 1000.0 * t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.cos(arg), torch.sin(arg)], dim=-1)


class TimeEmbedding(nn.Module):
    """Optional conditioning on the noise level t: sinusoidal features -> Linear -> SiLU -> Linear.

    The result, one vector per sequence, is
    added to every token embedding: the simplest choice (no adaLN modulation as in DiT/SEDD/MDLM's
    DiT backbone). MDLM's paper finds time conditioning unnecessary with the SUBS
    parameterisation and LLaDA has none, hence ``time_conditioning=False`` by default."""

    def __init__(self, d_model: int):
        super().__init__()
        self.d_model = d_model
        self.mlp = nn.Sequential(nn.Linear(d_model, d_model), nn.SiLU(), nn.Linear(d_model, d_model))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(timestep_embedding(t, self.d_model))


# ----------------------------------------------------------------------------------------------
# Key-value cache (chapter 4, fast decoding)
# ----------------------------------------------------------------------------------------------

@dataclass
class KVCache:
    """The keys and values of m positions, one pair per block, each (B, n_head, m, head_dim) with RoPE applied.

    A query's attention output depends on the other positions only through their keys and values, so once
    those are computed they can be kept and reused: the KV cache of every autoregressive LLM, and the caches
    of diffusion decoders (:mod:`course_lib.caching`). The order of the cached positions does not matter
    (attention is a weighted sum over keys), only the attention mask that says who sees whom."""
    k: list
    v: list

    @property
    def length(self) -> int:
        """m, the number of cached positions."""
        return self.k[0].shape[2]

    def cat(self, other: "KVCache") -> "KVCache":
        """This cache's positions followed by ``other``'s."""
        return KVCache([torch.cat([a, b], 2) for a, b in zip(self.k, other.k)],
                       [torch.cat([a, b], 2) for a, b in zip(self.v, other.v)])

    def positions(self, start: int, stop: int) -> "KVCache":
        """The cached positions ``start:stop`` (in the cache's own order)."""
        return KVCache([a[:, :, start:stop] for a in self.k], [a[:, :, start:stop] for a in self.v])

    def rows(self, index: torch.Tensor) -> "KVCache":
        """Only the batch rows ``index`` (a long tensor): drop the sequences that finished."""
        return KVCache([a[index] for a in self.k], [a[index] for a in self.v])


# ----------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------

class Transformer(nn.Module):
    """Token ids (B, L) -> logits (B, L, vocab_size).

    Embedding (+ optional time embedding) -> n_layer pre-norm blocks -> RMSNorm -> LM head.
    Positions enter only through RoPE, so any L <= seq_len works. For ``"block_causal"`` the
    blocks are aligned to position 0.
    """

    def __init__(self, config: TransformerConfig | None = None, **kwargs):
        super().__init__()
        self.config = c = config or TransformerConfig(**kwargs)
        self.tok_emb = nn.Embedding(c.vocab_size, c.d_model)
        self.time_emb = TimeEmbedding(c.d_model) if c.time_conditioning else None
        self.drop = nn.Dropout(c.dropout)
        # chapter 4: with n_experts > 0, blocks n_dense_layers.. get a mixture-of-experts feed-forward
        self.blocks = nn.ModuleList(Block(c, moe=c.n_experts > 0 and i >= c.n_dense_layers) for i in range(c.n_layer))
        self.norm = RMSNorm(c.d_model, c.norm_eps)
        self.lm_head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        if c.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight
        cos, sin = rope_cache(c.d_model // c.n_head, c.seq_len, c.rope_theta)
        # derived tables, not weights: kept out of the state dict (persistent=False)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.register_buffer("mode_mask", attention_mask(c.attention, c.seq_len, c.block_size), persistent=False)

        # GPT-2 / nanoGPT initialisation: N(0, 0.02), residual projections N(0, 0.02 / sqrt(2 n_layer))
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("attn.proj.weight") or name.endswith("down.weight"):   # incl. experts' down
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * c.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def n_params(self, non_embedding: bool = False) -> int:
        """Number of parameters (shared tied weights counted once).

        ``non_embedding=True`` leaves out the token embedding and the LM head, as in LLaDA's
        "6.98B non-embedding" count (nanoGPT instead leaves out its position embedding; we have
        none)."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.tok_emb.weight.numel()
            if not self.config.tie_embeddings:
                n -= self.lm_head.weight.numel()
        return n

    # ------------------------------------------------------------------ mixture of experts (chapter 4)
    def moe_layers(self) -> list:
        """``[(block index, MoEFeedForward), ...]`` of the MoE blocks (empty for a dense model); the hook
        that :mod:`course_lib.moe_study`'s routing statistics read."""
        return [(i, b.ffn) for i, b in enumerate(self.blocks) if isinstance(b.ffn, MoEFeedForward)]

    def moe_aux_loss(self) -> torch.Tensor:
        """``aux_loss_coef`` times the sum over MoE blocks of the Switch load-balancing loss of the last
        forward pass (Fedus et al. 2022, eq. 4-6; each Switch layer adds its own term). A zero tensor for
        a dense model or ``aux_loss_coef = 0``."""
        layers = self.moe_layers()
        if not layers or self.config.aux_loss_coef == 0:
            return torch.zeros((), device=self.lm_head.weight.device)
        missing = [i for i, m in layers if m.aux_loss is None]
        if missing:
            raise ValueError(f"no forward pass has run through MoE blocks {missing} yet")
        return self.config.aux_loss_coef * sum(m.aux_loss for _, m in layers)

    @torch.no_grad()
    def moe_update_bias(self) -> None:
        """Aux-loss-free balancing, after an optimiser step: every sigmoid router moves its selection bias by
        ``bias_update_rate * sign(mean load - load)`` using the loads counted since the last update
        (DeepSeek-V3, section 2.1.2; LLaDA 2.0's ``moe_router_enable_expert_bias``). A no-op for dense
        models and when ``bias_update_rate = 0``."""
        for _, m in self.moe_layers():
            m.update_bias()

    def _check_inputs(self, idx, t, mask):
        c = self.config
        if not isinstance(idx, torch.Tensor) or idx.dtype != torch.long:
            raise ValueError(f"idx must be a torch.long tensor, got {getattr(idx, 'dtype', type(idx))}")
        if idx.ndim != 2 or idx.shape[0] < 1 or idx.shape[1] < 1:
            raise ValueError(f"idx must have shape (B, L) with B, L >= 1, got {tuple(idx.shape)}")
        B, L = idx.shape
        if idx.min() < 0 or idx.max() >= c.vocab_size:
            raise ValueError(f"token ids must lie in [0, {c.vocab_size}), got range "
                             f"[{idx.min().item()}, {idx.max().item()}]")
        if c.time_conditioning:
            if t is None:
                raise ValueError("this model has time_conditioning=True: pass t (a scalar or shape (B,)) in [0, 1]")
            t = torch.as_tensor(t, dtype=torch.float32, device=idx.device)
            if t.ndim == 0:
                t = t.expand(B)
            if t.shape != (B,):
                raise ValueError(f"t must be a scalar or have shape ({B},), got {tuple(t.shape)}")
            if not torch.all((t >= 0) & (t <= 1)):      # also rejects NaN
                raise ValueError("t must lie in [0, 1]")
        elif t is not None:
            raise ValueError("t was given but this model has time_conditioning=False")
        if mask is not None:
            if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
                raise ValueError(f"mask must be a torch.bool tensor, got {getattr(mask, 'dtype', type(mask))}")
            if mask.ndim != 3 or mask.shape[0] not in (1, B) or mask.shape[1:] != (L, L):
                raise ValueError(f"mask must have shape (B or 1, L, L) = ({B} or 1, {L}, {L}), got {tuple(mask.shape)}")
            if not mask.any(dim=-1).all():
                raise ValueError("every query position must be allowed to attend to at least one key "
                                 "(an all-False row makes the softmax undefined)")
        return t

    def forward(self, idx: torch.Tensor, t: torch.Tensor | float | None = None,
                mask: torch.Tensor | None = None, positions: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, L, vocab_size) for token ids ``idx`` (B, L).

        - ``t``: noise level in [0, 1], a scalar or one per sequence (B,); required exactly when
          ``config.time_conditioning`` is True.
        - ``mask``: optional boolean (B or 1, L, L), True = may attend. It *replaces* the mask of
          ``config.attention`` (for later chapters: padding, BD3-LM's [x_t; x_0] mask, ...).
        - ``positions``: optional long tensor (L,) of RoPE positions, each in [0, seq_len); default
          0..L-1. Chapter 4's block-diffusion training feeds ``[x_t ; x_0]`` (length 2L) with positions
          ``[0..L-1, 0..L-1]``, so that a noisy token and its clean copy sit at the same position.
        """
        t = self._check_inputs(idx, t, mask)
        L = idx.shape[1]
        if positions is None:
            if L > self.config.seq_len:
                raise ValueError(f"sequence length {L} exceeds config.seq_len = {self.config.seq_len}")
            cos, sin = self.rope_cos[:L], self.rope_sin[:L]
        else:
            if not isinstance(positions, torch.Tensor) or positions.dtype != torch.long or positions.shape != (L,):
                raise ValueError(f"positions must be a torch.long tensor of shape ({L},), got "
                                 f"{getattr(positions, 'dtype', type(positions))} {tuple(getattr(positions, 'shape', ()))}")
            if positions.min() < 0 or positions.max() >= self.config.seq_len:
                raise ValueError(f"positions must lie in [0, {self.config.seq_len}), got range "
                                 f"[{positions.min().item()}, {positions.max().item()}]")
            cos, sin = self.rope_cos[positions], self.rope_sin[positions]
        x = self.tok_emb(idx)                                                # (B, L, D)
        if self.time_emb is not None:
            x = x + self.time_emb(t)[:, None, :].to(x.dtype)                 # same vector at every position
        x = self.drop(x)
        if mask is not None:
            attn_mask = mask.view(-1, 1, L, L)                               # broadcast over heads
        elif self.config.attention == "bidirectional":
            attn_mask = None                                                 # all True: skip the mask
        else:
            attn_mask = self.mode_mask[:L, :L]
        for block in self.blocks:
            x = block(x, cos, sin, attn_mask)
        return self.lm_head(self.norm(x))

    @torch.no_grad()
    def forward_cached(self, idx: torch.Tensor, positions: torch.Tensor, past: KVCache | None = None,
                       mask: torch.Tensor | None = None) -> tuple[torch.Tensor, KVCache]:
        """Logits (B, n, vocab_size) of n new positions that attend to cached ones, and the new positions' cache.

        - ``idx`` (B, n): the new tokens; ``positions`` (n,): their RoPE positions (where they sit on the canvas);
        - ``past``: the keys and values of m earlier positions (a :class:`KVCache` with B rows), or None (m = 0);
        - ``mask``: optional bool (B or 1, n, m + n), True = may attend, over the keys ``[cached ; new]``;
          None lets every new position see every key.

        Returns ``(logits, new)`` where ``new`` is a :class:`KVCache` of the n new positions: append it to
        ``past`` to extend the cache. With a mask that shows each query exactly the keys it would see in
        :meth:`forward`, the logits equal :meth:`forward`'s at those positions (up to float rounding): the cache
        changes the cost, not the result -- if the cached keys are still what the full pass would compute."""
        c = self.config
        if c.time_conditioning:
            raise ValueError("forward_cached does not take a noise level: use a model with time_conditioning=False")
        self._check_inputs(idx, None, None)
        B, n = idx.shape
        if not isinstance(positions, torch.Tensor) or positions.dtype != torch.long or positions.shape != (n,):
            raise ValueError(f"positions must be a torch.long tensor of shape ({n},), got "
                             f"{getattr(positions, 'dtype', type(positions))} {tuple(getattr(positions, 'shape', ()))}")
        if positions.min() < 0 or positions.max() >= c.seq_len:
            raise ValueError(f"positions must lie in [0, {c.seq_len})")
        m = 0 if past is None else past.length
        if past is not None and (len(past.k) != c.n_layer or past.k[0].shape[0] != B):
            raise ValueError(f"past must hold {c.n_layer} layers of {B} rows, got {len(past.k)} layers of "
                             f"{past.k[0].shape[0]} rows")
        if mask is not None and (not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.ndim != 3
                                 or mask.shape[0] not in (1, B) or mask.shape[1:] != (n, m + n)):
            raise ValueError(f"mask must be a bool tensor of shape (B or 1, n, m + n) = ({B} or 1, {n}, {m + n}), "
                             f"got {getattr(mask, 'dtype', type(mask))} {tuple(getattr(mask, 'shape', ()))}")
        cos, sin = self.rope_cos[positions], self.rope_sin[positions]
        attn_mask = None if mask is None else mask.view(-1, 1, n, m + n)
        x = self.tok_emb(idx)
        hd = c.d_model // c.n_head
        empty = x.new_zeros(B, c.n_head, 0, hd)
        ks, vs = [], []
        for i, block in enumerate(self.blocks):
            kv = (empty, empty) if past is None else (past.k[i], past.v[i])
            x, (k, v) = block(x, cos, sin, attn_mask, kv)
            ks.append(k)
            vs.append(v)
        return self.lm_head(self.norm(x)), KVCache(ks, vs)


def grow_vocabulary(model: Transformer, vocab_size: int, seed: int = 0) -> Transformer:
    """A copy of ``model`` with a larger vocabulary: the old token rows of the embedding and of the LM head
    are kept, the new rows are initialised as at construction (N(0, 0.02), seeded): how a
    pretrained language model learns three instruction tokens during SFT.
    The existing ids keep their meaning, so the grown model gives the same logits on old ids for the old tokens."""
    c = model.config
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < c.vocab_size:
        raise ValueError(f"vocab_size must be an integer >= the model's {c.vocab_size}, got {vocab_size!r}")
    new = Transformer(TransformerConfig(**dict(c.to_dict(), vocab_size=vocab_size)))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(seed)
    for key in ("tok_emb.weight", "lm_head.weight"):
        if key not in state:
            continue
        old = state[key]
        extra = torch.randn((vocab_size - old.shape[0], old.shape[1]), generator=g, dtype=old.dtype) * 0.02
        state[key] = torch.cat([old, extra])
    new.load_state_dict(state)
    new.train(model.training)
    return new
