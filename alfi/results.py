"""Tidy result tables (Parquet) and their schema.

``estimates`` — one row per (simulator, method, variant, seed, problem, t_test, t, parameter):

==============  ==========================================================================
simulator       simulator name
method          ``alfi`` or ``mle``
variant         ``LOSS-WEIGHTING`` for ALFI (e.g. ``nll-exp``), ``exact`` for the MLE
seed            training seed (0 for the MLE)
problem         index of the test problem
t_test          number of ALFI updates run at test time (0 for the MLE)
t               iteration, 0 (initial proposal) to ``t_test``; 0 for the MLE
parameter       a parameter name, or a derived identifiable quantity (Weinberg ``asymmetry``)
derived         True for derived quantities (left out of the RMSE over parameters)
true            the value that generated the problem
estimate        mean over inits of the proposal mean (ALFI) / the MLE, raw units
sigma           std of the mixture of the K final proposals (NaN for the MLE and derived rows)
fingerprint     digest of everything the row depends on (model, data, settings, code;
                see :mod:`alfi.provenance`)
==============  ==========================================================================

``metrics`` — one row per (…, problem, t_test, metric): ``ks_distance`` (real observations vs as
many simulated at the final estimate) and ``simulations`` (simulated observations per problem).

``samples`` — real and simulated observations of the first few problems, for histograms:
(…, problem, t_test, source ∈ {real, simulated}, coordinate, value).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from alfi.columns import ESTIMATE_COLUMNS, METRIC_COLUMNS, SAMPLE_COLUMNS
from alfi.evaluate import Trajectory, ks_distance
from alfi.io import MetaDataset
from alfi.simulators import Simulator

__all__ = ["ESTIMATE_COLUMNS", "METRIC_COLUMNS", "SAMPLE_COLUMNS", "trajectory_tables"]


def _estimate_rows(names, n_params, true, estimate, sigma, t_values) -> dict[str, np.ndarray]:
    """Flatten ``estimate``/``sigma`` ``(T1, N, P)`` and ``true`` ``(N, P)`` into columns."""
    t1, n, p = estimate.shape
    return {
        "problem": np.broadcast_to(np.arange(n)[None, :, None], (t1, n, p)).ravel(),
        "t": np.broadcast_to(t_values[:, None, None], (t1, n, p)).ravel(),
        "parameter": np.broadcast_to(np.asarray(names, dtype=object), (t1, n, p)).ravel(),
        "derived": np.broadcast_to(np.arange(p) >= n_params, (t1, n, p)).ravel(),
        "true": np.broadcast_to(true[None], (t1, n, p)).ravel(),
        "estimate": estimate.ravel(),
        "sigma": sigma.ravel(),
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
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The ``estimates``, ``metrics`` and ``samples`` tables of one evaluated run."""
    keys = {
        "simulator": simulator.name,
        "method": method,
        "variant": variant,
        "seed": seed,
        "t_test": t_test,
    }
    t1 = trajectory.estimate.shape[0]
    t_values = np.arange(t1) if method == "alfi" else np.zeros(1, dtype=np.int64)
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
    estimates = pd.DataFrame(
        _estimate_rows(names, simulator.theta_dim, true, estimate, sigma, t_values)
    )
    estimates = estimates.assign(**keys, fingerprint=fingerprint)[ESTIMATE_COLUMNS]

    n = len(data)
    ks = ks_distance(data.x.double(), trajectory.final_x.double()).numpy()
    metrics = pd.DataFrame(
        {
            "problem": np.tile(np.arange(n), 2),
            "metric": np.repeat(["ks_distance", "simulations"], n),
            "value": np.concatenate([ks, np.full(n, float(trajectory.simulations_per_problem))]),
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
