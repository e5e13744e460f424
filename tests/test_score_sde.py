"""Score function, denoising score matching, Langevin, the VP-SDE samplers and the toy mixture."""
import math

import pytest
import torch

from course_lib import ddpm, metrics, schedules, score, sde, toy2d

SCH = schedules.linear_schedule(1000)
GMM = toy2d.course_gmm()


def test_mixture_score_is_gradient_of_log_prob():
    x = GMM.sample(50, seed=1).double().requires_grad_()
    GMM.log_prob(x).sum().backward()
    torch.testing.assert_close(x.grad, GMM.score(x.detach()))


def test_noised_mixture_matches_forward_process_moments():
    ab = float(SCH.alpha_bars[300])
    x0 = GMM.sample(200_000, seed=2).double()
    xt = math.sqrt(ab) * x0 + math.sqrt(1 - ab) * torch.randn(x0.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    ref = GMM.noised(ab).sample(200_000, seed=4).double()
    assert (xt.mean(0) - ref.mean(0)).abs().max() < 0.02
    assert (xt.var(0) - ref.var(0)).abs().max() < 0.03


def test_tweedie_equals_direct_posterior_mean():
    for t in (5, 400, 999):
        ab = float(SCH.alpha_bars[t])
        x = GMM.noised(ab).sample(500, seed=t).double()
        torch.testing.assert_close(score.tweedie_x0(x, GMM.noised(ab).score(x), t, SCH), GMM.posterior_mean_x0(x, ab))


def test_score_from_eps_of_exact_model():
    model = toy2d.exact_eps_model(GMM, lambda t: SCH.alpha_bars[int(t)])
    x = GMM.noised(float(SCH.alpha_bars[100])).sample(300, seed=0).double()
    torch.testing.assert_close(score.model_score(model, x, 100, SCH), GMM.noised(float(SCH.alpha_bars[100])).score(x))


def test_dsm_minus_explicit_is_constant():
    t = 150
    ab = float(SCH.alpha_bars[t])
    x0 = GMM.sample(200_000, seed=5).double()
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    xt = math.sqrt(ab) * x0 + math.sqrt(1 - ab) * eps
    true = GMM.noised(ab).score(xt)
    diffs = []
    for k in (1.0, 0.5, 1.3):
        fn = lambda x, tt, k=k: k * GMM.noised(ab).score(x)  # noqa: E731
        dsm = float(score.dsm_loss(fn, x0, t, SCH, noise=eps))
        esm = float(((k * true - true) ** 2).sum(1).mean())
        diffs.append(dsm - esm)
    assert max(diffs) - min(diffs) < 0.02 * abs(sum(diffs) / 3)


def test_langevin_samples_a_gaussian():
    x = torch.zeros(20_000, 1)
    for x in score.langevin(lambda x: -x / 4.0, x, step_size=0.05, n_steps=800, generator=torch.Generator().manual_seed(0)):
        pass
    assert abs(float(x.mean())) < 0.05 and abs(float(x.var()) - 4.0) < 0.15


def test_vpsde_alpha_bar_matches_discrete_schedule():
    vp = sde.VPSDE()
    gap = (vp.alpha_bar(torch.arange(1001) / 1000.0) - SCH.alpha_bars).abs().max()
    assert float(gap) < 2e-3


@pytest.mark.parametrize("name,make", [
    ("pf-ode heun", lambda m, g: sde.pf_ode_sampler(m, (2000, 2), sde.VPSDE(), n_steps=100, generator=g)),
    ("reverse sde", lambda m, g: sde.reverse_sde_sampler(m, (2000, 2), sde.VPSDE(), n_steps=500, generator=g)),
])
def test_samplers_with_exact_score_reach_the_floor(name, make):
    vp = sde.VPSDE()
    model = toy2d.exact_eps_model(GMM, lambda t: vp.alpha_bar(t / 1000.0))
    x = ddpm.final(make(model, torch.Generator().manual_seed(0)))
    ratio = metrics.swd_report(x, lambda n, s: GMM.sample(n, s), n_sets=5)["ratio"]
    assert ratio < 1.3, f"{name}: SW2 ratio {ratio:.2f} with the exact score"


def test_sliced_wasserstein_of_a_shift():
    """SW2 between a cloud and its translate by m is |m| / sqrt(D) (E[(theta . m)^2] = |m|^2 / D)."""
    a = torch.randn(3000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    m = torch.tensor([3.0, 4.0], dtype=torch.float64)
    assert abs(metrics.sliced_wasserstein(a, a + m, n_proj=4000) - 5.0 / math.sqrt(2)) < 0.1
    assert metrics.sliced_wasserstein(a, a) == 0.0


@pytest.mark.parametrize("call", [
    lambda: metrics.sliced_wasserstein(torch.zeros(10, 2), torch.zeros(11, 2)),
    lambda: metrics.sliced_wasserstein(torch.zeros(10), torch.zeros(10)),
    lambda: toy2d.make_toy("spiral", 10),
    lambda: toy2d.make_toy("gmm", 0),
    lambda: GMM.score(torch.zeros(5, 3)),
    lambda: GMM.noised(1.5),
    lambda: toy2d.GaussianMixture([0.5, 0.6], [[0, 0], [1, 1]], [1, 1]),
    lambda: score.langevin_step(torch.zeros(3, 2), torch.zeros(3, 2), -0.1, torch.zeros(3, 2)),
    lambda: score.relative_error(torch.zeros(3, 2), torch.zeros(2, 2)),
    lambda: score.tweedie_x0(torch.zeros(3, 2), torch.zeros(3, 2), 0, SCH),
    lambda: sde.VPSDE(beta_min=5, beta_max=1),
    lambda: sde.VPSDE().alpha_bar(1.5),
    lambda: list(sde.pf_ode_sampler(None, (3, 2), sde.VPSDE(), n_steps=0)),
    lambda: list(sde.pf_ode_sampler(None, (3, 2), sde.VPSDE(), method="rk4")),
])
def test_bad_input_raises_value_error(call):
    with pytest.raises(ValueError):
        call()


def test_toys_are_deterministic():
    for name in toy2d.TOYS:
        assert torch.equal(toy2d.make_toy(name, 100, seed=3), toy2d.make_toy(name, 100, seed=3))
        assert not torch.equal(toy2d.make_toy(name, 100, seed=3), toy2d.make_toy(name, 100, seed=4))


def test_pf_ode_encode_then_decode_returns_the_data():
    """The probability-flow ODE run forwards (data -> noise) and back (noise -> data) with the exact score of a
    Gaussian mixture: the round trip returns every point, and the encoded points are close to N(0, I)."""
    import torch
    from course_lib import ddpm, sde, toy2d
    vp = sde.VPSDE()
    gmm = toy2d.course_gmm()
    eps = toy2d.exact_eps_model(gmm, lambda t: vp.alpha_bar(float(t) / vp.T))
    x0 = gmm.sample(300, 3).float()
    steps = list(sde.pf_ode_encode(eps, x0, vp, n_steps=200))
    assert abs(steps[0].t - 1.0) < 1e-9 and abs(steps[-1].t - vp.T) < 1e-9      # s = eps .. 1, in DDPM's units
    z = ddpm.final(iter(steps))
    assert float(z.mean(0).abs().max()) < 0.2 and float((z.std(0) - 1).abs().max()) < 0.2
    back = ddpm.final(sde.pf_ode_sampler(eps, None, vp, n_steps=200, x_T=z))
    assert float((back - x0).norm(dim=1).max()) < 1e-2
    assert float((z - x0).norm(dim=1).mean()) > 0.5                            # it did move
