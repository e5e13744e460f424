"""2-D toy distributions for chapter 1, generated deterministically from a seed.

The Gaussian mixture is the star: its density, its score and
the score of *every noised marginal* q(x_t) are analytic, because noising a Gaussian mixture with
x_t = sqrt(abar) x_0 + sqrt(1 - abar) eps gives another Gaussian mixture:

    q_t(x) = sum_k pi_k N(x; sqrt(abar) mu_k, (abar s_k^2 + 1 - abar) I)

so learned scores can be compared with exact ones.
"""
from __future__ import annotations

import math

import numpy as np
import torch

TOYS = ("gmm", "moons", "swissroll", "checkerboard")


class GaussianMixture:
    """Isotropic Gaussian mixture: weights pi_k, means mu_k (K, D), variances var_k (K,)."""

    def __init__(self, weights, means, variances):
        w = torch.as_tensor(weights, dtype=torch.float64)
        m = torch.as_tensor(means, dtype=torch.float64)
        v = torch.as_tensor(variances, dtype=torch.float64)
        if m.ndim != 2 or w.shape != (m.shape[0],) or v.shape != (m.shape[0],):
            raise ValueError("need weights (K,), means (K, D), variances (K,)")
        if (w < 0).any() or not math.isclose(float(w.sum()), 1.0, rel_tol=1e-9):
            raise ValueError("mixture weights must be non-negative and sum to 1")
        if (v <= 0).any():
            raise ValueError("variances must be positive")
        self.weights, self.means, self.variances = w, m, v

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def noised(self, alpha_bar: float) -> "GaussianMixture":
        """The marginal q_t of x_t = sqrt(abar) x_0 + sqrt(1 - abar) eps: another mixture."""
        ab = float(alpha_bar)
        if not 0.0 <= ab <= 1.0:
            raise ValueError(f"alpha_bar must lie in [0, 1], got {ab}")
        return GaussianMixture(self.weights, math.sqrt(ab) * self.means, ab * self.variances + (1 - ab))

    def _check(self, x) -> torch.Tensor:
        x = torch.as_tensor(x)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (N, {self.dim}), got {tuple(x.shape)}")
        return x.to(torch.float64)

    def _log_components(self, x: torch.Tensor) -> torch.Tensor:
        d2 = ((x[:, None, :] - self.means[None]) ** 2).sum(-1)                 # (N, K)
        return (torch.log(self.weights)[None] - 0.5 * d2 / self.variances[None]
                - 0.5 * self.dim * torch.log(2 * math.pi * self.variances)[None])

    def log_prob(self, x) -> torch.Tensor:
        """log q(x), shape (N,)."""
        return torch.logsumexp(self._log_components(self._check(x)), dim=1)

    def responsibilities(self, x) -> torch.Tensor:
        """r_k(x) = p(component k | x), shape (N, K)."""
        return torch.softmax(self._log_components(self._check(x)), dim=1)

    def score(self, x) -> torch.Tensor:
        """grad_x log q(x) = sum_k r_k(x) (mu_k - x) / var_k, shape (N, D)."""
        x = self._check(x)
        r = self.responsibilities(x)
        return (r[:, :, None] * (self.means[None] - x[:, None, :]) / self.variances[None, :, None]).sum(1)

    def posterior_mean_x0(self, xt, alpha_bar: float) -> torch.Tensor:
        """E[x_0 | x_t] computed directly (no score): sum_k r_k(x_t) E[x_0 | x_t, k], where for component k
        E[x_0 | x_t, k] = mu_k + sqrt(abar) var_k / (abar var_k + 1 - abar) (x_t - sqrt(abar) mu_k)."""
        ab = float(alpha_bar)
        if not 0.0 < ab <= 1.0:
            raise ValueError(f"alpha_bar must lie in (0, 1], got {ab}")
        xt = self._check(xt)
        r = self.noised(ab).responsibilities(xt)                                   # (N, K)
        gain = math.sqrt(ab) * self.variances / (ab * self.variances + 1 - ab)      # (K,)
        comp = self.means[None] + gain[None, :, None] * (xt[:, None, :] - math.sqrt(ab) * self.means[None])
        return (r[:, :, None] * comp).sum(1)

    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        rng = np.random.RandomState(seed)
        k = rng.choice(len(self.weights), size=n, p=self.weights.numpy())
        z = rng.randn(n, self.dim)
        x = self.means.numpy()[k] + np.sqrt(self.variances.numpy()[k])[:, None] * z
        return torch.tensor(x, dtype=torch.float32)

    def entropy_mc(self, n: int = 200_000, seed: int = 0) -> tuple[float, float]:
        """Differential entropy H = -E log q(x) in nats, by Monte Carlo; returns (estimate, std error)."""
        lp = self.log_prob(self.sample(n, seed).double())
        return float(-lp.mean()), float(lp.std() / math.sqrt(n))


def course_gmm() -> GaussianMixture:
    """The chapter's mixture: 8 components on a ring of radius 2 plus one at the centre, unequal weights."""
    angles = np.arange(8) * 2 * np.pi / 8
    means = np.concatenate([2.0 * np.stack([np.cos(angles), np.sin(angles)], 1), [[0.0, 0.0]]])
    weights = np.array([1.0, 2.0] * 4 + [2.0])
    return GaussianMixture(weights / weights.sum(), means, np.array([0.2 ** 2] * 8 + [0.3 ** 2]))


def make_toy(name: str, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` points of a 2-D toy distribution, float32 of shape (n, 2), deterministic in ``seed``.

    All are scaled to roughly [-3, 3] so the same schedule and network serve every toy."""
    if name not in TOYS:
        raise ValueError(f"unknown toy distribution {name!r}; choose one of {TOYS}")
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    rng = np.random.RandomState(seed)
    if name == "gmm":
        return course_gmm().sample(n, seed)
    if name == "moons":
        from sklearn.datasets import make_moons
        x, _ = make_moons(n, noise=0.06, random_state=rng)
        x = (x - np.array([0.5, 0.25])) * np.array([1.5, 2.0])
    elif name == "swissroll":
        from sklearn.datasets import make_swiss_roll
        x3, _ = make_swiss_roll(n, noise=0.3, random_state=rng)
        x = x3[:, [0, 2]] / 5.0
    else:  # checkerboard: 8 of the 16 unit squares of [-2, 2]^2
        x1 = rng.rand(n) * 4 - 2
        x2 = rng.rand(n) - rng.randint(0, 2, n) * 2.0
        x2 = x2 + (np.floor(x1) % 2)
        x = np.stack([x1, x2], 1) * 1.0
    return torch.tensor(x, dtype=torch.float32)


def exact_eps_model(gmm: GaussianMixture, alpha_bar_of_t):
    """The ideal noise predictor for mixture data: eps*(x, t) = -sqrt(1 - abar_t) grad log q_t(x) = E[eps | x_t = x].

    ``alpha_bar_of_t(t)`` maps the (float) time input to abar_t, e.g. ``lambda t: schedule.alpha_bars[int(t)]``
    or ``lambda t: sde.alpha_bar(t / T)``. Plug it into any sampler in place of a trained network to
    test the sampler alone.
    """
    def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t).reshape(-1).expand(x.shape[0])
        out = torch.empty_like(x)
        for tv in torch.unique(t):
            rows = t == tv
            ab = float(alpha_bar_of_t(float(tv)))
            out[rows] = (-math.sqrt(1 - ab) * gmm.noised(ab).score(x[rows])).to(x.dtype)
        return out
    return model
