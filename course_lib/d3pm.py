"""D3PM: discrete diffusion with transition matrices, its posterior, losses and the masked-LM link.

Equation numbers refer to Austin, Johnson, Ho, Tarlow & van
den Berg (2021), "Structured Denoising Diffusion Models in Discrete State-Spaces" (D3PM).

Conventions (the same as :mod:`course_lib.schedules`):

- a vocabulary of ``K`` categories; a transition matrix has rows = "from", columns = "to":
  ``[Q_t]_ij = q(x_t = j | x_{t-1} = i)``, so with one-hot *row* vectors
  ``q(x_t | x_{t-1}) = Cat(x_t; x_{t-1} Q_t)``                                        (eq. 1)
  ``q(x_t | x_0)     = Cat(x_t; x_0 Q-bar_t)``,  ``Q-bar_t = Q_1 Q_2 ... Q_t``           (eq. 2)
- index ``t`` runs over ``0..T`` and arrays carry a leading ``t = 0`` entry
  (``betas[0] = 0``, ``Q_0 = Q-bar_0 = I``);
- tokens are long tensors of shape ``(B, L)``; model outputs are x0-logits of shape ``(B, L, K)``;
- all probabilities are float64. Losses are in nats per token.

A :class:`DiscreteSchedule` stores every ``Q_t`` and ``Q-bar_t`` as dense ``(T+1, K, K)`` stacks:
meant for the course's small vocabularies (K up to a few hundred at T = 1000).
"""
from __future__ import annotations

import math

import torch

from .masked import exclude_mask
from .schedules import check_t

KINDS = ("uniform", "absorbing", "gaussian")
_DT = torch.float64


# --------------------------------------------------------------------------- validation helpers
def _check_K(K) -> None:
    if isinstance(K, bool) or not isinstance(K, int) or K < 2:
        raise ValueError(f"K (the number of categories) must be an integer >= 2, got {K!r}")


def _check_beta(beta, name: str = "beta") -> float:
    b = float(beta)
    if not (0.0 <= b <= 1.0):  # also rejects NaN
        raise ValueError(f"{name} must lie in [0, 1], got {beta!r}")
    return b


def _check_mask_id(mask_id, K: int) -> None:
    if isinstance(mask_id, bool) or not isinstance(mask_id, int) or not (0 <= mask_id < K):
        raise ValueError(f"mask_id must be an integer in [0, {K - 1}], got {mask_id!r}")


def _check_stochastic(Q: torch.Tensor, name: str = "Q") -> torch.Tensor:
    Q = torch.as_tensor(Q, dtype=_DT)
    if Q.ndim != 2 or Q.shape[0] != Q.shape[1] or Q.shape[0] < 2:
        raise ValueError(f"{name} must be a square (K, K) matrix with K >= 2, got shape {tuple(Q.shape)}")
    if not torch.isfinite(Q).all() or bool((Q < -1e-12).any()):
        raise ValueError(f"{name} must have finite, non-negative entries")
    if not torch.allclose(Q.sum(1), torch.ones(Q.shape[0], dtype=_DT), atol=1e-8):
        raise ValueError(f"every row of {name} must sum to 1")
    return Q


# --------------------------------------------------------------------------- transition matrices
def uniform_Q(beta, K: int) -> torch.Tensor:
    """Uniform noise, D3PM App. A.2.1: ``Q_t = (1 - beta_t) I + beta_t 1 1^T / K``.

    Doubly stochastic; its stationary distribution is uniform.
    """
    _check_K(K)
    b = _check_beta(beta)
    return (1 - b) * torch.eye(K, dtype=_DT) + b / K * torch.ones(K, K, dtype=_DT)


def absorbing_Q(beta, K: int, mask_id: int) -> torch.Tensor:
    """Absorbing ([MASK]) noise, D3PM App. A.2.2: ``Q_t = (1 - beta_t) I + beta_t 1 e_m^T``.

    Each token stays with probability ``1 - beta_t`` and jumps
    to the mask state ``m`` with probability ``beta_t``; row ``m`` is absorbing (``Q_mm = 1``).
    """
    _check_K(K)
    b = _check_beta(beta)
    _check_mask_id(mask_id, K)
    Q = (1 - b) * torch.eye(K, dtype=_DT)
    Q[:, mask_id] += b
    return Q


def gaussian_Q(beta, K: int) -> torch.Tensor:
    """Discretised Gaussian noise on ordinal categories, D3PM App. A.2.1 (not nearest-neighbour).

    For ``i != j``

        [Q_t]_ij = exp(-4 |i - j|^2 / ((K - 1)^2 beta_t)) / sum_{n=-(K-1)}^{K-1} exp(-4 n^2 / ((K - 1)^2 beta_t))

    and the diagonal takes the rest, ``[Q_t]_ii = 1 - sum_{l != i} [Q_t]_il``. The matrix is
    symmetric, hence doubly stochastic (uniform stationary distribution). ``beta = 0`` gives ``I``.
    """
    _check_K(K)
    b = _check_beta(beta)
    if b == 0.0:
        return torch.eye(K, dtype=_DT)
    n = torch.arange(-(K - 1), K, dtype=_DT)
    weights = torch.exp(-4 * n**2 / ((K - 1) ** 2 * b))
    idx = torch.arange(K)
    dist = (idx[:, None] - idx[None, :]).abs().to(_DT)
    Q = torch.exp(-4 * dist**2 / ((K - 1) ** 2 * b)) / weights.sum()
    Q.fill_diagonal_(0.0)
    Q += torch.diag(1 - Q.sum(1))
    return Q


def mixed_Q(alpha, beta, K: int, mask_id: int) -> torch.Tensor:
    """Absorbing + uniform mixture, D3PM App. A.2.5: ``Q = alpha 1 e_m^T + beta 1 1^T / K + (1 - alpha - beta) I``.

    (BERT as a one-step diffusion.)
    """
    _check_K(K)
    a, b = _check_beta(alpha, "alpha"), _check_beta(beta, "beta")
    if a + b > 1 + 1e-12:
        raise ValueError(f"alpha + beta must be <= 1, got {a} + {b}")
    _check_mask_id(mask_id, K)
    Q = (1 - a - b) * torch.eye(K, dtype=_DT) + b / K * torch.ones(K, K, dtype=_DT)
    Q[:, mask_id] += a
    return Q


def bert_Q(K: int, mask_id: int, p: float = 0.15) -> torch.Tensor:
    """BERT's corruption (Devlin et al. 2019) as one absorbing + uniform D3PM step.

    A token is selected with probability ``p``; a selected token
    becomes [MASK] w.p. 0.8, a uniformly random token of the K (possibly itself) w.p. 0.1, and is
    left unchanged w.p. 0.1. That is :func:`mixed_Q` with ``alpha = 0.8 p`` and ``beta = 0.1 p``:
    a non-mask token stays w.p. ``1 - 0.9 p + 0.1 p / K``, becomes [MASK] w.p. ``0.8 p + 0.1 p / K``
    and each other token w.p. ``0.1 p / K``.
    """
    p = _check_beta(p, "p")
    return mixed_Q(0.8 * p, 0.1 * p, K, mask_id)


def stationary(Q) -> torch.Tensor:
    """Stationary distribution ``pi = pi Q`` of a row-stochastic matrix (left eigenvector for eigenvalue 1).

    Uniform noise -> the uniform distribution; absorbing noise
    -> the point mass on [MASK]. Solved as the least-squares system ``[Q^T - I; 1^T] pi = [0; 1]``;
    when the stationary distribution is not unique (e.g. ``Q = I``) this returns the minimum-norm one.
    """
    Q = _check_stochastic(Q)
    K = Q.shape[0]
    A = torch.cat([Q.T - torch.eye(K, dtype=_DT), torch.ones(1, K, dtype=_DT)])
    rhs = torch.zeros(K + 1, 1, dtype=_DT)
    rhs[-1] = 1.0
    pi = torch.linalg.lstsq(A, rhs, driver="gelsd").solution[:, 0]
    pi = pi.clamp(min=0)
    return pi / pi.sum()


# --------------------------------------------------------------------------- continuous time (CTMC)
def rate_matrix(kind: str, K: int, mask_id: int | None = None) -> torch.Tensor:
    """The generator ``R`` of the continuous-time forward process (Campbell et al. 2022, "A Continuous Time
    Framework for Discrete Denoising Models"; Lou, Meng & Ermon 2024, SEDD), in this module's layout: rows
    "from", columns "to", ``R_ij`` (i != j) the rate of a jump from i to j, every row summing to 0. At time t
    the chain jumps with rates ``sigma(t) R``.

    uniform:   ``R = 1 1^T / K - I``   (jump to a uniformly drawn token, possibly itself)
    absorbing: ``R = 1 e_m^T - I``     (jump to [MASK]; the [MASK] row is 0). ``mask_id`` defaults to ``K - 1``.

    SEDD writes the transpose (columns "from", ``dp_t/dt = Q_t p_t`` for a column vector ``p_t``)."""
    _check_K(K)
    if kind == "uniform":
        if mask_id is not None:
            raise ValueError("mask_id only applies to absorbing noise")
        pi = torch.full((K,), 1.0 / K, dtype=_DT)
    elif kind == "absorbing":
        mask_id = K - 1 if mask_id is None else mask_id
        _check_mask_id(mask_id, K)
        pi = torch.zeros(K, dtype=_DT)
        pi[mask_id] = 1.0
    else:
        raise ValueError(f"unknown kind {kind!r}; the rate matrix is defined for 'uniform' and 'absorbing'")
    return torch.ones(K, 1, dtype=_DT) * pi - torch.eye(K, dtype=_DT)


def ctmc_transition(R, total_rate) -> torch.Tensor:
    """The transition matrix of the chain with rates ``sigma(s) R`` over an interval where ``sigma`` integrates
    to ``total_rate`` (``sigma-bar = int sigma(s) ds >= 0``): ``P = exp(sigma-bar R)``, by the matrix exponential.

    The rate matrices at different times are multiples of one ``R``, so they commute and the time-ordered
    exponential is this ordinary one. For the two ``R`` of :func:`rate_matrix` and ``sigma-bar = -log
    alpha-bar`` it is D3PM's closed form ``alpha-bar I + (1 - alpha-bar) 1 pi^T``."""
    R = torch.as_tensor(R, dtype=_DT)
    if R.ndim != 2 or R.shape[0] != R.shape[1] or R.shape[0] < 2 or not torch.isfinite(R).all():
        raise ValueError(f"R must be a finite square (K, K) matrix with K >= 2, got shape {tuple(R.shape)}")
    off = R - torch.diag(R.diagonal())
    if bool((off < -1e-12).any()) or float(R.sum(1).abs().max()) > 1e-9:
        raise ValueError("R must be a rate matrix: non-negative off the diagonal, every row summing to 0")
    c = float(total_rate)
    if not (math.isfinite(c) and c >= 0):
        raise ValueError(f"total_rate (the integrated rate) must be finite and >= 0, got {total_rate!r}")
    return torch.linalg.matrix_exp(c * R)


# --------------------------------------------------------------------------- schedules
class DiscreteSchedule:
    """``Q_1..Q_T`` and ``Q-bar_0..Q-bar_T`` for one kind of noise and one beta schedule (float64).

    ``Qs[0] = Qbars[0] = I``; ``Qbars[t] = Qbars[t-1] @ Qs[t]``
    (eq. 2). ``alpha_bars[t] = prod_{s<=t} (1 - beta_s)`` is the keep-probability of the closed forms
    (:meth:`closed_form_Qbar`, uniform and absorbing only). Build one from an explicit beta array
    here, or with :func:`uniform_schedule`, :func:`absorbing_schedule`, :func:`gaussian_schedule`.
    """

    def __init__(self, kind: str, betas, K: int, mask_id: int | None = None, name: str = "custom"):
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; choose one of {KINDS}")
        _check_K(K)
        betas = torch.as_tensor(betas, dtype=_DT)
        if betas.ndim != 1 or len(betas) < 1:
            raise ValueError(f"betas must be a non-empty 1-D array, got shape {tuple(betas.shape)}")
        if not bool(((betas >= 0) & (betas <= 1)).all()):
            raise ValueError("every beta_t must lie in [0, 1]")
        if kind == "absorbing":
            mask_id = K - 1 if mask_id is None else mask_id
            _check_mask_id(mask_id, K)
        elif mask_id is not None:
            raise ValueError(f"mask_id only applies to absorbing noise, not {kind!r}")
        self.kind, self.K, self.mask_id, self.name = kind, K, mask_id, name
        self.T = len(betas)
        self.betas = torch.cat([torch.zeros(1, dtype=_DT), betas])
        self.alpha_bars = torch.cumprod(1 - self.betas, dim=0)
        make = {"uniform": lambda b: uniform_Q(b, K), "gaussian": lambda b: gaussian_Q(b, K),
                "absorbing": lambda b: absorbing_Q(b, K, mask_id)}[kind]
        self.Qs = torch.stack([torch.eye(K, dtype=_DT)] + [make(float(b)) for b in betas])
        Qbars = [torch.eye(K, dtype=_DT)]
        for t in range(1, self.T + 1):
            Qbars.append(Qbars[-1] @ self.Qs[t])
        self.Qbars = torch.stack(Qbars)

    def Q(self, t) -> torch.Tensor:
        """The one-step matrix ``Q_t`` (``Q_0 = I``)."""
        return self.Qs[_check_t(t, self)]

    def Qbar(self, t) -> torch.Tensor:
        """``Q-bar_t = Q_1 ... Q_t`` as the explicit cumulative product (``Q-bar_0 = I``), eq. 2."""
        return self.Qbars[_check_t(t, self)]

    def closed_form_Qbar(self, t) -> torch.Tensor:
        """Closed form of ``Q-bar_t`` (D3PM App. A.2), with ``alpha-bar_t = prod_{s<=t} (1 - beta_s)``:

        uniform:   ``alpha-bar_t I + (1 - alpha-bar_t) 1 1^T / K``
        absorbing: ``alpha-bar_t I + (1 - alpha-bar_t) 1 e_m^T``
        """
        tt = _check_t(t, self)
        if self.kind == "gaussian":
            raise ValueError("the discretised Gaussian has no simple closed form; use Qbar(t)")
        ab = self.alpha_bars[tt].reshape(tt.shape + (1, 1))
        eye = torch.eye(self.K, dtype=_DT)
        if self.kind == "uniform":
            return ab * eye + (1 - ab) / self.K * torch.ones(self.K, self.K, dtype=_DT)
        e_m = torch.zeros(self.K, self.K, dtype=_DT)
        e_m[:, self.mask_id] = 1.0
        return ab * eye + (1 - ab) * e_m

    def __repr__(self) -> str:
        extra = f", mask_id={self.mask_id}" if self.kind == "absorbing" else ""
        return f"DiscreteSchedule({self.kind!r}, {self.name!r}, K={self.K}, T={self.T}{extra})"


def uniform_schedule(K: int, T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> DiscreteSchedule:
    """D3PM's cosine schedule for uniform noise: ``f(t) = cos(((t/T + s)/(1 + s)) pi/2)``,
    ``beta_t = min(1 - f(t)/f(t-1), max_beta)``. Note: ``f`` is *not* squared, unlike Nichol &
    Dhariwal's cosine schedule in :mod:`course_lib.schedules`."""
    _check_T(T)
    t = torch.arange(T + 1, dtype=_DT)
    f = torch.cos(((t / T + s) / (1 + s)) * math.pi / 2)
    betas = (1 - f[1:] / f[:-1]).clamp(max=max_beta)
    return DiscreteSchedule("uniform", betas, K, name="cosine")


def absorbing_schedule(K: int, T: int = 1000, mask_id: int | None = None) -> DiscreteSchedule:
    """D3PM's schedule for absorbing noise: ``beta_t = 1 / (T - t + 1)`` (the mutual-information or
    "jsd" schedule). Then ``alpha-bar_t = (T - t) / T``: a token is [MASK] at step t with probability
    exactly ``t / T``. ``mask_id`` defaults to ``K - 1``."""
    _check_T(T)
    t = torch.arange(1, T + 1, dtype=_DT)
    return DiscreteSchedule("absorbing", 1.0 / (T - t + 1), K, mask_id=mask_id, name="1/(T-t+1)")


def gaussian_schedule(K: int, T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> DiscreteSchedule:
    """Discretised Gaussian noise with a linear beta schedule (D3PM uses linear betas for it; the
    endpoints here are Ho et al.'s defaults)."""
    _check_T(T)
    return DiscreteSchedule("gaussian", torch.linspace(beta_start, beta_end, T, dtype=_DT), K, name="linear")


def make_discrete_schedule(kind: str, K: int, T: int = 1000, mask_id: int | None = None) -> DiscreteSchedule:
    """D3PM's default schedule for a kind of noise: one of ``KINDS``."""
    if kind == "absorbing":
        return absorbing_schedule(K, T, mask_id)
    if mask_id is not None:
        raise ValueError(f"mask_id only applies to absorbing noise, not {kind!r}")
    if kind == "uniform":
        return uniform_schedule(K, T)
    if kind == "gaussian":
        return gaussian_schedule(K, T)
    raise ValueError(f"unknown kind {kind!r}; choose one of {KINDS}")


def _check_T(T) -> None:
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ValueError(f"T must be a positive integer, got {T!r}")


def _check_t(t, schedule: DiscreteSchedule, lo: int = 0) -> torch.Tensor:
    """Integer time step(s) in [lo, T] as a long tensor (the same rule as chapter 1's schedules)."""
    return check_t(t, schedule, lo=lo)


# --------------------------------------------------------------------------- input checks for tokens
def _check_tokens(x, schedule: DiscreteSchedule, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        raise ValueError(f"{name} must be an integer (long) tensor of token ids")
    if x.ndim != 2:
        raise ValueError(f"{name} must have shape (B, L), got {tuple(x.shape)}")
    if x.numel() and (int(x.min()) < 0 or int(x.max()) >= schedule.K):
        raise ValueError(f"{name} holds token ids outside [0, {schedule.K - 1}]")
    return x.long()


def _check_t_batch(t, schedule: DiscreteSchedule, B: int, lo: int) -> torch.Tensor:
    tt = _check_t(t, schedule, lo=lo)
    if tt.ndim == 0:
        tt = tt.expand(B)
    if tt.ndim != 1 or tt.shape[0] != B:
        raise ValueError(f"t must be a scalar or have shape ({B},), got {tuple(tt.shape)}")
    return tt


def _check_probs(p, shape, name: str) -> torch.Tensor:
    p = torch.as_tensor(p, dtype=_DT)
    if tuple(p.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(p.shape)}")
    if not torch.isfinite(p).all() or bool((p < 0).any()):
        raise ValueError(f"{name} must be finite and non-negative")
    if not torch.allclose(p.sum(-1), torch.ones((), dtype=_DT), atol=1e-6):
        raise ValueError(f"{name} must sum to 1 over the last (category) axis")
    return p


def _check_logits(logits, x: torch.Tensor, K: int) -> torch.Tensor:
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise ValueError("logits_x0 must be a floating-point tensor")
    if tuple(logits.shape) != tuple(x.shape) + (K,):
        raise ValueError(f"logits_x0 must have shape {tuple(x.shape) + (K,)}, got {tuple(logits.shape)}")
    if torch.isnan(logits).any() or torch.isposinf(logits).any():
        raise ValueError("logits_x0 contains NaN or +inf")
    return logits.to(_DT)


def _check_mask(mask, x: torch.Tensor) -> torch.Tensor:
    if mask is None:
        return torch.ones(x.shape, dtype=_DT)
    mask = torch.as_tensor(mask)
    if tuple(mask.shape) != tuple(x.shape):
        raise ValueError(f"mask must have shape {tuple(x.shape)}, got {tuple(mask.shape)}")
    return mask.to(_DT)


# --------------------------------------------------------------------------- forward process
def q_probs(x0: torch.Tensor, t, schedule: DiscreteSchedule) -> torch.Tensor:
    """``q(x_t | x_0) = Cat(x_t; x_0 Q-bar_t)`` (eq. 2): the x0-rows of ``Q-bar_t``, shape ``(B, L, K)``.
    """
    x0 = _check_tokens(x0, schedule, "x0")
    tt = _check_t_batch(t, schedule, x0.shape[0], lo=0)
    return schedule.Qbars[tt[:, None], x0]


def q_sample(x0: torch.Tensor, t, schedule: DiscreteSchedule, generator=None) -> torch.Tensor:
    """Sample ``x_t ~ Cat(x_0 Q-bar_t)`` (eq. 2) for tokens ``x0`` of shape ``(B, L)``; ``t`` a scalar or ``(B,)``.
    """
    probs = q_probs(x0, t, schedule)
    flat = probs.reshape(-1, schedule.K)
    if flat.shape[0] == 0:
        return x0.clone()
    return torch.multinomial(flat, 1, generator=generator).reshape(x0.shape)


# --------------------------------------------------------------------------- posterior and reverse process
def _posterior_factors(x_t: torch.Tensor, x0, t, schedule: DiscreteSchedule):
    """The two factors of eq. 3, ``x_t Q_t^T`` and ``x_0 Q-bar_{t-1}``, each ``(B, L, K)``."""
    x_t = _check_tokens(x_t, schedule, "x_t")
    tt = _check_t_batch(t, schedule, x_t.shape[0], lo=1)
    rows = torch.arange(len(tt))[:, None]
    fact1 = schedule.Qs[tt].transpose(-1, -2)[rows, x_t]                  # x_t Q_t^T: q(x_t | x_{t-1}=j)
    Qbar_prev = schedule.Qbars[tt - 1]                                    # (B, K, K)
    if isinstance(x0, torch.Tensor) and not x0.is_floating_point():
        x0 = _check_tokens(x0, schedule, "x0")
        if x0.shape != x_t.shape:
            raise ValueError(f"x0 and x_t must have the same shape, got {tuple(x0.shape)} and {tuple(x_t.shape)}")
        fact2 = Qbar_prev[rows, x0]                                       # x_0 Q-bar_{t-1}
    else:
        p0 = _check_probs(x0, tuple(x_t.shape) + (schedule.K,), "x0 probabilities")
        fact2 = p0 @ Qbar_prev                                            # p~_0 Q-bar_{t-1}
    return fact1, fact2


def q_posterior_logits(x_t: torch.Tensor, x0, t, schedule: DiscreteSchedule) -> torch.Tensor:
    """Unnormalised log-probabilities of ``x_{t-1}``, eq. 3 (for ``t >= 1``), shape ``(B, L, K)``:

        q(x_{t-1} | x_t, x_0) ∝ (x_t Q_t^T) ⊙ (x_0 Q-bar_{t-1})

    ``x0`` is either token ids ``(B, L)`` (the true posterior) or probabilities ``(B, L, K)``
    (a prediction p~_theta(x_0 | x_t)). With probabilities this is exactly the x0-parameterisation
    of eq. 4, ``p_theta(x_{t-1} | x_t) ∝ sum_{x~0} q(x_{t-1}, x_t | x~0) p~_theta(x~0 | x_t)``,
    because ``q(x_{t-1}, x_t | x~0) = [Q_t]_{x_{t-1}, x_t} [Q-bar_{t-1}]_{x~0, x_{t-1}}``.
    Impossible states get ``-inf``.
    """
    fact1, fact2 = _posterior_factors(x_t, x0, t, schedule)
    return torch.log(fact1) + torch.log(fact2)


def q_posterior(x_t: torch.Tensor, x0, t, schedule: DiscreteSchedule) -> torch.Tensor:
    """Normalised eq. 3 / eq. 4: probabilities of ``x_{t-1}``, shape ``(B, L, K)``.

    Computed in probability space (so gradients stay finite where some states are impossible).
    Raises ValueError where ``x_t`` has probability zero under ``x0`` (the posterior is undefined).
    """
    fact1, fact2 = _posterior_factors(x_t, x0, t, schedule)
    unnorm = fact1 * fact2
    Z = unnorm.sum(-1, keepdim=True)
    if bool((Z <= 0).any()):
        raise ValueError("x_t has probability zero given x0 at some position: the posterior is undefined")
    return unnorm / Z


def p_theta(logits_x0: torch.Tensor, x_t: torch.Tensor, t, schedule: DiscreteSchedule) -> torch.Tensor:
    """Reverse step of the x0-parameterisation (eq. 4) from x0-logits: ``q_posterior(x_t, softmax(logits), t)``.
    """
    x_t = _check_tokens(x_t, schedule, "x_t")
    logits = _check_logits(logits_x0, x_t, schedule.K)
    return q_posterior(x_t, torch.softmax(logits, dim=-1), t, schedule)


# --------------------------------------------------------------------------- losses
def _kl(q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """sum_j q_j (log q_j - log p_j) with 0 log 0 = 0 (inf where q_j > 0 = p_j)."""
    pos = q > 0
    one = torch.ones((), dtype=_DT)
    log_ratio = torch.log(torch.where(pos, q, one)) - torch.log(torch.where(pos, p, one))
    return torch.where(pos, q * log_ratio, torch.zeros((), dtype=_DT)).sum(-1)


def vb_term(logits_x0: torch.Tensor, x0: torch.Tensor, x_t: torch.Tensor, t, schedule: DiscreteSchedule,
            mask=None) -> torch.Tensor:
    """Per-token variational-bound term ``L_{t-1}`` in nats, shape ``(B, L)`` (D3PM eq. 1's sum):

        t >= 2:  KL( q(x_{t-1} | x_t, x_0) || p_theta(x_{t-1} | x_t) )
        t  = 1:  -log p_theta(x_0 | x_1)

    with ``p_theta`` the x0-parameterisation (eq. 4) of ``softmax(logits_x0)``; at ``t = 1``
    (``Q-bar_0 = I``) this is ``p_theta(x_0 | x_1) ∝ [Q_1]_{x_0, x_1} p~_theta(x_0 | x_1)``.
    Because ``q(x_0 | x_1, x_0)`` is one-hot, the t = 1 term is also the KL formula of t >= 2.
    (The official code uses the raw ``p~_theta`` at ``t = 1``; the two agree whenever ``Q_1`` is close
    to ``I`` or, for absorbing noise, at masked positions.) ``mask`` (``(B, L)``, 1 = counted, 0 =
    [PAD]) zeroes excluded positions.
    """
    x0 = _check_tokens(x0, schedule, "x0")
    x_t = _check_tokens(x_t, schedule, "x_t")
    if x0.shape != x_t.shape:
        raise ValueError(f"x0 and x_t must have the same shape, got {tuple(x0.shape)} and {tuple(x_t.shape)}")
    m = _check_mask(mask, x0)
    tt = _check_t_batch(t, schedule, x0.shape[0], lo=1)
    p = p_theta(logits_x0, x_t, tt, schedule)
    q = q_posterior(x_t, x0, tt, schedule)
    kl = _kl(q, p)
    nll = -torch.log(p.gather(-1, x0[..., None])[..., 0])
    out = torch.where((tt == 1)[:, None], nll, kl)
    return torch.where(m > 0, out * m, torch.zeros((), dtype=_DT))


def prior_kl(x0: torch.Tensor, schedule: DiscreteSchedule) -> torch.Tensor:
    """Prior term ``L_T = KL(q(x_T | x_0) || pi)`` per token, with ``pi`` the stationary distribution of ``Q_T``
    (uniform noise: uniform; absorbing: [MASK]). Shape ``(B, L)``."""
    q = q_probs(x0, schedule.T, schedule)
    pi = stationary(schedule.Qs[schedule.T])
    return _kl(q, pi.expand_as(q))


def hybrid_loss(logits_x0: torch.Tensor, x0: torch.Tensor, x_t: torch.Tensor, t, schedule: DiscreteSchedule,
                lam: float = 0.01, mask=None) -> torch.Tensor:
    """D3PM's hybrid loss, eq. 5: ``L_lambda = L_vb + lambda E[-log p~_theta(x_0 | x_t)]`` (scalar, nats/token).

    ``L_vb`` here is the single-step term :func:`vb_term` at the sampled ``t`` (a one-sample estimate;
    multiply by T for the sum over t) and the auxiliary term is the plain cross-entropy of the
    x0-prediction at every counted position. Both are averaged over the positions with ``mask = 1``.
    ``lam = 0.01`` is the paper's choice for text.
    """
    if not (float(lam) >= 0 and math.isfinite(float(lam))):
        raise ValueError(f"lam must be a finite non-negative number, got {lam!r}")
    vb = vb_term(logits_x0, x0, x_t, t, schedule, mask=mask)
    m = _check_mask(mask, x0)
    logp = torch.log_softmax(logits_x0.to(_DT), dim=-1)
    ce = -logp.gather(-1, x0[..., None])[..., 0]
    ce = torch.where(m > 0, ce * m, torch.zeros((), dtype=_DT))
    denom = m.sum().clamp(min=1)
    return (vb.sum() + lam * ce.sum()) / denom


# --------------------------------------------------------------------------- the masked-LM identity
def absorbing_weight(t, schedule: DiscreteSchedule) -> torch.Tensor:
    """Weight ``(alpha-bar_{t-1} - alpha-bar_t) / (1 - alpha-bar_t)`` = posterior probability of unmasking
    at step t; equals ``1/t`` for ``beta_t = 1/(T - t + 1)``."""
    if schedule.kind != "absorbing":
        raise ValueError("absorbing_weight needs an absorbing schedule")
    tt = _check_t(t, schedule, lo=1)
    ab = schedule.alpha_bars
    return (ab[tt - 1] - ab[tt]) / (1 - ab[tt])


def absorbing_mlm_identity(logits_x0: torch.Tensor, x0: torch.Tensor, x_t: torch.Tensor, t,
                           schedule: DiscreteSchedule):
    """Both sides of the chapter 2 identity, per sequence: returns ``(lhs, rhs)``, each ``(B,)``.

    Statement (absorbing noise, x0 free of [MASK], an x0-prediction with zero mass on [MASK], which
    this function enforces with :func:`course_lib.masked.exclude_mask`). For every step ``t >= 1``:

        lhs = sum_{positions i} L_{t-1}(i)                   (vb_term, summed over the sequence)
        rhs = w_t * sum_{i : x_t^i = [MASK]} -log p~_theta(x_0^i | x_t)

    with ``w_t = (alpha-bar_{t-1} - alpha-bar_t)/(1 - alpha-bar_t)``, which is exactly ``1/t`` for
    ``beta_t = 1/(T - t + 1)``. Unmasked positions contribute 0 to the left side (the reverse step
    copies them), masked ones ``w_t`` times their cross-entropy; the sum is over positions, not a
    mean over masked positions (dividing both sides by L gives the per-token form). For ``t = 1`` the
    term ``-log p_theta(x_0 | x_1)`` (eq. 4 with ``Q-bar_0 = I``) is the plain masked cross-entropy,
    ``w_1 = 1``. Derivation: at a masked position q(x_{t-1} | x_t, x_0) puts ``w_t`` on ``x_0`` and
    ``1 - w_t`` on [MASK], p_theta puts ``w_t p~(j)`` on each ``j != m`` and ``1 - w_t`` on [MASK], so
    the KL is ``w_t log(w_t / (w_t p~(x_0))) = -w_t log p~(x_0)``.
    """
    if schedule.kind != "absorbing":
        raise ValueError("the masked-LM identity needs an absorbing schedule")
    x0 = _check_tokens(x0, schedule, "x0")
    x_t = _check_tokens(x_t, schedule, "x_t")
    if bool((x0 == schedule.mask_id).any()):
        raise ValueError("x0 must not contain the [MASK] token")
    tt = _check_t_batch(t, schedule, x0.shape[0], lo=1)
    logits = exclude_mask(_check_logits(logits_x0, x0, schedule.K), schedule.mask_id)
    lhs = vb_term(logits, x0, x_t, tt, schedule).sum(-1)
    ce = -torch.log_softmax(logits, dim=-1).gather(-1, x0[..., None])[..., 0]
    masked = (x_t == schedule.mask_id).to(_DT)
    rhs = absorbing_weight(tt, schedule) * (ce * masked).sum(-1)
    return lhs, rhs
