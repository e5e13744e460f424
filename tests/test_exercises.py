"""Exercise checkers accept the reference solution, reject wrong ones with a helpful message,
and let NotImplementedError (an unsolved stub) through unchanged."""
import math

import pytest
import torch

from course_lib import exercises as E


def q_sample_ok(x0, t, eps, ab):
    a = ab[t][:, None]
    return a.sqrt() * x0 + (1 - a).sqrt() * eps


def posterior_ok(x0, xt, t, b, a, ab):
    return ((ab[t - 1].sqrt() * b[t] / (1 - ab[t]))[:, None] * x0
            + (a[t].sqrt() * (1 - ab[t - 1]) / (1 - ab[t]))[:, None] * xt)


def ddim_ok(x, e, t, s, ab):
    return ab[s].sqrt() * (x - (1 - ab[t]).sqrt() * e) / ab[t].sqrt() + (1 - ab[s]).sqrt() * e


def langevin_ok(x, s, h, z):
    return x + 0.5 * h * s + math.sqrt(h) * z


CASES = [
    (E.check_q_sample, q_sample_ok, lambda x0, t, eps, ab: ab[t][:, None] * x0 + (1 - ab[t])[:, None] * eps, "variances"),
    (E.check_posterior_mean, posterior_ok,
     lambda x0, xt, t, b, a, ab: ((ab[t].sqrt() * b[t] / (1 - ab[t]))[:, None] * x0
                                  + (a[t].sqrt() * (1 - ab[t - 1]) / (1 - ab[t]))[:, None] * xt), "alpha_bar_{t-1}"),
    (E.check_ddim_step, ddim_ok, lambda x, e, t, s, ab: (x - (1 - ab[t]).sqrt() * e) / ab[t].sqrt(), "x0_hat"),
    (E.check_langevin_step, langevin_ok, lambda x, s, h, z: x - 0.5 * h * s + math.sqrt(h) * z, "climbs"),
]


# chapter 2
def qbar_ok(ab, K, kind, m):
    eye = torch.eye(K, dtype=torch.float64)
    if kind == "uniform":
        return ab * eye + (1 - ab) / K * torch.ones(K, K, dtype=torch.float64)
    e = torch.zeros(K, K, dtype=torch.float64)
    e[:, m] = 1
    return ab * eye + (1 - ab) * e


def d3pm_posterior_ok(xt, x0, Qt, Qa, Qb):
    return Qt[:, xt].T * Qa[x0] / Qb[x0, xt][:, None]


def subs_ok(logits, xt, m):
    lp = torch.log_softmax(logits.masked_fill(torch.arange(logits.shape[-1]) == m, float("-inf")), -1)
    carry = torch.nn.functional.one_hot(xt, logits.shape[-1]).bool()
    return torch.where((xt == m)[..., None], lp, torch.where(carry, 0.0, float("-inf")))


def mdlm_loss_ok(logits, x0, xt, t, m):
    nll = -subs_ok(logits, xt, m).gather(-1, x0[..., None])[..., 0]
    return torch.where(xt == m, nll, torch.zeros(())).sum(1) / t


CASES += [
    (E.check_qbar, qbar_ok, lambda ab, K, kind, m: qbar_ok(ab, K, "uniform", m) * K - (K - 1) * ab * torch.eye(K, dtype=torch.float64)
     if kind == "uniform" else qbar_ok(ab, K, kind, m), "divide by K"),
    (E.check_d3pm_posterior, d3pm_posterior_ok, lambda xt, x0, Qt, Qa, Qb: Qt[:, xt].T * Qa[x0], "normalise"),
    (E.check_subs, subs_ok, lambda lg, xt, m: torch.where((xt == m)[..., None], torch.log_softmax(lg, -1),
                                                          subs_ok(lg, xt, m)), "rule 1"),
    (E.check_mdlm_loss, mdlm_loss_ok, lambda lg, x0, xt, t, m: mdlm_loss_ok(lg, x0, xt, t, m) * t, "1/t"),
]


@pytest.mark.parametrize("checker,good,wrong,hint", CASES)
def test_checker(checker, good, wrong, hint, capsys):
    assert checker(good) is True
    assert "passed" in capsys.readouterr().out
    with pytest.raises(E.ExerciseError, match=hint):
        checker(wrong)

    def stub(*args):
        raise NotImplementedError("Exercise N.M: todo")
    with pytest.raises(NotImplementedError):
        checker(stub)
    with pytest.raises(E.ExerciseError, match="shape"):
        checker(lambda *a: torch.zeros(3))
    with pytest.raises(E.ExerciseError, match="raised"):
        checker(lambda *a: 1 / 0)


# chapter 3: independent reference solutions and the typical mistakes each checker must name
def forward_ok(x0, m, g, eps=1e-3):
    B, L = x0.shape
    p = (1 - eps) * torch.rand(B, generator=g) + eps
    msk = torch.rand(B, L, generator=g) < p[:, None]
    return torch.where(msk, torch.full_like(x0, m), x0), msk, p


def forward_single_t(x0, m, g, eps=1e-3):
    B, L = x0.shape
    p = ((1 - eps) * torch.rand(1, generator=g) + eps).expand(B)
    msk = torch.rand(B, L, generator=g) < p[:, None]
    return torch.where(msk, m, x0), msk, p


def forward_single_t_scalar(x0, m, g, eps=1e-3):
    noisy, msk, p = forward_single_t(x0, m, g, eps)
    return noisy, msk, p[:1]


def forward_no_eps(x0, m, g, eps=1e-3):
    B, L = x0.shape
    p = torch.rand(B, generator=g)
    msk = torch.rand(B, L, generator=g) < p[:, None]
    return torch.where(msk, m, x0), msk, p


def forward_15(x0, m, g, eps=1e-3):
    B, L = x0.shape
    p = (1 - eps) * torch.rand(B, generator=g) + eps
    msk = torch.rand(B, L, generator=g) < 0.15
    return torch.where(msk, m, x0), msk, p


def forward_15_const(x0, m, g, eps=1e-3):
    noisy, msk, p = forward_15(x0, m, g, eps)
    return noisy, msk, torch.full_like(p, 0.15)


def forward_one_minus_t(x0, m, g, eps=1e-3):
    B, L = x0.shape
    p = (1 - eps) * torch.rand(B, generator=g) + eps
    msk = torch.rand(B, L, generator=g) < 1 - p[:, None]
    return torch.where(msk, m, x0), msk, p


def forward_global_rng(x0, m, g, eps=1e-3):
    return forward_ok(x0, m, None, eps)


def forward_exact_count(x0, m, g, eps=1e-3):
    B, L = x0.shape
    p = (1 - eps) * torch.rand(B, generator=g) + eps
    rank = torch.argsort(torch.argsort(torch.rand(B, L, generator=g), 1), 1)
    msk = rank < torch.round(p * L)[:, None]
    return torch.where(msk, m, x0), msk, p


def forward_in_place(x0, m, g, eps=1e-3):
    _, msk, p = forward_ok(x0, m, g, eps)
    x0[msk] = m
    return x0, msk, p


def forward_squared_t(x0, m, g, eps=1e-3):
    B, L = x0.shape
    p = (1 - eps) * torch.rand(B, generator=g) ** 2 + eps
    msk = torch.rand(B, L, generator=g) < p[:, None]
    return torch.where(msk, m, x0), msk, p


def _ce(logits, x0, m, exclude=True):
    lg = logits.masked_fill(torch.arange(logits.shape[-1]) == m, float("-inf")) if exclude else logits
    return torch.nn.functional.cross_entropy(lg.transpose(1, 2), x0, reduction="none")    # (B, L)


def pretrain_ok(logits, x0, noisy, msk, p):
    return (_ce(logits, x0, 1) / p[:, None])[msk].sum() / x0.numel()


def transfer_ok(n, steps):
    return torch.stack([torch.tensor([c // steps + (i < c % steps) for i in range(steps)]) for c in n.tolist()])


def _step(x, logits, k, m, exclude_mask=True, only_masked=True, largest=True):
    """One low-confidence step, right by default; each flag off is one typical mistake."""
    lg = logits.clone()
    if exclude_mask:
        lg[..., m] = float("-inf")
    conf, prop = torch.softmax(lg, -1).max(-1)
    if only_masked:
        conf = torch.where(x == m, conf, torch.full_like(conf, float("-inf") if largest else float("inf")))
    out = x.clone()
    for b in range(x.shape[0]):
        idx = conf[b].topk(int(k[b]), largest=largest).indices
        out[b, idx] = prop[b, idx]
    return out


def step_ok(x, logits, k, m):
    return _step(x, logits, k, m)


def step_lowest(x, logits, k, m):
    return _step(x, logits, k, m, largest=False)


def step_any_position(x, logits, k, m):
    return _step(x, logits, k, m, only_masked=False)


def step_mask_allowed(x, logits, k, m):
    return _step(x, logits, k, m, exclude_mask=False)       # the [MASK] column left in: wrong on purpose


def step_fill_all(x, logits, k, m):
    lg = logits.clone()
    lg[..., m] = float("-inf")
    return torch.where(x == m, lg.argmax(-1), x)


def step_proposals(x, logits, k, m):
    lg = logits.clone()
    lg[..., m] = float("-inf")
    return lg.argmax(-1)


def forward_plus_eps(x0, m, g, eps=1e-3):
    noisy, msk, p = forward_no_eps(x0, m, g, eps)
    return noisy, msk, p + eps


def step_raw_confidence(x, logits, k, m):
    lg = logits.clone()
    lg[..., m] = float("-inf")
    prop = lg.argmax(-1)
    conf = torch.softmax(logits, -1).gather(-1, prop[..., None])[..., 0]     # [MASK] left in the softmax
    conf = torch.where(x == m, conf, torch.full_like(conf, float("-inf")))
    out = x.clone()
    for b in range(x.shape[0]):
        idx = conf[b].topk(int(k[b])).indices
        out[b, idx] = prop[b, idx]
    return out


def step_rank_trick(x, logits, k, m):
    """Another correct solution, vectorised: rank the masked positions, keep rank < k (k = 0 commits nothing)."""
    conf, prop = logits.masked_fill(torch.arange(logits.shape[-1]) == m, float("-inf")).softmax(-1).max(-1)
    rank = conf.masked_fill(x != m, -1.0).argsort(1, descending=True).argsort(1)
    return torch.where(rank < k[:, None], prop, x)


CH3_WRONG = [
    (E.check_forward_process, forward_single_t, "one t per row"),
    (E.check_forward_process, forward_single_t_scalar, "one t per row"),
    (E.check_forward_process, forward_no_eps, "forget eps"),
    (E.check_forward_process, forward_plus_eps, "forget eps"),
    (E.check_forward_process, lambda x0, m, g, eps=1e-3: forward_ok(x0, m, g, 1e-3), "forget eps"),
    (E.check_forward_process, lambda x0, m, g, eps=1e-3: forward_ok(x0, 1, g, eps), "hold mask_id"),
    (E.check_forward_process, lambda *a: (forward_ok(*a)[0], forward_ok(*a)[1].long(), forward_ok(*a)[2]), "bool"),
    (E.check_forward_process, forward_15, "fixed 15%"),
    (E.check_forward_process, forward_15_const, "fixed 15%"),
    (E.check_forward_process, forward_one_minus_t, "not 1 - p_mask"),
    (E.check_forward_process, forward_global_rng, "generator"),
    (E.check_forward_process, forward_exact_count, "independently"),
    (E.check_forward_process, forward_in_place, "in place"),
    (E.check_forward_process, forward_squared_t, "not uniform"),
    (E.check_pretrain_loss, lambda lg, x0, nz, msk, p: (_ce(lg, x0, 1) / p[:, None])[msk].sum() / msk.sum(),
     "not by the number of masked tokens"),
    (E.check_pretrain_loss, lambda lg, x0, nz, msk, p: _ce(lg, x0, 1)[msk].sum() / x0.numel(), "by 1/p_mask"),
    (E.check_pretrain_loss, lambda lg, x0, nz, msk, p: _ce(lg, x0, 1)[msk].mean(), "BERT"),
    (E.check_pretrain_loss, lambda lg, x0, nz, msk, p: (_ce(lg, x0, 1) / p[:, None]).sum() / x0.numel(),
     "masked positions only"),
    (E.check_pretrain_loss, lambda lg, x0, nz, msk, p: (_ce(lg, x0, 1, False) / p[:, None])[msk].sum() / x0.numel(),
     r"exclude the \[MASK\] logit"),
    (E.check_pretrain_loss, lambda lg, x0, nz, msk, p: torch.where(msk, _ce(lg, x0, 1) / p[:, None], 0).mean(1),
     "scalar"),
    (E.check_num_transfer_tokens, lambda n, s: transfer_ok(n, s).flip(1), r"\*first\* steps"),
    (E.check_num_transfer_tokens, lambda n, s: (n // s)[:, None].expand(-1, s), "sum to mask_count"),
    (E.check_num_transfer_tokens, lambda n, s: transfer_ok(n, s).double(), "torch.long"),
    (E.check_num_transfer_tokens, lambda n, s: (n / s)[:, None].expand(-1, s), "whole tokens"),
    (E.check_num_transfer_tokens, lambda n, s: torch.ceil(n / s).long()[:, None].expand(-1, s), "must sum"),
    (E.check_low_confidence_step, step_any_position, r"only \[MASK\] positions may be committed"),
    (E.check_low_confidence_step, step_lowest, r"\*most\* confident"),
    (E.check_low_confidence_step, step_mask_allowed, r"exclude the \[MASK\] logit"),
    (E.check_low_confidence_step, step_raw_confidence, "excluded too"),
    (E.check_low_confidence_step, step_fill_all, "leave every other position unchanged"),
    (E.check_low_confidence_step, step_proposals, "leave every other position unchanged"),
    (E.check_low_confidence_step, lambda x, lg, k, m: step_ok(x, lg, k + 1, m), "exactly k"),
]


@pytest.mark.parametrize("checker,good", [(E.check_forward_process, forward_ok), (E.check_pretrain_loss, pretrain_ok),
                                          (E.check_num_transfer_tokens, transfer_ok),
                                          (E.check_low_confidence_step, step_ok)])
def test_chapter3_checker_accepts(checker, good, capsys):
    assert checker(good) is True
    assert "passed" in capsys.readouterr().out

    def stub(*args):
        raise NotImplementedError("Exercise N.M: todo")
    with pytest.raises(NotImplementedError):
        checker(stub)
    with pytest.raises(E.ExerciseError, match="raised"):
        checker(lambda *a: 1 / 0)
    with pytest.raises(E.ExerciseError, match="tuple" if checker is E.check_forward_process else "shape"):
        checker(lambda *a: torch.zeros(3))


@pytest.mark.parametrize("checker,wrong,hint", CH3_WRONG)
def test_chapter3_checker_names_the_mistake(checker, wrong, hint):
    with pytest.raises(E.ExerciseError, match=hint):
        checker(wrong)


def test_forward_process_accepts_float64_and_antithetic_times():
    """Any correct variant passes: float64 draws, or stratified t as in MDLM's sample_times."""
    from course_lib import masked

    def antithetic(x0, m, g, eps=1e-3):
        p = masked.sample_times(x0.shape[0], g, antithetic=True, eps=eps)
        msk = torch.rand(x0.shape, generator=g, dtype=torch.float64) < p[:, None]
        return torch.where(msk, m, x0), msk, p
    assert E.check_forward_process(antithetic) is True
    assert E.check_forward_process(lambda x0, m, g, eps=1e-3: masked.llada_forward_process(x0, m, g, eps)) is True


def test_low_confidence_step_accepts_a_vectorised_solution():
    assert E.check_low_confidence_step(step_rank_trick) is True
