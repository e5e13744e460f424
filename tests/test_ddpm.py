"""DDPM forward process, posterior, ELBO pieces and samplers."""
import math

import pytest
import torch

from course_lib import ddpm, schedules

SCH = schedules.linear_schedule(1000)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_q_sample_closed_form_matches_iteration_in_distribution():
    x0 = torch.full((100_000, 1), 2.0, dtype=torch.float64)
    x = x0.clone()
    g = gen(1)
    for t in range(1, 201):
        x = ddpm.q_step(x, t, SCH, generator=g)
    mean, var = ddpm.q_mean_var(x0[:1], 200, SCH)
    assert abs(float(x.mean()) - float(mean)) < 0.01
    assert abs(float(x.var()) - float(var)) < 0.01


def test_predict_x0_inverts_q_sample():
    g = gen(2)
    x0 = torch.randn(64, 3, generator=g, dtype=torch.float64)
    eps = torch.randn(64, 3, generator=g, dtype=torch.float64)
    t = torch.randint(1, 1001, (64,), generator=g)
    xt = ddpm.q_sample(x0, t, SCH, noise=eps)
    torch.testing.assert_close(ddpm.predict_x0(xt, t, eps, SCH), x0)


def test_posterior_matches_bayes_product_of_gaussians():
    # precision-weighted combination of q(x_t | x_{t-1}) (as a function of x_{t-1}) and q(x_{t-1} | x_0)
    t, x0, xt = 300, torch.tensor([[0.7]], dtype=torch.float64), torch.tensor([[-0.2]], dtype=torch.float64)
    a, b, abp = SCH.alphas[t], SCH.betas[t], SCH.alpha_bars[t - 1]
    prec = a / b + 1 / (1 - abp)
    mean = (math.sqrt(a) * xt / b + math.sqrt(abp) * x0 / (1 - abp)) / prec
    mu, var = ddpm.q_posterior(x0, xt, t, SCH)
    torch.testing.assert_close(mu, mean)
    torch.testing.assert_close(var, (1 / prec).expand_as(var))


def test_eps_weight_equals_gaussian_kl():
    g = gen(3)
    x0 = torch.randn(256, 2, generator=g, dtype=torch.float64)
    t = torch.randint(2, 1001, (256,), generator=g)
    eps = torch.randn(256, 2, generator=g, dtype=torch.float64)
    eps_hat = torch.randn(256, 2, generator=g, dtype=torch.float64)
    xt = ddpm.q_sample(x0, t, SCH, noise=eps)
    mq, vq = ddpm.q_posterior(x0, xt, t, SCH)
    mp, _ = ddpm.q_posterior(ddpm.predict_x0(xt, t, eps_hat, SCH), xt, t, SCH)
    kl = ddpm.gaussian_kl(mq, vq, mp, vq).sum(1)
    torch.testing.assert_close(kl, ddpm.eps_weight(t, SCH) * ((eps - eps_hat) ** 2).sum(1))


def test_eps_loss_is_mse_on_the_drawn_noise():
    class Zero(torch.nn.Module):
        def forward(self, x, t):
            return torch.zeros_like(x)
    x0 = torch.randn(20_000, 2, generator=gen(4))
    # a zero predictor's loss is E||eps||^2 / D = 1
    assert abs(float(ddpm.eps_loss(Zero(), x0, SCH, generator=gen(5))) - 1.0) < 0.03


def test_ddim_eta1_equals_ddpm_posterior_on_full_chain():
    g = gen(6)
    x0 = torch.randn(32, 2, generator=g, dtype=torch.float64)
    eps = torch.randn(32, 2, generator=g, dtype=torch.float64)
    t = 400
    xt = ddpm.q_sample(x0, t, SCH, noise=eps)
    z = torch.zeros_like(xt)
    x_prev, _ = ddpm.ddim_step(xt, eps, t, t - 1, SCH, eta=1.0, noise=z)
    mu, var = ddpm.q_posterior(ddpm.predict_x0(xt, t, eps, SCH), xt, t, SCH)
    torch.testing.assert_close(x_prev, mu)
    # its noise scale is the posterior std
    ab_t, ab_s = float(SCH.alpha_bars[t]), float(SCH.alpha_bars[t - 1])
    sigma = math.sqrt((1 - ab_s) / (1 - ab_t)) * math.sqrt(1 - ab_t / ab_s)
    assert math.isclose(sigma ** 2, float(var[0, 0]), rel_tol=1e-9)


def test_ddim_with_true_noise_is_consistent():
    """With the true eps, a deterministic DDIM step lands exactly on q_sample(x0, s, same eps)."""
    g = gen(7)
    x0 = torch.randn(16, 2, generator=g, dtype=torch.float64)
    eps = torch.randn(16, 2, generator=g, dtype=torch.float64)
    xt = ddpm.q_sample(x0, 700, SCH, noise=eps)
    xs, x0_hat = ddpm.ddim_step(xt, eps, 700, 100, SCH, eta=0.0)
    torch.testing.assert_close(xs, ddpm.q_sample(x0, 100, SCH, noise=eps))
    torch.testing.assert_close(x0_hat, x0)


def test_samplers_yield_every_state_and_end_at_t0():
    model = lambda x, t: torch.zeros_like(x)  # noqa: E731
    states = list(ddpm.ddpm_sampler(model, (5, 2), schedules.linear_schedule(20), generator=gen(0)))
    assert [s.t for s in states] == list(range(20, -1, -1))
    states = list(ddpm.ddim_sampler(model, (5, 2), SCH, steps=10, generator=gen(0)))
    assert len(states) == 11 and states[-1].t == 0
    times, traj = ddpm.trajectory(ddpm.ddim_sampler(model, (5, 2), SCH, steps=10, generator=gen(0)), keep=4)
    assert traj.shape == (4, 5, 2) and times[0] == 1000 and times[-1] == 0


def test_ddim_timesteps():
    assert ddpm.ddim_timesteps(1000, 4) == [1000, 750, 500, 250, 0]
    with pytest.raises(ValueError):
        ddpm.ddim_timesteps(1000, 0)


@pytest.mark.parametrize("call", [
    lambda: ddpm.q_sample(torch.zeros(4, 2), 1001, SCH),
    lambda: ddpm.q_sample(torch.zeros(4, 2), -1, SCH),
    lambda: ddpm.q_sample(torch.zeros(4, 2), torch.ones(3, dtype=torch.long), SCH),
    lambda: ddpm.q_sample(torch.zeros(4, 2), 5, SCH, noise=torch.zeros(4, 3)),
    lambda: ddpm.q_sample(torch.tensor([[float("nan"), 0.0]]), 5, SCH),
    lambda: ddpm.q_posterior(torch.zeros(4, 2), torch.zeros(4, 3), 5, SCH),
    lambda: ddpm.q_posterior(torch.zeros(4, 2), torch.zeros(4, 2), 0, SCH),
    lambda: ddpm.q_step(torch.zeros(4, 2), 0, SCH),
    lambda: ddpm.ddim_step(torch.zeros(4, 2), torch.zeros(4, 2), 10, 20, SCH),
    lambda: ddpm.ddim_step(torch.zeros(4, 2), torch.zeros(4, 2), 20, 10, SCH, eta=1.5),
    lambda: ddpm.reverse_variance(torch.tensor([5]), SCH, "learned"),
    lambda: ddpm.eps_weight(1, SCH),
])
def test_bad_input_raises_value_error(call):
    with pytest.raises(ValueError):
        call()


def test_model_with_wrong_output_shape():
    bad = lambda x, t: torch.zeros(x.shape[0], 3)  # noqa: E731
    with pytest.raises(ValueError, match="model returned shape"):
        ddpm.final(ddpm.ddpm_sampler(bad, (4, 2), schedules.linear_schedule(5)))


# --------------------------------------------------------------------------- eps, x0 and v prediction
def _noised(n=64, seed=0):
    sch = schedules.linear_schedule(1000)
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(n, 2, generator=g, dtype=torch.float64)
    eps = torch.randn(n, 2, generator=g, dtype=torch.float64)
    t = torch.randint(1, 1001, (n,), generator=g)
    return sch, x0, eps, t, ddpm.q_sample(x0, t, sch, noise=eps)


def test_convert_prediction_maps_the_true_noise_to_the_true_targets():
    sch, x0, eps, t, xt = _noised()
    a, s = sch.alpha_bars[t].sqrt()[:, None], (1 - sch.alpha_bars[t]).sqrt()[:, None]
    assert torch.allclose(ddpm.convert_prediction(eps, xt, t, sch, "eps", "x0"), x0, atol=1e-9)
    assert torch.allclose(ddpm.convert_prediction(eps, xt, t, sch, "eps", "v"), a * eps - s * x0, atol=1e-12)
    for src, pred in (("x0", x0), ("v", a * eps - s * x0)):
        assert torch.allclose(ddpm.convert_prediction(pred, xt, t, sch, src, "eps"), eps, atol=1e-9)


def test_prediction_weights_are_the_ratios_of_squared_errors():
    sch, x0, eps, t, xt = _noised(seed=1)
    eps_hat = eps + 0.1 * torch.randn(eps.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    err = {k: ((ddpm.convert_prediction(eps_hat, xt, t, sch, "eps", k)
                - ddpm.convert_prediction(eps, xt, t, sch, "eps", k)) ** 2).sum(1) for k in ddpm.PREDICTIONS}
    for k in ddpm.PREDICTIONS:
        assert torch.allclose(err[k], ddpm.prediction_weight(t, sch, k) * err["eps"], rtol=1e-8)
    assert float(ddpm.prediction_weight(1000, sch, "x0")) > 1e4 > 1e-2 > float(ddpm.prediction_weight(1, sch, "x0"))


def test_prediction_arguments_are_checked():
    sch, _, eps, t, xt = _noised(4)
    with pytest.raises(ValueError, match="predictions are one of"):
        ddpm.convert_prediction(eps, xt, t, sch, "eps", "score")
    with pytest.raises(ValueError, match="target must be one of"):
        ddpm.prediction_weight(t, sch, "noise")
