r"""Calibration: coverage of central intervals, and the C2ST against the exact posterior.

Pure pandas/numpy at import (no torch); :func:`c2st` imports sbi (and torch) when called.
Notation of :mod:`alfi.metrics`: true parameters :math:`\theta^*`, final estimate
:math:`\hat\theta` (at :math:`t = T_\mathrm{test}`). A central interval of nominal level
:math:`\alpha` (:data:`LEVELS`) is *calibrated* when it holds the truth with probability
:math:`\alpha`, for truths drawn from the prior; the empirical coverage is the fraction that
does, within the binomial error :math:`\sqrt{\alpha(1-\alpha)/n}` of :math:`\alpha` over
:math:`n` independent (problem, parameter) pairs.

* From the Gaussian proposal's std :math:`\sigma` (:func:`coverage`, ALFI's table rows): the
  interval is :math:`\hat\theta \pm z_\alpha \sigma`, :math:`z_\alpha = \Phi^{-1}((1+\alpha)/2)`,
  the central interval of :math:`N(\hat\theta, \sigma^2)` that approximates the final proposal
  mixture; it covers when :math:`|\hat\theta - \theta^*| / \sigma \le z_\alpha`.
* From draws (:func:`central_intervals`, :func:`sample_coverage`; any method that samples): the
  interval is :math:`[q_{(1-\alpha)/2}, q_{(1+\alpha)/2}]`, the empirical quantiles of the
  ``S`` draws of each problem; draws ``(N, S, D)``, truths ``(N, D)``, ends ``(L, N, D)`` for
  ``L`` levels. (:func:`alfi.comparison.calibration_table` does either per method, from the
  tables.)
* C2ST (:func:`c2st`): the cross-validated accuracy of a classifier told a method's draws
  ``(N, S, D)`` from exact reference draws ``(N, S', D)`` (:mod:`alfi.reference`), per problem
  ``(N,)``: 0.5 when indistinguishable, 1 when disjoint.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pandas as pd

from alfi.columns import MAIN_VARIANT
from alfi.io import InputError
from alfi.metrics import main_rows

__all__ = ["LEVELS", "coverage", "central_intervals", "sample_coverage", "c2st"]

#: Nominal levels of the central intervals whose coverage :func:`coverage` measures.
LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


def coverage(
    estimates: pd.DataFrame, variant: str = MAIN_VARIANT, levels: tuple[float, ...] = LEVELS
) -> pd.DataFrame:
    r"""Empirical coverage of the final proposal's central intervals, per simulator and level.

    The interval of level :math:`\alpha` is :math:`\hat\theta \pm z\,\sigma` with
    :math:`z = \Phi^{-1}((1 + \alpha) / 2)`, i.e. the central interval of the Gaussian
    :math:`N(\hat\theta, \sigma^2)` that approximates the final proposal mixture; coverage is
    the fraction of rows with :math:`|\hat\theta - \theta^*| / \sigma \le z`. Rows: the main
    ``variant`` at each simulator's largest ``t_test`` (:func:`alfi.metrics.main_rows`),
    ``t == t_test``, with a finite positive ``sigma`` (so derived rows and the MLE, whose sigma
    is NaN, are left out).
    Columns ``simulator, level, coverage, n`` (``n``: rows counted).
    """
    rows = []
    for sim in sorted(estimates["simulator"].unique()):
        part = main_rows(estimates, sim, variant)
        part = part[
            (part["t"] == part["t_test"]) & np.isfinite(part["sigma"]) & (part["sigma"] > 0)
        ]
        if part.empty:
            continue
        z = ((part["estimate"] - part["true"]).abs() / part["sigma"]).to_numpy()
        for level in levels:
            quantile = NormalDist().inv_cdf((1 + level) / 2)
            rows.append(
                {
                    "simulator": sim,
                    "level": level,
                    "coverage": float(np.mean(z <= quantile)),
                    "n": len(z),
                }
            )
    return pd.DataFrame(rows, columns=["simulator", "level", "coverage", "n"])


def central_intervals(
    samples: np.ndarray, levels: tuple[float, ...] = LEVELS
) -> tuple[np.ndarray, np.ndarray]:
    r"""Empirical central intervals of posterior draws, for any method that yields samples.

    The interval of level :math:`\alpha` is :math:`[q_{(1-\alpha)/2}, q_{(1+\alpha)/2}]`, the
    empirical quantiles of the draws (numpy's linear interpolation).

    Args:
        samples: draws of shape ``(N, S, D)``: ``S`` per problem, ``N`` problems.
        levels: nominal levels in (0, 1).

    Returns:
        Lower and upper ends, each of shape ``(L, N, D)`` for ``L = len(levels)``.
    """
    samples = np.asarray(samples, dtype=float)
    if samples.ndim != 3:
        raise InputError(f"samples must have shape (N, S, D), got {samples.shape}")
    tails = np.asarray(levels, dtype=float)
    if not ((tails > 0) & (tails < 1)).all():
        raise InputError(f"levels must lie in (0, 1), got {levels}")
    low = np.quantile(samples, (1 - tails) / 2, axis=1)
    high = np.quantile(samples, (1 + tails) / 2, axis=1)
    return low, high


def sample_coverage(
    samples: np.ndarray,
    truth: np.ndarray,
    levels: tuple[float, ...] = LEVELS,
    names: tuple[str, ...] | None = None,
) -> pd.DataFrame:
    r"""Coverage of the empirical central intervals (:func:`central_intervals`) of the draws.

    Coverage at level :math:`\alpha` is the fraction of problems whose true value lies in its
    interval, per parameter. For an exact posterior and truths drawn from the prior it is
    :math:`\alpha` up to the binomial error :math:`\sqrt{\alpha(1-\alpha)/N}` (and the
    quantiles' own error). Problems with a non-finite draw or truth in a parameter are left out
    of that parameter.

    Args:
        samples: ``(N, S, D)`` draws; ``truth``: ``(N, D)`` true parameters.
        levels: nominal levels; ``names``: one per parameter (default ``"0"``, ``"1"``, ...).

    Returns:
        Columns ``parameter, level, coverage, n`` (``n``: problems counted), one row per
        parameter and level.
    """
    samples, truth = np.asarray(samples, dtype=float), np.asarray(truth, dtype=float)
    if truth.shape != (samples.shape[0], samples.shape[-1]) or samples.ndim != 3:
        raise InputError(f"samples {samples.shape} and truth {truth.shape} do not match")
    names = names or tuple(str(d) for d in range(truth.shape[1]))
    finite = np.isfinite(samples).all(axis=1) & np.isfinite(truth)
    low, high = central_intervals(np.where(np.isfinite(samples), samples, 0.0), levels)
    inside = (low <= truth) & (truth <= high)
    rows = []
    for d, name in enumerate(names):
        n = int(finite[:, d].sum())
        for i, level in enumerate(levels):
            hit = inside[i, finite[:, d], d]
            rows.append(
                {
                    "parameter": name,
                    "level": level,
                    "coverage": float(hit.mean()) if n else np.nan,
                    "n": n,
                }
            )
    return pd.DataFrame(rows, columns=["parameter", "level", "coverage", "n"])


def c2st(samples: np.ndarray, reference: np.ndarray, seed: int = 1, trees: int = 100) -> np.ndarray:
    """Classifier two-sample test accuracy per problem: 0.5 indistinguishable, 1 disjoint.

    sbi's ``c2st`` (a random forest of ``trees`` trees, 5-fold cross-validation, both sets
    z-scored by ``samples``' moments) on each problem, between a method's draws ``samples``
    ``(N, S, D)`` and exact reference draws ``reference`` ``(N, S', D)``
    (:mod:`alfi.reference`); returns ``(N,)``. The forest's fits are the whole cost (about
    1.4 s per problem at 100 trees and 1000 + 1000 draws); ``docs/studies/c2st_trees.md``
    measures what fewer trees change.
    Needs the optional ``baselines`` extra (sbi, which brings torch and scikit-learn); this
    module imports neither until called.
    """
    try:
        import torch
        from sbi.utils.metrics import c2st as sbi_c2st
    except ImportError as error:
        raise ImportError(
            "C2ST needs the optional package sbi; install it with: pip install -e '.[baselines]'"
        ) from error
    samples, reference = np.asarray(samples), np.asarray(reference)
    if samples.ndim != 3 or reference.shape[::2] != samples.shape[::2]:
        raise InputError(f"samples {samples.shape} and reference {reference.shape} do not match")
    scores = [
        float(
            sbi_c2st(
                torch.as_tensor(s).float(),
                torch.as_tensor(r).float(),
                seed=seed,
                classifier_kwargs={"n_estimators": trees},
            )
        )
        for s, r in zip(samples, reference, strict=True)
    ]
    return np.array(scores)
