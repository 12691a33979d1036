r"""What every method's evaluation on a test meta-dataset shares, and the MLE and the prior.

A run of any method is a :class:`Trajectory`: its estimates along the iterations (one point for
the MLE, the baselines and the prior), a spread, derived quantities and draws where it has them.
Every method also reports the two-sample distance between the real observations and as many
simulated at the final estimate: the Kolmogorov–Smirnov statistic per observation coordinate,
averaged over coordinates. ALFI's own evaluation: :mod:`alfi.evaluate_alfi`.
"""

from __future__ import annotations

import numbers
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from alfi.data import probe_simulation
from alfi.io import InputError, MetaDataset, check_dataset
from alfi.simulators import Simulator

__all__ = [
    "Trajectory",
    "check_run_inputs",
    "simulate_at",
    "point_trajectory",
    "run_mle",
    "run_prior",
    "ks_distance",
    "truth_quantiles",
]


@dataclass
class Trajectory:
    """Estimates along the iterations for ``N`` problems.

    ``estimate``, ``sigma``: ``(T + 1, N, D)`` (``sigma`` NaN for the MLE); ``derived``: name to
    ``(T + 1, N)``; ``final_x``: observations simulated at the final estimate ``(N, M_r, X)``;
    ``draws``: ``(N, S, D)`` draws from the method's final distribution over ``theta`` (raw units;
    ``None`` for a point estimate); ``seconds_per_problem``: test-time wall clock per problem.
    """

    estimate: Tensor
    sigma: Tensor
    derived: dict[str, Tensor]
    final_x: Tensor
    simulations_per_problem: int
    draws: Tensor | None = None
    seconds_per_problem: float = float("nan")


def ks_distance(a: Tensor, b: Tensor) -> Tensor:
    r"""Two-sample KS statistic per batch element, averaged over coordinates.

    ``a`` ``(*, n, X)``, ``b`` ``(*, m, X)`` to ``(*)``:
    :math:`\sup_x |F_a(x) - F_b(x)|`, evaluated at every pooled sample point.
    """
    a_sorted = a.transpose(-1, -2).contiguous().sort(-1).values  # (*, X, n)
    b_sorted = b.transpose(-1, -2).contiguous().sort(-1).values
    pooled = torch.cat((a_sorted, b_sorted), -1)
    cdf_a = torch.searchsorted(a_sorted, pooled, right=True) / a_sorted.shape[-1]
    cdf_b = torch.searchsorted(b_sorted, pooled, right=True) / b_sorted.shape[-1]
    return (cdf_a - cdf_b).abs().amax(-1).mean(-1)


def simulate_at(simulator: Simulator, theta: Tensor, n: int, generator) -> Tensor:
    """``n`` observations ``(N, n, X)`` simulated at ``theta`` ``(N, D)`` clamped to the prior."""
    return simulator.simulate(simulator.clamp(theta), n, generator)


def check_run_inputs(simulator: Simulator, data: MetaDataset, **counts: int) -> None:
    """Before any work: ``data`` made by ``simulator``, every count in ``counts`` (``inits``,
    ``n_theta``, ...) at least 1, and, given ``n_sim``, one small batched simulation
    (:func:`alfi.data.probe_simulation`)."""
    check_dataset(data, simulator, f"the test meta-dataset given for {simulator.name!r}")
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise InputError(f"{name}={value!r}: expected an integer >= 1")
    if "n_sim" in counts:
        probe_simulation(simulator, counts["n_sim"])


def point_trajectory(
    simulator: Simulator,
    data: MetaDataset,
    estimate: Tensor,
    generator: torch.Generator,
    *,
    start: float,
    sigma: Tensor | None = None,
    draws: Tensor | None = None,
    derived: dict[str, Tensor] | None = None,
    simulations_per_problem: int = 0,
) -> Trajectory:
    """A one-point trajectory ``(1, N, D)`` from a final ``estimate`` ``(N, D)`` (and a spread
    ``sigma``, NaN by default): observations are simulated at it for the KS distance, derived
    quantities taken at it unless given ``(N,)``, the time per problem counted from ``start``
    (a :func:`time.perf_counter` reading)."""
    final_x = simulate_at(simulator, estimate, data.x.shape[1], generator)
    derived = simulator.derived(estimate) if derived is None else derived
    return Trajectory(
        estimate=estimate.unsqueeze(0).cpu(),
        sigma=(torch.full_like(estimate, float("nan")) if sigma is None else sigma)
        .unsqueeze(0)
        .cpu(),
        derived={k: v.unsqueeze(0).cpu() for k, v in derived.items()},
        final_x=final_x.cpu(),
        simulations_per_problem=simulations_per_problem,
        draws=None if draws is None else draws.cpu(),
        seconds_per_problem=(time.perf_counter() - start) / max(len(data), 1),
    )


@torch.no_grad()
def run_mle(simulator: Simulator, data: MetaDataset, generator: torch.Generator) -> Trajectory:
    """The exact MLE of every problem, as a one-point trajectory ``(1, N, D)``."""
    check_run_inputs(simulator, data)
    start = time.perf_counter()
    estimate = simulator.mle(data.x.to(generator.device)).float()
    return point_trajectory(simulator, data, estimate, generator, start=start)


@torch.no_grad()
def run_prior(
    simulator: Simulator, data: MetaDataset, generator: torch.Generator, draws: int = 0
) -> Trajectory:
    """The negative control: the prior itself (its mean, standard deviation and ``draws``
    draws, :meth:`~alfi.simulators.Simulator.prior_moments`), whatever the data; no simulations.
    """
    check_run_inputs(simulator, data)
    start = time.perf_counter()
    n = len(data)
    mean, std = simulator.prior_moments(generator.device)
    samples = simulator.sample_prior((n, draws), generator).float() if draws else None
    return point_trajectory(
        simulator,
        data,
        mean.expand(n, -1).float(),
        generator,
        start=start,
        sigma=std.expand(n, -1).float(),
        draws=samples,
    )


def truth_quantiles(simulator: Simulator, draws: Tensor | None, true: Tensor) -> np.ndarray:
    """Fraction of ``draws`` ``(N, S, D)`` below ``true`` ``(N, D)`` per parameter, then per
    derived quantity (of the draws), ``(N, D + derived)``; all NaN without draws."""
    n_derived = len(simulator.derived(true[:1]))
    if draws is None:
        return np.full((true.shape[0], true.shape[1] + n_derived), np.nan)
    draws = draws.double()
    below = [(draws < true.unsqueeze(1)).double().mean(1)]
    derived_true = simulator.derived(true)
    for name, value in simulator.derived(draws).items():
        below.append((value < derived_true[name].unsqueeze(1)).double().mean(1, keepdim=True))
    return torch.cat(below, -1).numpy()
