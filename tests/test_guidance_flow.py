"""Classifier-free guidance (course_lib.guidance), flow matching (course_lib.flow) and the class-conditional
noise predictor they use: the formulas, on small random networks, and the shipped models' key properties."""
import math

import pytest
import torch

from course_lib import ddpm, digits, flow, guidance, mlp, schedules, sde, toy2d


def _net(n_classes=3, seed=0):
    torch.manual_seed(seed)
    return mlp.EpsMLP(mlp.EpsMLPConfig(dim=4, hidden=32, n_blocks=2, emb_size=16, input_emb=False,
                                       n_classes=n_classes)).eval()


# --------------------------------------------------------------------------- conditioning and guidance
def test_the_label_changes_the_prediction_and_none_means_the_null_label():
    net, x, t = _net(), torch.randn(5, 4), torch.full((5,), 300.0)
    with torch.no_grad():
        null = net(x, t)
        assert torch.equal(null, net(x, t, torch.full((5,), net.null_label)))
        assert not torch.allclose(null, net(x, t, torch.zeros(5, dtype=torch.long)))
    with pytest.raises(ValueError, match="labels in 0..3"):
        net(x, t, torch.full((5,), 4))
    with pytest.raises(ValueError, match="unconditional"):
        mlp.EpsMLP(dim=4, input_emb=False)(x, t, torch.zeros(5, dtype=torch.long))


def test_guided_prediction_is_the_classifier_free_formula():
    net, x, t = _net(), torch.randn(6, 4), torch.full((6,), 500.0)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    with torch.no_grad():
        cond, uncond = net(x, t, y), net(x, t)
        for w in (0.0, 0.5, 3.0):
            want = uncond + (1 + w) * (cond - uncond)
            assert torch.allclose(guidance.Guided(net, y, w)(x, t), want, atol=1e-5)
        assert torch.equal(guidance.Guided(net, None)(x, t), uncond)
    with pytest.raises(ValueError, match="not class-conditional"):
        guidance.Guided(mlp.EpsMLP(dim=4, input_emb=False), y)
    with pytest.raises(ValueError, match="w must be >= 0"):
        guidance.Guided(net, y, -1.0)
    with pytest.raises(ValueError, match="holds 6 labels"):
        guidance.Guided(net, y, 1.0)(x[:3], t[:3])


def test_label_dropout_trains_both_models_and_checks_its_arguments():
    sch = schedules.linear_schedule(1000)
    x = torch.randn(40, 4)
    y = torch.arange(40) % 3
    net = _net()
    before = [p.clone() for p in net.label_emb.parameters()]
    model, hist = guidance.train_conditional(net, x, y, sch, steps=20, batch_size=16, show_progress=False)
    after = model.label_emb.weight
    assert len(hist["loss"]) >= 1 and not torch.allclose(before[0][net.null_label], after[net.null_label])
    assert not torch.allclose(before[0][0], after[0])            # both the null row and a class row were trained
    with pytest.raises(ValueError, match="p_uncond"):
        guidance.train_conditional(_net(), x, y, sch, steps=1, p_uncond=0.0)
    with pytest.raises(ValueError, match="labels must lie"):
        guidance.train_conditional(_net(), x, y + 1, sch, steps=1)


def test_the_shipped_digits_model_follows_the_label_better_with_guidance():
    model, clf = digits.load_ddpm(), digits.load_classifier()
    asked = torch.arange(10).repeat_interleave(3)
    acc = {}
    for w in (0.0, 3.0):
        got, _ = digits.classify(clf, digits.sample(model, n=30, seed=5, ddim_steps=20, y=asked, w=w))
        acc[w] = float((got == asked).float().mean())
    assert acc[0.0] >= 0.5 and acc[3.0] >= acc[0.0]


# --------------------------------------------------------------------------- flow matching
def test_interpolation_ends_and_loss_target():
    x0, eps = torch.randn(8, 2), torch.randn(8, 2)
    assert torch.equal(flow.interpolate(x0, eps, torch.zeros(8)), x0)
    assert torch.equal(flow.interpolate(x0, eps, torch.ones(8)), eps)
    # a "network" that returns the exact line velocity for this batch has zero loss
    g = torch.Generator().manual_seed(0)
    tau = torch.rand(8, generator=g)
    e = torch.randn(8, 2, generator=g)
    x_tau = flow.interpolate(x0, e, tau)
    oracle = lambda x, t: e - x0   # noqa: E731
    assert float(flow.fm_loss(oracle, x0, generator=torch.Generator().manual_seed(0))) == 0.0
    assert torch.allclose(x_tau, (1 - tau[:, None]) * x0 + tau[:, None] * e)


def test_euler_and_heun_are_exact_for_a_constant_velocity_and_arguments_are_checked():
    c = torch.tensor([[1.0, -2.0]])
    v = lambda x, t: c.expand_as(x)   # noqa: E731
    x1 = torch.randn(3, 2, generator=torch.Generator().manual_seed(1))
    for method in ("euler", "heun"):
        states = list(flow.flow_sampler(v, None, n_steps=7, method=method, x_T=x1))
        assert len(states) == 8 and states[0].t == 1000.0 and abs(states[-1].t) < 1e-9
        assert torch.allclose(states[-1].x, x1 - c, atol=1e-6)
    for bad in (dict(n_steps=0), dict(method="rk4"), dict(tau_start=0.2, tau_end=0.5)):
        with pytest.raises(ValueError):
            list(flow.flow_sampler(v, None, x_T=x1, **bad))


def test_exact_velocity_is_the_minimiser_and_the_same_ode_as_the_pf_ode():
    gmm = toy2d.course_gmm()
    v = flow.exact_velocity(gmm)
    # the minimiser is E[eps - x0 | x_tau]: check by averaging the line velocity near one point, by regression
    g = torch.Generator().manual_seed(3)
    x0 = gmm.sample(400_000, seed=9).double()
    eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    tau = 0.5
    x = flow.interpolate(x0, eps, torch.full((x0.shape[0],), tau))
    near = (x - torch.tensor([1.0, 0.5], dtype=torch.float64)).norm(dim=1) < 0.06
    mc = (eps - x0)[near].mean(0)
    exact = v(torch.tensor([[1.0, 0.5]], dtype=torch.float64), torch.tensor([tau * flow.T_SCALE]))[0]
    assert near.sum() > 400 and float((mc - exact).norm()) < 0.15
    # with exact fields, the FM ODE and the PF-ODE, matched through x / a and b / a, end at the same points
    vp = sde.VPSDE()
    z = torch.randn(50, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    ab1, ab_end = float(vp.alpha_bar(1.0)), float(vp.alpha_bar(1e-3))
    s1, s_end = math.sqrt((1 - ab1) / ab1), math.sqrt((1 - ab_end) / ab_end)
    t1, t_end = s1 / (1 + s1), s_end / (1 + s_end)
    x_pf = ddpm.final(sde.pf_ode_sampler(toy2d.exact_eps_model(gmm, lambda t: vp.alpha_bar(t / 1000.0)), None, vp,
                                         n_steps=60, x_T=z))
    x_fm = ddpm.final(flow.flow_sampler(v, None, n_steps=60, tau_start=t1, tau_end=t_end,
                                        x_T=z * (1 - t1) / math.sqrt(ab1)))
    assert float((x_pf / math.sqrt(ab_end) - x_fm / (1 - t_end)).norm(dim=1).max()) < 0.05
