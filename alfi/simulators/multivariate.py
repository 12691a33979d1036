r"""Five-dimensional mixture of canonical laws, linearly mixed (Appendix B.3).

For :math:`\theta \sim \mathcal{U}[-3, 3]^3`, draw independently

.. math::
    z_0 \sim \mathcal{N}(\theta_0, 1),\quad z_1 \sim \mathcal{N}(3, \sigma = e^{\theta_1/3}),\quad
    z_2 \sim \tfrac12\mathcal{N}(-2, 0.5^2) + \tfrac12\mathcal{N}(2, 1^2),\quad
    z_3 \sim \mathcal{U}(-5, \theta_2),\quad z_4 \sim \operatorname{Exp}(\text{rate } 0.5),

and return :math:`x = R z` for a fixed symmetric positive-definite :math:`R`. The mixture's 0.5
and 1 are standard deviations. The MLE inverts :math:`R` and takes per coordinate the exact
estimators: :math:`\hat\theta_0 = \bar z_0`, :math:`\hat\theta_1 = \tfrac32 \log
\overline{(z_1 - 3)^2}`, :math:`\hat\theta_2 = \max_j z_{3,j}`, each clipped to the prior box.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from alfi.simulators import register
from alfi.simulators.base import Simulator

__all__ = ["Multivariate", "MIXING"]

MIXING = (
    (1.31229955, 0.10499961, 0.48310515, -0.3249938, -0.26387927),
    (0.10499961, 1.15833058, -0.55865473, 0.25275522, -0.39790775),
    (0.48310515, -0.55865473, 2.25874579, -0.52087938, -0.39271231),
    (-0.3249938, 0.25275522, -0.52087938, 1.4034925, -0.63521059),
    (-0.26387927, -0.39790775, -0.39271231, -0.63521059, 1.0),
)
UNIFORM_LOW = -5.0
EXPONENTIAL_RATE = 0.5


@register
class Multivariate(Simulator):
    name = "multivariate"
    parameter_names = ("z0_mean", "z1_log_scale", "z3_upper")
    observation_dim = 5
    prior_low = (-3.0, -3.0, -3.0)
    prior_high = (3.0, 3.0, 3.0)

    def _mixing(self, device: torch.device, dtype: torch.dtype) -> Tensor:
        return self.constant("mixing", MIXING, device, dtype)

    def latents(self, theta: Tensor, n: int, generator: torch.Generator) -> Tensor:
        """The independent latents ``z`` of shape ``(*, n, 5)``."""
        shape, device = (*theta.shape[:-1], n), theta.device
        normal = torch.randn((*shape, 3), generator=generator, device=device)
        uniform = torch.rand((*shape, 3), generator=generator, device=device)
        t0, t1, t2 = (theta[..., i : i + 1] for i in range(3))
        z0 = t0 + normal[..., 0]
        z1 = 3.0 + (t1 / 3).exp() * normal[..., 1]
        right = uniform[..., 0] < 0.5
        z2 = torch.where(right, 2.0 + normal[..., 2], -2.0 + 0.5 * normal[..., 2])
        z3 = UNIFORM_LOW + (t2 - UNIFORM_LOW) * uniform[..., 1]
        # Inverse CDF of the exponential; 1 - u lies in (0, 1] so the log is finite.
        z4 = -torch.log1p(-uniform[..., 2]) / EXPONENTIAL_RATE
        return torch.stack((z0, z1, z2, z3, z4), dim=-1)

    def simulate(self, theta: Tensor, n: int, generator: torch.Generator) -> Tensor:
        z = self.latents(theta, n, generator)
        return z @ self._mixing(theta.device, z.dtype).T

    def unmix(self, x: Tensor) -> Tensor:
        """Recover the latents ``z = R^{-1} x``, shape ``(*, n, 5)``."""
        mixing = self._mixing(x.device, torch.float64)
        return torch.linalg.solve(mixing, x.double().unsqueeze(-1)).squeeze(-1)

    def mle(self, x: Tensor) -> Tensor:
        z = self.unmix(x)
        theta0 = z[..., 0].mean(-1)
        theta1 = 1.5 * ((z[..., 1] - 3.0) ** 2).mean(-1).log()
        theta2 = z[..., 3].amax(-1)
        return self.clamp(torch.stack((theta0, theta1, theta2), dim=-1).to(x.dtype))

    def log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        z = self.unmix(x)
        theta = theta.double().unsqueeze(-2)
        log_norm = -0.5 * math.log(2 * math.pi)
        ll0 = log_norm - 0.5 * (z[..., 0] - theta[..., 0]) ** 2
        scale = (theta[..., 1] / 3).exp()
        ll1 = log_norm - scale.log() - 0.5 * ((z[..., 1] - 3.0) / scale) ** 2
        inside = (z[..., 3] >= UNIFORM_LOW) & (z[..., 3] <= theta[..., 2])
        width = (theta[..., 2] - UNIFORM_LOW).expand_as(inside)
        ll3 = torch.where(inside, -width.log(), torch.full_like(width, -math.inf))
        # z2 and z4 do not depend on theta, nor does |det R|: constants left out.
        return (ll0 + ll1 + ll3).sum(-1)
