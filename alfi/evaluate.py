r"""Evaluation of a trained machine and of the MLE on a test meta-dataset.

ALFI: every test problem is run for ``T_test`` updates from ``K`` random initial proposals
(Appendix A "marginalisation"), all ``N * K`` unrolls batched (in chunks that bound memory). At
every step :math:`t` the estimate is the mean over inits of the proposal means (raw units)

.. math:: \hat\theta_t = \frac1K \sum_k \mu_{t,k}, \qquad
          \hat\sigma_t^2 = \frac1K \sum_k \big(\sigma_{t,k}^2 + (\mu_{t,k} - \hat\theta_t)^2\big),

the mean and variance of the equal mixture of the K proposals. Derived, identifiable quantities
(Weinberg's asymmetry) are averaged over inits the same way.

Both methods also report the two-sample distance between the real observations and as many
simulated at the final estimate: the Kolmogorov–Smirnov statistic per observation coordinate,
averaged over coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from alfi import proposal
from alfi.io import MetaDataset
from alfi.model import ALFI
from alfi.simulators import Simulator

__all__ = ["Trajectory", "run_alfi", "run_mle", "ks_distance"]


@dataclass
class Trajectory:
    """Estimates along the iterations for ``N`` problems.

    ``estimate``, ``sigma``: ``(T + 1, N, D)`` (``sigma`` NaN for the MLE); ``derived``: name to
    ``(T + 1, N)``; ``final_x``: observations simulated at the final estimate ``(N, M_r, X)``.
    """

    estimate: Tensor
    sigma: Tensor
    derived: dict[str, Tensor]
    final_x: Tensor
    simulations_per_problem: int


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


def _simulate_at(simulator: Simulator, theta: Tensor, n: int, generator) -> Tensor:
    return simulator.simulate(simulator.clamp(theta), n, generator)


@torch.no_grad()
def run_alfi(
    model: ALFI,
    simulator: Simulator,
    data: MetaDataset,
    steps: int,
    inits: int,
    n_theta: int,
    n_sim: int,
    generator: torch.Generator,
    initial_log_scale: float = 0.5,
    chunk: int = 4096,
) -> Trajectory:
    """Run ALFI on every problem of ``data`` from ``inits`` initial proposals each.

    ``chunk`` caps the number of (problem, init) unrolls processed together.
    """
    device = generator.device
    n, d = len(data), simulator.theta_dim
    x_real = data.x.to(device)
    problems_per_chunk = max(1, chunk // inits)
    means, variances, derived = [], [], {}
    for rows in torch.arange(n, device=device).split(problems_per_chunk):
        real_code = model.encode(simulator, x_real[rows]).repeat_interleave(inits, dim=0)
        psi = proposal.initial((rows.numel() * inits,), d, generator, initial_log_scale)
        trajectory = model.unroll_codes(simulator, real_code, psi, steps, n_theta, n_sim, generator)
        mean, log_scale = proposal.split(trajectory)  # (T + 1, rows * K, D)
        mean_raw = model.raw_theta(mean).unflatten(1, (rows.numel(), inits))
        scale_raw = (log_scale.exp() * model.theta_std).unflatten(1, (rows.numel(), inits))
        estimate = mean_raw.mean(2)
        means.append(estimate)
        spread = (mean_raw - estimate.unsqueeze(2)) ** 2
        variances.append((scale_raw**2 + spread).mean(2))
        for name, value in simulator.derived(mean_raw).items():
            derived.setdefault(name, []).append(value.mean(2))
    estimate = torch.cat(means, 1)
    final_x = _simulate_at(simulator, estimate[-1], data.x.shape[1], generator)
    return Trajectory(
        estimate=estimate.cpu(),
        sigma=torch.cat(variances, 1).sqrt().cpu(),
        derived={k: torch.cat(v, 1).cpu() for k, v in derived.items()},
        final_x=final_x.cpu(),
        simulations_per_problem=inits * steps * n_theta * n_sim,
    )


@torch.no_grad()
def run_mle(simulator: Simulator, data: MetaDataset, generator: torch.Generator) -> Trajectory:
    """The exact MLE of every problem, as a one-point trajectory ``(1, N, D)``."""
    device = generator.device
    estimate = simulator.mle(data.x.to(device)).float()
    final_x = _simulate_at(simulator, estimate, data.x.shape[1], generator)
    derived = {k: v.unsqueeze(0).cpu() for k, v in simulator.derived(estimate).items()}
    return Trajectory(
        estimate=estimate.unsqueeze(0).cpu(),
        sigma=torch.full((1, *estimate.shape), float("nan")),
        derived=derived,
        final_x=final_x.cpu(),
        simulations_per_problem=0,
    )
