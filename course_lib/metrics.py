"""Sample-quality metrics for chapter 1: the sliced Wasserstein distance and its data-vs-data floor.

Introduced in chapter 1, section 5. SW_2(P, Q)^2 = E_theta[ W_2^2(theta#P, theta#Q) ] over random
unit directions theta (Rabin et al. 2011; Bonneel et al. 2015); in 1-D, W_2 between two empirical
distributions of equal size is the RMS difference of their sorted values.

Even two independent samples of the *same* distribution are at a positive distance, and that floor
varies a lot between draws, so model samples are judged by the ratio

    ratio = mean_j SW(model, heldout_j) / mean_i SW(data_i, data_i')

which is about 1 for a perfect model.
"""
from __future__ import annotations

from typing import Callable

import torch


def _directions(dim: int, n_proj: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(n_proj, dim, generator=g, dtype=torch.float64)
    return d / d.norm(dim=1, keepdim=True)


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, n_proj: int = 256, seed: int = 0) -> float:
    """SW_2 between two equal-size point clouds of shape (N, D)."""
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"need two point clouds of equal shape (N, D), got {tuple(a.shape)} and {tuple(b.shape)}")
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        raise ValueError("point clouds contain NaN or inf")
    th = _directions(a.shape[1], n_proj, seed)
    pa, _ = torch.sort(a @ th.T, dim=0)
    pb, _ = torch.sort(b @ th.T, dim=0)
    return float(((pa - pb) ** 2).mean().sqrt())


def swd_report(samples: torch.Tensor, draw: Callable[[int, int], torch.Tensor], n_sets: int = 10,
               seed0: int = 10_000) -> dict:
    """Compare samples with ``n_sets`` held-out sets and compute the data-vs-data floor.

    ``draw(n, seed)`` returns n fresh data points. Returns the mean/std of SW(samples, heldout_j),
    the floor (mean/std over ``n_sets`` pairs of independent data draws of the same size), and the ratio.
    """
    n = samples.shape[0]
    vs_model = torch.tensor([sliced_wasserstein(samples, draw(n, seed0 + j)) for j in range(n_sets)])
    floor = torch.tensor([sliced_wasserstein(draw(n, seed0 + 1000 + 2 * i), draw(n, seed0 + 1001 + 2 * i))
                          for i in range(n_sets)])
    return {"swd": float(vs_model.mean()), "swd_std": float(vs_model.std()),
            "floor": float(floor.mean()), "floor_std": float(floor.std()),
            "ratio": float(vs_model.mean() / floor.mean())}
