r"""Sequential Monte Carlo ABC per test problem: sbi's ``SMCABC`` (Beaumont et al. 2009).

Why sbi's and not pyabc's: it is already our NPE's library (one optional dependency, not a
second with its own database and scheduler), it takes batched torch simulators as they are, and
it counts simulations against a hard budget, which is what a matched-budget comparison needs.

**Summary statistics** :math:`s(X)` of a problem's ``M`` observations, per coordinate of the
preprocessed and squashed (``baselines.abc_smc.squash``, asinh by default) observations
:math:`z_j`: the mean, the
standard deviation, the minimum and the maximum, so :math:`4X` numbers. They are the sufficient
statistics of the Poisson (mean), Gaussian (mean, sd) and uniform (max) parts of the toy
simulators, and a generic description otherwise. They are standardised by their spread under the
prior predictive, estimated from ``pilot`` prior simulations, which count against the budget.

**Budget.** ``budget`` simulated observations per problem, i.e. ``budget // M`` datasets of
``M``. The pilot (``pilot_fraction`` of one problem's datasets) runs once for the ``n``
problems, so each is charged ``pilot / n`` datasets of it; SMC-ABC, run afresh for each problem
(its own sampler: sbi's counts simulations across calls), gets the rest (its initial population
half of that, ``particles`` per population, :math:`\epsilon` set by the previous population's
distances with ``epsilon_decay``). What each problem spent is counted as it is simulated and
reported (the mean over problems), not assumed from the budget. The result is the last
population's particles, resampled by their importance weights, as draws (``draws``, at least
1000 for the moments).
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
from torch import Tensor

from alfi.evaluate import Trajectory, point_trajectory
from alfi.io import MetaDataset
from alfi.model import squash
from alfi.seeds import derive_seed
from alfi.simulators import Simulator

__all__ = ["summary_statistics", "run_abc"]


def summary_statistics(simulator: Simulator, x: Tensor, squash_kind: str = "none") -> Tensor:
    """Mean, sd, min and max per preprocessed coordinate: ``(*, M, X)`` to ``(*, 4X)``."""
    z = squash(simulator.preprocess(x), squash_kind)
    return torch.cat((z.mean(-2), z.std(-2), z.amin(-2), z.amax(-2)), -1)


def run_abc(
    simulator: Simulator,
    data: MetaDataset,
    generator: torch.Generator,
    *,
    settings: dict[str, Any],
    budget: int,
    problems: int,
    seed: int,
    draws: int = 0,
) -> Trajectory:
    """SMC-ABC on the first ``problems`` problems of ``data`` with ``budget`` simulated
    observations each; estimate and spread: the mean and sd of the final particles."""
    from sbi.inference import SMCABC
    from sbi.utils import BoxUniform

    cfg = settings["baselines"]["abc_smc"]
    start = time.perf_counter()
    device = generator.device
    n_obs = data.x.shape[1]
    squash_kind = cfg["squash"]
    n = min(problems, len(data))
    datasets = budget // n_obs
    pilot = max(2, math.ceil(cfg["pilot_fraction"] * datasets))
    per_problem = datasets - math.ceil(pilot / n)  # SMC's share once the pilot is charged
    if per_problem < 2 * cfg["particles"]:
        raise ValueError(
            f"abc_smc budget {budget} is {datasets} datasets of {n_obs}: fewer than the pilot's "
            f"share ({datasets - per_problem}) plus twice baselines.abc_smc.particles "
            f"({cfg['particles']}); raise it"
        )
    simulated = [0]  # datasets, counted where they are drawn

    def statistics(theta: Tensor) -> Tensor:
        simulated[0] += theta.shape[0]
        x = simulator.simulate(simulator.clamp(theta.to(device)), n_obs, generator)
        return summary_statistics(simulator, x, squash_kind).float()

    prior_draws = simulator.sample_prior((pilot,), generator)
    scale = statistics(prior_draws).std(0).clamp_min(1e-6)
    low, high = simulator.bounds(device)
    prior = BoxUniform(low.float(), high.float(), device=device.type)

    observed = summary_statistics(simulator, data.x[:n].to(device), squash_kind).float() / scale
    samples, spent = [], []
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(derive_seed(seed, "abc_smc", simulator.name, budget))
        for row in observed:  # sbi's SMC-ABC runs one observation at a time
            smc = SMCABC(
                lambda theta: statistics(theta) / scale,
                prior,
                distance="l2",
                simulation_batch_size=datasets,
                show_progress_bars=False,
            )
            simulated[0] = 0
            particles, summary = smc(
                row.unsqueeze(0),
                num_particles=cfg["particles"],
                num_initial_pop=per_problem // 2,
                num_simulations=per_problem,
                epsilon_decay=cfg["epsilon_decay"],
                distance_based_decay=True,
                return_summary=True,
            )
            spent.append(simulated[0] + pilot / n)
            weights = summary["weights"][-1].exp().flatten()
            pick = torch.multinomial(weights / weights.sum(), max(draws, 1000), replacement=True)
            samples.append(particles[pick])
    theta = torch.stack(samples).to(device)  # (n, S, D)
    return point_trajectory(
        simulator,
        data.head(n),
        theta.mean(1),
        generator,
        start=start,
        sigma=theta.std(1),
        draws=theta[:, :draws] if draws else None,
        derived={k: v.mean(1) for k, v in simulator.derived(theta).items()},
        simulations_per_problem=round(sum(spent) / n * n_obs),
    )
