r"""Noisy line (Appendix B.1).

.. math::
    \theta_0 \sim \mathcal{U}[0, \pi/2],\ \theta_1 \sim \mathcal{U}[-1, 1],\quad
    u \sim \mathcal{U}(-1, 1),\ y = \tan(\theta_0)\,u + \theta_1 + \varepsilon,\
    \varepsilon \sim \mathcal{N}(0, 0.1^2),

and one observation is the row :math:`[u, 1, y]`. The MLE is least squares: slope :math:`\hat b`
and offset :math:`\hat c`, then :math:`\hat\theta_0 = \arctan \hat b`. On the prior box the slope is
clipped to :math:`[0, \infty)` first (the profile likelihood in :math:`b` is a parabola, so clipping
is exact) and the offset refitted, then clipped to :math:`[-1, 1]`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from alfi.simulators import register
from alfi.simulators.base import Simulator

__all__ = ["LinearRegression"]

NOISE_STD = 0.1


@register
class LinearRegression(Simulator):
    name = "linear_regression"
    parameter_names = ("angle", "offset")
    observation_dim = 3
    prior_low = (0.0, -1.0)
    prior_high = (math.pi / 2, 1.0)

    def simulate(self, theta: Tensor, n: int, generator: torch.Generator) -> Tensor:
        shape = (*theta.shape[:-1], n)
        u = 2 * torch.rand(shape, generator=generator, device=theta.device) - 1
        noise = NOISE_STD * torch.randn(shape, generator=generator, device=theta.device)
        slope, offset = theta[..., :1].tan(), theta[..., 1:]
        y = slope * u + offset + noise
        return torch.stack((u, torch.ones_like(u), y), dim=-1)

    def mle(self, x: Tensor) -> Tensor:
        u, y = x[..., 0], x[..., 2]
        u_mean, y_mean = u.mean(-1), y.mean(-1)
        du = u - u_mean.unsqueeze(-1)
        slope = (du * (y - y_mean.unsqueeze(-1))).sum(-1) / (du * du).sum(-1)
        slope = slope.clamp_min(0.0)
        offset = y_mean - slope * u_mean
        return self.clamp(torch.stack((slope.atan(), offset), dim=-1))

    def log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        u, y = x[..., 0], x[..., 2]
        mean = theta[..., :1].tan() * u + theta[..., 1:]
        z = (y - mean) / NOISE_STD
        return (-0.5 * z**2 - math.log(NOISE_STD) - 0.5 * math.log(2 * math.pi)).sum(-1)
