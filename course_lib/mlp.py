"""The epsilon-prediction network of chapter 1: a small residual MLP with sinusoidal embeddings.

It follows tanelp/tiny-diffusion's toy model (sinusoidal
embeddings of each input coordinate with scale 25 and of the time step, residual GELU blocks),
generalised to any input dimension so the same class serves the 2-D toys and the 8x8 digits.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass
class EpsMLPConfig:
    dim: int = 2                 # data dimension D
    hidden: int = 128            # width of the residual blocks
    n_blocks: int = 3            # residual GELU blocks
    emb_size: int = 128          # sinusoidal embedding size (time, and each coordinate if input_emb)
    input_emb: bool = True       # embed each coordinate sinusoidally (2-D toys) or feed x directly (digits)
    input_scale: float = 25.0    # tiny-diffusion's scale for coordinate embeddings
    T: int = 1000                # number of diffusion steps the time input is measured in
    n_classes: int = 0           # > 0: class-conditional, with one extra "null" label for "no class" (guidance)

    def to_dict(self) -> dict:
        return asdict(self)


def sinusoidal_embedding(x: torch.Tensor, size: int, scale: float = 1.0) -> torch.Tensor:
    """Transformer-style embedding: [sin(s x w_k), cos(s x w_k)], w_k = 10000^(-k/(size/2 - 1)).

    ``x`` of shape (B,) -> (B, size)."""
    if size < 4 or size % 2:
        raise ValueError(f"embedding size must be an even number >= 4, got {size}")
    half = size // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=x.device, dtype=x.dtype) / (half - 1))
    arg = (x * scale)[:, None] * freqs[None, :]
    return torch.cat([torch.sin(arg), torch.cos(arg)], dim=-1)


class Block(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.ff = nn.Linear(width, width)
        self.act = nn.GELU()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.act(self.ff(h))


class EpsMLP(nn.Module):
    """eps_theta(x_t, t): predicts the noise that was added to x_0 (Ho et al. 2020, eq. 11)."""

    def __init__(self, config: EpsMLPConfig | None = None, **kwargs):
        super().__init__()
        self.config = config or EpsMLPConfig(**kwargs)
        c = self.config
        in_features = c.emb_size * (c.dim if c.input_emb else 0) + (0 if c.input_emb else c.dim) + c.emb_size
        layers = [nn.Linear(in_features, c.hidden), nn.GELU()]
        layers += [Block(c.hidden) for _ in range(c.n_blocks)]
        layers += [nn.Linear(c.hidden, c.dim)]
        self.net = nn.Sequential(*layers)
        if c.n_classes < 0:
            raise ValueError(f"n_classes must be >= 0, got {c.n_classes}")
        # the label's embedding is added to the time embedding; row n_classes is the null label
        self.label_emb = nn.Embedding(c.n_classes + 1, c.emb_size) if c.n_classes else None

    @property
    def null_label(self) -> int:
        """The label that means "no class" (the unconditional model of classifier-free guidance)."""
        if self.label_emb is None:
            raise ValueError("this EpsMLP is unconditional (n_classes = 0): it has no labels")
        return self.config.n_classes

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """eps_theta(x_t, t) or, for a class-conditional network, eps_theta(x_t, t, y); ``y`` of shape (B,) holds
        labels in 0..n_classes, where n_classes is the null label (also what ``y=None`` means)."""
        c = self.config
        if x.ndim != 2 or x.shape[1] != c.dim:
            raise ValueError(f"EpsMLP expects x of shape (B, {c.dim}), got {tuple(x.shape)}")
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        if t.shape != (x.shape[0],):
            raise ValueError(f"t must have shape ({x.shape[0]},), got {tuple(t.shape)}")
        parts = []
        if c.input_emb:
            parts += [sinusoidal_embedding(x[:, i], c.emb_size, c.input_scale) for i in range(c.dim)]
        else:
            parts.append(x)
        # time measured in steps 0..T; scaled to [0, 1000] so the embedding does not depend on T
        time_emb = sinusoidal_embedding(t * (1000.0 / c.T), c.emb_size)
        if self.label_emb is not None:
            if y is None:
                y = torch.full((x.shape[0],), c.n_classes, dtype=torch.long, device=x.device)
            y = torch.as_tensor(y, device=x.device)
            if y.shape != (x.shape[0],) or y.dtype != torch.long or y.min() < 0 or y.max() > c.n_classes:
                raise ValueError(f"y must hold ({x.shape[0]},) integer labels in 0..{c.n_classes} "
                                 f"({c.n_classes} = no class)")
            time_emb = time_emb + self.label_emb(y)
        elif y is not None:
            raise ValueError("this EpsMLP is unconditional (n_classes = 0): call it without labels")
        parts.append(time_emb)
        return self.net(torch.cat(parts, dim=-1))

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def build(config: dict) -> EpsMLP:
    """Rebuild a model from the config stored in a checkpoint."""
    try:
        return EpsMLP(EpsMLPConfig(**config))
    except TypeError as e:
        raise ValueError(f"bad EpsMLP config {config!r}: {e}") from e
