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
        estimate = torch.stack((theta0, theta1, theta2), dim=-1).to(x.dtype)
        # The likelihood is 0 below max z3: round theta2 up to x's precision, never down.
        below = estimate[..., 2].double() < theta2
        upward = torch.nextafter(estimate[..., 2], torch.full_like(estimate[..., 2], math.inf))
        estimate[..., 2] = torch.where(below, upward, estimate[..., 2])
        return self.clamp(estimate)

    def log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        r"""Float64, from the latents' sufficient statistics, so that ``C`` parameters
        broadcast against one problem cost :math:`O(C + n)`, not :math:`O(C n)`:
        :math:`\sum_j (z_{0j} - \theta_0)^2 = \sum_j (z_{0j} - \bar z_0)^2 + n (\bar z_0 -
        \theta_0)^2`, the scale term needs :math:`\sum_j (z_{1j} - 3)^2`, the uniform's
        :math:`\min_j z_{3j}` and :math:`\max_j z_{3j}`. :math:`z_2`, :math:`z_4` and
        :math:`|\det R|` do not depend on :math:`\theta`: constants left out."""
        z = self.unmix(x)
        n = z.shape[-2]
        theta = theta.double()
        log_norm = -0.5 * math.log(2 * math.pi)
        z0_mean = z[..., 0].mean(-1)
        z0_spread = ((z[..., 0] - z0_mean.unsqueeze(-1)) ** 2).sum(-1)
        ll0 = n * log_norm - 0.5 * (z0_spread + n * (z0_mean - theta[..., 0]) ** 2)
        log_scale = theta[..., 1] / 3
        z1_squares = ((z[..., 1] - 3.0) ** 2).sum(-1)
        ll1 = n * (log_norm - log_scale) - 0.5 * z1_squares * (-2 * log_scale).exp()
        inside = (z[..., 3].amin(-1) >= UNIFORM_LOW) & (z[..., 3].amax(-1) <= theta[..., 2])
        width = theta[..., 2] - UNIFORM_LOW
        ll3 = torch.where(inside, -n * width.log(), torch.full_like(width, -math.inf))
        return ll0 + ll1 + ll3
