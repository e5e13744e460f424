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
