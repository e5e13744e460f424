"""D3PM (chapter 2, sections 1-4): transition matrices, schedules, posterior, losses, masked-LM identity.

Cross-checks use independent implementations: numpy matrix powers, explicit Python loops over the
states, and Bayes' rule by brute-force enumeration of joint probabilities.
"""
import itertools
import math

import numpy as np
import pytest
import torch

from course_lib import d3pm, masked


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _rand_logits(shape, seed):
    return torch.randn(shape, generator=gen(seed), dtype=torch.float64) * 2


# --------------------------------------------------------------------------- transition matrices
@pytest.mark.parametrize("make", [lambda b, K: d3pm.uniform_Q(b, K), lambda b, K: d3pm.absorbing_Q(b, K, K - 1),
                                  lambda b, K: d3pm.gaussian_Q(b, K)])
@pytest.mark.parametrize("beta", [0.0, 0.03, 0.5, 1.0])
def test_matrices_are_row_stochastic(make, beta):
    Q = make(beta, 7)
    assert Q.shape == (7, 7) and Q.dtype == torch.float64
    assert bool((Q >= 0).all())
    torch.testing.assert_close(Q.sum(1), torch.ones(7, dtype=torch.float64))


def test_uniform_and_absorbing_entries():
    K, b = 5, 0.3
    U = d3pm.uniform_Q(b, K).numpy()
    for i, j in itertools.product(range(K), range(K)):
        want = 1 - (K - 1) * b / K if i == j else b / K
        assert U[i, j] == pytest.approx(want, abs=1e-15)
    A = d3pm.absorbing_Q(b, K, mask_id=2).numpy()
    for i, j in itertools.product(range(K), range(K)):
        if i == 2:
            want = 1.0 if j == 2 else 0.0
        else:
            want = (1 - b if i == j else 0.0) + (b if j == 2 else 0.0)
        assert A[i, j] == pytest.approx(want, abs=1e-15)


def test_gaussian_matches_appendix_formula_with_loops():
    K, b = 6, 0.4
    Z = sum(math.exp(-4 * n * n / ((K - 1) ** 2 * b)) for n in range(-(K - 1), K))
    G = d3pm.gaussian_Q(b, K).numpy()
    for i in range(K):
        off = 0.0
        for j in range(K):
            if i != j:
                want = math.exp(-4 * (i - j) ** 2 / ((K - 1) ** 2 * b)) / Z
                assert G[i, j] == pytest.approx(want, rel=1e-12)
                off += want
        assert G[i, i] == pytest.approx(1 - off, rel=1e-12)
    np.testing.assert_allclose(G, G.T)                   # symmetric -> doubly stochastic
    np.testing.assert_allclose(G.sum(0), np.ones(K))
    assert G[0, 1] > G[0, 2] > G[0, 3]                    # nearer categories are likelier


def test_bert_Q_gives_80_10_10_rule():
    K, m, p = 9, 8, 0.15
    # the procedure, enumerated: select w.p. p; then mask 0.8 / random token (uniform over K) 0.1 / keep 0.1
    want = np.zeros((K, K))
    for i in range(K):
        want[i, i] += 1 - p
        want[i, m] += p * 0.8
        want[i, i] += p * 0.1
        for j in range(K):
            want[i, j] += p * 0.1 / K
    Q = d3pm.bert_Q(K, m, p).numpy()
    np.testing.assert_allclose(Q[:m], want[:m], atol=1e-15)   # every real (non-mask) token
    assert Q[0, m] == pytest.approx(0.12 + 0.015 / K)
    assert Q[0, 0] == pytest.approx(0.85 + 0.015 + 0.015 / K)
    assert Q[0, 3] == pytest.approx(0.015 / K)
    # overall: 15% selected, of which 80% masked, 10% random, 10% kept
    assert Q[0, m] - Q[0, 3] == pytest.approx(0.8 * p)
    np.testing.assert_allclose(Q.sum(1), np.ones(K))


def test_stationary_distributions():
    K = 6
    torch.testing.assert_close(d3pm.stationary(d3pm.uniform_Q(0.2, K)), torch.full((K,), 1 / K, dtype=torch.float64))
    point = torch.zeros(K, dtype=torch.float64)
    point[3] = 1
    torch.testing.assert_close(d3pm.stationary(d3pm.absorbing_Q(0.2, K, 3)), point, atol=1e-12, rtol=0)
    torch.testing.assert_close(d3pm.stationary(d3pm.gaussian_Q(0.3, K)), torch.full((K,), 1 / K, dtype=torch.float64))
    # a non-symmetric chain: compare with power iteration done independently in numpy
    Q = torch.softmax(torch.randn(K, K, generator=gen(3), dtype=torch.float64), dim=1)
    pi = d3pm.stationary(Q).numpy()
    v = np.ones(K) / K
    for _ in range(2000):
        v = v @ Q.numpy()
    np.testing.assert_allclose(pi, v, atol=1e-10)
    np.testing.assert_allclose(pi @ Q.numpy(), pi, atol=1e-12)


# --------------------------------------------------------------------------- schedules
def test_closed_form_Qbar_matches_cumulative_product_at_T1000():
    for sch in (d3pm.uniform_schedule(10, 1000), d3pm.absorbing_schedule(10, 1000)):
        ts = torch.arange(sch.T + 1)
        err = float((sch.closed_form_Qbar(ts) - sch.Qbars).abs().max())
        assert err <= 1e-6, (sch.kind, err)
        torch.testing.assert_close(sch.Qbar(0), torch.eye(10, dtype=torch.float64))


def test_Qbar_matches_numpy_matrix_power_for_constant_beta():
    sch = d3pm.DiscreteSchedule("gaussian", torch.full((40,), 0.3, dtype=torch.float64), K=5)
    Q = d3pm.gaussian_Q(0.3, 5).numpy()
    for t in (1, 7, 40):
        np.testing.assert_allclose(sch.Qbar(t).numpy(), np.linalg.matrix_power(Q, t), atol=1e-12)


def test_absorbing_mask_probability_is_exactly_t_over_T():
    T, K = 50, 7
    sch = d3pm.absorbing_schedule(K, T)
    assert sch.mask_id == K - 1
    for t in range(T + 1):
        for i in range(K - 1):
            assert float(sch.Qbar(t)[i, K - 1]) == pytest.approx(t / T, abs=1e-12)
            assert float(sch.Qbar(t)[i, i]) == pytest.approx(1 - t / T, abs=1e-12)
    assert float(sch.betas[T]) == 1.0


def test_uniform_cosine_schedule_and_stationary_limit():
    sch = d3pm.uniform_schedule(8, 1000)
    t = torch.arange(1001, dtype=torch.float64)
    f = torch.cos((t / 1000 + 0.008) / 1.008 * math.pi / 2)
    torch.testing.assert_close(sch.betas[1:500], 1 - f[1:500] / f[0:499])
    assert float(sch.betas.max()) == pytest.approx(0.999)
    torch.testing.assert_close(sch.Qbar(1000), torch.full((8, 8), 1 / 8, dtype=torch.float64), atol=1e-3, rtol=0)
    assert float(d3pm.prior_kl(torch.zeros(1, 3, dtype=torch.long), sch).max()) < 1e-5
    assert float(d3pm.prior_kl(torch.zeros(1, 3, dtype=torch.long), d3pm.absorbing_schedule(8, 100)).max()) < 1e-12


# --------------------------------------------------------------------------- forward sampling
@pytest.mark.parametrize("kind", ["uniform", "absorbing", "gaussian"])
def test_q_sample_frequencies_match_Qbar_row(kind):
    K, T, t = 5, 20, 9
    sch = d3pm.DiscreteSchedule(kind, torch.full((T,), 0.15), K)
    x0 = torch.full((4000, 10), 2, dtype=torch.long)
    xt = d3pm.q_sample(x0, t, sch, generator=gen(1))
    freq = torch.bincount(xt.flatten(), minlength=K).double() / xt.numel()
    torch.testing.assert_close(freq, sch.Qbar(t)[2], atol=0.01, rtol=0)


def test_q_sample_per_example_t_and_t0_is_identity():
    sch = d3pm.absorbing_schedule(6, 10)
    x0 = torch.randint(0, 5, (3, 50), generator=gen(2))
    xt = d3pm.q_sample(x0, torch.tensor([0, 10, 5]), sch, generator=gen(3))
    assert torch.equal(xt[0], x0[0])
    assert bool((xt[1] == 5).all())
    kept = xt[2] != 5
    assert torch.equal(xt[2][kept], x0[2][kept])


# --------------------------------------------------------------------------- posterior (eq. 3) and eq. 4
def _bayes_posterior(sch, x0, xt, t):
    """q(x_{t-1} = j | x_t, x_0) by enumeration: q(x_t | x_{t-1}=j) q(x_{t-1}=j | x_0) / sum over j."""
    Qt, Qbp = sch.Q(t).numpy(), sch.Qbar(t - 1).numpy()
    joint = np.array([Qbp[x0, j] * Qt[j, xt] for j in range(sch.K)])
    return joint / joint.sum()


@pytest.mark.parametrize("kind", ["uniform", "absorbing", "gaussian"])
def test_posterior_matches_bayes_rule_by_enumeration(kind):
    K, T = 4, 6
    betas = torch.linspace(0.1, 0.6, T)
    sch = d3pm.DiscreteSchedule(kind, betas, K)
    for t in (1, 2, 4, 6):
        # every (x0, x_t) pair with q(x_t | x0) > 0, batched as one (1, n) call
        pairs = [(a, b) for a in range(K) for b in range(K) if sch.Qbar(t)[a, b] > 0]
        x0 = torch.tensor([[a for a, _ in pairs]])
        xt = torch.tensor([[b for _, b in pairs]])
        post = d3pm.q_posterior(xt, x0, t, sch)[0].numpy()
        for n, (a, b) in enumerate(pairs):
            np.testing.assert_allclose(post[n], _bayes_posterior(sch, a, b, t), atol=1e-12)
        # the unnormalised logits differ from log-probabilities by one constant per position
        lg = d3pm.q_posterior_logits(xt, x0, t, sch)
        torch.testing.assert_close(torch.softmax(lg, -1)[0], torch.from_numpy(post))


def test_x0_parameterisation_matches_brute_force_sum():
    K, T, t = 4, 8, 5
    sch = d3pm.DiscreteSchedule("uniform", torch.linspace(0.05, 0.4, T), K)
    logits = _rand_logits((2, 3, K), 4)
    xt = torch.tensor([[0, 1, 3], [2, 2, 0]])
    p = d3pm.p_theta(logits, xt, t, sch).numpy()
    pt = torch.softmax(logits, -1).numpy()
    Qt, Qbp = sch.Q(t).numpy(), sch.Qbar(t - 1).numpy()
    for b, l in itertools.product(range(2), range(3)):
        # sum_{x~0} q(x_{t-1}, x_t | x~0) p~(x~0 | x_t), normalised over x_{t-1}
        joint = np.array([sum(Qbp[a, j] * Qt[j, xt[b, l]] * pt[b, l, a] for a in range(K)) for j in range(K)])
        np.testing.assert_allclose(p[b, l], joint / joint.sum(), atol=1e-12)
    # a perfect prediction recovers the true posterior
    x0 = torch.tensor([[1, 1, 3], [2, 0, 0]])
    onehot = torch.nn.functional.one_hot(x0, K).double()
    torch.testing.assert_close(d3pm.q_posterior(xt, onehot, t, sch), d3pm.q_posterior(xt, x0, t, sch))


# --------------------------------------------------------------------------- losses
def test_vb_term_matches_enumerated_kl_and_t1_nll():
    K, T = 5, 10
    sch = d3pm.uniform_schedule(K, T)
    x0 = torch.tensor([[0, 3, 4, 1]])
    logits = _rand_logits((1, 4, K), 5)
    xt = d3pm.q_sample(x0, 6, sch, generator=gen(6))
    vb = d3pm.vb_term(logits, x0, xt, 6, sch)
    p = d3pm.p_theta(logits, xt, 6, sch).numpy()
    for l in range(4):
        q = _bayes_posterior(sch, int(x0[0, l]), int(xt[0, l]), 6)
        assert float(vb[0, l]) == pytest.approx(float(np.sum(q * np.log(q / p[0, l]))), rel=1e-10)
    x1 = d3pm.q_sample(x0, 1, sch, generator=gen(7))
    nll = d3pm.vb_term(logits, x0, x1, 1, sch)
    p1 = d3pm.p_theta(logits, x1, 1, sch)
    torch.testing.assert_close(nll[0], -torch.log(p1[0, torch.arange(4), x0[0]]))
    assert bool((vb >= 0).all())


def test_vb_term_is_zero_for_a_perfect_prediction():
    sch = d3pm.uniform_schedule(6, 20)
    x0 = torch.randint(0, 6, (3, 7), generator=gen(8))
    xt = d3pm.q_sample(x0, 11, sch, generator=gen(9))
    logits = torch.nn.functional.one_hot(x0, 6).double() * 60.0
    assert float(d3pm.vb_term(logits, x0, xt, 11, sch).abs().max()) < 1e-12


def test_hybrid_loss_is_vb_plus_lambda_ce_with_pad_mask():
    K = 6
    sch = d3pm.absorbing_schedule(K, 30)
    x0 = torch.randint(0, K - 1, (2, 5), generator=gen(10))
    t = torch.tensor([4, 17])
    xt = d3pm.q_sample(x0, t, sch, generator=gen(11))
    logits = _rand_logits((2, 5, K), 12).requires_grad_(True)
    pad = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    loss = d3pm.hybrid_loss(logits, x0, xt, t, sch, lam=0.01, mask=pad)
    vb = d3pm.vb_term(logits, x0, xt, t, sch)
    ce = torch.nn.functional.cross_entropy(logits.reshape(-1, K), x0.reshape(-1), reduction="none").reshape(2, 5)
    want = ((vb + 0.01 * ce) * pad).sum() / pad.sum()
    torch.testing.assert_close(loss, want)
    loss.backward()
    assert torch.isfinite(logits.grad).all()
    assert float(logits.grad[0, 3:].abs().max()) == 0.0           # [PAD] positions get no gradient
    # lam = 0 is the pure variational bound
    torch.testing.assert_close(d3pm.hybrid_loss(logits, x0, xt, t, sch, lam=0.0), vb.mean())


# --------------------------------------------------------------------------- the 1/t masked-LM identity
def test_absorbing_weight_is_one_over_t():
    sch = d3pm.absorbing_schedule(5, 1000)
    t = torch.arange(1, 1001)
    torch.testing.assert_close(d3pm.absorbing_weight(t, sch), 1.0 / t.double())


@pytest.mark.parametrize("t", [1, 2, 3, 37, 500, 999, 1000])
def test_vb_term_equals_one_over_t_masked_cross_entropy(t):
    K, T, B, L = 11, 1000, 4, 64
    sch = d3pm.absorbing_schedule(K, T)
    x0 = torch.randint(0, K - 1, (B, L), generator=gen(t))
    xt = d3pm.q_sample(x0, t, sch, generator=gen(t + 1))
    logits = _rand_logits((B, L, K), t + 2)
    lhs, rhs = d3pm.absorbing_mlm_identity(logits, x0, xt, t, sch)
    # rhs written out independently: (1/t) * sum over masked positions of CE (the mask logit removed)
    logp = torch.log_softmax(logits[..., : K - 1], -1)
    ce = -logp.gather(-1, x0[..., None])[..., 0]
    manual = (ce * (xt == K - 1)).sum(-1) / t
    torch.testing.assert_close(rhs, manual)
    torch.testing.assert_close(lhs, rhs, atol=1e-10, rtol=1e-10)
    if t <= 500:
        assert bool(((xt == K - 1).sum(-1) < L).all())               # some positions really unmasked
    # unmasked positions contribute nothing on the left side
    vb = d3pm.vb_term(masked.exclude_mask(logits, K - 1), x0, xt, t, sch)
    assert float(torch.where(xt != K - 1, vb, 0.0).abs().max()) < 1e-12


def test_identity_fails_when_prediction_puts_mass_on_mask():
    K, T, t = 7, 100, 10
    sch = d3pm.absorbing_schedule(K, T)
    x0 = torch.randint(0, K - 1, (2, 32), generator=gen(20))
    xt = d3pm.q_sample(x0, t, sch, generator=gen(21))
    logits = _rand_logits((2, 32, K), 22)
    vb = d3pm.vb_term(logits, x0, xt, t, sch).sum(-1)                # raw logits, mass on [MASK]
    _, rhs = d3pm.absorbing_mlm_identity(logits, x0, xt, t, sch)
    assert float((vb - rhs).abs().max()) > 1e-3


def test_identity_with_per_example_t():
    K, T = 9, 200
    sch = d3pm.absorbing_schedule(K, T)
    t = torch.tensor([1, 2, 90, 200])
    x0 = torch.randint(0, K - 1, (4, 40), generator=gen(30))
    xt = d3pm.q_sample(x0, t, sch, generator=gen(31))
    lhs, rhs = d3pm.absorbing_mlm_identity(_rand_logits((4, 40, K), 32), x0, xt, t, sch)
    torch.testing.assert_close(lhs, rhs, atol=1e-10, rtol=1e-10)


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("call", [
    lambda: d3pm.uniform_Q(-0.1, 5), lambda: d3pm.uniform_Q(1.1, 5), lambda: d3pm.uniform_Q(float("nan"), 5),
    lambda: d3pm.uniform_Q(0.1, 1), lambda: d3pm.uniform_Q(0.1, 2.0),
    lambda: d3pm.absorbing_Q(0.1, 5, 5), lambda: d3pm.absorbing_Q(0.1, 5, -1), lambda: d3pm.absorbing_Q(2, 5, 0),
    lambda: d3pm.gaussian_Q(1.5, 5), lambda: d3pm.gaussian_Q(0.5, 0),
    lambda: d3pm.bert_Q(5, 7), lambda: d3pm.bert_Q(5, 4, p=1.2), lambda: d3pm.mixed_Q(0.7, 0.6, 5, 0),
    lambda: d3pm.stationary(torch.ones(3, 3)), lambda: d3pm.stationary(torch.eye(3)[:2]),
    lambda: d3pm.DiscreteSchedule("bogus", [0.1], 4),
    lambda: d3pm.DiscreteSchedule("uniform", [0.1, 1.2], 4),
    lambda: d3pm.DiscreteSchedule("uniform", [[0.1]], 4),
    lambda: d3pm.DiscreteSchedule("uniform", [0.1], 4, mask_id=0),
    lambda: d3pm.DiscreteSchedule("absorbing", [0.1], 4, mask_id=4),
    lambda: d3pm.absorbing_schedule(4, 0), lambda: d3pm.uniform_schedule(1, 10),
    lambda: d3pm.make_discrete_schedule("bogus", 4, 10),
])
def test_bad_constructor_input_raises(call):
    with pytest.raises(ValueError):
        call()


SCH = d3pm.absorbing_schedule(5, 10)
X0 = torch.tensor([[0, 1, 2], [3, 2, 1]])
XT = torch.tensor([[0, 4, 2], [4, 2, 4]])
LG = torch.zeros(2, 3, 5, dtype=torch.float64)


@pytest.mark.parametrize("call", [
    lambda: SCH.Qbar(11), lambda: SCH.Qbar(-1), lambda: SCH.Q(2.5),
    lambda: d3pm.uniform_schedule(4, 10).Qbar(11),
    lambda: d3pm.gaussian_schedule(4, 10).closed_form_Qbar(3),
    lambda: d3pm.q_sample(X0, 11, SCH), lambda: d3pm.q_sample(X0, torch.tensor([1, 2, 3]), SCH),
    lambda: d3pm.q_sample(X0.float(), 1, SCH), lambda: d3pm.q_sample(X0[0], 1, SCH),
    lambda: d3pm.q_sample(X0 + 5, 1, SCH), lambda: d3pm.q_sample(X0 - 1, 1, SCH),
    lambda: d3pm.q_posterior(XT, X0, 0, SCH),                       # t = 0 has no posterior
    lambda: d3pm.q_posterior(XT, X0[:, :2], 3, SCH),
    lambda: d3pm.q_posterior(torch.tensor([[1]]), torch.tensor([[0]]), 3, SCH),   # impossible x_t
    lambda: d3pm.q_posterior(XT, torch.full((2, 3, 5), 0.3, dtype=torch.float64), 3, SCH),  # sums to 1.5
    lambda: d3pm.q_posterior(XT, torch.full((2, 3, 4), 0.25, dtype=torch.float64), 3, SCH),  # wrong K
    lambda: d3pm.vb_term(LG[..., :4], X0, XT, 3, SCH), lambda: d3pm.vb_term(LG, X0, XT, 0, SCH),
    lambda: d3pm.vb_term(LG, X0, XT, 3, SCH, mask=torch.ones(2, 2)),
    lambda: d3pm.vb_term(LG.long(), X0, XT, 3, SCH), lambda: d3pm.vb_term(LG * float("nan"), X0, XT, 3, SCH),
    lambda: d3pm.hybrid_loss(LG, X0, XT, 3, SCH, lam=-1.0),
    lambda: d3pm.absorbing_mlm_identity(LG, XT, XT, 3, SCH),          # x0 holding [MASK]
    lambda: d3pm.absorbing_mlm_identity(LG[..., :4], X0, XT, 3, d3pm.uniform_schedule(4, 10)),
    lambda: d3pm.absorbing_weight(0, SCH),
])
def test_bad_call_input_raises(call):
    with pytest.raises(ValueError):
        call()


# --------------------------------------------------------------------------- continuous time (CTMC)
@pytest.mark.parametrize("kind", ["uniform", "absorbing"])
def test_rate_matrix_is_a_generator(kind):
    R = d3pm.rate_matrix(kind, 6)
    off = R - torch.diag(R.diagonal())
    assert bool((off >= 0).all()) and float(R.sum(1).abs().max()) < 1e-15
    if kind == "absorbing":
        assert float(R[5].abs().max()) == 0.0, "[MASK] (the last id) is never left"
        assert torch.equal(R[:5, 5], torch.ones(5, dtype=torch.float64))
    else:
        torch.testing.assert_close(off.sum(1), torch.full((6,), 5 / 6, dtype=torch.float64))


@pytest.mark.parametrize("kind", ["uniform", "absorbing"])
def test_matrix_exponential_of_the_integrated_rate_is_the_product_of_d3pm_steps(kind):
    """D3PM's one-step matrices are exp(-log(1 - beta_t) R): their product is exp(-log(alpha-bar_t) R)."""
    sch = d3pm.make_discrete_schedule(kind, 7, T=50)
    R = d3pm.rate_matrix(kind, 7)
    for t in (1, 10, 37, 49):
        P = d3pm.ctmc_transition(R, -math.log(float(sch.alpha_bars[t])))
        torch.testing.assert_close(P, sch.Qbar(t), atol=1e-12, rtol=0)
    if kind == "absorbing":      # the transposed generator (everything flows out of [MASK]) fails: the check can fail
        P_wrong = d3pm.ctmc_transition(R.T - torch.diag(R.T.sum(1)), -math.log(float(sch.alpha_bars[25])))
        assert float((P_wrong - sch.Qbar(25)).abs().max()) > 0.1


def test_ctmc_transition_is_a_semigroup_generated_by_R():
    R = d3pm.rate_matrix("absorbing", 5, mask_id=2)

    def P(c):
        return d3pm.ctmc_transition(R, c)

    torch.testing.assert_close(P(0.3) @ P(0.9), P(1.2), atol=1e-14, rtol=0)
    torch.testing.assert_close(P(0.0), torch.eye(5, dtype=torch.float64))
    h = 1e-7
    torch.testing.assert_close((P(h) - torch.eye(5, dtype=torch.float64)) / h, R, atol=1e-6, rtol=0)
    # a numpy Taylor series as an independent reference
    A = 1.7 * R.numpy()
    ref, term = np.eye(5), np.eye(5)
    for n in range(1, 40):
        term = term @ A / n
        ref = ref + term
    np.testing.assert_allclose(P(1.7).numpy(), ref, atol=1e-13)


@pytest.mark.parametrize("call, match", [
    (lambda: d3pm.rate_matrix("gaussian", 5), "unknown kind"),
    (lambda: d3pm.rate_matrix("uniform", 5, mask_id=4), "mask_id"),
    (lambda: d3pm.rate_matrix("absorbing", 5, mask_id=5), "mask_id"),
    (lambda: d3pm.rate_matrix("uniform", 1), "K"),
    (lambda: d3pm.ctmc_transition(torch.eye(3), 1.0), "rate matrix"),
    (lambda: d3pm.ctmc_transition(-torch.eye(3), 1.0), "rate matrix"),
    (lambda: d3pm.ctmc_transition(torch.zeros(3, 2), 1.0), "square"),
    (lambda: d3pm.ctmc_transition(d3pm.rate_matrix("uniform", 3), -0.5), "total_rate"),
    (lambda: d3pm.ctmc_transition(d3pm.rate_matrix("uniform", 3), float("nan")), "total_rate"),
])
def test_ctmc_bad_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call()
