"""Exercise checkers accept the reference solution, reject wrong ones with a helpful message,
and let NotImplementedError (an unsolved stub) through unchanged."""
import math

import pytest
import torch

from types import SimpleNamespace

from course_lib.exercises import base, ch1, ch2, ch3, ch4

# every chapter's checkers (and their references) under one name
E = SimpleNamespace(**{k: v for m in (base, ch1, ch2, ch3, ch4) for k, v in vars(m).items() if not k.startswith("__")})


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


# chapter 4: independent reference solutions and the typical mistakes each checker must name
def routing_ok(logits, k):
    if k > logits.shape[-1]:
        raise ValueError("k exceeds the number of experts")
    p = torch.softmax(logits, dim=-1)
    w, e = torch.topk(p, k, dim=-1)
    return e, w / w.sum(-1, keepdim=True)


def routing_topk_logits(logits, k):
    """Also correct: top-k on the logits, softmax over those k only (the same weights)."""
    if k > logits.shape[-1]:
        raise ValueError("too many experts")
    top, e = logits.topk(k, dim=-1)
    return e, torch.softmax(top, dim=-1)


def routing_ascending_ids(logits, k):
    e, w = routing_ok(logits, k)
    order = e.argsort(-1)
    return e.gather(-1, order), w.gather(-1, order)


def routing_unpaired(logits, k):
    e, w = routing_ok(logits, k)
    return e.sort(-1).values, w


def routing_tokens(logits, k):
    if k > logits.shape[-1]:
        raise ValueError
    w, e = torch.topk(torch.softmax(logits, dim=0), k, dim=-1)
    return e, w / w.sum(-1, keepdim=True)


def routing_lowest(logits, k):
    if k > logits.shape[-1]:
        raise ValueError
    p = torch.softmax(logits, dim=-1)
    e = p.argsort(-1)[:, :k]
    w = p.gather(-1, e)
    return e, w / w.sum(-1, keepdim=True)


def routing_no_renorm(logits, k):
    if k > logits.shape[-1]:
        raise ValueError
    w, e = torch.softmax(logits, -1).topk(k, -1)
    return e, w


def routing_no_check(logits, k):
    w, e = torch.softmax(logits, -1).topk(min(k, logits.shape[-1]), -1)
    return e, w / w.sum(-1, keepdim=True)


def routing_topk_error(logits, k):      # torch.topk's own RuntimeError is not a clear ValueError
    w, e = torch.softmax(logits, -1).topk(k, -1)
    return e, w / w.sum(-1, keepdim=True)


def params_ok(c):
    """An independent count, component by component, in plain arithmetic."""
    d = c["hidden"]
    per_attn = d * c["n_heads"] * c["head_dim"] * 2 + d * c["n_kv_heads"] * c["head_dim"] * 2
    swiglu = lambda f: 3 * d * f  # noqa: E731
    moe_layers = c["n_layers"] - c["n_dense_layers"]
    emb = c["vocab"] * d if c["tied"] else 2 * c["vocab"] * d
    common = emb + c["n_layers"] * per_attn + c["n_dense_layers"] * swiglu(c["dense_ffn"]) + d * (2 * c["n_layers"] + 1)
    common += moe_layers * (c["n_shared"] * swiglu(c["expert_ffn"]) + d * c["n_experts"])
    return (common + moe_layers * c["n_experts"] * swiglu(c["expert_ffn"]),
            common + moe_layers * c["top_k"] * swiglu(c["expert_ffn"]))


def params_variant(**change):
    """params_ok with one thing done wrong."""
    def fn(c):
        c = dict(c)
        if change.get("mha"):
            c["n_kv_heads"] = c["n_heads"]
        if change.get("no_shared"):
            c["n_shared"] = 0
        if change.get("tied_always"):
            c["tied"] = True
        if change.get("untied_always"):
            c["tied"] = False
        total, active = params_ok(c)
        if change.get("no_dense"):
            total -= c["n_dense_layers"] * 3 * c["hidden"] * c["dense_ffn"]
            active -= c["n_dense_layers"] * 3 * c["hidden"] * c["dense_ffn"]
        if change.get("all_active"):
            active = total
        return total, active
    return fn


def params_all_moe(c):
    return params_ok(dict(c, n_dense_layers=0))


def sets_ok(x, probs, mask_id, tau_mask, tau_edit, editable):
    conf, v = probs.max(dim=-1)
    is_mask = x == mask_id
    return is_mask & (conf > tau_mask), editable & ~is_mask & (x != v) & (conf > tau_edit)


def sets_variant(**kw):
    def fn(x, probs, mask_id, tau_mask, tau_edit, editable):
        conf, v = probs.max(dim=-1)
        is_mask = x == mask_id
        gt = (lambda a, b: a >= b) if kw.get("ge") else (lambda a, b: a > b)
        m2t = is_mask & gt(conf, tau_mask)
        t2t = (~is_mask | kw.get("edit_masked", False)) & gt(conf, tau_mask if kw.get("tau_mask_edits") else tau_edit)
        if not kw.get("edit_same"):
            t2t &= x != v
        if not kw.get("edit_prompt"):
            t2t &= editable
        return m2t, t2t
    return fn


def block_mask_ok(L, block_size):
    if L % block_size != 0:
        raise ValueError("block_size must divide L")
    K = L // block_size
    blk = torch.arange(L) // block_size
    same = blk[:, None] == blk[None, :]
    m = torch.zeros(2 * L, 2 * L, dtype=torch.bool)
    m[:L, :L] = same                                       # x_t -> x_t
    m[:L, L:] = blk[:, None] > blk[None, :]                # x_t -> x_0
    m[L:, L:] = blk[:, None] >= blk[None, :]               # x_0 -> x_0
    assert K >= 1
    return m


def block_mask_bd3lm(L, block_size):
    """Also correct: BD3-LM's formulation with flags over the 2L positions."""
    if L % block_size:
        raise ValueError("does not divide")
    n = torch.arange(2 * L)
    flag = n >= L
    b = torch.where(flag, (n - L) // block_size, n // block_size)
    bd = (b[:, None] == b[None]) & (flag[:, None] == flag[None])
    obc = (b[:, None] > b[None]) & flag[None] & ~flag[:, None]
    bc = (b[:, None] >= b[None]) & flag[None] & flag[:, None]
    return bd | obc | bc


def block_mask_variant(**kw):
    def fn(L, block_size):
        if L % block_size and not kw.get("no_check"):
            raise ValueError("does not divide")
        m = block_mask_ok(L, max(block_size, 1)) if not L % block_size else torch.zeros(2 * L, 2 * L, dtype=torch.bool)
        blk = torch.arange(L) // block_size
        if kw.get("leak"):
            m[:L, L:] = blk[:, None] >= blk[None, :]
        if kw.get("x0_sees_xt"):
            m[L:, :L] = blk[:, None] >= blk[None, :]
        if kw.get("causal"):
            m[:L, :L] = torch.ones(L, L, dtype=torch.bool).tril()
        if kw.get("strict_bc"):
            m[L:, L:] = blk[:, None] > blk[None, :]
        if kw.get("transpose"):
            m = m.T.contiguous()
        return m
    return fn


def block_mask_global_blocks(L, block_size):
    """Blocks numbered over all 2L positions: x_t never sees x_0."""
    if L % block_size:
        raise ValueError("does not divide")
    n = torch.arange(2 * L)
    flag, b = n >= L, n // block_size
    bd = (b[:, None] == b[None]) & (flag[:, None] == flag[None])
    obc = (b[:, None] > b[None]) & flag[None] & ~flag[:, None]
    bc = (b[:, None] >= b[None]) & flag[None] & flag[:, None]
    return bd | obc | bc


CH4_GOOD = [(E.check_topk_routing, routing_ok), (E.check_topk_routing, routing_topk_logits),
            (E.check_param_count, params_ok), (E.check_param_count, lambda c: tuple(float(v) for v in params_ok(c))),
            (E.check_m2t_t2t_sets, sets_ok), (E.check_block_mask, block_mask_ok),
            (E.check_block_mask, block_mask_bd3lm)]

CH4_WRONG = [
    (E.check_topk_routing, routing_no_renorm, "renormalise"),
    (E.check_topk_routing, routing_tokens, "over the experts"),
    (E.check_topk_routing, routing_lowest, r"\*most\* probable"),
    (E.check_topk_routing, routing_ascending_ids, "best first"),
    (E.check_topk_routing, routing_unpaired, "not paired"),
    (E.check_topk_routing, routing_no_check, "raise a ValueError instead"),
    (E.check_topk_routing, routing_topk_error, "raised RuntimeError"),
    (E.check_topk_routing, lambda lg, k: (routing_ok(lg, k)[0].int(), routing_ok(lg, k)[1]), "LongTensor"),
    (E.check_topk_routing, lambda lg, k: routing_ok(lg, k)[0], "tuple of two"),
    (E.check_param_count, params_variant(all_active=True), "top_k routed experts"),
    (E.check_param_count, params_variant(no_shared=True), "shared expert"),
    (E.check_param_count, params_variant(no_dense=True), "dense layers' feed-forward"),
    (E.check_param_count, params_all_moe, "are dense"),
    (E.check_param_count, params_variant(mha=True), "grouped-query attention"),
    (E.check_param_count, params_variant(tied_always=True), "untied embeddings have a separate LM head"),
    (E.check_param_count, params_variant(untied_always=True), "with tied embeddings the LM head is"),
    (E.check_param_count, lambda c: (params_ok(c)[0] + 1, params_ok(c)[1]), "wrong total for cfg"),
    (E.check_param_count, lambda c: params_ok(c)[0], "tuple"),
    (E.check_m2t_t2t_sets, sets_variant(ge=True), "strict inequalities"),
    (E.check_m2t_t2t_sets, lambda x, p, m, tm, te, ed: (sets_variant(ge=True)(x, p, m, tm, te, ed)[0],
                                                        sets_ok(x, p, m, tm, te, ed)[1]), r"M2T uses a strict"),
    (E.check_m2t_t2t_sets, lambda x, p, m, tm, te, ed: sets_ok(x, p, m, te, tm, ed), "swapped"),
    (E.check_m2t_t2t_sets, sets_variant(edit_same=True), "x_i != v_i"),
    (E.check_m2t_t2t_sets, sets_variant(edit_masked=True), "never to T2T"),
    (E.check_m2t_t2t_sets, sets_variant(tau_mask_edits=True), "its own threshold tau_edit"),
    (E.check_m2t_t2t_sets, sets_variant(edit_prompt=True), "never edits the prompt"),
    (E.check_m2t_t2t_sets, lambda *a: sets_ok(*a)[::-1], "in that order"),
    (E.check_m2t_t2t_sets, lambda *a: tuple(s.long() for s in sets_ok(*a)), "bool tensor"),
    (E.check_block_mask, block_mask_variant(leak=True), "answer leaks"),
    (E.check_block_mask, block_mask_variant(x0_sees_xt=True), "never attend to x_t"),
    (E.check_block_mask, block_mask_variant(causal=True), "not causal"),
    (E.check_block_mask, block_mask_variant(strict_bc=True), "sees its own block too"),
    (E.check_block_mask, block_mask_variant(transpose=True), "transposed"),
    (E.check_block_mask, block_mask_variant(no_check=True), "raise a ValueError instead"),
    (E.check_block_mask, block_mask_global_blocks, r"k mod L"),
    (E.check_block_mask, lambda L, bs: block_mask_ok(L, bs).long(), "bool tensor"),
]


@pytest.mark.parametrize("checker,good", CH4_GOOD)
def test_chapter4_checker_accepts(checker, good, capsys):
    assert checker(good) is True
    assert "passed" in capsys.readouterr().out

    def stub(*args):
        raise NotImplementedError("Exercise N.M: todo")
    with pytest.raises(NotImplementedError):
        checker(stub)
    with pytest.raises(E.ExerciseError, match="raised"):
        checker(lambda *a: 1 / 0)


@pytest.mark.parametrize("checker,wrong,hint", CH4_WRONG)
def test_chapter4_checker_names_the_mistake(checker, wrong, hint):
    with pytest.raises(E.ExerciseError, match=hint):
        checker(wrong)


def test_chapter4_references_agree_with_hand_values():
    """The checkers' private references against numbers worked out by hand."""
    # 4.1: logits log([0.5, 0.3, 0.2]) -> top-2 = experts 0, 1 with weights 0.5/0.8, 0.3/0.8
    e, w = E._topk_routing_ref(torch.log(torch.tensor([[0.5, 0.3, 0.2]], dtype=torch.float64)), 2)
    assert e.tolist() == [[0, 1]] and torch.allclose(w, torch.tensor([[0.625, 0.375]], dtype=torch.float64))
    with pytest.raises(ValueError):
        E._topk_routing_ref(torch.zeros(2, 3), 4)
    # 4.2: one MoE layer, hidden 2, 1 head of size 2 (q, k, v, o: 4 * 4), vocab 3 untied (2 * 6), 2 experts of
    # ffn 1 (2 * 6) + 1 shared (6) + router (4) + norms (3 * 2): total 16 + 12 + 12 + 6 + 4 + 6 = 56; top-1 active
    # drops one routed expert: 50
    c = dict(n_layers=1, hidden=2, n_heads=1, n_kv_heads=1, head_dim=2, vocab=3, tied=False, n_dense_layers=0,
             dense_ffn=0, n_experts=2, top_k=1, n_shared=1, expert_ffn=1)
    assert E._param_count_ref(c) == (56, 50)
    # LLaDA2.0-mini (REFERENCE.md section 4): about 16B total, 1.4B active (QK-norm aside)
    mini = dict(n_layers=20, hidden=2048, n_heads=16, n_kv_heads=4, head_dim=128, vocab=157_184, tied=False,
                n_dense_layers=1, dense_ffn=5120, n_experts=256, top_k=8, n_shared=1, expert_ffn=512)
    total, active = E._param_count_ref(mini)
    assert abs(total / 16e9 - 1) < 0.03 and abs(active / 1.4e9 - 1) < 0.03
    # 4.3: L = 2, block 1: x_t token 1 sees itself and clean token 0; clean tokens causal
    m = E._block_mask_ref(2, 1).int().tolist()
    assert m == [[1, 0, 0, 0], [0, 1, 1, 0], [0, 0, 1, 0], [0, 0, 1, 1]]
