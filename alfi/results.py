"""Tidy result tables (Parquet) and their schema.

``estimates`` — one row per (simulator, method, variant, seed, problem, t_test, t, parameter):

==============  ==========================================================================
simulator       simulator name
method          ``alfi``, ``mle``, or a baseline (:data:`alfi.columns.BASELINES`)
variant         ``LOSS-WEIGHTING`` for ALFI (e.g. ``nll-exp``), ``exact`` for the MLE and the
                exact posterior, the method's name for the other baselines
seed            training seed (0 for the untrained methods)
problem         index of the test problem
t_test          number of ALFI updates run at test time (0 for every other method)
t               iteration, 0 (initial proposal) to ``t_test``; 0 for the other methods
parameter       a parameter name, or a derived identifiable quantity (Weinberg ``asymmetry``)
derived         True for derived quantities (left out of the RMSE over parameters)
true            the value that generated the problem
estimate        mean over inits of the proposal mean (ALFI), the MLE, a posterior mean (NPE,
                the exact posterior, the prior) or the regressor's output; raw units
sigma           std of the mixture of the K final proposals, the posterior std (NaN for point
                estimates and derived rows)
truth_quantile  at the final step of a method with draws: the fraction of its draws below
                ``true`` (the truth's posterior CDF; uniform on [0, 1] when calibrated, and the
                truth lies in the central interval of level a iff |quantile - 1/2| <= a/2);
                NaN elsewhere
fingerprint     digest of everything the row depends on (model, data, settings, code;
                see :mod:`alfi.provenance`)
==============  ==========================================================================

``metrics`` — one row per (…, problem, t_test, metric): ``ks_distance`` (real observations vs as
many simulated at the final estimate), ``simulations`` (simulated observations spent on the
problem at test time), ``seconds`` (test wall clock per problem), ``train_simulations`` and
``train_seconds`` (spent once in training, repeated on every problem; 0 for the untrained
methods), and ``c2st`` (classifier two-sample accuracy of the method's draws against the exact
posterior's, :func:`alfi.calibration.c2st`; on the first problems only).

``samples`` — real and simulated observations of the first few problems, for histograms:
(…, problem, t_test, source ∈ {real, simulated}, coordinate, value).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from alfi.columns import ESTIMATE_COLUMNS, METRIC_COLUMNS, SAMPLE_COLUMNS
from alfi.io import read_parquet

if TYPE_CHECKING:  # torch only to write tables (trajectory_tables), never to read them
    from alfi.evaluate import Trajectory
    from alfi.io import MetaDataset
    from alfi.simulators import Simulator

__all__ = [
    "ESTIMATE_COLUMNS",
    "METRIC_COLUMNS",
    "SAMPLE_COLUMNS",
    "TABLE_COLUMNS",
    "read_results",
    "trajectory_tables",
]

#: The tables and their columns, as ``alfi aggregate`` writes them under the results folder.
TABLE_COLUMNS = {
    "estimates": ESTIMATE_COLUMNS,
    "metrics": METRIC_COLUMNS,
    "samples": SAMPLE_COLUMNS,
}


def read_results(folder: str | Path = "results") -> dict[str, pd.DataFrame]:
    """The workflow's aggregated tables, ``{name: frame}`` for ``estimates``, ``metrics`` and
    ``samples`` (``FOLDER/NAME.parquet``), each checked for its columns; pandas only, no torch.
    :mod:`alfi.metrics` turns them into numbers (e.g. :func:`alfi.metrics.final_rmse`).

    Raises :class:`alfi.io.InputError` naming a missing file or column.
    """
    return {
        name: read_parquet(Path(folder) / f"{name}.parquet", columns=columns)
        for name, columns in TABLE_COLUMNS.items()
    }


def _estimate_rows(
    names, n_params, true, estimate, sigma, t_values, quantile
) -> dict[str, np.ndarray]:
    """Flatten ``estimate``/``sigma`` ``(T1, N, P)``, ``true`` and ``quantile`` ``(N, P)`` (the
    final step's; NaN before it) into columns."""
    t1, n, p = estimate.shape
    quantiles = np.full((t1, n, p), np.nan)
    quantiles[-1] = quantile
    return {
        "problem": np.broadcast_to(np.arange(n)[None, :, None], (t1, n, p)).ravel(),
        "t": np.broadcast_to(t_values[:, None, None], (t1, n, p)).ravel(),
        "parameter": np.broadcast_to(np.asarray(names, dtype=object), (t1, n, p)).ravel(),
        "derived": np.broadcast_to(np.arange(p) >= n_params, (t1, n, p)).ravel(),
        "true": np.broadcast_to(true[None], (t1, n, p)).ravel(),
        "estimate": estimate.ravel(),
        "sigma": sigma.ravel(),
        "truth_quantile": quantiles.ravel(),
    }


def trajectory_tables(
    simulator: Simulator,
    trajectory: Trajectory,
    data: MetaDataset,
    *,
    method: str,
    variant: str,
    seed: int,
    t_test: int,
    fingerprint: str,
    histograms: int,
    training: dict[str, float] | None = None,
    c2st: np.ndarray | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The ``estimates``, ``metrics`` and ``samples`` tables of one evaluated run.

    ``training``: ``train_simulations`` and ``train_seconds`` (default 0: nothing trained);
    ``c2st``: ``(n_c2st,)`` C2ST accuracies of the first problems, if computed.
    """
    from alfi.evaluate import ks_distance, truth_quantiles  # torch, needed only to write tables

    keys = {
        "simulator": simulator.name,
        "method": method,
        "variant": variant,
        "seed": seed,
        "t_test": t_test,
    }
    t1 = trajectory.estimate.shape[0]
    t_values = np.arange(t1)
    names = list(simulator.parameter_names)
    estimate = trajectory.estimate.double().numpy()
    sigma = trajectory.sigma.double().numpy()
    true = data.theta.double().numpy()
    derived_true = simulator.derived(data.theta.double())
    if trajectory.derived:
        names += list(trajectory.derived)
        estimate = np.concatenate(
            [estimate, *(v.double().numpy()[..., None] for v in trajectory.derived.values())], -1
        )
        sigma = np.concatenate(
            [sigma, np.full((*sigma.shape[:2], len(trajectory.derived)), np.nan)], -1
        )
        true = np.concatenate(
            [true, *(derived_true[k].numpy()[:, None] for k in trajectory.derived)], -1
        )
    quantile = truth_quantiles(simulator, trajectory.draws, data.theta.double())
    estimates = pd.DataFrame(
        _estimate_rows(names, simulator.theta_dim, true, estimate, sigma, t_values, quantile)
    )
    estimates = estimates.assign(**keys, fingerprint=fingerprint)[ESTIMATE_COLUMNS]

    n = len(data)
    training = {"train_simulations": 0.0, "train_seconds": 0.0, **(training or {})}
    per_problem = {
        "ks_distance": ks_distance(data.x.double(), trajectory.final_x.double()).numpy(),
        "simulations": np.full(n, float(trajectory.simulations_per_problem)),
        "seconds": np.full(n, trajectory.seconds_per_problem),
        **{name: np.full(n, float(value)) for name, value in training.items()},
    }
    if c2st is not None:
        per_problem["c2st"] = np.asarray(c2st, dtype=float)
    metrics = pd.DataFrame(
        {
            "problem": np.concatenate([np.arange(len(v)) for v in per_problem.values()]),
            "metric": np.repeat(list(per_problem), [len(v) for v in per_problem.values()]),
            "value": np.concatenate(list(per_problem.values())),
        }
    ).assign(**keys, fingerprint=fingerprint)[METRIC_COLUMNS]

    shown = min(histograms, n)
    frames = []
    for source, x in (("real", data.x[:shown]), ("simulated", trajectory.final_x[:shown])):
        values = x.double().numpy()  # (shown, M, X)
        s, m, dims = values.shape
        frames.append(
            pd.DataFrame(
                {
                    "problem": np.repeat(np.arange(s), m * dims),
                    "source": source,
                    "coordinate": np.tile(np.arange(dims), s * m),
                    "value": values.ravel(),
                }
            )
        )
    samples = pd.concat(frames, ignore_index=True).assign(**keys)[SAMPLE_COLUMNS]
    for frame in (estimates, metrics, samples):
        frame["seed"] = frame["seed"].astype("int64")
        frame["t_test"] = frame["t_test"].astype("int64")
    return estimates, metrics, samples
