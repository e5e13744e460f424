"""Schedules, cross-checked against an independent NumPy implementation (smalldiffusion-style)."""
import math

import numpy as np
import pytest
import torch

from course_lib import schedules


def numpy_linear(T, b0=1e-4, b1=0.02):
    betas = np.linspace(b0, b1, T)
    return np.concatenate([[1.0], np.cumprod(1 - betas)])


def numpy_cosine(T, s=0.008):
    f = lambda t: math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    ab = [1.0]
    for t in range(1, T + 1):
        beta = min(1 - f(t) / f(t - 1), 0.999)
        ab.append(ab[-1] * (1 - beta))
    return np.array(ab)


@pytest.mark.parametrize("T", [10, 1000])
def test_linear_matches_numpy(T):
    sch = schedules.linear_schedule(T)
    np.testing.assert_allclose(sch.alpha_bars.numpy(), numpy_linear(T), rtol=1e-12)
    assert sch.betas[0] == 0 and sch.alpha_bars[0] == 1


@pytest.mark.parametrize("T", [10, 1000])
def test_cosine_matches_numpy(T):
    np.testing.assert_allclose(schedules.cosine_schedule(T).alpha_bars.numpy(), numpy_cosine(T), rtol=1e-10)


def test_quadratic_endpoints():
    sch = schedules.quadratic_schedule(100)
    assert math.isclose(float(sch.betas[1]), 1e-4) and math.isclose(float(sch.betas[-1]), 0.02)


def test_snr_definition_and_monotone():
    for sch in (schedules.linear_schedule(), schedules.cosine_schedule()):
        snr = sch.snr()
        ab = sch.alpha_bars[1:]
        torch.testing.assert_close(snr, ab / (1 - ab))
        assert bool((snr[1:] < snr[:-1]).all()), "SNR must decrease with t"


def test_sigma():
    sch = schedules.linear_schedule()
    assert math.isclose(float(sch.sigma(500)), math.sqrt(1 - float(sch.alpha_bars[500])))


@pytest.mark.parametrize("bad", ["sigmoid", "", "Linear"])
def test_unknown_schedule(bad):
    with pytest.raises(ValueError, match="unknown schedule"):
        schedules.make_schedule(bad)


@pytest.mark.parametrize("T", [0, -5, 2.5])
def test_bad_T(T):
    with pytest.raises(ValueError):
        schedules.linear_schedule(T)


def test_bad_betas():
    with pytest.raises(ValueError):
        schedules.NoiseSchedule(torch.tensor([0.1, 1.2]))
    with pytest.raises(ValueError):
        schedules.NoiseSchedule(torch.zeros(2, 2) + 0.1)


@pytest.mark.parametrize("t", [-1, 1001, 3.5])
def test_check_t_out_of_range(t):
    with pytest.raises(ValueError):
        schedules.check_t(t, schedules.linear_schedule(1000))
