r"""Exact reference posteriors on a grid (the C2ST against them is :func:`alfi.calibration.c2st`).

The prior is uniform on a box and the likelihood exact, so :math:`p(\theta \mid x) \propto
L(\theta) = \exp \ell(\theta)` on the box (:meth:`~alfi.simulators.Simulator.log_likelihood`).
On a grid of :math:`G^k` equal cells with centres :math:`c_i` (cell-centred midpoint rule), cell
:math:`i` has mass :math:`\log w_i = \ell(c_i) - \operatorname{logsumexp}_j \ell(c_j)` (float64);
moments are :math:`\sum_i w_i f(c_i)`; a sample draws a cell by :math:`w`, then a uniform point in
it (so its variance exceeds :meth:`ReferencePosterior.var` by :math:`h^2/12`, :math:`h` the cell
width: :math:`< 5 \cdot 10^{-4}` relative at 13 cells per sd, the least the 2-D grids reach).

**Two-stage grid.** At :math:`n = 200` the posterior is far narrower than the box (Poisson: sd
:math:`\approx 1/\sqrt{n\lambda}`, down to 0.002 on a box of width 6.8), so the grid is refined in
passes (:attr:`GridSpec.cells`). Pass 1 covers the box (or :attr:`GridSpec.support`); pass
:math:`p+1` covers, per coordinate, the cells of pass :math:`p` whose marginal mass is at least
:math:`e^{-\Delta}` times the largest, widened by one cell (which keeps the mass when pass
:math:`p` puts it all in one cell), or by the whole window on a side those cells reach, and
clipped to the box. A cut on the density bounds the tail left out whatever its shape:
:math:`\Delta = 40` is :math:`\pm 8.9` sds of a Gaussian, 40 scales of an exponential tail (the
Poisson posterior at the box's edge, :math:`\theta_2`'s below); each leaves out
:math:`< 10^{-16}`. Every window also contains the MLE (the mode) with one cell around it, so a
pass misled by an unresolved coordinate (linear regression's :math:`\tan\theta_0` near
:math:`\pi/2`, where the sd of :math:`\theta_0` falls below :math:`10^{-6}`) cannot lose the mass,
and passes are added until every problem has :math:`\ge 4` cells per marginal sd
(:attr:`ReferencePosterior.cells_per_sd`) and a mass :math:`< 10^{-12}` in the outermost cells
of window ends inside the box (:attr:`~ReferencePosterior.edge_mass`); a warning if that fails.

**Per simulator** (:data:`GRID_SPECS`): Poisson and linear regression grid :math:`\theta` (1-D,
2-D). Multivariate: likelihood and prior factorise, :math:`L = L_0(\theta_0) L_1(\theta_1)
L_2(\theta_2)`, so the posterior is a product of three exact 1-D ones (no 3-D grid):
:math:`\theta_0` the normal :math:`N(\bar z_0, 1/n)` truncated to the box, :math:`\theta_1`
smooth, :math:`\theta_2` the truncated power law :math:`\propto (\theta_2 + 5)^{-n}` on
:math:`[\max_j z_{3,j}, 3]`, its lower end on a cell edge. Weinberg: a 2-D grid in :math:`\theta`,
the mass along the curved ridge :math:`a(\theta) \approx \hat a`; the posterior of
:math:`a(\theta)` comes from the same cells (:meth:`~ReferencePosterior.derived_moments`).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from alfi.evaluate import Trajectory
from alfi.io import MetaDataset
from alfi.simulators.base import Simulator

__all__ = [
    "GridSpec",
    "GRID_SPECS",
    "grid_spec",
    "GridFactor",
    "ReferencePosterior",
    "reference_posterior",
    "run_reference",
]


def _multivariate_support(sim: Simulator, x: Tensor) -> tuple[Tensor, Tensor]:
    r""":math:`\theta_2 \ge \max_j z_{3,j}` (the uniform's upper end covers every draw)."""
    low, high = (b.double().expand(x.shape[0], -1).clone() for b in sim.bounds(x.device))
    low[:, 2] = sim.unmix(x)[..., 3].amax(-1).clamp(low[0, 2], high[0, 2])
    return low, high


@dataclass(frozen=True)
class GridSpec:
    r"""How one simulator's posterior is gridded (module docstring).

    ``factors``: groups of coordinates with independent posteriors, one grid each (the other
    coordinates held at the box's upper corner); ``cells``: per coordinate, at each pass;
    ``threshold``: :math:`\Delta`; up to ``extra_passes`` passes of ``cells[-1]`` until
    ``min_cells_per_sd``; ``budget``: (problem, cell, observation) triples per likelihood call
    (32 MB of float64); ``support``: ``(sim, x)`` to bounds ``(P, D)`` tighter than the box.
    """

    factors: tuple[tuple[int, ...], ...]
    cells: tuple[int, ...]
    threshold: float = 40.0
    min_cells_per_sd: float = 4.0
    extra_passes: int = 8
    budget: int = 1 << 22
    support: Callable[[Simulator, Tensor], tuple[Tensor, Tensor]] | None = None


GRID_SPECS: dict[str, GridSpec] = {
    "poisson": GridSpec(((0,),), (512, 2048, 4096)),
    "linear_regression": GridSpec(((0, 1),), (64, 128, 128, 256)),
    "multivariate": GridSpec(((0,), (1,), (2,)), (512, 2048, 4096), support=_multivariate_support),
    "weinberg": GridSpec(((0, 1),), (64, 128, 256)),
}


def grid_spec(sim: Simulator) -> GridSpec:
    """The spec of ``sim``: :data:`GRID_SPECS` by name, else one joint grid (``D <= 3``)."""
    cells = {1: (512, 2048, 4096), 2: (64, 128, 128, 256), 3: (24, 48, 64)}.get(sim.theta_dim)
    if sim.name in GRID_SPECS:
        return GRID_SPECS[sim.name]
    if cells is None:
        raise ValueError(f"{sim!r}: no default grid for D = {sim.theta_dim} > 3; add a GridSpec")
    return GridSpec((tuple(range(sim.theta_dim)),), cells)


@dataclass
class GridFactor:
    """Posterior of the coordinates ``dims`` (``k`` of them) on ``G^k`` cells, per problem.

    Attributes:
        dims: the coordinates of :math:`\\theta` this grid covers.
        low: window's lower corner, ``(P, k)``; ``step``: cell widths, ``(P, k)``.
        log_weight: normalised log cell masses, ``(P, G^k)`` (C order over ``(G,) * k``).
        edge_mass, cells_per_sd: the checks of the module docstring, ``(P,)``.
    """

    dims: tuple[int, ...]
    low: Tensor
    step: Tensor
    log_weight: Tensor
    edge_mass: Tensor
    cells_per_sd: Tensor

    @property
    def cells(self) -> int:
        return round(self.log_weight.shape[-1] ** (1 / len(self.dims)))

    def marginal(self, j: int) -> tuple[Tensor, Tensor]:
        """Centres ``(P, G)`` and normalised log masses ``(P, G)`` of coordinate ``dims[j]``."""
        k, g = len(self.dims), self.cells
        grid = self.log_weight.view(-1, *(g,) * k)
        others = tuple(1 + i for i in range(k) if i != j)
        log_w = grid.logsumexp(others) if others else grid
        idx = torch.arange(g, dtype=self.low.dtype, device=self.low.device)
        return self.low[:, j : j + 1] + (idx + 0.5) * self.step[:, j : j + 1], log_w

    def moments(self) -> tuple[Tensor, Tensor]:
        """Marginal means and variances, each ``(P, k)`` (midpoint quadrature)."""
        means, variances = [], []
        for j in range(len(self.dims)):
            centre, log_w = self.marginal(j)
            w = log_w.exp()
            mean = (w * centre).sum(-1)
            means.append(mean)
            variances.append((w * (centre - mean.unsqueeze(-1)) ** 2).sum(-1))
        return torch.stack(means, -1), torch.stack(variances, -1)

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` draws per problem, ``(P, n, k)``: a cell by mass, then uniform within it."""
        g, k = self.cells, len(self.dims)
        flat = torch.multinomial(self.log_weight.exp(), n, replacement=True, generator=generator)
        index = torch.stack([flat // g ** (k - 1 - j) % g for j in range(k)], -1)
        u = torch.rand(index.shape, generator=generator, dtype=self.low.dtype, device=index.device)
        return self.low.unsqueeze(1) + (index + u) * self.step.unsqueeze(1)


def _centres(low: Tensor, step: Tensor, g: int) -> Tensor:
    """Centres ``(P, g^k, k)`` of the grid with corner ``low`` and widths ``step`` ``(P, k)``."""
    k = low.shape[-1]
    axes = [torch.arange(g, dtype=low.dtype, device=low.device)] * k
    index = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, k)
    return low.unsqueeze(1) + (index + 0.5) * step.unsqueeze(1)


def _log_likelihood(sim: Simulator, theta: Tensor, x: Tensor, budget: int) -> Tensor:
    """``log_likelihood`` at ``theta`` ``(P, C, D)`` for ``x`` ``(P, n, X)``, chunked over cells
    so that one call holds at most ``budget`` (cell, observation) pairs; returns ``(P, C)``."""
    p, c = theta.shape[:2]
    size = max(1, budget // (p * x.shape[-2]))
    parts = [sim.log_likelihood(theta[:, i : i + size], x.unsqueeze(1)) for i in range(0, c, size)]
    return torch.cat(parts, -1).double()


def _window(
    factor: GridFactor, spec: GridSpec, box: tuple[Tensor, Tensor], mle: Tensor | None
) -> tuple[Tensor, Tensor]:
    """The next pass's window ``(P, k)``, ``(P, k)``: the rule of the module docstring."""
    lows, highs = [], []
    for j in range(len(factor.dims)):
        log_w = factor.marginal(j)[1]
        keep = (log_w >= log_w.amax(-1, keepdim=True) - spec.threshold).double()
        first, last = keep.argmax(-1), keep.shape[-1] - keep.flip(-1).argmax(-1)  # [first, last)
        # Mass running into a window end: grow that side by the whole window, not one cell.
        g = keep.shape[-1]
        lows.append(factor.low[:, j] + (first - torch.where(first == 0, g, 1)) * factor.step[:, j])
        highs.append(factor.low[:, j] + (last + torch.where(last == g, g, 1)) * factor.step[:, j])
    low, high = torch.stack(lows, -1), torch.stack(highs, -1)
    if mle is not None:  # the mode, with one cell around it
        low, high = low.minimum(mle - factor.step), high.maximum(mle + factor.step)
    return low.maximum(box[0]), high.minimum(box[1])


def _edge_mass(factor: GridFactor, box: tuple[Tensor, Tensor]) -> Tensor:
    """Mass in the outermost cells of window ends inside the box, summed, ``(P,)``."""
    high, edge = factor.low + factor.cells * factor.step, torch.zeros_like(factor.low[:, 0])
    for j in range(len(factor.dims)):
        w, half = factor.marginal(j)[1].exp(), factor.step[:, j] / 2  # half: rounding
        edge += torch.where(factor.low[:, j] > box[0][:, j] + half, w[:, 0], 0.0)
        edge += torch.where(high[:, j] < box[1][:, j] - half, w[:, -1], 0.0)
    return edge


def _factor(
    sim: Simulator, x: Tensor, spec: GridSpec, dims: tuple[int, ...], box: tuple[Tensor, Tensor]
) -> GridFactor:
    """The passes of the module docstring for one factor; ``x`` ``(P, n, X)`` float64."""
    anchor = box[1].unsqueeze(1)  # other coordinates at the upper corner (see GridSpec.factors)
    box = (box[0][:, list(dims)], box[1][:, list(dims)])
    try:
        mle = sim.mle(x)[:, list(dims)].double()
    except NotImplementedError:
        mle = None
    low, high, factor = *box, None
    passes = [*spec.cells, *(spec.cells[-1],) * spec.extra_passes]
    for i, g in enumerate(passes):
        if factor is not None:
            low, high = _window(factor, spec, box, mle)
        step = (high - low) / g
        theta = anchor.expand(-1, g ** len(dims), -1).clone()
        theta[..., list(dims)] = _centres(low, step, g)
        ll = _log_likelihood(sim, theta, x, spec.budget)
        total = ll.logsumexp(-1, keepdim=True)
        if not torch.isfinite(total).all():
            bad = (~torch.isfinite(total[:, 0])).nonzero()[:, 0].tolist()
            raise ValueError(f"{sim!r}: zero or non-finite likelihood on the grid of {bad}")
        factor = GridFactor(dims, low, step, ll - total, total[:, 0], total[:, 0])
        if i + 1 >= len(spec.cells):
            factor.cells_per_sd = (factor.moments()[1].sqrt() / factor.step).amin(-1)
            factor.edge_mass = _edge_mass(factor, box)
            resolved = (factor.cells_per_sd >= spec.min_cells_per_sd) & (factor.edge_mass < 1e-12)
            if resolved.all():
                return factor
    assert factor is not None
    warnings.warn(f"{sim!r}: grid of {dims} unresolved after {len(passes)} passes", stacklevel=3)
    return factor


@dataclass
class ReferencePosterior:
    """The exact posterior of ``P`` problems as a product of independent grid factors."""

    simulator: Simulator
    factors: list[GridFactor]

    @property
    def edge_mass(self) -> Tensor:
        """Largest mass in the outermost cells of a window end inside the box, ``(P,)``."""
        return torch.stack([f.edge_mass for f in self.factors]).amax(0)

    @property
    def cells_per_sd(self) -> Tensor:
        """Smallest marginal posterior sd in final cell widths, ``(P,)``."""
        return torch.stack([f.cells_per_sd for f in self.factors]).amin(0)

    def _assemble(self, parts: list[Tensor]) -> Tensor:
        shape = (*parts[0].shape[:-1], self.simulator.theta_dim)
        out = torch.empty(shape, dtype=parts[0].dtype, device=parts[0].device)
        for factor, part in zip(self.factors, parts, strict=True):
            out[..., list(factor.dims)] = part
        return out

    def mean(self) -> Tensor:
        r"""Posterior mean :math:`E[\theta \mid x]`, ``(P, D)``."""
        return self._assemble([f.moments()[0] for f in self.factors])

    def var(self) -> Tensor:
        r"""Posterior marginal variances, ``(P, D)``."""
        return self._assemble([f.moments()[1] for f in self.factors])

    def marginal(self, d: int) -> tuple[Tensor, Tensor]:
        """Centres ``(P, G)`` and normalised log masses ``(P, G)`` of coordinate ``d``."""
        factor = next(f for f in self.factors if d in f.dims)
        return factor.marginal(factor.dims.index(d))

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` exact draws per problem, ``(P, n, D)`` float64 (factors drawn independently)."""
        return self._assemble([f.sample(n, generator) for f in self.factors])

    def derived_moments(self) -> dict[str, tuple[Tensor, Tensor]]:
        """Mean and variance ``(P,)`` of each :meth:`~alfi.simulators.Simulator.derived` quantity
        on the joint grid (one factor over all coordinates; else use :meth:`sample`)."""
        probe = self.simulator.derived(torch.zeros(1, self.simulator.theta_dim))
        if not probe:
            return {}
        if len(self.factors) != 1:
            raise NotImplementedError("derived moments need a joint grid; derive from samples")
        factor = self.factors[0]
        w = factor.log_weight.exp()
        out = {}
        centres = _centres(factor.low, factor.step, factor.cells)
        for name, value in self.simulator.derived(centres).items():
            mean = (w * value).sum(-1)
            out[name] = (mean, (w * (value - mean.unsqueeze(-1)) ** 2).sum(-1))
        return out


def reference_posterior(
    sim: Simulator, x: Tensor, spec: GridSpec | None = None
) -> ReferencePosterior:
    """The exact posteriors of problems ``x`` ``(P, n, X)``, chunked over problems so that each
    chunk's widest pass holds at most ``budget`` (problem, cell, observation) triples."""
    spec = spec or grid_spec(sim)
    x = x.double()
    width = max(spec.cells) ** max(len(f) for f in spec.factors)
    size = max(1, spec.budget // (width * x.shape[-2]))
    chunks: list[list[GridFactor]] = []
    for start in range(0, x.shape[0], size):
        part = x[start : start + size]
        if spec.support is not None:
            box = spec.support(sim, part)
        else:
            box = tuple(b.double().expand(part.shape[0], -1) for b in sim.bounds(part.device))
        chunks.append([_factor(sim, part, spec, dims, box) for dims in spec.factors])
    fields = ("low", "step", "log_weight", "edge_mass", "cells_per_sd")
    return ReferencePosterior(
        sim,
        [
            GridFactor(parts[0].dims, *(torch.cat([getattr(p, a) for p in parts]) for a in fields))
            for parts in zip(*chunks, strict=True)
        ],
    )


@torch.no_grad()
def run_reference(
    simulator: Simulator, data: MetaDataset, generator: torch.Generator, draws: int = 0
) -> Trajectory:
    """The exact posterior of every problem of ``data`` as a method's result: the posterior mean
    (the estimator of least expected squared error under the prior) and standard deviation,
    derived quantities' posterior means, and ``draws`` exact draws per problem (float32).

    The grid runs in float64 on ``generator``'s device; it simulates only for the KS distance.
    """
    start = time.perf_counter()
    device = generator.device
    posterior = reference_posterior(simulator, data.x.to(device))
    estimate = posterior.mean().float()
    derived = posterior.derived_moments() if len(posterior.factors) == 1 else {}
    if not derived and simulator.derived(torch.zeros(1, simulator.theta_dim)):
        derived = {
            k: (v.mean(-1), v.var(-1))
            for k, v in simulator.derived(posterior.sample(4096, generator)).items()
        }
    samples = posterior.sample(draws, generator).float().cpu() if draws else None
    final_x = simulator.simulate(simulator.clamp(estimate), data.x.shape[1], generator)
    return Trajectory(
        estimate=estimate.unsqueeze(0).cpu(),
        sigma=posterior.var().sqrt().float().unsqueeze(0).cpu(),
        derived={k: mean.float().unsqueeze(0).cpu() for k, (mean, _) in derived.items()},
        final_x=final_x.cpu(),
        simulations_per_problem=0,
        draws=samples,
        seconds_per_problem=(time.perf_counter() - start) / max(len(data), 1),
    )
