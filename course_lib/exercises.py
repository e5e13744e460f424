"""Checkers for the chapters' exercises: each compares a student's function with the course's
reference on random inputs and explains what is wrong, recognising the usual mistakes.

Introduced in chapter 1 ("Your turn" cells). A checker prints one line and returns True when the
function is right; otherwise it raises :class:`ExerciseError` (an ``AssertionError``) with a hint.
A stub that still raises ``NotImplementedError`` is let through unchanged, so student notebooks
show exactly which exercises are left.
"""
from __future__ import annotations

from typing import Callable

import torch

from . import d3pm, ddpm, llada, masked, schedules, score


class ExerciseError(AssertionError):
    """A student's answer is wrong; the message says how."""


def _run(number: str, fn: Callable, *args):
    try:
        out = fn(*args)
    except NotImplementedError:
        raise
    except Exception as e:  # show the student's own error with context
        raise ExerciseError(f"Exercise {number}: your function raised {type(e).__name__}: {e}") from e
    if not isinstance(out, torch.Tensor):
        raise ExerciseError(f"Exercise {number}: return a torch.Tensor, got {type(out).__name__}")
    return out


def _compare(number: str, got: torch.Tensor, want: torch.Tensor, mistakes: dict, what: str) -> bool:
    if got.shape != want.shape:
        raise ExerciseError(f"Exercise {number}: expected shape {tuple(want.shape)}, got {tuple(got.shape)}. "
                            "Check how the per-example coefficient broadcasts against x (reshape it to (B, 1)).")
    if not torch.isfinite(got).all():
        raise ExerciseError(f"Exercise {number}: your result has NaN or inf values")
    if torch.allclose(got.double(), want.double(), rtol=1e-4, atol=1e-5):
        print(f"Exercise {number} passed: {what}")
        return True
    for hint, wrong in mistakes.items():
        if torch.allclose(got.double(), wrong.double(), rtol=1e-4, atol=1e-5):
            raise ExerciseError(f"Exercise {number}: close, but {hint}")
    err = float((got.double() - want.double()).abs().max())
    raise ExerciseError(f"Exercise {number}: wrong values (max abs error {err:.3g}). Expected {what}")


def _setup(seed: int = 0, B: int = 64, D: int = 2):
    g = torch.Generator().manual_seed(seed)
    sch = schedules.linear_schedule(1000)
    x0 = torch.randn(B, D, generator=g, dtype=torch.float64)
    t = torch.randint(2, sch.T + 1, (B,), generator=g)
    eps = torch.randn(B, D, generator=g, dtype=torch.float64)
    return g, sch, x0, t, eps


def check_q_sample(fn: Callable) -> bool:
    """Exercise 1.1: ``fn(x0, t, eps, alpha_bars) -> x_t`` (closed-form forward process, eq. 4)."""
    _, sch, x0, t, eps = _setup(1)
    got = _run("1.1", fn, x0, t, eps, sch.alpha_bars)
    ab = sch.alpha_bars[t][:, None]
    want = ddpm.q_sample(x0, t, sch, noise=eps)
    mistakes = {
        "use sqrt(alpha_bar_t) and sqrt(1 - alpha_bar_t), not alpha_bar_t and 1 - alpha_bar_t (those are the variances)":
            ab * x0 + (1 - ab) * eps,
        "the noise is scaled by sqrt(1 - alpha_bar_t), not sqrt(beta_t) (that is one step, eq. 2)":
            torch.sqrt(ab) * x0 + torch.sqrt(sch.betas[t][:, None]) * eps,
        "index alpha_bars with t, not t - 1": torch.sqrt(sch.alpha_bars[t - 1][:, None]) * x0
            + torch.sqrt(1 - sch.alpha_bars[t - 1][:, None]) * eps,
    }
    return _compare("1.1", got, want, mistakes, "x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps")


def check_posterior_mean(fn: Callable) -> bool:
    """Exercise 1.2: ``fn(x0, xt, t, betas, alphas, alpha_bars) -> mu~_t(x_t, x_0)`` (eq. 7)."""
    g, sch, x0, t, eps = _setup(2)
    xt = ddpm.q_sample(x0, t, sch, noise=eps)
    got = _run("1.2", fn, x0, xt, t, sch.betas, sch.alphas, sch.alpha_bars)
    want, _ = ddpm.q_posterior(x0, xt, t, sch)
    ab, abp = sch.alpha_bars[t][:, None], sch.alpha_bars[t - 1][:, None]
    b, a = sch.betas[t][:, None], sch.alphas[t][:, None]
    mistakes = {
        "the x_0 coefficient uses sqrt(alpha_bar_{t-1}), not sqrt(alpha_bar_t)":
            torch.sqrt(ab) * b / (1 - ab) * x0 + torch.sqrt(a) * (1 - abp) / (1 - ab) * xt,
        "the x_t coefficient uses sqrt(alpha_t), not alpha_t":
            torch.sqrt(abp) * b / (1 - ab) * x0 + a * (1 - abp) / (1 - ab) * xt,
        "the coefficients swap: x_0 goes with beta_t, x_t with (1 - alpha_bar_{t-1})":
            torch.sqrt(abp) * (1 - abp) / (1 - ab) * x0 + torch.sqrt(a) * b / (1 - ab) * xt,
    }
    return _compare("1.2", got, want, mistakes,
                    "mu~ = sqrt(abar_{t-1}) beta_t/(1 - abar_t) x_0 + sqrt(alpha_t)(1 - abar_{t-1})/(1 - abar_t) x_t")


def check_ddim_step(fn: Callable) -> bool:
    """Exercise 1.3: ``fn(x_t, eps_hat, t, s, alpha_bars) -> x_s`` (deterministic DDIM, eta = 0)."""
    g, sch, x0, _, eps = _setup(3)
    t, s = 600, 550
    xt = ddpm.q_sample(x0, t, sch, noise=eps)
    eps_hat = eps + 0.1 * torch.randn(eps.shape, generator=g, dtype=eps.dtype)
    got = _run("1.3", fn, xt, eps_hat, t, s, sch.alpha_bars)
    want, x0_hat = ddpm.ddim_step(xt, eps_hat, t, s, sch, eta=0.0)
    ab_s = float(sch.alpha_bars[s])
    mistakes = {
        "the noise direction is scaled by sqrt(1 - alpha_bar_s), the noise level at the *target* time s":
            ab_s ** 0.5 * x0_hat + float(1 - sch.alpha_bars[t]) ** 0.5 * eps_hat,
        "that is x0_hat itself: re-noise it to time s with the predicted eps": x0_hat,
    }
    return _compare("1.3", got, want, mistakes,
                    "x_s = sqrt(abar_s) x0_hat + sqrt(1 - abar_s) eps_hat, x0_hat = (x_t - sqrt(1 - abar_t) eps_hat)/sqrt(abar_t)")


def check_langevin_step(fn: Callable) -> bool:
    """Exercise 1.4: ``fn(x, score, step_size, z) -> x'`` (one unadjusted Langevin step)."""
    g = torch.Generator().manual_seed(4)
    x = torch.randn(64, 2, generator=g, dtype=torch.float64)
    sc, z = -x, torch.randn(64, 2, generator=g, dtype=torch.float64)
    step = 0.05
    got = _run("1.4", fn, x, sc, step, z)
    want = score.langevin_step(x, sc, step, z)
    mistakes = {
        "the drift is (step/2) * score, not step * score": x + step * sc + step ** 0.5 * z,
        "the noise is scaled by sqrt(step), not step": x + 0.5 * step * sc + step * z,
        "Langevin climbs the log-density: add the score, do not subtract it": x - 0.5 * step * sc + step ** 0.5 * z,
    }
    return _compare("1.4", got, want, mistakes, "x' = x + (step/2) score + sqrt(step) z")


# ------------------------------------------------------------------ chapter 2
def check_qbar(fn: Callable) -> bool:
    """Exercise 2.1: ``fn(alpha_bar, K, kind, mask_id) -> Q-bar_t`` (K, K), the closed form of the cumulative
    transition matrix for ``kind`` "uniform" or "absorbing" (D3PM App. A.2), as float64."""
    K, m = 7, 6
    for kind in ("uniform", "absorbing"):
        sch = d3pm.make_discrete_schedule(kind, K, T=50, mask_id=m if kind == "absorbing" else None)
        t = 17
        ab = float(sch.alpha_bars[t])
        got = _run("2.1", fn, ab, K, kind, m)
        want = sch.Qbar(t)
        eye, ones = torch.eye(K, dtype=torch.float64), torch.ones(K, K, dtype=torch.float64)
        e_m = torch.zeros(K, K, dtype=torch.float64)
        e_m[:, m] = 1
        mistakes = {
            "the uniform part spreads (1 - alpha_bar) over K tokens: divide by K so every row sums to 1":
                ab * eye + (1 - ab) * ones,
            "alpha_bar is the probability of *keeping* the token: it goes on the diagonal, 1 - alpha_bar off it":
                (1 - ab) * eye + ab * (ones / K if kind == "uniform" else e_m),
            "rows are 'from', columns are 'to': the mass of absorbing noise goes to the [MASK] *column*":
                ab * eye + (1 - ab) * e_m.T,
        }
        _compare("2.1", got, want, mistakes, f"{kind}: Q-bar_t = explicit product Q_1...Q_t (checked at t = {t})")
    return True


def check_d3pm_posterior(fn: Callable) -> bool:
    """Exercise 2.2: ``fn(x_t, x0, Q_t, Qbar_tm1, Qbar_t) -> q(x_{t-1} | x_t, x_0)`` of shape (B, K):
    x_t, x0 are (B,) token ids; the matrices are (K, K) row-stochastic (D3PM eq. 3)."""
    K = 6
    sch = d3pm.gaussian_schedule(K, T=20, beta_start=0.05, beta_end=0.3)   # noisy enough that every term matters
    g = torch.Generator().manual_seed(22)
    t = 9
    x0 = torch.randint(0, K, (64,), generator=g)
    xt = d3pm.q_sample(x0[:, None], t, sch, generator=g)[:, 0]
    Qt, Qa, Qb = sch.Q(t), sch.Qbar(t - 1), sch.Qbar(t)
    got = _run("2.2", fn, xt, x0, Qt, Qa, Qb)
    want = d3pm.q_posterior(xt[:, None], x0[:, None], t, sch)[:, 0]
    unnorm = Qt[:, xt].T * Qa[x0]
    mistakes = {
        "q(x_t | x_{t-1}) as a function of x_{t-1} is the *column* x_t of Q_t (Q_t[:, x_t]), not its row":
            (Qt[xt] * Qa[x0]) / (Qt[xt] * Qa[x0]).sum(-1, keepdim=True),
        "normalise: divide by q(x_t | x_0) = Q-bar_t[x_0, x_t] so each row sums to 1": unnorm,
        "the prior over x_{t-1} is Q-bar_{t-1}[x_0], not Q-bar_t[x_0]":
            (Qt[:, xt].T * Qb[x0]) / (Qt[:, xt].T * Qb[x0]).sum(-1, keepdim=True),
    }
    return _compare("2.2", got, want, mistakes, "q(x_{t-1} | x_t, x_0) = Q_t[:, x_t] * Q-bar_{t-1}[x_0] / Q-bar_t[x_0, x_t]")


def check_subs(fn: Callable) -> bool:
    """Exercise 2.3: ``fn(logits, x_t, mask_id) -> log-probabilities`` (B, L, V) under MDLM's SUBS
    parameterisation (eq. 7). Compared as probabilities (exp), so -inf and a large negative number agree."""
    g = torch.Generator().manual_seed(23)
    B, L, V, m = 8, 10, 9, 8
    logits = torch.randn(B, L, V, generator=g, dtype=torch.float64)
    x0 = torch.randint(0, V - 1, (B, L), generator=g)
    xt = torch.where(torch.rand(B, L, generator=g) < 0.5, torch.full_like(x0, m), x0)
    got = _run("2.3", fn, logits, xt, m)
    want = masked.subs_log_probs(logits, xt, m).exp()
    plain = torch.softmax(logits, -1)
    no_mask = torch.softmax(logits.masked_fill(torch.arange(V) == m, float("-inf")), -1)
    mistakes = {
        "rule 1, zero masking probability: set the [MASK] logit to -inf before the softmax":
            torch.where((xt == m)[..., None], plain, torch.nn.functional.one_hot(xt, V).double()),
        "rule 2, carry-over unmasking: at an unmasked position the distribution is a point mass on x_t": no_mask,
    }
    return _compare("2.3", got.exp() if got.dtype.is_floating_point else got, want, mistakes,
                    "SUBS: [MASK] gets probability 0; unmasked positions copy x_t")


def check_mdlm_loss(fn: Callable) -> bool:
    """Exercise 2.4: ``fn(logits, x0, x_t, t, mask_id) -> (B,)`` per-sequence NELBO estimate of MDLM with the
    linear schedule alpha_t = 1 - t (eq. 10-11): sum over masked positions of (1/t) * -log p(x0 | x_t)."""
    g = torch.Generator().manual_seed(24)
    B, L, V, m = 16, 12, 9, 8
    logits = torch.randn(B, L, V, generator=g, dtype=torch.float64)
    x0 = torch.randint(0, V - 1, (B, L), generator=g)
    t = masked.sample_times(B, g).double()
    xt, msk = masked.forward_mask(x0, t, "linear", m, g)
    got = _run("2.4", fn, logits, x0, xt, t, m)
    want = masked.mdlm_loss(logits, x0, xt, msk, t, "linear", mask_id=m).nelbo
    logp = masked.subs_log_probs(logits, xt, m)
    nll = torch.where(msk, -logp.gather(-1, x0[..., None])[..., 0], torch.zeros(()))
    mistakes = {
        "weight each masked token's loss by w(t) = -alpha'_t / (1 - alpha_t) = 1/t": nll.sum(1),
        "the NELBO sums over masked positions; do not divide by how many are masked":
            nll.sum(1) / t / msk.sum(1).clamp(min=1),
        "the weight is 1/t, not t": nll.sum(1) * t,
    }
    return _compare("2.4", got, want, mistakes, "NELBO_t(x) = (1/t) sum_{masked l} -log x_theta^l(z_t)[x^l]")


# ------------------------------------------------------------------ chapter 3
def _call(number: str, fn: Callable, *args):
    """Like :func:`_run`, for functions that return something other than one tensor."""
    try:
        return fn(*args)
    except NotImplementedError:
        raise
    except Exception as e:
        raise ExerciseError(f"Exercise {number}: your function raised {type(e).__name__}: {e}") from e


def _fail(number: str, message: str):
    raise ExerciseError(f"Exercise {number}: {message}")


def _not_mask(x: torch.Tensor, mask_id: int) -> torch.Tensor:
    """Token ids drawn in 0..V-2, shifted past ``mask_id``: clean text that never contains [MASK]."""
    return x + (x >= mask_id).long()


def check_forward_process(fn: Callable) -> bool:
    """Exercise 3.1: ``fn(x0, mask_id, generator, eps=1e-3) -> (noisy, masked, p_mask)``, LLaDA's forward
    process: t ~ U(0, 1) per row, p_mask = (1 - eps) t + eps, each token masked independently with
    probability p_mask. Random draws differ between correct implementations, so the checker tests the
    structure exactly and the distribution statistically, on 4000 rows (called with eps = 0.2, so that
    a forgotten eps shows)."""
    number = "3.1"
    B, L, V, m, eps = 4000, 50, 20, 7, 0.2
    x0 = _not_mask(torch.randint(0, V - 1, (B, L), generator=torch.Generator().manual_seed(31)), m)
    x0_in = x0.clone()
    out = _call(number, fn, x0_in, m, torch.Generator().manual_seed(310), eps)
    if not isinstance(out, (tuple, list)) or len(out) != 3 or not all(isinstance(o, torch.Tensor) for o in out):
        _fail(number, f"return a tuple of three tensors (noisy, masked, p_mask), got {type(out).__name__}")
    noisy, msk, p = out
    if not torch.equal(x0_in, x0):
        _fail(number, "do not modify x0 in place: build noisy = torch.where(masked, mask_id, x0), a new tensor")
    if noisy.shape != (B, L) or noisy.dtype != x0.dtype:
        _fail(number, f"noisy must be token ids like x0: shape {(B, L)}, dtype {x0.dtype}; "
                      f"got shape {tuple(noisy.shape)}, dtype {noisy.dtype}")
    if msk.shape != (B, L) or msk.dtype != torch.bool:
        _fail(number, f"masked must be a bool tensor of shape (B, L) = {(B, L)}, e.g. "
                      f"torch.rand(B, L, generator=generator) < p_mask[:, None]; got shape {tuple(msk.shape)}, "
                      f"dtype {msk.dtype}")
    frac = msk.double().mean(1)                       # fraction of masked tokens in each row
    fixed_15 = abs(float(frac.mean()) - 0.15) < 0.02
    hint_15 = ("LLaDA does not mask a fixed 15% of the tokens (that is BERT): each row draws its own t ~ U(0, 1) "
               "and masks each token with probability p_mask = (1 - eps) t + eps, anywhere from almost none to all")
    hint_single = ("draw one t per row, t = torch.rand(B, generator=generator), so p_mask has shape (B,): "
                   "a single t for the whole batch makes every sequence in it equally noisy")
    if p.numel() == 1:
        _fail(number, hint_15 if fixed_15 else hint_single)
    if p.shape != (B,) or not p.is_floating_point():
        _fail(number, f"p_mask must be a float tensor of shape (B,) = ({B},), one masking probability per row; "
                      f"got shape {tuple(p.shape)}, dtype {p.dtype}")
    if not bool(torch.isfinite(p).all()):
        _fail(number, "p_mask has NaN or inf values")
    if not bool((noisy[msk] == m).all()):
        _fail(number, f"noisy must hold mask_id (the argument, here {m}) wherever masked is True")
    if not bool((noisy[~msk] == x0[~msk]).all()):
        _fail(number, "noisy must equal x0 wherever masked is False: only the masked tokens change")
    p = p.double()
    if float(p.max() - p.min()) < 1e-9:
        _fail(number, hint_15 if fixed_15 else hint_single)
    pc = p - p.mean()
    slope = float((pc * (frac - frac.mean())).sum() / (pc * pc).sum())
    intercept = float(frac.mean()) - slope * float(p.mean())
    if fixed_15 and abs(slope) < 0.2:
        _fail(number, hint_15)
    lo, hi = float(p.min()), float(p.max())
    if lo < eps - 1e-6 or hi > 1 + 1e-6:
        _fail(number, f"p_mask = (1 - eps) t + eps must lie in [eps, 1], but with eps = {eps} it ranges from "
                      f"{lo:.3g} to {hi:.3g}: did you forget eps? It keeps p_mask away from 0, where the weight "
                      "1/p_mask of the loss explodes")
    if slope < -0.5:
        _fail(number, "mask each token with probability p_mask (torch.rand(B, L) < p_mask[:, None]), not 1 - p_mask: "
                      "a row with p_mask near 1 must be almost entirely [MASK]")
    if abs(slope - 1) > 0.05 or abs(intercept) > 0.05:
        _fail(number, f"the fraction of masked tokens in a row should be p_mask on average, but its regression on "
                      f"p_mask has slope {slope:.3f} and intercept {intercept:.3f} (expected 1 and 0)")
    counts = msk.double().sum(1)
    ratio = float(((counts - L * p) ** 2).sum() / (L * p * (1 - p)).sum())
    if not 0.7 < ratio < 1.4:
        _fail(number, f"mask each token independently with probability p_mask: the number of masked tokens in a row "
                      f"should be Binomial(L, p_mask), but its variance is {ratio:.2f} times the binomial one "
                      "(masking exactly round(p_mask * L) tokens gives almost none)")
    u = ((p - eps) / (1 - eps)).sort().values
    i = torch.arange(1, B + 1, dtype=torch.float64)
    ks = float(torch.maximum(i / B - u, u - (i - 1) / B).max())
    if ks > 0.05:
        _fail(number, f"p_mask is not uniform on [eps, 1] (Kolmogorov-Smirnov distance {ks:.3f}): draw "
                      "t = torch.rand(B, generator=generator), uniform on [0, 1), then p_mask = (1 - eps) t + eps")
    again = _call(number, fn, x0.clone(), m, torch.Generator().manual_seed(310), eps)
    if not all(torch.equal(a, b) for a, b in zip(out, again)):
        _fail(number, "two calls with generators of the same seed gave different results: draw all randomness from "
                      "`generator` (torch.rand(..., generator=generator)), so that a seed fixes the corruption")
    print(f"Exercise {number} passed: p_mask = (1 - eps) t + eps with t ~ U(0, 1) per row, each token masked "
          f"independently with probability p_mask (checked on {B} rows)")
    return True


def check_pretrain_loss(fn: Callable) -> bool:
    """Exercise 3.2: ``fn(logits, x0, noisy, masked, p_mask) -> scalar``, LLaDA's pretraining loss with
    mask_id = 1 (the course tokenizer's): sum over masked positions of CE / p_mask, divided by B * L, the
    [MASK] logit excluded. Compared with :func:`course_lib.masked.llada_pretrain_loss`."""
    number = "3.2"
    g = torch.Generator().manual_seed(32)
    B, L, V, m = 8, 16, 12, llada.MASK_ID
    x0 = _not_mask(torch.randint(0, V - 1, (B, L), generator=g), m)
    noisy, msk, p = masked.llada_forward_process(x0, m, g, 1e-3)
    logits = torch.randn(B, L, V, generator=g, dtype=torch.float64)
    logits[..., m] += 2.0                             # a [MASK] logit large enough to matter if it is not excluded
    got = _run(number, fn, logits.clone(), x0.clone(), noisy.clone(), msk.clone(), p.clone())
    if got.numel() != 1:
        _fail(number, f"return one number (a scalar tensor), got shape {tuple(got.shape)}: sum the weighted "
                      "losses over the whole batch, then divide by B * L")
    got = got.reshape(())
    want = masked.llada_pretrain_loss(logits, x0, noisy, msk, p, mask_id=m)
    nll = -torch.log_softmax(masked.exclude_mask(logits, m), -1).gather(-1, x0[..., None])[..., 0]
    nll_raw = -torch.log_softmax(logits, -1).gather(-1, x0[..., None])[..., 0]
    w = 1 / p[:, None]
    mistakes = {
        "divide by B * L (all positions), not by the number of masked tokens: the 1/p_mask weight already "
        "accounts for how many are masked": (nll * w)[msk].sum() / msk.sum(),
        "weight each masked token's cross-entropy by 1/p_mask of its row (the 1/t of the ELBO)":
            nll[msk].sum() / (B * L),
        "that is the plain masked-LM average (BERT): weight each masked token by 1/p_mask and divide by B * L, "
        "not by the number of masked tokens": nll[msk].sum() / msk.sum(),
        "sum over masked positions only: an unmasked token is visible in the input, so it carries no loss":
            (nll * w).sum() / (B * L),
        "exclude the [MASK] logit (set it to -inf) before the log-softmax: clean text never contains [MASK], "
        "so it is never a valid prediction": (nll_raw * w)[msk].sum() / (B * L),
    }
    return _compare(number, got, want, mistakes, "loss = sum_{masked} CE / p_mask / (B * L), [MASK] logit excluded")


def check_num_transfer_tokens(fn: Callable) -> bool:
    """Exercise 3.3: ``fn(mask_count, steps) -> (B, steps)`` long: how many tokens LLaDA's sampler commits
    at each step. ``mask_count`` is a (B,) long tensor. Compared with :func:`course_lib.llada.num_transfer_tokens`."""
    number = "3.3"
    n = torch.tensor([0, 1, 4, 5, 7, 12, 13, 29])
    steps = 5
    got = _run(number, fn, n.clone(), steps)
    if got.shape != (len(n), steps):
        _fail(number, f"expected shape (B, steps) = {(len(n), steps)}, got {tuple(got.shape)}: one row per "
                      "sequence, one column per step")
    want = llada.num_transfer_tokens(n, steps)
    base, rem = n // steps, n % steps
    if got.dtype != torch.long:
        if got.is_floating_point() and torch.allclose(got.double(), (n / steps)[:, None].expand(-1, steps).double()):
            _fail(number, "a step commits whole tokens: use n // steps and give the remainder n % steps to the "
                          "first steps, not n / steps")
        if torch.equal(got.double(), want.double()):
            _fail(number, f"close, but return integer counts as a LongTensor (dtype torch.long, got {got.dtype}): "
                          "they are numbers of tokens")
    mistakes = {
        "the remainder n % steps goes to the *first* steps (one extra token each), not the last":
            base[:, None] + (torch.arange(steps)[None] >= steps - rem[:, None]).long(),
        "n // steps per step leaves n % steps tokens masked at the end: each row must sum to mask_count, so the "
        "first n % steps steps commit one token more": base[:, None].expand(-1, steps),
    }
    if not torch.equal(got.double(), want.double()):
        for hint, wrong in mistakes.items():
            if torch.equal(got.double(), wrong.double()):
                _fail(number, f"close, but {hint}")
        if not torch.equal(got.double().sum(1), n.double()):
            _fail(number, "each row must sum to its mask_count: every masked token is committed by the last step")
        _fail(number, f"wrong counts: for n = {n.tolist()} and steps = {steps}, each step commits n // steps "
                      "tokens and the first n % steps steps one more")
    if got.dtype != torch.long:
        _fail(number, f"return a LongTensor (dtype torch.long), got {got.dtype}")
    print(f"Exercise {number} passed: n // steps tokens per step, the first n % steps steps one more")
    return True


def check_low_confidence_step(fn: Callable) -> bool:
    """Exercise 3.4: ``fn(x, logits, k, mask_id) -> new x``, one step of LLaDA's low-confidence remasking at
    temperature 0: x (B, L) a canvas with [MASK]s, logits (B, L, V), k (B,) long the number of tokens to
    commit in each row. Propose the argmax token at every masked position ([MASK] logit excluded), score it
    by its softmax probability, commit the k[b] most confident masked positions of row b, change nothing
    else. Compared with the step of :func:`course_lib.llada.generate_steps`."""
    number = "3.4"
    g = torch.Generator().manual_seed(34)
    B, L, V, m = 6, 14, 11, 4
    k = torch.tensor([1, 2, 3, 0, 4, 2])
    n_mask = torch.tensor([3, 5, 7, 4, 9, 6])         # always more masks than k: some stay masked
    x = _not_mask(torch.randint(0, V - 1, (B, L), generator=g), m)
    rank = torch.argsort(torch.argsort(torch.rand(B, L, generator=g), 1), 1)
    x = torch.where(rank < n_mask[:, None], torch.full_like(x, m), x)
    is_mask = x == m
    logits = 2 * torch.randn(B, L, V, generator=g, dtype=torch.float64)
    logits[..., m] += 4.0 * (torch.rand(B, L, generator=g) < 0.5)   # [MASK] would often win if it were allowed
    decoy = (x + 1) % V
    decoy = torch.where(decoy == m, (x + 2) % V, decoy)          # != x, != mask_id
    logits += 5.0 * torch.nn.functional.one_hot(decoy, V) * (~is_mask)[..., None]   # confident, different token
    got = _run(number, fn, x.clone(), logits.clone(), k.clone(), m)
    if got.shape != x.shape:
        _fail(number, f"return the new canvas, of shape (B, L) = {tuple(x.shape)} like x; got {tuple(got.shape)}")
    if got.dtype != x.dtype:
        _fail(number, f"return token ids with x's dtype ({x.dtype}), got {got.dtype}")

    def step(lg, eligible, score_sign=1.0, conf_logits=None):
        proposal = llada.gumbel_max(lg, 0.0)
        probs = torch.softmax(lg if conf_logits is None else conf_logits, -1)
        conf = probs.gather(-1, proposal[..., None])[..., 0] * score_sign
        score = torch.where(eligible, conf, torch.full_like(conf, float("-inf")))
        return torch.where(llada._top_k_mask(score, eligible, k), proposal, x)

    ex = masked.exclude_mask(logits, m)
    want = step(ex, is_mask)
    if torch.equal(got, want):
        print(f"Exercise {number} passed: commit the k most confident masked positions (argmax token, [MASK] "
              "excluded); everything else unchanged")
        return True
    proposal = llada.gumbel_max(ex, 0.0)
    leave = ("commit only the k[b] most confident masked positions and leave every other position unchanged")
    mistakes = {
        "only [MASK] positions may be committed: give already-decoded positions the score -inf before choosing "
        "the top k": step(ex, torch.ones_like(is_mask)),
        "commit the k *most* confident masked positions (the highest softmax probability): low-confidence "
        "remasking throws away the least confident proposals": step(ex, is_mask, -1.0),
        "exclude the [MASK] logit (set it to -inf) before the argmax and the softmax: [MASK] is never a valid "
        "prediction": step(logits, is_mask),
        "compute the confidence from the softmax with the [MASK] logit excluded too, the distribution the "
        "proposal comes from": step(ex, is_mask, conf_logits=logits),
        f"the other masked positions stay [MASK] (their proposals are discarded): {leave}":
            torch.where(is_mask, proposal, x),
        f"return the canvas x with the committed tokens written in, not the proposals: {leave}": proposal,
    }
    for hint, wrong in mistakes.items():
        if torch.equal(got, wrong):
            _fail(number, f"close, but {hint}")
    changed = got != x
    if bool((changed & ~is_mask).any()):
        _fail(number, "positions already decoded (not [MASK]) must stay unchanged: commit only at [MASK] positions")
    if not torch.equal(changed.sum(1), k):
        _fail(number, f"row b must get exactly k[b] new tokens (k = {k.tolist()}), got {changed.sum(1).tolist()}; "
                      "never propose [MASK] itself, and leave the other masked positions as [MASK]")
    if not torch.equal(got[changed], proposal[changed]):
        _fail(number, "a committed position takes the argmax token of its logits, the [MASK] logit excluded "
                      "(temperature 0)")
    _fail(number, "you committed the wrong positions: choose the k[b] masked positions of row b with the highest "
                  "confidence softmax(logits)[argmax], the [MASK] logit excluded")


# ------------------------------------------------------------------ chapter 4
def _pair_of_tensors(number: str, out, names: str):
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        _fail(number, f"return a tuple of two tensors ({names}), got {type(out).__name__}")
    try:
        return tuple(torch.as_tensor(o) for o in out)
    except Exception:
        _fail(number, f"return a tuple of two tensors ({names}), got ({type(out[0]).__name__}, "
                      f"{type(out[1]).__name__})")


def _topk_routing_ref(logits: torch.Tensor, k: int):
    """Reference of Exercise 4.1 (Switch / Mixtral top-k routing, renormalised)."""
    E = logits.shape[-1]
    if not 1 <= k <= E:
        raise ValueError(f"k must lie in [1, {E}], got {k}")
    top, experts = torch.softmax(logits, -1).topk(k, dim=-1)
    return experts, top / top.sum(-1, keepdim=True)


def check_topk_routing(fn: Callable) -> bool:
    """Exercise 4.1: ``fn(logits, k) -> (experts, weights)``, a mixture-of-experts router. ``logits`` (T, E):
    one router logit per token and expert; return ``experts`` (T, k) long, the k most probable experts of
    each token, best first (the order of ``torch.topk``), and ``weights`` (T, k), their probabilities
    under the softmax over the E experts, renormalised to sum to 1 over the k (Mixtral; GShard's top-2;
    REFERENCE.md section 4 "MoE configs": LLaDA 2.0 renormalises its chosen scores too, ``norm_topk_prob``).
    ``k`` larger than E must raise ValueError. Introduced in chapter 4, section 1.

    Equivalent correct answer, accepted: softmax over the k largest *logits* only (the common factor
    1 / sum over all E cancels in the renormalisation)."""
    number = "4.1"
    g = torch.Generator().manual_seed(41)
    cases = []
    for T, E, k in ((40, 8, 2), (24, 6, 3), (10, 5, 1)):
        logits = 1.5 * torch.randn(T, E, generator=g, dtype=torch.float64)
        logits[0] = torch.linspace(2.0, -2.0, E, dtype=torch.float64)          # a token whose best experts are
        logits[0, 0] -= 1.0                                                    # not in id order
        logits[0] = logits[0, torch.randperm(E, generator=g)]
        logits[:, 0] += 2.0                                                    # a popular expert: softmax over the
        cases.append((logits, k))                                              # tokens then ranks differently
    for logits, k in cases:
        T, E = logits.shape
        arg = logits.clone()
        out = _call(number, fn, arg, k)
        experts, weights = _pair_of_tensors(number, out, "experts, weights")
        if not torch.equal(arg, logits):
            _fail(number, "do not modify the logits in place")
        if experts.shape != (T, k) or weights.shape != (T, k):
            _fail(number, f"for logits of shape (T, E) = {(T, E)} and k = {k}, return experts and weights of shape "
                          f"(T, k) = {(T, k)}; got {tuple(experts.shape)} and {tuple(weights.shape)} (take the top k "
                          "along the experts, dim=-1)")
        if experts.dtype != torch.long:
            _fail(number, f"experts must be a LongTensor of expert ids (torch.topk's indices), got {experts.dtype}")
        if not weights.is_floating_point() or not bool(torch.isfinite(weights).all()):
            _fail(number, "weights must be finite floating-point numbers")
        want_e, want_w = _topk_routing_ref(logits, k)
        w = weights.double()
        if torch.equal(experts, want_e) and torch.allclose(w, want_w, rtol=1e-5, atol=1e-6):
            continue
        p = torch.softmax(logits, -1)
        top, _ = p.topk(k, dim=-1)
        p_tok = torch.softmax(logits, 0)
        top_tok, e_tok = p_tok.topk(k, dim=-1)
        low, e_low = p.topk(k, dim=-1, largest=False)
        variants = {
            "renormalise the k weights so they sum to 1 (divide the top-k probabilities by their sum): without it a "
            "token's expert outputs are scaled down by the probability mass of the experts it did not choose":
                (want_e, top),
            "take the softmax over the experts (dim=-1, each token's probabilities over the E experts sum to 1), "
            "not over the tokens (dim=0)": (e_tok, top_tok / top_tok.sum(-1, keepdim=True)),
            "take the softmax over the experts (dim=-1), not over the tokens (dim=0), and renormalise the k "
            "weights": (e_tok, top_tok),
            "route to the k *most* probable experts (torch.topk(k) picks the largest; argsort is ascending)":
                (e_low, low / low.sum(-1, keepdim=True)),
        }
        for hint, (ve, vw) in variants.items():
            if torch.equal(experts, ve) and torch.allclose(w, vw, rtol=1e-5, atol=1e-6):
                _fail(number, f"close, but {hint}")
        same_set = torch.equal(experts.sort(-1).values, want_e.sort(-1).values)
        if same_set:
            order = experts.sort(-1).indices
            pairs_ok = torch.equal(experts.gather(-1, order), want_e.gather(-1, want_e.sort(-1).indices)) and \
                torch.allclose(w.gather(-1, order), want_w.gather(-1, want_e.sort(-1).indices), rtol=1e-5, atol=1e-6)
            if pairs_ok:
                _fail(number, "right experts and weights, but list them best first (the order torch.topk returns), "
                              "with each weight in the same slot as its expert")
            if torch.allclose(w.sort(-1).values, want_w.sort(-1).values, rtol=1e-5, atol=1e-6):
                _fail(number, "right experts and right weights, but not paired: weights[t, j] must be the weight of "
                              "experts[t, j] (take both from the same torch.topk call)")
            _fail(number, "right experts, wrong weights: softmax over the E experts, keep the k chosen "
                          "probabilities, divide them by their sum")
        _fail(number, "wrong experts: choose, for each token, the k experts with the highest router probability "
                      "(equivalently the k largest logits), softmax over dim=-1")
    E = cases[0][0].shape[1]
    try:
        fn(cases[0][0].clone(), E + 1)
    except NotImplementedError:
        raise
    except ValueError:
        pass
    except Exception as e:
        _fail(number, f"with k = {E + 1} > E = {E} experts your function raised {type(e).__name__}: {e}; check k "
                      "first and raise a ValueError with a clear message")
    else:
        _fail(number, f"k = {E + 1} is more experts than there are (E = {E}): raise a ValueError instead of "
                      "returning something")
    print(f"Exercise {number} passed: softmax over the experts, the top k best first, weights renormalised to sum "
          "to 1; k > E rejected")
    return True


_PARAM_KEYS = ("n_layers", "hidden", "n_heads", "n_kv_heads", "head_dim", "vocab", "tied", "n_dense_layers",
               "dense_ffn", "n_experts", "top_k", "n_shared", "expert_ffn")


def _param_count_ref(c: dict, all_active=False, no_shared=False, no_dense=False, dense_as_moe=False, mha=False,
                     lm_head="flag", no_router=False, no_norms=False, embed_active=True) -> tuple[int, int]:
    """Reference of Exercise 4.2; each keyword off its default is one typical mistake."""
    h, L = c["hidden"], c["n_layers"]
    kv = c["n_heads"] if mha else c["n_kv_heads"]
    attention = 2 * h * c["n_heads"] * c["head_dim"] + 2 * h * kv * c["head_dim"]      # W_q, W_o; W_k, W_v
    n_dense = 0 if dense_as_moe else c["n_dense_layers"]
    n_moe = L - n_dense
    dense = 0 if no_dense else n_dense * 3 * h * c["dense_ffn"]
    expert = 3 * h * c["expert_ffn"]
    routed = n_moe * c["n_experts"] * expert
    shared = 0 if no_shared else n_moe * c["n_shared"] * expert
    router = 0 if no_router else n_moe * c["n_experts"] * h
    two = {"flag": not c["tied"], "always": True, "never": False}[lm_head]
    embeddings = c["vocab"] * h * (2 if two else 1)
    norms = 0 if no_norms else (2 * L + 1) * h
    total = embeddings + L * attention + dense + routed + shared + router + norms
    active = total if all_active else total - routed + n_moe * c["top_k"] * expert
    if not embed_active:
        active -= embeddings
    return total, active


def check_param_count(fn: Callable) -> bool:
    """Exercise 4.2: ``fn(cfg) -> (total, active)``, the parameters of a MoE Transformer and how many of them
    one token uses. Introduced in chapter 4, section 2. ``cfg`` is a dict with keys n_layers, hidden,
    n_heads, n_kv_heads, head_dim, vocab, tied (bool), n_dense_layers, dense_ffn, n_experts, top_k, n_shared,
    expert_ffn. The course's convention (that of LLaDA 2.0's "16B-A1B", REFERENCE.md section 4 "MoE configs",
    and :mod:`course_lib.params`):

    - no biases anywhere; every feed-forward network is a SwiGLU, 3 matrices of hidden x ffn;
    - attention per layer: W_q and W_o of hidden x (n_heads * head_dim), W_k and W_v of
      hidden x (n_kv_heads * head_dim) (grouped-query attention);
    - the first ``n_dense_layers`` layers have a dense SwiGLU of size ``dense_ffn``; each of the other
      ``n_layers - n_dense_layers`` (MoE) layers has ``n_experts`` routed experts and ``n_shared`` shared
      experts, all SwiGLUs of size ``expert_ffn``, and a router of hidden x n_experts;
    - RMSNorm: one weight vector of size hidden, two per layer and one final;
    - embedding vocab x hidden, plus an LM head of the same size unless ``tied``;
    - **active** = total minus the routed experts a token does not use: each MoE layer counts ``top_k``
      routed experts instead of ``n_experts``; everything else (embedding and LM head included, as the
      published "A1B" figures do) counts as active.
    """
    number = "4.2"
    configs = [
        dict(n_layers=4, hidden=64, n_heads=4, n_kv_heads=2, head_dim=24, vocab=100, tied=False, n_dense_layers=1,
             dense_ffn=256, n_experts=8, top_k=2, n_shared=1, expert_ffn=32),
        dict(n_layers=6, hidden=96, n_heads=8, n_kv_heads=1, head_dim=16, vocab=300, tied=True, n_dense_layers=2,
             dense_ffn=384, n_experts=16, top_k=4, n_shared=2, expert_ffn=48),
        dict(n_layers=20, hidden=2048, n_heads=16, n_kv_heads=4, head_dim=128, vocab=157_184, tied=False,
             n_dense_layers=1, dense_ffn=5120, n_experts=256, top_k=8, n_shared=1, expert_ffn=512),   # LLaDA2.0-mini
    ]
    got = []
    for c in configs:
        arg = dict(c)
        out = _call(number, fn, arg)
        if arg != c:
            _fail(number, "do not modify the config dict")
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            _fail(number, f"return a tuple (total, active) of two integers, got {type(out).__name__}")
        pair = []
        for v in out:
            if isinstance(v, torch.Tensor) and v.numel() == 1:
                v = v.item()
            if isinstance(v, bool) or not isinstance(v, (int, float)) and not hasattr(v, "__index__"):
                _fail(number, f"return a tuple (total, active) of two integers, got ({out[0]!r:.40}, {out[1]!r:.40})")
            pair.append(float(v) if isinstance(v, float) else int(v))
        got.append(tuple(pair))
    want = [_param_count_ref(c) for c in configs]
    if got == want:                          # an integral float equals its int (all counts are below 2**53)
        t, a = want[2]
        print(f"Exercise {number} passed: e.g. LLaDA2.0-mini-like config: {t / 1e9:.2f}B total, {a / 1e9:.2f}B "
              f"active ({100 * a / t:.1f}%)")
        return True
    variants = {
        "count only top_k routed experts per MoE layer as active: a token runs through top_k of the n_experts, "
        "not all of them (your active equals your total)": dict(all_active=True),
        "count the shared expert(s): each MoE layer also has n_shared always-on experts of size expert_ffn, in "
        "the total and in the active count": dict(no_shared=True),
        "count the dense layers' feed-forward: the first n_dense_layers layers have a dense SwiGLU of size "
        "dense_ffn (3 * hidden * dense_ffn each)": dict(no_dense=True),
        "the first n_dense_layers layers are dense (a SwiGLU of size dense_ffn, no experts, no router); only the "
        "other n_layers - n_dense_layers layers are MoE layers": dict(dense_as_moe=True),
        "grouped-query attention: W_k and W_v are hidden x (n_kv_heads * head_dim), not hidden x "
        "(n_heads * head_dim)": dict(mha=True),
        "look at cfg['tied']: with tied embeddings the LM head is the embedding matrix (count vocab x hidden "
        "once); untied, count it twice": dict(lm_head="always"),
        "look at cfg['tied']: untied embeddings have a separate LM head of vocab x hidden (count it; with tied "
        "embeddings count the matrix once)": dict(lm_head="never"),
        "count the router: hidden x n_experts per MoE layer (it runs for every token, so it is active too)":
            dict(no_router=True),
        "count the RMSNorm weights: two vectors of size hidden per layer and one final": dict(no_norms=True),
        "by the course's convention (and the published 'A1B' figures) the embedding and the LM head count as "
        "active parameters too": dict(embed_active=False),
    }
    for hint, kw in variants.items():
        if all(gp == _param_count_ref(c, **kw) for gp, c in zip(got, configs)):
            _fail(number, f"close, but {hint}")
    for c, gp, w in zip(configs, got, want):
        if gp != w:
            which = ("total and active" if gp[0] != w[0] and gp[1] != w[1] else "total" if gp[0] != w[0]
                     else "active")
            _fail(number, f"wrong {which} for cfg = {c}: you returned {gp}, expected {w}. Count per component "
                          "(embeddings, attention, dense FFNs, routed and shared experts, routers, norms) and compare "
                          "with the convention in the docstring")
    _fail(number, "wrong counts")   # not reached


def _m2t_t2t_ref(x, probs, mask_id, tau_mask, tau_edit, editable, ge_mask=False, ge_edit=False, edit_same=False,
                 edit_masked=False, edit_tau=None, mask_tau=None, edit_prompt=False, m2t_anywhere=False):
    """Reference of Exercise 4.4 (LLaDA 2.1 eq. 1-2); each keyword off its default is one typical mistake."""
    conf, v = probs.max(-1)
    masked = x == mask_id
    tm = tau_mask if mask_tau is None else mask_tau
    te = tau_edit if edit_tau is None else edit_tau
    m2t = (torch.ones_like(masked) if m2t_anywhere else masked) & ((conf >= tm) if ge_mask else (conf > tm))
    t2t = (torch.ones_like(masked) if edit_prompt else editable) & ((conf >= te) if ge_edit else (conf > te))
    if not edit_masked:
        t2t &= ~masked
    if not edit_same:
        t2t &= x != v
    return m2t, t2t


def _row(V: int, mask_id: int, top: int, p: float) -> list[float]:
    """A probability row with ``p`` on ``top`` and the rest spread evenly over the other non-[MASK] tokens."""
    rest = (1 - p) / (V - 2)
    return [0.0 if i == mask_id else (p if i == top else rest) for i in range(V)]


def check_m2t_t2t_sets(fn: Callable) -> bool:
    """Exercise 4.4: ``fn(x, probs, mask_id, tau_mask, tau_edit, editable) -> (m2t, t2t)``, the two update sets of
    one LLaDA 2.1 decoding step (REFERENCE.md section 5, eq. 1-2). ``x`` (L,) long the canvas, ``probs``
    (L, V) the model's probabilities at every position, ``editable`` (L,) bool (False on the prompt). With
    v_i = argmax probs[i]: M2T = {i : x_i = [MASK] and p(v_i) > tau_mask}; T2T = {i : editable, x_i not
    [MASK], x_i != v_i and p(v_i) > tau_edit} (strict inequalities). Return two bool tensors of shape (L,).
    Introduced in chapter 4, section 5."""
    number = "4.4"
    V, m = 6, 5
    # hand-built: probabilities that are exact binary fractions, some exactly at a threshold
    #        (x,  top, p,      editable)
    rows = [(1, 2, 0.75, False),      # prompt, a confident different token: never edited
            (0, 0, 0.5, False),
            (3, 4, 0.375, False),
            (m, 2, 0.75, True),       # masked, confident: M2T
            (m, 3, 0.5, True),        # masked, p == 0.5 exactly
            (m, 1, 0.375, True),      # masked, between the thresholds
            (1, 2, 0.75, True),       # committed, confident different token: T2T
            (1, 2, 0.375, True),      # committed, different token between the thresholds
            (2, 2, 0.75, True),       # committed, the model agrees: nothing to edit
            (0, 3, 0.25, True),       # committed, different token at p == 0.25 exactly
            (4, 0, 0.875, True),
            (m, 0, 0.25, True)]
    x = torch.tensor([r[0] for r in rows])
    probs = torch.tensor([_row(V, m, r[1], r[2]) for r in rows], dtype=torch.float64)
    editable = torch.tensor([r[3] for r in rows])
    g = torch.Generator().manual_seed(43)
    L2, V2, m2 = 48, 12, 11
    p2 = torch.softmax(3 * torch.randn(L2, V2, generator=g, dtype=torch.float64).index_fill(1, torch.tensor([m2]),
                                                                                            float("-inf")), -1)
    v2 = p2.argmax(-1)
    x2 = _not_mask(torch.randint(0, V2 - 1, (L2,), generator=g), m2)
    x2 = torch.where(torch.rand(L2, generator=g) < 0.3, v2, x2)                     # the model often agrees
    x2[10:] = torch.where(torch.rand(L2 - 10, generator=g) < 0.4, m2, x2[10:])
    ed2 = torch.arange(L2) >= 10
    cases = [(x, probs, m, 0.5, 0.25, editable), (x, probs, m, 0.25, 0.5, editable),
             (x2, p2, m2, 0.6, 0.3, ed2), (x2, p2, m2, 0.2, 0.7, ed2)]
    for case in cases:
        xc, pc, mc, tm, te, ed = case
        args = (xc.clone(), pc.clone(), mc, tm, te, ed.clone())
        out = _call(number, fn, *args)
        got_m, got_t = _pair_of_tensors(number, out, "m2t, t2t")
        if not (torch.equal(args[0], xc) and torch.equal(args[1], pc) and torch.equal(args[5], ed)):
            _fail(number, "do not modify the inputs in place")
        L = len(xc)
        for nm, t in (("m2t", got_m), ("t2t", got_t)):
            if t.shape != (L,) or t.dtype != torch.bool:
                _fail(number, f"{nm} must be a bool tensor of shape (L,) = ({L},) (True = in the set), got shape "
                              f"{tuple(t.shape)}, dtype {t.dtype}")
        want_m, want_t = _m2t_t2t_ref(*case)
        if torch.equal(got_m, want_m) and torch.equal(got_t, want_t):
            continue
        variants = {
            "M2T uses a strict inequality, p(v) > tau_mask (LLaDA 2.1 eq. 1): a position exactly at the threshold "
            "is not committed": dict(ge_mask=True),
            "T2T uses a strict inequality, p(v) > tau_edit (eq. 2): a token exactly at the threshold is not "
            "edited": dict(ge_edit=True),
            "M2T and T2T use strict inequalities, p(v) > tau (eq. 1-2)": dict(ge_mask=True, ge_edit=True),
            "T2T only edits a token the model disagrees with: require x_i != v_i (replacing a token by itself is "
            "no edit)": dict(edit_same=True),
            "T2T edits committed tokens only: a [MASK] position belongs to M2T, never to T2T": dict(edit_masked=True),
            "T2T uses its own threshold tau_edit, not tau_mask": dict(edit_tau=tm),
            "M2T uses tau_mask, not tau_edit": dict(mask_tau=te),
            "the two thresholds are swapped: M2T uses tau_mask, T2T uses tau_edit": dict(mask_tau=te, edit_tau=tm),
            "T2T never edits the prompt: restrict it to editable positions": dict(edit_prompt=True),
            "M2T only commits [MASK] positions (x_i == mask_id)": dict(m2t_anywhere=True),
        }
        for hint, kw in variants.items():
            vm, vt = _m2t_t2t_ref(*case, **kw)
            if torch.equal(got_m, vm) and torch.equal(got_t, vt):
                _fail(number, f"close, but {hint}")
        if torch.equal(got_m, want_t) and torch.equal(got_t, want_m):
            _fail(number, "return (m2t, t2t) in that order")
        if not torch.equal(got_m, want_m):
            pos = torch.nonzero(got_m != want_m).flatten().tolist()
            _fail(number, f"wrong M2T set at positions {pos}: M2T = {{i : x_i == mask_id and max_v probs[i, v] > "
                          f"tau_mask}} (here tau_mask = {tm}, tau_edit = {te})")
        pos = torch.nonzero(got_t != want_t).flatten().tolist()
        _fail(number, f"wrong T2T set at positions {pos}: T2T = {{i : editable, x_i != mask_id, x_i != v_i, "
                      f"probs[i, v_i] > tau_edit}} with v_i = argmax probs[i] (here tau_mask = {tm}, tau_edit = {te})")
    print(f"Exercise {number} passed: M2T = masked & p(v) > tau_mask; T2T = editable & committed & x != v & "
          "p(v) > tau_edit")
    return True


def _block_mask_ref(L: int, block_size: int, obc_ge=False) -> torch.Tensor:
    """Reference of Exercise 4.3 (BD3-LM ``block_diff_mask``; LLaDA 2.0 eq. 3-4). ``obc_ge``: the leaking
    mistake (>= in the offset block-causal part)."""
    if L % block_size:
        raise ValueError(f"block_size {block_size} must divide L = {L}")
    i = torch.arange(2 * L)
    x0 = i >= L
    b = (i % L) // block_size
    bq, bk, x0q, x0k = b[:, None], b[None], x0[:, None], x0[None]
    bd = (bq == bk) & ~x0q & ~x0k
    obc = ((bq >= bk) if obc_ge else (bq > bk)) & ~x0q & x0k
    bc = (bq >= bk) & x0q & x0k
    return bd | obc | bc


def check_block_mask(fn: Callable) -> bool:
    """Exercise 4.3: ``fn(L, block_size) -> mask`` bool (2L, 2L), the block-diffusion training mask over the
    concatenation ``[x_t ; x_0]`` (BD3-LM; LLaDA 2.0 section 4.2, eq. 3-4; REFERENCE.md section 4 "Attention
    masks"). ``mask[i, j]`` is True when query i may attend to key j; with b(k) the block of position k
    within its half: x_t -> x_t block-diagonal (b(i) == b(j)), x_t -> x_0 offset block-causal (b(i) > b(j),
    strict), x_0 -> x_0 block-causal (b(i) >= b(j)), x_0 -> x_t never. A block size that does not divide L
    raises ValueError. Introduced in chapter 4, section 2."""
    number = "4.3"
    for L, bs in ((16, 4), (12, 3), (8, 1), (8, 8), (6, 2)):
        out = _call(number, fn, L, bs)
        try:
            got = torch.as_tensor(out)
        except Exception:
            _fail(number, f"return a bool tensor of shape (2L, 2L), got {type(out).__name__}")
        if got.shape != (2 * L, 2 * L):
            _fail(number, f"for L = {L} the mask covers [x_t ; x_0], shape (2L, 2L) = {(2 * L, 2 * L)}; got "
                          f"{tuple(got.shape)}")
        if got.dtype != torch.bool:
            _fail(number, f"return a bool tensor (True = may attend), got dtype {got.dtype}")
        want = _block_mask_ref(L, bs)
        if torch.equal(got, want):
            continue
        at = f" (L = {L}, block_size = {bs})"
        if torch.equal(got, want.T):
            _fail(number, f"the mask is transposed{at}: rows are queries, columns keys; mask[i, j] says whether "
                          "query i may attend to key j")
        tt, t0, ot, oo = got[:L, :L], got[:L, L:], got[L:, :L], got[L:, L:]
        b = torch.arange(L) // bs
        same, before, upto = b[:, None] == b[None], b[:, None] > b[None], b[:, None] >= b[None]
        tril = torch.ones(L, L, dtype=torch.bool).tril()
        if ot.any():
            _fail(number, f"x_0 must never attend to x_t{at}: the bottom-left quadrant (queries in x_0, keys in x_t) "
                          "must be all False; the clean copy is context, it must not depend on the noise")
        if not torch.equal(t0, before):
            if torch.equal(t0, upto):
                _fail(number, f"close, but the offset block-causal part x_t -> x_0 uses a strict b(i) > b(j){at}: with "
                              ">= a noisy block sees its own clean tokens, the very tokens it must predict (the "
                              "answer leaks)")
            if not t0.any():
                _fail(number, f"x_t must attend to the clean tokens of earlier blocks (x_t -> x_0: b(i) > b(j)){at}; "
                              "that is the context each block is denoised from. Number the blocks within each half: "
                              "b(k) = (k mod L) // block_size, so x_t and x_0 share block numbers")
            _fail(number, f"wrong x_t -> x_0 part (top-right quadrant){at}: offset block-causal, True where "
                          "b(i) > b(j)")
        if not torch.equal(tt, same):
            if torch.equal(tt, tril) or torch.equal(tt, upto):
                _fail(number, f"x_t -> x_t is block-diagonal (b(i) == b(j)), not causal{at}: a noisy token sees its "
                              "whole block both ways and no other noisy block (earlier blocks are seen clean, "
                              "through x_0)")
            _fail(number, f"wrong x_t -> x_t part (top-left quadrant){at}: block-diagonal, True where b(i) == b(j)")
        if not torch.equal(oo, upto):
            if torch.equal(oo, before):
                _fail(number, f"x_0 -> x_0 is block-causal with b(i) >= b(j){at}: a clean token sees its own block too")
            if torch.equal(oo, tril):
                _fail(number, f"x_0 -> x_0 is block-causal (b(i) >= b(j)), not token-causal{at}: a clean token sees "
                              "its whole block")
            _fail(number, f"wrong x_0 -> x_0 part (bottom-right quadrant){at}: block-causal, True where b(i) >= b(j)")
        _fail(number, f"wrong mask{at}")    # not reached: every quadrant was checked
    try:
        fn(10, 4)
    except NotImplementedError:
        raise
    except ValueError:
        pass
    except Exception as e:
        _fail(number, f"block_size 4 does not divide L = 10, and your function raised {type(e).__name__}: {e}; "
                      "check L % block_size first and raise a ValueError with a clear message")
    else:
        _fail(number, "block_size 4 does not divide L = 10: raise a ValueError instead of returning a mask (the "
                      "blocks would not tile the sequence)")
    print(f"Exercise {number} passed: [x_t ; x_0] mask = block-diagonal | offset block-causal (>) | block-causal (>=), "
          "x_0 never sees x_t")
    return True
