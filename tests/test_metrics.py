"""alfi.metrics and alfi.calibration against hand computations; the results readers import
no torch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import alfi
from alfi import calibration, columns, contrasts, metrics, tables
from alfi.columns import ESTIMATE_COLUMNS, METRIC_COLUMNS
from alfi.io import InputError

ROOT = Path(alfi.__file__).resolve().parents[1]
RUN = {"simulator": "toy", "method": "alfi", "variant": "nll-exp", "seed": 0, "fingerprint": "f"}


def _estimates(rows: list[dict]) -> pd.DataFrame:
    """An estimates table: each row ``RUN`` updated by a dict (``t`` defaults to ``t_test``)."""
    full = []
    for row in rows:
        merged = {
            **RUN,
            "problem": 0,
            "t_test": 2,
            "derived": False,
            "sigma": np.nan,
            "truth_quantile": np.nan,
            **row,
        }
        full.append({"t": merged["t_test"], **merged})
    return pd.DataFrame(full)[ESTIMATE_COLUMNS]


def test_readers_import_no_torch() -> None:
    code = (
        "import sys; import alfi.columns, alfi.metrics, alfi.calibration, alfi.tables,"
        " alfi.figures, alfi.report, alfi.plotting, alfi.histograms, alfi.io, alfi.results;"
        " alfi.read_results, alfi.settings, dir(alfi);"
        " assert 'torch' not in sys.modules, 'torch imported'"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_variant_vocabulary_matches_training() -> None:
    from alfi.config import ConfigError, parse_variant
    from alfi.losses import LOSSES, WEIGHTINGS

    assert (columns.LOSSES, columns.WEIGHTINGS) == (LOSSES, WEIGHTINGS)
    for loss in LOSSES:
        for weighting in WEIGHTINGS:
            variant = f"{loss}-{weighting}"
            assert metrics.split_variant(variant) == parse_variant(variant) == (loss, weighting)
    for bad in ("nll", "nll-", "abc-exp", "nll-exp-x"):
        with pytest.raises(ConfigError) as config_error:
            parse_variant(bad)
        with pytest.raises(InputError, match="invalid variant") as input_error:
            metrics.split_variant(bad)
        assert str(input_error.value) == str(config_error.value)


def test_variant_order() -> None:
    variants = ["nll-exp", "zzz-last", "mse-const", "nll-last", "mse-last"]
    ordered = sorted(variants, key=metrics.variant_order)
    assert ordered == ["mse-last", "mse-const", "nll-last", "nll-exp", "zzz-last"]


def test_select_keeps_order() -> None:
    frame = pd.DataFrame({"a": [1, 2, 1, 1], "b": ["x", "x", "y", "x"], "v": [0, 1, 2, 3]})
    assert metrics.select(frame, a=1, b="x")["v"].tolist() == [0, 3]
    assert metrics.select(frame)["v"].tolist() == [0, 1, 2, 3]


def test_problem_rmse_leaves_out_derived_rows() -> None:
    estimates = _estimates(
        [
            # problem 0: errors (3, 4) on the parameters, 100 on a derived quantity
            {"parameter": "a", "true": 1.0, "estimate": 4.0},
            {"parameter": "b", "true": 0.0, "estimate": -4.0},
            {"parameter": "c", "true": 0.0, "estimate": 100.0, "derived": True},
            # problem 1: one NaN estimate makes its RMSE NaN; at t = 1 it is fine
            {"problem": 1, "parameter": "a", "true": 0.0, "estimate": np.nan},
            {"problem": 1, "parameter": "b", "true": 0.0, "estimate": 1.0},
            {"problem": 1, "t": 1, "parameter": "a", "true": 0.0, "estimate": 1.0},
            {"problem": 1, "t": 1, "parameter": "b", "true": 0.0, "estimate": 3.0},
        ]
    )
    rmse = metrics.problem_rmse(estimates).set_index(["problem", "t"])["rmse"]
    assert rmse[(0, 2)] == pytest.approx(np.sqrt((9 + 16) / 2))
    assert np.isnan(rmse[(1, 2)])
    assert rmse[(1, 1)] == pytest.approx(np.sqrt((1 + 9) / 2))
    final = metrics.final_rmse(estimates)
    assert final["t"].tolist() == [2, 2] and final["problem"].tolist() == [0, 1]
    error = metrics.derived_error(estimates, "c")
    assert error["error"].tolist() == [100.0] and list(error.columns) == [
        *columns.KEYS,
        "t",
        "error",
    ]


def test_describe_and_metric_mean() -> None:
    assert metrics.describe(pd.Series([4.0, 1.0, np.nan, 3.0, 2.0])) == (2.5, 2.5, 1.5)
    assert all(np.isnan(v) for v in metrics.describe(pd.Series([np.nan])))
    table = pd.DataFrame(
        [
            {**RUN, "problem": p, "t_test": 2, "metric": m, "value": v}
            for p, m, v in [(0, "ks_distance", 0.1), (1, "ks_distance", 0.3), (0, "simulations", 8)]
        ]
    )[METRIC_COLUMNS]
    assert metrics.metric_mean(table, "ks_distance", simulator="toy") == pytest.approx(0.2)
    assert metrics.metric_mean(table, "simulations", problem=0) == 8.0
    assert np.isnan(metrics.metric_mean(table, "ks_distance", method="mle"))


def test_along_t() -> None:
    values = pd.DataFrame({"t": [0, 0, 1, 1, 1], "rmse": [1.0, 3.0, 1.0, 2.0, 3.0]})
    stats = metrics.along_t(values, "rmse")
    assert stats.index.tolist() == [0, 1]
    assert stats["mean"].tolist() == [2.0, 2.0]
    assert stats["std"].tolist() == pytest.approx([np.sqrt(2.0), 1.0])  # ddof=1


def test_coverage_by_hand() -> None:
    # |estimate - true| / sigma = 0.1, 0.5, 1.0, 2.0 on the counted rows.
    counted = [
        {"problem": p, "parameter": "a", "true": 0.0, "estimate": e * s, "sigma": s}
        for p, (e, s) in enumerate([(0.1, 1.0), (-0.5, 2.0), (1.0, 0.5), (-2.0, 1.0)])
    ]
    left_out = [
        {"parameter": "b", "true": 0.0, "estimate": 0.0, "sigma": np.nan},  # no sigma
        {"parameter": "b", "true": 0.0, "estimate": 0.0, "sigma": 0.0},  # zero sigma
        {"parameter": "c", "true": 0.0, "estimate": 9.0, "derived": True},  # derived: NaN sigma
        {"parameter": "a", "true": 0.0, "estimate": 9.0, "sigma": 1.0, "t": 1},  # not final
        {"parameter": "a", "true": 0.0, "estimate": 9.0, "sigma": 1.0, "t_test": 1},  # smaller T
        {"parameter": "a", "true": 0.0, "estimate": 9.0, "sigma": 1.0, "variant": "mse-last"},
        {"parameter": "a", "true": 0.0, "estimate": 0.0, "method": "mle", "t_test": 0},
    ]
    table = calibration.coverage(_estimates(counted + left_out), levels=(0.5, 0.95, 0.99))
    # z = Phi^-1((1 + level) / 2) = 0.674, 1.960, 2.576
    assert table["coverage"].tolist() == [0.5, 0.75, 1.0]
    assert table["n"].tolist() == [4, 4, 4] and set(table["simulator"]) == {"toy"}
    assert calibration.coverage(_estimates(left_out[:3])).empty


def test_summary_and_ablation_columns() -> None:
    estimates = _estimates(
        [
            {"parameter": "a", "true": 0.0, "estimate": 2.0},
            {"parameter": "a", "true": 0.0, "estimate": 4.0, "seed": 1},
            {"parameter": "a", "true": 0.0, "estimate": 1.0, "method": "mle", "t_test": 0},
        ]
    )
    empty = pd.DataFrame(columns=METRIC_COLUMNS)
    summary = metrics.summary_table(estimates, empty, t_train=1)
    assert list(summary.columns) == metrics.SUMMARY_COLUMNS and len(summary) == 1
    row = summary.iloc[0]
    assert (row["alfi_mean"], row["mle_mean"], row["ratio"]) == (3.0, 1.0, 3.0)
    assert row["mle_calls"] == 0.0 and np.isnan(row["alfi_calls"]) and row["extrapolated"]
    assert row["n_seeds"] == 2
    assert (
        row["alfi_mean_sd"] == pytest.approx(np.sqrt(2.0))
        and row["ratio_sd"] == row["alfi_mean_sd"]
    )
    assert np.isnan(row["alfi_cover90"])  # neither draws nor sigma
    ablation = metrics.ablation_table(estimates, t_train=1).iloc[0]
    assert (ablation["t_test"], ablation["mean"], ablation["n_seeds"]) == (2, 3.0, 2)
    assert ablation["std"] == pytest.approx(np.sqrt(2.0))
    assert (ablation["loss"], ablation["weighting"]) == ("nll", "exp")


def test_summary_coverage_over_seeds() -> None:
    """90 % coverage per seed, from sigma (z = 1.645) where there are no draws, else from the
    truth quantiles; the summary gives its mean and range over seeds."""
    gaussian = [  # seed 0: errors of 1 and 2 sigma (one covered), seed 1: both covered
        {"problem": p, "seed": s, "parameter": "a", "true": 0.0, "estimate": e, "sigma": 1.0}
        for s, errors in ((0, (1.0, 2.0)), (1, (0.5, -1.5)))
        for p, e in enumerate(errors)
    ]
    mle = [{"problem": p, "parameter": "a", "true": 0.0, "estimate": 1.0, "method": "mle",
            "t_test": 0} for p in (0, 1)]  # fmt: skip
    empty = pd.DataFrame(columns=METRIC_COLUMNS)
    row = metrics.summary_table(_estimates(gaussian + mle), empty, t_train=1).iloc[0]
    assert (row["alfi_cover90"], row["alfi_cover90_min"], row["alfi_cover90_max"]) == (
        0.75,
        0.5,
        1.0,
    )
    # the draws, where there are any, decide: here they put seed 0's truths inside (rank 0.5)
    # and seed 1's outside (rank 0.99), the reverse of what sigma says
    ranks = (0.5, 0.5, 0.99, 0.99)
    drawn = [{**r, "truth_quantile": q} for r, q in zip(gaussian, ranks, strict=True)]
    row = metrics.summary_table(_estimates(drawn + mle), empty, t_train=1).iloc[0]
    cover = (row["alfi_cover90"], row["alfi_cover90_min"], row["alfi_cover90_max"])
    assert cover == (0.5, 0.0, 1.0)
    assert metrics.interval_coverage(_estimates(drawn), (0.9, 0.995)) == ([0.5, 1.0], 4)
    assert metrics.interval_coverage(_estimates(gaussian), (0.9,)) == ([0.75], 4)


def test_summary_means_over_seeds_weigh_each_seed_alike() -> None:
    """A seed with fewer finite problems weighs as much as any other in ALFI's mean and ratio
    (the mean of per-seed means), while the median pools every problem."""
    rows = [
        {"problem": p, "seed": s, "parameter": "a", "true": 0.0, "estimate": e}
        for s, errors in ((0, (1.0, 3.0)), (1, (4.0, np.nan)))
        for p, e in enumerate(errors)
    ]
    mle = [{"problem": 0, "parameter": "a", "true": 0.0, "estimate": 2.0, "method": "mle",
            "t_test": 0}]  # fmt: skip
    empty = pd.DataFrame(columns=METRIC_COLUMNS)
    row = metrics.summary_table(_estimates(rows + mle), empty, t_train=1).iloc[0]
    assert (row["alfi_mean"], row["ratio"], row["alfi_median"]) == (3.0, 1.5, 3.0)
    assert row["alfi_mean_sd"] == pytest.approx(np.sqrt(2.0))
    assert metrics.seed_spread(pd.Series([1.0, np.nan, 3.0])) == pytest.approx(np.sqrt(2.0))
    assert np.isnan(metrics.seed_spread(pd.Series([1.0, np.nan])))


def test_ablation_contrasts_by_hand() -> None:
    """Paired over the seeds both variants have: the mean difference, its standard error and
    the seeds where the first is lower; only the loss at one weighting and the weightings
    against exp are contrasted."""
    errors = {  # variant: final error of problem 0, per seed
        "nll-exp": {0: 1.0, 1: 2.0, 2: 3.0},
        "mse-exp": {0: 2.0, 1: 2.5, 2: 3.5, 3: 9.0},  # seed 3 has no nll-exp partner
        "nll-last": {0: 1.5, 1: 1.0},
        "mse-const": {0: 1.0},  # against mse-exp on seed 0 alone
    }
    estimates = _estimates(
        [
            {"variant": v, "seed": seed, "parameter": "a", "true": 0.0, "estimate": e}
            for v, by_seed in errors.items()
            for seed, e in by_seed.items()
        ]
    )
    table = contrasts.ablation_contrasts(estimates, t_train=2).set_index(["first", "second"])
    assert list(table.index) == [
        ("nll-exp", "mse-exp"),
        ("mse-const", "mse-exp"),
        ("nll-last", "nll-exp"),
    ]
    row = table.loc[("nll-exp", "mse-exp")]  # differences -1, -0.5, -0.5
    assert (row["n_seeds"], row["lower"]) == (3, 3) and row["mean"] == pytest.approx(-2 / 3)
    assert row["se"] == pytest.approx(np.std([-1, -0.5, -0.5], ddof=1) / np.sqrt(3))
    row = table.loc[("nll-last", "nll-exp")]  # +0.5, -1
    assert (row["n_seeds"], row["lower"], row["mean"]) == (2, 1, -0.25)
    row = table.loc[("mse-const", "mse-exp")]  # one shared seed: no standard error
    assert (row["n_seeds"], row["lower"], row["mean"]) == (1, 1, -1.0) and np.isnan(row["se"])
    cells = tables.format_contrasts(table.reset_index()).iloc[0]
    assert cells["difference"] == "nll-exp − mse-exp" and cells["first lower"] == "3 of 3 seeds"
    assert tables.format_contrasts(table.reset_index()).iloc[1]["t"] == "–"  # one seed
    assert cells["mean ± se (paired over seeds)"] == "-0.67 ± 0.17" and cells["t"] == "-4.0"


def test_training_horizon_per_simulator() -> None:
    """``t_train`` may differ per simulator (config overrides of train.steps): a run is
    extrapolated only beyond its own simulator's horizon."""
    rows = [
        {"simulator": s, "parameter": "a", "true": 0.0, "estimate": 1.0, "t_test": t, "t": t}
        for s in ("p", "q")
        for t in (2, 4)
    ]
    mle = [{"simulator": s, "parameter": "a", "true": 0.0, "estimate": 1.0, "method": "mle",
            "t_test": 0, "t": 0} for s in ("p", "q")]  # fmt: skip
    estimates = _estimates(rows + mle)
    empty = pd.DataFrame(columns=METRIC_COLUMNS)
    summary = metrics.summary_table(estimates, empty, t_train={"p": 2, "q": 4})
    flags = {(r.simulator, r.t_test): r.extrapolated for r in summary.itertuples()}
    assert flags == {("p", 2): False, ("p", 4): True, ("q", 2): False, ("q", 4): False}
    ablation = metrics.ablation_table(estimates, t_train={"p": 2, "q": 4})
    assert dict(zip(ablation["simulator"], ablation["t_test"], strict=True)) == {"p": 2, "q": 4}
    with pytest.raises(InputError, match="no training horizon for simulator 'q'"):
        metrics.summary_table(estimates, empty, t_train={"p": 2})


def test_parse_horizon() -> None:
    import argparse

    from alfi.report import parse_horizon

    assert parse_horizon("15") == 15
    assert parse_horizon("poisson=15, weinberg=10".replace(" ", "")) == {
        "poisson": 15,
        "weinberg": 10,
    }
    with pytest.raises(argparse.ArgumentTypeError, match="invalid training horizon 'p=x'"):
        parse_horizon("p=x")


def test_sample_coverage_by_hand() -> None:
    # One parameter, draws 0..100 for every problem: the 0.5 interval is [25, 75], the 0.9 one
    # [5, 95] (numpy's linear interpolation hits the draws, up to rounding of the levels).
    draws = np.tile(np.arange(101.0), (4, 1))[..., None]
    low, high = calibration.central_intervals(draws, levels=(0.5, 0.9))
    assert low.shape == high.shape == (2, 4, 1)
    np.testing.assert_allclose(low[:, :, 0], [[25] * 4, [5] * 4])
    np.testing.assert_allclose(high[:, :, 0], [[75] * 4, [95] * 4])
    truth = np.array([[50.0], [80.0], [3.0], [np.nan]])  # the NaN problem is left out
    table = calibration.sample_coverage(draws, truth, levels=(0.5, 0.9), names=("a",))
    assert table["coverage"].tolist() == [1 / 3, 2 / 3] and (table["n"] == 3).all()
    with pytest.raises(InputError, match="do not match"):
        calibration.sample_coverage(draws, truth[:, [0, 0]])
    with pytest.raises(InputError, match="levels"):
        calibration.central_intervals(draws, levels=(1.0,))
