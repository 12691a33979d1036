r"""Noisy line (Appendix B.1).

.. math::
    \theta_0 \sim \mathcal{U}[0, \pi/2],\ \theta_1 \sim \mathcal{U}[-1, 1],\quad
    u \sim \mathcal{U}(-1, 1),\ y = \tan(\theta_0)\,u + \theta_1 + \varepsilon,\
    \varepsilon \sim \mathcal{N}(0, 0.1^2),

and one observation is the row :math:`[u, 1, y]`.

MLE over the prior box. With slope :math:`b = \tan\theta_0` (a bijection from
:math:`[0, \pi/2)` onto :math:`[0, \infty)`) and offset :math:`c = \theta_1`, maximising the
likelihood is the bounded least-squares problem

.. math::
    \min_{b \ge 0,\ -1 \le c \le 1}\ S(b, c), \qquad S(b, c) = \sum_{j=1}^n (y_j - b u_j - c)^2,

a convex quadratic programme in two variables. Its minimiser is the unconstrained least-squares
solution if that is feasible, else it lies on an active edge, where :math:`S` is a convex parabola
whose minimiser over the edge is its stationary point clamped to the edge:

* :math:`b = 0`: :math:`\hat c = \operatorname{clip}(\bar y, -1, 1)`;
* :math:`c = \pm 1`: :math:`\hat b = \max\big(0, \sum_j u_j (y_j \mp 1) / \sum_j u_j^2\big)`
  (corners included through the clamp).

The MLE evaluates :math:`S` at these four candidates (the unconstrained one clamped to the box)
and keeps the smallest; :math:`\hat\theta_0 = \arctan \hat b`. Degenerate designs have no NaN:
when all :math:`u_j` are equal (to rounding: :math:`\sum_j (u_j - \bar u)^2 \le
\epsilon_{\rm mach} \sum_j u_j^2`) the unconstrained solution is not unique and its candidate is
replaced by the :math:`b = 0` one (an optimum then lies on an edge: :math:`S` is constant along
a line through any optimum, and that line meets the boundary), and when all :math:`u_j = 0` the
edge slopes are 0.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from alfi.simulators import register
from alfi.simulators.base import Simulator

__all__ = ["LinearRegression", "bounded_least_squares"]

NOISE_STD = 0.1


def _ratio(numerator: Tensor, denominator: Tensor) -> Tensor:
    """``numerator / denominator`` where the denominator is positive, else 0 (same shapes)."""
    positive = denominator > 0
    safe = torch.where(positive, denominator, torch.ones_like(denominator))
    return torch.where(positive, numerator / safe, torch.zeros_like(numerator))


def _sum_of_squares(u: Tensor, y: Tensor, slope: Tensor, offset: Tensor) -> Tensor:
    r""":math:`S(b, c)` for ``u``, ``y`` ``(*, n)`` and ``K`` candidates ``(*, K)``; ``(*, K)``."""
    residual = y.unsqueeze(-2) - slope.unsqueeze(-1) * u.unsqueeze(-2) - offset.unsqueeze(-1)
    return (residual * residual).sum(-1)


def bounded_least_squares(
    u: Tensor, y: Tensor, offset_low: float = -1.0, offset_high: float = 1.0
) -> tuple[Tensor, Tensor]:
    r"""Exact :math:`\arg\min S(b, c)` over :math:`b \ge 0`, :math:`c \in [c_\ell, c_h]`.

    Args:
        u, y: design and response, shape ``(*, n)``, any float dtype and device.
        offset_low, offset_high: the offset bounds :math:`c_\ell \le c_h`.

    Returns:
        Slope :math:`\hat b` and offset :math:`\hat c`, each of shape ``(*)``.
    """
    u_mean, y_mean = u.mean(-1), y.mean(-1)
    du = u - u_mean.unsqueeze(-1)
    spread, square = (du * du).sum(-1), (u * u).sum(-1)
    free_slope = _ratio((du * (y - y_mean.unsqueeze(-1))).sum(-1), spread)
    free_offset = y_mean - free_slope * u_mean
    edge_offset = y_mean.clamp(offset_low, offset_high)
    # Equal u (up to rounding): the free solution is not unique (or is rounding noise); its
    # candidate becomes the b = 0 one.
    free = spread > torch.finfo(spread.dtype).eps * square
    free_slope = torch.where(free, free_slope.clamp_min(0.0), torch.zeros_like(free_slope))
    free_offset = torch.where(free, free_offset.clamp(offset_low, offset_high), edge_offset)
    low_slope = _ratio((u * (y - offset_low)).sum(-1), square).clamp_min(0.0)
    high_slope = _ratio((u * (y - offset_high)).sum(-1), square).clamp_min(0.0)
    slope = torch.stack((free_slope, torch.zeros_like(free_slope), low_slope, high_slope), -1)
    offset = torch.stack(
        (
            free_offset,
            edge_offset,
            torch.full_like(u_mean, offset_low),
            torch.full_like(u_mean, offset_high),
        ),
        -1,
    )
    best = _sum_of_squares(u, y, slope, offset).argmin(-1, keepdim=True)
    return slope.gather(-1, best).squeeze(-1), offset.gather(-1, best).squeeze(-1)


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
        r"""Exact box-constrained MLE (module docstring), ``x`` ``(*, n, 3)`` to ``(*, 2)``."""
        slope, offset = bounded_least_squares(
            x[..., 0], x[..., 2], self.prior_low[1], self.prior_high[1]
        )
        return torch.stack((slope.atan(), offset), dim=-1)

    def log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        r""":math:`-S(b, c) / 2\sigma^2 - n \log(\sigma \sqrt{2\pi})` from sums over the ``n``
        observations, so that ``C`` parameters broadcast against one problem cost
        :math:`O(C + n)`, not :math:`O(C n)` (the reference grids evaluate millions of cells).

        About any fit :math:`(\hat b, \hat c)` with residuals :math:`r_j = y_j - \hat b u_j -
        \hat c`, exactly, with :math:`\Delta b = b - \hat b`, :math:`\Delta c = c - \hat c`:

        .. math::
            S(b, c) = \textstyle\sum r^2 - 2 \Delta b \sum r u - 2 \Delta c \sum r
            + n (\Delta c + \Delta b\, \bar u)^2 + \Delta b^2 \sum (u - \bar u)^2.

        The unconstrained least-squares fit makes :math:`\sum r u` and :math:`\sum r` vanish
        (to rounding), so no large terms cancel, even for slopes of :math:`10^6` where the
        expanded square :math:`\sum y^2 - \dots` loses every digit (when all :math:`u_j` are
        equal the fit is :math:`(0, \bar y)` and the shift term is the direct residual).
        Float64 inside; returned in the promoted dtype of ``theta`` and ``x``.
        """
        dtype = torch.promote_types(theta.dtype, x.dtype)
        u, y = x[..., 0].double(), x[..., 2].double()
        n = u.shape[-1]
        u_mean, y_mean = u.mean(-1, keepdim=True), y.mean(-1, keepdim=True)
        spread = ((u - u_mean) ** 2).sum(-1, keepdim=True)
        slope_fit = _ratio(((u - u_mean) * (y - y_mean)).sum(-1, keepdim=True), spread)
        offset_fit = y_mean - slope_fit * u_mean
        r = y - slope_fit * u - offset_fit
        db = theta[..., 0].double().tan() - slope_fit[..., 0]
        dc = theta[..., 1].double() - offset_fit[..., 0]
        shift = dc + db * u_mean[..., 0]  # the mean residual's change
        squares = (
            (r * r).sum(-1)
            - 2 * db * (r * u).sum(-1)
            - 2 * dc * r.sum(-1)
            + n * shift * shift
            + db * db * spread[..., 0]
        )
        constant = n * (math.log(NOISE_STD) + 0.5 * math.log(2 * math.pi))
        return (-0.5 * squares / NOISE_STD**2 - constant).to(dtype)
