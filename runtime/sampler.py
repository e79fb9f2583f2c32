"""Rectified-flow (flow matching) sampling: time schedules, Euler/Heun updates, CFG.

Convention (docs/design.md §3): ``x_t = (1 - t) x0 + t noise``, the model predicts
``v = noise - x0``, ``t = 1`` is pure noise and ``t = 0`` the clean sample. Sampling
integrates ``dx/dt = v(x, t)`` from ``t = 1`` down to ``t = 0``, so every step has a negative
``dt = t_next - t``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from pomexport.errors import ConfigError
from pomexport.runtime.choices import SAMPLERS

__all__ = [
    "SAMPLERS",
    "check_sampler",
    "euler_update",
    "guided_velocity",
    "heun_update",
    "sample",
    "shift_time",
    "time_schedule",
]

Velocity = Callable[[torch.Tensor, float], torch.Tensor]


def shift_time(t: torch.Tensor, shift: float) -> torch.Tensor:
    """SD3-style time shift ``t' = s t / (1 + (s - 1) t)``; keeps 0 -> 0 and 1 -> 1.

    ``shift > 1`` spends more steps at high noise (useful for larger latents).
    """
    return shift * t / (1.0 + (shift - 1.0) * t)


def time_schedule(steps: int, shift: float = 1.0) -> torch.Tensor:
    """``steps + 1`` decreasing fp32 times from 1 to 0: uniform, then shifted when ``shift != 1``.

    Returns (steps + 1,) on the CPU: the loop reads its entries as Python floats.
    """
    if steps < 1:
        raise ConfigError(f"steps must be >= 1, got {steps}")
    if not shift > 0:
        raise ConfigError(f"shift must be > 0, got {shift}")
    t = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    if shift != 1.0:
        t = shift_time(t, shift)
    return t.to(torch.float32)


def check_sampler(name: str) -> str:
    """``name`` if it is a known sampler, else a ConfigError."""
    if name not in SAMPLERS:
        raise ConfigError(f"unknown sampler {name!r}; known: {', '.join(SAMPLERS)}")
    return name


def guided_velocity(v_cond: torch.Tensor, v_uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance ``v = v_u + w (v_c - v_u)`` (``w = 1``: the conditional v)."""
    return v_uncond + scale * (v_cond - v_uncond)


def euler_update(x: torch.Tensor, v: torch.Tensor, t: float, t_next: float) -> torch.Tensor:
    """One explicit Euler step ``x + (t_next - t) v``."""
    return x + (t_next - t) * v


def heun_update(
    x: torch.Tensor, v: torch.Tensor, v_next: torch.Tensor, t: float, t_next: float
) -> torch.Tensor:
    """Heun's (trapezoidal) correction: ``x + (t_next - t) (v + v_next) / 2``.

    ``v_next`` is the velocity at the Euler prediction ``(euler_update(x, v, ...), t_next)``.
    """
    return x + (t_next - t) * 0.5 * (v + v_next)


def sample(
    velocity: Velocity,
    x: torch.Tensor,
    times: torch.Tensor,
    sampler: str = "euler",
) -> torch.Tensor:
    """Integrate ``dx/dt = velocity(x, t)`` along ``times`` (from noise at ``times[0]``).

    Heun evaluates the velocity twice per step, at the last step too (flow-matching models
    are trained on t = 0, so no Euler fallback is needed there).
    """
    check_sampler(sampler)
    ts = [float(t) for t in times]
    for t, t_next in zip(ts[:-1], ts[1:], strict=True):
        v = velocity(x, t)
        x_pred = euler_update(x, v, t, t_next)
        if sampler == "euler":
            x = x_pred
        else:
            x = heun_update(x, v, velocity(x_pred, t_next), t, t_next)
    return x
