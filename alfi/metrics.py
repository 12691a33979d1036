r"""Numbers from the tidy result tables: per-problem errors, summaries and the ablation.

Pure pandas/numpy: no torch, no plotting. :mod:`alfi.tables` formats and :mod:`alfi.figures`
draws what these functions return; a library user gets the same numbers from
``estimates.parquet`` and ``metrics.parquet`` alone (columns in :mod:`alfi.columns`).

Notation: a *run* is one (simulator, method, variant, seed, t_test); in it, problem :math:`n` has
true parameters :math:`\theta^*_{n,d}`, :math:`d = 1..D` (the simulator's own parameters; derived
rows such as the Weinberg ``asymmetry`` are left out), and at iteration :math:`t` the estimate
:math:`\hat\theta_{n,d,t}` (raw units).

* per-problem RMSE :math:`r_{n,t} = \sqrt{D^{-1} \sum_d (\hat\theta_{n,d,t} - \theta^*_{n,d})^2}`,
  the paper's :math:`\lVert\theta^* - E[\theta]\rVert_2 / \sqrt{D}`;
* the *final* value of anything is the one at :math:`t = T_\mathrm{test}` (:math:`t = 0` for the
  MLE, whose ``t_test`` is 0);
* seeds are pooled unless said otherwise; where a spread over seeds is given, it is the
  standard deviation (``ddof=1``) over seeds :math:`s` of a per-seed value such as the mean final
  RMSE :math:`\bar r_s` (NaN for one seed).

The coverage of a method's central intervals is :func:`interval_coverage`; the calibration
table, the C2ST and the Gaussian-only coverage of ALFI's proposal are in :mod:`alfi.calibration`
and :mod:`alfi.comparison`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from statistics import NormalDist

import numpy as np
import pandas as pd

from alfi.columns import KEYS, LOSSES, MAIN_VARIANT, WEIGHTINGS
from alfi.io import InputError

__all__ = [
    "Horizon",
    "horizon",
    "SUMMARY_COLUMNS",
    "select",
    "check_estimates",
    "problem_rmse",
    "final_rmse",
    "derived_error",
    "describe",
    "metric_mean",
    "interval_coverage",
    "seed_spread",
    "summary_table",
    "main_rows",
    "along_t",
    "split_variant",
    "variant_order",
    "ablation_t_test",
    "ablation_seed_means",
    "ablation_table",
]

#: Columns of :func:`summary_table`, in order.
SUMMARY_COLUMNS = [
    "simulator",
    "t_test",
    "extrapolated",
    "n_seeds",
    "alfi_mean",
    "alfi_mean_sd",
    "alfi_median",
    "alfi_iqr",
    *(f"mle_{stat}" for stat in ("mean", "median", "iqr")),
    "ratio",
    "ratio_sd",
    *(f"alfi_cover90{end}" for end in ("", "_min", "_max")),
    *(f"{side}_{stat}" for stat in ("calls", "ks", "asym") for side in ("alfi", "mle")),
    "asym_ratio",
    "asym_ratio_sd",
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


def interval_coverage(final: pd.DataFrame, levels: Sequence[float]) -> tuple[list[float], int]:
    r"""Coverage of a method's central intervals at each of ``levels``, and the rows counted.

    ``final``: final rows of simulator parameters. From the draws where any row has a
    ``truth_quantile`` :math:`u` (the truth's rank among the draws): covered at level
    :math:`\alpha` when :math:`|u - 1/2| \le \alpha / 2`. Else from the Gaussian
    :math:`N(\hat\theta, \sigma^2)` over the rows with a finite positive ``sigma``: covered when
    :math:`|\hat\theta - \theta^*| \le z_\alpha \sigma`, :math:`z_\alpha =
    \Phi^{-1}((1 + \alpha) / 2)`. Coverages are NaN (and the count 0) when neither is there.
    """
    quantile = final["truth_quantile"].dropna()
    if len(quantile):
        distance = (quantile - 0.5).abs().to_numpy()
        bounds = [level / 2 for level in levels]
    else:
        sigma = final["sigma"]
        usable = np.isfinite(sigma) & (sigma > 0)
        distance = ((final["estimate"] - final["true"]).abs() / sigma)[usable].to_numpy()
        bounds = [NormalDist().inv_cdf((1 + level) / 2) for level in levels]
    if not len(distance):
        return [np.nan] * len(bounds), 0
    return [float(np.mean(distance <= bound)) for bound in bounds], len(distance)


def seed_spread(per_seed: pd.Series) -> float:
    """Standard deviation (``ddof=1``) of per-seed values, NaN ones skipped; NaN for fewer
    than two."""
    values = per_seed.dropna()
    return float(values.std(ddof=1)) if len(values) > 1 else np.nan


def _over_seeds(
    final: pd.DataFrame,
    finals: pd.DataFrame,
    asym: pd.DataFrame,
    mle_mean: float,
    mle_asym: float,
    **where: object,
) -> dict[str, float]:
    """The per-seed columns of one summary row: ALFI's mean and the asymmetry ratio as means
    over seeds of per-seed values (so a seed with fewer finite problems weighs as much as any
    other), their spreads over seeds, and the 90 % coverage."""
    per_seed = select(final, **where).groupby("seed")["rmse"].mean()
    by_seed = select(finals, **where).groupby("seed")
    cover = pd.Series([interval_coverage(rows, (0.9,))[0][0] for _, rows in by_seed], dtype=float)
    asym_per_seed = select(asym, **where).groupby("seed")["error"].mean()
    asym_ratio = asym_per_seed.mean() / mle_asym if mle_asym else np.nan
    return {
        "n_seeds": len(per_seed),
        "alfi_mean": float(per_seed.mean()) if len(per_seed) else np.nan,
        "alfi_mean_sd": seed_spread(per_seed),
        "asym_ratio": float(asym_ratio) if len(asym_per_seed) else np.nan,
        "ratio_sd": seed_spread(per_seed) / mle_mean if mle_mean else np.nan,
        "alfi_cover90": float(cover.mean()) if cover.notna().any() else np.nan,
        "alfi_cover90_min": float(cover.min()) if cover.notna().any() else np.nan,
        "alfi_cover90_max": float(cover.max()) if cover.notna().any() else np.nan,
        "asym_ratio_sd": seed_spread(asym_per_seed) / mle_asym if mle_asym else np.nan,
    }


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

    Columns :data:`SUMMARY_COLUMNS`: ``alfi_median/iqr`` and ``mle_mean/median/iqr``
    (:func:`describe`; ALFI's seeds pooled) of the final RMSE; over ALFI's ``n_seeds`` seeds,
    ``alfi_mean`` the mean of the per-seed mean final RMSE :math:`\bar r_s` and
    ``alfi_mean_sd`` their standard deviation (NaN for one seed), ``ratio`` = ``alfi_mean /
    mle_mean`` and ``ratio_sd`` = ``alfi_mean_sd / mle_mean``, and
    ``alfi_cover90`` the mean over seeds of the fraction of (problem, parameter) truths inside
    the central 90 % interval (:func:`interval_coverage`), ``_min``/``_max`` its range;
    ``alfi_calls``/``mle_calls`` (mean ``simulations`` per problem; 0 for an MLE without that
    metric), ``alfi_ks``/``mle_ks`` (mean KS distance), ``alfi_asym``/``mle_asym`` (mean final
    ``|error|`` on ``asymmetry``, seeds pooled; NaN where there is none), ``asym_ratio`` the
    mean over seeds of ALFI's per-seed mean ``|error|`` over ``mle_asym`` and ``asym_ratio_sd``
    its standard deviation over seeds, and ``extrapolated``
    (``t_test > t_train``). The MLE columns pool every MLE row of the simulator.
    """
    check_estimates(estimates, variant)
    final = final_rmse(estimates)
    finals = estimates[(estimates["t"] == estimates["t_test"]) & ~estimates["derived"]]
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
        seeds = _over_seeds(final, finals, asym, mle["mle_mean"], mle["mle_asym"], **where)
        ratio = seeds["alfi_mean"] / mle["mle_mean"] if mle["mle_mean"] else np.nan
        rows.append(
            {
                "simulator": sim,
                "t_test": int(t_test),
                "extrapolated": bool(t_test > horizon(t_train, sim)),
                "ratio": ratio,
                **alfi,
                **mle,
                **seeds,
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


def ablation_seed_means(estimates: pd.DataFrame, t_train: Horizon = 15) -> pd.DataFrame:
    r"""Per simulator, ALFI variant and seed, the mean final RMSE :math:`\bar r_s` over the test
    problems, at the ``t_test`` of :func:`ablation_t_test`: columns ``simulator, t_test,
    variant, seed, rmse``."""
    check_estimates(estimates)
    final = final_rmse(estimates[estimates["method"] == "alfi"])
    parts = []
    for sim in sorted(final["simulator"].unique()):
        t_test = ablation_t_test(estimates, sim, t_train)
        part = select(final, simulator=sim, t_test=t_test)
        parts.append(part.groupby(["simulator", "t_test", "variant", "seed"])["rmse"].mean())
    return pd.concat(parts).reset_index()


def ablation_table(estimates: pd.DataFrame, t_train: Horizon = 15) -> pd.DataFrame:
    r"""Simulator x ALFI variant: the final RMSE's mean over seeds of the per-seed mean, and std.

    With :math:`\bar r_s` the mean final RMSE over the problems of seed :math:`s`
    (:func:`ablation_seed_means`): ``mean`` is the mean of :math:`\bar r_s` over seeds and
    ``std`` their std (``ddof=1``; NaN for a single seed). Columns ``simulator, variant, loss,
    weighting, t_test, mean, std, n_seeds``; rows in :func:`variant_order`; ``t_test`` chosen by
    :func:`ablation_t_test`.
    """
    means = ablation_seed_means(estimates, t_train)
    rows = []
    for (sim, t_test), part in means.groupby(["simulator", "t_test"], sort=True):
        for variant in sorted(part["variant"].unique(), key=variant_order):
            per_seed = part.loc[part["variant"] == variant, "rmse"]
            loss, weighting = split_variant(variant)
            rows.append(
                {
                    "simulator": sim,
                    "variant": variant,
                    "loss": loss,
                    "weighting": weighting,
                    "t_test": int(t_test),
                    "mean": float(per_seed.mean()),
                    "std": seed_spread(per_seed),
                    "n_seeds": int(len(per_seed)),
                }
            )
    return pd.DataFrame(rows)
