r"""Evaluation of ALFI on a test meta-dataset (the ``evaluate`` stage).

Every test problem is run for ``T_test`` updates from ``K`` random initial proposals (Appendix A
"marginalisation"), all ``N * K`` unrolls batched (in chunks that bound memory). At every step
:math:`t` the estimate is the mean over inits of the proposal means (raw units)

.. math:: \hat\theta_t = \frac1K \sum_k \mu_{t,k}, \qquad
          \hat\sigma_t^2 = \frac1K \sum_k \big(\sigma_{t,k}^2 + (\mu_{t,k} - \hat\theta_t)^2\big),

the mean and variance of the equal mixture of the K proposals. Derived, identifiable quantities
(Weinberg's asymmetry) are averaged over inits the same way. What every method's evaluation
shares (the trajectory, the KS distance, the MLE): :mod:`alfi.evaluate`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from alfi import proposal
from alfi.evaluate import Trajectory, check_run_inputs, simulate_at
from alfi.io import InputError, MetaDataset
from alfi.model import ALFI
from alfi.simulators import Simulator

__all__ = [
    "run_alfi",
    "run_alfi_horizons",
    "unroll_inits",
    "mixture_draws",
    "check_model",
    "training_cost",
]


def check_model(model: ALFI, simulator: Simulator) -> None:
    """Before any work: ``model`` built for ``simulator``'s ``D`` and ``X``."""
    built = (model.config.theta_dim, model.config.observation_dim)
    if built != (simulator.theta_dim, simulator.observation_dim):
        raise InputError(
            f"the model was built for D={built[0]}, X={built[1]}; {simulator.name!r} has "
            f"D={simulator.theta_dim}, X={simulator.observation_dim} (a model of another "
            "simulator?)"
        )


@torch.no_grad()
def run_alfi(
    model: ALFI,
    simulator: Simulator,
    data: MetaDataset,
    *,
    steps: int,
    inits: int,
    n_theta: int,
    n_sim: int,
    generator: torch.Generator,
    initial_log_scale: float = 0.5,
    chunk: int = 4096,
    draws: int = 0,
) -> Trajectory:
    """Run ALFI for ``steps`` updates on every problem of ``data`` from ``inits`` initial proposals
    each, drawing ``n_theta`` parameters and ``n_sim`` observations of each per update (the
    ``B``, ``M`` the model was trained with), all on ``generator``'s device.

    ``chunk`` caps the number of (problem, init) unrolls processed together. ``draws`` samples
    are drawn per problem from the final proposal mixture (:func:`mixture_draws`), after every
    other random draw, so they leave the estimates unchanged.
    """
    (trajectory,) = run_alfi_horizons(
        model,
        simulator,
        data,
        horizons=[steps],
        inits=inits,
        n_theta=n_theta,
        n_sim=n_sim,
        generator=generator,
        initial_log_scale=initial_log_scale,
        chunk=chunk,
        draws=draws,
    ).values()
    return trajectory


@torch.no_grad()
def unroll_inits(
    model: ALFI,
    simulator: Simulator,
    x_real: Tensor,
    *,
    steps: int,
    inits: int,
    n_theta: int,
    n_sim: int,
    generator: torch.Generator,
    initial_log_scale: float = 0.5,
) -> tuple[Tensor, Tensor]:
    """``inits`` unrolls of ``steps`` updates for each of the ``N`` problems of the raw real data
    ``x_real`` ``(N, M_r, X)``, from random initial proposals: every proposal's mean and scale in
    raw units, each ``(T + 1, N, K, D)``. The real data are encoded once per problem."""
    n = x_real.shape[0]
    real_code = model.encode(simulator, x_real).repeat_interleave(inits, dim=0)
    psi = proposal.initial((n * inits,), simulator.theta_dim, generator, initial_log_scale)
    trajectory = model.unroll_codes(
        simulator,
        real_code,
        psi,
        steps=steps,
        n_theta=n_theta,
        n_sim=n_sim,
        generator=generator,
    )
    mean, log_scale = proposal.split(trajectory)  # (T + 1, N * K, D)
    mean_raw = model.raw_theta(mean).unflatten(1, (n, inits))
    return mean_raw, (log_scale.exp() * model.theta_std).unflatten(1, (n, inits))


@torch.no_grad()
def run_alfi_horizons(
    model: ALFI,
    simulator: Simulator,
    data: MetaDataset,
    *,
    horizons: Sequence[int],
    inits: int,
    n_theta: int,
    n_sim: int,
    generator: torch.Generator,
    initial_log_scale: float = 0.5,
    chunk: int = 4096,
    draws: int = 0,
) -> dict[int, Trajectory]:
    """:func:`run_alfi` stopped at each of ``horizons`` (``T_test`` values), from one unroll of
    ``max(horizons)`` updates: the trajectory to ``T`` is the first ``T`` updates of it, so the
    horizons are compared on the same initial proposals and draws, at the cost of the longest.

    After the unroll, for each horizon in increasing order, observations are simulated at its
    estimate and ``draws`` samples drawn from its proposal mixture. The test-time seconds per
    problem of horizon ``T`` are the unroll's share ``T / max(horizons)`` of the whole.
    """
    horizons = sorted(set(int(h) for h in horizons))
    if not horizons or horizons[0] < 1:
        raise ValueError(f"horizons must be >= 1, got {horizons}")
    check_run_inputs(simulator, data, inits=inits, n_theta=n_theta, n_sim=n_sim)
    check_model(model, simulator)
    start = time.perf_counter()
    device = generator.device
    n, steps = len(data), horizons[-1]
    x_real = data.x.to(device)
    problems_per_chunk = max(1, chunk // inits)
    means, variances, derived, finals = [], [], {}, {h: [] for h in horizons}
    for rows in torch.arange(n, device=device).split(problems_per_chunk):
        mean_raw, scale_raw = unroll_inits(
            model,
            simulator,
            x_real[rows],
            steps=steps,
            inits=inits,
            n_theta=n_theta,
            n_sim=n_sim,
            generator=generator,
            initial_log_scale=initial_log_scale,
        )
        estimate = mean_raw.mean(2)
        means.append(estimate)
        spread = (mean_raw - estimate.unsqueeze(2)) ** 2
        variances.append((scale_raw**2 + spread).mean(2))
        for h in horizons:
            finals[h].append((mean_raw[h], scale_raw[h]))
        for name, value in simulator.derived(mean_raw).items():
            derived.setdefault(name, []).append(value.mean(2))
    estimate = torch.cat(means, 1)
    sigma = torch.cat(variances, 1).sqrt().cpu()
    derived_all = {k: torch.cat(v, 1).cpu() for k, v in derived.items()}
    seconds = (time.perf_counter() - start) / max(n, 1)
    out = {}
    for h in horizons:
        final_x = simulate_at(simulator, estimate[h], data.x.shape[1], generator)
        samples = None
        if draws:
            final_mean, final_scale = (torch.cat(parts) for parts in zip(*finals[h], strict=True))
            samples = mixture_draws(final_mean, final_scale, draws, generator).cpu()
        out[h] = Trajectory(
            estimate=estimate[: h + 1].cpu(),
            sigma=sigma[: h + 1],
            derived={k: v[: h + 1] for k, v in derived_all.items()},
            final_x=final_x.cpu(),
            simulations_per_problem=inits * h * n_theta * n_sim,
            draws=samples,
            seconds_per_problem=seconds * h / steps,
        )
    return out


def mixture_draws(mean: Tensor, scale: Tensor, n: int, generator: torch.Generator) -> Tensor:
    r"""``n`` draws per problem from the equal mixture :math:`\frac1K \sum_k N(\mu_k,
    \operatorname{diag} \sigma_k^2)`: ``mean``, ``scale`` ``(N, K, D)`` to ``(N, n, D)``."""
    rows, k, _ = mean.shape
    pick = torch.randint(k, (rows, n), generator=generator, device=mean.device)
    index = pick.unsqueeze(-1).expand(-1, -1, mean.shape[-1])
    noise = torch.randn(
        (rows, n, mean.shape[-1]), generator=generator, device=mean.device, dtype=mean.dtype
    )
    return mean.gather(1, index) + scale.gather(1, index) * noise


def training_cost(state: dict[str, Any]) -> dict[str, float]:
    """Observations simulated for a trained model's meta-training and its wall clock (of the last
    process that trained it: a resumed run counts from its resumption), from the state
    :func:`alfi.checkpoints.save_model` writes.

    The stored training meta-dataset (problems x real observations, as NPE and the regressor
    count it: ALFI reads it too, at least for the observations' standardisation), plus steps x
    meta-batch x unroll x B x M (each step's unroll: :func:`alfi.schedule.unrolled_updates`),
    plus steps x meta-batch x the real observations per problem where ``fresh_real`` or
    ``fresh_problems`` draws them anew."""
    from alfi.schedule import total_steps, unrolled_updates

    tr, last = state["settings"]["train"], (state.get("history") or [{}])[-1]
    dataset = state["settings"]["dataset"]
    steps = last.get("step", 0)
    total = total_steps(state["settings"], dataset["n_train"])[1]
    per_problem = unrolled_updates(tr, steps, total) * tr["n_theta"] * tr["n_sim"]
    if tr.get("fresh_real", False) or tr.get("fresh_problems", False):
        per_problem += steps * dataset["n_real"]
    stored = dataset["n_train"] * dataset["n_real"]
    return {
        "train_simulations": float(stored + tr["meta_batch"] * per_problem),
        "train_seconds": float(last.get("seconds", float("nan"))),
    }
