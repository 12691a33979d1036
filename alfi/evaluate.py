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

import numbers
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from alfi import proposal
from alfi.data import probe_simulation
from alfi.io import InputError, MetaDataset, check_dataset
from alfi.model import ALFI
from alfi.simulators import Simulator

__all__ = [
    "Trajectory",
    "check_run_inputs",
    "run_alfi",
    "run_alfi_horizons",
    "unroll_inits",
    "run_mle",
    "run_prior",
    "mixture_draws",
    "training_cost",
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


def _simulate_at(simulator: Simulator, theta: Tensor, n: int, generator) -> Tensor:
    return simulator.simulate(simulator.clamp(theta), n, generator)


def check_run_inputs(
    model: ALFI | None, simulator: Simulator, data: MetaDataset, **counts: int
) -> None:
    """Before any work: ``data`` made by ``simulator``, ``model`` (if any) built for its
    ``D`` and ``X``, every count in ``counts`` (``inits``, ``n_theta``, ...) at least 1, and,
    given ``n_sim``, one small batched simulation (:func:`alfi.data.probe_simulation`)."""
    check_dataset(data, simulator, f"the test meta-dataset given for {simulator.name!r}")
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise InputError(f"{name}={value!r}: expected an integer >= 1")
    if "n_sim" in counts:
        probe_simulation(simulator, counts["n_sim"])
    if model is not None:
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
    check_run_inputs(model, simulator, data, inits=inits, n_theta=n_theta, n_sim=n_sim)
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
        final_x = _simulate_at(simulator, estimate[h], data.x.shape[1], generator)
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
    final_x = _simulate_at(simulator, estimate, data.x.shape[1], generator)
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
    check_run_inputs(None, simulator, data)
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
    check_run_inputs(None, simulator, data)
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


def training_cost(state: dict[str, Any]) -> dict[str, float]:
    """Observations simulated for a trained model's meta-training and its wall clock (of the last
    process that trained it: a resumed run counts from its resumption), from the state
    :func:`alfi.checkpoints.save_model` writes.

    The stored training meta-dataset (problems x real observations, as NPE and the regressor
    count it: ALFI reads it too, at least for the observations' standardisation), plus steps x
    meta-batch x unroll x B x M, plus steps x meta-batch x the real observations per problem
    where ``fresh_real`` or ``fresh_problems`` draws them anew. Here rather than in the CLI so
    that the evaluation's provenance covers it (editing it reruns the evaluations)."""
    from alfi.schedule import unroll_length

    tr, last = state["settings"]["train"], (state.get("history") or [{}])[-1]
    dataset = state["settings"]["dataset"]
    per_step = unroll_length(tr) * tr["n_theta"] * tr["n_sim"]
    if tr.get("fresh_real", False) or tr.get("fresh_problems", False):
        per_step += dataset["n_real"]
    steps = last.get("step", 0)
    stored = dataset["n_train"] * dataset["n_real"]
    return {
        "train_simulations": float(stored + steps * tr["meta_batch"] * per_step),
        "train_seconds": float(last.get("seconds", float("nan"))),
    }


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
