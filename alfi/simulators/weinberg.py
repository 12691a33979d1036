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
:math:`a(\theta) = \hat a` nearest to the prior centre in standardised coordinates. That point
is exact: the level set is :math:`G_f = \hat a / s(E)` with
:math:`s(E) = 2\tanh(10\,(2E - M_Z)/M_Z)/G_f^{\rm nom}`, which inverts in closed form,
:math:`E = M_Z/2 + (M_Z/20)\operatorname{atanh}(s\,G_f^{\rm nom}/2)`, so the energies where
:math:`G_f` stays in its prior interval form an interval known exactly; the search over
:math:`E` (grid, then golden section) stays inside it, so :math:`a(\hat\theta) = \hat a` to
rounding. :math:`\hat a = 0` gives the prior centre :math:`(M_Z/2, 1)`.
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
    observation_support = (-1.0, 1.0)  # x = cos A

    #: Grid sizes of the MLE: bracketing grid on a, level-set grid on the beam energy (inside the
    #: exact feasible interval, where the distance to the centre was found unimodal numerically).
    mle_grid: int = 201
    level_set_grid: int = 33
    golden_iterations: int = 60

    def asymmetry_range(self) -> float:
        """Largest ``|a|`` on the prior box."""
        return float(asymmetry(torch.tensor([self.prior_high], dtype=torch.float64)))

    def simulate(self, theta: Tensor, n: int, generator: torch.Generator) -> Tensor:
        return sample(asymmetry(theta), n, generator).unsqueeze(-1)

    def derived(self, theta: Tensor) -> dict[str, Tensor]:
        return {"asymmetry": asymmetry(theta)}

    def log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        r""":math:`\sum_j \log(1 + x_j^2 + a x_j) - n \log Z(a)` with :math:`a = a(\theta)`,
        float64; :math:`-\infty` unless every :math:`x_j` lies in the support. The support test
        reduces over the ``n`` observations first (their min and max, the polynomial's min), so
        ``C`` parameters broadcast against one problem cost one fused pass over ``C n`` terms
        (the reference grids evaluate millions of cells), as :func:`log_density` summed."""
        a = asymmetry(theta.double()).unsqueeze(-1)
        obs = x.double()[..., 0]
        low, high = support(a)
        poly = torch.addcmul(1.0 + obs * obs, a, obs)
        inside = (
            (obs.amin(-1, keepdim=True) >= low)
            & (obs.amax(-1, keepdim=True) <= high)
            & (poly.amin(-1, keepdim=True) > 0)
        )
        # Off the support a log is NaN or -inf; those parameters are masked below.
        total = poly.log_().sum(-1, keepdim=True) - obs.shape[-1] * log_normaliser(a)
        return torch.where(inside, total, torch.full_like(total, -math.inf))[..., 0]

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

    def level_set_energies(self, a: Tensor) -> tuple[Tensor, Tensor]:
        r"""Exact interval of beam energies on the level set :math:`a(\theta) = a` in the box.

        With :math:`s(E) = 2 \tanh(10\,(2E - M_Z)/M_Z) / G_f^{\rm nom}`, increasing and odd about
        :math:`M_Z/2`, the level set is :math:`G_f = a / s(E)`, and :math:`G_f \in [g_\ell, g_h]`
        holds iff :math:`s(E)` lies between :math:`a/g_h` and :math:`a/g_\ell`. Inverting
        :math:`s` in closed form, :math:`E(s) = M_Z/2 + (M_Z/20)\,\operatorname{atanh}(s
        G_f^{\rm nom}/2)`, gives the interval between :math:`E(a/g_h)` and :math:`E(a/g_\ell)`,
        intersected with the energy bounds (a single point when :math:`a = 0`, or when :math:`|a|`
        exceeds the prior's range, where it is the nearest energy bound).

        ``a`` of shape ``(*)`` (float64) to the interval's ends, each of shape ``(*)``.
        """
        (e_low, g_low), (e_high, g_high) = self.prior_low, self.prior_high

        def energy(slope: Tensor) -> Tensor:
            half = (slope * NOMINAL_FERMI / 2.0).clamp(-1.0, 1.0)  # atanh(+-1) = +-inf, clamped
            return (Z_MASS / 2.0 + Z_MASS / 20.0 * torch.atanh(half)).clamp(e_low, e_high)

        first, second = energy(a / g_high), energy(a / g_low)
        return torch.minimum(first, second), torch.maximum(first, second)

    def _fermi_on_level_set(self, energy: Tensor, a: Tensor) -> Tensor:
        r""":math:`G_f = a / s(E)`, ``energy`` ``(*, K)`` and ``a`` ``(*, 1)``, clamped to the box.

        :math:`s(E)` is computed as :func:`asymmetry` computes it, so that
        :math:`a(E, G_f) = a` holds to rounding; where :math:`s(E) = 0` (only when :math:`a` rounds
        to 0) any :math:`G_f` is on the level set and the prior centre is returned.
        """
        slope = asymmetry(torch.stack((energy, torch.ones_like(energy)), -1))
        zero = slope == 0
        fermi = a / torch.where(zero, torch.ones_like(slope), slope)
        centre = (self.prior_low[1] + self.prior_high[1]) / 2.0
        fermi = torch.where(zero, torch.full_like(fermi, centre), fermi)
        return fermi.clamp(self.prior_low[1], self.prior_high[1])

    def _level_set_distance(self, energy: Tensor, a: Tensor) -> Tensor:
        """Squared standardised distance to the prior centre along the level set, ``(*, K)``."""
        (e_low, g_low), (e_high, g_high) = self.prior_low, self.prior_high
        fermi = self._fermi_on_level_set(energy, a)
        # Standardised by the prior's sd (high - low) / sqrt(12), in float64.
        e_term = (energy - (e_low + e_high) / 2.0) / (e_high - e_low)
        g_term = (fermi - (g_low + g_high) / 2.0) / (g_high - g_low)
        return 12.0 * (e_term**2 + g_term**2)

    def theta_on_level_set(self, a: Tensor) -> Tensor:
        r"""The :math:`\theta` with :math:`a(\theta) = a` nearest the prior centre (standardised).

        Searches the beam energy only inside the exact feasible interval of
        :meth:`level_set_energies`, with :math:`G_f = a / s(E)`, so every candidate lies on the
        level set and :math:`a(\hat\theta) = a` to floating-point precision: a grid of
        :attr:`level_set_grid` energies, then golden-section search between the neighbours of the
        best grid point. ``a = 0`` gives the prior centre :math:`(M_Z/2, 1)`.

        ``a`` of shape ``(*)`` to ``theta`` of shape ``(*, 2)`` (float64).
        """
        a = a.double()
        low, high = (v.unsqueeze(-1) for v in self.level_set_energies(a))
        a = a.unsqueeze(-1)
        steps = torch.linspace(0.0, 1.0, self.level_set_grid, dtype=torch.float64, device=a.device)
        grid = low + (high - low) * steps
        best = self._level_set_distance(grid, a).argmin(-1, keepdim=True)
        left = grid.gather(-1, (best - 1).clamp_min(0))
        right = grid.gather(-1, (best + 1).clamp_max(self.level_set_grid - 1))
        for _ in range(self.golden_iterations):
            inner = torch.cat(
                (right - _INV_PHI * (right - left), left + _INV_PHI * (right - left)), -1
            )
            values = self._level_set_distance(inner, a)
            move_up = values[..., 1:] < values[..., :1]
            left = torch.where(move_up, inner[..., :1], left)
            right = torch.where(move_up, right, inner[..., 1:])
        # The refined point, unless the grid point is closer (only at a kink of the clamp).
        energies = torch.cat(((left + right) / 2.0, grid.gather(-1, best)), -1)
        energy = energies.gather(-1, self._level_set_distance(energies, a).argmin(-1, keepdim=True))
        return torch.cat((energy, self._fermi_on_level_set(energy, a)), -1)

    def mle(self, x: Tensor) -> Tensor:
        return self.theta_on_level_set(self.mle_asymmetry(x)).to(x.dtype)
