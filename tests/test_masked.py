"""Masked diffusion (MDLM / LLaDA): schedules, time sampling, forward process, SUBS, loss, exact toy, samplers."""
import math

import pytest
import torch

from course_lib import ddpm
from course_lib import masked as m

TS = torch.linspace(0.01, 1.0, 100, dtype=torch.float64)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


class TinyDenoiser(torch.nn.Module):
    """A fixed random bidirectional 'network': token embedding + mean-pooled context -> logits."""

    def __init__(self, V, d=16, seed=0):
        super().__init__()
        g = gen(seed)
        self.emb = torch.randn(V, d, generator=g)
        self.out = torch.randn(2 * d, V, generator=g)

    def forward(self, x):
        e = self.emb[x]
        ctx = e.mean(1, keepdim=True).expand_as(e)
        return torch.cat([e, ctx], -1) @ self.out


# --------------------------------------------------------------------------- schedules
@pytest.mark.parametrize("name", ["linear", "cosine", "loglinear"])
def test_schedule_endpoints_and_derivative_match_finite_differences(name):
    s = m.get_schedule(name)
    assert float(s.alpha(0.0)) == pytest.approx(1.0)
    assert float(s.alpha(1.0)) == pytest.approx(1e-3 if name == "loglinear" else 0.0, abs=1e-15)
    t, h = torch.linspace(0.05, 0.95, 19, dtype=torch.float64), 1e-6
    fd = (s.alpha(t + h) - s.alpha(t - h)) / (2 * h)
    torch.testing.assert_close(s.dalpha(t), fd, rtol=1e-6, atol=1e-8)
    assert bool((s.weight(TS) > 0).all())


def test_weight_identities():
    torch.testing.assert_close(m.LinearSchedule().weight(TS), 1 / TS)
    # MDLM's log-linear form: w = dsigma / expm1(sigma), sigma = -log(1 - (1 - eps) t), which is exactly 1/t
    eps = 1e-3
    sigma = -torch.log1p(-(1 - eps) * TS)
    dsigma = (1 - eps) / (1 - (1 - eps) * TS)
    torch.testing.assert_close(m.LogLinearSchedule(eps).weight(TS), dsigma / torch.expm1(sigma))
    torch.testing.assert_close(m.LogLinearSchedule(eps).weight(TS), 1 / TS)
    c = m.CosineSchedule().weight(TS)
    torch.testing.assert_close(c, (math.pi / 2) * torch.sin(math.pi * TS / 2) / (1 - torch.cos(math.pi * TS / 2)))


# --------------------------------------------------------------------------- time sampling
def test_antithetic_times_cover_eps_to_one_evenly_and_reduce_variance():
    B, eps = 64, 1e-3
    t = m.sample_times(B, gen(1), antithetic=True, eps=eps)
    assert t.shape == (B,) and float(t.min()) >= eps and float(t.max()) <= 1
    strata = ((t - eps) / (1 - eps) * B).floor().long()
    assert sorted(strata.tolist()) == list(range(B))               # one time per stratum
    g = gen(2)
    means_a = torch.stack([m.sample_times(B, g, antithetic=True).mean() for _ in range(300)])
    means_i = torch.stack([m.sample_times(B, g, antithetic=False).mean() for _ in range(300)])
    assert float(means_a.var()) < 0.05 * float(means_i.var())
    assert abs(float(means_i.mean()) - (1 + eps) / 2) < 0.01


# --------------------------------------------------------------------------- forward process
@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_forward_masking_rate_matches_one_minus_alpha(name):
    sch = m.get_schedule(name)
    x0 = torch.randint(0, 5, (8, 20000), generator=gen(3))
    t = torch.linspace(0.0, 1.0, 8, dtype=torch.float64)
    xt, masked = m.forward_mask(x0, t, sch, mask_id=5, generator=gen(4))
    torch.testing.assert_close(masked.double().mean(1), 1 - sch.alpha(t), atol=0.015, rtol=0)
    assert bool((xt[masked] == 5).all()) and bool((xt[~masked] == x0[~masked]).all())
    assert not bool(masked[0].any()) and bool(masked[-1].all())     # t = 0 clean, t = 1 all [MASK]


def test_llada_forward_process_rate_is_p_mask():
    x0 = torch.randint(0, 5, (16, 4000), generator=gen(5))
    xt, masked, p = m.llada_forward_process(x0, 5, gen(6))
    assert float(p.min()) >= 1e-3
    torch.testing.assert_close(masked.double().mean(1), p, atol=0.03, rtol=0)


# --------------------------------------------------------------------------- SUBS and loss
def test_subs_rows_sum_to_one_mask_prob_zero_carry_over_exact():
    V, mask_id = 7, 6
    logits = torch.randn(4, 9, V, generator=gen(7), dtype=torch.float64)
    x0 = torch.randint(0, 6, (4, 9), generator=gen(8))
    xt, masked = m.forward_mask(x0, 0.5, "linear", mask_id, gen(9))
    lp = m.subs_log_probs(logits, xt, mask_id)
    p = lp.exp()
    torch.testing.assert_close(p.sum(-1), torch.ones(4, 9, dtype=torch.float64))
    assert bool((p[..., mask_id] == 0).all())
    assert bool((p[~masked] == torch.nn.functional.one_hot(x0[~masked], V).double()).all())
    # at masked positions it is the softmax over the non-mask tokens
    ref = torch.softmax(logits[..., :mask_id], -1)[masked]
    torch.testing.assert_close(p[masked][:, :mask_id], ref)


def test_mdlm_loss_normalisation_and_padding():
    V, mask_id, B, L = 6, 5, 3, 10
    logits = torch.randn(B, L, V, generator=gen(10), dtype=torch.float64)
    x0 = torch.randint(0, 5, (B, L), generator=gen(11))
    t = torch.tensor([0.3, 0.6, 0.9], dtype=torch.float64)
    xt, masked = m.forward_mask(x0, t, "linear", mask_id, gen(12))
    pad = torch.zeros(B, L, dtype=torch.bool)
    pad[0, 7:] = True
    out = m.mdlm_loss(logits, x0, xt, masked, t, "linear", mask_id=mask_id, pad_mask=pad)
    nll = -torch.log_softmax(logits[..., :mask_id], -1).gather(-1, x0[..., None])[..., 0]
    tok = torch.where(masked & ~pad, nll / t[:, None], torch.zeros_like(nll))
    torch.testing.assert_close(out.nelbo, tok.sum(1))
    torch.testing.assert_close(out.loss, tok.sum() / (B * L - 3))   # all non-pad positions, not #masked
    assert out.tokens.tolist() == [7, 10, 10]
    # a callable denoiser gives the same numbers
    out2 = m.mdlm_loss(lambda z: logits, x0, xt, masked, t, "linear", mask_id=mask_id, pad_mask=pad)
    torch.testing.assert_close(out2.loss, out.loss)


def test_mdlm_loss_is_unbiased_for_the_exact_nelbo_on_the_toy():
    toy = m.ToyDistribution.random(3, 2, seed=3)
    den = m.smoothed_denoiser(toy, 0.3)
    exact = m.exact_continuous_nelbo(toy, den, "linear")
    x0 = toy.sequences[5:6].expand(20000, 3).contiguous()
    t = m.sample_times(20000, gen(13), eps=1e-4)
    xt, masked = m.forward_mask(x0, t, "linear", toy.mask_id, gen(14))
    est = m.mdlm_loss(den, x0, xt, masked, t, "linear", mask_id=toy.mask_id).nelbo.mean()
    assert abs(float(est) - float(exact[5])) < 0.05 * float(exact[5])


# --------------------------------------------------------------------------- exact toy
@pytest.mark.parametrize("L,K", [(2, 3), (3, 2), (4, 2), (3, 3)])
def test_exact_denoiser_nelbo_equals_neg_log_p_data(L, K):
    toy = m.ToyDistribution.random(L, K, seed=L * 10 + K)
    nelbo = m.exact_continuous_nelbo(toy, m.exact_denoiser(toy), "linear")
    assert float((nelbo + toy.log_prob(toy.sequences)).abs().max()) < 1e-6


def test_exact_denoiser_is_the_data_conditional():
    toy = m.ToyDistribution.from_dict({(0, 0): 0.5, (0, 1): 0.1, (1, 1): 0.4}, L=2, K=2)
    lg = m.exact_denoiser(toy)(torch.tensor([[2, 1], [2, 2]]))
    p = torch.softmax(lg, -1)
    torch.testing.assert_close(p[0, 0], torch.tensor([0.2, 0.8, 0.0], dtype=torch.float64))
    torch.testing.assert_close(p[1, 1], torch.tensor([0.5, 0.5, 0.0], dtype=torch.float64))


def test_time_weights_quadrature_matches_beta_closed_form_and_schedule_invariance():
    for L in (2, 3, 4):
        for name in ("linear", "cosine"):
            torch.testing.assert_close(m.nelbo_time_weights(name, L), m.beta_time_weights(L), rtol=1e-10, atol=1e-12)
    toy = m.ToyDistribution.random(3, 3, seed=4)
    den = m.smoothed_denoiser(toy, 0.3)                           # imperfect: NELBO > -log p_data
    lin = m.exact_continuous_nelbo(toy, den, "linear")
    cos = m.exact_continuous_nelbo(toy, den, "cosine")
    assert float((lin - cos).abs().max()) < 1e-9
    # the bound is on the model's likelihood, so compare in expectation: E_data NELBO > entropy of p_data
    entropy = -(toy.probs * toy.log_prob(toy.sequences)).sum()
    assert float((toy.probs * lin).sum()) > float(entropy) + 1e-3


def test_discrete_time_likelihood_is_normalised_and_nelbo_bounds_it():
    toy = m.ToyDistribution.random(3, 3, seed=5)
    den = m.smoothed_denoiser(toy, 0.3)
    for T in (2, 4, 8):
        logp = m.discrete_time_log_likelihood(toy, den, T)
        assert float(logp.exp().sum()) == pytest.approx(1.0, abs=1e-12)
        gap = m.discrete_time_nelbo(toy, den, T) + logp
        assert float(gap.min()) > 1e-5                              # strict for every sequence
    # one step: a single latent path, so the bound is tight; many steps approach the continuous NELBO
    torch.testing.assert_close(m.discrete_time_nelbo(toy, den, 1), -m.discrete_time_log_likelihood(toy, den, 1))
    cont = m.exact_continuous_nelbo(toy, den)
    assert float((m.discrete_time_nelbo(toy, den, 2000) - cont).abs().max()) < 1e-2


def test_random_order_sampler_samples_the_dp_likelihood():
    toy = m.ToyDistribution.random(3, 2, seed=6)
    den = m.smoothed_denoiser(toy, 0.3)
    x = ddpm.final(m.ancestral_sampler(den, 3, 3, toy.mask_id, gen(15), batch=40000))
    idx = (x * torch.tensor([4, 2, 1])).sum(1)
    emp = torch.bincount(idx, minlength=8).double() / len(idx)
    exact = m.discrete_time_log_likelihood(toy, den, 3).exp()
    assert 0.5 * float((emp - exact).abs().sum()) < 0.02


# --------------------------------------------------------------------------- samplers
@pytest.mark.parametrize("order", ["random", "confidence"])
def test_sampler_yields_every_state_and_unmasks_monotonically(order):
    net = TinyDenoiser(9)
    states = list(m.ancestral_sampler(net, 12, 6, 8, gen(16), order=order, batch=2))
    assert [s.step for s in states] == list(range(6, -1, -1))
    assert bool((states[0].x == 8).all()) and not bool((states[-1].x == 8).any())
    for a, b in zip(states[:-1], states[1:]):
        kept = a.x != 8
        assert bool((b.x[kept] == a.x[kept]).all())                 # never re-masked
    if order == "confidence":                                       # linear schedule: 2 tokens per step
        counts = [int((s.x != 8).sum(1)[0]) for s in states]
        assert counts == [0, 2, 4, 6, 8, 10, 12]


@pytest.mark.parametrize("order", ["random", "confidence"])
def test_cached_sampler_is_identical_with_fewer_calls(order):
    net = TinyDenoiser(11, seed=1)
    plain, cached = m.CallCounter(net), m.CallCounter(net)
    a = list(m.ancestral_sampler(plain, 32, 1000, 10, gen(17), order=order))
    b = list(m.cached_sampler(cached, 32, 1000, 10, gen(17), order=order))
    assert all(torch.equal(s.x, c.x) for s, c in zip(a, b))
    assert plain.calls == 1000 and cached.calls <= 33


class RowCounter:
    """A denoiser that counts the canvas rows it is given (the row-by-row cache sends only changed rows)."""

    def __init__(self, net):
        self.net, self.rows = net, 0

    def __call__(self, x):
        self.rows += x.shape[0]
        return self.net(x)


def test_cached_sampler_in_a_batch_recomputes_only_changed_rows():
    net = TinyDenoiser(11, seed=1)
    plain, cached = RowCounter(net), RowCounter(net)
    a = ddpm.final(m.ancestral_sampler(plain, 12, 200, 10, gen(18), batch=6))
    b = ddpm.final(m.cached_sampler(cached, 12, 200, 10, gen(18), batch=6))
    assert torch.equal(a, b)
    assert plain.rows == 6 * 200
    assert cached.rows <= 6 * (12 + 1)      # each row changes at most once per token, plus the first call


# --------------------------------------------------------------------------- bad input
def test_bad_inputs_raise_value_error():
    x0 = torch.zeros(2, 4, dtype=torch.long)
    with pytest.raises(ValueError):
        m.get_schedule("quadratic")
    with pytest.raises(ValueError):
        m.LinearSchedule().alpha(1.5)
    with pytest.raises(ValueError):
        m.LinearSchedule().weight(0.0)
    with pytest.raises(ValueError):
        m.sample_times(0)
    with pytest.raises(ValueError):
        m.forward_mask(x0.float(), 0.5, "linear", 3)
    with pytest.raises(ValueError):
        m.forward_mask(x0 + 3, 0.5, "linear", 3)                    # already holds [MASK]
    with pytest.raises(ValueError):
        m.forward_mask(x0, torch.tensor([0.5, 0.5, 0.5]), "linear", 3)
    xt, masked = m.forward_mask(x0, 0.5, "linear", 3, gen(0))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        m.mdlm_loss(torch.zeros(2, 4, 3), x0, xt, masked, 0.5, "linear", mask_id=3)
    with pytest.raises(ValueError, match="shape"):
        m.mdlm_loss(torch.zeros(2, 5, 4), x0, xt, masked, 0.5, "linear", mask_id=3)
    with pytest.raises(ValueError, match="shape"):
        next(iter(list(m.ancestral_sampler(lambda z: torch.zeros(1, 3, 4), 4, 2, 3))))
    with pytest.raises(ValueError):
        m.mdlm_loss(torch.zeros(2, 4, 4), x0, xt, ~masked, 0.5, "linear", mask_id=3)
    with pytest.raises(ValueError):
        m.ToyDistribution(torch.tensor([0.5, 0.6, 0.0, 0.0]), 2, 2)
    with pytest.raises(ValueError):
        m.ToyDistribution(torch.full((8,), 1 / 8), 2, 2)
    toy = m.ToyDistribution.random(2, 2)
    with pytest.raises(ValueError):
        m.discrete_time_nelbo(toy, m.exact_denoiser(toy), 4, "loglinear")   # alpha_1 = eps: no all-[MASK] prior
    with pytest.raises(ValueError):
        m.discrete_time_log_likelihood(toy, m.exact_denoiser(toy), 0)
    with pytest.raises(ValueError):
        next(m.ancestral_sampler(lambda z: z, 4, 2, 3, order="left-to-right"))
    with pytest.raises(ValueError):
        next(m.ancestral_sampler(lambda z: z, 4, 0, 3))


# --------------------------------------------------------------------------- rates, concrete score (section 6.1)
@pytest.mark.parametrize("name", ["linear", "cosine", "loglinear"])
def test_rate_integrates_to_minus_log_alpha_and_links_to_the_weight(name):
    import numpy as np
    s = m.get_schedule(name)
    x, w = (torch.as_tensor(a) for a in np.polynomial.legendre.leggauss(80))
    for t in (0.1, 0.5, 0.9):
        integral = float((t / 2 * w * s.rate(t * (x + 1) / 2)).sum())
        assert math.exp(-integral) == pytest.approx(float(s.alpha(t)), abs=1e-12)
        assert float(s.rate(t) * s.alpha(t) / (1 - s.alpha(t))) == pytest.approx(float(s.weight(t)), rel=1e-12)
    if name == "linear":
        assert math.isinf(float(s.rate(1.0)))


def _brute_marginal(toy, alpha, kind):
    """p_t(z) for every noisy z, by Python loops over clean sequences and positions (an independent reference)."""
    import itertools
    V = toy.K + 1 if kind == "absorbing" else toy.K
    out = {}
    for z in itertools.product(range(V), repeat=toy.L):
        total = 0.0
        for x, p in zip(toy.sequences.tolist(), toy.probs.tolist()):
            q = 1.0
            for zl, xl in zip(z, x):
                if kind == "absorbing":
                    q *= alpha if zl == xl else (1 - alpha if zl == toy.mask_id else 0.0)
                else:
                    q *= alpha * (zl == xl) + (1 - alpha) / toy.K
            total += p * q
        out[z] = total
    return out


@pytest.mark.parametrize("kind", ["absorbing", "uniform"])
def test_noisy_joint_matches_a_brute_force_loop_and_the_sampler(kind):
    toy = m.ToyDistribution.random(3, 2, seed=5)
    z, joint = m.noisy_joint(toy, 0.35, kind)
    assert z.shape == ((3 if kind == "absorbing" else 2) ** 3, 3)
    torch.testing.assert_close(joint.sum(1), toy.probs, atol=1e-15, rtol=0)           # rows: p_data(x_0)
    ref = _brute_marginal(toy, 0.35, kind)
    torch.testing.assert_close(joint.sum(0), torch.tensor([ref[tuple(r)] for r in z.tolist()], dtype=torch.float64),
                               atol=1e-15, rtol=0)
    if kind == "absorbing":                        # the forward process the chapter trains with, at alpha_t = 0.35
        g = gen(3)
        x0 = toy.sequences[torch.multinomial(toy.probs, 40000, replacement=True, generator=g)]
        xt, _ = m.forward_mask(x0, 0.65, "linear", toy.mask_id, g)
        idx = (xt * 3 ** torch.arange(2, -1, -1)).sum(1)
        freq = torch.bincount(idx, minlength=27).double() / 40000
        assert float((freq - joint.sum(0)).abs().max()) < 0.01


def test_concrete_score_is_alpha_ratio_times_the_clean_conditional():
    toy = m.ToyDistribution.random(3, 3, seed=8)
    exact = m.exact_denoiser(toy)
    for alpha in (0.2, 0.7):
        z, joint = m.noisy_joint(toy, alpha)
        s = m.concrete_score(toy, alpha)
        assert s.shape == (len(z), 3, 4)
        cond = torch.softmax(exact(z), -1)
        at_mask = z == toy.mask_id
        torch.testing.assert_close(s[..., :3][at_mask], (alpha / (1 - alpha) * cond[..., :3])[at_mask],
                                   atol=1e-12, rtol=1e-12)
        assert torch.equal(s.gather(-1, z[..., None])[..., 0], torch.ones(z.shape, dtype=torch.float64))
        # masking a visible token: the inverse ratio, (1 - alpha) / alpha / p(x^l = z^l | the other visible tokens)
        p = joint.sum(0)
        i = int((z == torch.tensor([0, 2, toy.mask_id])).all(1).nonzero())
        j = int((z == torch.tensor([0, toy.mask_id, toy.mask_id])).all(1).nonzero())
        assert float(s[i, 1, toy.mask_id]) == pytest.approx(float(p[j] / p[i]), rel=1e-12)
        assert float(s[i, 1, toy.mask_id]) == pytest.approx((1 - alpha) / alpha / float(cond[j, 1, 2]), rel=1e-12)


def test_absorbing_posterior_is_free_of_t_and_uniform_is_not():
    toy = m.ToyDistribution.random(3, 2, seed=9)
    post = {}
    for kind in ("absorbing", "uniform"):
        joints = [m.noisy_joint(toy, alpha, kind)[1] for alpha in (0.8, 0.3)]
        post[kind] = [j / j.sum(0) for j in joints]                      # p(x_0 | z) at two times
    assert float((post["absorbing"][0] - post["absorbing"][1]).abs().max()) < 1e-14
    assert float((post["uniform"][0] - post["uniform"][1]).abs().max()) > 0.1


def test_concrete_score_is_nan_off_the_support_and_bad_input_raises():
    toy = m.ToyDistribution.from_dict({(0, 0): 0.5, (1, 1): 0.5}, L=2, K=2)
    z, joint = m.noisy_joint(toy, 1.0)                                    # alpha = 1: nothing is masked
    s = m.concrete_score(toy, 1.0)
    zero = joint.sum(0) == 0
    assert int((~zero).sum()) == 2 and bool(s[zero].isnan().all()) and not bool(s[~zero].isnan().any())
    i = int((z == torch.tensor([0, 0])).all(1).nonzero())
    assert float(s[i, 0, 1]) == 0.0                                       # 10 has probability 0, 00 has 1/2
    for call in (lambda: m.noisy_joint(toy, 1.2), lambda: m.noisy_joint(toy, float("nan")),
                 lambda: m.noisy_joint(toy, 0.5, "gaussian"), lambda: m.concrete_score(toy.probs, 0.5)):
        with pytest.raises(ValueError):
            call()
