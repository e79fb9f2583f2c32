"""Rectified-flow sampler: schedules, Euler/Heun against closed forms, CFG."""

from __future__ import annotations

import math

import pytest
import torch

from pomexport.errors import ConfigError
from pomexport.runtime.sampler import (
    guided_velocity,
    sample,
    shift_time,
    time_schedule,
)


def test_uniform_schedule_is_linspace_from_noise_to_clean():
    t = time_schedule(4)
    assert t.dtype == torch.float32
    assert t.tolist() == [1.0, 0.75, 0.5, 0.25, 0.0]


@pytest.mark.parametrize("shift", [0.5, 1.0, 3.0, 7.5])
def test_shifted_schedule_endpoints_and_monotonicity(shift):
    t = time_schedule(25, shift)
    assert t[0].item() == 1.0 and t[-1].item() == 0.0
    assert (t[1:] < t[:-1]).all()
    uniform = time_schedule(25)
    inner = slice(1, -1)
    # shift > 1 spends more of the steps at high noise: every inner time moves up
    if shift > 1:
        assert (t[inner] > uniform[inner]).all()
    elif shift < 1:
        assert (t[inner] < uniform[inner]).all()


def test_shift_formula():
    # t' = s t / (1 + (s - 1) t): s = 3, t = 0.5 -> 1.5 / 2
    assert shift_time(torch.tensor(0.5, dtype=torch.float64), 3.0).item() == pytest.approx(0.75)


@pytest.mark.parametrize("bad", [dict(steps=0), dict(steps=4, shift=0.0), dict(steps=4, shift=-1)])
def test_bad_schedule_is_a_config_error(bad):
    with pytest.raises(ConfigError):
        time_schedule(**bad)


def test_unknown_sampler_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown sampler"):
        sample(lambda x, t: x, torch.zeros(1), time_schedule(2), "rk4")


# dx/dt = a x from t = 1 to 0: exact x(0) = x(1) exp(-a). With dt = -1/S,
# Euler multiplies by (1 + a dt) per step, Heun by (1 + a dt + (a dt)^2 / 2).
A = 0.8


def _linear(x: torch.Tensor, t: float) -> torch.Tensor:
    return A * x


@pytest.mark.parametrize("steps", [1, 5, 40])
def test_euler_and_heun_match_their_closed_forms_on_a_linear_field(steps):
    x1 = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    h = -1.0 / steps
    times = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    euler = sample(_linear, x1, times, "euler")
    heun = sample(_linear, x1, times, "heun")
    torch.testing.assert_close(euler, x1 * (1 + A * h) ** steps, rtol=1e-12, atol=0)
    torch.testing.assert_close(
        heun, x1 * (1 + A * h + (A * h) ** 2 / 2) ** steps, rtol=1e-12, atol=0
    )


def test_convergence_orders_euler_first_heun_second():
    x1 = torch.ones(1, dtype=torch.float64)
    exact = math.exp(-A)

    def error(steps: int, name: str) -> float:
        times = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
        return abs(sample(_linear, x1, times, name).item() - exact)

    assert error(20, "euler") / error(40, "euler") == pytest.approx(2.0, rel=0.05)
    assert error(20, "heun") / error(40, "heun") == pytest.approx(4.0, rel=0.05)


@pytest.mark.parametrize("shift", [1.0, 3.0])
def test_euler_on_the_straight_flow_of_one_point_lands_on_it(shift):
    """For data = one point x0, v(x_t, t) = (x_t - x0) / t: rectified-flow paths are straight,
    so Euler is exact on any schedule (it never evaluates t = 0)."""
    x0 = torch.tensor([0.3, -0.7], dtype=torch.float64)
    noise = torch.tensor([1.2, 0.4], dtype=torch.float64)
    times = time_schedule(7, shift).double()
    out = sample(lambda x, t: (x - x0) / t, noise, times, "euler")
    torch.testing.assert_close(out, x0, rtol=0, atol=1e-6)


def test_classifier_free_guidance():
    vc, vu = torch.tensor([1.0, 3.0]), torch.tensor([0.5, -1.0])
    assert torch.equal(guided_velocity(vc, vu, 1.0), vc)
    assert torch.equal(guided_velocity(vc, vu, 0.0), vu)
    torch.testing.assert_close(guided_velocity(vc, vu, 2.5), vu + 2.5 * (vc - vu))
