r"""Numbers from the tidy result tables: per-problem errors, summaries, ablation and coverage.

Pure pandas/numpy: no torch, no plotting. :mod:`alfi.tables` formats and :mod:`alfi.figures`
draws what these functions return; a library user gets the same numbers from
``estimates.parquet`` and ``metrics.parquet`` alone (columns in :mod:`alfi.columns`).

Notation: a *run* is one (simulator, method, variant, seed, t_test); in it, problem :math:`n` has
true parameters :math:`\theta^*_{n,d}`, :math:`d = 1..D` (the simulator's own parameters; derived
rows such as the Weinberg ``asymmetry`` are left out), and at iteration :math:`t` the estimate
:math:`\hat\theta_{n,d,t}` (raw units) with the proposal's std :math:`\sigma_{n,d,t}`.

* per-problem RMSE :math:`r_{n,t} = \sqrt{D^{-1} \sum_d (\hat\theta_{n,d,t} - \theta^*_{n,d})^2}`,
  the paper's :math:`\lVert\theta^* - E[\theta]\rVert_2 / \sqrt{D}`;
* the *final* value of anything is the one at :math:`t = T_\mathrm{test}` (:math:`t = 0` for the
  MLE, whose ``t_test`` is 0);
* seeds are pooled unless said otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from statistics import NormalDist

import numpy as np
import pandas as pd

from alfi.columns import KEYS, LOSSES, MAIN_VARIANT, WEIGHTINGS
from alfi.io import InputError

__all__ = [
    "Horizon",
    "horizon",
    "LEVELS",
    "SUMMARY_COLUMNS",
    "select",
    "check_estimates",
    "problem_rmse",
    "final_rmse",
    "derived_error",
    "describe",
    "metric_mean",
    "summary_table",
    "main_rows",
    "along_t",
    "split_variant",
    "variant_order",
    "ablation_t_test",
    "ablation_table",
    "coverage",
    "central_intervals",
    "sample_coverage",
    "c2st",
]

#: Nominal levels of the central intervals whose coverage :func:`coverage` measures.
LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
#: Columns of :func:`summary_table`, in order.
SUMMARY_COLUMNS = [
    "simulator",
    "t_test",
    "extrapolated",
    *(f"{side}_{stat}" for side in ("alfi", "mle") for stat in ("mean", "median", "iqr")),
    "ratio",
    *(f"{side}_{stat}" for stat in ("calls", "ks", "asym") for side in ("alfi", "mle")),
]


def select(frame: pd.DataFrame, **where: object) -> pd.DataFrame:
    """The rows of ``frame`` whose column ``c`` equals ``v`` for every ``c=v`` (order kept)."""
    mask = pd.Series(True, index=frame.index)
    for column, value in where.items():
        mask &= frame[column] == value
    return frame[mask]


def check_estimates(estimates: pd.DataFrame, variant: str | None = None) -> None:
    """Raise :class:`InputError` if ``estimates`` is empty or holds no ALFI (``variant``) rows."""
    if estimates.empty:
        raise InputError("the estimates table is empty")
    alfi = estimates["method"] == "alfi"
    if not alfi.any():
        raise InputError("the estimates table holds no ALFI rows (method == 'alfi')")
    if variant is not None and not (estimates.loc[alfi, "variant"] == variant).any():
        present = sorted(estimates.loc[alfi, "variant"].unique())
        raise InputError(f"no ALFI rows for variant {variant!r}; present: {present}")


def problem_rmse(estimates: pd.DataFrame) -> pd.DataFrame:
    """Per-problem RMSE :math:`r_{n,t}` at every iteration: columns ``KEYS + ['t', 'rmse']``.

    One row per (run, problem, t), sorted by those keys. A problem with any NaN estimate at ``t``
    gets a NaN RMSE there (the aggregates below then skip it).
    """
    core = estimates.loc[~estimates["derived"], [*KEYS, "t"]]
    squared = (estimates["estimate"] - estimates["true"]).loc[core.index] ** 2
    grouped = core.assign(sq=squared, bad=squared.isna()).groupby([*KEYS, "t"], sort=True)
    mean = grouped["sq"].mean().where(~grouped["bad"].any())
    return np.sqrt(mean).rename("rmse").reset_index()


def final_rmse(estimates: pd.DataFrame) -> pd.DataFrame:
    r"""Per-problem RMSE at the last iteration, :math:`r_{n,T_\mathrm{test}}`: rows ``t == t_test``
    of :func:`problem_rmse`."""
    return problem_rmse(estimates[estimates["t"] == estimates["t_test"]])


def derived_error(estimates: pd.DataFrame, parameter: str = "asymmetry") -> pd.DataFrame:
    r"""Absolute error :math:`|\hat a_{n,t} - a^*_n|` of one (derived) quantity ``parameter``.

    Columns ``KEYS + ['t', 'error']``, one row per row of ``parameter`` in ``estimates``.
    """
    rows = estimates[estimates["parameter"] == parameter]
    error = (rows["estimate"] - rows["true"]).abs()
    return rows[[*KEYS, "t"]].assign(error=error).reset_index(drop=True)


def describe(values: pd.Series) -> tuple[float, float, float]:
    """Mean, median and inter-quartile range ``q75 - q25`` (pandas' linear interpolation).

    NaN values are skipped; all three are NaN when none is left.
    """
    if values.notna().sum() == 0:
        return np.nan, np.nan, np.nan
    q25, q75 = values.quantile([0.25, 0.75])
    return float(values.mean()), float(values.median()), float(q75 - q25)


def metric_mean(metrics: pd.DataFrame, metric: str, **where: object) -> float:
    """Mean ``value`` of ``metric`` over the rows matching ``where`` (NaN when none does)."""
    rows = select(metrics, metric=metric, **where)
    return float(rows["value"].mean()) if len(rows) else np.nan


def _side(
    prefix: str, final: pd.DataFrame, asym: pd.DataFrame, metrics: pd.DataFrame, **where: object
) -> dict[str, float]:
    """One method's summary columns ``{prefix}_*`` over the rows matching ``where``."""
    mean, median, iqr = describe(select(final, **where)["rmse"])
    error = select(asym, **where)["error"]
    return {
        f"{prefix}_mean": mean,
        f"{prefix}_median": median,
        f"{prefix}_iqr": iqr,
        f"{prefix}_calls": metric_mean(metrics, "simulations", **where),
        f"{prefix}_ks": metric_mean(metrics, "ks_distance", **where),
        f"{prefix}_asym": float(error.mean()) if len(error) else np.nan,
    }


#: The training horizon T_train: one for every simulator, or per simulator.
Horizon = int | Mapping[str, int]


def horizon(t_train: Horizon, simulator: str) -> int:
    """``simulator``'s training horizon from ``t_train`` (an int, or a simulator-to-int map)."""
    if isinstance(t_train, int):
        return t_train
    try:
        return int(t_train[simulator])
    except KeyError:
        raise InputError(
            f"no training horizon for simulator {simulator!r}; have {sorted(t_train)}"
        ) from None


def summary_table(
    estimates: pd.DataFrame,
    metrics: pd.DataFrame,
    t_train: Horizon = 15,
    variant: str = MAIN_VARIANT,
) -> pd.DataFrame:
    """One row per simulator x ``t_test`` of the ALFI ``variant``, next to the MLE.

    Columns :data:`SUMMARY_COLUMNS`: ``alfi_mean/median/iqr`` and ``mle_mean/median/iqr``
    (:func:`describe`) of the final RMSE, ``ratio`` = ``alfi_mean / mle_mean``,
    ``alfi_calls``/``mle_calls`` (mean ``simulations`` per problem; 0 for an MLE without that
    metric), ``alfi_ks``/``mle_ks`` (mean KS distance), ``alfi_asym``/``mle_asym`` (mean final
    ``|error|`` on ``asymmetry``; NaN where there is none) and ``extrapolated``
    (``t_test > t_train``). The MLE columns pool every MLE row of the simulator.
    """
    check_estimates(estimates, variant)
    final = final_rmse(estimates)
    asym = derived_error(estimates)
    asym = asym[asym["t"] == asym["t_test"]]
    runs = select(final, method="alfi", variant=variant)[["simulator", "t_test"]]
    runs = runs.drop_duplicates().sort_values(["simulator", "t_test"])
    rows = []
    for sim, t_test in runs.itertuples(index=False):
        where = {"simulator": sim, "method": "alfi", "variant": variant, "t_test": t_test}
        alfi = _side("alfi", final, asym, metrics, **where)
        mle = _side("mle", final, asym, metrics, simulator=sim, method="mle")
        if np.isnan(mle["mle_calls"]) and len(select(final, simulator=sim, method="mle")):
            mle["mle_calls"] = 0.0
        ratio = alfi["alfi_mean"] / mle["mle_mean"] if mle["mle_mean"] else np.nan
        rows.append(
            {
                "simulator": sim,
                "t_test": int(t_test),
                "extrapolated": bool(t_test > horizon(t_train, sim)),
                "ratio": ratio,
                **alfi,
                **mle,
            }
        )
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def main_rows(frame: pd.DataFrame, simulator: str, variant: str = MAIN_VARIANT) -> pd.DataFrame:
    """ALFI ``variant`` rows of ``simulator`` at its largest ``t_test`` (seeds pooled)."""
    rows = select(frame, simulator=simulator, method="alfi", variant=variant)
    return rows[rows["t_test"] == rows["t_test"].max()] if len(rows) else rows


def along_t(values: pd.DataFrame, column: str) -> pd.DataFrame:
    """Mean and std (``ddof=1``) of ``column`` over the rows at each ``t``: index ``t``."""
    return values.groupby("t")[column].agg(["mean", "std"])


def variant_order(variant: str) -> tuple[int, int, str]:
    """Sort key of variants ``LOSS-WEIGHTING``: the loss's index in :data:`LOSSES`, then the
    weighting's in :data:`WEIGHTINGS` (the tuple's length when absent: unknown ones last)."""
    loss, _, weighting = variant.partition("-")
    return (
        LOSSES.index(loss) if loss in LOSSES else len(LOSSES),
        WEIGHTINGS.index(weighting) if weighting in WEIGHTINGS else len(WEIGHTINGS),
        variant,
    )


def split_variant(variant: str) -> tuple[str, str]:
    """``"nll-exp"`` into ``("nll", "exp")``; :class:`InputError` unless ``LOSS-WEIGHTING``.

    The parse of :func:`alfi.config.parse_variant` (same message), without importing torch.
    """
    loss, weighting, _ = variant_order(variant)
    if loss == len(LOSSES) or weighting == len(WEIGHTINGS):
        raise InputError(
            f"invalid variant {variant!r}; expected LOSS-WEIGHTING with LOSS in {LOSSES} "
            f"and WEIGHTING in {WEIGHTINGS}"
        )
    return LOSSES[loss], WEIGHTINGS[weighting]


def ablation_t_test(estimates: pd.DataFrame, simulator: str, t_train: Horizon = 15) -> int:
    """The ``t_test`` an ablation uses: the simulator's training horizon if it was run, else the
    smallest ``t_test``."""
    rows = select(estimates, simulator=simulator, method="alfi")
    available = sorted(int(t) for t in rows["t_test"].unique())
    if not available:
        raise InputError(f"no ALFI rows for simulator {simulator!r}")
    t = horizon(t_train, simulator)
    return t if t in available else available[0]


def ablation_table(estimates: pd.DataFrame, t_train: Horizon = 15) -> pd.DataFrame:
    r"""Simulator x ALFI variant: the final RMSE's mean over seeds of the per-seed mean, and std.

    With :math:`\bar r_s` the mean final RMSE over the problems of seed :math:`s`: ``mean`` is
    the mean of :math:`\bar r_s` over seeds and ``std`` their std (``ddof=1``; NaN for a single
    seed). Columns ``simulator, variant, loss, weighting, t_test, mean, std, n_seeds``; rows in
    :func:`variant_order`; ``t_test`` chosen by :func:`ablation_t_test`.
    """
    check_estimates(estimates)
    final = final_rmse(estimates[estimates["method"] == "alfi"])
    rows = []
    for sim in sorted(final["simulator"].unique()):
        t_test = ablation_t_test(estimates, sim, t_train)
        part = select(final, simulator=sim, t_test=t_test)
        for variant in sorted(part["variant"].unique(), key=variant_order):
            per_seed = part[part["variant"] == variant].groupby("seed")["rmse"].mean()
            loss, weighting = split_variant(variant)
            rows.append(
                {
                    "simulator": sim,
                    "variant": variant,
                    "loss": loss,
                    "weighting": weighting,
                    "t_test": t_test,
                    "mean": float(per_seed.mean()),
                    "std": float(per_seed.std(ddof=1)) if len(per_seed) > 1 else np.nan,
                    "n_seeds": int(len(per_seed)),
                }
            )
    return pd.DataFrame(rows)


def coverage(
    estimates: pd.DataFrame, variant: str = MAIN_VARIANT, levels: tuple[float, ...] = LEVELS
) -> pd.DataFrame:
    r"""Empirical coverage of the final proposal's central intervals, per simulator and level.

    The interval of level :math:`\alpha` is :math:`\hat\theta \pm z\,\sigma` with
    :math:`z = \Phi^{-1}((1 + \alpha) / 2)`, i.e. the central interval of the Gaussian
    :math:`N(\hat\theta, \sigma^2)` that approximates the final proposal mixture; coverage is
    the fraction of rows with :math:`|\hat\theta - \theta^*| / \sigma \le z`. Rows: the main
    ``variant`` at each simulator's largest ``t_test`` (:func:`main_rows`), ``t == t_test``, with
    a finite positive ``sigma`` (so derived rows and the MLE, whose sigma is NaN, are left out).
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
