"""Sample-quality metrics for chapter 1: the sliced Wasserstein distance and its data-vs-data floor.

SW_2(P, Q)^2 = E_theta[ W_2^2(theta#P, theta#Q) ] over random
unit directions theta (Rabin et al. 2011; Bonneel et al. 2015); in 1-D, W_2 between two empirical
distributions of equal size is the RMS difference of their sorted values.

Even two independent samples of the *same* distribution are at a positive distance, and that floor
varies a lot between draws, so model samples are judged by the ratio

    ratio = mean_j SW(model, heldout_j) / mean_i SW(data_i, data_i')

which is about 1 for a perfect model.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Callable

import torch


def _directions(dim: int, n_proj: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(n_proj, dim, generator=g, dtype=torch.float64)
    return d / d.norm(dim=1, keepdim=True)


def _sorted_projections(x: torch.Tensor, n_proj: int, seed: int) -> torch.Tensor:
    """(N, n_proj): the cloud projected on ``n_proj`` random unit directions, each column sorted."""
    x = torch.as_tensor(x, dtype=torch.float64)
    if x.ndim != 2:
        raise ValueError(f"need a point cloud of shape (N, D), got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("point clouds contain NaN or inf")
    return torch.sort(x @ _directions(x.shape[1], n_proj, seed).T, dim=0).values


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, n_proj: int = 256, seed: int = 0) -> float:
    """SW_2 between two equal-size point clouds of shape (N, D)."""
    if torch.as_tensor(a).shape != torch.as_tensor(b).shape:
        raise ValueError(f"need two point clouds of equal shape (N, D), got {tuple(torch.as_tensor(a).shape)} and "
                         f"{tuple(torch.as_tensor(b).shape)}")
    pa, pb = _sorted_projections(a, n_proj, seed), _sorted_projections(b, n_proj, seed)
    return float(((pa - pb) ** 2).mean().sqrt())


@lru_cache(maxsize=2)
def _reference(draw: Callable[[int, int], torch.Tensor], n: int, n_sets: int, seed0: int):
    """The held-out sets' sorted projections and the data-vs-data floor, computed once per ``draw`` and size."""
    held = [_sorted_projections(draw(n, seed0 + j), 256, 0) for j in range(n_sets)]
    floor = torch.tensor([sliced_wasserstein(draw(n, seed0 + 1000 + 2 * i), draw(n, seed0 + 1001 + 2 * i))
                          for i in range(n_sets)])
    return held, floor


def swd_report(samples: torch.Tensor, draw: Callable[[int, int], torch.Tensor], n_sets: int = 10,
               seed0: int = 10_000) -> dict:
    """Compare samples with ``n_sets`` held-out sets and compute the data-vs-data floor.

    ``draw(n, seed)`` returns n fresh data points (the same ones for the same seed: the held-out sets and the
    floor are computed once per ``draw`` and sample size). Returns the mean/std of SW(samples, heldout_j), the
    floor (mean/std over ``n_sets`` pairs of independent data draws of the same size), and the ratio.
    """
    held, floor = _reference(draw, samples.shape[0], n_sets, seed0)
    ps = _sorted_projections(samples, 256, 0)
    vs_model = torch.tensor([float(((ps - h) ** 2).mean().sqrt()) for h in held])
    return {"swd": float(vs_model.mean()), "swd_std": float(vs_model.std()),
            "floor": float(floor.mean()), "floor_std": float(floor.std()),
            "ratio": float(vs_model.mean() / floor.mean())}
