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
