r"""Every method side by side: accuracy, calibration, C2ST and what each spent. Pandas only.

One row per simulator and *entry*: each baseline and the MLE (``t_test = 0``), SMC-ABC at each
budget, and the main ALFI variant at each ``t_test``. For an entry with per-seed runs
:math:`s = 1..S` (ALFI, regressor, NPE), with :math:`\bar r_s` the mean over problems of the
final per-problem RMSE (:func:`alfi.metrics.final_rmse`) of seed :math:`s`:

* ``rmse`` :math:`= S^{-1} \sum_s \bar r_s` and ``rmse_sd`` the standard deviation of
  :math:`\bar r_s` over seeds (NaN for one seed); ``ratio`` = ``rmse`` / the MLE's mean RMSE
  on the same problems (SMC-ABC runs on the first few only); ``problems`` how many;
* ``coverage90``: the fraction of (problem, parameter) pairs, simulator parameters only, whose
  truth lies in the method's central 90 % interval, i.e. :math:`|u - 1/2| \le 0.45` with
  :math:`u` the ``truth_quantile`` (NaN for point estimates); binomial standard error
  :math:`\sqrt{0.09/n}`, so about 0.03 at :math:`n = 100`; ``coverage90_sd`` the standard
  deviation over seeds of each seed's fraction;
* ``c2st``: mean C2ST accuracy against the exact posterior (0.5 is indistinguishable);
* ``simulations`` per test problem, ``train_simulations`` once (both in simulated
  observations), ``train_seconds`` and ``seconds`` per test problem: means over seeds;
* ``total_simulations`` = ``train_simulations`` + ``simulations`` :math:`\times` the number of
  test problems (the most any entry of the simulator ran on): what the method spends on the
  whole test set, SMC-ABC (run on the first few problems) counted at its rate per problem.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from alfi.calibration import LEVELS
from alfi.columns import MAIN_VARIANT
from alfi.metrics import final_rmse, interval_coverage, seed_spread, select

__all__ = ["COMPARISON_COLUMNS", "entry_label", "comparison_table", "calibration_table"]

COMPARISON_COLUMNS = [
    "simulator",
    "method",
    "t_test",
    "rmse",
    "rmse_sd",
    "n_seeds",
    "problems",
    "ratio",
    "coverage90",
    "coverage90_sd",
    "c2st",
    "simulations",
    "train_simulations",
    "total_simulations",
    "train_seconds",
    "seconds",
]
ORDER = ("posterior", "mle", "alfi", "npe", "abc_smc", "regressor", "prior_mean")


def entry_label(method: str, variant: str, t_test: int) -> str:
    """``alfi (T=15)`` for ALFI, ``abc_smc (1.2e+05)`` for SMC-ABC at a budget of 120000
    simulated observations per problem, ``npe (n=250)`` for an amortised method trained on 250
    problems, the method's name otherwise. The method is the label's first word."""
    if method == "alfi":
        return f"alfi (T={t_test})"
    if method == "abc_smc" and variant.startswith("budget"):
        return f"abc_smc ({int(variant.removeprefix('budget')):.2g})"
    if variant[:1] == "n" and variant[1:].isdigit():
        return f"{method} (n={variant[1:]})"
    return method


def _coverage(rows: pd.DataFrame, level: float = 0.9) -> float:
    """:func:`alfi.metrics.interval_coverage` from the draws alone (NaN without any)."""
    final = rows[(rows["t"] == rows["t_test"]) & ~rows["derived"]]
    return interval_coverage(final.dropna(subset=["truth_quantile"]), (level,))[0][0]


def _coverage_sd(rows: pd.DataFrame, level: float = 0.9) -> float:
    per_seed = [_coverage(part, level) for _, part in rows.groupby("seed")]
    return seed_spread(pd.Series(per_seed, dtype=float))


def _metric(metrics: pd.DataFrame, name: str) -> float:
    rows = metrics[metrics["metric"] == name]
    if rows.empty:
        return np.nan
    return float(rows.groupby("seed")["value"].mean().mean())


def comparison_table(
    estimates: pd.DataFrame, metrics: pd.DataFrame, variant: str = MAIN_VARIANT
) -> pd.DataFrame:
    """The comparison of every method on every simulator (columns :data:`COMPARISON_COLUMNS`)."""
    final = final_rmse(estimates)
    keep = (final["method"] != "alfi") | (final["variant"] == variant)
    entries = final[keep][["simulator", "method", "variant", "t_test"]].drop_duplicates()
    mle = select(final, method="mle")
    rows = []
    for sim, method, run_variant, t_test in entries.itertuples(index=False):
        where = {"simulator": sim, "method": method, "variant": run_variant, "t_test": t_test}
        runs = select(final, **where)
        per_seed = runs.groupby("seed")["rmse"].mean()
        run_metrics = select(metrics, **where)
        runs_estimates = select(estimates, **where)
        problems = runs["problem"].unique()
        same = mle[(mle["simulator"] == sim) & mle["problem"].isin(problems)]["rmse"]
        rows.append(
            {
                **where,
                "rmse": float(per_seed.mean()),
                "rmse_sd": seed_spread(per_seed),
                "n_seeds": len(per_seed),
                "problems": len(problems),
                "ratio": float(per_seed.mean() / same.mean()) if len(same) else np.nan,
                "coverage90": _coverage(runs_estimates),
                "coverage90_sd": _coverage_sd(runs_estimates),
                "c2st": _metric(run_metrics, "c2st"),
                "simulations": _metric(run_metrics, "simulations"),
                "train_simulations": _metric(run_metrics, "train_simulations"),
                "train_seconds": _metric(run_metrics, "train_seconds"),
                "seconds": _metric(run_metrics, "seconds"),
            }
        )
    table = pd.DataFrame(rows)
    if table.empty:
        return pd.DataFrame(columns=COMPARISON_COLUMNS)
    labels = zip(table["method"], table["variant"], table["t_test"], strict=True)
    table["method"] = [entry_label(*label) for label in labels]
    test_problems = table.groupby("simulator")["problems"].transform("max")
    table["total_simulations"] = (
        table["train_simulations"].fillna(0) + table["simulations"].fillna(0) * test_problems
    )
    rank = {name: i for i, name in enumerate(ORDER)}
    table["_order"] = [rank.get(m.split(" ")[0], len(ORDER)) for m in table["method"]]
    table = table.sort_values(["simulator", "_order", "t_test", "simulations", "train_simulations"])
    table = table.reset_index(drop=True)
    return table[COMPARISON_COLUMNS]


def calibration_table(
    estimates: pd.DataFrame, variant: str = MAIN_VARIANT, levels: tuple[float, ...] = LEVELS
) -> pd.DataFrame:
    r"""Coverage of every entry's central intervals against their level, per simulator and seed.

    Final rows of simulator parameters (derived ones aside), each run (seed) on its own, covered
    as :func:`alfi.metrics.interval_coverage` counts: from the draws where the entry has them
    (:math:`|u - 1/2| \le \alpha / 2`, ``u`` the ``truth_quantile``), else from the Gaussian
    :math:`N(\hat\theta, \sigma^2)` (:math:`|\hat\theta - \theta^*| \le z\sigma`); entries with
    neither (point estimates) are left out. Columns ``simulator, method, seed, level, coverage,
    n`` (``method``: the :func:`entry_label`; ``n``: rows counted).
    """
    final = estimates[(estimates["t"] == estimates["t_test"]) & ~estimates["derived"]]
    final = final[(final["method"] != "alfi") | (final["variant"] == variant)]
    rows = []
    keys = ["simulator", "method", "variant", "t_test", "seed"]
    for (sim, method, run_variant, t_test, seed), part in final.groupby(keys, sort=True):
        coverages, counted = interval_coverage(part, levels)
        if not counted:
            continue
        label = entry_label(method, run_variant, t_test)
        rows += [
            {
                "simulator": sim,
                "method": label,
                "seed": int(seed),
                "level": level,
                "coverage": value,
                "n": counted,
            }
            for level, value in zip(levels, coverages, strict=True)
        ]
    return pd.DataFrame(rows, columns=["simulator", "method", "seed", "level", "coverage", "n"])
