r"""Weinberg: the forward-backward asymmetry of :math:`e^+e^- \to \mu^+\mu^-` (Appendix B.4).

From Louppe & Cranmer (2017). Parameters :math:`\theta = (E, G_f)`, beam energy
:math:`E \sim \mathcal{U}[40, 50]` and Fermi constant :math:`G_f \sim \mathcal{U}[0.5, 1.5]`; one
observation is :math:`x = \cos A \in [-1, 1]` with density

.. math::
    p(x \mid a) \propto \max(0,\ 1 + x^2 + a x), \qquad
    a(\theta) = 2 \tanh\!\Big(10\,\frac{2E - M_Z}{M_Z}\Big)\, \frac{G_f}{G_f^{\rm nom}},
    \quad M_Z = 90,\ G_f^{\rm nom} = 1.

For :math:`|a| \le 2` the polynomial is non-negative on :math:`[-1, 1]` and the normaliser is
:math:`8/3` whatever :math:`a`. Over part of the prior box :math:`|a|` reaches
:math:`3 \tanh(10/9) \approx 2.41`; the polynomial then has a root :math:`r` inside
:math:`[-1, 1]` and the law is its positive part renormalised over the support
:math:`[r, 1]` (:math:`a > 2`) or :math:`[-1, -r]` (:math:`a < -2`), which is exactly what rejection
sampling of the polynomial would produce. Sampler (closed-form inverse CDF), density and MLE
all use that support.

:math:`\theta` enters only through :math:`a`, so it is not identifiable. The MLE maximises the
likelihood over :math:`a` on the image of the prior box (a bracketing grid, then golden-section
search to :math:`10^{-9}`), and reports as :math:`\hat\theta` the point of the level set
:math:`a(\theta) = \hat a` nearest to the prior centre in standardised coordinates.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from alfi.simulators import register
from alfi.simulators.base import Simulator

__all__ = ["Weinberg", "asymmetry", "support", "log_density", "inverse_cdf", "sample"]

Z_MASS = 90.0
NOMINAL_FERMI = 1.0
_INV_PHI = (math.sqrt(5.0) - 1.0) / 2.0


def asymmetry(theta: Tensor) -> Tensor:
    r"""The identifiable :math:`a(\theta)`, ``theta`` ``(*, 2)`` to ``(*)``."""
    energy, fermi = theta[..., 0], theta[..., 1]
    return 2.0 * torch.tanh((2.0 * energy - Z_MASS) / Z_MASS * 10.0) * fermi / NOMINAL_FERMI


def support(a: Tensor) -> tuple[Tensor, Tensor]:
    """Interval ``[low, high]`` where ``1 + x^2 + a x >= 0`` within ``[-1, 1]``; shapes of ``a``."""
    inner = (a.abs() - (a * a - 4.0).clamp_min(0.0).sqrt()) / 2.0  # in (0, 1] for |a| >= 2
    edge = torch.where(a.abs() > 2.0, inner, torch.ones_like(a))
    low = torch.where(a > 2.0, -edge, -torch.ones_like(a))
    high = torch.where(a < -2.0, edge, torch.ones_like(a))
    return low, high


def _antiderivative(x: Tensor, a: Tensor) -> Tensor:
    return x + a * x * x / 2.0 + x**3 / 3.0


def log_normaliser(a: Tensor) -> Tensor:
    r""":math:`\log \int_{\rm support} (1 + x^2 + a x)\,dx`, shape of ``a``."""
    low, high = support(a)
    return (_antiderivative(high, a) - _antiderivative(low, a)).log()


def log_density(x: Tensor, a: Tensor) -> Tensor:
    """Log density of ``x`` (any shape) given ``a`` broadcastable to it; ``-inf`` off support."""
    low, high = support(a)
    poly = 1.0 + x * x + a * x
    inside = (x >= low) & (x <= high) & (poly > 0)
    value = poly.clamp_min(torch.finfo(poly.dtype).tiny).log() - log_normaliser(a)
    return torch.where(inside, value, torch.full_like(value, -math.inf))


def _cube_root(v: Tensor) -> Tensor:
    return v.sign() * v.abs().pow(1.0 / 3.0)


def inverse_cdf(u: Tensor, a: Tensor) -> Tensor:
    r"""The quantile function of :math:`p(x \mid a)` at ``u`` in [0, 1] (broadcast with ``a``).

    With :math:`A(x) = x + a x^2/2 + x^3/3`, solve :math:`A(x) = A(\ell) + u\,(A(h) - A(\ell))`
    on the support :math:`[\ell, h]`: a cubic, depressed by :math:`x = y - a/2` to
    :math:`y^3 + p y + q = 0` with :math:`p = 3 - 3a^2/4`. When
    :math:`\Delta = q^2/4 + p^3/27 \ge 0` it has one real root (Cardano). Otherwise (only for
    :math:`|a| > 2`) it has three, :math:`y_k = 2\sqrt{-p/3}\cos(\varphi/3 - 2\pi k/3)`, and
    :math:`A` increases on the support, which lies right of both critical points for
    :math:`a > 2` (the largest root, :math:`k = 0`) and left of both for :math:`a < -2` (the
    smallest, :math:`k = 2`). Float64, no iteration; terms in ``a`` alone are computed at the
    shape of ``a``, not of the draws.
    """
    u, a = u.double(), a.double()
    low, high = support(a)
    start = _antiderivative(low, a)
    mass = _antiderivative(high, a) - start
    p = 3.0 - 0.75 * a * a
    q = (a**3 / 4.0 - 1.5 * a - 3.0 * start) - 3.0 * mass * u
    delta = q * q / 4.0 + p**3 / 27.0
    root = delta.clamp_min(0.0).sqrt()
    cardano = _cube_root(-q / 2.0 + root) + _cube_root(-q / 2.0 - root)
    negative_p = p.clamp_max(-1e-300)
    radius = 2.0 * (-p / 3.0).clamp_min(0.0).sqrt()
    scale = 1.5 / negative_p * (-3.0 / negative_p).sqrt()
    shift = torch.where(a > 0, 0.0, 4.0 * math.pi / 3.0)
    trigonometric = radius * torch.cos(torch.acos((q * scale).clamp(-1.0, 1.0)) / 3.0 - shift)
    x = torch.where(delta >= 0, cardano, trigonometric) - a / 2.0
    return torch.minimum(torch.maximum(x, low), high)


def sample(a: Tensor, n: int, generator: torch.Generator) -> Tensor:
    r"""``n`` exact draws per ``a`` (shape ``(*)``) by inverse CDF, returns ``(*, n)``."""
    u = torch.rand((*a.shape, n), generator=generator, device=a.device, dtype=torch.float64)
    return inverse_cdf(u, a.unsqueeze(-1)).to(a.dtype)


@register
class Weinberg(Simulator):
    name = "weinberg"
    parameter_names = ("beam_energy", "fermi_constant")
    observation_dim = 1
    prior_low = (40.0, 0.5)
    prior_high = (50.0, 1.5)

    #: Grid sizes of the MLE: bracketing grid on a, level-set grid on the beam energy.
    mle_grid: int = 201
    level_set_grid: int = 2001
    golden_iterations: int = 60

    def asymmetry_range(self) -> float:
        """Largest ``|a|`` on the prior box."""
        return float(asymmetry(torch.tensor([self.prior_high], dtype=torch.float64)))

    def simulate(self, theta: Tensor, n: int, generator: torch.Generator) -> Tensor:
        return sample(asymmetry(theta), n, generator).unsqueeze(-1)

    def derived(self, theta: Tensor) -> dict[str, Tensor]:
        return {"asymmetry": asymmetry(theta)}

    def log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        a = asymmetry(theta.double())
        return log_density(x.double()[..., 0], a.unsqueeze(-1)).sum(-1)

    def _profile(self, a: Tensor, x: Tensor) -> Tensor:
        """Log-likelihood of ``a`` ``(*, G)`` for ``x`` ``(*, n)``, returns ``(*, G)``."""
        return log_density(x.unsqueeze(-2), a.unsqueeze(-1)).sum(-1)

    def mle_asymmetry(self, x: Tensor) -> Tensor:
        r""":math:`\hat a` over the prior's image, ``x`` ``(*, n, 1)`` to ``(*)`` (float64)."""
        obs = x.double()[..., 0]
        a_max = self.asymmetry_range()
        grid = torch.linspace(-a_max, a_max, self.mle_grid, dtype=torch.float64, device=x.device)
        profile = self._profile(grid.expand(*obs.shape[:-1], -1), obs)
        best = profile.argmax(-1)
        step = grid[1] - grid[0]
        low = (grid[best] - step).clamp_min(-a_max)
        high = (grid[best] + step).clamp_max(a_max)
        for _ in range(self.golden_iterations):
            left = high - _INV_PHI * (high - low)
            right = low + _INV_PHI * (high - low)
            values = self._profile(torch.stack((left, right), -1), obs)
            move_up = values[..., 1] > values[..., 0]
            low = torch.where(move_up, left, low)
            high = torch.where(move_up, high, right)
        return (low + high) / 2

    def theta_on_level_set(self, a: Tensor) -> Tensor:
        r"""The :math:`\theta` with :math:`a(\theta) = a` nearest the prior centre (standardised).

        ``a`` of shape ``(*)`` to ``theta`` of shape ``(*, 2)``.
        """
        low, high = self.bounds(a.device)
        mean, std = (m.double() for m in self.prior_moments(a.device))
        energy = torch.linspace(
            float(low[0]), float(high[0]), self.level_set_grid, dtype=torch.float64, device=a.device
        )
        slope = 2.0 * torch.tanh((2.0 * energy - Z_MASS) / Z_MASS * 10.0) / NOMINAL_FERMI
        a_ = a.double().unsqueeze(-1)
        safe = torch.where(slope.abs() > 1e-12, slope, torch.ones_like(slope))
        fermi = torch.where(slope.abs() > 1e-12, a_ / safe, mean[1].expand_as(a_ / safe))
        fermi = fermi.clamp(float(low[1]), float(high[1]))
        residual = (slope * fermi - a_).abs()
        distance = ((energy - mean[0]) / std[0]) ** 2 + ((fermi - mean[1]) / std[1]) ** 2
        # Exact solutions first (residual ~ 0), nearest among them; else the closest in a.
        score = torch.where(residual < 1e-9, distance, 1e6 + residual)
        best = score.argmin(-1, keepdim=True)
        chosen_energy = energy.expand_as(fermi).gather(-1, best)
        return torch.cat((chosen_energy, fermi.gather(-1, best)), -1)

    def mle(self, x: Tensor) -> Tensor:
        return self.theta_on_level_set(self.mle_asymmetry(x)).to(x.dtype)
